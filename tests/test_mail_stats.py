"""What an operator sees of the outbox while the mail server is down: ``consentgate
stats`` (text and JSON) and the dashboard show what waits, what failed, what was given
up, and how long the oldest message has waited."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import SECRET, client, html_app, make_gate, run
from tests.mail_support import free_port

from consentgate.cli import main
from consentgate.mail.compose import compose_mail
from consentgate.mail.sender import OutboxSender
from consentgate.mail.transport import SMTPTransport
from consentgate.operator.stats import describe_age
from consentgate.storage import SQLiteStorage
from consentgate.storage.records import OutgoingMail

TOKEN = "admin-token-for-mail-tests-0123456789abcdefghijkl"
WINDOW = ("--since", "2026-03-01", "--until", "2026-03-03")


def _mail(number: int) -> OutgoingMail:
    return compose_mail(
        recipient=f"reader{number}@example.org",
        kind="password_reset",
        language="tr",
        site_name="Haber",
        subject="Parolanızı sıfırlayın",
        paragraphs=["Merhaba,"],
        action_label="Sıfırla",
        action_url=f"https://haber.example/reset?t={number}",
    )


async def _outbox_while_smtp_is_down(database: Path) -> datetime:
    """Two messages tried against a server that is down, one given up, one sent."""
    written = datetime.now(UTC) - timedelta(hours=3, minutes=10)
    async with SQLiteStorage(database) as store:
        ids = [await store.enqueue_mail(_mail(n), written) for n in range(4)]
        await store.mark_mail_sent(ids[2], written + timedelta(seconds=1))
        await store.mark_mail_failed(ids[3], "550 5.1.1 no such mailbox", None)
        down = SMTPTransport("127.0.0.1", free_port(), security="none", timeout=2)
        sender = OutboxSender(store, down, from_address="haber@haber.example")
        assert await sender.run_once() == 2
    return written


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f'secret_keys = ["{SECRET}"]\ndatabase_url = "sqlite:///{tmp_path / "ledger.db"}"\n',
        encoding="utf-8",
    )
    return path


def test_mail_stats_cli_shows_the_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = run(_outbox_while_smtp_is_down(tmp_path / "ledger.db"))
    config = _config(tmp_path)
    assert main(["stats", "--json", *WINDOW, "--config", str(config)]) == 0
    outbox = json.loads(capsys.readouterr().out)["outbox"]
    age = outbox.pop("oldest_pending_age_seconds")
    assert 3 * 3600 <= age < 4 * 3600
    assert outbox == {
        "pending": 2,
        "retrying": 2,
        "dead": 1,
        "sent": 1,
        "oldest_pending": written.replace(tzinfo=None).isoformat() + "Z",
    }
    assert main(["stats", *WINDOW, "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "Outbox (now): 2 waiting (2 after failed tries), 1 given up, 1 sent" in text
    assert "3 h 10 min ago" in text
    assert "consentgate.mail" in text


def test_mail_stats_dashboard_shows_the_outbox(tmp_path: Path) -> None:
    sha = hashlib.sha256(TOKEN.encode()).hexdigest()
    gate = make_gate(html_app(), tmp_path, admin={"token_sha256": sha})
    run(_outbox_while_smtp_is_down(tmp_path / "ledger.db"))

    async def go() -> str:
        async with client(gate) as c:
            response = await c.get(
                "/consentgate/admin", headers={"authorization": f"Bearer {TOKEN}"}
            )
            assert response.status_code == 200
            return response.text

    page = run(go())
    section = page[page.index('<h2 id="outbox">') :]
    assert "Waiting<strong>2</strong>" in section
    assert "After failed tries<strong>2</strong>" in section
    assert "Given up<strong>1</strong>" in section
    assert "Sent<strong>1</strong>" in section
    assert "<strong>3 h 10 min" in section


def test_mail_stats_empty_outbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["migrate", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["stats", "--json", *WINDOW, "--config", str(config)]) == 0
    outbox = json.loads(capsys.readouterr().out)["outbox"]
    assert outbox["pending"] == 0 and outbox["oldest_pending"] is None
    assert outbox["oldest_pending_age_seconds"] is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h 0 min"),
     (90061, "1 d 1 h")],
)  # fmt: skip
def test_mail_stats_describe_age(seconds: int, text: str) -> None:
    assert describe_age(timedelta(seconds=seconds)) == text
