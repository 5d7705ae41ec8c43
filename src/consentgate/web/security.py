"""CSRF tokens and safe redirects for our own endpoints.

CSRF uses a signed double-submit token: the ``cg_csrf`` cookie holds a random value
signed with our key (so a sibling subdomain cannot plant one it knows), and every POST
must echo the same value in the ``csrf_token`` field or the ``X-CSRF-Token`` header.
The cookie is SameSite=Lax and HttpOnly; the page gets the token from the form we render.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer

CSRF_SALT = "consentgate.csrf.v1"


class CsrfTokens:
    def __init__(self, secret_keys: tuple[str, ...]) -> None:
        self._serializer = URLSafeSerializer(
            list(reversed(secret_keys)),
            salt=CSRF_SALT,
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def new_token(self) -> str:
        return self._serializer.dumps(secrets.token_urlsafe(24))

    def is_valid(self, token: str | None) -> bool:
        if not token or len(token) > 512:
            return False
        try:
            self._serializer.loads(token)
        except (BadData, ValueError, TypeError):
            return False
        return True

    def matches(self, cookie_token: str | None, submitted: str | None) -> bool:
        if not self.is_valid(cookie_token) or not submitted or cookie_token is None:
            return False
        return hmac.compare_digest(cookie_token.encode(), submitted.encode())


# Our pages load only our own stylesheet and script (no inline code: see templates.py),
# post only to ourselves and may be framed by nobody: a framed settings page turns one
# click of the reader, meant for the framing page, into "Accept all".
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def page_security_headers() -> dict[str, str]:
    """What every HTML page we render sends: the strict CSP and its pre-CSP twin."""
    return {
        "content-security-policy": PAGE_CSP,
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
    }


def same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """An ``Origin`` header, when the browser sends one, must be our own site."""
    if origin is None:
        return True
    if origin == "null" or host is None:
        return False
    return origin.lower() == f"{scheme}://{host}".lower()


def safe_next(url: str | None, default: str = "/") -> str:
    """Only a path on this site: no scheme, no host, no ``//evil`` or ``/\\evil``."""
    if not url or len(url) > 2048:
        return default
    if any(ch in url for ch in "\r\n\t\\") or not url.startswith("/") or url.startswith("//"):
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return default
    return url
