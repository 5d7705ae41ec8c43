"""Everything consentgate learns about the visitor, read once per request."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

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


class Reading:
    """What one reader's request headers say, the same on every request that sends
    them: their cookies, their decision and the consent in force. Kept per distinct
    (Cookie, country, GPC) by the :class:`VisitorReader`, so a reader's next request
    costs one lookup; ``expiries`` is the consent planner's memo of the Set-Cookie
    headers that expire this reader's refused cookies (None until first asked)."""

    __slots__ = ("consent", "cookies", "decision", "expiries", "mode", "until")

    def __init__(
        self,
        cookies: Mapping[str, str],
        decision: Decision | None,
        consent: Consent,
        mode: RegionMode,
        until: float,
    ) -> None:
        self.cookies = cookies
        self.decision = decision
        self.consent = consent
        self.mode = mode
        #: Unix time past which the decision has expired (the reading must be redone).
        self.until = until
        self.expiries: tuple[str, ...] | None = None


class Visitor:
    """The reader of one request, read once from it and read-only.

    What every request needs (the cookies, the consent in force, the region's regime,
    GPC, whether the page is for a frame) is read when it is built, from one pass over
    the raw header list; what only some need (the language, the client's address
    behind trusted proxies, the path to come back to) is worked out on first use, so a
    JSON response that asks for none of them pays for none.
    """

    __slots__ = (
        "_accept_language",
        "_client_ip",
        "_config",
        "_language",
        "_path_with_query",
        "_scope",
        "consent",
        "cookies",
        "decision",
        "framed",
        "gpc",
        "mode",
        "reading",
        "user_id",
    )
    _config: Config
    _scope: Scope
    _accept_language: bytes | None
    _language: str | None
    _client_ip: Any
    _path_with_query: str | None
    #: Read-only: one reader's unchanged Cookie header is parsed once and shared.
    cookies: Mapping[str, str]
    decision: Decision | None
    consent: Consent
    mode: RegionMode
    gpc: bool
    #: The page was requested for a frame (``Sec-Fetch-Dest``): it is part of another page,
    #: which shows the banner and the settings link; this one shows neither.
    framed: bool
    user_id: str | None
    #: The shared reading this visitor's cookies and consent come from (None when they
    #: were given or changed: a decision just made).
    reading: Reading | None

    def __init__(
        self,
        config: Config,
        scope: Scope,
        accept_language: bytes | None,
        framed: bool,
        cookies: Mapping[str, str],
        decision: Decision | None,
        consent: Consent,
        mode: RegionMode,
        gpc: bool,
        user_id: str | None = None,
        reading: Reading | None = None,
    ) -> None:
        # Through the slots' own setters (see _SLOT_SETTERS): a Visitor is made on every
        # request, and object.__setattr__ looks each name up first. The lazy fields
        # stay unset until first asked (the properties below fill them in).
        _set_config(self, config)
        _set_scope(self, scope)
        _set_accept_language(self, accept_language)
        _set_framed(self, framed)
        _set_cookies(self, cookies)
        _set_decision(self, decision)
        _set_consent(self, consent)
        _set_mode(self, mode)
        _set_gpc(self, gpc)
        _set_user_id(self, user_id)
        _set_reading(self, reading)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Visitor is read-only; cannot set {name!r}")

    @classmethod
    def from_scope(
        cls,
        scope: Scope,
        config: Config,
        codec: ConsentCookieCodec,
        *,
        decision: Decision | None = None,
    ) -> Visitor:
        """Read the request; ``decision`` replaces the cookie's when we just made one.
        (The middleware keeps one :class:`VisitorReader`; this builds one each call.)"""
        return VisitorReader(config, codec).read(scope, decision=decision)

    @property
    def language(self) -> str:
        try:
            return self._language  # type: ignore[return-value]
        except AttributeError:  # not asked yet: most responses never ask
            pass
        config = self._config
        header = self._accept_language
        language = _language(
            header.decode("latin-1") if header is not None else None,
            config.languages,
            config.default_language,
        )
        _set_language(self, language)
        return language

    @property
    def client_ip(self) -> str | None:
        try:
            return cast("str | None", self._client_ip)
        except AttributeError:
            pass
        config = self._config
        address = client_address(self._scope, config.trusted_proxies, config.trusted_proxy_header)
        _set_client_ip(self, address)
        return address

    @property
    def scheme(self) -> str:
        """``http`` or ``https``, as the server saw it (our cookies' Secure flag)."""
        return str(self._scope.get("scheme", "http"))

    @property
    def path_with_query(self) -> str:
        """Where the reader is, to send them back after a decision."""
        try:
            return self._path_with_query  # type: ignore[return-value]
        except AttributeError:
            pass
        path = _path_with_query(self._scope)
        _set_path_with_query(self, path)
        return path

    def _with(self, **changes: Any) -> Visitor:
        fields: dict[str, Any] = {
            "cookies": self.cookies,
            "decision": self.decision,
            "consent": self.consent,
            "mode": self.mode,
            "gpc": self.gpc,
            "user_id": self.user_id,
            "reading": self.reading,
        }
        fields.update(changes)
        return Visitor(self._config, self._scope, self._accept_language, self.framed, **fields)

    def with_user(self, user_id: str | None) -> Visitor:
        """The same request, read as signed in as ``user_id``."""
        return self._with(user_id=user_id)

    def with_decision(self, config: Config, decision: Decision) -> Visitor:
        """The same request with a decision we have just made (a first GPC signal): what
        is in force follows from it, without reading the request again."""
        consent = consent_in_force(config, decision, mode=self.mode, gpc_signal=self.gpc)
        return self._with(decision=decision, consent=consent, reading=None)

    def _fields(self) -> tuple[object, ...]:
        return (
            self.cookies,
            self.decision,
            self.consent,
            self.mode,
            self.gpc,
            self.language,
            self.client_ip,
            self.scheme,
            self.path_with_query,
            self.user_id,
            self.framed,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Visitor):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # holds a dict: not hashable

    def __repr__(self) -> str:
        return (
            f"Visitor(consent_id={self.consent.consent_id!r}, mode={self.mode!r}, "
            f"gpc={self.gpc!r}, user_id={self.user_id!r}, framed={self.framed!r})"
        )


# The setters of Visitor's slots, which write past its read-only __setattr__.
_SLOT_SETTERS: dict[str, Any] = {name: getattr(Visitor, name).__set__ for name in Visitor.__slots__}
_set_accept_language = _SLOT_SETTERS["_accept_language"]
_set_client_ip = _SLOT_SETTERS["_client_ip"]
_set_config = _SLOT_SETTERS["_config"]
_set_language = _SLOT_SETTERS["_language"]
_set_path_with_query = _SLOT_SETTERS["_path_with_query"]
_set_scope = _SLOT_SETTERS["_scope"]
_set_consent = _SLOT_SETTERS["consent"]
_set_cookies = _SLOT_SETTERS["cookies"]
_set_decision = _SLOT_SETTERS["decision"]
_set_framed = _SLOT_SETTERS["framed"]
_set_gpc = _SLOT_SETTERS["gpc"]
_set_mode = _SLOT_SETTERS["mode"]
_set_reading = _SLOT_SETTERS["reading"]
_set_user_id = _SLOT_SETTERS["user_id"]

_NO_COOKIES: Mapping[str, str] = MappingProxyType({})
# Readings are kept for Cookie headers of ordinary size and country values of two
# letters or so: at most _MAX_READINGS of a few KB each, under any input.
_CACHED_COOKIE_BYTES = 2048
_CACHED_COUNTRY_BYTES = 8
_MAX_READINGS = 4096


def _cookie_jar(header: bytes) -> Mapping[str, str]:
    return MappingProxyType(parse_cookie_header(header.decode("latin-1")))


# Header names as ASGI servers send them (lower case); another spelling is lowered first.
_COOKIE = b"cookie"
_SEC_GPC = b"sec-gpc"
_SEC_FETCH_DEST = b"sec-fetch-dest"
_ACCEPT_LANGUAGE = b"accept-language"
_VISITOR_HEADERS = frozenset((_COOKIE, _ACCEPT_LANGUAGE, _SEC_GPC, _SEC_FETCH_DEST))
# Names browsers and proxies send that a Visitor never reads: skipped without a call.
_OTHER_HEADERS = frozenset(
    (
        b"host",
        b"user-agent",
        b"accept",
        b"accept-encoding",
        b"connection",
        b"referer",
        b"origin",
        b"priority",
        b"sec-fetch-mode",
        b"sec-fetch-site",
        b"sec-fetch-user",
        b"sec-ch-ua",
        b"sec-ch-ua-mobile",
        b"sec-ch-ua-platform",
        b"upgrade-insecure-requests",
        b"if-none-match",
        b"if-modified-since",
        b"cache-control",
        b"pragma",
        b"content-type",
        b"content-length",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-real-ip",
    )
)


class VisitorReader:
    """Reads the visitors of one configuration: what depends only on it, once."""

    def __init__(self, config: Config, codec: ConsentCookieCodec) -> None:
        self._config = config
        self._codec = codec
        self._consent_cookie = config.cookie_names.consent
        country = config.regions.country_header
        self._country = country.lower().encode("latin-1") if country else None
        self._wanted = _VISITOR_HEADERS | ({self._country} if self._country else set())
        self._gpc_enabled = config.gpc_enabled
        self._regions = config.regions
        # A reader sends the same Cookie header (and country, and GPC signal) request
        # after request: the cookies, the decision and the consent in force are worked
        # out once per combination (the decision's expiry is still checked each time).
        self._readings: dict[tuple[bytes, bytes | None, bool], Reading] = {}

    def read(self, scope: Scope, *, decision: Decision | None = None) -> Visitor:
        cookie = language = gpc_value = dest = country_value = None
        wanted, country_name = self._wanted, self._country
        # One pass over the raw list. Cookie lines are joined (HTTP/2 may split the
        # header, RFC 9113 §8.2.3); of any other, the first line counts, as Starlette's
        # ``Headers.get`` would.
        for name, value in scope.get("headers", ()):
            if name not in wanted:
                if name in _OTHER_HEADERS or name.islower():
                    continue
                name = name.lower()
                if name not in wanted:
                    continue
            if name == _COOKIE:
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == _ACCEPT_LANGUAGE:
                if language is None:
                    language = value
            elif name == _SEC_FETCH_DEST:
                if dest is None:
                    dest = value
            elif name == _SEC_GPC:
                if gpc_value is None:
                    gpc_value = value
            elif country_value is None:  # the country header, the only other wanted
                country_value = value
        gpc = (
            gpc_value is not None
            and self._gpc_enabled
            and (gpc_value == b"1" or gpc_value.strip() == b"1")
        )
        framed = dest is not None and (
            dest in _FRAME_DESTINATIONS or dest.strip().lower() in _FRAME_DESTINATIONS
        )
        if decision is None:
            key = (cookie or b"", country_value, gpc)
            reading = self._readings.get(key)
            if reading is None or reading.until < time.time():
                reading = self._reading(key)
            # Positional: the arguments in the order of __init__'s parameters.
            return Visitor(
                self._config,
                scope,
                language,
                framed,
                reading.cookies,
                reading.decision,
                reading.consent,
                reading.mode,
                gpc,
                None,
                reading,
            )
        # A decision we have just made: what is in force follows from it.
        cookies = _cookie_jar(cookie) if cookie else _NO_COOKIES
        mode = self._regions.mode_for(_country(country_value) if country_name else None)
        return Visitor(
            self._config,
            scope,
            language,
            framed,
            cookies=cookies,
            decision=decision,
            consent=consent_in_force(self._config, decision, mode=mode, gpc_signal=gpc),
            mode=mode,
            gpc=gpc,
        )

    def _reading(self, key: tuple[bytes, bytes | None, bool]) -> Reading:
        """A new (or renewed: its decision expired) reading of these headers."""
        cookie, country_value, gpc = key
        readings = self._readings
        cookies = _cookie_jar(cookie) if cookie else _NO_COOKIES
        decision, until = self._codec.loads_until(cookies.get(self._consent_cookie))
        mode = self._regions.mode_for(_country(country_value) if self._country else None)
        consent = consent_in_force(self._config, decision, mode=mode, gpc_signal=gpc)
        reading = Reading(cookies, decision, consent, mode, until)
        if len(cookie) <= _CACHED_COOKIE_BYTES and len(country_value or b"") <= (
            _CACHED_COUNTRY_BYTES
        ):
            if len(readings) >= _MAX_READINGS:
                readings.pop(next(iter(readings)), None)  # the oldest reading goes
            readings[key] = reading
        return reading


def _country(value: bytes | None) -> str | None:
    text = (value or b"").decode("latin-1").strip()
    return text if len(text) == 2 and text.isalpha() else None


#: Fetch destinations of a document shown inside another one.
FRAME_DESTINATIONS = frozenset(("frame", "iframe", "fencedframe"))
_FRAME_DESTINATIONS = frozenset(name.encode("latin-1") for name in FRAME_DESTINATIONS)

# Browsers send a handful of distinct Accept-Language values; parse each once.
_language = functools.lru_cache(maxsize=1024)(negotiate_language)


def _path_with_query(scope: Scope) -> str:
    """Where the reader is, to send them back after a decision."""
    path: str = scope["path"]  # ASGI: the full path, root_path included
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


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
    "Reading",
    "Visitor",
    "VisitorReader",
    "client_address",
    "client_network",
    "ip_hmac",
    "parse_address",
    "parse_cookie_header",
]
