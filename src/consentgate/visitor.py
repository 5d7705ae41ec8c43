"""Everything consentgate learns about the visitor, read once per request."""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import Headers

from consentgate.consent.state import Consent, ConsentCookieCodec, Decision, consent_in_force
from consentgate.consent.texts import negotiate_language

if TYPE_CHECKING:
    from starlette.types import Scope

    from consentgate.config import Config, RegionMode


def parse_cookie_header(header: str) -> dict[str, str]:
    """Lenient like browsers and Starlette: a malformed pair never breaks the rest."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


@dataclass(frozen=True, slots=True)
class Visitor:
    cookies: dict[str, str]
    decision: Decision | None
    consent: Consent
    mode: RegionMode
    gpc: bool
    language: str
    client_ip: str | None
    scheme: str
    path_with_query: str
    user_id: str | None = None

    @classmethod
    def from_scope(
        cls,
        scope: Scope,
        config: Config,
        codec: ConsentCookieCodec,
        *,
        decision: Decision | None = None,
    ) -> Visitor:
        """Read the request; ``decision`` replaces the cookie's when we just made one."""
        headers = Headers(scope=scope)
        cookies = parse_cookie_header(headers.get("cookie", ""))
        if decision is None:
            decision = codec.loads(cookies.get(config.cookie_names.consent))
        mode = config.regions.mode_for(_country(headers, config))
        gpc = config.gpc_enabled and headers.get("sec-gpc", "").strip() == "1"
        client = scope.get("client")
        return cls(
            cookies=cookies,
            decision=decision,
            consent=consent_in_force(config, decision, mode=mode, gpc_signal=gpc),
            mode=mode,
            gpc=gpc,
            language=_language(
                headers.get("accept-language"), config.languages, config.default_language
            ),
            client_ip=client[0] if client else None,
            scheme=str(scope.get("scheme", "http")),
            path_with_query=_path_with_query(scope),
        )


# Browsers send a handful of distinct Accept-Language values; parse each once.
_language = functools.lru_cache(maxsize=1024)(negotiate_language)


def _path_with_query(scope: Scope) -> str:
    """Where the reader is, to send them back after a decision."""
    path: str = scope["path"]  # ASGI: the full path, root_path included
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def _country(headers: Headers, config: Config) -> str | None:
    name = config.regions.country_header
    if name is None:
        return None
    value = headers.get(name, "").strip()
    return value if len(value) == 2 and value.isalpha() else None


def ip_hmac(secret_key: str, ip: str | None) -> str | None:
    """Proof that two records came from one address, without keeping the address."""
    if not ip:
        return None
    return hmac.new(secret_key.encode(), f"ip:{ip}".encode(), hashlib.sha256).hexdigest()


__all__ = ["Visitor", "ip_hmac", "parse_cookie_header"]
