"""Tests for the storage interface and its SQLite backend."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from consentgate.storage import (
    ConsentRecord,
    SQLiteStorage,
    Storage,
    StorageError,
    storage_from_url,
)
from consentgate.storage.sqlite import SCHEMA_VERSION

T = TypeVar("T")

BANNER_SHA = "a" * 64
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine to completion; pytest-asyncio is deliberately not a dependency."""

    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


def make_record(consent_id: str = "c-1", minutes: int = 0, **changes: Any) -> ConsentRecord:
    record = ConsentRecord(
        consent_id=consent_id,
        user_id=None,
        action="grant",
        granted=("necessary", "analytics"),
        denied=("marketing",),
        policy_version="2025-01",
        banner_text_sha256=BANNER_SHA,
        language="en",
        region_mode="gdpr",
        method="form",
        ip_hmac="hmac-of-ip",
        user_agent="Mozilla/5.0",
        recorded_at=START + timedelta(minutes=minutes),
    )
    return replace(record, **changes)


def with_storage(path: Path | str, body: Callable[[SQLiteStorage], Awaitable[T]]) -> T:
    async def scenario() -> T:
        async with SQLiteStorage(path) as storage:
            return await body(storage)

    return asyncio.run(scenario())


# --- ConsentRecord ---


def test_consent_record_unknown_action_raises() -> None:
    with pytest.raises(ValueError, match="action"):
        make_record(action="accept")


def test_consent_record_unknown_method_raises() -> None:
    with pytest.raises(ValueError, match="method"):
        make_record(method="email")


def test_consent_record_naive_timestamp_raises() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_record(recorded_at=datetime(2025, 1, 1))


def test_consent_record_bad_banner_hash_raises() -> None:
    with pytest.raises(ValueError, match="banner_text_sha256"):
        make_record(banner_text_sha256="ABC")


def test_consent_record_overlapping_categories_raise() -> None:
    with pytest.raises(ValueError, match="both granted and denied"):
        make_record(granted=("analytics",), denied=("analytics",))


def test_consent_record_timestamp_is_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    record = make_record(recorded_at=datetime(2025, 3, 1, 13, 0, tzinfo=paris))
    assert record.recorded_at == START
    assert record.recorded_at.tzinfo is UTC


# --- round trip and ordering ---


def test_sqlite_record_consent_round_trip(tmp_path: Path) -> None:
    original = make_record(user_id="u-9", ip_hmac=None, user_agent=None, action="gpc", method="gpc")

    async def body(storage: SQLiteStorage) -> tuple[ConsentRecord, list[ConsentRecord]]:
        stored = await storage.record_consent(original)
        return stored, await storage.consent_history("c-1")

    stored, history = with_storage(tmp_path / "ledger.db", body)

    assert stored.id is not None
    assert stored == replace(original, id=stored.id)
    assert history == [stored]


def test_sqlite_record_consent_preserves_microseconds_and_unicode(tmp_path: Path) -> None:
    original = make_record(
        recorded_at=START + timedelta(microseconds=123456),
        granted=("nécessaire", "統計"),
        user_agent='Agent "quoted" \u2603',
    )

    async def body(storage: SQLiteStorage) -> ConsentRecord | None:
        await storage.record_consent(original)
        return await storage.latest_consent("c-1")

    latest = with_storage(tmp_path / "ledger.db", body)

    assert latest is not None
    assert replace(latest, id=None) == original


def test_sqlite_record_consent_already_stored_raises(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> None:
        stored = await storage.record_consent(make_record())
        await storage.record_consent(stored)

    with pytest.raises(ValueError, match="already stored"):
        with_storage(tmp_path / "ledger.db", body)


def test_sqlite_consent_history_is_oldest_first_and_per_consent_id(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> tuple[list[ConsentRecord], ConsentRecord | None]:
        # Inserted out of time order, so ordering cannot come from insertion alone.
        for minutes, action in [(10, "update"), (0, "grant"), (20, "withdraw")]:
            await storage.record_consent(make_record(minutes=minutes, action=action))
        await storage.record_consent(make_record("other", minutes=5))
        return await storage.consent_history("c-1"), await storage.latest_consent("c-1")

    history, latest = with_storage(tmp_path / "ledger.db", body)

    assert [r.action for r in history] == ["grant", "update", "withdraw"]
    assert latest is not None
    assert latest.action == "withdraw"


def test_sqlite_same_timestamp_orders_by_insertion(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> tuple[list[ConsentRecord], ConsentRecord | None]:
        await storage.record_consent(make_record(action="grant"))
        await storage.record_consent(make_record(action="reject"))
        return await storage.consent_history("c-1"), await storage.latest_consent("c-1")

    history, latest = with_storage(tmp_path / "ledger.db", body)

    assert [r.action for r in history] == ["grant", "reject"]
    assert latest is not None
    assert latest.action == "reject"


def test_sqlite_unknown_consent_id_has_no_history(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> tuple[list[ConsentRecord], ConsentRecord | None]:
        return await storage.consent_history("nope"), await storage.latest_consent("nope")

    assert with_storage(tmp_path / "ledger.db", body) == ([], None)


def test_sqlite_memory_database_works(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> int:
        await storage.record_consent(make_record())
        await storage.ping()
        return await storage.count_consents()

    assert with_storage(":memory:", body) == 1


# --- append-only, schema, persistence ---


def _stored_file(path: Path, count: int = 1) -> None:
    async def body(storage: SQLiteStorage) -> None:
        for minutes in range(count):
            await storage.record_consent(make_record(minutes=minutes))

    with_storage(path, body)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_ledger SET action = 'reject'",
        "UPDATE consent_ledger SET granted = '[]' WHERE id = 1",
        "DELETE FROM consent_ledger",
        "DELETE FROM consent_ledger WHERE id = 1",
    ],
)
def test_sqlite_ledger_rejects_update_and_delete(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "ledger.db"
    _stored_file(path)

    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(statement)
        assert raw.execute("SELECT COUNT(*), MIN(action) FROM consent_ledger").fetchone() == (
            1,
            "grant",
        )
    finally:
        raw.close()


def test_sqlite_schema_version_and_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _stored_file(path)

    raw = sqlite3.connect(path)
    try:
        versions = raw.execute("SELECT version FROM schema_version").fetchall()
        journal_mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        indexes = {
            row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    finally:
        raw.close()

    assert versions == [(SCHEMA_VERSION,)]
    assert journal_mode == "wal"
    assert {"consent_ledger_by_consent_id", "consent_ledger_by_recorded_at"} <= indexes


def test_sqlite_stored_timestamps_are_utc_text_with_z(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _stored_file(path)

    raw = sqlite3.connect(path)
    try:
        stored = raw.execute("SELECT recorded_at, granted FROM consent_ledger").fetchone()
    finally:
        raw.close()

    assert stored == ("2025-03-01T12:00:00.000000Z", '["necessary", "analytics"]')


def test_sqlite_records_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _stored_file(path, count=3)

    async def body(storage: SQLiteStorage) -> tuple[int, list[ConsentRecord]]:
        return await storage.count_consents(), await storage.consent_history("c-1")

    count, history = with_storage(path, body)

    assert count == 3
    assert [r.id for r in history] == [1, 2, 3]


def test_sqlite_reopen_keeps_single_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _stored_file(path)
    _stored_file(path)

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    finally:
        raw.close()


def test_sqlite_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _stored_file(path)
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    raw.close()

    with pytest.raises(StorageError, match="newer"):
        with_storage(path, SQLiteStorage.ping)


def test_sqlite_open_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.db"
    _stored_file(path)
    assert path.is_file()


def test_sqlite_open_twice_and_close_twice_are_harmless(tmp_path: Path) -> None:
    async def scenario() -> int:
        storage = SQLiteStorage(tmp_path / "ledger.db")
        await storage.open()
        await storage.open()
        await storage.record_consent(make_record())
        await storage.close()
        await storage.close()
        await storage.open()
        try:
            return await storage.count_consents()
        finally:
            await storage.close()

    assert run(scenario()) == 1


# --- concurrency ---


def test_sqlite_concurrent_record_consent_stores_every_row(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> tuple[list[ConsentRecord], int]:
        stored = await asyncio.gather(
            *(storage.record_consent(make_record(f"c-{i}", minutes=i)) for i in range(200))
        )
        return list(stored), await storage.count_consents()

    stored, count = with_storage(tmp_path / "ledger.db", body)

    assert count == 200
    assert sorted(r.id for r in stored if r.id is not None) == list(range(1, 201))
    assert {r.consent_id for r in stored} == {f"c-{i}" for i in range(200)}


def test_sqlite_two_stores_on_one_file_both_write(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"

    async def scenario() -> int:
        async with SQLiteStorage(path) as first, SQLiteStorage(path) as second:
            await asyncio.gather(
                *(first.record_consent(make_record("a", minutes=i)) for i in range(50)),
                *(second.record_consent(make_record("b", minutes=i)) for i in range(50)),
            )
            return await first.count_consents()

    assert run(scenario()) == 100


# --- failures ---


def test_sqlite_path_that_is_a_directory_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open"):
        with_storage(tmp_path, SQLiteStorage.ping)


def test_sqlite_parent_that_is_a_file_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot open"):
        with_storage(blocker / "ledger.db", SQLiteStorage.ping)


def test_sqlite_file_that_is_not_a_database_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not a SQLite database, just some text" * 100)
    with pytest.raises(StorageError):
        with_storage(path, SQLiteStorage.ping)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root ignores directory permissions, so a read-only directory stays writable",
)
def test_sqlite_read_only_directory_raises_storage_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StorageError):
            with_storage(locked / "ledger.db", SQLiteStorage.ping)
    finally:
        locked.chmod(0o700)


def test_sqlite_use_before_open_raises_storage_error(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "ledger.db")
    with pytest.raises(StorageError, match="not open"):
        run(storage.record_consent(make_record()))


def test_sqlite_use_after_close_raises_storage_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = SQLiteStorage(tmp_path / "ledger.db")
        await storage.open()
        await storage.close()
        await storage.ping()

    with pytest.raises(StorageError, match="not open"):
        run(scenario())


def test_sqlite_dropped_table_raises_storage_error(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> None:
        raw = sqlite3.connect(storage.path)
        with raw:
            raw.execute("DROP TABLE consent_ledger")
        raw.close()
        await storage.record_consent(make_record())

    with pytest.raises(StorageError, match="no such table"):
        with_storage(tmp_path / "ledger.db", body)


# --- iter_consents ---


def _collect(
    path: Path, since: datetime | None, until: datetime | None, count: int, batch_size: int
) -> list[ConsentRecord]:
    async def scenario() -> list[ConsentRecord]:
        async with SQLiteStorage(path, batch_size=batch_size) as storage:
            for minutes in range(count):
                await storage.record_consent(make_record(f"c-{minutes}", minutes=minutes))
            return [rec async for rec in storage.iter_consents(since, until)]

    return run(scenario())


def test_sqlite_iter_consents_everything_across_batches(tmp_path: Path) -> None:
    records = _collect(tmp_path / "l.db", None, None, count=25, batch_size=4)
    assert [r.consent_id for r in records] == [f"c-{i}" for i in range(25)]


def test_sqlite_iter_consents_exact_batch_multiple(tmp_path: Path) -> None:
    records = _collect(tmp_path / "l.db", None, None, count=8, batch_size=4)
    assert len(records) == 8


def test_sqlite_iter_consents_since_is_inclusive_until_is_exclusive(tmp_path: Path) -> None:
    since = START + timedelta(minutes=5)
    until = START + timedelta(minutes=12)
    records = _collect(tmp_path / "l.db", since, until, count=20, batch_size=3)
    assert [r.consent_id for r in records] == [f"c-{i}" for i in range(5, 12)]


def test_sqlite_iter_consents_accepts_other_time_zones(tmp_path: Path) -> None:
    since = (START + timedelta(minutes=18)).astimezone(timezone(timedelta(hours=-5)))
    records = _collect(tmp_path / "l.db", since, None, count=20, batch_size=100)
    assert [r.consent_id for r in records] == ["c-18", "c-19"]


def test_sqlite_iter_consents_same_timestamp_spanning_batches(tmp_path: Path) -> None:
    async def scenario() -> list[int | None]:
        async with SQLiteStorage(tmp_path / "l.db", batch_size=2) as storage:
            for _ in range(5):
                await storage.record_consent(make_record())
            return [rec.id async for rec in storage.iter_consents()]

    assert run(scenario()) == [1, 2, 3, 4, 5]


def test_sqlite_iter_consents_naive_bound_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _collect(tmp_path / "l.db", datetime(2025, 1, 1), None, count=1, batch_size=2)


# --- storage_from_url ---


def _sqlite_path(url: str) -> str:
    storage = storage_from_url(url)
    assert isinstance(storage, SQLiteStorage)
    return storage.path


def test_storage_from_url_sqlite_relative_path() -> None:
    assert _sqlite_path("sqlite:///data/ledger.db") == "data/ledger.db"


def test_storage_from_url_sqlite_absolute_path() -> None:
    assert _sqlite_path("sqlite:////var/lib/consentgate/ledger.db") == (
        "/var/lib/consentgate/ledger.db"
    )


def test_storage_from_url_sqlite_memory() -> None:
    assert _sqlite_path("sqlite:///:memory:") == ":memory:"


def test_storage_from_url_scheme_is_case_insensitive() -> None:
    assert _sqlite_path("SQLite:///x.db") == "x.db"


def test_storage_from_url_result_opens(tmp_path: Path) -> None:
    async def scenario() -> int:
        storage: Storage = storage_from_url(f"sqlite:///{tmp_path}/sub/ledger.db")
        await storage.open()
        try:
            await storage.record_consent(make_record())
            return await storage.count_consents()
        finally:
            await storage.close()

    assert run(scenario()) == 1
    assert (tmp_path / "sub" / "ledger.db").is_file()


@pytest.mark.parametrize(
    "url", ["postgresql://u:secret@db/consent", "postgres://db/x", "postgresql+psycopg://db/x"]
)
def test_storage_from_url_postgres_not_yet_supported(url: str) -> None:
    with pytest.raises(ValueError, match="PostgreSQL support arrives with the postgres extra"):
        storage_from_url(url)


def test_storage_from_url_unknown_scheme_names_it_without_credentials() -> None:
    with pytest.raises(ValueError, match="'mysql'") as caught:
        storage_from_url("mysql://user:hunter2@db/consent")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ledger.db", "needs a scheme"),
        ("sqlite://", "no host"),
        ("sqlite:///", "needs a database path"),
        ("sqlite://host/ledger.db", "no host"),
        ("sqlite:///ledger.db?mode=ro", "no query"),
    ],
)
def test_storage_from_url_malformed_sqlite_urls_raise(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage_from_url(url)
