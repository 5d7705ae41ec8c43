"""One contract for every ``Storage`` backend: each test runs on SQLite and PostgreSQL.

PostgreSQL tests get a fresh schema each (dropped afterwards); see ``tests/services.py``
for the URL and the skip rule.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.services import fresh_postgres_schema, require_postgres

from consentgate.storage import (
    AcceptanceRecord,
    ConsentRecord,
    DuplicateUserError,
    SchemaTooNewError,
    SchemaTooOldError,
    StorageError,
    User,
)
from consentgate.storage.sqlite import SCHEMA_VERSION, SQLiteStorage

T = TypeVar("T")

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BANNER_SHA = "a" * 64
POLICY_SHA = "b" * 64


# --- backends ---------------------------------------------------------------------------


@dataclass
class Backend:
    """How to build a store of one kind on one fresh database, and reach it raw."""

    name: str
    make: Callable[..., Any]  # (**options) -> an unopened storage
    raw: Callable[[str], None]  # runs SQL outside consentgate; raises on refusal
    refused: type[Exception]  # what `raw` raises when a trigger refuses


def _sqlite_backend(path: Path) -> Backend:
    def raw(sql: str) -> None:
        conn = sqlite3.connect(path)
        try:
            with conn:
                conn.execute(sql)
        finally:
            conn.close()

    def make(**options: Any) -> SQLiteStorage:
        return SQLiteStorage(path, **options)

    return Backend("sqlite", make, raw, sqlite3.DatabaseError)


def _postgres_backend(url: str) -> Backend:
    import psycopg

    from consentgate.storage.postgres import PostgresStorage

    def raw(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def make(**options: Any) -> PostgresStorage:
        return PostgresStorage(url, **options)

    return Backend("postgres", make, raw, psycopg.Error)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield _sqlite_backend(tmp_path / "contract.db")
        return
    with fresh_postgres_schema(require_postgres()) as url:
        yield _postgres_backend(url)


def run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


def on_open(backend: Backend, body: Callable[[Any], Awaitable[T]], **options: Any) -> T:
    """Open a store, run ``body`` on it, close it, all in one event loop."""

    async def scenario() -> T:
        storage = backend.make(**options)
        await storage.open()
        try:
            return await body(storage)
        finally:
            await storage.close()

    return run(scenario())


def consent(consent_id: str = "c-1", minutes: float = 0, **changes: Any) -> ConsentRecord:
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


def acceptance(user_id: str, minutes: float = 0, **changes: Any) -> AcceptanceRecord:
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


def user(email: str = "reader@example.org") -> User:
    return User(email=email, password_hash="scrypt$hash", created_at=START)


# --- consent ledger ---------------------------------------------------------------------


def test_consent_round_trip_keeps_every_field(backend: Backend) -> None:
    original = consent(
        user_id="u-1", granted=("a", "ü"), denied=(), user_agent="Mozilla/5.0 🦊", minutes=0.5
    )
    original = replace(original, recorded_at=original.recorded_at + timedelta(microseconds=7))

    async def body(storage: Any) -> tuple[ConsentRecord, list[ConsentRecord]]:
        stored = await storage.record_consent(original)
        return stored, await storage.consent_history("c-1")

    stored, history = on_open(backend, body)

    assert stored.id is not None
    assert history == [stored]
    assert replace(stored, id=None) == original


def test_consent_record_already_stored_raises(backend: Backend) -> None:
    with pytest.raises(ValueError, match="already stored"):
        on_open(backend, lambda storage: storage.record_consent(consent(id=5)))


def test_consent_history_is_oldest_first_and_per_consent_id(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[list[str], list[str], ConsentRecord | None, int]:
        await storage.record_consent(consent("c-1", 2, action="update"))
        await storage.record_consent(consent("c-2", 1))
        await storage.record_consent(consent("c-1", 0))
        await storage.record_consent(consent("c-1", 2, action="withdraw"))  # same time
        history = [rec.action for rec in await storage.consent_history("c-1")]
        unknown = await storage.consent_history("nobody")
        return history, unknown, await storage.latest_consent("c-1"), await storage.count_consents()

    history, unknown, latest, count = on_open(backend, body)

    assert history == ["grant", "update", "withdraw"]
    assert unknown == []
    assert latest is not None and latest.action == "withdraw"
    assert count == 4


def test_consents_for_user_only_that_user_oldest_first(backend: Backend) -> None:
    async def body(storage: Any) -> list[tuple[str, str]]:
        await storage.record_consent(consent("c-2", 5, user_id="u-1", action="update"))
        await storage.record_consent(consent("c-1", 1, user_id="u-1"))
        await storage.record_consent(consent("c-3", 2, user_id="u-2"))
        await storage.record_consent(consent("c-4", 3))
        return [(rec.consent_id, rec.action) for rec in await storage.consents_for_user("u-1")]

    assert on_open(backend, body) == [("c-1", "grant"), ("c-2", "update")]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_ledger SET action = 'reject'",
        "UPDATE consent_ledger SET ip_hmac = 'other'",
        "DELETE FROM consent_ledger",
        "UPDATE acceptances SET policy_version = 'forged'",
        "DELETE FROM acceptances",
    ],
)
def test_append_only_tables_refuse_raw_update_and_delete(backend: Backend, statement: str) -> None:
    async def fill(storage: Any) -> None:
        await storage.record_consent(consent(user_id="u-1"))
        await storage.record_acceptance(acceptance("u-1"))

    on_open(backend, fill)

    with pytest.raises(backend.refused, match="append-only"):
        backend.raw(statement)

    async def read(storage: Any) -> tuple[ConsentRecord | None, list[AcceptanceRecord]]:
        return await storage.latest_consent("c-1"), await storage.acceptances_for("u-1")

    latest, acceptances = on_open(backend, read)
    assert latest is not None and latest.action == "grant" and latest.ip_hmac == "hmac-of-ip"
    assert [rec.policy_version for rec in acceptances] == ["2025-01"]


# --- redaction --------------------------------------------------------------------------


def test_redact_user_records_nulls_only_network_fields(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[int, int, list[ConsentRecord], list[Any], Any]:
        kept = await storage.record_consent(consent("c-9", user_id="u-2"))
        before = await storage.record_consent(consent("c-1", user_id="u-1"))
        await storage.record_consent(consent("c-1", 1, user_id="u-1", ip_hmac=None))
        await storage.record_acceptance(acceptance("u-1"))
        first = await storage.redact_user_records("u-1")
        again = await storage.redact_user_records("u-1")
        after = await storage.consents_for_user("u-1")
        accepted = await storage.acceptances_for("u-1")
        other = await storage.latest_consent("c-9")
        return first, again, [before, *after], accepted, (kept, other)

    first, again, (before, *after), accepted, (kept, other) = on_open(backend, body)

    assert (first, again) == (3, 0)
    assert after[0] == replace(before, ip_hmac=None, user_agent=None)
    assert all(rec.ip_hmac is None and rec.user_agent is None for rec in after + accepted)
    assert accepted[0].policy_sha256 == POLICY_SHA and accepted[0].granted
    assert other == kept


@pytest.mark.parametrize(
    "statement",
    [
        # Nulling only one of the two: not the redaction the trigger knows.
        "UPDATE consent_ledger SET ip_hmac = NULL",
        # The redaction, smuggling another change in.
        "UPDATE consent_ledger SET ip_hmac = NULL, user_agent = NULL, action = 'reject'",
        "UPDATE consent_ledger SET ip_hmac = NULL, user_agent = NULL, recorded_at = recorded_at",
        "UPDATE acceptances SET ip_hmac = NULL, user_agent = NULL, granted = NOT granted",
    ],
)
def test_redaction_trigger_refuses_any_other_change(backend: Backend, statement: str) -> None:
    async def fill(storage: Any) -> None:
        await storage.record_consent(consent(user_id="u-1"))
        await storage.record_acceptance(acceptance("u-1"))

    on_open(backend, fill)
    if "recorded_at = recorded_at" in statement:
        # Assigning a column its own value changes nothing: allowed, and harmless.
        backend.raw(statement)
        return
    with pytest.raises(backend.refused, match="append-only"):
        backend.raw(statement)


def test_redaction_by_raw_sql_is_allowed_for_exactly_the_two_columns(backend: Backend) -> None:
    on_open(backend, lambda storage: storage.record_consent(consent(user_id="u-1")))

    backend.raw("UPDATE consent_ledger SET ip_hmac = NULL, user_agent = NULL")

    latest = on_open(backend, lambda storage: storage.latest_consent("c-1"))
    assert latest is not None and (latest.ip_hmac, latest.user_agent) == (None, None)


def test_redact_user_records_empty_id_raises(backend: Backend) -> None:
    with pytest.raises(ValueError, match="user id"):
        on_open(backend, lambda storage: storage.redact_user_records(""))


# --- users and acceptances --------------------------------------------------------------


def test_users_round_trip_by_email_ignoring_case_and_by_id(backend: Backend) -> None:
    reader = user("Reader@Example.org")

    async def body(storage: Any) -> tuple[User | None, User | None, User | None]:
        await storage.create_user(reader)
        return (
            await storage.user_by_email("  reader@EXAMPLE.org "),
            await storage.user_by_id(reader.id),
            await storage.user_by_email("other@example.org"),
        )

    by_email, by_id, missing = on_open(backend, body)

    assert by_email == reader and by_id == reader and missing is None


def test_create_user_duplicate_email_keeps_first_and_its_acceptances(backend: Backend) -> None:
    first, second = user(), user("READER@example.org")

    async def body(storage: Any) -> tuple[User | None, int]:
        await storage.create_user(first, [acceptance(first.id)])
        with pytest.raises(DuplicateUserError):
            await storage.create_user(second, [acceptance(second.id)])
        return await storage.user_by_email(first.email), len(
            await storage.acceptances_for(second.id)
        )

    stored, orphan_acceptances = on_open(backend, body)

    assert stored == first
    assert orphan_acceptances == 0


def test_update_password_hash_changes_only_that_user(backend: Backend) -> None:
    one, two = user("one@example.org"), user("two@example.org")

    async def body(storage: Any) -> tuple[User | None, User | None]:
        await storage.create_user(one)
        await storage.create_user(two)
        await storage.update_password_hash(one.id, "new-hash")
        with pytest.raises(StorageError):
            await storage.update_password_hash("nobody", "x")
        return await storage.user_by_id(one.id), await storage.user_by_id(two.id)

    changed, unchanged = on_open(backend, body)

    assert changed is not None and changed.password_hash == "new-hash"
    assert unchanged == two


def test_delete_user_removes_account_but_not_ledger_rows(backend: Backend) -> None:
    reader = user()

    async def body(storage: Any) -> tuple[bool, bool, User | None, int]:
        await storage.create_user(reader, [acceptance(reader.id)])
        deleted = await storage.delete_user(reader.id)
        again = await storage.delete_user(reader.id)
        return (
            deleted,
            again,
            await storage.user_by_id(reader.id),
            len(await storage.acceptances_for(reader.id)),
        )

    assert on_open(backend, body) == (True, False, None, 1)


def test_acceptances_latest_per_purpose_and_all_oldest_first(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[Any, Any, list[str], Any]:
        await storage.record_acceptance(acceptance("u-1", 2, method="re-acceptance"))
        stored = await storage.record_acceptance(acceptance("u-1", 0))
        await storage.record_acceptance(acceptance("u-1", 1, purpose="newsletter"))
        await storage.record_acceptance(
            acceptance("u-1", 3, purpose="newsletter", granted=False, method="withdrawal")
        )
        await storage.record_acceptance(acceptance("u-2", 4))
        return (
            await storage.latest_acceptance("u-1", "privacy_policy"),
            await storage.latest_acceptance("u-1", "newsletter"),
            [rec.method for rec in await storage.acceptances_for("u-1")],
            (stored, await storage.latest_acceptance("u-3", "newsletter")),
        )

    policy, newsletter, methods, (stored, missing) = on_open(backend, body)

    assert policy.method == "re-acceptance"
    assert newsletter.granted is False
    assert methods == ["registration", "registration", "re-acceptance", "withdrawal"]
    assert stored.id is not None and replace(stored, id=None) == acceptance("u-1", 0)
    assert missing is None


# --- meter reads ------------------------------------------------------------------------


def test_meter_reads_distinct_forward_only_and_pruned(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[frozenset[str], frozenset[str], int, frozenset[str]]:
        await storage.record_read("r", "a1", START)
        await storage.record_read("r", "a1", START + timedelta(days=2))
        await storage.record_read("r", "a1", START + timedelta(days=1))  # never moves back
        await storage.record_read("r", "a2", START)
        await storage.record_read("other", "a3", START + timedelta(days=3))
        since_day_one = await storage.distinct_reads("r", START + timedelta(days=1))
        everything = await storage.distinct_reads("r", START)
        pruned = await storage.prune_reads(START + timedelta(hours=1))
        return since_day_one, everything, pruned, await storage.distinct_reads("r", START)

    since_day_one, everything, pruned, after_prune = on_open(backend, body)

    assert since_day_one == {"a1"}
    assert everything == {"a1", "a2"}
    assert pruned == 1
    assert after_prune == {"a1"}


# --- counters ---------------------------------------------------------------------------


def test_counts_add_up_per_day_and_name_within_bounds(backend: Backend) -> None:
    day = date(2025, 3, 1)

    async def body(storage: Any) -> tuple[list[Any], list[Any], list[Any]]:
        await storage.add_counts(day, {"banner_impressions": 3, "registrations": 1})
        await storage.add_counts(day, {"banner_impressions": 2})
        await storage.add_counts(day + timedelta(days=1), {"wall_impressions": 7})
        await storage.add_counts(day + timedelta(days=2), {"wall_impressions": 1})
        await storage.add_counts(day, {})
        return (
            await storage.counts(),
            await storage.counts(since=day + timedelta(days=1)),
            await storage.counts(until=day + timedelta(days=1)),
        )

    everything, from_second, first_only = on_open(backend, body)

    assert everything == [
        (day, "banner_impressions", 5),
        (day, "registrations", 1),
        (day + timedelta(days=1), "wall_impressions", 7),
        (day + timedelta(days=2), "wall_impressions", 1),
    ]
    assert from_second == everything[2:]
    assert first_only == everything[:2]


@pytest.mark.parametrize(
    "counts", [{"": 1}, {"Banner": 1}, {"x y": 1}, {"ok": 1.5}, {"ok": True}, {"ok": "1"}]
)
def test_add_counts_bad_name_or_value_raises(backend: Backend, counts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="counter"):
        on_open(backend, lambda storage: storage.add_counts(date(2025, 3, 1), counts))


def test_add_counts_concurrent_increments_all_count(backend: Backend) -> None:
    day = date(2025, 3, 1)

    async def body(storage: Any) -> list[Any]:
        await asyncio.gather(*(storage.add_counts(day, {"hits": 1, "b": 2}) for _ in range(50)))
        return await storage.counts()

    assert on_open(backend, body) == [(day, "b", 100), (day, "hits", 50)]


# --- streaming --------------------------------------------------------------------------


def test_iter_consents_streams_across_batches_with_since_and_until(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[list[int], list[int], list[int]]:
        for minute in range(10):
            await storage.record_consent(consent(f"c-{minute}", minute))
        await storage.record_consent(consent("c-dup", 4))  # same time as c-4, later id
        every = [number(rec) async for rec in storage.iter_consents()]
        window = storage.iter_consents(START + timedelta(minutes=3), START + timedelta(minutes=6))
        bounded = [number(rec) async for rec in window]
        until = [
            number(rec) async for rec in storage.iter_consents(until=START + timedelta(minutes=2))
        ]
        return every, bounded, until

    def number(rec: ConsentRecord) -> int:
        return 44 if rec.consent_id == "c-dup" else int(rec.consent_id[2:])

    every, bounded, until = on_open(backend, body, batch_size=3)

    assert every == [0, 1, 2, 3, 4, 44, 5, 6, 7, 8, 9]
    assert bounded == [3, 4, 44, 5]
    assert until == [0, 1]


def test_iter_acceptances_streams_with_bounds(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[list[str], list[str]]:
        for minute in range(7):
            await storage.record_acceptance(acceptance(f"u-{minute}", minute))
        every = [rec.user_id async for rec in storage.iter_acceptances()]
        window = storage.iter_acceptances(
            START + timedelta(minutes=2), START + timedelta(minutes=5)
        )
        return every, [rec.user_id async for rec in window]

    every, bounded = on_open(backend, body, batch_size=2)

    assert every == [f"u-{minute}" for minute in range(7)]
    assert bounded == ["u-2", "u-3", "u-4"]


def test_iter_consents_naive_bound_raises(backend: Backend) -> None:
    async def body(storage: Any) -> None:
        async for _ in storage.iter_consents(since=datetime(2025, 1, 1)):
            pass

    with pytest.raises(ValueError, match="timezone-aware"):
        on_open(backend, body)


# --- schema -----------------------------------------------------------------------------


def test_open_creates_latest_schema_and_migrate_is_idempotent(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[int, list[int], list[int]]:
        return await storage.schema_version(), await storage.migrate(), await storage.migrate()

    assert on_open(backend, body) == (SCHEMA_VERSION, [], [])


def test_migrate_before_open_creates_schema_and_reports_versions(backend: Backend) -> None:
    async def scenario() -> tuple[int, list[int], int]:
        storage = backend.make()
        try:
            empty = await storage.schema_version()
            applied = await storage.migrate()
            return empty, applied, await storage.schema_version()
        finally:
            await storage.close()

    assert run(scenario()) == (0, list(range(1, SCHEMA_VERSION + 1)), SCHEMA_VERSION)


def test_open_on_old_schema_raises_schema_too_old_until_migrated(backend: Backend) -> None:
    async def scenario() -> tuple[str, list[int], list[ConsentRecord], int]:
        old = backend.make()
        await old.migrate(target=1)
        await old.record_consent(consent("c-old", user_id="u-1"))
        await old.migrate(target=2)
        await old.close()

        refused = backend.make()
        with pytest.raises(SchemaTooOldError) as caught:
            await refused.open()
        await refused.close()

        operator = backend.make()
        applied = await operator.migrate()
        await operator.close()

        storage = backend.make()
        await storage.open()
        try:
            history = await storage.consent_history("c-old")
            redacted = await storage.redact_user_records("u-1")
        finally:
            await storage.close()
        return str(caught.value), applied, history, redacted

    message, applied, history, redacted = run(scenario())

    assert message == (
        f"database schema is version 2, this consentgate needs {SCHEMA_VERSION}: "
        "run `consentgate migrate`"
    )
    assert applied == list(range(3, SCHEMA_VERSION + 1))
    assert [(rec.consent_id, rec.granted, rec.recorded_at) for rec in history] == [
        ("c-old", ("necessary", "analytics"), START)
    ]
    assert redacted == 1
    with pytest.raises(backend.refused, match="append-only"):
        backend.raw("DELETE FROM consent_ledger")


def test_open_on_newer_schema_raises_schema_too_new(backend: Backend) -> None:
    on_open(backend, lambda storage: storage.ping())
    backend.raw(
        "INSERT INTO schema_version (version, applied_at)"
        f" VALUES ({SCHEMA_VERSION + 1}, '2030-01-01T00:00:00Z')"
    )

    with pytest.raises(SchemaTooNewError, match="newer than this consentgate"):
        on_open(backend, lambda storage: storage.ping())


def test_concurrent_migrate_applies_each_version_once(backend: Backend) -> None:
    async def scenario() -> list[list[int]]:
        stores = [backend.make() for _ in range(3)]
        try:
            return list(await asyncio.gather(*(store.migrate() for store in stores)))
        finally:
            for store in stores:
                await store.close()

    results = run(scenario())

    assert sorted(version for applied in results for version in applied) == list(
        range(1, SCHEMA_VERSION + 1)
    )


def test_concurrent_open_of_empty_database_creates_schema_once(backend: Backend) -> None:
    async def scenario() -> list[int]:
        stores = [backend.make() for _ in range(3)]
        try:
            await asyncio.gather(*(store.open() for store in stores))
            return [await store.schema_version() for store in stores]
        finally:
            for store in stores:
                await store.close()

    assert run(scenario()) == [SCHEMA_VERSION] * 3


# --- lifecycle and concurrency ------------------------------------------------------------


def test_use_before_open_raises_storage_error(backend: Backend) -> None:
    with pytest.raises(StorageError, match="not open"):
        run(backend.make().record_consent(consent()))


def test_open_twice_close_twice_and_reopen_are_harmless(backend: Backend) -> None:
    async def scenario() -> int:
        storage = backend.make()
        await storage.open()
        await storage.open()
        await storage.record_consent(consent())
        await storage.close()
        await storage.close()
        await storage.open()
        try:
            return int(await storage.count_consents())
        finally:
            await storage.close()

    assert run(scenario()) == 1


def test_concurrent_record_consent_stores_every_row(backend: Backend) -> None:
    async def body(storage: Any) -> tuple[int, int]:
        records = await asyncio.gather(
            *(storage.record_consent(consent(f"c-{n}", n / 1000)) for n in range(500))
        )
        return len({rec.id for rec in records}), await storage.count_consents()

    assert on_open(backend, body) == (500, 500)
