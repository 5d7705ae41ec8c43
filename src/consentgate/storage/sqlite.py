"""SQLite storage: the embedded default, standard library only.

sqlite3 is blocking, so every statement runs on one dedicated worker thread. A single
thread serialises access to the one connection (no lock needed, no "database is
locked" between our own writers) and keeps ``:memory:`` databases alive between calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

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
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_CALL_TIMEOUT,
    BreakerSettings,
    CircuitBreaker,
    StorageTimeoutError,
)
from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    MeterOutcome,
    SessionRecord,
    User,
    email_key,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

SCHEMA_VERSION = 4
MEMORY = ":memory:"

_T = TypeVar("_T")

_SCHEMA_V1 = (
    """
    CREATE TABLE consent_ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        consent_id TEXT NOT NULL,
        user_id TEXT,
        action TEXT NOT NULL
            CHECK (action IN ('grant', 'reject', 'update', 'withdraw', 'gpc')),
        granted TEXT NOT NULL,
        denied TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        banner_text_sha256 TEXT NOT NULL,
        language TEXT NOT NULL,
        region_mode TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('form', 'js', 'api', 'gpc')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX consent_ledger_by_consent_id ON consent_ledger (consent_id, recorded_at)",
    "CREATE INDEX consent_ledger_by_recorded_at ON consent_ledger (recorded_at)",
    # The ledger is evidence of consent: rows are never changed or removed by the app.
    """
    CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
    BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END
    """,
    """
    CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
    BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END
    """,
)

# Version 2: accounts, their acceptances, and the server-side meter. Only new tables,
# so the migration from version 1 leaves every consent row as it was.
_SCHEMA_V2 = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX users_by_email_key ON users (email_key)",
    # No foreign key to users: sites with their own accounts record acceptances for
    # user ids we have never seen.
    """
    CREATE TABLE acceptances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        purpose TEXT NOT NULL CHECK (purpose IN ('privacy_policy', 'newsletter')),
        policy_version TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        granted INTEGER NOT NULL CHECK (granted IN (0, 1)),
        method TEXT NOT NULL
            CHECK (method IN ('registration', 're-acceptance', 'external', 'withdrawal')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX acceptances_by_user ON acceptances (user_id, purpose, recorded_at)",
    "CREATE INDEX acceptances_by_recorded_at ON acceptances (recorded_at)",
    # Acceptances are evidence (GDPR Art. 7(1)), like the consent ledger.
    """
    CREATE TRIGGER acceptances_no_update BEFORE UPDATE ON acceptances
    BEGIN SELECT RAISE(ABORT, 'acceptances is append-only'); END
    """,
    """
    CREATE TRIGGER acceptances_no_delete BEFORE DELETE ON acceptances
    BEGIN SELECT RAISE(ABORT, 'acceptances is append-only'); END
    """,
    """
    CREATE TABLE meter_reads (
        reader_key TEXT NOT NULL,
        article TEXT NOT NULL,
        read_at TEXT NOT NULL,
        PRIMARY KEY (reader_key, article)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX meter_reads_by_read_at ON meter_reads (read_at)",
)

_LEDGER_COLUMNS = (
    "id", "consent_id", "user_id", "action", "granted", "denied", "policy_version",
    "banner_text_sha256", "language", "region_mode", "method", "recorded_at",
)  # fmt: skip
_ACCEPTANCE_COLUMNS = (
    "id", "user_id", "purpose", "policy_version", "policy_sha256", "granted", "method",
    "recorded_at",
)  # fmt: skip


def _redaction_only_trigger(table: str, kept_columns: Sequence[str]) -> str:
    """An UPDATE trigger refusing everything but nulling ``ip_hmac`` and ``user_agent``.

    ``kept_columns`` must list every other column: a column added later and missing
    here could be changed freely, so migrations adding columns must recreate this.
    """
    unchanged = " AND ".join(f"NEW.{column} IS OLD.{column}" for column in kept_columns)
    return f"""
    CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
    WHEN NOT (NEW.ip_hmac IS NULL AND NEW.user_agent IS NULL AND {unchanged})
    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
    """


# Version 3: daily counters for the dashboard, and redaction (erasure requests) as the
# one change the append-only tables accept.
_SCHEMA_V3 = (
    """
    CREATE TABLE counters (
        day TEXT NOT NULL,
        name TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (day, name)
    ) WITHOUT ROWID
    """,
    # Erasure and subject-access requests look rows up by user.
    """
    CREATE INDEX consent_ledger_by_user ON consent_ledger (user_id, recorded_at)
    WHERE user_id IS NOT NULL
    """,
    "DROP TRIGGER consent_ledger_no_update",
    _redaction_only_trigger("consent_ledger", _LEDGER_COLUMNS),
    "DROP TRIGGER acceptances_no_update",
    _redaction_only_trigger("acceptances", _ACCEPTANCE_COLUMNS),
)

# Version 4: server-side sessions (readers and the dashboard), and rollups that the
# database keeps on every ledger insert, so the dashboard never scans the ledger:
# decisions per day, action and method, and each consent id's latest decision.
_SCHEMA_V4 = (
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('reader', 'admin')),
        subject TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX sessions_by_subject ON sessions (kind, subject)",
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    """
    CREATE TABLE consent_daily (
        day TEXT NOT NULL,
        action TEXT NOT NULL,
        method TEXT NOT NULL,
        decisions INTEGER NOT NULL,
        PRIMARY KEY (day, action, method)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE consent_latest (
        consent_id TEXT PRIMARY KEY,
        last_at TEXT NOT NULL,
        granted TEXT NOT NULL,
        gpc_at TEXT
    ) WITHOUT ROWID
    """,
    # Covering: the dashboard's rates read the index only.
    "CREATE INDEX consent_latest_by_last_at ON consent_latest (last_at, granted)",
    "CREATE INDEX consent_latest_by_gpc_at ON consent_latest (gpc_at) WHERE gpc_at IS NOT NULL",
    # The rows already in the ledger, once, at migration.
    """
    INSERT INTO consent_daily (day, action, method, decisions)
    SELECT substr(recorded_at, 1, 10), action, method, COUNT(*)
    FROM consent_ledger GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO consent_latest (consent_id, last_at, granted, gpc_at)
    SELECT consent_id, recorded_at, granted, gpc_at FROM (
        SELECT consent_id, recorded_at, granted,
            MAX(CASE WHEN action = 'gpc' THEN recorded_at END)
                OVER (PARTITION BY consent_id) AS gpc_at,
            ROW_NUMBER() OVER (PARTITION BY consent_id ORDER BY recorded_at DESC, id DESC) AS rn
        FROM consent_ledger
    ) WHERE rn = 1
    """,
    # In the inserting transaction: a row and its rollups are written together.
    # A row older than the id's latest (two workers, clock skew) leaves the latest be.
    """
    CREATE TRIGGER consent_ledger_rollups AFTER INSERT ON consent_ledger
    BEGIN
        INSERT INTO consent_daily (day, action, method, decisions)
        VALUES (substr(NEW.recorded_at, 1, 10), NEW.action, NEW.method, 1)
        ON CONFLICT (day, action, method) DO UPDATE SET decisions = decisions + 1;
        INSERT INTO consent_latest (consent_id, last_at, granted, gpc_at)
        VALUES (NEW.consent_id, NEW.recorded_at, NEW.granted,
            CASE WHEN NEW.action = 'gpc' THEN NEW.recorded_at END)
        ON CONFLICT (consent_id) DO UPDATE SET
            granted = CASE WHEN excluded.last_at >= last_at THEN excluded.granted
                ELSE granted END,
            last_at = MAX(last_at, excluded.last_at),
            gpc_at = CASE WHEN excluded.gpc_at IS NULL THEN gpc_at
                WHEN gpc_at IS NULL THEN excluded.gpc_at
                ELSE MAX(gpc_at, excluded.gpc_at) END;
    END
    """,
)

# version -> statements that bring the schema from version - 1 to version.
_MIGRATIONS: dict[int, Sequence[str]] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
}

_INSERT = """
    INSERT INTO consent_ledger (
        consent_id, user_id, action, granted, denied, policy_version, banner_text_sha256,
        language, region_mode, method, ip_hmac, user_agent, recorded_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_HISTORY = """
    SELECT id, consent_id, user_id, action, granted, denied, policy_version,
        banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at
    FROM consent_ledger WHERE consent_id = ? ORDER BY recorded_at, id
"""
_SELECT_LATEST = """
    SELECT id, consent_id, user_id, action, granted, denied, policy_version,
        banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at
    FROM consent_ledger WHERE consent_id = ? ORDER BY recorded_at DESC, id DESC LIMIT 1
"""
_SELECT_FOR_USER = """
    SELECT id, consent_id, user_id, action, granted, denied, policy_version,
        banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at
    FROM consent_ledger WHERE user_id = ? ORDER BY recorded_at, id
"""
# Keyset pagination on (recorded_at, id): no OFFSET scans, no duplicates or gaps when
# rows are appended while an export runs.
_SELECT_PAGE = """
    SELECT id, consent_id, user_id, action, granted, denied, policy_version,
        banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at
    FROM consent_ledger WHERE (recorded_at, id) > (?, ?)
    ORDER BY recorded_at, id LIMIT ?
"""
_SELECT_PAGE_UNTIL = """
    SELECT id, consent_id, user_id, action, granted, denied, policy_version,
        banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at
    FROM consent_ledger WHERE (recorded_at, id) > (?, ?) AND recorded_at < ?
    ORDER BY recorded_at, id LIMIT ?
"""

_SELECT_USER_BY_EMAIL_KEY = (
    "SELECT id, email, password_hash, created_at FROM users WHERE email_key = ?"
)
_SELECT_USER_BY_ID = "SELECT id, email, password_hash, created_at FROM users WHERE id = ?"
_INSERT_USER = (
    "INSERT INTO users (id, email, email_key, password_hash, created_at) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_ACCEPTANCE = """
    INSERT INTO acceptances (
        user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_LATEST_ACCEPTANCE = """
    SELECT id, user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    FROM acceptances WHERE user_id = ? AND purpose = ?
    ORDER BY recorded_at DESC, id DESC LIMIT 1
"""
_SELECT_ACCEPTANCES_FOR = """
    SELECT id, user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    FROM acceptances WHERE user_id = ? ORDER BY recorded_at, id
"""
_SELECT_ACCEPTANCE_PAGE = """
    SELECT id, user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    FROM acceptances WHERE (recorded_at, id) > (?, ?)
    ORDER BY recorded_at, id LIMIT ?
"""
_SELECT_ACCEPTANCE_PAGE_UNTIL = """
    SELECT id, user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    FROM acceptances WHERE (recorded_at, id) > (?, ?) AND recorded_at < ?
    ORDER BY recorded_at, id LIMIT ?
"""
# MAX keeps the newest time when reads arrive out of order (two workers, one reader).
_UPSERT_READ = """
    INSERT INTO meter_reads (reader_key, article, read_at) VALUES (?, ?, ?)
    ON CONFLICT (reader_key, article) DO UPDATE SET read_at = MAX(read_at, excluded.read_at)
"""

Row = tuple[Any, ...]


def format_timestamp(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text ending in 'Z', so text order is time order."""
    if moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None)
    return naive_utc.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _record_params(rec: ConsentRecord) -> tuple[Any, ...]:
    return (
        rec.consent_id,
        rec.user_id,
        rec.action,
        json.dumps(list(rec.granted)),
        json.dumps(list(rec.denied)),
        rec.policy_version,
        rec.banner_text_sha256,
        rec.language,
        rec.region_mode,
        rec.method,
        rec.ip_hmac,
        rec.user_agent,
        format_timestamp(rec.recorded_at),
    )


def _categories(json_text: str) -> tuple[str, ...]:
    return tuple(str(category) for category in json.loads(json_text))


def _record_from_row(row: Row) -> ConsentRecord:
    return ConsentRecord(
        id=row[0],
        consent_id=row[1],
        user_id=row[2],
        action=row[3],
        granted=_categories(row[4]),
        denied=_categories(row[5]),
        policy_version=row[6],
        banner_text_sha256=row[7],
        language=row[8],
        region_mode=row[9],
        method=row[10],
        ip_hmac=row[11],
        user_agent=row[12],
        recorded_at=parse_timestamp(row[13]),
    )


def _acceptance_params(rec: AcceptanceRecord) -> tuple[Any, ...]:
    return (
        rec.user_id,
        rec.purpose,
        rec.policy_version,
        rec.policy_sha256,
        int(rec.granted),
        rec.method,
        rec.ip_hmac,
        rec.user_agent,
        format_timestamp(rec.recorded_at),
    )


def _acceptance_from_row(row: Row) -> AcceptanceRecord:
    return AcceptanceRecord(
        id=row[0],
        user_id=row[1],
        purpose=row[2],
        policy_version=row[3],
        policy_sha256=row[4],
        granted=bool(row[5]),
        method=row[6],
        ip_hmac=row[7],
        user_agent=row[8],
        recorded_at=parse_timestamp(row[9]),
    )


_INSERT_SESSION = (
    "INSERT INTO sessions (id_hash, kind, subject, created_at, expires_at) VALUES (?, ?, ?, ?, ?)"
)
_SELECT_SESSION = (
    "SELECT id_hash, kind, subject, created_at, expires_at FROM sessions WHERE id_hash = ?"
)
_SELECT_DAILY = """SELECT day, action, method, decisions FROM consent_daily
    WHERE day >= ? AND day < ? ORDER BY day, action, method"""
_SELECT_LATEST_SETS = """SELECT granted, COUNT(*) FROM consent_latest
    WHERE last_at >= ? GROUP BY granted"""
_COUNT_LATEST_GPC = "SELECT COUNT(*) FROM consent_latest WHERE gpc_at >= ?"


def _session_from_row(row: Row) -> SessionRecord:
    return SessionRecord(
        id_hash=row[0],
        kind=row[1],
        subject=row[2],
        created_at=parse_timestamp(row[3]),
        expires_at=parse_timestamp(row[4]),
    )


def _delete_user(conn: sqlite3.Connection, user_id: str) -> bool:
    """The account and its sessions together: an erased reader is signed out at once."""

    def delete() -> bool:
        conn.execute("DELETE FROM sessions WHERE kind = 'reader' AND subject = ?", (user_id,))
        return bool(conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount)

    return _in_write_transaction(conn, delete)


def _latest_decisions(
    conn: sqlite3.Connection, since: str
) -> tuple[list[tuple[tuple[str, ...], int]], int]:
    sets = [
        (_categories(granted), int(n))
        for granted, n in conn.execute(_SELECT_LATEST_SETS, (since,)).fetchall()
    ]
    gpc = conn.execute(_COUNT_LATEST_GPC, (since,)).fetchone()
    return sets, int(gpc[0])


def _user_from_row(row: Row) -> User:
    return User(id=row[0], email=row[1], password_hash=row[2], created_at=parse_timestamp(row[3]))


def _insert_user(
    conn: sqlite3.Connection, user: User, acceptances: Sequence[AcceptanceRecord]
) -> None:
    """One transaction: the user and its acceptances are stored together or not at all."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            _INSERT_USER,
            (
                user.id,
                user.email,
                email_key(user.email),
                user.password_hash,
                format_timestamp(user.created_at),
            ),
        )
        for rec in acceptances:
            conn.execute(_INSERT_ACCEPTANCE, _acceptance_params(rec))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _is_duplicate_email(exc: sqlite3.IntegrityError) -> bool:
    return "users.email_key" in str(exc)


_UPSERT_COUNT = """
    INSERT INTO counters (day, name, value) VALUES (?, ?, ?)
    ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value
"""
_REDACT = (
    "UPDATE {table} SET ip_hmac = NULL, user_agent = NULL"
    " WHERE user_id = ? AND (ip_hmac IS NOT NULL OR user_agent IS NOT NULL)"
)


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _in_write_transaction(conn: sqlite3.Connection, job: Callable[[], _T]) -> _T:
    # IMMEDIATE takes the write lock before reading the version, so two processes
    # cannot both decide to apply the same migration.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = job()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _apply_migrations(conn: sqlite3.Connection, target: int) -> list[int]:
    """Inside a write transaction: bring the schema up to ``target``."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    current = _schema_version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(current, SCHEMA_VERSION)
    applied = list(range(current + 1, target + 1))
    for version in applied:
        for statement in _MIGRATIONS[version]:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
            (version, format_timestamp(datetime.now(UTC))),
        )
    return applied


def _migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> list[int]:
    return _in_write_transaction(conn, lambda: _apply_migrations(conn, target))


def _check_schema(conn: sqlite3.Connection) -> None:
    """Create the latest schema in an empty database; refuse any other version."""

    def check() -> None:
        current = _schema_version(conn)
        if current == 0:
            _apply_migrations(conn, SCHEMA_VERSION)
        elif current < SCHEMA_VERSION:
            raise SchemaTooOldError(current, SCHEMA_VERSION)
        elif current > SCHEMA_VERSION:
            raise SchemaTooNewError(current, SCHEMA_VERSION)

    _in_write_transaction(conn, check)


def _redact(conn: sqlite3.Connection, user_id: str) -> int:
    def redact() -> int:
        return sum(
            conn.execute(_REDACT.format(table=table), (user_id,)).rowcount
            for table in ("consent_ledger", "acceptances")
        )

    return _in_write_transaction(conn, redact)


def _add_counts(conn: sqlite3.Connection, day: date, counts: Mapping[str, int]) -> None:
    def add() -> None:
        conn.executemany(
            _UPSERT_COUNT, [(day.isoformat(), name, value) for name, value in counts.items()]
        )

    _in_write_transaction(conn, add)


def _reads_since(conn: sqlite3.Connection, key: str, since: str) -> frozenset[str]:
    sql = "SELECT article FROM meter_reads WHERE reader_key = ? AND read_at >= ?"
    return frozenset(str(row[0]) for row in conn.execute(sql, (key, since)).fetchall())


def _is_outage(exc: BaseException) -> bool:
    """A locked, full, read-only or broken database; not a constraint or a usage error."""
    cause = exc.__cause__
    if isinstance(cause, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        return False
    return isinstance(cause, sqlite3.Error | OSError)


class _Ticket:
    """One call on the worker thread, which its caller may stop waiting for.

    An abandoned call that has not started yet is skipped; one that is running is
    interrupted (``sqlite3.Connection.interrupt`` is safe from another thread), so the
    single worker does not stay busy for callers who are gone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._running = False

    def work(self, job: Callable[[sqlite3.Connection], _T], conn: sqlite3.Connection) -> _T:
        with self._lock:
            if self._abandoned:
                raise sqlite3.OperationalError("skipped: the caller stopped waiting")
            self._running = True
        try:
            return job(conn)
        finally:
            with self._lock:
                self._running = False

    def abandon(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._abandoned = True
            if self._running:
                conn.interrupt()


def _enable_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """WAL lets exports read while visitors' consents are written.

    Switching to WAL needs an exclusive lock and SQLite does not wait for it (no busy
    handler): when several processes open a new file at once, retry until the timeout.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteStorage:
    """The :class:`~consentgate.storage.base.Storage` backend on a SQLite file.

    ``path`` may be ``":memory:"`` (for tests); otherwise its parent directory is
    created on :meth:`open`. Relative paths are relative to the working directory.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        batch_size: int = 500,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        breaker_failures: float = DEFAULT_BREAKER_FAILURES,
        breaker_cooldown: float = DEFAULT_BREAKER_COOLDOWN,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not busy_timeout > 0:
            raise ValueError("busy_timeout must be a positive number of seconds")
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        # A lock held by another connection is waited for busy_timeout at most, and
        # every call is bounded by call_timeout as well (the worker thread may also be
        # queued behind a stuck statement); repeated outages open the breaker.
        self._breaker = CircuitBreaker(
            f"SQLite database {os.path.basename(self._path)!r}",
            BreakerSettings(call_timeout, int(breaker_failures), breaker_cooldown),
            is_outage=_is_outage,
        )
        self._batch_size = batch_size
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._schema_checked = False

    @property
    def path(self) -> str:
        return self._path

    async def __aenter__(self) -> SQLiteStorage:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        await self._connect_once()
        if not self._schema_checked:
            await self._run(_check_schema)
            self._schema_checked = True

    async def _connect_once(self) -> None:
        """Connect without looking at the schema (``migrate`` must work on old ones)."""
        if self._connection is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentgate-sqlite")
        try:
            connection = await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except (sqlite3.Error, OSError) as exc:
            executor.shutdown(wait=False)
            raise StorageError(f"cannot open SQLite database {self._path!r}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor, self._connection = executor, connection
        self._schema_checked = False

    def _connect(self) -> sqlite3.Connection:
        if self._path != MEMORY:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; transactions are spelled out where needed.
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            _enable_wal(connection, self._busy_timeout)
            # The ledger is evidence: a consent acknowledged to the visitor must
            # survive a power cut, so sync the WAL on every commit.
            connection.execute("PRAGMA synchronous = FULL")
        except BaseException:
            connection.close()
            raise
        return connection

    async def close(self) -> None:
        connection, executor = self._connection, self._executor
        self._connection = self._executor = None
        if connection is None or executor is None:
            return
        try:
            # Queued statements run first: the worker handles jobs in order.
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot close SQLite database {self._path!r}: {exc}") from exc
        finally:
            executor.shutdown(wait=False)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def _run(self, job: Callable[[sqlite3.Connection], _T], *, bounded: bool = True) -> _T:
        connection, executor = self._connection, self._executor
        if connection is None or executor is None:
            raise StorageError("SQLite storage is not open")
        ticket = _Ticket()

        async def attempt() -> _T:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(executor, ticket.work, job, connection)
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"SQLite storage failed: {exc}") from exc
            except RuntimeError as exc:
                # The executor refuses jobs once close() has shut it down.
                raise StorageError(f"SQLite storage is closed: {exc}") from exc

        try:
            return await self._breaker.call(attempt, bounded=bounded)
        except StorageTimeoutError:
            ticket.abandon(connection)
            raise

    async def record_consent(self, rec: ConsentRecord) -> ConsentRecord:
        if rec.id is not None:
            raise ValueError(f"consent record already stored with id {rec.id}")
        params = _record_params(rec)

        def insert(conn: sqlite3.Connection) -> int | None:
            return conn.execute(_INSERT, params).lastrowid

        row_id = await self._run(insert)
        if row_id is None:
            raise StorageError("SQLite did not report the id of the new consent record")
        return replace(rec, id=row_id)

    async def consent_history(self, consent_id: str) -> list[ConsentRecord]:
        rows = await self._run(lambda conn: conn.execute(_SELECT_HISTORY, (consent_id,)).fetchall())
        return [_record_from_row(row) for row in rows]

    async def latest_consent(self, consent_id: str) -> ConsentRecord | None:
        row = await self._run(lambda conn: conn.execute(_SELECT_LATEST, (consent_id,)).fetchone())
        return _record_from_row(row) if row is not None else None

    async def count_consents(self) -> int:
        row = await self._run(
            lambda conn: conn.execute("SELECT COUNT(*) FROM consent_ledger").fetchone()
        )
        return int(row[0])

    async def iter_consents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        async for row in self._iter_rows(_SELECT_PAGE, _SELECT_PAGE_UNTIL, 13, since, until):
            yield _record_from_row(row)

    async def _iter_rows(
        self,
        page_sql: str,
        page_until_sql: str,
        time_column: int,
        since: datetime | None,
        until: datetime | None,
    ) -> AsyncIterator[Row]:
        """Keyset pages on (recorded_at, id); column 0 of every row is the id."""
        # ids start at 1, so (since, 0) is just below every row recorded at `since`.
        after: tuple[str, int] = (format_timestamp(since) if since is not None else "", 0)
        upper = format_timestamp(until) if until is not None else None
        while True:
            rows = await self._run(self._page_reader(page_sql, page_until_sql, after, upper))
            for row in rows:
                yield row
            if len(rows) < self._batch_size:
                return
            after = (rows[-1][time_column], rows[-1][0])

    def _page_reader(
        self, page_sql: str, page_until_sql: str, after: tuple[str, int], upper: str | None
    ) -> Callable[[sqlite3.Connection], list[Row]]:
        def read(conn: sqlite3.Connection) -> list[Row]:
            if upper is None:
                return conn.execute(page_sql, (*after, self._batch_size)).fetchall()
            return conn.execute(page_until_sql, (*after, upper, self._batch_size)).fetchall()

        return read

    # -- accounts --------------------------------------------------------------------
    async def create_user(self, user: User, acceptances: Sequence[AcceptanceRecord] = ()) -> User:
        for rec in acceptances:
            if rec.id is not None:
                raise ValueError(f"acceptance record already stored with id {rec.id}")
        try:
            await self._run(lambda conn: _insert_user(conn, user, acceptances))
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.IntegrityError) and _is_duplicate_email(cause):
                raise DuplicateUserError("this e-mail address is already registered") from cause
            raise
        return user

    async def user_by_email(self, email: str) -> User | None:
        key = email_key(email)
        row = await self._run(
            lambda conn: conn.execute(_SELECT_USER_BY_EMAIL_KEY, (key,)).fetchone()
        )
        return _user_from_row(row) if row is not None else None

    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._run(lambda conn: conn.execute(_SELECT_USER_BY_ID, (user_id,)).fetchone())
        return _user_from_row(row) if row is not None else None

    async def update_password_hash(self, user_id: str, new_hash: str) -> None:
        sql = "UPDATE users SET password_hash = ? WHERE id = ?"
        changed = await self._run(lambda conn: conn.execute(sql, (new_hash, user_id)).rowcount)
        if changed != 1:
            raise StorageError("no user with this id; password hash not updated")

    async def record_acceptance(self, rec: AcceptanceRecord) -> AcceptanceRecord:
        if rec.id is not None:
            raise ValueError(f"acceptance record already stored with id {rec.id}")
        params = _acceptance_params(rec)
        row_id = await self._run(lambda conn: conn.execute(_INSERT_ACCEPTANCE, params).lastrowid)
        if row_id is None:
            raise StorageError("SQLite did not report the id of the new acceptance record")
        return replace(rec, id=row_id)

    async def latest_acceptance(self, user_id: str, purpose: str) -> AcceptanceRecord | None:
        row = await self._run(
            lambda conn: conn.execute(_SELECT_LATEST_ACCEPTANCE, (user_id, purpose)).fetchone()
        )
        return _acceptance_from_row(row) if row is not None else None

    async def acceptances_for(self, user_id: str) -> list[AcceptanceRecord]:
        rows = await self._run(
            lambda conn: conn.execute(_SELECT_ACCEPTANCES_FOR, (user_id,)).fetchall()
        )
        return [_acceptance_from_row(row) for row in rows]

    async def iter_acceptances(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AcceptanceRecord]:
        pages = self._iter_rows(
            _SELECT_ACCEPTANCE_PAGE, _SELECT_ACCEPTANCE_PAGE_UNTIL, 9, since, until
        )
        async for row in pages:
            yield _acceptance_from_row(row)

    # -- the server-side meter -------------------------------------------------------
    async def record_read(self, key: str, article: str, at: datetime) -> None:
        if not key or not article:
            raise ValueError("record_read needs a reader key and an article")
        params = (key, article, format_timestamp(at))
        await self._run(lambda conn: conn.execute(_UPSERT_READ, params))

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        sql = "SELECT article FROM meter_reads WHERE reader_key = ? AND read_at >= ?"
        params = (key, format_timestamp(since))
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
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
        at_text, since_text = format_timestamp(at), format_timestamp(since)
        keys = [reader_key] if network_key is None else [reader_key, network_key]

        def step(conn: sqlite3.Connection) -> MeterOutcome:
            def check_and_record() -> MeterOutcome:
                reader_seen = _reads_since(conn, reader_key, since_text)
                network_seen = (
                    None if network_key is None else _reads_since(conn, network_key, since_text)
                )
                outcome = meter_outcome(
                    reader_seen, network_seen, article, reader_limit, network_limit
                )
                if outcome.recorded:
                    conn.executemany(_UPSERT_READ, [(key, article, at_text) for key in keys])
                return outcome

            # BEGIN IMMEDIATE: the write lock is taken before the counts are read, so
            # other workers' meter steps on this file wait, and a burst cannot overshoot.
            return _in_write_transaction(conn, check_and_record)

        return await self._run(step)

    async def prune_reads(self, before: datetime) -> int:
        sql = "DELETE FROM meter_reads WHERE read_at < ?"
        params = (format_timestamp(before),)
        return await self._run(lambda conn: conn.execute(sql, params).rowcount)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- operators: counters, erasure, schema ------------------------------------------
    async def add_counts(self, day: date, counts: Mapping[str, int]) -> None:
        checked = check_counts(counts)
        if checked:
            await self._run(lambda conn: _add_counts(conn, day, checked))

    async def counts(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, int]]:
        # ISO dates sort as text; "" and "~" bound every date when a side is open.
        low = since.isoformat() if since is not None else ""
        high = until.isoformat() if until is not None else "~"
        sql = "SELECT day, name, value FROM counters WHERE day >= ? AND day < ? ORDER BY day, name"
        rows = await self._run(lambda conn: conn.execute(sql, (low, high)).fetchall())
        return [(date.fromisoformat(row[0]), str(row[1]), int(row[2])) for row in rows]

    async def delete_user(self, user_id: str) -> bool:
        return await self._run(lambda conn: _delete_user(conn, user_id))

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, rec: SessionRecord) -> None:
        params = (
            rec.id_hash,
            rec.kind,
            rec.subject,
            format_timestamp(rec.created_at),
            format_timestamp(rec.expires_at),
        )
        await self._run(lambda conn: conn.execute(_INSERT_SESSION, params))

    async def session_by_hash(self, id_hash: str) -> SessionRecord | None:
        row = await self._run(lambda conn: conn.execute(_SELECT_SESSION, (id_hash,)).fetchone())
        return _session_from_row(row) if row is not None else None

    async def delete_session(self, id_hash: str) -> bool:
        sql = "DELETE FROM sessions WHERE id_hash = ?"
        return bool(await self._run(lambda conn: conn.execute(sql, (id_hash,)).rowcount))

    async def delete_sessions(self, kind: str, subject: str, *, keep: str | None = None) -> int:
        sql = "DELETE FROM sessions WHERE kind = ? AND subject = ? AND id_hash IS NOT ?"
        params = (kind, subject, keep)
        return int(await self._run(lambda conn: conn.execute(sql, params).rowcount))

    async def prune_sessions(self, before: datetime) -> int:
        sql = "DELETE FROM sessions WHERE expires_at < ?"
        params = (format_timestamp(before),)
        return int(await self._run(lambda conn: conn.execute(sql, params).rowcount))

    # -- dashboard rollups ---------------------------------------------------------------
    async def consent_daily(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, str, int]]:
        low = since.isoformat() if since is not None else ""
        high = until.isoformat() if until is not None else "~"
        rows = await self._run(lambda conn: conn.execute(_SELECT_DAILY, (low, high)).fetchall())
        return [(date.fromisoformat(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    async def latest_decisions(
        self, since: datetime
    ) -> tuple[list[tuple[tuple[str, ...], int]], int]:
        low = format_timestamp(since)
        return await self._run(lambda conn: _latest_decisions(conn, low))

    async def redact_user_records(self, user_id: str) -> int:
        if not user_id:
            raise ValueError("redact_user_records needs a user id")
        return await self._run(lambda conn: _redact(conn, user_id))

    async def consents_for_user(self, user_id: str) -> list[ConsentRecord]:
        rows = await self._run(lambda conn: conn.execute(_SELECT_FOR_USER, (user_id,)).fetchall())
        return [_record_from_row(row) for row in rows]

    async def schema_version(self) -> int:
        await self._connect_once()
        return await self._run(_schema_version)

    async def migrate(self, target: int = SCHEMA_VERSION) -> list[int]:
        """See :meth:`Storage.migrate`; ``target`` (tests) stops at an older version."""
        if not 0 <= target <= SCHEMA_VERSION:
            raise ValueError(f"target must be between 0 and {SCHEMA_VERSION}")
        await self._connect_once()
        # Unbounded: an operator's migration may rebuild indexes on a large ledger.
        applied = await self._run(lambda conn: _migrate(conn, target), bounded=False)
        return applied


if TYPE_CHECKING:

    def _implements_storage(storage: SQLiteStorage) -> Storage:
        return storage  # mypy proves the backend implements the whole protocol
