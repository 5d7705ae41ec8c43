"""Checks of top-level values that :class:`~consentgate.config.Config` makes again on a
Config built in code, so both ways of building one share their wording."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from consentgate.errors import ConfigError

# The wall's module owns the pattern language; config only checks it.
from consentgate.wall.access import compile_path_pattern

TRUSTED_PROXY_HEADERS = ("x-forwarded-for", "forwarded")


def path_patterns(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, 'must be a list of path patterns such as "/embed/**"')
    for index, pattern in enumerate(value):
        try:
            compile_path_pattern(pattern)
        except ValueError as exc:
            raise ConfigError(f"{key}[{index}]", str(exc)) from None
    return tuple(value)


def trusted_proxies(value: Any) -> tuple[str, ...]:
    """Addresses or CIDR networks (``10.0.0.0/8``, ``2001:db8::/32``, ``127.0.0.1``)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError("trusted_proxies", "must be a list of addresses or networks")
    for index, entry in enumerate(value):
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies[{index}]",
                f"{entry!r} is not an address or network such as 10.0.0.0/8",
            ) from None
    return tuple(entry.strip() for entry in value)


# CSP source expressions a frame-ancestors list may hold (CSP Level 3, ancestor-source-
# list): 'self', a scheme (https:), or a host with optional scheme, port and path
# (https://*.example.com:8443/embed). Hosts are letters, digits and '-' (IDNs in their
# xn-- form); IPv6 literals are not source expressions.
_CSP_SCHEME_SOURCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CSP_HOST_SOURCE = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?"
    r"(?:\*|(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
    r"(?::(?:[0-9]+|\*))?"
    r"(?:/(?!/)[!$&'()*+=:@%/~A-Za-z0-9._-]*)?"  # not "//": https//x is a typo
)
_CSP_KEYWORDS = ("'self'", "'none'")


def frame_ancestors(value: Any) -> tuple[str, ...]:
    """Who may frame our pages: ``["'none'"]`` (nobody), or CSP sources such as
    ``["'self'", "https://partner.example"]``. Each entry is one source expression:
    no ``;`` or ``,`` (they would end the directive or the policy, and let the list
    add directives of its own), no whitespace (it separates sources), nothing outside
    printable ASCII."""
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(
            "frame_ancestors",
            "must be a non-empty list of CSP sources, e.g. [\"'none'\"] or [\"'self'\"]",
        )
    sources: list[str] = []
    for index, entry in enumerate(value):
        key = f"frame_ancestors[{index}]"
        if not entry:
            raise ConfigError(key, "is empty: give a CSP source such as https://example.com")
        bad = next((ch for ch in entry if ch in ";," or not "!" <= ch <= "~"), None)
        if bad is not None:
            raise ConfigError(
                key,
                f"{entry!r} holds {bad!r}: one CSP source per entry, printable ASCII, "
                "without ';', ',' or whitespace",
            )
        if entry.lower() in ("self", "none"):
            raise ConfigError(key, f"write the keyword in single quotes: \"'{entry.lower()}'\"")
        if entry.startswith("'"):
            if entry.lower() not in _CSP_KEYWORDS:
                raise ConfigError(
                    key, f"{entry!r}: the only keywords frame-ancestors takes are 'self' and 'none'"
                )
            entry = entry.lower()
        elif not (_CSP_SCHEME_SOURCE.fullmatch(entry) or _CSP_HOST_SOURCE.fullmatch(entry)):
            raise ConfigError(
                key,
                f"{entry!r} is not a CSP source (e.g. https://example.com, "
                "https://*.example.com, https:)",
            )
        sources.append(entry)
    if "'none'" in sources and len(sources) > 1:
        raise ConfigError("frame_ancestors", "'none' must be the only entry when it is given")
    return tuple(sources)


def check_prefix(prefix: str) -> str:
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
        raise ConfigError("prefix", f"must start with '/' and not end with it, got {prefix!r}")
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
        raise ConfigError("prefix", f"may hold only URL-safe path segments, got {prefix!r}")
    return prefix
