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
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from consentgate.storage.base import ConsentRecord, StorageError

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

SCHEMA_VERSION = 1
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

# version -> statements that bring the schema from version - 1 to version.
_MIGRATIONS: dict[int, Sequence[str]] = {1: _SCHEMA_V1}

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


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _migrate(conn: sqlite3.Connection) -> None:
    # IMMEDIATE takes the write lock first, so two processes opening a fresh file
    # cannot both create the schema.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = _schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {current} is newer than this consentgate "
                f"supports ({SCHEMA_VERSION}); upgrade consentgate"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, format_timestamp(datetime.now(UTC))),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._batch_size = batch_size
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

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

    def _connect(self) -> sqlite3.Connection:
        if self._path != MEMORY:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; transactions are spelled out where needed.
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            # WAL lets exports read while visitors' consents are written.
            connection.execute("PRAGMA journal_mode = WAL")
            # The ledger is evidence: a consent acknowledged to the visitor must
            # survive a power cut, so sync the WAL on every commit.
            connection.execute("PRAGMA synchronous = FULL")
            _migrate(connection)
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

    async def _run(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        connection, executor = self._connection, self._executor
        if connection is None or executor is None:
            raise StorageError("SQLite storage is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, job, connection)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"SQLite storage failed: {exc}") from exc
        except RuntimeError as exc:
            # The executor refuses jobs once close() has shut it down.
            raise StorageError(f"SQLite storage is closed: {exc}") from exc

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
        # ids start at 1, so (since, 0) is just below every row recorded at `since`.
        after: tuple[str, int] = (format_timestamp(since) if since is not None else "", 0)
        upper = format_timestamp(until) if until is not None else None
        while True:
            rows = await self._run(self._page_reader(after, upper))
            for row in rows:
                yield _record_from_row(row)
            if len(rows) < self._batch_size:
                return
            after = (rows[-1][13], rows[-1][0])

    def _page_reader(
        self, after: tuple[str, int], upper: str | None
    ) -> Callable[[sqlite3.Connection], list[Row]]:
        def read(conn: sqlite3.Connection) -> list[Row]:
            if upper is None:
                return conn.execute(_SELECT_PAGE, (*after, self._batch_size)).fetchall()
            return conn.execute(_SELECT_PAGE_UNTIL, (*after, upper, self._batch_size)).fetchall()

        return read

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
