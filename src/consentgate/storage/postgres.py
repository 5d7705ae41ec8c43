"""PostgreSQL storage: psycopg 3 (async) behind a ``psycopg_pool.AsyncConnectionPool``.

For sites with several workers or hosts. Needs the ``postgres`` extra
(``pip install 'consentgate[postgres]'``); :func:`~consentgate.storage.storage_from_url`
imports this module only for ``postgresql://`` and ``postgres://`` URLs.

Failure must be quick, never a hang: a visitor's consent click waits on this store.
So connecting has a timeout (``connect_timeout``), waiting for a pooled connection has
one (``pool_timeout``), every statement has one (``statement_timeout``, set on each new
connection), and each connection is checked as it leaves the pool, so one that died
while idle (a database restart) is replaced instead of failing the request. The
statements are in :mod:`consentgate.storage.sql.store`, written once for every SQL backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import AsyncRawCursor
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from consentgate.storage.base import StorageError
from consentgate.storage.breaker import (
    BREAKER_URL_PARAMS,
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_CALL_TIMEOUT,
    BreakerSettings,
    CircuitBreaker,
)
from consentgate.storage.sql.dialect import POSTGRES, Dialect
from consentgate.storage.sql.driver import Job, Result
from consentgate.storage.sql.schema_postgres import SCHEMA_VERSION
from consentgate.storage.sql.store import SQLStorage

__all__ = ["SCHEMA_VERSION", "PoolSettings", "PostgresDriver", "PostgresStorage", "split_url"]

Conn = psycopg.AsyncConnection[Any]
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


def _is_outage(exc: BaseException) -> bool:
    """A refused, broken or timed-out connection, not a constraint or a bad query."""
    cause = exc.__cause__
    return isinstance(
        cause, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout | OSError
    )


def _describe(exc: BaseException) -> str:
    # psycopg messages name host and port but never the password.
    return f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}"


async def _drive(conn: Conn, job: Job[_T]) -> _T:
    """Step ``job`` to its end on one connection."""
    try:
        statement = next(job)
        while True:
            cursor = AsyncRawCursor(conn) if statement.numbered else conn.cursor()
            if statement.many:
                await cursor.executemany(statement.sql, statement.params or ())
            else:
                await cursor.execute(statement.sql, statement.params)
            rows = await cursor.fetchall() if cursor.description is not None else []
            statement = job.send(Result(rows, cursor.rowcount))
    except StopIteration as stop:
        value: _T = stop.value
        return value


class PostgresDriver:
    """A pool of connections to one PostgreSQL database, bounded and breakered.

    ``url`` is a libpq URL; its query may carry our pool parameters (see
    :class:`PoolSettings`) beside libpq's own. Keyword overrides win over the URL.
    """

    dialect: Dialect = POSTGRES

    def __init__(self, url: str, overrides: Mapping[str, Any] | None = None) -> None:
        self._conninfo, ours = split_url(url)
        self._settings = _settings_from(ours, overrides or {})
        libpq_keys = {key for key, _ in parse_qsl(urlsplit(self._conninfo).query)}
        self._connect_timeout_in_url = "connect_timeout" in libpq_keys
        self._tcp_params = {k: v for k, v in _TCP_DEFAULTS.items() if k not in libpq_keys}
        self._breaker = CircuitBreaker(
            f"PostgreSQL {urlsplit(self._conninfo).hostname or 'localhost'}",
            self._settings.breaker,
            is_outage=_is_outage,
        )
        self._pool: AsyncConnectionPool[Conn] | None = None

    @property
    def settings(self) -> PoolSettings:
        return self._settings

    @property
    def pool(self) -> AsyncConnectionPool[Conn] | None:
        return self._pool

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def connect(self) -> None:
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

    async def _configure(self, conn: Conn) -> None:
        # Autocommit: transactions are spelled out with conn.transaction() where needed.
        await conn.set_autocommit(True)
        milliseconds = str(int(self._settings.statement_timeout * 1000))
        await conn.execute("SELECT set_config('statement_timeout', %s, false)", (milliseconds,))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
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

    async def run(
        self, job: Callable[[], Job[_T]], *, transaction: bool = False, bounded: bool = True
    ) -> _T:
        """Every database call goes through here: a pooled connection, the hard bound
        (call_timeout) and the circuit breaker."""

        async def attempt() -> _T:
            async with self._connection() as conn:
                if not transaction:
                    return await _drive(conn, job())
                async with conn.transaction():
                    return await _drive(conn, job())

        return await self._breaker.call(attempt, bounded=bounded)

    def is_duplicate_email(self, error: BaseException | None) -> bool:
        return (
            isinstance(error, pg_errors.UniqueViolation)
            and error.diag.constraint_name == "users_by_email_key"
        )


class PostgresStorage(SQLStorage):
    """The :class:`~consentgate.storage.ports.Storage` backend on PostgreSQL.

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
        overrides = {
            "min_size": min_size,
            "max_size": max_size,
            "pool_timeout": pool_timeout,
            "statement_timeout": statement_timeout,
            "connect_timeout": connect_timeout,
            "reconnect_timeout": reconnect_timeout,
            "call_timeout": call_timeout,
        }
        self._postgres = PostgresDriver(url, overrides)
        super().__init__(self._postgres, batch_size=batch_size)

    @property
    def settings(self) -> PoolSettings:
        return self._postgres.settings
