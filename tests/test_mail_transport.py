"""The mail transports against a real SMTP server (aiosmtpd): what arrives, AUTH, STARTTLS
and TLS with a certificate the client is told to trust, and how each failure is classed."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import pytest
from tests.conftest import run
from tests.mail_support import PASSWORD, USER, black_hole, free_port, self_signed, smtp_server

from consentgate.mail.compose import compose_mail
from consentgate.mail.message import build_message
from consentgate.mail.transport import DirectoryTransport, MailError, SMTPTransport

URL = "https://news.example/consentgate/verify?t=token"


def _message(kind: str = "verify_email", **headers: str) -> EmailMessage:
    mail = compose_mail(
        recipient="reader@example.org",
        kind=kind,
        language="fr",
        site_name="Le Journal",
        subject="Confirmez votre adresse — Le Journal",
        paragraphs=["Bonjour,", "merci de confirmer votre adresse « ici »."],
        action_label="Confirmer",
        action_url=URL,
        headers=tuple(headers.items()),
    )
    return build_message(mail, from_address="news@journal.example", from_name="Le Journal")


def _parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


def test_mail_transport_delivers_both_parts_and_headers() -> None:
    with smtp_server() as server:
        transport = SMTPTransport("127.0.0.1", server.port, security="none", timeout=5)
        run(transport.send(_message(**{"List-Unsubscribe": "<https://news.example/u>"})))
    [got] = server.inbox.messages
    assert server.inbox.envelopes == [("news@journal.example", ["reader@example.org"])]
    assert got.get_content_type() == "multipart/alternative"
    parts = _parts(got)
    assert list(parts) == ["text/plain", "text/html"]
    assert URL in parts["text/plain"].splitlines()
    assert "« ici »" in parts["text/plain"] and "« ici »" in parts["text/html"]
    assert f'href="{URL}"' in parts["text/html"]
    assert got["From"].addresses[0].display_name == "Le Journal"
    assert got["From"].addresses[0].addr_spec == "news@journal.example"
    assert got["To"] == "reader@example.org"
    assert got["Subject"] == "Confirmez votre adresse — Le Journal"
    assert got["Message-ID"].endswith("@journal.example>")
    assert got["Auto-Submitted"] == "auto-generated"
    assert got["Content-Language"] == "fr"
    assert got["List-Unsubscribe"] == "<https://news.example/u>"
    sent_at = email.utils.parsedate_to_datetime(got["Date"])
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 60


def test_mail_transport_newsletter_is_not_auto_submitted() -> None:
    assert _message(kind="newsletter")["Auto-Submitted"] is None


def test_mail_transport_message_ids_differ() -> None:
    assert _message()["Message-ID"] != _message()["Message-ID"]


def test_mail_transport_auth_plain_connection() -> None:
    with smtp_server(auth=True) as server:
        good = SMTPTransport(
            "127.0.0.1", server.port, security="none", username=USER, password=PASSWORD, timeout=5
        )
        run(good.send(_message()))
        assert len(server.inbox.messages) == 1
        wrong = SMTPTransport(
            "127.0.0.1", server.port, security="none", username=USER, password="nope", timeout=5
        )
        with pytest.raises(MailError) as failed:
            run(wrong.send(_message()))
    # A wrong password is our configuration, not the message: retried once fixed.
    assert failed.value.transient and "535" in failed.value.reason
    assert len(server.inbox.messages) == 1


def test_mail_transport_starttls_with_trusted_certificate(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    with smtp_server(auth=True, starttls=cert.server_context()) as server:
        transport = SMTPTransport(
            "127.0.0.1",
            server.port,
            username=USER,
            password=PASSWORD,
            timeout=5,
            ca_file=str(cert.cert),
        )
        run(transport.send(_message()))
        assert len(server.inbox.messages) == 1
        # Without trusting the certificate, the system's store refuses it: nothing sent.
        untrusting = SMTPTransport(
            "127.0.0.1", server.port, username=USER, password=PASSWORD, timeout=5
        )
        with pytest.raises(MailError) as failed:
            run(untrusting.send(_message()))
    assert failed.value.transient and "CERTIFICATE_VERIFY_FAILED" in failed.value.reason
    assert len(server.inbox.messages) == 1


def test_mail_transport_starttls_refuses_a_server_without_it() -> None:
    with smtp_server() as server:
        transport = SMTPTransport("127.0.0.1", server.port, security="starttls", timeout=5)
        with pytest.raises(MailError) as failed:
            run(transport.send(_message()))
    assert failed.value.transient and "STARTTLS" in failed.value.reason
    assert server.inbox.messages == []


def test_mail_transport_implicit_tls(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    with smtp_server(implicit_tls=cert.server_context()) as server:
        transport = SMTPTransport(
            "127.0.0.1", server.port, security="tls", timeout=5, ca_file=str(cert.cert)
        )
        run(transport.send(_message()))
    assert len(server.inbox.messages) == 1


def test_mail_transport_nothing_listening_is_transient() -> None:
    transport = SMTPTransport("127.0.0.1", free_port(), security="none", timeout=5)
    with pytest.raises(MailError) as failed:
        run(transport.send(_message()))
    assert failed.value.transient and failed.value.reason.startswith("connect:")


def test_mail_transport_black_hole_times_out_within_the_bound() -> None:
    with black_hole() as port:
        transport = SMTPTransport("127.0.0.1", port, security="none", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(MailError) as failed:
            run(transport.send(_message()))
        elapsed = time.monotonic() - started
    assert failed.value.transient
    assert 0.4 < elapsed < 2.0


@pytest.mark.parametrize(
    ("reply", "transient"), [("550 5.1.1 no such user", False), ("451 4.3.0 try later", True)]
)
def test_mail_transport_recipient_refusal_classed_by_code(reply: str, transient: bool) -> None:
    with smtp_server() as server:
        server.inbox.rcpt_reply = reply
        transport = SMTPTransport("127.0.0.1", server.port, security="none", timeout=5)
        with pytest.raises(MailError) as failed:
            run(transport.send(_message()))
    assert failed.value.transient is transient
    assert reply.split()[0] in failed.value.reason


@pytest.mark.parametrize(
    ("stage", "reply", "transient"),
    [
        ("mail_reply", "553 5.7.1 sender not owned by user", True),
        ("mail_reply", "552 5.3.4 message too big", False),
        ("data_reply", "554 5.7.1 content refused", False),
        ("data_reply", "452 4.3.1 out of storage", True),
    ],
)
def test_mail_transport_sender_and_data_refusals_classed(
    stage: str, reply: str, transient: bool
) -> None:
    with smtp_server() as server:
        setattr(server.inbox, stage, reply)
        transport = SMTPTransport("127.0.0.1", server.port, security="none", timeout=5)
        with pytest.raises(MailError) as failed:
            run(transport.send(_message()))
    assert failed.value.transient is transient
    assert reply.split()[0] in failed.value.reason
    assert server.inbox.messages == []


def test_mail_transport_directory_writes_eml_files(tmp_path: Path) -> None:
    transport = DirectoryTransport(tmp_path / "outbox")
    run(transport.send(_message()))
    run(transport.send(_message()))
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    parsed = BytesParser(policy=default_policy).parse(files[0].open("rb"))
    assert isinstance(parsed, EmailMessage)
    assert URL in _parts(parsed)["text/plain"].splitlines()


def test_mail_transport_directory_unwritable_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(MailError) as failed:
        run(DirectoryTransport(blocker / "outbox").send(_message()))
    assert failed.value.transient
