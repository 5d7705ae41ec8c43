"""Outages for real: the servers sit behind a TCP proxy that the test stops and starts.

Stopping the proxy closes the listener and every forwarded connection (a crashed or
unreachable server). The stores must answer ``StorageError`` within seconds, lose
nothing acknowledged before, and work again, the same objects, once the proxy is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from tests.services import (
    Fault,
    TcpProxy,
    delete_keys,
    fresh_postgres_schema,
    require_postgres,
    require_redis,
    run_key_prefix,
    with_address,
    with_query,
)

from consentgate.accounts.ratelimit import MemoryRateLimiter
from consentgate.storage import ConsentRecord, StorageError
from consentgate.storage.breaker import BreakerState
from consentgate.storage.postgres import PostgresStorage
from consentgate.storage.redis import RedisMeterStore, RedisRateLimiter, redis_client_from_url

T = TypeVar("T")
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RECOVERY_SECONDS = 10.0

RECORD = ConsentRecord(
    consent_id="c-1",
    user_id=None,
    action="grant",
    granted=("necessary",),
    denied=(),
    policy_version="1",
    banner_text_sha256="a" * 64,
    language="en",
    region_mode="gdpr",
    method="form",
    ip_hmac="h",
    user_agent="UA",
    recorded_at=START,
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_schema(require_postgres()) as url:
        yield url


def proxy_for(url: str) -> TcpProxy:
    parts = urlsplit(url)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0)


async def timed(action: Callable[[], Awaitable[T]]) -> float:
    """Seconds until ``action`` raised StorageError (it must)."""
    started = time.monotonic()
    with pytest.raises(StorageError):
        await action()
    return time.monotonic() - started


async def eventually(action: Callable[[], Awaitable[T]]) -> T:
    """``action``'s result once it stops raising StorageError (the pool reconnecting)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        try:
            return await action()
        except StorageError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_postgres_outage_fails_fast_keeps_data_and_recovers(pg_url: str) -> None:
    proxy = proxy_for(pg_url)

    async def scenario() -> tuple[float, float, int]:
        await proxy.start()
        url = with_address(pg_url, "127.0.0.1", proxy.port)
        storage = PostgresStorage(url, min_size=2, max_size=4, pool_timeout=2, connect_timeout=2)
        await storage.open()
        try:
            for n in range(5):
                await storage.record_consent(replace(RECORD, consent_id=f"before-{n}"))

            await proxy.stop()
            first = await timed(lambda: storage.record_consent(RECORD))
            second = await timed(lambda: storage.record_consent(RECORD))

            await proxy.start()
            await eventually(storage.ping)
            await storage.record_consent(replace(RECORD, consent_id="after"))
            return first, second, await storage.count_consents()
        finally:
            await storage.close()
            await proxy.stop()

    first, second, count = asyncio.run(scenario())

    # "Fails fast" here means "not a hang": generous bounds, since CI machines are busy.
    assert first < 15 and second < 15
    assert count == 6  # five before, one after; the failed writes left nothing behind


def test_postgres_outage_at_open_then_recovery(pg_url: str) -> None:
    proxy = proxy_for(pg_url)

    async def scenario() -> int:
        url = with_address(pg_url, "127.0.0.1", proxy.port)
        storage = PostgresStorage(url, pool_timeout=1, connect_timeout=2)
        elapsed = await timed(storage.open)
        assert elapsed < 15  # not a hang; connect_timeout is 2 s
        await proxy.start()
        try:
            await eventually(storage.open)
            await storage.record_consent(RECORD)
            return await storage.count_consents()
        finally:
            await storage.close()
            await proxy.stop()

    assert asyncio.run(scenario()) == 1


def test_redis_outage_meter_fails_fast_rate_limiter_degrades_and_both_recover() -> None:
    url = require_redis()
    proxy = proxy_for(url)
    prefix = run_key_prefix("outage:")  # inside this run's: see tests/services.py

    async def scenario() -> tuple[float, frozenset[str], list[bool], bool]:
        await proxy.start()
        client = redis_client_from_url(with_address(url, "127.0.0.1", proxy.port))
        meter = RedisMeterStore(client, retention=timedelta(days=31), prefix=prefix)
        limiter = RedisRateLimiter(client, fallback=MemoryRateLimiter(), prefix=prefix)
        try:
            await meter.record_read("r", "a1", START)
            assert await limiter.hit("k", 2, 60)

            await proxy.stop()
            elapsed = await timed(lambda: meter.record_read("r", "a2", START))
            degraded = [await limiter.hit("k", 2, 60) for _ in range(3)]

            await proxy.start()
            await eventually(lambda: meter.record_read("r", "a3", START))
            reads = await meter.distinct_reads("r", START)
            # Back on Redis: one hit was stored before the outage, so one more is allowed.
            back = await limiter.hit("k", 2, 60)
            return elapsed, reads, degraded, back
        finally:
            await delete_keys(client, prefix)
            await client.aclose()
            await proxy.stop()

    elapsed, reads, degraded, back = asyncio.run(scenario())

    assert elapsed < 10  # not a hang; the client timeout is 1 s
    assert reads == {"a1", "a3"}  # the read from before the outage is still there
    assert degraded == [True, True, False]  # the per-process fallback counted on its own
    assert back is True


# -- every fault a network can play, for PostgreSQL and Redis --------------------------
# Bounds: each call is limited to CALL_TIMEOUT (1 s) and the breaker opens after two
# failures for COOLDOWN (1 s). The assertions allow several times that (busy 2-core CI
# machines), which is still far below the minutes seen before calls had a bound.
CALL_TIMEOUT = 1.0
COOLDOWN = 1.0
FIRST_FAILURE_BOUND = 6.0  # connect/stall paths: the call bound plus scheduling slack
OPEN_BREAKER_BOUND = 0.5  # "fails in milliseconds" once open; generous for CI
FAULTS = [Fault.REFUSE, Fault.RESET, Fault.STALL, Fault.BLACKHOLE]
BREAKER_PARAMS = {"call_timeout": CALL_TIMEOUT, "breaker_failures": 2, "breaker_cooldown": COOLDOWN}


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.value)
def test_postgres_fault_bounded_then_breaker_fast_then_recovers(pg_url: str, fault: Fault) -> None:
    proxy = proxy_for(pg_url)

    async def scenario() -> tuple[list[float], float, BreakerState, int]:
        await proxy.start()
        url = with_query(with_address(pg_url, "127.0.0.1", proxy.port), **BREAKER_PARAMS)
        storage = PostgresStorage(url, min_size=1, max_size=4, pool_timeout=5, connect_timeout=5)
        await storage.open()
        try:
            await storage.record_consent(replace(RECORD, consent_id="before"))
            await proxy.fault(fault)
            failures = [await timed(lambda: storage.record_consent(RECORD)) for _ in range(2)]
            fast = await timed(lambda: storage.record_consent(RECORD))
            state = storage.breaker.state

            await proxy.heal()
            await eventually(lambda: storage.record_consent(replace(RECORD, consent_id="after")))
            return failures, fast, state, await storage.count_consents()
        finally:
            await storage.close()
            await proxy.stop()

    failures, fast, state, count = asyncio.run(scenario())
    assert max(failures) < FIRST_FAILURE_BOUND, failures
    assert state is BreakerState.OPEN
    assert fast < OPEN_BREAKER_BOUND
    assert count == 2  # before and after; nothing written during the fault


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.value)
def test_redis_fault_bounded_then_breaker_fast_then_recovers(fault: Fault) -> None:
    url = require_redis()
    proxy = proxy_for(url)
    prefix = run_key_prefix("fault:")

    async def scenario() -> tuple[list[float], float, float, frozenset[str], bool]:
        await proxy.start()
        proxied = with_query(with_address(url, "127.0.0.1", proxy.port), **BREAKER_PARAMS)
        client = redis_client_from_url(proxied)
        meter = RedisMeterStore(client, retention=timedelta(days=31), prefix=prefix)
        limiter = RedisRateLimiter(client, fallback=MemoryRateLimiter(), prefix=prefix)
        try:
            await meter.record_read("r", "a1", START)
            await proxy.fault(fault)
            failures = [await timed(lambda: meter.record_read("r", "a2", START)) for _ in range(2)]
            fast = await timed(lambda: meter.distinct_reads("r", START))
            started = time.monotonic()
            assert await limiter.hit("k", 5, 60)  # the per-process fallback, at once
            fallback = time.monotonic() - started

            await proxy.heal()
            await eventually(lambda: meter.record_read("r", "a3", START))
            return failures, fast, fallback, await meter.distinct_reads("r", START), True
        finally:
            await proxy.stop()
            cleaner = redis_client_from_url(url)
            await delete_keys(cleaner, prefix)
            await cleaner.aclose()
            await client.aclose()

    failures, fast, fallback, reads, _ = asyncio.run(scenario())
    assert max(failures) < FIRST_FAILURE_BOUND, failures
    assert fast < OPEN_BREAKER_BOUND
    assert fallback < OPEN_BREAKER_BOUND  # an open breaker sends the limiter to its fallback
    assert reads == {"a1", "a3"}
