"""The operator commands: migrate, export, show, forget, stats, admin-token.

Every test runs the real ``consentgate`` entry point (``main([...])``) against a real
SQLite ledger in ``tmp_path``, filled through the storage API (and, in one test,
through the middleware over HTTP).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SECRET, client, decide, html_app, make_gate, run

from consentgate.cli import main
from consentgate.config import Config
from consentgate.operator.export import Progress
from consentgate.storage import (
    AcceptanceRecord,
    ConsentRecord,
    SessionRecord,
    SQLiteStorage,
    User,
)
from consentgate.storage.records import SubscriptionRecord
from consentgate.storage.sql.dialect import SQLITE
from consentgate.storage.sql.queries import Queries

POLICY_SHA = "c" * 64
BANNER_SHA = "b" * 64
PASSWORD_HASH = "scrypt$16384$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, tzinfo=UTC)
ALL = ("necessary", "preferences", "analytics", "marketing")
# Windows need a start and span at most 366 days (as on the dashboard); the datasets'
# windows are spelled out in full, so that the tests do not depend on today's date.
WINDOW = ("--since", "2026-03-01", "--until", "2026-03-03")
BULK_WINDOW = ("--since", "2026-01-01", "--until", "2026-01-02")


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f'secret_keys = ["{SECRET}"]\ndatabase_url = "sqlite:///{db_path(tmp_path)}"\n'
        'site_name = "The Test Gazette"\n',
        encoding="utf-8",
    )
    return path


def consent(
    cid: str,
    action: str,
    granted: tuple[str, ...],
    method: str,
    at: datetime,
    *,
    user_id: str | None = None,
) -> ConsentRecord:
    return ConsentRecord(
        consent_id=cid,
        user_id=user_id,
        action=action,
        granted=granted,
        denied=tuple(c for c in ALL if c not in granted),
        policy_version="2026-01",
        banner_text_sha256=BANNER_SHA,
        language="en",
        region_mode="opt-in",
        method=method,
        ip_hmac="d" * 64,
        user_agent="Mozilla/5.0 (test)",
        recorded_at=at,
    )


def acceptance(user_id: str, at: datetime, purpose: str = "privacy_policy") -> AcceptanceRecord:
    return AcceptanceRecord(
        user_id=user_id,
        purpose=purpose,
        policy_version="2026-01",
        policy_sha256=POLICY_SHA,
        granted=True,
        method="registration",
        ip_hmac="e" * 64,
        user_agent="Mozilla/5.0 (test)",
        recorded_at=at,
    )


# The known dataset: 4 consent ids over two days, one GPC, one account.
#   A: grant (analytics, marketing) form d1 → update (analytics) js d2
#   B: reject form d1
#   C: gpc (preferences, analytics) d1 → update (analytics) form d2
#   D: grant everything api d2
DATASET = [
    consent("a" * 32, "grant", ("necessary", "analytics", "marketing"), "form",
            DAY1 + timedelta(hours=10), user_id="user-1"),
    consent("b" * 32, "reject", ("necessary",), "form", DAY1 + timedelta(hours=11)),
    consent("c" * 32, "gpc", ("necessary", "preferences", "analytics"), "gpc",
            DAY1 + timedelta(hours=12)),
    consent("a" * 32, "update", ("necessary", "analytics"), "js",
            DAY2 + timedelta(hours=9), user_id="user-1"),
    consent("d" * 32, "grant", ALL, "api", DAY2 + timedelta(hours=10)),
    consent("c" * 32, "update", ("necessary", "analytics"), "form", DAY2 + timedelta(hours=11)),
]  # fmt: skip


async def _fill(path: Path) -> None:
    async with SQLiteStorage(path) as storage:
        for rec in DATASET:
            await storage.record_consent(rec)
        user = User(
            email="reader@example.org",
            password_hash=PASSWORD_HASH,
            created_at=DAY1 + timedelta(hours=10),
            id="user-1",
        )
        await storage.create_user(
            user,
            [
                acceptance("user-1", DAY1 + timedelta(hours=10)),
                acceptance("user-1", DAY1 + timedelta(hours=10), "newsletter"),
            ],
        )
        other = User(
            email="other@example.org",
            password_hash=PASSWORD_HASH,
            created_at=DAY2 + timedelta(hours=8),
            id="user-2",
        )
        await storage.create_user(other, [acceptance("user-2", DAY2 + timedelta(hours=8))])
        await storage.add_counts(
            DAY1.date(), {"banner_impressions": 10, "wall_impressions": 4, "registrations": 1}
        )
        await storage.add_counts(
            DAY2.date(), {"banner_impressions": 6, "wall_impressions": 6, "registrations": 2}
        )


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """The config file of a ledger holding DATASET, two accounts and two days of counts."""
    config = write_config(tmp_path)
    run(_fill(db_path(tmp_path)))
    return config


def cli(*args: str) -> int:
    return main(list(args))


# -- migrate -----------------------------------------------------------------------------


def test_migrate_applies_then_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert cli("migrate", "--config", str(config)) == 0
    first = capsys.readouterr().out
    assert "applied migration" in first
    assert cli("migrate", "--config", str(config)) == 0
    second = capsys.readouterr().out.strip()
    assert second.endswith("already at version " + first.strip().rsplit(" ", 1)[-1])


def test_migrate_missing_config_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("migrate", "--config", str(tmp_path / "nope.toml")) == 1
    assert "configuration file not found" in capsys.readouterr().err


def test_migrate_default_config_is_consentgate_toml_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli("migrate") == 0
    assert db_path(tmp_path).exists()


# -- export ------------------------------------------------------------------------------


def test_export_consents_jsonl_parses_with_utc_times(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("export", "consents", "--config", str(filled)) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(DATASET)
    assert [r["consent_id"] for r in rows] == [r.consent_id for r in DATASET]
    assert rows[0]["recorded_at"] == "2026-03-01T10:00:00Z"
    assert rows[0]["granted"] == ["necessary", "analytics", "marketing"]
    assert "\r" not in err  # not a terminal: no progress bar


def test_export_consents_csv_has_header_and_since_until(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "out.csv"
    args = ["export", "consents", "--format", "csv", "--output", str(out_file)]
    window = ["--since", "2026-03-01T11:00:00Z", "--until", "2026-03-02T10:00:00"]
    assert cli(*args, *window, "--config", str(filled)) == 0
    with out_file.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["id", "consent_id", "user_id", "action"]
    assert [r[3] for r in rows[1:]] == ["reject", "gpc", "update"]  # 11:00 in, 10:00 d2 out
    header = rows[0]
    assert rows[1][header.index("granted")] == "necessary"
    assert rows[2][header.index("denied")] == "marketing"
    assert "3 consents rows written" in capsys.readouterr().err


def test_export_acceptances_and_users_never_carry_password_hashes(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("export", "acceptances", "--config", str(filled)) == 0
    acceptances = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["user_id"], a["purpose"]) for a in acceptances] == [
        ("user-1", "privacy_policy"),
        ("user-1", "newsletter"),
        ("user-2", "privacy_policy"),
    ]
    assert cli("export", "users", "--format", "csv", "--config", str(filled)) == 0
    out = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [
        ["id", "email", "created_at"],
        ["user-1", "reader@example.org", "2026-03-01T10:00:00Z"],
        ["user-2", "other@example.org", "2026-03-02T08:00:00Z"],
    ]
    assert "scrypt" not in out
    assert cli("export", "users", "--since", "2026-03-02", "--config", str(filled)) == 0
    users = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [u["id"] for u in users] == ["user-2"]


def test_export_bad_window_is_a_usage_error(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("export", "consents", "--since", "yesterday", "--config", str(filled)) == 2
    assert "not an ISO-8601" in capsys.readouterr().err
    args = ("--since", "2026-03-02", "--until", "2026-03-01")
    assert cli("export", "consents", *args, "--config", str(filled)) == 2


def test_export_progress_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    ticks = iter(range(1000))
    tty = Tty()
    progress = Progress(tty, clock=lambda: float(next(ticks)), every=0.0)
    for _ in range(3):
        progress.tick()
    progress.done()
    assert "3 rows" in tty.getvalue() and "rows/s" in tty.getvalue()
    plain = io.StringIO()
    quiet = Progress(plain)
    quiet.tick()
    quiet.done()
    assert not quiet.enabled and plain.getvalue() == ""


def _bulk_fill(path: Path, rows: int) -> None:
    """The SQLite backend's own INSERT and row encoding, in one transaction (one fsync
    per row would take minutes)."""
    run(SQLiteStorage(path).open())  # creates the schema; then append in bulk
    base = datetime(2026, 1, 1, tzinfo=UTC)
    queries = Queries(SQLITE)

    def records() -> Iterator[tuple[Any, ...]]:
        for i in range(rows):
            granted = ALL if i % 3 else ("necessary",)
            rec = consent(f"{i:032x}", "grant", granted, "form", base + timedelta(seconds=i))
            yield queries.consent_params(rec)

    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(queries.insert_consent, records())
    conn.close()


def test_export_20000_rows_runs_in_constant_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    _bulk_fill(db_path(tmp_path), 20_000)
    out_file = tmp_path / "all.jsonl"
    tracemalloc.start()
    try:
        status = cli("export", "consents", "--output", str(out_file), "--config", str(config))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 0
    size = out_file.stat().st_size
    assert sum(1 for _ in out_file.open(encoding="utf-8")) == 20_000
    assert size > 8_000_000
    assert peak < size / 5, f"peak {peak} bytes for {size} bytes of output"


def test_stats_20000_rows_runs_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    _bulk_fill(db_path(tmp_path), 20_000)
    tracemalloc.start()
    try:
        status = cli("stats", "--json", *BULK_WINDOW, "--config", str(config))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["consent_ids"] == 20_000
    assert figures["consent_rate"]["categories"]["analytics"]["granted"] == 13_333
    assert peak < 2_000_000, f"peak {peak} bytes"


# -- show --------------------------------------------------------------------------------


def test_show_consent_prints_the_whole_history(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("show", "consent", "c" * 32, "--config", str(filled)) == 0
    out = capsys.readouterr().out
    assert "2 ledger rows" in out
    assert out.index("gpc by gpc") < out.index("update by form")
    assert "banner text sha256 " + BANNER_SHA in out
    assert cli("show", "consent", "c" * 32, "--json", "--config", str(filled)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["found"] is True
    assert [r["action"] for r in data["records"]] == ["gpc", "update"]
    assert data["records"][0]["recorded_at"] == "2026-03-01T12:00:00Z"


def test_show_consent_unknown_id_exits_1(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("show", "consent", "f" * 32, "--config", str(filled)) == 1
    assert "No ledger rows" in capsys.readouterr().out


def test_show_user_lists_account_acceptances_consents_and_meter(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("show", "user", "Reader@Example.org", "--config", str(filled)) == 0
    out = capsys.readouterr().out
    assert "reader@example.org" in out and "user-1" in out
    assert "a scrypt hash is stored" in out
    assert PASSWORD_HASH not in out and "c2FsdHNhbHQ" not in out
    assert "privacy_policy granted by registration, policy version 2026-01" in out
    assert POLICY_SHA in out
    assert "consent id " + "a" * 32 in out
    assert "cg_meter" in out and "cannot be listed per person" in out
    assert cli("show", "user", "reader@example.org", "--json", "--config", str(filled)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["account"]["email"] == "reader@example.org"
    assert "password_hash" not in json.dumps(data)
    assert [a["purpose"] for a in data["acceptances"]] == ["privacy_policy", "newsletter"]
    assert [c["action"] for c in data["consents"]] == ["grant", "update"]
    assert data["consent_ids"] == ["a" * 32]


async def _subscribe_and_sign_in(path: Path) -> str:
    """user-1 asks for a list and confirms it, and signs in on two browsers (and user-2
    on one, which is not theirs); the first session's hash, which must never be shown."""
    async with SQLiteStorage(path) as storage:
        for action, hours in (("requested", 11), ("confirmed", 12)):
            await storage.record_subscription(
                SubscriptionRecord(
                    user_id="user-1",
                    list_id="morning-brief",
                    action=action,
                    method="registration" if action == "requested" else "email_link",
                    text_shown="The Morning Brief",
                    ip_hmac="f" * 64,
                    user_agent="Firefox",
                    recorded_at=DAY1 + timedelta(hours=hours),
                )
            )
        for n, (subject, hours) in enumerate((("user-1", 14), ("user-1", 13), ("user-2", 9))):
            created = DAY1 + timedelta(hours=hours)
            await storage.create_session(
                SessionRecord(
                    f"{n + 1:064x}", "reader", subject, created, created + timedelta(days=30)
                )
            )
    return f"{1:064x}"


def test_show_user_lists_newsletter_rows_and_sessions(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    id_hash = run(_subscribe_and_sign_in(db_path(filled.parent)))
    assert cli("show", "user", "reader@example.org", "--config", str(filled)) == 0
    out = capsys.readouterr().out
    assert "Newsletter subscription rows (2)" in out
    assert "2026-03-01T12:00:00Z  morning-brief confirmed by email_link" in out
    assert "Sessions on the server (2)" in out
    assert "started 2026-03-01T13:00:00Z, ends 2026-03-31T13:00:00Z" in out
    assert id_hash not in out
    assert cli("show", "user", "reader@example.org", "--json", "--config", str(filled)) == 0
    raw = capsys.readouterr().out
    data = json.loads(raw)
    assert [(r["list_id"], r["action"]) for r in data["newsletter_subscriptions"]] == [
        ("morning-brief", "requested"),
        ("morning-brief", "confirmed"),
    ]
    assert data["sessions"] == [
        {"created_at": "2026-03-01T13:00:00Z", "expires_at": "2026-03-31T13:00:00Z"},
        {"created_at": "2026-03-01T14:00:00Z", "expires_at": "2026-03-31T14:00:00Z"},
    ]
    assert id_hash not in raw and "SHA-256" in data["sessions_note"]


def test_show_user_unknown_email_exits_1(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("show", "user", "nobody@example.org", "--config", str(filled)) == 1
    assert "no account" in capsys.readouterr().err


# -- forget ------------------------------------------------------------------------------


async def _state(path: Path) -> tuple[User | None, list[AcceptanceRecord], list[ConsentRecord]]:
    async with SQLiteStorage(path) as storage:
        return (
            await storage.user_by_email("reader@example.org"),
            await storage.acceptances_for("user-1"),
            await storage.consent_history("a" * 32),
        )


def test_forget_user_erases_account_and_pseudonymises_proof(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("forget", "user", "reader@example.org", "--yes", "--config", str(filled)) == 0
    out = capsys.readouterr().out
    assert "erased" in out and "pseudonymised" in out
    user, acceptances, history = run(_state(db_path(tmp_path)))
    assert user is None
    assert len(acceptances) == 2  # kept as proof…
    assert all(a.ip_hmac is None and a.user_agent is None for a in acceptances)  # …unlinked
    assert all(a.policy_sha256 == POLICY_SHA for a in acceptances)
    assert len(history) == 2
    assert all(c.ip_hmac is None and c.user_agent is None for c in history)
    # Rows of other readers are untouched.
    assert cli("show", "consent", "b" * 32, "--json", "--config", str(filled)) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["ip_hmac"] == "d" * 64
    # And it is gone for `show` too.
    assert cli("show", "user", "reader@example.org", "--config", str(filled)) == 1


def test_forget_user_asks_and_does_nothing_without_yes(
    filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert cli("forget", "user", "reader@example.org", "--config", str(filled)) == 1
    assert "Nothing was changed" in capsys.readouterr().err
    user, acceptances, _ = run(_state(db_path(tmp_path)))
    assert user is not None and acceptances[0].ip_hmac == "e" * 64
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert cli("forget", "user", "reader@example.org", "--config", str(filled)) == 0
    assert run(_state(db_path(tmp_path)))[0] is None


def test_forget_user_unknown_email_exits_1(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("forget", "user", "nobody@example.org", "--yes", "--config", str(filled)) == 1


# -- stats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "named"),
    [
        ((), "give --since"),
        (("--until", "2026-03-03"), "give --since"),
        (("--since", "2025-03-01", "--until", "2026-03-03"), "spans 367.0 days"),
        (("--since", "0001-01-01", "--until", "9999-12-31"), "windows span at most 366 days"),
        (("--since", "2000-01-01"), "to now spans"),
    ],
    ids=["no-window", "no-start", "367-days", "all-time", "open-end"],
)
def test_stats_window_without_start_or_over_366_days_exits_2_before_any_storage_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], window: tuple[str, ...], named: str
) -> None:
    config = write_config(tmp_path)
    assert cli("stats", "--json", *window, "--config", str(config)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("consentgate: stats: ")
    assert named in captured.err and "366 days" in captured.err
    assert "Traceback" not in captured.err
    assert not db_path(tmp_path).exists()  # the storage was never opened


def test_stats_window_of_exactly_366_days_is_answered(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ("--since", "2025-03-02", "--until", "2026-03-03")  # 366 days
    assert cli("stats", "--json", *window, "--config", str(filled)) == 0
    assert json.loads(capsys.readouterr().out)["decisions"]["total"] == 6


def test_stats_known_dataset_figures(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("stats", "--json", *WINDOW, "--config", str(filled)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decisions"]["total"] == 6
    assert data["decisions"]["by_action"] == {
        "grant": 2, "reject": 1, "update": 2, "withdraw": 0, "gpc": 1,
    }  # fmt: skip
    assert data["decisions"]["by_method"] == {"form": 3, "js": 1, "api": 1, "gpc": 1}
    assert data["consent_ids"] == 4
    rates = data["consent_rate"]["categories"]
    assert list(rates) == ["preferences", "analytics", "marketing"]  # config order, no required
    assert rates["analytics"] == {"granted": 3, "total": 4, "rate": 0.75}
    assert rates["marketing"]["rate"] == 0.25  # A updated marketing away; only D
    assert rates["preferences"]["rate"] == 0.25  # C's GPC-time preferences were replaced
    assert data["consent_rate"]["basis"].startswith("latest decision")
    assert data["gpc"] == {"consent_ids": 1, "share": 0.25}
    assert data["banner"] == {"impressions": 16, "answers": 4, "answer_rate": 0.25}
    assert data["wall"] == {"impressions": 10, "registrations": 3, "conversion": 0.3}
    assert [(d["day"], d["decisions"], d["wall_impressions"]) for d in data["days"]] == [
        ("2026-03-01", 3, 4),
        ("2026-03-02", 3, 6),
    ]


def test_stats_window_applies_to_ledger_and_counters(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day2 = ("--since", "2026-03-02", "--until", "2026-03-03")
    assert cli("stats", "--json", *day2, "--config", str(filled)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decisions"]["total"] == 3
    assert data["gpc"]["consent_ids"] == 0
    assert data["consent_rate"]["categories"]["analytics"]["rate"] == 1.0
    assert data["wall"] == {"impressions": 6, "registrations": 2, "conversion": 2 / 6}
    day1 = ("--since", "2026-03-01", "--until", "2026-03-02")
    assert cli("stats", "--json", *day1, "--config", str(filled)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decisions"]["total"] == 3
    assert data["banner"]["impressions"] == 10
    assert [d["day"] for d in data["days"]] == ["2026-03-01"]


def test_stats_text_output_names_every_figure(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("stats", *WINDOW, "--config", str(filled)) == 0
    out = capsys.readouterr().out
    assert "Decisions recorded: 6" in out
    assert "analytics" in out and "75.0 %" in out
    assert "GPC: 1 of 4 consent ids (25.0 %)" in out
    assert "Wall: 10 impressions, 3 registrations = 30.0 % conversion" in out


class _Checker(HTMLParser):
    """Collects tags, and fails on end tags that close nothing open (void tags aside)."""

    VOID = frozenset({"meta", "link", "br", "input", "img", "hr", "source", "wbr"})
    SVG_SELF_CLOSING = frozenset({"rect", "line", "polyline", "path", "circle"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def check_html(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    return checker


def test_stats_html_report_is_well_formed_and_self_contained(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.html"
    assert cli("stats", "--html", str(report), *WINDOW, "--config", str(filled)) == 0
    text = report.read_text(encoding="utf-8")
    checker = check_html(text)
    assert checker.tags.count("svg") >= 4  # 3 charts + legends' swatches
    assert "script" not in checker.tags and "link" not in checker.tags
    urls = [v for k, v in checker.attrs if k in ("src", "href") and v]
    assert urls == [], urls
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text
    assert "Decisions per day" in text and "Consent rate per category" in text
    assert "Funnel" in text and "The Test Gazette" in text
    assert 'role="img"' in text
    assert "report written to" in capsys.readouterr().err


# -- admin-token -------------------------------------------------------------------------


def test_admin_token_prints_token_and_config_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("admin-token") == 0
    lines = capsys.readouterr().out.splitlines()
    token = lines[0]
    assert len(token) >= 40
    assert lines[2] == "[admin]"
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert lines[3] == f'token_sha256 = "{digest}"'
    parsed = Config.from_mapping({"admin": {"token_sha256": digest}}, require_secret_keys=False)
    assert parsed.admin_token_sha256 == digest
    assert cli("admin-token") == 0
    assert capsys.readouterr().out.splitlines()[0] != token


# -- through the middleware --------------------------------------------------------------


def test_export_and_stats_of_decisions_made_over_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)

    async def browse() -> None:
        gate = make_gate(html_app(), tmp_path)
        try:
            async with client(gate) as reader:
                assert (await decide(reader, "accept_all")).status_code == 303
                assert (await decide(reader, "save", ["analytics"])).status_code == 303
            async with client(gate) as other:
                assert (await decide(other, "reject_all")).status_code == 303
        finally:
            await gate.ledger.close()

    run(browse())
    assert cli("export", "consents", "--config", str(config)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["action"] for r in rows] == ["grant", "update", "reject"]
    assert rows[0]["consent_id"] == rows[1]["consent_id"] != rows[2]["consent_id"]
    assert all(r["method"] == "form" and r["recorded_at"].endswith("Z") for r in rows)
    today = datetime.now(UTC).date().isoformat()
    assert cli("stats", "--json", "--since", today, "--config", str(config)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["consent_ids"] == 2
    assert data["consent_rate"]["categories"]["analytics"]["rate"] == 0.5
    assert data["consent_rate"]["categories"]["marketing"]["rate"] == 0.0
