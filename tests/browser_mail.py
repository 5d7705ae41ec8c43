"""The mail of the browser tests: the demo sends it by SMTP to a real server (aiosmtpd,
tests/mail_support.py) and the tests read each message as the server received it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from tests.mail_support import Inbox, SMTPServer, smtp_server

from consentgate.mail.settings import MailSettings


@pytest.fixture(scope="module", name="smtp")
def smtp_fixture() -> Iterator[SMTPServer]:
    """A real SMTP server for one test module."""
    with smtp_server() as server:
        yield server


def demo_mail(server: SMTPServer) -> MailSettings:
    """The demo's mail, delivered by plain SMTP to ``server`` on 127.0.0.1."""
    return MailSettings(
        transport="smtp",
        host="127.0.0.1",
        port=server.port,
        security="none",
        from_address="newsroom@harbour-ledger.example",
        timeout_seconds=5.0,
        poll_seconds=1.0,
    )


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage), "a message without a text part"
    return str(part.get_content())


def mailed(inbox: Inbox, recipient: str, subject: str, within: float = 10.0) -> EmailMessage:
    """The newest message to ``recipient`` whose subject has ``subject``, waiting for it."""
    deadline = time.monotonic() + within
    while True:
        with inbox.lock:
            found = [
                m
                for m in inbox.messages
                if str(m["To"]) == recipient and subject in str(m["Subject"])
            ]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no mail {subject!r} to {recipient}"
        time.sleep(0.05)


def mailed_link(inbox: Inbox, recipient: str, subject: str, within: float = 10.0) -> str:
    """The path and query of the link in that message (built on the demo's public_url,
    another port than the test server's)."""
    text = text_of(mailed(inbox, recipient, subject, within))
    match = re.search(r"https?://\S+?token=\S+", text)
    assert match, text
    url = urlsplit(match.group(0))
    return f"{url.path}?{url.query}"
