"""Our own cookies (all strictly necessary), each described once.

:class:`OwnCookies` holds one :class:`CookieSpec` per cookie — name, path, SameSite,
HttpOnly, when to add Secure — built from the configuration when the middleware starts.
Every place that sets or clears one of them asks its spec, so no two places can disagree
about a cookie's attributes (a logout that misses the Path clears nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from consentgate.config import Config
    from consentgate.consent.state import ConsentCookieCodec, Decision

CSRF_COOKIE_MAX_AGE = 12 * 3600
#: The operator dashboard's sign-in session (see operator/dashboard.py).
ADMIN_COOKIE = "cg_admin"

SecureCookies = Literal["auto", "always", "never"]


def is_secure(setting: SecureCookies, scheme: str) -> bool:
    """``secure_cookies``: "auto" adds Secure on HTTPS requests only."""
    if setting == "auto":
        return scheme in ("https", "wss")
    return setting == "always"


@dataclass(frozen=True, slots=True)
class CookieSpec:
    """One of our cookies. SameSite=Lax by default: sent on top-level navigations, not
    on cross-site posts."""

    name: str
    path: str = "/"
    same_site: Literal["Lax", "Strict"] = "Lax"
    http_only: bool = True
    secure: SecureCookies = "auto"

    def header(self, value: str, *, max_age: int, scheme: str) -> str:
        """The Set-Cookie value that stores ``value`` for ``max_age`` seconds."""
        parts = [
            f"{self.name}={value}",
            f"Path={self.path}",
            f"Max-Age={max_age}",
            f"SameSite={self.same_site}",
        ]
        if self.http_only:
            parts.append("HttpOnly")
        if is_secure(self.secure, scheme):
            parts.append("Secure")
        return "; ".join(parts)

    def expired(self, *, scheme: str) -> str:
        """The Set-Cookie value that clears it (same name, path and flags, Max-Age=0)."""
        return self.header("", max_age=0, scheme=scheme)


@dataclass(frozen=True, slots=True)
class OwnCookies:
    consent: CookieSpec
    csrf: CookieSpec
    session: CookieSpec
    meter: CookieSpec
    #: Only under the dashboard's path, and never sent from another site.
    admin: CookieSpec
    #: The consent class (consent/classes.py), read by CDNs: no secret in it.
    consent_class: CookieSpec

    @classmethod
    def from_config(cls, config: Config) -> OwnCookies:
        names, secure = config.cookie_names, config.secure_cookies
        return cls(
            consent=CookieSpec(names.consent, secure=secure),
            csrf=CookieSpec(names.csrf, secure=secure),
            session=CookieSpec(names.session, secure=secure),
            meter=CookieSpec(names.meter, secure=secure),
            admin=CookieSpec(
                ADMIN_COOKIE, path=f"{config.prefix}/admin", same_site="Strict", secure=secure
            ),
            consent_class=CookieSpec(names.consent_class, secure=secure),
        )


def decision_cookie_headers(
    cookies: OwnCookies,
    codec: ConsentCookieCodec,
    decision: Decision,
    consent_class: str,
    scheme: str,
) -> list[str]:
    """The consent cookie and the class cookie, which lives exactly as long."""
    lifetime = codec.lifetime_seconds(decision)
    return [
        cookies.consent.header(codec.dumps(decision), max_age=lifetime, scheme=scheme),
        cookies.consent_class.header(consent_class, max_age=lifetime, scheme=scheme),
    ]
