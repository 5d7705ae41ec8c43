"""Verifying search-engine crawlers, so they may index the full (paywall-marked) article.

Off by default: a :class:`CrawlerVerifier` with no domains and no ranges verifies no one,
and the wall treats every request as a reader's. A user agent, a ``Referer`` from a
search engine or an ``X-Forwarded-For`` header are *claims*; :func:`claims_to_be_crawler`
only notices them for logging. Proof is the peer address: inside the crawler's published
IP ranges, or reverse DNS in the crawler's domain *and* forward DNS of that name giving
the same address back (the check Google and Bing document).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_CRAWLER_DOMAINS",
    "CrawlerVerifier",
    "Resolver",
    "SystemResolver",
    "claims_to_be_crawler",
]

# Google's documented reverse-DNS domains for its crawlers; operators may add others
# (e.g. "search.msn.com" for Bingbot). Not applied unless the operator configures them.
DEFAULT_CRAWLER_DOMAINS = ("googlebot.com", "google.com", "googleusercontent.com")

_CRAWLER_AGENT_TOKENS = (
    "googlebot",
    "google-inspectiontool",
    "googleother",
    "adsbot-google",
    "mediapartners-google",
    "storebot-google",
    "google-extended",
    "bingbot",
    "adidxbot",
    "msnbot",
    "applebot",
    "duckduckbot",
    "yandexbot",
    "baiduspider",
)
_SEARCH_REFERER_HOSTS = ("google.", "bing.com", "duckduckgo.com", "yandex.", "baidu.com")
# Well-known crawler networks, used only to notice an X-Forwarded-For *claim*.
_CLAIMED_CRAWLER_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("66.249.64.0/19", "157.55.39.0/24", "207.46.13.0/24", "40.77.167.0/24")
)
_ERROR_CACHE_SECONDS = 60.0  # a DNS hiccup should not shut a real crawler out for an hour


def claims_to_be_crawler(
    user_agent: str | None, referer: str | None, forwarded_for: str | None
) -> bool:
    """Whether the request *says* it is (or comes from) a search engine. Proves nothing.

    For logging and metrics only: all three are set by the client. A crawler user agent,
    a search-engine ``Referer`` (the old "first click free" trick) or an
    ``X-Forwarded-For`` naming a crawler network each count as a claim.
    """
    agent = (user_agent or "").lower()
    if any(token in agent for token in _CRAWLER_AGENT_TOKENS):
        return True
    if referer and _is_search_referer(referer):
        return True
    return bool(forwarded_for) and _forwards_for_crawler_network(forwarded_for or "")


def _is_search_referer(referer: str) -> bool:
    try:
        host = (urlsplit(referer).hostname or "").lower()
    except ValueError:
        return False
    return any(f".{marker}" in f".{host}" for marker in _SEARCH_REFERER_HOSTS)


def _forwards_for_crawler_network(forwarded_for: str) -> bool:
    for item in forwarded_for.split(","):
        try:
            address = ipaddress.ip_address(item.strip())
        except ValueError:
            continue
        if any(address in network for network in _CLAIMED_CRAWLER_NETWORKS):
            return True
    return False


class Resolver(Protocol):
    """DNS as the verifier needs it; tests inject their own."""

    async def reverse(self, ip: str) -> str | None:
        """The PTR name of ``ip``, or None when there is none."""
        ...

    async def forward(self, name: str) -> Sequence[str]:
        """The A and AAAA addresses of ``name`` (empty when there are none)."""
        ...


class SystemResolver:
    """The operating system's resolver, through the event loop's thread pool."""

    async def reverse(self, ip: str) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            host, _ = await loop.getnameinfo((ip, 0), socket.NI_NAMEREQD)
        except (socket.gaierror, socket.herror, OSError, UnicodeError):
            return None
        return host

    async def forward(self, name: str) -> Sequence[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, OSError, UnicodeError):
            return []
        return [str(sockaddr[0]) for *_, sockaddr in infos]


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CrawlerVerifier:
    """Is this peer address a crawler of one of ``domains`` (or in ``ip_ranges``)?

    Only ever give it the address of the TCP peer (ASGI ``scope["client"]``, or the one
    address a trusted reverse proxy put there). Never an ``X-Forwarded-For`` entry: the
    client writes that header, so "verifying" it would verify whatever the reader
    claims, which is how walls leak.

    Results are cached per address for ``cache_seconds`` (errors and timeouts for only
    60 seconds), at most ``max_cache`` entries, oldest evicted first.
    """

    def __init__(
        self,
        domains: Sequence[str],
        ip_ranges: Sequence[str],
        resolver: Resolver,
        cache_seconds: float = 3600,
        timeout_seconds: float = 2.0,
        max_cache: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._domains = tuple(_normalise_domain(d) for d in domains if _normalise_domain(d))
        self._ranges: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(r.strip(), strict=False) for r in ip_ranges
        )
        self._resolver = resolver
        self._cache_seconds = cache_seconds
        self._error_seconds = min(_ERROR_CACHE_SECONDS, cache_seconds)
        self._timeout = timeout_seconds
        self._max_cache = max(0, max_cache)
        self._clock = clock
        self._cache: dict[IPAddress, tuple[bool, float]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._domains or self._ranges)

    async def is_verified(self, peer_ip: str) -> bool:
        address = _parse_address(peer_ip)
        if address is None:
            return False
        if any(address in network for network in self._ranges):
            return True
        if not self._domains:
            return False
        cached = self._cached(address)
        if cached is not None:
            return cached
        verdict, lifetime = await self._verify_by_dns(address)
        self._remember(address, verdict, lifetime)
        return verdict

    async def _verify_by_dns(self, address: IPAddress) -> tuple[bool, float]:
        """The verdict and how long it may be cached."""
        try:
            verdict = await asyncio.wait_for(self._dns_round_trip(address), self._timeout)
        except Exception:  # any failure (timeout, resolver bug) verifies no one: fail closed
            return False, self._error_seconds
        return verdict, self._cache_seconds

    async def _dns_round_trip(self, address: IPAddress) -> bool:
        name = await self._resolver.reverse(str(address))
        if not name or not self._in_domains(name):
            return False
        # Anyone can make their own address's PTR say "crawl-1.googlebot.com"; only
        # the domain's owner can make that name resolve back to the address.
        forward = await self._resolver.forward(name.rstrip("."))
        return any(_parse_address(candidate) == address for candidate in forward)

    def _in_domains(self, name: str) -> bool:
        host = _normalise_domain(name)
        # A dot boundary: "evilgooglebot.com" and "googlebot.com.evil.test" do not match.
        return any(host == domain or host.endswith("." + domain) for domain in self._domains)

    def _cached(self, address: IPAddress) -> bool | None:
        entry = self._cache.get(address)
        if entry is None:
            return None
        verdict, expires_at = entry
        if self._clock() >= expires_at:
            del self._cache[address]
            return None
        return verdict

    def _remember(self, address: IPAddress, verdict: bool, lifetime: float) -> None:
        if self._max_cache == 0:
            return
        self._cache.pop(address, None)
        while len(self._cache) >= self._max_cache:
            del self._cache[next(iter(self._cache))]  # dicts keep insertion order
        self._cache[address] = (verdict, self._clock() + lifetime)


def _normalise_domain(name: str) -> str:
    return name.strip().strip(".").lower()


def _parse_address(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
