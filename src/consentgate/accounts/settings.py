"""The settings of the built-in accounts (``[accounts]``); ``consentgate.config`` reads
them from TOML, fields, defaults and ranges coming from here."""

from __future__ import annotations

from dataclasses import dataclass, field


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
