"""Sign-in and registration limits that protect readers instead of locking them out.

Failures count per client network (an IPv4 address, an IPv6 /64 by default) and per
account *and* network, with growing delays: a guesser elsewhere never delays the
owner's network, and one /64 is one network however many addresses it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run
from tests.services import REDIS_KEY_PREFIX, delete_keys, require_redis, run_redis_url
from tests.test_accounts_http import PASSWORD, login, register, user_count

from consentgate import ConsentGate
from consentgate.accounts import BackoffPolicy, MemoryBackoff
from consentgate.storage.redis import key_prefix_of

WRONG = "wrong password!"


def from_address(gate: ConsentGate, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gate, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://news.test")


async def attempt(
    gate: ConsentGate, ip: str, password: str, email: str = "reader@example.com"
) -> httpx.Response:
    async with from_address(gate, ip) as c:
        return await login(c, email=email, password=password)


async def registered(gate: ConsentGate) -> None:
    async with client(gate) as c:
        assert (await register(c)).status_code == 303


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("attacker", "owner"),
    [("198.51.100.7", "203.0.113.9"), ("2001:db8:bad::1", "2001:db8:1::1")],
    ids=["ipv4", "ipv6"],
)
def test_ratelimit_networks_ten_failures_elsewhere_never_block_the_owner(
    tmp_path: Path, attacker: str, owner: str
) -> None:
    gate = make_gate(html_app(), tmp_path)  # default: 10 free failures

    async def scenario() -> tuple[list[int], int]:
        await registered(gate)
        wrong = [(await attempt(gate, attacker, WRONG)).status_code for _ in range(12)]
        return wrong, (await attempt(gate, owner, PASSWORD)).status_code

    wrong, right = run(scenario())
    assert wrong == [400] * 10 + [429, 429]  # the attacker waits …
    assert right == 303  # … the owner, on another network, signs in at once


def test_ratelimit_networks_one_ipv6_64_is_one_network(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 3})

    async def scenario() -> tuple[list[int], int]:
        await registered(gate)
        # Every attempt from a new address of the same /64.
        same = [
            (await attempt(gate, f"2001:db8:1:2::{n:x}", WRONG)).status_code for n in range(1, 6)
        ]
        other_64 = (await attempt(gate, "2001:db8:1:3::1", PASSWORD)).status_code
        return same, other_64

    same, other_64 = run(scenario())
    assert same == [400, 400, 400, 429, 429]
    assert other_64 == 303


def test_ratelimit_networks_ipv6_prefix_is_configurable(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 2, "ipv6_prefix": 48})

    async def scenario() -> list[int]:
        await registered(gate)
        # Different /64s, one /48: one network at this prefix.
        return [(await attempt(gate, f"2001:db8:7:{n:x}::1", WRONG)).status_code for n in range(3)]

    assert run(scenario()) == [400, 400, 429]


def test_ratelimit_networks_delays_grow_and_success_clears_them(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 2})
    clock = FakeClock()
    gate.account_endpoints.backoff = MemoryBackoff(clock=clock)
    ip = "198.51.100.20"

    async def scenario() -> tuple[list[str], int, int]:
        await registered(gate)
        waits: list[str] = []
        for _ in range(2):  # the free failures
            assert (await attempt(gate, ip, WRONG)).status_code == 400
        for _ in range(4):
            refused = await attempt(gate, ip, WRONG)
            assert refused.status_code == 429
            waits.append(refused.headers["retry-after"])
            clock.now += float(refused.headers["retry-after"])  # wait as told …
            assert (await attempt(gate, ip, WRONG)).status_code == 400  # … and fail again
        clock.now += 1000
        signed_in = (await attempt(gate, ip, PASSWORD)).status_code
        after = (await attempt(gate, ip, WRONG)).status_code  # the account's count is gone
        return waits, signed_in, after

    waits, signed_in, after = run(scenario())
    policy = BackoffPolicy(free=2, max_seconds=900)
    assert waits == [str(int(policy.delay(n))) for n in range(2, 6)] == ["1", "2", "4", "8"]
    assert signed_in == 303
    assert after == 400


def test_ratelimit_networks_wrong_password_of_one_account_does_not_delay_another(
    tmp_path: Path,
) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 2})
    ip = "198.51.100.30"

    async def scenario() -> tuple[list[int], int]:
        await registered(gate)
        wrong = [
            (await attempt(gate, ip, WRONG, email="other@example.com")).status_code
            for _ in range(3)
        ]
        return wrong, (await attempt(gate, ip, PASSWORD)).status_code

    wrong, mine = run(scenario())
    assert wrong == [400, 400, 429]
    assert mine == 303  # the network's own budget (5x) is not used up


def test_ratelimit_networks_registrations_counted_per_64(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"register_per_hour": 2})

    async def one(ip: str, n: int) -> int:
        async with from_address(gate, ip) as c:
            return (await register(c, email=f"r{n}@example.com")).status_code

    async def scenario() -> list[int]:
        same = [await one(f"2001:db8:5:5::{n + 1:x}", n) for n in range(3)]
        return [*same, await one("2001:db8:5:6::1", 3)]

    assert run(scenario()) == [303, 303, 429, 303]
    assert user_count(tmp_path) == 3


def test_ratelimit_networks_redis_backoff_is_shared_by_workers(tmp_path: Path) -> None:
    # This run's key prefix: the keys are this test's, and deleted afterwards.
    url = run_redis_url(require_redis())
    options: dict[str, Any] = {"accounts": {"login_per_15_minutes": 2}, "meter_url": url}
    workers = [make_gate(html_app(), tmp_path, **options) for _ in range(2)]
    ip = "198.51.100.40"

    prefix = key_prefix_of(workers[0].redis)
    assert prefix.startswith(REDIS_KEY_PREFIX)

    async def keys(gate: ConsentGate) -> list[bytes]:
        return [key async for key in gate.redis.scan_iter(match=prefix + "*")]

    async def scenario() -> tuple[list[int], int, int]:
        try:
            try:
                await registered(workers[0])
                wrong = [await attempt(workers[n % 2], ip, WRONG) for n in range(3)]
                right = await attempt(workers[1], "203.0.113.40", PASSWORD)
                used = len(await keys(workers[0]))
            finally:
                await delete_keys(workers[0].redis, prefix)
            left = len(await keys(workers[0]))
        finally:
            for gate in workers:
                await gate.redis.aclose()
        return [r.status_code for r in (*wrong, right)], used, left

    statuses, used, left = run(scenario())
    # Alternate workers: each saw at most two failures, together three.
    assert statuses == [400, 400, 429, 303]
    assert used > 0  # the counts were under this test's prefix (inside this run's) …
    assert left == 0  # … and are gone
