"""What only the PostgreSQL backend has: URL settings, the pool, timeouts, TRUNCATE.

The behaviour shared with SQLite is in ``test_storage_contract.py``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

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
    # make their inserts wait on each other in a circle (grouped transactions did).
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
