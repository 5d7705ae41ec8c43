"""The settings of outgoing mail (``[mail]``); ``consentgate.config`` reads them from
TOML, fields, defaults and ranges coming from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_PORTS", "MailSettings"]

#: The port each security usually listens on: submission (587) speaks STARTTLS,
#: submissions (465) TLS from the first byte (RFC 8314), 25 is a relay's.
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True, slots=True)
class MailSettings:
    """How mail leaves: by SMTP, into a directory (development), or not at all yet.

    With ``transport = "none"`` messages wait in the outbox until a transport is set;
    nothing is lost, they go out then.
    """

    transport: Literal["smtp", "directory", "none"] = "none"
    host: str = "localhost"
    #: None: the usual port of ``security`` (DEFAULT_PORTS).
    port: int | None = field(default=None, metadata={"range": (1, 65535)})
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    #: The NAME of the environment variable that holds the password: the password
    #: itself never sits in the configuration file.
    password_env: str | None = None
    #: A CA bundle (or the server's self-signed certificate) to trust instead of the
    #: system's; relative to the configuration file.
    ca_file: str | None = None
    from_address: str = ""
    #: The sender's display name; empty: the site_name.
    from_name: str = ""
    #: Bounds the connection and every SMTP command.
    timeout_seconds: float = field(default=30.0, metadata={"range": (0, 600), "above": True})
    #: Tries of one message before it is given up ("dead"); the waits between them
    #: double from 30 s up to an hour, so 30 tries span about a day of outage.
    max_attempts: int = field(default=30, metadata={"range": (1, 1000)})
    #: Where ``transport = "directory"`` writes each message as an .eml file.
    directory: str | None = None
    #: How often the sender looks for due mail when nothing woke it.
    poll_seconds: float = field(default=30.0, metadata={"range": (0, 3600), "above": True})

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]
