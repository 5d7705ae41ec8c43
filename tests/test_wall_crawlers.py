"""Crawler verification: ranges, reverse-then-forward DNS, spoofs, timeouts, cache.

The resolver is a test double: this machine has no DNS, and the verifier's logic is
what is under test, not the operating system's resolver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from consentgate.wall.crawlers import (
    DEFAULT_CRAWLER_DOMAINS,
    CrawlerVerifier,
    SystemResolver,
    claims_to_be_crawler,
)

CRAWLER_IP = "66.249.66.1"
CRAWLER_NAME = "crawl-66-249-66-1.googlebot.com"


class ScriptedResolver:
    """Answers from tables and counts every call."""

    def __init__(
        self,
        ptr: Mapping[str, str],
        addresses: Mapping[str, Sequence[str]],
        *,
        delay: float = 0.0,
        error: Exception | None = None,
    ) -> None:
        self.ptr = ptr
        self.addresses = addresses
        self.delay = delay
        self.error = error
        self.calls: list[tuple[str, str]] = []

    async def reverse(self, ip: str) -> str | None:
        self.calls.append(("reverse", ip))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.ptr.get(ip)

    async def forward(self, name: str) -> Sequence[str]:
        self.calls.append(("forward", name))
        return self.addresses.get(name, [])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(resolver: ScriptedResolver, **kwargs: object) -> CrawlerVerifier:
    return CrawlerVerifier(DEFAULT_CRAWLER_DOMAINS, [], resolver, **kwargs)  # type: ignore[arg-type]


def good_resolver() -> ScriptedResolver:
    return ScriptedResolver({CRAWLER_IP: CRAWLER_NAME + "."}, {CRAWLER_NAME: [CRAWLER_IP]})


def test_crawler_ip_in_configured_range_is_verified_without_dns() -> None:
    resolver = ScriptedResolver({}, {})
    checker = CrawlerVerifier([], ["66.249.64.0/19", "2001:4860:4801::/48"], resolver)
    assert asyncio.run(checker.is_verified(CRAWLER_IP))
    assert asyncio.run(checker.is_verified("2001:4860:4801:10::1"))
    assert not asyncio.run(checker.is_verified("192.0.2.1"))
    assert resolver.calls == []


def test_crawler_reverse_and_forward_dns_agree_is_verified() -> None:
    resolver = good_resolver()
    assert asyncio.run(verifier(resolver).is_verified(CRAWLER_IP))
    assert resolver.calls == [("reverse", CRAWLER_IP), ("forward", CRAWLER_NAME)]


@pytest.mark.parametrize(
    "spoofed_name",
    ["googlebot.com.evil.test", "evilgooglebot.com", "crawl.googlebot.com-evil.test"],
)
def test_crawler_reverse_dns_suffix_spoof_is_refused(spoofed_name: str) -> None:
    # The attacker controls their PTR *and* the forward zone of their own domain.
    resolver = ScriptedResolver({"192.0.2.9": spoofed_name}, {spoofed_name: ["192.0.2.9"]})
    assert not asyncio.run(verifier(resolver).is_verified("192.0.2.9"))
    assert ("forward", spoofed_name) not in resolver.calls


def test_crawler_forward_mismatch_is_refused() -> None:
    # PTR claims googlebot.com, but Google's zone does not point that name at this IP.
    resolver = ScriptedResolver({"192.0.2.9": CRAWLER_NAME}, {CRAWLER_NAME: [CRAWLER_IP]})
    assert not asyncio.run(verifier(resolver).is_verified("192.0.2.9"))


def test_crawler_without_ptr_is_refused() -> None:
    assert not asyncio.run(verifier(ScriptedResolver({}, {})).is_verified(CRAWLER_IP))


def test_crawler_timeout_is_refused_and_cached_briefly() -> None:
    clock = FakeClock()
    slow = ScriptedResolver({CRAWLER_IP: CRAWLER_NAME}, {CRAWLER_NAME: [CRAWLER_IP]}, delay=1.0)
    checker = verifier(slow, timeout_seconds=0.01, clock=clock)
    assert not asyncio.run(checker.is_verified(CRAWLER_IP))
    slow.delay = 0.0
    clock.now += 30
    assert not asyncio.run(checker.is_verified(CRAWLER_IP))  # still cached
    assert len(slow.calls) == 1
    clock.now += 31
    assert asyncio.run(checker.is_verified(CRAWLER_IP))  # retried after 60 s


def test_crawler_resolver_error_is_refused() -> None:
    failing = ScriptedResolver({}, {}, error=OSError("network down"))
    assert not asyncio.run(verifier(failing).is_verified(CRAWLER_IP))


def test_crawler_cache_hit_avoids_the_resolver() -> None:
    clock = FakeClock()
    resolver = good_resolver()
    checker = verifier(resolver, clock=clock)

    async def three_checks() -> list[bool]:
        return [await checker.is_verified(CRAWLER_IP) for _ in range(3)]

    assert asyncio.run(three_checks()) == [True, True, True]
    assert len(resolver.calls) == 2  # one reverse, one forward
    clock.now += 3601
    assert asyncio.run(checker.is_verified(CRAWLER_IP))
    assert len(resolver.calls) == 4


def test_crawler_negative_result_is_cached_too() -> None:
    resolver = ScriptedResolver({}, {})
    checker = verifier(resolver)
    asyncio.run(checker.is_verified("192.0.2.1"))
    asyncio.run(checker.is_verified("192.0.2.1"))
    assert resolver.calls == [("reverse", "192.0.2.1")]


def test_crawler_cache_is_bounded() -> None:
    resolver = ScriptedResolver({}, {})
    checker = verifier(resolver, max_cache=2)
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"):
        asyncio.run(checker.is_verified(ip))
    # 192.0.2.1 was evicted by the third address, so it was looked up again.
    assert [ip for _, ip in resolver.calls] == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"]


def test_crawler_verification_off_by_default_verifies_no_one() -> None:
    resolver = good_resolver()
    checker = CrawlerVerifier([], [], resolver)
    assert not checker.enabled
    assert not asyncio.run(checker.is_verified(CRAWLER_IP))
    assert resolver.calls == []


def test_crawler_invalid_peer_address_is_refused() -> None:
    resolver = good_resolver()
    assert not asyncio.run(verifier(resolver).is_verified("crawl.googlebot.com"))
    assert resolver.calls == []


def test_crawler_ipv4_mapped_peer_matches_ipv4_forward() -> None:
    resolver = good_resolver()
    assert asyncio.run(verifier(resolver).is_verified("::ffff:" + CRAWLER_IP))


def test_system_resolver_fails_soft_without_dns() -> None:
    # No DNS here: a failure must come back as "no answer", never as an exception.
    async def lookups() -> tuple[str | None, Sequence[str]]:
        resolver = SystemResolver()
        return await resolver.reverse("192.0.2.1"), await resolver.forward("name.invalid")

    ptr, addresses = asyncio.run(lookups())
    assert ptr is None or isinstance(ptr, str)
    assert list(addresses) == []


@pytest.mark.parametrize(
    ("agent", "referer", "forwarded", "claims"),
    [
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            None,
            None,
            True,
        ),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", None, None, True),
        ("Mozilla/5.0 Firefox/126.0", "https://www.google.com/", None, True),
        ("Mozilla/5.0 Firefox/126.0", "https://news.example/", None, False),
        ("Mozilla/5.0 Firefox/126.0", None, "66.249.66.1, 10.0.0.1", True),
        ("Mozilla/5.0 Firefox/126.0", None, "198.51.100.1", False),
        (None, "not a url ::", "garbage", False),
    ],
)
def test_claims_to_be_crawler_notices_claims(
    agent: str | None, referer: str | None, forwarded: str | None, claims: bool
) -> None:
    assert claims_to_be_crawler(agent, referer, forwarded) is claims
