"""The outbox sender in the app: ConsentGate with [mail] pointing at a real SMTP server
(aiosmtpd) starts it with the lifespan (or on the first request without one), sends what
lands in the outbox when woken, and stops it at shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import client, html_app, make_gate, run
from tests.mail_support import PASSWORD, USER, smtp_server

from consentgate import ConsentGate
from consentgate.config import ConfigError
from consentgate.mail.compose import compose_mail
from consentgate.storage import SQLiteStorage
from consentgate.storage.records import OutgoingMail


def _mail(number: int = 1) -> OutgoingMail:
    return compose_mail(
        recipient=f"reader{number}@example.org",
        kind="magic_link",
        language="es",
        site_name="El Diario",
        subject="Su enlace para entrar",
        paragraphs=["Hola:", "aquí tiene su enlace."],
        action_label="Entrar",
        action_url="https://diario.example/consentgate/signin?t=x",
    )


# The site's origin: mail links are built on it (required with an SMTP transport).
SITE = "https://diario.example"


def _smtp(port: int, **overrides: Any) -> dict[str, Any]:
    mail = {
        "transport": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": "noticias@diario.example",
        "timeout_seconds": 5,
        # A long poll: only wake() (or start-up) can make a test's mail go out in time.
        "poll_seconds": 300,
    }
    mail.update(overrides)
    return mail


async def _enqueue(tmp_path: Path, *mails: OutgoingMail) -> None:
    # Another connection to the gate's database, as another worker's request would be.
    async with SQLiteStorage(tmp_path / "ledger.db") as store:
        for mail in mails:
            await store.enqueue_mail(mail, datetime.now(UTC))


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Lifespan:
    """Drive the ASGI lifespan of ``gate`` around an app that acknowledges it."""

    def __init__(self, gate: ConsentGate) -> None:
        self.gate = gate
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> dict[str, Any]:
        self.task = asyncio.create_task(
            self.gate(
                {"type": "lifespan", "asgi": {"version": "3.0"}}, self.inbound.get, self._send
            )
        )
        await self.inbound.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self.outbound.get(), 5)

    async def shutdown(self) -> dict[str, Any]:
        await self.inbound.put({"type": "lifespan.shutdown"})
        message = await asyncio.wait_for(self.outbound.get(), 15)
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        return message

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self.outbound.put(dict(message))


def _app_with_lifespan() -> Any:
    page = html_app()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await page(scope, receive, send)

    return app


def test_mail_http_sender_runs_under_lifespan(tmp_path: Path) -> None:
    async def scenario(port: int) -> list[str]:
        gate = make_gate(_app_with_lifespan(), tmp_path, mail=_smtp(port), public_url=SITE)
        lifespan = Lifespan(gate)
        assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
        assert gate.mail_sender is not None and gate.mail_sender.running
        async with client(gate) as c:
            assert (await c.get("/news/1")).status_code == 200
        await _enqueue(tmp_path, _mail(1), _mail(2))
        gate.wake_mail()
        await _until(lambda: len(server.inbox.messages) == 2)
        assert (await lifespan.shutdown())["type"] == "lifespan.shutdown.complete"
        assert not gate.mail_sender.running
        async with SQLiteStorage(tmp_path / "ledger.db") as store:
            assert (await store.outbox_counts())["sent"] == 2
        return sorted(str(m["To"]) for m in server.inbox.messages)

    with smtp_server() as server:
        recipients = run(scenario(server.port))
    assert recipients == ["reader1@example.org", "reader2@example.org"]
    message = server.inbox.messages[0]
    assert message["From"].addresses[0].addr_spec == "noticias@diario.example"
    # No from_name: the site's name.
    assert message["From"].addresses[0].display_name == "This site"
    assert {p.get_content_type() for p in message.iter_parts()} == {"text/plain", "text/html"}


def test_mail_http_mail_written_before_start_goes_out_at_startup(tmp_path: Path) -> None:
    async def scenario(port: int) -> None:
        await _enqueue(tmp_path, _mail(3))
        gate = make_gate(_app_with_lifespan(), tmp_path, mail=_smtp(port), public_url=SITE)
        lifespan = Lifespan(gate)
        await lifespan.startup()
        await _until(lambda: len(server.inbox.messages) == 1)
        await lifespan.shutdown()

    with smtp_server() as server:
        run(scenario(server.port))
    assert str(server.inbox.messages[0]["To"]) == "reader3@example.org"


def test_mail_http_without_lifespan_first_request_starts_sender(tmp_path: Path) -> None:
    async def scenario(port: int) -> None:
        gate = make_gate(
            html_app(),
            tmp_path,
            mail=_smtp(port, username=USER, password_env="T_PW"),
            public_url=SITE,
        )
        assert gate.mail_sender is not None and not gate.mail_sender.running
        async with client(gate) as c:
            assert (await c.get("/news/1")).status_code == 200
        assert gate.mail_sender.running
        await _enqueue(tmp_path, _mail(4))
        gate.wake_mail()
        await _until(lambda: len(server.inbox.messages) == 1)
        await gate.mail_sender.stop()

    with smtp_server(auth=True) as server, pytest.MonkeyPatch.context() as env:
        env.setenv("T_PW", PASSWORD)
        run(scenario(server.port))


def test_mail_http_missing_password_variable_refused_at_start(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("T_PW_ABSENT", raising=False)
        with pytest.raises(ConfigError) as refused:
            make_gate(
                html_app(),
                tmp_path,
                mail=_smtp(25, username=USER, password_env="T_PW_ABSENT"),
                public_url=SITE,
            )
    assert refused.value.key == "mail.password_env"
    assert "T_PW_ABSENT" in refused.value.reason


def test_mail_http_unconfigured_mail_waits_in_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "consentgate"):
        gate = make_gate(html_app(), tmp_path)
    assert gate.mail_sender is None
    assert any("mail is not configured" in r.getMessage() for r in caplog.records)

    async def scenario() -> dict[str, int]:
        async with client(gate) as c:
            assert (await c.get("/news/1")).status_code == 200
        await _enqueue(tmp_path, _mail(5))
        gate.wake_mail()  # harmless: nothing to wake
        await asyncio.sleep(0.1)
        async with SQLiteStorage(tmp_path / "ledger.db") as store:
            return await store.outbox_counts()

    assert run(scenario())["pending"] == 1


def test_mail_http_directory_transport_writes_eml(tmp_path: Path) -> None:
    mail = {
        "transport": "directory",
        "directory": str(tmp_path / "mail"),
        "from_address": "n@x.example",
    }

    async def scenario() -> None:
        gate = make_gate(_app_with_lifespan(), tmp_path, mail=mail)
        lifespan = Lifespan(gate)
        await lifespan.startup()
        await _enqueue(tmp_path, _mail(6))
        gate.wake_mail()
        await _until(lambda: any((tmp_path / "mail").glob("*.eml")))
        await lifespan.shutdown()

    run(scenario())
    [eml] = (tmp_path / "mail").glob("*.eml")
    assert b"reader6@example.org" in eml.read_bytes()


def confirmation(messages: list[Any]) -> Any:
    """The newsletter's confirmation among the messages (not the address's verification)."""
    [found] = [m for m in messages if "Please confirm" in str(m["Subject"])]
    return found


def test_mail_http_double_opt_in_mail_arrives_and_its_link_confirms(tmp_path: Path) -> None:
    """Registration with a newsletter ticked: the confirmation mail reaches the SMTP
    server at once (woken, not polled), and the link in it confirms the subscription."""
    from tests.test_newsletters_http import LISTS, confirm, ledger, register

    async def scenario(port: int) -> None:
        gate = make_gate(
            _app_with_lifespan(),
            tmp_path,
            mail=_smtp(port),
            newsletters=LISTS,
            public_url="https://news.test",
        )
        lifespan = Lifespan(gate)
        await lifespan.startup()
        async with client(gate) as c:
            assert (await register(c, ["morning-brief"])).status_code == 303
            # Registering also sends the address's verification link: two messages.
            await _until(lambda: len(server.inbox.messages) == 2, within=3)
            text = next(
                p.get_content()
                for p in confirmation(server.inbox.messages).iter_parts()
                if p.get_content_type() == "text/plain"
            )
            # The URL alone on its line (the wire's CRLF line ends are lines too).
            [url] = [line for line in text.splitlines() if line.startswith("https://")]
            assert (await confirm(c, url.removeprefix("https://news.test"))).status_code in (
                200,
                303,
            )
        await lifespan.shutdown()

    with smtp_server() as server:
        run(scenario(server.port))
    message = confirmation(server.inbox.messages)
    assert str(message["To"]) == "reader@example.com"
    assert {p.get_content_type() for p in message.iter_parts()} == {"text/plain", "text/html"}
    assert [row[1] for row in ledger(tmp_path)] == ["requested", "confirmed"]
