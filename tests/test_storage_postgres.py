"""What only the PostgreSQL backend has: URL settings, the pool, timeouts, TRUNCATE.

The behaviour shared with SQLite is in ``test_storage_contract.py``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from tests.services import (
    free_port,
    fresh_postgres_schema,
    require_postgres,
    with_address,
    with_query,
)

from consentgate.storage import ConsentRecord, StorageError, storage_from_url
from consentgate.storage.postgres import PoolSettings, PostgresStorage, split_url

RECORD = ConsentRecord(
    consent_id="c-1",
    user_id="u-1",
    action="grant",
    granted=("necessary",),
    denied=("marketing",),
    policy_version="1",
    banner_text_sha256="a" * 64,
    language="en",
    region_mode="gdpr",
    method="form",
    ip_hmac="h",
    user_agent="UA",
    recorded_at=datetime(2025, 3, 1, tzinfo=UTC),
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_schema(require_postgres()) as url:
        yield url


# --- URLs and settings (no server needed) -------------------------------------------------


@pytest.mark.parametrize(
    "url", ["postgresql://db/x", "postgres://db/x", "POSTGRESQL+psycopg://u:pw@db:5433/x"]
)
def test_storage_from_url_postgres_schemes_build_postgres_storage(url: str) -> None:
    assert isinstance(storage_from_url(url), PostgresStorage)


def test_storage_from_url_postgres_without_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(ValueError, match=r"install consentgate\[postgres\]") as caught:
        storage_from_url("postgresql://user:secret@db/x")

    assert "secret" not in str(caught.value)


def test_split_url_takes_out_pool_params_and_keeps_libpq_ones() -> None:
    conninfo, ours = split_url(
        "postgres+psycopg://u:p%40ss@db:5433/news?pool_max_size=20&sslmode=require"
        "&options=-csearch_path%3Dcg%20x&pool_timeout=2.5"
    )

    assert conninfo == (
        "postgresql://u:p%40ss@db:5433/news?sslmode=require&options=-csearch_path%3Dcg%20x"
    )
    assert ours == {"pool_max_size": "20", "pool_timeout": "2.5"}


def test_pool_settings_from_url_and_constructor_which_wins() -> None:
    storage = PostgresStorage(
        "postgresql://db/x?pool_min_size=2&pool_max_size=20&statement_timeout=1.5",
        max_size=4,
    )

    assert storage.settings == PoolSettings(min_size=2, max_size=4, statement_timeout=1.5)


@pytest.mark.parametrize(
    "query", ["pool_max_size=0", "pool_min_size=5&pool_max_size=2", "pool_timeout=-1"]
)
def test_pool_settings_out_of_range_raise(query: str) -> None:
    with pytest.raises(ValueError, match=r"pool|positive"):
        PostgresStorage(f"postgresql://db/x?{query}")


def test_pool_settings_not_a_number_raises() -> None:
    with pytest.raises(ValueError, match="pool_timeout must be a number"):
        PostgresStorage("postgresql://db/x?pool_timeout=soon")


# --- against the server -------------------------------------------------------------------


def test_postgres_truncate_of_ledger_is_refused(pg_url: str) -> None:
    async def scenario() -> None:
        async with PostgresStorage(pg_url) as storage:
            await storage.record_consent(RECORD)

    asyncio.run(scenario())

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("consent_ledger", "acceptances"):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(f"TRUNCATE {table}")  # type: ignore[arg-type]
        row = conn.execute("SELECT count(*) FROM consent_ledger").fetchone()
    assert row == (1,)


def test_postgres_statement_timeout_turns_slow_query_into_storage_error(pg_url: str) -> None:
    async def scenario() -> float:
        async with PostgresStorage(pg_url, statement_timeout=0.3) as storage:
            started = time.monotonic()
            with pytest.raises(StorageError, match=r"QueryCanceled|statement timeout"):
                await storage._one("SELECT pg_sleep(5)")
            elapsed = time.monotonic() - started
            await storage.ping()  # the connection is fine afterwards
            return elapsed

    assert asyncio.run(scenario()) < 4.5  # pg_sleep(5) was cut short by the timeout


def test_postgres_unreachable_server_fails_fast_without_leaking_password() -> None:
    url = with_address("postgresql://consent:hunter2@127.0.0.1/x", "127.0.0.1", free_port())

    async def scenario() -> float:
        storage = PostgresStorage(url, pool_timeout=1)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            await storage.open()
        assert "hunter2" not in str(caught.value)
        await storage.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 3


def test_postgres_wrong_database_is_storage_error(pg_url: str) -> None:
    url = pg_url.replace("/test?", "/consentgate_no_such_db?")

    async def scenario() -> None:
        async with PostgresStorage(url, pool_timeout=1):
            pass

    with pytest.raises(StorageError):
        asyncio.run(scenario())


def test_postgres_pool_size_from_url_bounds_connections(pg_url: str) -> None:
    async def scenario() -> int:
        async with PostgresStorage(with_query(pg_url, pool_max_size=2)) as storage:
            await asyncio.gather(*(storage._one("SELECT pg_sleep(0.05)") for _ in range(6)))
            pool = storage._postgres.pool
            assert pool is not None
            return int(pool.get_stats()["pool_size"])

    assert asyncio.run(scenario()) <= 2


def test_postgres_stores_times_as_timestamptz_and_categories_as_arrays(pg_url: str) -> None:
    async def scenario() -> None:
        async with PostgresStorage(pg_url) as storage:
            await storage.record_consent(RECORD)

    asyncio.run(scenario())

    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT pg_typeof(recorded_at)::text, granted, denied FROM consent_ledger"
        ).fetchone()
    assert row == ("timestamp with time zone", ["necessary"], ["marketing"])


def _deadlocks(url: str) -> int:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row is not None else 0


def test_postgres_two_workers_recording_at_once_store_every_row_without_deadlock(
    pg_url: str,
) -> None:
    # Two pools, as two worker processes have: the rollup trigger's row locks must not
    # make their inserts wait on each other in a circle (batches of single-row inserts
    # under the per-row trigger of schema v4 did).
    before = _deadlocks(pg_url)

    async def scenario() -> int:
        async with PostgresStorage(pg_url) as one, PostgresStorage(pg_url) as other:
            records = [
                replace(RECORD, consent_id=f"c-{n}", recorded_at=RECORD.recorded_at)
                for n in range(300)
            ]
            stores = [one, other]
            stored = await asyncio.gather(
                *(stores[n % 2].record_consent(rec) for n, rec in enumerate(records))
            )
            assert len({rec.id for rec in stored}) == len(records)
            return await one.count_consents()

    assert asyncio.run(scenario()) == 300
    time.sleep(1.0)  # the statistics reach pg_stat_database when a backend reports them
    assert _deadlocks(pg_url) == before


# --- group commit and the rollups per statement (schema v6) ------------------------------


def _ledger_and_rollups(
    url: str,
) -> tuple[dict[Any, int], dict[Any, int], dict[str, Any], dict[str, Any]]:
    """(daily counts from the ledger, from consent_daily, latest per id from the ledger,
    from consent_latest). The expected side is computed here, in Python, from the rows."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, consent_id, action, method, granted, recorded_at FROM consent_ledger"
        ).fetchall()
        daily = conn.execute(
            "SELECT day, action, method, SUM(decisions) FROM consent_daily GROUP BY 1, 2, 3"
        ).fetchall()
        latest = conn.execute(
            "SELECT consent_id, last_at, granted, gpc_at FROM consent_latest"
        ).fetchall()
    counted: Counter[Any] = Counter()
    newest: dict[str, tuple[datetime, int, list[str]]] = {}
    gpc: dict[str, datetime] = {}
    for row_id, consent_id, action, method, granted, recorded_at in rows:
        counted[(recorded_at.astimezone(UTC).date(), action, method)] += 1
        key = (recorded_at, row_id)
        if consent_id not in newest or key > newest[consent_id][:2]:
            newest[consent_id] = (recorded_at, row_id, granted)
        if action == "gpc":
            gpc[consent_id] = max(recorded_at, gpc.get(consent_id, recorded_at))
    expected_latest = {
        consent_id: (at, granted, gpc.get(consent_id))
        for consent_id, (at, _, granted) in newest.items()
    }
    return (
        dict(counted),
        {(day, action, method): int(n) for day, action, method, n in daily},
        expected_latest,
        {consent_id: (at, granted, gpc_at) for consent_id, at, granted, gpc_at in latest},
    )


def _mixed_records(count: int, ids: int, tag: str) -> list[ConsentRecord]:
    """``count`` records over ``ids`` consent ids, several days, every action, times
    out of order (two workers, clock skew) but never equal (equal times leave the
    latest to whichever commits last, which the ledger alone cannot tell)."""
    rng = random.Random(count * 7919 + ids)
    moments = list(range(count))
    rng.shuffle(moments)
    records = []
    for n, moment in enumerate(moments):
        action = rng.choice(["grant", "reject", "update", "withdraw", "gpc"])
        records.append(
            replace(
                RECORD,
                consent_id=f"c-{rng.randrange(ids)}",
                action=action,
                method="gpc" if action == "gpc" else rng.choice(["form", "js", "api"]),
                granted=("necessary",) if n % 2 else ("necessary", "analytics"),
                user_agent=f"{tag}-{n}",  # which record a stored row is
                recorded_at=RECORD.recorded_at + timedelta(hours=3 * moment, microseconds=n),
            )
        )
    return records


def _stored_user_agents(url: str) -> dict[int, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT id, user_agent FROM consent_ledger").fetchall())


def test_postgres_group_commit_from_two_pools_keeps_rollups_equal_to_the_ledger(
    pg_url: str,
) -> None:
    # Two pools, as two worker processes have, each batching its decisions into one
    # multi-row INSERT; the same consent ids from both, so their batches' rollup
    # upserts meet on the same consent_latest rows (and on consent_daily's).
    before = _deadlocks(pg_url)
    records = _mixed_records(1200, ids=40, tag="r")

    async def scenario() -> list[ConsentRecord]:
        async with PostgresStorage(pg_url) as one, PostgresStorage(pg_url) as other:
            stores = [one, other]
            return list(
                await asyncio.gather(
                    *(stores[n % 2].record_consent(rec) for n, rec in enumerate(records))
                )
            )

    stored = asyncio.run(scenario())
    time.sleep(1.0)  # the statistics reach pg_stat_database when a backend reports them

    # Each caller got the id of its own row.
    assert _stored_user_agents(pg_url) == {rec.id: rec.user_agent for rec in stored}
    with psycopg.connect(pg_url) as conn:
        transactions = conn.execute("SELECT count(DISTINCT xmin::text) FROM consent_ledger")
        (grouped,) = transactions.fetchone() or (0,)
    assert grouped < len(records) // 4  # batched: far fewer transactions than rows
    counted, daily, expected_latest, latest = _ledger_and_rollups(pg_url)
    assert sum(counted.values()) == len(records)
    assert daily == counted
    assert latest == expected_latest
    assert _deadlocks(pg_url) == before


def test_postgres_group_commit_one_bad_row_fails_only_its_caller(pg_url: str) -> None:
    languages = ["fr" if n % 5 == 2 else "en" for n in range(20)]
    # NULLs and empty arrays beside values in the same multi-row statement.
    records = [
        replace(
            RECORD,
            consent_id=f"c-{n}",
            language=language,
            user_agent=f"r-{n}",
            user_id=None if n % 2 else f"u-{n}",
            denied=() if n % 3 else ("marketing",),
        )
        for n, language in enumerate(languages)
    ]

    async def scenario() -> tuple[list[ConsentRecord | BaseException], list[bool]]:
        async with PostgresStorage(pg_url) as storage:
            await storage.ping()
            # The database itself refuses these rows, inside the batch's statement.
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(
                    "ALTER TABLE consent_ledger ADD CONSTRAINT refuse_fr CHECK (language <> 'fr')"
                )
            results = list(
                await asyncio.gather(
                    *(storage.record_consent(rec) for rec in records), return_exceptions=True
                )
            )
            # Every stored row reads back as the record its caller was answered with.
            read_back = [
                await storage.consent_history(r.consent_id) == [r]
                for r in results
                if isinstance(r, ConsentRecord)
            ]
            return results, read_back

    results, read_back = asyncio.run(scenario())
    assert read_back and all(read_back)

    for language, result in zip(languages, results, strict=True):
        if language == "fr":
            assert isinstance(result, StorageError) and "refuse_fr" in str(result)
        else:
            assert isinstance(result, ConsentRecord) and result.id is not None
    answered = {r.id: r.user_agent for r in results if isinstance(r, ConsentRecord)}
    assert _stored_user_agents(pg_url) == answered
    # Ids are taken before the check and never given back: one per row tried alone, so
    # an id beyond the 20 says a batch holding a refused row was tried first, whole.
    with psycopg.connect(pg_url) as conn:
        taken = conn.execute("SELECT last_value FROM consent_ledger_id_seq").fetchone()
    assert taken is not None and taken[0] > len(records)
    assert len(answered) == languages.count("en")
    counted, daily, expected_latest, latest = _ledger_and_rollups(pg_url)
    assert daily == counted and latest == expected_latest


def test_postgres_migration_to_v6_keeps_rollups_equal_to_the_ledger(pg_url: str) -> None:
    # Rows before (v5: the rollups per row) and after the trigger swap, on the same ids.
    before, after = _mixed_records(300, ids=30, tag="v5"), _mixed_records(301, ids=30, tag="v6")

    async def scenario() -> tuple[list[int], list[int]]:
        old = PostgresStorage(pg_url)
        try:
            first = await old.migrate(target=5)
            for rec in before:
                await old.record_consent(rec)
        finally:
            await old.close()
        operator = PostgresStorage(pg_url)
        try:
            applied = await operator.migrate()
        finally:
            await operator.close()
        async with PostgresStorage(pg_url) as storage:
            await asyncio.gather(*(storage.record_consent(rec) for rec in after))
        return first, applied

    assert asyncio.run(scenario()) == ([1, 2, 3, 4, 5], [6])
    with psycopg.connect(pg_url) as conn:
        trigger = conn.execute(
            "SELECT action_orientation FROM information_schema.triggers"
            " WHERE trigger_name = 'consent_ledger_rollups'"
            " AND event_object_schema = current_schema()"
        ).fetchall()
    assert trigger == [("STATEMENT",)]
    counted, daily, expected_latest, latest = _ledger_and_rollups(pg_url)
    assert sum(counted.values()) == len(before) + len(after)
    assert daily == counted and latest == expected_latest
