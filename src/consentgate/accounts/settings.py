"""The settings of the built-in accounts (``[accounts]``); ``consentgate.config`` reads
them from TOML, fields, defaults and ranges coming from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class AccountsSettings:
    """The built-in accounts, for sites that have none of their own."""

    enabled: bool = True
    min_password_length: int = field(default=10, metadata={"range": (8, 128)})
    session_lifetime_days: int = field(default=30, metadata={"range": (1, 395)})
    register_per_hour: int = field(default=5, metadata={"range": (1, 10_000)})
    login_per_15_minutes: int = field(default=10, metadata={"range": (1, 10_000)})
    #: Rate limits count an IPv6 client by its network of this prefix length (a
    #: subscriber gets a /64 or more), an IPv4 client by its address.
    ipv6_prefix: int = field(default=64, metadata={"range": (32, 128)})
    #: Whether a signed-in reader whose address is not yet verified gets past the wall:
    #: "grace" for ``verification_grace_hours`` after registering, "required" never,
    #: "off" always (verification mails are sent all the same).
    verification: Literal["grace", "required", "off"] = "grace"
    #: Three days: long enough for a reader who registers on Friday evening to find the
    #: mail on Monday, short enough that an address nobody reads stops reading for free.
    verification_grace_hours: int = field(default=72, metadata={"range": (0, 8760)})
    #: How long a link in a mail (verify, sign in, reset, change of address) works.
    link_lifetime_minutes: int = field(default=30, metadata={"range": (5, 10_080)})
    #: Mails a reader can ask for (sign-in link, password reset, verification again)
    #: per hour, counted per address and, five times as many, per client network.
    mail_requests_per_hour: int = field(default=5, metadata={"range": (1, 1000)})
