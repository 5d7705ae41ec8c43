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
    AcceptanceRecord,
    ConsentRecord,
    DuplicateUserError,
    SchemaTooOldError,
    SQLiteStorage,
    Storage,
    StorageError,
    User,
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

    assert versions == [(version,) for version in range(1, SCHEMA_VERSION + 1)]
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
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [
            (v,) for v in range(1, SCHEMA_VERSION + 1)
        ]
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
def test_storage_from_url_postgres_builds_postgres_storage(url: str) -> None:
    from consentgate.storage.postgres import PostgresStorage

    assert isinstance(storage_from_url(url), PostgresStorage)


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


# --- users ---

POLICY_SHA = "b" * 64


def make_user(email: str = "reader@example.com", **changes: Any) -> User:
    return replace(User(email=email, password_hash="scrypt$x", created_at=START), **changes)


def make_acceptance(user_id: str = "u-1", minutes: int = 0, **changes: Any) -> AcceptanceRecord:
    record = AcceptanceRecord(
        user_id=user_id,
        purpose="privacy_policy",
        policy_version="2025-01",
        policy_sha256=POLICY_SHA,
        granted=True,
        method="registration",
        ip_hmac="hmac-of-ip",
        user_agent="Mozilla/5.0",
        recorded_at=START + timedelta(minutes=minutes),
    )
    return replace(record, **changes)


def test_user_default_id_is_random_hex_and_times_are_utc() -> None:
    first, second = User("a@example.com", "h"), User("b@example.com", "h")
    assert len(first.id) == 32 and int(first.id, 16) >= 0
    assert first.id != second.id
    assert first.created_at.tzinfo is UTC


def test_user_naive_created_at_raises() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        User("a@example.com", "h", created_at=datetime(2025, 1, 1))


def test_sqlite_create_user_round_trip_by_email_and_id(tmp_path: Path) -> None:
    user = make_user()

    async def body(storage: SQLiteStorage) -> tuple[User | None, User | None, User | None]:
        await storage.create_user(user)
        return (
            await storage.user_by_email("reader@example.com"),
            await storage.user_by_id(user.id),
            await storage.user_by_email("nobody@example.com"),
        )

    by_email, by_id, unknown = with_storage(tmp_path / "db.sqlite", body)
    assert by_email == user
    assert by_id == user
    assert unknown is None


def test_sqlite_user_by_email_ignores_case_and_spaces(tmp_path: Path) -> None:
    user = make_user("Reader@Example.com")

    async def body(storage: SQLiteStorage) -> User | None:
        await storage.create_user(user)
        return await storage.user_by_email("  reader@EXAMPLE.com ")

    found = with_storage(tmp_path / "db.sqlite", body)
    assert found is not None and found.email == "Reader@Example.com"


def test_sqlite_create_user_duplicate_email_raises_and_keeps_first(tmp_path: Path) -> None:
    first = make_user("reader@example.com")
    second = make_user("READER@example.com", password_hash="other")

    async def body(storage: SQLiteStorage) -> User | None:
        await storage.create_user(first)
        with pytest.raises(DuplicateUserError):
            await storage.create_user(second)
        return await storage.user_by_email("reader@example.com")

    assert with_storage(tmp_path / "db.sqlite", body) == first


def test_sqlite_duplicate_user_error_is_a_storage_error() -> None:
    assert issubclass(DuplicateUserError, StorageError)


def test_sqlite_create_user_stores_acceptances_in_same_transaction(tmp_path: Path) -> None:
    user = make_user()
    rows = [
        make_acceptance(user.id),
        make_acceptance(user.id, purpose="newsletter"),
    ]

    async def body(storage: SQLiteStorage) -> list[AcceptanceRecord]:
        await storage.create_user(user, rows)
        return await storage.acceptances_for(user.id)

    stored = with_storage(tmp_path / "db.sqlite", body)
    assert [(r.purpose, r.granted) for r in stored] == [
        ("privacy_policy", True),
        ("newsletter", True),
    ]
    assert all(r.id is not None for r in stored)


def test_sqlite_create_user_failing_acceptance_leaves_no_user(tmp_path: Path) -> None:
    user = make_user()
    path = tmp_path / "db.sqlite"
    with_storage(path, SQLiteStorage.ping)
    raw = sqlite3.connect(path)
    with raw:
        # A storage that cannot take acceptances: the user must not appear alone.
        raw.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON acceptances "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    raw.close()

    async def body(storage: SQLiteStorage) -> User | None:
        with pytest.raises(StorageError, match="disk says no"):
            await storage.create_user(user, [make_acceptance(user.id)])
        return await storage.user_by_email(user.email)

    assert with_storage(path, body) is None


def test_sqlite_update_password_hash_changes_only_that_user(tmp_path: Path) -> None:
    alice, bob = make_user("alice@example.com"), make_user("bob@example.com")

    async def body(storage: SQLiteStorage) -> tuple[str, str]:
        await storage.create_user(alice)
        await storage.create_user(bob)
        await storage.update_password_hash(alice.id, "scrypt$new")
        a, b = await storage.user_by_id(alice.id), await storage.user_by_id(bob.id)
        assert a is not None and b is not None
        return a.password_hash, b.password_hash

    assert with_storage(tmp_path / "db.sqlite", body) == ("scrypt$new", "scrypt$x")


def test_sqlite_update_password_hash_unknown_user_raises(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> None:
        await storage.update_password_hash("nobody", "scrypt$new")

    with pytest.raises(StorageError, match="no user"):
        with_storage(tmp_path / "db.sqlite", body)


# --- acceptances ---


def test_acceptance_record_validates_purpose_method_hash_and_time() -> None:
    with pytest.raises(ValueError, match="purpose"):
        make_acceptance(purpose="marketing")
    with pytest.raises(ValueError, match="method"):
        make_acceptance(method="form")
    with pytest.raises(ValueError, match="policy_sha256"):
        make_acceptance(policy_sha256="B" * 64)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_acceptance(recorded_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="withdrawal"):
        make_acceptance(method="withdrawal", granted=True)


def test_sqlite_record_acceptance_round_trip_and_latest(tmp_path: Path) -> None:
    async def body(
        storage: SQLiteStorage,
    ) -> tuple[AcceptanceRecord, AcceptanceRecord | None, AcceptanceRecord | None]:
        stored = await storage.record_acceptance(make_acceptance(minutes=0))
        await storage.record_acceptance(
            make_acceptance(minutes=5, policy_version="2025-06", method="re-acceptance")
        )
        await storage.record_acceptance(
            make_acceptance(minutes=9, purpose="newsletter", granted=False, method="withdrawal")
        )
        return (
            stored,
            await storage.latest_acceptance("u-1", "privacy_policy"),
            await storage.latest_acceptance("u-2", "privacy_policy"),
        )

    stored, latest, other = with_storage(tmp_path / "db.sqlite", body)
    assert stored.id == 1 and stored == make_acceptance(id=1)
    assert latest is not None
    assert (latest.policy_version, latest.method) == ("2025-06", "re-acceptance")
    assert other is None


def test_sqlite_record_acceptance_already_stored_raises(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> None:
        await storage.record_acceptance(make_acceptance(id=3))

    with pytest.raises(ValueError, match="already stored"):
        with_storage(tmp_path / "db.sqlite", body)


def test_sqlite_acceptances_for_is_oldest_first_and_per_user(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> list[AcceptanceRecord]:
        await storage.record_acceptance(make_acceptance(minutes=5, method="re-acceptance"))
        await storage.record_acceptance(make_acceptance("u-2", minutes=1))
        await storage.record_acceptance(make_acceptance(minutes=0))
        return await storage.acceptances_for("u-1")

    rows = with_storage(tmp_path / "db.sqlite", body)
    assert [(r.user_id, r.method) for r in rows] == [
        ("u-1", "registration"),
        ("u-1", "re-acceptance"),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE acceptances SET granted = 0",
        "UPDATE acceptances SET policy_version = 'x' WHERE id = 1",
        "DELETE FROM acceptances",
    ],
)
def test_sqlite_acceptances_reject_update_and_delete(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "db.sqlite"

    async def body(storage: SQLiteStorage) -> None:
        await storage.record_acceptance(make_acceptance())

    with_storage(path, body)
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(statement)
        assert raw.execute("SELECT COUNT(*), MIN(granted) FROM acceptances").fetchone() == (1, 1)
    finally:
        raw.close()


def test_sqlite_iter_acceptances_bounds_and_batches(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        async with SQLiteStorage(tmp_path / "db.sqlite", batch_size=2) as storage:
            for minutes in range(7):
                await storage.record_acceptance(make_acceptance(minutes=minutes))
            since, until = START + timedelta(minutes=1), START + timedelta(minutes=6)
            return [
                int((r.recorded_at - START).total_seconds() // 60)
                async for r in storage.iter_acceptances(since, until)
            ]

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5]


def test_sqlite_iter_acceptances_without_bounds_streams_everything(tmp_path: Path) -> None:
    async def scenario() -> int:
        async with SQLiteStorage(tmp_path / "db.sqlite", batch_size=3) as storage:
            for minutes in range(6):
                await storage.record_acceptance(make_acceptance(minutes=minutes % 2))
            return len([r async for r in storage.iter_acceptances()])

    assert asyncio.run(scenario()) == 6


# --- the meter ---


def test_sqlite_distinct_reads_counts_each_article_once(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> frozenset[str]:
        await storage.record_read("reader", "a1", START)
        await storage.record_read("reader", "a1", START + timedelta(minutes=1))
        await storage.record_read("reader", "a2", START + timedelta(minutes=2))
        await storage.record_read("other", "a3", START)
        return await storage.distinct_reads("reader", START)

    assert with_storage(tmp_path / "db.sqlite", body) == frozenset({"a1", "a2"})


def test_sqlite_record_read_again_moves_time_forward_never_back(tmp_path: Path) -> None:
    month = START + timedelta(days=30)

    async def body(storage: SQLiteStorage) -> tuple[frozenset[str], frozenset[str]]:
        await storage.record_read("reader", "a1", START)
        await storage.record_read("reader", "a1", month)
        moved = await storage.distinct_reads("reader", month)
        await storage.record_read("reader", "a1", START)  # a late, older write
        return moved, await storage.distinct_reads("reader", month)

    moved, after_late_write = with_storage(tmp_path / "db.sqlite", body)
    assert moved == frozenset({"a1"})
    assert after_late_write == frozenset({"a1"})


def test_sqlite_distinct_reads_since_is_inclusive(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> frozenset[str]:
        await storage.record_read("reader", "old", START - timedelta(microseconds=1))
        await storage.record_read("reader", "edge", START)
        return await storage.distinct_reads("reader", START)

    assert with_storage(tmp_path / "db.sqlite", body) == frozenset({"edge"})


def test_sqlite_prune_reads_removes_only_older_rows(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> tuple[int, frozenset[str]]:
        await storage.record_read("reader", "old", START - timedelta(days=40))
        await storage.record_read("reader", "new", START)
        removed = await storage.prune_reads(START - timedelta(days=1))
        return removed, await storage.distinct_reads("reader", START - timedelta(days=100))

    assert with_storage(tmp_path / "db.sqlite", body) == (1, frozenset({"new"}))


def test_sqlite_record_read_empty_key_raises(tmp_path: Path) -> None:
    async def body(storage: SQLiteStorage) -> None:
        await storage.record_read("", "a1", START)

    with pytest.raises(ValueError, match="reader key"):
        with_storage(tmp_path / "db.sqlite", body)


# --- migration from schema version 1 ---

# The version-1 schema exactly as consentgate 0.1 created it (frozen here on purpose:
# the migration must keep working on databases made by that release).
_V1_STATEMENTS = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
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
    """
    CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
    BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END
    """,
    """
    CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
    BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END
    """,
    "INSERT INTO schema_version VALUES (1, '2025-01-01T00:00:00.000000Z')",
    """
    INSERT INTO consent_ledger (consent_id, user_id, action, granted, denied,
        policy_version, banner_text_sha256, language, region_mode, method, ip_hmac,
        user_agent, recorded_at)
    VALUES ('c-old', NULL, 'grant', '["necessary"]', '["marketing"]', '2024-12',
        'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'fr', 'opt-in',
        'form', 'h', 'UA', '2025-01-02T03:04:05.000006Z')
    """,
)


def _version_1_database(path: Path) -> None:
    raw = sqlite3.connect(path)
    with raw:
        for statement in _V1_STATEMENTS:
            raw.execute(statement)
    raw.close()


def _migrated(path: Path) -> list[int]:
    """What `consentgate migrate` does: migrate, then close."""

    async def scenario() -> list[int]:
        storage = SQLiteStorage(path)
        try:
            return await storage.migrate()
        finally:
            await storage.close()

    return run(scenario())


def test_sqlite_open_on_version_1_refuses_until_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _version_1_database(path)

    needs = f"version 1, this consentgate needs {SCHEMA_VERSION}"
    with pytest.raises(SchemaTooOldError, match=needs):
        with_storage(path, SQLiteStorage.ping)
    assert _migrated(path) == list(range(2, SCHEMA_VERSION + 1))
    assert _migrated(path) == []


def test_sqlite_migration_v1_to_v3_keeps_consent_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _version_1_database(path)
    _migrated(path)

    async def body(storage: SQLiteStorage) -> tuple[list[ConsentRecord], User | None]:
        user = make_user()
        await storage.create_user(user, [make_acceptance(user.id)])
        return await storage.consent_history("c-old"), await storage.user_by_id(user.id)

    history, user = with_storage(path, body)
    assert len(history) == 1
    old = history[0]
    assert (old.id, old.action, old.granted, old.denied, old.language) == (
        1,
        "grant",
        ("necessary",),
        ("marketing",),
        "fr",
    )
    assert old.recorded_at == datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert user is not None

    raw = sqlite3.connect(path)
    try:
        versions = raw.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("DELETE FROM consent_ledger")
    finally:
        raw.close()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_sqlite_migration_v1_to_v3_new_consents_continue_ids(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _version_1_database(path)
    _migrated(path)

    async def body(storage: SQLiteStorage) -> int | None:
        return (await storage.record_consent(make_record("c-new"))).id

    assert with_storage(path, body) == 2
