"""PostgreSQL storage: psycopg 3 (async) behind a ``psycopg_pool.AsyncConnectionPool``.

For sites with several workers or hosts. Needs the ``postgres`` extra
(``pip install 'consentgate[postgres]'``); :func:`~consentgate.storage.storage_from_url`
imports this module only for ``postgresql://`` and ``postgres://`` URLs.

Failure must be quick, never a hang: a visitor's consent click waits on this store.
So connecting has a timeout (``connect_timeout``), waiting for a pooled connection has
one (``pool_timeout``), every statement has one (``statement_timeout``, set on each new
connection), and each connection is checked as it leaves the pool, so one that died
while idle (a database restart) is replaced instead of failing the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from consentgate.storage.base import (
    DuplicateUserError,
    SchemaTooNewError,
    SchemaTooOldError,
    Storage,
    StorageError,
    check_counts,
    meter_outcome,
)
from consentgate.storage.breaker import (
    BREAKER_URL_PARAMS,
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_CALL_TIMEOUT,
    BreakerSettings,
    CircuitBreaker,
)
from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    MeterOutcome,
    SessionRecord,
    User,
    email_key,
)

__all__ = ["SCHEMA_VERSION", "PoolSettings", "PostgresStorage"]

SCHEMA_VERSION = 4

Conn = psycopg.AsyncConnection[Any]
Row = tuple[Any, ...]
_T = TypeVar("_T")

# libpq parameters set unless the URL sets them. statement_timeout is enforced by the
# server, which cannot help when the server (or the path to it) is what failed: TCP
# keepalives notice a dead peer on an idle connection, and tcp_user_timeout (ms) closes
# a connection whose sent data stays unacknowledged (packets dropped). A hard bound
# on every call (call_timeout, see storage/breaker.py) covers whatever is left.
_TCP_DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

# A stand-in for "no lower bound" that compares below every stored time.
_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)

# Version 1: the consent ledger. Numbered like the SQLite schema so that
# `schema_version()` means the same on both backends.
_SCHEMA_V1 = (
    """
    CREATE TABLE consent_ledger (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        consent_id TEXT NOT NULL,
        user_id TEXT,
        action TEXT NOT NULL
            CHECK (action IN ('grant', 'reject', 'update', 'withdraw', 'gpc')),
        granted TEXT[] NOT NULL,
        denied TEXT[] NOT NULL,
        policy_version TEXT NOT NULL,
        banner_text_sha256 TEXT NOT NULL,
        language TEXT NOT NULL,
        region_mode TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('form', 'js', 'api', 'gpc')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX consent_ledger_by_consent_id ON consent_ledger (consent_id, recorded_at, id)",
    "CREATE INDEX consent_ledger_by_recorded_at ON consent_ledger (recorded_at, id)",
    # The ledger is evidence of consent: rows are never changed or removed, not even by
    # a TRUNCATE (which row triggers would not see).
    """
    CREATE FUNCTION consentgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER consent_ledger_append_only BEFORE UPDATE OR DELETE ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TRIGGER consent_ledger_no_truncate BEFORE TRUNCATE ON consent_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION consentgate_append_only()
    """,
)

# Version 2: accounts, their acceptances (append-only too), the server-side meter.
_SCHEMA_V2 = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX users_by_email_key ON users (email_key)",
    # No foreign key to users: sites with their own accounts record acceptances for
    # user ids we have never seen.
    """
    CREATE TABLE acceptances (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id TEXT NOT NULL,
        purpose TEXT NOT NULL CHECK (purpose IN ('privacy_policy', 'newsletter')),
        policy_version TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        granted BOOLEAN NOT NULL,
        method TEXT NOT NULL
            CHECK (method IN ('registration', 're-acceptance', 'external', 'withdrawal')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX acceptances_by_user ON acceptances (user_id, purpose, recorded_at, id)",
    "CREATE INDEX acceptances_by_recorded_at ON acceptances (recorded_at, id)",
    """
    CREATE TRIGGER acceptances_append_only BEFORE UPDATE OR DELETE ON acceptances
    FOR EACH ROW EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TRIGGER acceptances_no_truncate BEFORE TRUNCATE ON acceptances
    FOR EACH STATEMENT EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TABLE meter_reads (
        reader_key TEXT NOT NULL,
        article TEXT NOT NULL,
        read_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (reader_key, article)
    )
    """,
    "CREATE INDEX meter_reads_by_read_at ON meter_reads (read_at)",
)

# Version 3: daily counters, and redaction as the one change the append-only tables
# accept. Comparing the rows as JSON without the two columns covers every other
# column, including any added later.
_SCHEMA_V3 = (
    """
    CREATE TABLE counters (
        day DATE NOT NULL,
        name TEXT NOT NULL,
        value BIGINT NOT NULL,
        PRIMARY KEY (day, name)
    )
    """,
    """
    CREATE INDEX consent_ledger_by_user ON consent_ledger (user_id, recorded_at, id)
    WHERE user_id IS NOT NULL
    """,
    """
    CREATE OR REPLACE FUNCTION consentgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
            AND NEW.ip_hmac IS NULL AND NEW.user_agent IS NULL
            AND to_jsonb(NEW) - 'ip_hmac' - 'user_agent'
                = to_jsonb(OLD) - 'ip_hmac' - 'user_agent'
        THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
)

# Version 4: server-side sessions (readers and the dashboard), and rollups kept by the
# database on every ledger insert, so the dashboard never scans the ledger. The daily
# rows are spread over 8 shards (by row id): concurrent inserts of one day, action and
# method would otherwise all wait for one row's lock. Locks are always taken in the
# same order (consent_latest, then consent_daily), so inserts cannot deadlock.
_SCHEMA_V4 = (
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('reader', 'admin')),
        subject TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX sessions_by_subject ON sessions (kind, subject)",
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    """
    CREATE TABLE consent_daily (
        day DATE NOT NULL,
        action TEXT NOT NULL,
        method TEXT NOT NULL,
        shard SMALLINT NOT NULL,
        decisions BIGINT NOT NULL,
        PRIMARY KEY (day, action, method, shard)
    )
    """,
    """
    CREATE TABLE consent_latest (
        consent_id TEXT PRIMARY KEY,
        last_at TIMESTAMPTZ NOT NULL,
        granted TEXT[] NOT NULL,
        gpc_at TIMESTAMPTZ
    )
    """,
    "CREATE INDEX consent_latest_by_last_at ON consent_latest (last_at) INCLUDE (granted)",
    "CREATE INDEX consent_latest_by_gpc_at ON consent_latest (gpc_at) WHERE gpc_at IS NOT NULL",
    """
    INSERT INTO consent_daily (day, action, method, shard, decisions)
    SELECT (recorded_at AT TIME ZONE 'UTC')::date, action, method, 0, count(*)
    FROM consent_ledger GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO consent_latest (consent_id, last_at, granted, gpc_at)
    SELECT DISTINCT ON (consent_id) consent_id, recorded_at, granted,
        max(recorded_at) FILTER (WHERE action = 'gpc') OVER (PARTITION BY consent_id)
    FROM consent_ledger ORDER BY consent_id, recorded_at DESC, id DESC
    """,
    """
    CREATE FUNCTION consentgate_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- A row older than the id's latest (two workers, clock skew) leaves it be;
        -- GREATEST ignores NULLs.
        INSERT INTO consent_latest AS l (consent_id, last_at, granted, gpc_at)
        VALUES (NEW.consent_id, NEW.recorded_at, NEW.granted,
            CASE WHEN NEW.action = 'gpc' THEN NEW.recorded_at END)
        ON CONFLICT (consent_id) DO UPDATE SET
            granted = CASE WHEN excluded.last_at >= l.last_at THEN excluded.granted
                ELSE l.granted END,
            last_at = GREATEST(l.last_at, excluded.last_at),
            gpc_at = GREATEST(l.gpc_at, excluded.gpc_at);
        INSERT INTO consent_daily AS d (day, action, method, shard, decisions)
        VALUES ((NEW.recorded_at AT TIME ZONE 'UTC')::date, NEW.action, NEW.method,
            NEW.id % 8, 1)
        ON CONFLICT (day, action, method, shard) DO UPDATE SET decisions = d.decisions + 1;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER consent_ledger_rollups AFTER INSERT ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consentgate_rollups()
    """,
)

_MIGRATIONS: dict[int, Sequence[str]] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
}

# Interpolated into the queries below (constants, never input: hence the S608 waivers).
_CONSENT_COLUMNS = """id, consent_id, user_id, action, granted, denied, policy_version,
    banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at"""
_ACCEPTANCE_COLUMNS = """id, user_id, purpose, policy_version, policy_sha256, granted,
    method, ip_hmac, user_agent, recorded_at"""

_INSERT_CONSENT = """
    INSERT INTO consent_ledger (
        consent_id, user_id, action, granted, denied, policy_version, banner_text_sha256,
        language, region_mode, method, ip_hmac, user_agent, recorded_at
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
_SELECT_HISTORY = f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
    WHERE consent_id = %s ORDER BY recorded_at, id"""  # noqa: S608
_SELECT_LATEST = f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
    WHERE consent_id = %s ORDER BY recorded_at DESC, id DESC LIMIT 1"""  # noqa: S608
_SELECT_FOR_USER = f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
    WHERE user_id = %s ORDER BY recorded_at, id"""  # noqa: S608
# Keyset pages on (recorded_at, id), each on its own pooled connection: memory stays
# constant and a slow consumer holds neither a connection nor a transaction open.
_CONSENT_PAGE = f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
    WHERE (recorded_at, id) > (%s, %s) AND recorded_at < %s
    ORDER BY recorded_at, id LIMIT %s"""  # noqa: S608
_ACCEPTANCE_PAGE = f"""SELECT {_ACCEPTANCE_COLUMNS} FROM acceptances
    WHERE (recorded_at, id) > (%s, %s) AND recorded_at < %s
    ORDER BY recorded_at, id LIMIT %s"""  # noqa: S608

_SELECT_USER_BY_EMAIL_KEY = (
    "SELECT id, email, password_hash, created_at FROM users WHERE email_key = %s"
)
_SELECT_USER_BY_ID = "SELECT id, email, password_hash, created_at FROM users WHERE id = %s"
_INSERT_USER = (
    "INSERT INTO users (id, email, email_key, password_hash, created_at)"
    " VALUES (%s, %s, %s, %s, %s)"
)
_INSERT_ACCEPTANCE = """
    INSERT INTO acceptances (
        user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
_SELECT_LATEST_ACCEPTANCE = f"""SELECT {_ACCEPTANCE_COLUMNS} FROM acceptances
    WHERE user_id = %s AND purpose = %s ORDER BY recorded_at DESC, id DESC LIMIT 1"""  # noqa: S608
_SELECT_ACCEPTANCES_FOR = f"""SELECT {_ACCEPTANCE_COLUMNS} FROM acceptances
    WHERE user_id = %s ORDER BY recorded_at, id"""  # noqa: S608
# GREATEST keeps the newest time when reads arrive out of order (two workers, one reader).
_UPSERT_READ = """
    INSERT INTO meter_reads (reader_key, article, read_at) VALUES (%s, %s, %s)
    ON CONFLICT (reader_key, article)
    DO UPDATE SET read_at = GREATEST(meter_reads.read_at, excluded.read_at)
"""
_UPSERT_COUNT = """
    INSERT INTO counters (day, name, value) VALUES (%s, %s, %s)
    ON CONFLICT (day, name) DO UPDATE SET value = counters.value + excluded.value
"""
_SELECT_COUNTS = """SELECT day, name, value FROM counters
    WHERE day >= %s AND day < %s ORDER BY day, name"""
_REDACT_CONSENTS = """UPDATE consent_ledger SET ip_hmac = NULL, user_agent = NULL
    WHERE user_id = %s AND (ip_hmac IS NOT NULL OR user_agent IS NOT NULL)"""
_REDACT_ACCEPTANCES = """UPDATE acceptances SET ip_hmac = NULL, user_agent = NULL
    WHERE user_id = %s AND (ip_hmac IS NOT NULL OR user_agent IS NOT NULL)"""
_INSERT_SESSION = """INSERT INTO sessions (id_hash, kind, subject, created_at, expires_at)
    VALUES (%s, %s, %s, %s, %s)"""
_SELECT_SESSION = """SELECT id_hash, kind, subject, created_at, expires_at
    FROM sessions WHERE id_hash = %s"""
_DELETE_SESSIONS = """DELETE FROM sessions
    WHERE kind = %s AND subject = %s AND id_hash IS DISTINCT FROM %s"""
_SELECT_DAILY = """SELECT day, action, method, sum(decisions) FROM consent_daily
    WHERE day >= %s AND day < %s GROUP BY day, action, method ORDER BY day, action, method"""
_SELECT_LATEST_SETS = """SELECT granted, count(*) FROM consent_latest
    WHERE last_at >= %s GROUP BY granted"""
_COUNT_LATEST_GPC = "SELECT count(*) FROM consent_latest WHERE gpc_at >= %s"
# The server meter's lock per reader or network key, namespaced by schema like the
# migration lock; a hash collision only makes two keys wait for each other.
_METER_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "'consentgate.meter:' || coalesce(current_schema(), '') || ':' || %s, 0))"
)
_METER_READS = """SELECT reader_key, article FROM meter_reads
    WHERE reader_key = ANY(%s) AND read_at >= %s"""
# One lock per schema, so tests (and tenants) in other schemas do not wait on each other.
_MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtextextended('consentgate.migrate:' || coalesce(current_schema(), ''), 0))"
)


# -- configuration ----------------------------------------------------------------------

# Our own URL query parameters; libpq would refuse them, so they are taken out.
_POOL_PARAMS = BREAKER_URL_PARAMS | {
    "pool_min_size",
    "pool_max_size",
    "pool_timeout",
    "statement_timeout",
    "reconnect_timeout",
}


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Pool sizes and timeouts (seconds). Set in the URL query or the constructor."""

    min_size: int = 1
    max_size: int = 10
    pool_timeout: float = 5.0
    connect_timeout: int = 5
    statement_timeout: float = 5.0
    # The pool retries a lost server with doubling delays until this much time has
    # passed; kept short so the delay never grows beyond a few seconds, and recovery
    # after an outage is quick (a new request starts a fresh attempt).
    reconnect_timeout: float = 10.0
    # The hard bound on every call, and the circuit breaker (storage/breaker.py).
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    breaker_failures: int = DEFAULT_BREAKER_FAILURES
    breaker_cooldown: float = DEFAULT_BREAKER_COOLDOWN

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError("need 0 <= pool_min_size <= pool_max_size and pool_max_size >= 1")
        timeouts = (self.pool_timeout, self.statement_timeout, self.reconnect_timeout)
        if min(timeouts) <= 0 or self.connect_timeout < 1:
            raise ValueError("PostgreSQL timeouts must be positive")
        # Checks call_timeout and the breaker's values with the same messages everywhere.
        BreakerSettings(self.call_timeout, self.breaker_failures, self.breaker_cooldown)

    @property
    def breaker(self) -> BreakerSettings:
        return BreakerSettings(self.call_timeout, self.breaker_failures, self.breaker_cooldown)


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """``(libpq URL, our parameters)``: the scheme normalised, our query keys removed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().split("+", 1)[0]
    if scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"not a PostgreSQL URL scheme: {parts.scheme!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in _POOL_PARAMS}
    rest = [(key, value) for key, value in query if key not in _POOL_PARAMS]
    # quote, not quote_plus: libpq decodes %XX but would keep a "+" as a plus sign.
    libpq_query = urlencode(rest, quote_via=quote)
    return urlunsplit(("postgresql", parts.netloc, parts.path, libpq_query, "")), ours


def _settings_from(ours: Mapping[str, str], overrides: Mapping[str, Any]) -> PoolSettings:
    def number(key: str) -> float | None:
        text = ours.get(key)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"PostgreSQL URL parameter {key} must be a number") from None

    values: dict[str, Any] = {}
    for field_name, key in (
        ("min_size", "pool_min_size"),
        ("max_size", "pool_max_size"),
        ("pool_timeout", "pool_timeout"),
        ("statement_timeout", "statement_timeout"),
        ("reconnect_timeout", "reconnect_timeout"),
        ("call_timeout", "call_timeout"),
        ("breaker_failures", "breaker_failures"),
        ("breaker_cooldown", "breaker_cooldown"),
    ):
        value = number(key)
        if value is not None:
            whole = field_name.endswith(("size", "failures"))
            values[field_name] = int(value) if whole else value
    values.update({key: value for key, value in overrides.items() if value is not None})
    return PoolSettings(**values)


# -- rows ---------------------------------------------------------------------------------


def _consent_params(rec: ConsentRecord) -> tuple[Any, ...]:
    return (
        rec.consent_id,
        rec.user_id,
        rec.action,
        list(rec.granted),
        list(rec.denied),
        rec.policy_version,
        rec.banner_text_sha256,
        rec.language,
        rec.region_mode,
        rec.method,
        rec.ip_hmac,
        rec.user_agent,
        rec.recorded_at,
    )


def _consent_from_row(row: Row) -> ConsentRecord:
    return ConsentRecord(
        id=row[0],
        consent_id=row[1],
        user_id=row[2],
        action=row[3],
        granted=tuple(row[4]),
        denied=tuple(row[5]),
        policy_version=row[6],
        banner_text_sha256=row[7],
        language=row[8],
        region_mode=row[9],
        method=row[10],
        ip_hmac=row[11],
        user_agent=row[12],
        recorded_at=row[13],
    )


def _acceptance_params(rec: AcceptanceRecord) -> tuple[Any, ...]:
    return (
        rec.user_id,
        rec.purpose,
        rec.policy_version,
        rec.policy_sha256,
        rec.granted,
        rec.method,
        rec.ip_hmac,
        rec.user_agent,
        rec.recorded_at,
    )


def _acceptance_from_row(row: Row) -> AcceptanceRecord:
    return AcceptanceRecord(
        id=row[0],
        user_id=row[1],
        purpose=row[2],
        policy_version=row[3],
        policy_sha256=row[4],
        granted=row[5],
        method=row[6],
        ip_hmac=row[7],
        user_agent=row[8],
        recorded_at=row[9],
    )


def _user_from_row(row: Row) -> User:
    return User(id=row[0], email=row[1], password_hash=row[2], created_at=row[3])


def _aware(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment


# -- schema -------------------------------------------------------------------------------


async def _schema_version(conn: Conn) -> int:
    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute("SELECT max(version) FROM schema_version")
    row = await cursor.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


async def _apply_migrations(conn: Conn, target: int) -> list[int]:
    """One transaction under the advisory lock: a second process waits, then finds
    nothing left to do."""
    async with conn.transaction():
        # Building an index on a large ledger may take longer than the per-request limit.
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute(_MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = await _schema_version(conn)
        if current > SCHEMA_VERSION:
            raise SchemaTooNewError(current, SCHEMA_VERSION)
        applied = list(range(current + 1, target + 1))
        for version in applied:
            for statement in _MIGRATIONS[version]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return applied


def _is_outage(exc: BaseException) -> bool:
    """A refused, broken or timed-out connection, not a constraint or a bad query."""
    cause = exc.__cause__
    return isinstance(
        cause, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout | OSError
    )


def _describe(exc: BaseException) -> str:
    # psycopg messages name host and port but never the password.
    return f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}"


class PostgresStorage:
    """The :class:`~consentgate.storage.base.Storage` backend on PostgreSQL.

    ``url`` is a libpq URL; the query may carry ``pool_min_size``, ``pool_max_size``,
    ``pool_timeout``, ``statement_timeout``, ``reconnect_timeout`` (seconds) beside
    libpq's own parameters (``connect_timeout`` defaults to 5, ``options=-csearch_path=…``
    selects a schema). Keyword arguments override the URL.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int | None = None,
        max_size: int | None = None,
        pool_timeout: float | None = None,
        statement_timeout: float | None = None,
        connect_timeout: int | None = None,
        reconnect_timeout: float | None = None,
        call_timeout: float | None = None,
        batch_size: int = 500,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._conninfo, ours = split_url(url)
        self._settings = _settings_from(
            ours,
            {
                "min_size": min_size,
                "max_size": max_size,
                "pool_timeout": pool_timeout,
                "statement_timeout": statement_timeout,
                "connect_timeout": connect_timeout,
                "reconnect_timeout": reconnect_timeout,
                "call_timeout": call_timeout,
            },
        )
        libpq_keys = {key for key, _ in parse_qsl(urlsplit(self._conninfo).query)}
        self._connect_timeout_in_url = "connect_timeout" in libpq_keys
        self._tcp_params = {k: v for k, v in _TCP_DEFAULTS.items() if k not in libpq_keys}
        self._breaker = CircuitBreaker(
            f"PostgreSQL {urlsplit(self._conninfo).hostname or 'localhost'}",
            self._settings.breaker,
            is_outage=_is_outage,
        )
        self._batch_size = batch_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._schema_checked = False

    @property
    def settings(self) -> PoolSettings:
        return self._settings

    async def __aenter__(self) -> PostgresStorage:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connections ----------------------------------------------------------------------
    async def open(self) -> None:
        await self._start_pool()
        if self._schema_checked:
            return
        try:
            if await self.schema_version() == 0:
                await self.migrate()
            current = await self.schema_version()
            if current < SCHEMA_VERSION:
                raise SchemaTooOldError(current, SCHEMA_VERSION)
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(current, SCHEMA_VERSION)
        except BaseException:
            await self.close()
            raise
        self._schema_checked = True

    async def _start_pool(self) -> None:
        """Start the pool without touching the schema (``migrate`` needs old ones)."""
        if self._pool is not None:
            return
        settings = self._settings
        kwargs: dict[str, Any] = dict(self._tcp_params)
        if not self._connect_timeout_in_url:
            kwargs["connect_timeout"] = settings.connect_timeout
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._conninfo,
            kwargs=kwargs,
            min_size=settings.min_size,
            max_size=settings.max_size,
            timeout=settings.pool_timeout,
            reconnect_timeout=settings.reconnect_timeout,
            configure=self._configure,
            check=AsyncConnectionPool.check_connection,
            name="consentgate",
            open=False,
        )
        # wait=False: a database that is down must fail the first request (StorageError),
        # not block start-up; the pool keeps trying in the background.
        await pool.open(wait=False)
        self._pool = pool
        self._schema_checked = False

    async def _configure(self, conn: Conn) -> None:
        # Autocommit: transactions are spelled out with conn.transaction() where needed.
        await conn.set_autocommit(True)
        milliseconds = str(int(self._settings.statement_timeout * 1000))
        await conn.execute("SELECT set_config('statement_timeout', %s, false)", (milliseconds,))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        self._schema_checked = False
        if pool is not None:
            await pool.close(timeout=self._settings.pool_timeout)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        pool = self._pool
        if pool is None:
            raise StorageError("PostgreSQL storage is not open")
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL storage failed: {_describe(exc)}") from exc
        except OSError as exc:
            raise StorageError(f"PostgreSQL storage failed: {_describe(exc)}") from exc

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def _call(self, job: Callable[[Conn], Awaitable[_T]], *, bounded: bool = True) -> _T:
        """Every database call goes through here: a pooled connection, the hard bound
        (call_timeout) and the circuit breaker. New methods must use it (or the
        _fetch* helpers) rather than _connection() directly."""

        async def attempt() -> _T:
            async with self._connection() as conn:
                return await job(conn)

        return await self._breaker.call(attempt, bounded=bounded)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def job(conn: Conn) -> list[Row]:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

        return await self._call(job)

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async def job(conn: Conn) -> Row | None:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()

        return await self._call(job)

    async def _rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        async def job(conn: Conn) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._call(job)

    # -- consent ledger -----------------------------------------------------------------
    async def record_consent(self, rec: ConsentRecord) -> ConsentRecord:
        if rec.id is not None:
            raise ValueError(f"consent record already stored with id {rec.id}")
        row = await self._fetchone(_INSERT_CONSENT, _consent_params(rec))
        if row is None:
            raise StorageError("PostgreSQL did not return the id of the new consent record")
        return replace(rec, id=int(row[0]))

    async def consent_history(self, consent_id: str) -> list[ConsentRecord]:
        return [
            _consent_from_row(row) for row in await self._fetchall(_SELECT_HISTORY, (consent_id,))
        ]

    async def latest_consent(self, consent_id: str) -> ConsentRecord | None:
        row = await self._fetchone(_SELECT_LATEST, (consent_id,))
        return _consent_from_row(row) if row is not None else None

    async def count_consents(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM consent_ledger")
        return int(row[0]) if row is not None else 0

    async def iter_consents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        async for row in self._pages(_CONSENT_PAGE, 13, since, until):
            yield _consent_from_row(row)

    async def _pages(
        self, page_sql: str, time_column: int, since: datetime | None, until: datetime | None
    ) -> AsyncIterator[Row]:
        """Keyset pages on (recorded_at, id); column 0 of every row is the id."""
        # ids start at 1, so (since, 0) is just below every row recorded at `since`.
        after: tuple[datetime, int] = (
            _aware(since, "since") if since is not None else _BEGINNING,
            0,
        )
        upper = _aware(until, "until") if until is not None else datetime.max.replace(tzinfo=UTC)
        while True:
            rows = await self._fetchall(page_sql, (*after, upper, self._batch_size))
            for row in rows:
                yield row
            if len(rows) < self._batch_size:
                return
            after = (rows[-1][time_column], rows[-1][0])

    async def consents_for_user(self, user_id: str) -> list[ConsentRecord]:
        return [
            _consent_from_row(row) for row in await self._fetchall(_SELECT_FOR_USER, (user_id,))
        ]

    # -- accounts ------------------------------------------------------------------------
    async def create_user(self, user: User, acceptances: Sequence[AcceptanceRecord] = ()) -> User:
        for rec in acceptances:
            if rec.id is not None:
                raise ValueError(f"acceptance record already stored with id {rec.id}")
        params = (user.id, user.email, email_key(user.email), user.password_hash, user.created_at)

        async def insert(conn: Conn) -> None:
            try:
                async with conn.transaction():
                    await conn.execute(_INSERT_USER, params)
                    for rec in acceptances:
                        await conn.execute(_INSERT_ACCEPTANCE, _acceptance_params(rec))
            except pg_errors.UniqueViolation as exc:
                if exc.diag.constraint_name == "users_by_email_key":
                    raise DuplicateUserError("this e-mail address is already registered") from exc
                raise

        await self._call(insert)
        return user

    async def user_by_email(self, email: str) -> User | None:
        row = await self._fetchone(_SELECT_USER_BY_EMAIL_KEY, (email_key(email),))
        return _user_from_row(row) if row is not None else None

    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._fetchone(_SELECT_USER_BY_ID, (user_id,))
        return _user_from_row(row) if row is not None else None

    async def update_password_hash(self, user_id: str, new_hash: str) -> None:
        sql = "UPDATE users SET password_hash = %s WHERE id = %s"
        if await self._rowcount(sql, (new_hash, user_id)) != 1:
            raise StorageError("no user with this id; password hash not updated")

    async def delete_user(self, user_id: str) -> bool:
        # With its sessions, in one transaction: an erased reader is signed out at once.
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM sessions WHERE kind = 'reader' AND subject = %s", (user_id,)
            )
            cursor = await conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
            return cursor.rowcount > 0

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, rec: SessionRecord) -> None:
        params = (rec.id_hash, rec.kind, rec.subject, rec.created_at, rec.expires_at)
        await self._rowcount(_INSERT_SESSION, params)

    async def session_by_hash(self, id_hash: str) -> SessionRecord | None:
        row = await self._fetchone(_SELECT_SESSION, (id_hash,))
        if row is None:
            return None
        return SessionRecord(
            id_hash=row[0], kind=row[1], subject=row[2], created_at=row[3], expires_at=row[4]
        )

    async def delete_session(self, id_hash: str) -> bool:
        return await self._rowcount("DELETE FROM sessions WHERE id_hash = %s", (id_hash,)) > 0

    async def delete_sessions(self, kind: str, subject: str, *, keep: str | None = None) -> int:
        return await self._rowcount(_DELETE_SESSIONS, (kind, subject, keep))

    async def prune_sessions(self, before: datetime) -> int:
        sql = "DELETE FROM sessions WHERE expires_at < %s"
        return await self._rowcount(sql, (_aware(before, "before"),))

    # -- dashboard rollups ---------------------------------------------------------------
    async def consent_daily(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, str, int]]:
        low = since if since is not None else date.min
        high = until if until is not None else date.max
        rows = await self._fetchall(_SELECT_DAILY, (low, high))
        return [(row[0], str(row[1]), str(row[2]), int(row[3])) for row in rows]

    async def latest_decisions(
        self, since: datetime
    ) -> tuple[list[tuple[tuple[str, ...], int]], int]:
        low = _aware(since, "since")
        async with self._connection() as conn:
            cursor = await conn.execute(_SELECT_LATEST_SETS, (low,))
            sets = [(tuple(str(c) for c in row[0]), int(row[1])) for row in await cursor.fetchall()]
            cursor = await conn.execute(_COUNT_LATEST_GPC, (low,))
            gpc = await cursor.fetchone()
        return sets, int(gpc[0]) if gpc is not None else 0

    async def record_acceptance(self, rec: AcceptanceRecord) -> AcceptanceRecord:
        if rec.id is not None:
            raise ValueError(f"acceptance record already stored with id {rec.id}")
        row = await self._fetchone(_INSERT_ACCEPTANCE, _acceptance_params(rec))
        if row is None:
            raise StorageError("PostgreSQL did not return the id of the new acceptance record")
        return replace(rec, id=int(row[0]))

    async def latest_acceptance(self, user_id: str, purpose: str) -> AcceptanceRecord | None:
        row = await self._fetchone(_SELECT_LATEST_ACCEPTANCE, (user_id, purpose))
        return _acceptance_from_row(row) if row is not None else None

    async def acceptances_for(self, user_id: str) -> list[AcceptanceRecord]:
        rows = await self._fetchall(_SELECT_ACCEPTANCES_FOR, (user_id,))
        return [_acceptance_from_row(row) for row in rows]

    async def iter_acceptances(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AcceptanceRecord]:
        async for row in self._pages(_ACCEPTANCE_PAGE, 9, since, until):
            yield _acceptance_from_row(row)

    async def redact_user_records(self, user_id: str) -> int:
        if not user_id:
            raise ValueError("redact_user_records needs a user id")

        async def redact(conn: Conn) -> int:
            async with conn.transaction():
                consents = await conn.execute(_REDACT_CONSENTS, (user_id,))
                acceptances = await conn.execute(_REDACT_ACCEPTANCES, (user_id,))
                return consents.rowcount + acceptances.rowcount

        return await self._call(redact)

    # -- the server-side meter -------------------------------------------------------------
    async def record_read(self, key: str, article: str, at: datetime) -> None:
        if not key or not article:
            raise ValueError("record_read needs a reader key and an article")
        await self._rowcount(_UPSERT_READ, (key, article, _aware(at, "at")))

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        sql = "SELECT article FROM meter_reads WHERE reader_key = %s AND read_at >= %s"
        rows = await self._fetchall(sql, (key, _aware(since, "since")))
        return frozenset(str(row[0]) for row in rows)

    async def meter_read(
        self,
        reader_key: str,
        network_key: str | None,
        article: str,
        at: datetime,
        since: datetime,
        reader_limit: int,
        network_limit: int,
    ) -> MeterOutcome:
        if not reader_key or not article:
            raise ValueError("meter_read needs a reader key and an article")
        keys = [reader_key] if network_key is None else [reader_key, network_key]
        params = (_aware(at, "at"), _aware(since, "since"))

        async def step(conn: Conn) -> MeterOutcome:
            async with conn.transaction():
                # One transaction-scoped lock per key, taken in sorted order (no
                # deadlocks): every other meter step of this reader or network, on any
                # worker or host, waits until this one has committed. Each statement
                # after the locks sees what the previous holder committed.
                for key in sorted(keys):
                    await conn.execute(_METER_LOCK, (key,))
                cursor = await conn.execute(_METER_READS, (keys, params[1]))
                seen: dict[str, set[str]] = {key: set() for key in keys}
                for key, read in await cursor.fetchall():
                    seen[key].add(read)
                outcome = meter_outcome(
                    frozenset(seen[reader_key]),
                    None if network_key is None else frozenset(seen[network_key]),
                    article,
                    reader_limit,
                    network_limit,
                )
                if outcome.recorded:
                    for key in keys:
                        await conn.execute(_UPSERT_READ, (key, article, params[0]))
                return outcome

        return await self._call(step)

    async def prune_reads(self, before: datetime) -> int:
        sql = "DELETE FROM meter_reads WHERE read_at < %s"
        return await self._rowcount(sql, (_aware(before, "before"),))

    async def ping(self) -> None:
        await self._fetchone("SELECT 1")

    # -- counters and schema -----------------------------------------------------------------
    async def add_counts(self, day: date, counts: Mapping[str, int]) -> None:
        checked = check_counts(counts)
        if not checked:
            return

        async def add(conn: Conn) -> None:
            async with conn.transaction():
                # Sorted: two workers adding the same names lock the rows in the same order.
                for name in sorted(checked):
                    await conn.execute(_UPSERT_COUNT, (day, name, checked[name]))

        await self._call(add)

    async def counts(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, int]]:
        low = since if since is not None else date.min
        high = until if until is not None else date.max
        rows = await self._fetchall(_SELECT_COUNTS, (low, high))
        return [(row[0], str(row[1]), int(row[2])) for row in rows]

    async def schema_version(self) -> int:
        await self._start_pool()
        return await self._call(_schema_version)

    async def migrate(self, target: int = SCHEMA_VERSION) -> list[int]:
        """See :meth:`Storage.migrate`; ``target`` (tests) stops at an older version."""
        if not 0 <= target <= SCHEMA_VERSION:
            raise ValueError(f"target must be between 0 and {SCHEMA_VERSION}")
        await self._start_pool()
        # Unbounded: an operator's migration may build indexes on a large ledger.
        return await self._call(lambda conn: _apply_migrations(conn, target), bounded=False)


if TYPE_CHECKING:

    def _implements_storage(storage: PostgresStorage) -> Storage:
        return storage  # mypy proves the backend implements the whole protocol
