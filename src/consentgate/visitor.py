"""Everything consentgate learns about the visitor, read once per request."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    #: The page was requested for a frame (``Sec-Fetch-Dest``): it is part of another page,
    #: which shows the banner and the settings link; this one shows neither.
    framed: bool = False

    @classmethod
    def from_scope(
        cls,
        scope: Scope,
        config: Config,
        codec: ConsentCookieCodec,
        *,
        decision: Decision | None = None,
    ) -> Visitor:
        """Read the request, once; ``decision`` replaces the cookie's when we just made one."""
        headers = Headers(scope=scope)
        cookies = parse_cookie_header(headers.get("cookie", ""))
        if decision is None:
            decision = codec.loads(cookies.get(config.cookie_names.consent))
        mode = config.regions.mode_for(_country(headers, config))
        gpc = config.gpc_enabled and headers.get("sec-gpc", "").strip() == "1"
        return cls(
            cookies=cookies,
            decision=decision,
            consent=consent_in_force(config, decision, mode=mode, gpc_signal=gpc),
            mode=mode,
            gpc=gpc,
            language=_language(
                headers.get("accept-language"), config.languages, config.default_language
            ),
            client_ip=client_address(scope, config.trusted_proxies, config.trusted_proxy_header),
            scheme=str(scope.get("scheme", "http")),
            path_with_query=_path_with_query(scope),
            framed=headers.get("sec-fetch-dest", "").strip().lower() in FRAME_DESTINATIONS,
        )

    def with_decision(self, config: Config, decision: Decision) -> Visitor:
        """The same request with a decision we have just made (a first GPC signal): what
        is in force follows from it, without reading the request again."""
        return replace(
            self,
            decision=decision,
            consent=consent_in_force(config, decision, mode=self.mode, gpc_signal=self.gpc),
        )


#: Fetch destinations of a document shown inside another one.
FRAME_DESTINATIONS = frozenset(("frame", "iframe", "fencedframe"))

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


# -- the client's address ----------------------------------------------------------------
# One function decides it for every use (rate limits, the server meter, crawler
# verification, the HMAC in ledger rows), so that no two of them can disagree.

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_FORWARDED_HOPS = 32  # a longer chain is not worth walking: anything past is a guess
_MAX_HEADER = 4096


@functools.lru_cache(maxsize=64)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``trusted_proxies`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies and ASGI servers write it: ``192.0.2.1``, ``192.0.2.1:80``,
    ``2001:db8::1``, ``[2001:db8::1]:443``, ``"[2001:db8::1]"``; IPv4-mapped IPv6 is
    the IPv4 address. Anything else (``unknown``, an obfuscated ``_node``) is None."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:
        value = value.partition(":")[0]  # IPv4 with a port
    value = value.partition("%")[0]  # a zone id names an interface, not a client
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(header: str) -> list[str]:
    """The ``for=`` values of an RFC 7239 ``Forwarded`` header, in order."""
    hops = []
    for element in header.split(","):
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                hops.append(value)
    return hops


def _trusted(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    scope: Scope, trusted_proxies: tuple[str, ...] = (), header: str = "x-forwarded-for"
) -> str | None:
    """The client's address: the socket peer, unless the peer is a trusted proxy.

    Then the proxies' header (``X-Forwarded-For`` or ``Forwarded``, whichever
    ``header`` names: the other one is the client's to forge) is walked from the right,
    past every trusted hop, and the first address that is not trusted is the client.
    A hop that is no address stops the walk at the last trusted one: a client who
    cannot be named shares that proxy's rate limits rather than choosing its own.
    """
    client = scope.get("client")
    peer = parse_address(str(client[0])) if client else None
    networks = trusted_networks(trusted_proxies) if trusted_proxies else ()
    if peer is None:
        return str(client[0]) if client else None  # a Unix socket, a test client's name
    if not networks or not _trusted(peer, networks):
        return str(peer)
    name = header.encode("latin-1")
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]
    joined = ",".join(values)[:_MAX_HEADER]
    hops = _forwarded_for(joined) if header == "forwarded" else joined.split(",")
    current = peer
    for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
        address = parse_address(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, networks):
            break
    return str(current)


def client_network(ip: str | None, ipv6_prefix: int = 64) -> str | None:
    """The unit a rate limit counts: an IPv4 address, or an IPv6 address's /64.

    One subscriber gets a whole /64 (often a /56 or /48), so counting IPv6 addresses
    one by one would give each of them 2**64 fresh buckets.
    """
    if not ip:
        return None
    address = parse_address(ip)
    if address is None:
        return ip
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))


def ip_hmac(secret_key: str, ip: str | None) -> str | None:
    """Proof that two records came from one address, without keeping the address."""
    if not ip:
        return None
    return hmac.new(secret_key.encode(), f"ip:{ip}".encode(), hashlib.sha256).hexdigest()


__all__ = [
    "Visitor",
    "client_address",
    "client_network",
    "ip_hmac",
    "parse_address",
    "parse_cookie_header",
]
