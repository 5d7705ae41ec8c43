"""SQLite storage: the embedded default, standard library only.

sqlite3 is blocking, so every job runs on one dedicated worker thread. A single
thread serialises access to the one connection (no lock needed, no "database is
locked" between our own writers), keeps ``:memory:`` databases alive between calls,
and runs a whole transaction in one hop to the thread. The statements themselves are
in :mod:`consentgate.storage.sql.store`, written once for every SQL backend.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from consentgate.storage.base import StorageError
from consentgate.storage.breaker import (
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_CALL_TIMEOUT,
    BreakerSettings,
    CircuitBreaker,
    StorageTimeoutError,
)
from consentgate.storage.sql.dialect import SQLITE, Dialect
from consentgate.storage.sql.driver import Job, Result
from consentgate.storage.sql.schema_sqlite import SCHEMA_VERSION
from consentgate.storage.sql.store import SQLStorage

__all__ = ["SCHEMA_VERSION", "SQLiteDriver", "SQLiteStorage"]

MEMORY = ":memory:"
# RETURNING (3.35) gives every backend the same INSERT; older libraries are refused
# with a message rather than a syntax error on the first consent.
_MINIMUM_SQLITE = (3, 35, 0)

_T = TypeVar("_T")


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


def _drive(conn: sqlite3.Connection, job: Job[_T], transaction: bool) -> _T:
    """Step ``job`` to its end on this thread, in a write transaction if asked."""
    if transaction:
        # IMMEDIATE takes the write lock before the job reads anything: two processes
        # cannot both decide to apply a migration or let one meter step overshoot.
        conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            statement = next(job)
            while True:
                if statement.many:
                    cursor = conn.executemany(statement.sql, statement.params or ())
                else:
                    cursor = conn.execute(statement.sql, statement.params or ())
                statement = job.send(Result(cursor.fetchall(), cursor.rowcount))
        except StopIteration as stop:
            value: _T = stop.value
        if transaction:
            conn.execute("COMMIT")
    except BaseException:
        if transaction:
            conn.execute("ROLLBACK")
        raise
    return value


class SQLiteDriver:
    """One SQLite file (or ``:memory:``) on one worker thread, bounded and breakered."""

    dialect: Dialect = SQLITE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        breaker_failures: float = DEFAULT_BREAKER_FAILURES,
        breaker_cooldown: float = DEFAULT_BREAKER_COOLDOWN,
    ) -> None:
        if not busy_timeout > 0:
            raise ValueError("busy_timeout must be a positive number of seconds")
        self.path = os.fspath(path)
        self._busy_timeout = busy_timeout
        # A lock held by another connection is waited for busy_timeout at most, and
        # every call is bounded by call_timeout as well (the worker thread may also be
        # queued behind a stuck statement); repeated outages open the breaker.
        self._breaker = CircuitBreaker(
            f"SQLite database {os.path.basename(self.path)!r}",
            BreakerSettings(call_timeout, int(breaker_failures), breaker_cooldown),
            is_outage=_is_outage,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def connect(self) -> None:
        if self._connection is not None:
            return
        if sqlite3.sqlite_version_info < _MINIMUM_SQLITE:
            needed = ".".join(map(str, _MINIMUM_SQLITE))
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} is too old: consentgate needs {needed} or later"
            )
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentgate-sqlite")
        try:
            connection = await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except (sqlite3.Error, OSError) as exc:
            executor.shutdown(wait=False)
            raise StorageError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor, self._connection = executor, connection

    def _connect(self) -> sqlite3.Connection:
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; transactions are spelled out where needed.
        connection = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
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
            raise StorageError(f"cannot close SQLite database {self.path!r}: {exc}") from exc
        finally:
            executor.shutdown(wait=False)

    async def run(
        self, job: Callable[[], Job[_T]], *, transaction: bool = False, bounded: bool = True
    ) -> _T:
        connection, executor = self._connection, self._executor
        if connection is None or executor is None:
            raise StorageError("SQLite storage is not open")
        ticket = _Ticket()

        def work(conn: sqlite3.Connection) -> _T:
            return _drive(conn, job(), transaction)

        async def attempt() -> _T:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(executor, ticket.work, work, connection)
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

    def is_duplicate_email(self, error: BaseException | None) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "users.email_key" in str(error)


class SQLiteStorage(SQLStorage):
    """The :class:`~consentgate.storage.ports.Storage` backend on a SQLite file.

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
        self._sqlite = SQLiteDriver(
            path,
            busy_timeout=busy_timeout,
            call_timeout=call_timeout,
            breaker_failures=breaker_failures,
            breaker_cooldown=breaker_cooldown,
        )
        super().__init__(self._sqlite, batch_size=batch_size)

    @property
    def path(self) -> str:
        return self._sqlite.path
