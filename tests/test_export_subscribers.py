"""``consentgate export subscribers --list ID``: the current subscribers of a newsletter,
streamed, each with the unsubscribe URL the sending platform puts in its headers.

Run through the real entry point (``main([...])``) against a real SQLite store filled
through the storage API (the bulk test through the backend's own INSERTs)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SECRET, client, html_app, run

from consentgate.cli import main
from consentgate.config import Config
from consentgate.middleware import ConsentGate
from consentgate.storage import SQLiteStorage, User
from consentgate.storage.records import SubscriptionRecord
from consentgate.storage.sql.dialect import SQLITE
from consentgate.storage.sql.queries import Queries

DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
HASH = "scrypt$16384$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)


def write_config(tmp_path: Path, *, secret: bool = True) -> Path:
    path = tmp_path / "consentgate.toml"
    key = f'secret_keys = ["{SECRET}"]\n' if secret else ""
    path.write_text(
        key + f'database_url = "sqlite:///{tmp_path / "ledger.db"}"\n'
        'public_url = "https://news.test"\n'
        "[[newsletters]]\n"
        'id = "week-in-review"\nname = "The Week in Review"\n'
        'description = "The week, read slowly."\nfrequency = "Saturdays"\n'
        "[[newsletters]]\n"
        'id = "morning-brief"\nname = "The Morning Brief"\n'
        'description = "Five stories."\nfrequency = "weekdays"\n',
        encoding="utf-8",
    )
    return path


def row(user_id: str, action: str, minutes: int, list_id: str = "week-in-review") -> Any:
    method = {"requested": "registration", "confirmed": "email_link"}.get(action, "one_click")
    return SubscriptionRecord(
        user_id=user_id,
        list_id=list_id,
        action=action,
        method=method,
        text_shown="The Week in Review\nThe week, read slowly.\nSaturdays",
        ip_hmac="a" * 64,
        user_agent="Mozilla/5.0 (test)",
        recorded_at=DAY1 + timedelta(minutes=minutes),
    )


def fill(tmp_path: Path) -> None:
    async def body() -> None:
        storage = SQLiteStorage(tmp_path / "ledger.db")
        await storage.open()
        try:
            for name in ("ana", "ben", "cem", "dora", "eli"):
                user = User(email=f"{name}@example.org", password_hash=HASH, id=f"u-{name}")
                await storage.create_user(user)
            for rec in (
                row("u-ana", "requested", 1),
                row("u-ana", "confirmed", 2),  # subscribed
                row("u-ben", "requested", 3),  # never confirmed
                row("u-cem", "requested", 4),
                row("u-cem", "confirmed", 5),
                row("u-cem", "unsubscribed", 6),  # withdrew
                row("u-dora", "requested", 7),
                row("u-dora", "confirmed", 8),
                row("u-eli", "requested", 9, "morning-brief"),
                row("u-eli", "confirmed", 10, "morning-brief"),  # the other list
                row("u-gone", "requested", 11),
                row("u-gone", "confirmed", 12),  # no account any more: erased
            ):
                await storage.record_subscription(rec)
        finally:
            await storage.close()

    run(body())


def cli(*args: str) -> int:
    return main(list(args))


def test_export_subscribers_jsonl_only_current_subscribers_of_the_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill(tmp_path)
    assert cli("export", "subscribers", "--list", "week-in-review", "--config", str(config)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["email"], r["subscribed_at"]) for r in rows] == [
        ("ana@example.org", "2026-03-01T00:02:00Z"),
        ("dora@example.org", "2026-03-01T00:08:00Z"),
    ]
    assert all(
        r["unsubscribe_url"].startswith(
            "https://news.test/consentgate/newsletters/unsubscribe?token="
        )
        for r in rows
    )
    assert rows[0]["unsubscribe_url"] != rows[1]["unsubscribe_url"]


def test_export_subscribers_url_unsubscribes_by_one_click(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exported URL is the one the gate honours: the platform's header works."""
    config = write_config(tmp_path)
    fill(tmp_path)
    assert cli("export", "subscribers", "--list", "week-in-review", "--config", str(config)) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    gate = ConsentGate(html_app(), config=Config.from_toml(config))

    async def one_click() -> int:
        async with client(gate) as provider:
            path = first["unsubscribe_url"].removeprefix("https://news.test")
            response = await provider.post(path, data={"List-Unsubscribe": "One-Click"})
            return response.status_code

    assert run(one_click()) == 200
    assert cli("export", "subscribers", "--list", "week-in-review", "--config", str(config)) == 0
    emails = [json.loads(line)["email"] for line in capsys.readouterr().out.splitlines()]
    assert emails == ["dora@example.org"]


def test_export_subscribers_csv_header_and_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill(tmp_path)
    args = ("export", "subscribers", "--list", "morning-brief", "--format", "csv")
    assert cli(*args, "--config", str(config)) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["email", "subscribed_at", "unsubscribe_url"]
    assert [r[:2] for r in rows[1:]] == [["eli@example.org", "2026-03-01T00:10:00Z"]]


def test_export_subscribers_unknown_list_exits_2_and_writes_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    out_file = tmp_path / "out.csv"
    args = ("export", "subscribers", "--list", "daily", "--output", str(out_file))
    assert cli(*args, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert "no newsletter 'daily'" in err and "week-in-review, morning-brief" in err
    assert not out_file.exists()


def test_export_subscribers_list_option_only_with_subscribers_and_no_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert cli("export", "subscribers", "--config", str(config)) == 2
    assert cli("export", "users", "--list", "week-in-review", "--config", str(config)) == 2
    assert "--list ID goes with `export subscribers`" in capsys.readouterr().err
    args = ("export", "subscribers", "--list", "week-in-review", "--since", "2026-03-01")
    assert cli(*args, "--config", str(config)) == 2
    assert "do not apply to subscribers" in capsys.readouterr().err


def test_export_subscribers_needs_the_secret_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, secret=False)
    assert cli("export", "subscribers", "--list", "week-in-review", "--config", str(config)) == 1
    assert "secret_keys" in capsys.readouterr().err


def _bulk_fill(path: Path, count: int) -> None:
    """The SQLite backend's own INSERTs, in one transaction (one fsync per row would
    take minutes)."""
    run(SQLiteStorage(path).open())
    queries = Queries(SQLITE)

    def users() -> Iterator[tuple[Any, ...]]:
        for i in range(count):
            user = User(email=f"reader{i}@example.org", password_hash=HASH, id=f"u{i:08d}")
            yield queries.user_params(user)

    def subscriptions() -> Iterator[tuple[Any, ...]]:
        for i in range(count):
            yield queries.subscription_params(row(f"u{i:08d}", "requested", i))
            yield queries.subscription_params(row(f"u{i:08d}", "confirmed", i + 1))

    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(queries.insert_user, users())
        conn.executemany(queries.insert_subscription, subscriptions())
    conn.close()


def test_export_subscribers_streams_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    _bulk_fill(tmp_path / "ledger.db", 6_000)
    out_file = tmp_path / "subscribers.jsonl"
    tracemalloc.start()
    try:
        status = cli(
            "export", "subscribers", "--list", "week-in-review",
            "--output", str(out_file), "--config", str(config),
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 0
    size = out_file.stat().st_size
    assert sum(1 for _ in out_file.open(encoding="utf-8")) == 6_000
    # Holding the rows (or the output) would take more than the output's size; what
    # streaming holds is a page of rows and the fixed cost of config, keys and imports.
    assert peak < size / 2, f"peak {peak} bytes for {size} bytes of output"


def test_export_subscribers_erased_reader_is_not_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill(tmp_path)
    assert cli("forget", "user", "ana@example.org", "--yes", "--config", str(config)) == 0
    capsys.readouterr()
    assert cli("export", "subscribers", "--list", "week-in-review", "--config", str(config)) == 0
    emails = [json.loads(line)["email"] for line in capsys.readouterr().out.splitlines()]
    assert emails == ["dora@example.org"]
    # The ledger keeps its rows as evidence, without the request details.
    connection = sqlite3.connect(tmp_path / "ledger.db")
    try:
        kept = connection.execute(
            "SELECT action, ip_hmac, user_agent FROM subscriptions"
            " WHERE user_id = 'u-ana' ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    assert kept == [("requested", None, None), ("confirmed", None, None)]
