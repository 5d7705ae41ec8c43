"""Delivering one message: the port the outbox sender uses, and its implementations.

``send`` either returns (the message was accepted) or raises :class:`MailError`, whose
``transient`` says whether trying again later can help. Only a refusal of *this message*
(5xx to its recipient or its data, or 552 "too big") is permanent. A 5xx during the
session's set-up (greeting, STARTTLS, AUTH), to our sender address, or a TLS failure says
nothing about the message, only about our configuration or the server: retried, so that
fixing a wrong password or from_address sends the waiting mail instead of losing it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import smtplib
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Literal, Protocol

from consentgate.errors import ConfigError
from consentgate.mail.settings import MailSettings

__all__ = [
    "DirectoryTransport",
    "MailError",
    "MailTransport",
    "SMTPTransport",
    "Security",
    "transport_from_settings",
]

Security = Literal["starttls", "tls", "none"]


class MailError(Exception):
    """A message was not delivered; ``transient``: it may be later."""

    def __init__(self, transient: bool, reason: str) -> None:
        super().__init__(reason)
        self.transient = transient
        self.reason = reason


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise :class:`MailError`."""
        ...


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {words}".strip()


@contextmanager
def _session_errors(stage: str) -> Iterator[None]:
    """Any failure before the message is handed over: transient (see the module doc)."""
    try:
        yield
    except MailError:
        raise
    except smtplib.SMTPResponseException as exc:
        raise MailError(True, f"{stage}: {_reply(exc.smtp_code, exc.smtp_error)}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS
        raise MailError(True, f"{stage}: {type(exc).__name__}: {exc}") from exc


class SMTPTransport:
    """SMTP with the standard library's client, in a worker thread.

    ``timeout`` bounds the connection and every command (it is the socket's timeout), so
    a server that accepts the connection and then says nothing costs ``timeout`` seconds
    and a transient error, never a stuck sender. ``starttls`` refuses a server that does
    not offer STARTTLS rather than sending in the clear.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ca_file: str | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host = host
        self.port = port
        self.security = security
        self.timeout = timeout
        self._username = username
        self._password = password
        self._local_hostname = local_hostname
        # The system's trust store, or only the CA (or self-signed certificate) given.
        self._context = ssl.create_default_context(cafile=ca_file)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._local_hostname,
                timeout=self.timeout,
                context=self._context,
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout
        )

    def _send(self, message: EmailMessage) -> None:
        with _session_errors("connect"):
            client = self._connect()
        try:
            with _session_errors("session"):
                client.ehlo()
                if self.security == "starttls":
                    if not client.has_extn("starttls"):
                        raise MailError(True, "session: the server does not offer STARTTLS")
                    client.starttls(context=self._context)
                    client.ehlo()
                if self._username is not None and self._password is not None:
                    client.login(self._username, self._password)
            self._hand_over(client, message)
        except BaseException:
            # No QUIT after a failure: a server that stopped answering would make it
            # wait out another timeout.
            client.close()
            raise
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            # The message was accepted: a QUIT that fails changes nothing.
            client.close()

    @staticmethod
    def _hand_over(client: smtplib.SMTP, message: EmailMessage) -> None:
        try:
            refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            reasons = "; ".join(_reply(code, text) for code, text in exc.recipients.values())
            raise MailError(
                not all(code >= 500 for code in codes), f"recipient: {reasons}"
            ) from exc
        except smtplib.SMTPSenderRefused as exc:
            # Our from_address refused is our configuration, true of every message:
            # retried. Only "too big" (552, the SIZE given with MAIL FROM) is this one's.
            raise MailError(
                exc.smtp_code != 552, f"sender: {_reply(exc.smtp_code, exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPDataError as exc:
            raise MailError(
                exc.smtp_code < 500, f"data: {_reply(exc.smtp_code, exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. a UTF-8 address, no SMTPUTF8
            raise MailError(False, f"message: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                exc.smtp_code < 500, f"send: {_reply(exc.smtp_code, exc.smtp_error)}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(True, f"send: {type(exc).__name__}: {exc}") from exc
        if refused:  # one recipient per message: a partial refusal cannot happen, but say so
            raise MailError(True, f"recipient: {refused!r}")


class DirectoryTransport:
    """Each message as an ``.eml`` file in ``directory``: for development and the demo,
    where the mail a reader would get can be opened in any mail client."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{secrets.token_hex(4)}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = self.directory / f".{name}.partial"
            partial.write_bytes(message.as_bytes(policy=SMTP_POLICY))
            # Renamed when complete: whoever watches the directory never reads half a mail.
            partial.replace(self.directory / name)
        except OSError as exc:
            raise MailError(True, f"directory: {exc}") from exc


def transport_from_settings(
    settings: MailSettings, environ: Mapping[str, str] = os.environ
) -> MailTransport | None:
    """The transport ``[mail]`` names; None for ``transport = "none"``. The password is
    read from the environment variable ``password_env`` names, now: missing, it stops
    the start-up naming the key, not the first mail."""
    if settings.transport == "none":
        return None
    if settings.transport == "directory":
        if settings.directory is None:  # the config reader requires it; settings built by hand
            raise ConfigError("mail.directory", 'needed with transport = "directory"')
        return DirectoryTransport(settings.directory)
    password: str | None = None
    if settings.password_env is not None:
        password = environ.get(settings.password_env)
        if not password:
            raise ConfigError(
                "mail.password_env",
                f"the environment variable {settings.password_env} is not set (or empty)",
            )
    return SMTPTransport(
        settings.host,
        settings.effective_port,
        security=settings.security,
        username=settings.username,
        password=password,
        timeout=settings.timeout_seconds,
        ca_file=settings.ca_file,
    )
