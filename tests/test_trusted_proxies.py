"""The client address: from the proxies' header only when the socket peer is trusted.

Oracle: the ledger row's ``ip_hmac`` is ``ip_hmac(secret, address)`` of the address the
request should be attributed to (consentgate keeps no address, only that HMAC), and the
crawler resolver is asked about that same address.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from tests.conftest import SECRET, decide, html_app, make_gate, run
from tests.test_wall_http import ArticleApp, full_text_present, hidden_markers, read, wall_gate

from consentgate import Config, ConfigError
from consentgate.visitor import ip_hmac

PROXY = "10.0.0.5"


def ledger_ip_hmacs(tmp_path: Path) -> list[str | None]:
    connection = sqlite3.connect(tmp_path / "ledger.db")
    try:
        return [row[0] for row in connection.execute("SELECT ip_hmac FROM consent_ledger")]
    finally:
        connection.close()


def decide_from(
    tmp_path: Path, peer: str, headers: dict[str, str], **options: object
) -> list[str | None]:
    gate = make_gate(html_app(), tmp_path, **options)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=gate, client=(peer, 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://news.test", headers=headers
        ) as c:
            assert (await decide(c, "reject_all")).status_code == 303

    run(scenario())
    return ledger_ip_hmacs(tmp_path)


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        # No trusted proxy configured: the header is the client's to write, ignored.
        (PROXY, "203.0.113.7", [], PROXY),
        # A trusted peer names the client.
        (PROXY, "203.0.113.7", ["10.0.0.0/8"], "203.0.113.7"),
        # An untrusted peer cannot name anyone, whatever it sends.
        ("198.51.100.9", "203.0.113.7", ["10.0.0.0/8"], "198.51.100.9"),
        # Right to left past trusted hops; the forged left entry is never reached.
        (PROXY, "6.6.6.6, 203.0.113.7, 10.1.1.1", ["10.0.0.0/8"], "203.0.113.7"),
        # Every hop trusted: the leftmost is the client.
        (PROXY, "10.2.2.2, 10.1.1.1", ["10.0.0.0/8"], "10.2.2.2"),
        # A hop that is not an address stops the walk at the last trusted one.
        (PROXY, "203.0.113.7, unknown", ["10.0.0.0/8"], PROXY),
        # Ports and brackets as proxies write them; IPv6 clients.
        (PROXY, "[2001:db8::1]:443", [PROXY], "2001:db8::1"),
        (PROXY, "203.0.113.7:5123", [PROXY], "203.0.113.7"),
        ("::ffff:10.0.0.5", "203.0.113.7", [PROXY], "203.0.113.7"),
    ],
    ids=[
        "none-trusted",
        "trusted-peer",
        "untrusted-peer",
        "walk-past-trusted",
        "all-trusted",
        "garbage-hop",
        "ipv6-bracket-port",
        "ipv4-port",
        "mapped-peer",
    ],
)
def test_trusted_proxies_x_forwarded_for_names_the_client_only_from_trusted_peers(
    tmp_path: Path, peer: str, header: str, trusted: list[str], expected: str
) -> None:
    stored = decide_from(tmp_path, peer, {"x-forwarded-for": header}, trusted_proxies=trusted)
    assert stored == [ip_hmac(SECRET, expected)]


def test_trusted_proxies_forwarded_header_when_configured(tmp_path: Path) -> None:
    headers = {
        "forwarded": 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https',
        "x-forwarded-for": "7.7.7.7",  # not the configured header: the client's to forge
    }
    stored = decide_from(
        tmp_path,
        PROXY,
        headers,
        trusted_proxies=[PROXY],
        trusted_proxy_header="forwarded",
    )
    assert stored == [ip_hmac(SECRET, "2001:db8:cafe::17")]


def test_trusted_proxies_default_header_ignores_forwarded(tmp_path: Path) -> None:
    stored = decide_from(tmp_path, PROXY, {"forwarded": "for=6.6.6.6"}, trusted_proxies=[PROXY])
    assert stored == [ip_hmac(SECRET, PROXY)]


class _RecordingResolver:
    """DNS that knows one Googlebot address, and notes every address it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def reverse(self, ip: str) -> str | None:
        self.asked.append(ip)
        return "crawl-66-249-66-1.googlebot.com" if ip == "66.249.66.1" else None

    async def forward(self, name: str) -> Sequence[str]:
        return ["66.249.66.1"] if name == "crawl-66-249-66-1.googlebot.com" else []


@pytest.mark.parametrize(("trusted", "verified"), [([PROXY], True), ([], False)])
def test_trusted_proxies_crawler_verification_uses_the_same_address(
    tmp_path: Path, trusted: list[str], verified: bool
) -> None:
    resolver = _RecordingResolver()

    async def scenario() -> httpx.Response:
        gate = wall_gate(
            ArticleApp(),
            tmp_path,
            wall={"crawlers": {"enabled": True}},
            crawler_resolver=resolver,
            trusted_proxies=trusted,
        )
        transport = httpx.ASGITransport(app=gate, client=(PROXY, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://news.test") as c:
            return await read(c, "/premium/alpha", headers={"x-forwarded-for": "66.249.66.1"})

    response = run(scenario())
    assert resolver.asked == (["66.249.66.1"] if verified else [PROXY])
    assert full_text_present(response.text, "alpha") is verified
    if not verified:
        assert hidden_markers(response.text) == []


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "proxy.internal", "", "10.0.0.1/8/1"])
def test_trusted_proxies_config_refuses_what_is_no_network(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"trusted_proxies\[0\]"):
        Config.from_mapping({"secret_keys": [SECRET], "trusted_proxies": [entry]})


def test_trusted_proxies_config_refuses_unknown_header() -> None:
    with pytest.raises(ConfigError, match="trusted_proxy_header"):
        Config.from_mapping({"secret_keys": [SECRET], "trusted_proxy_header": "x-real-ip"})
