"""CSRF tokens and safe redirects for our own endpoints.

CSRF tokens are bound to the browser. The ``cg_csrf`` cookie holds a per-browser id,
random and signed with our key (a sibling subdomain cannot plant one it made up); the
token in our forms (and the ``X-CSRF-Token`` header) is a second signature, over a
hash of that id, with its own salt. A POST passes only with a token minted for the id
in *its* cookie: a valid token of another browser fails, Origin header or not, and the
page's HTML never holds the cookie's value. The cookie is SameSite=Lax and HttpOnly.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from itsdangerous import BadData

from consentgate.keys import Keys, Purpose

_MAX_LENGTH = 512


def _binding(browser_id: str) -> str:
    return hashlib.sha256(f"csrf-binding:{browser_id}".encode()).hexdigest()[:32]


class CsrfTokens:
    def __init__(self, keys: Keys | Sequence[str]) -> None:
        ring = Keys.of(keys)
        self._ids = ring.serializer(Purpose.CSRF)  # the browser id in the cookie
        self._tokens = ring.serializer(Purpose.CSRF_TOKEN)  # the token bound to it
        # Neither value carries a time, so a value verifies (or not) the same way every
        # time: a reader's cookie and token are checked once per process, not on every
        # page and every POST. Bounded: values are at most _MAX_LENGTH characters.
        self._verified_id = functools.lru_cache(maxsize=4096)(self._verify_browser_id)
        self._verified_binding = functools.lru_cache(maxsize=4096)(self._verify_token)
        self._minted = functools.lru_cache(maxsize=4096)(self._mint)

    def new_browser_id(self) -> str:
        """A new cookie value: a random browser id, signed."""
        return self._ids.dumps(secrets.token_urlsafe(24))

    def _browser_id(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > _MAX_LENGTH:
            return None
        return self._verified_id(cookie)

    def _verify_browser_id(self, cookie: str) -> str | None:
        try:
            value = self._ids.loads(cookie)
        except (BadData, ValueError, TypeError):
            return None
        return value if isinstance(value, str) and value else None

    def _verify_token(self, submitted: str) -> str | None:
        try:
            payload = self._tokens.loads(submitted)
        except (BadData, ValueError, TypeError):
            return None
        bound = payload.get("b") if isinstance(payload, dict) else None
        return bound if isinstance(bound, str) else None

    def _mint(self, browser_id: str) -> str:
        return self._tokens.dumps({"b": _binding(browser_id)})

    def is_valid(self, cookie: str | None) -> bool:
        """Is this a browser-id cookie we signed?"""
        return self._browser_id(cookie) is not None

    def token_for(self, cookie: str) -> str:
        """The form token of the browser holding ``cookie`` (a valid one)."""
        browser_id = self._browser_id(cookie)
        if browser_id is None:
            raise ValueError("token_for needs a valid browser-id cookie")
        return self._minted(browser_id)

    def matches(self, cookie: str | None, submitted: str | None) -> bool:
        """Was ``submitted`` minted for the browser whose cookie is ``cookie``?"""
        browser_id = self._browser_id(cookie)
        if browser_id is None or not submitted or len(submitted) > _MAX_LENGTH:
            return False
        bound = self._verified_binding(submitted)
        return bound is not None and hmac.compare_digest(bound, _binding(browser_id))


# Our pages load only our own stylesheet and script (no inline code: see templates.py),
# post only to ourselves and, by default, may be framed by nobody: a framed settings
# page turns one click of the reader, meant for the framing page, into "Accept all".
# The frame_ancestors setting names who may frame them instead (Config validates it:
# one source expression per entry, so nothing can end the directive early).
DEFAULT_FRAME_ANCESTORS = ("'none'",)
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors {}; base-uri 'none'"
)
PAGE_CSP = _PAGE_CSP.format("'none'")


def x_frame_options(frame_ancestors: Sequence[str]) -> str | None:
    """The pre-CSP twin of ``frame-ancestors``, when it can say the same.

    ``DENY`` for ``'none'``, ``SAMEORIGIN`` for ``'self'`` alone, else nothing: the
    header cannot name other sites (``ALLOW-FROM`` is gone from browsers), and a
    ``DENY`` sent along would stop the framing the list allows in browsers that
    read only it.
    """
    sources = tuple(frame_ancestors)
    if sources == ("'none'",):
        return "DENY"
    if sources == ("'self'",):
        return "SAMEORIGIN"
    return None


def page_security_headers(
    frame_ancestors: Sequence[str] = DEFAULT_FRAME_ANCESTORS,
) -> dict[str, str]:
    """What every HTML page we render sends: the strict CSP, with ``frame-ancestors``
    from the configured sources, and its pre-CSP twin when there is one. Computed once
    per gate (ConsentGate.page_security_headers), not per request."""
    headers = {"content-security-policy": _PAGE_CSP.format(" ".join(frame_ancestors))}
    xfo = x_frame_options(frame_ancestors)
    if xfo is not None:
        headers["x-frame-options"] = xfo
    headers["x-content-type-options"] = "nosniff"
    headers["referrer-policy"] = "same-origin"
    return headers


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
