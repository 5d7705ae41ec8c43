"""The layer the SQL backends share: queries rendered per dialect, the driver seam, and
``open_storage`` above the drivers."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from consentgate.storage import ConsentRecord, StorageError, open_storage
from consentgate.storage.sql.dialect import POSTGRES, SQLITE
from consentgate.storage.sql.queries import _TEXT, Queries
from consentgate.storage.sqlite import SQLiteStorage


def _statements(queries: Queries) -> dict[str, str]:
    return {name: getattr(queries, name) for name in _TEXT}


def test_sql_layer_postgres_placeholders_match_sqlite_ones() -> None:
    lite, pg = _statements(Queries(SQLITE)), _statements(Queries(POSTGRES))
    assert lite.keys() == pg.keys()
    for name, text in lite.items():
        # psycopg reads every "%" as a placeholder or an escape: none may be left bare.
        assert "?" not in pg[name], name
        assert re.search(r"%(?![s%])", pg[name]) is None, name
        assert text.count("?") == pg[name].count("%s"), name
        assert "{" not in text and "{" not in pg[name], name  # every spelling rendered


def test_sql_layer_dialect_spellings_differ_where_the_databases_do() -> None:
    lite, pg = Queries(SQLITE), Queries(POSTGRES)
    assert "MAX(meter_reads.read_at" in lite.upsert_read
    assert "GREATEST(meter_reads.read_at" in pg.upsert_read
    assert "id_hash IS NOT ?" in lite.delete_sessions
    assert "id_hash IS DISTINCT FROM %s" in pg.delete_sessions


def test_sql_layer_sqlite_values_sort_as_their_times_and_days() -> None:
    early, late = datetime(2026, 1, 2, 3, 4, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    texts = [SQLITE.time(early), SQLITE.time(late)]
    assert SQLITE.time_low < texts[0] < texts[1] < SQLITE.time_high
    assert [SQLITE.read_time(t) for t in texts] == [early, late]
    assert SQLITE.day_low < SQLITE.day(date(2026, 3, 1)) < SQLITE.day_high
    assert SQLITE.read_categories(SQLITE.categories(("ads", "analytics"))) == ("ads", "analytics")
    with pytest.raises(ValueError, match="timezone-aware"):
        SQLITE.time(datetime(2026, 1, 1))


def _record(at: datetime) -> ConsentRecord:
    return ConsentRecord(
        consent_id="c" * 32,
        user_id=None,
        action="grant",
        granted=("necessary", "analytics"),
        denied=("ads",),
        policy_version="1",
        banner_text_sha256="a" * 64,
        language="en",
        region_mode="opt-in",
        method="form",
        ip_hmac=None,
        user_agent=None,
        recorded_at=at,
    )


def test_open_storage_opens_the_url_and_closes_on_leaving(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    async def scenario() -> SQLiteStorage:
        async with open_storage(url) as storage:
            assert isinstance(storage, SQLiteStorage)
            stored = await storage.record_consent(_record(datetime(2026, 5, 1, tzinfo=UTC)))
            assert stored.id is not None
            assert await storage.consent_history("c" * 32) == [stored]
        return storage

    storage = asyncio.run(scenario())
    with pytest.raises(StorageError, match="not open"):
        asyncio.run(storage.count_consents())


def test_open_storage_refuses_a_url_it_does_not_know() -> None:
    async def scenario() -> None:
        async with open_storage("mysql://db/x"):
            pass

    with pytest.raises(ValueError, match="unsupported storage URL scheme 'mysql'"):
        asyncio.run(scenario())


def test_sqlite_driver_refuses_a_library_without_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    storage = SQLiteStorage(tmp_path / "old.db")
    with pytest.raises(StorageError, match=r"SQLite 3\.31\.1 is too old: .* 3\.35\.0"):
        asyncio.run(storage.open())
    assert not (tmp_path / "old.db").exists()
