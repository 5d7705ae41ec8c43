"""The Set-Cookie headers of our own cookies (all strictly necessary)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consentgate.config import Config
    from consentgate.consent.state import Decision
    from consentgate.middleware import ConsentGate

CSRF_COOKIE_MAX_AGE = 12 * 3600


def is_secure(config: Config, scheme: str) -> bool:
    if config.secure_cookies == "auto":
        return scheme in ("https", "wss")
    return config.secure_cookies == "always"


def own_cookie(
    config: Config, name: str, value: str, *, max_age: int, scheme: str, http_only: bool = True
) -> str:
    """Path=/ and SameSite=Lax: sent on top-level navigations, not on cross-site posts."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "SameSite=Lax"]
    if http_only:
        parts.append("HttpOnly")
    if is_secure(config, scheme):
        parts.append("Secure")
    return "; ".join(parts)


def consent_cookie_header(gate: ConsentGate, decision: Decision, scheme: str) -> str:
    return own_cookie(
        gate.config,
        gate.config.cookie_names.consent,
        gate.codec.dumps(decision),
        max_age=gate.codec.lifetime_seconds(decision),
        scheme=scheme,
    )


def csrf_cookie_header(gate: ConsentGate, token: str, scheme: str) -> str:
    return own_cookie(
        gate.config,
        gate.config.cookie_names.csrf,
        token,
        max_age=CSRF_COOKIE_MAX_AGE,
        scheme=scheme,
    )
