"""The Redis meter store and rate limiter, against a real Redis (db 15 by default)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from tests.services import REDIS_KEY_PREFIX, free_port, require_redis, run_redis_url

from consentgate.accounts.ratelimit import MemoryRateLimiter
from consentgate.storage import StorageError
from consentgate.storage.redis import RedisMeterStore, RedisRateLimiter, redis_client_from_url
from consentgate.wall.meter import MeterWindow, ServerMeter

T = TypeVar("T")
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@asynccontextmanager
async def prefixed(url: str) -> AsyncIterator[tuple[object, str]]:
    """A client and a key prefix of this test only (inside this run's): its keys are
    deleted afterwards, and no other test or test run shares them."""
    client = redis_client_from_url(url)
    prefix = f"{REDIS_KEY_PREFIX}{secrets.token_hex(4)}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def run_with(url: str, body: Callable[[object, str], Awaitable[T]]) -> T:
    async def scenario() -> T:
        async with prefixed(url) as (client, prefix):
            return await body(client, prefix)

    return asyncio.run(scenario())


# --- meter --------------------------------------------------------------------------------


def test_redis_meter_distinct_reads_forward_only(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> tuple[frozenset[str], frozenset[str]]:
        store = RedisMeterStore(client, retention=31 * DAY, prefix=prefix)  # type: ignore[arg-type]
        await store.record_read("r", "a1", START)
        await store.record_read("r", "a1", START + 2 * DAY)
        await store.record_read("r", "a1", START + DAY)  # never moves back
        await store.record_read("r", "a2", START)
        await store.record_read("other", "a3", START + 3 * DAY)
        return (
            await store.distinct_reads("r", START + DAY),
            await store.distinct_reads("r", START),
        )

    since_day_one, everything = run_with(redis_url, body)

    assert since_day_one == {"a1"}
    assert everything == {"a1", "a2"}


def test_redis_meter_forgets_reads_past_retention_and_sets_expiry(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> tuple[frozenset[str], int]:
        store = RedisMeterStore(client, retention=30 * DAY, prefix=prefix)  # type: ignore[arg-type]
        await store.record_read("r", "old", START)
        await store.record_read("r", "new", START + 31 * DAY)
        ttl = await client.pttl(prefix + "meter:r")  # type: ignore[attr-defined]
        return await store.distinct_reads("r", START - DAY), int(ttl)

    reads, ttl_ms = run_with(redis_url, body)

    assert reads == {"new"}
    assert 29 * 86_400_000 < ttl_ms <= 30 * 86_400_000


def test_redis_meter_drives_server_meter_limit(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> list[bool]:
        store = RedisMeterStore(client, retention=31 * DAY, prefix=prefix)  # type: ignore[arg-type]
        meter = ServerMeter(store, MeterWindow(limit=2), network_limit=10, secret_key="k" * 32)
        now = START.timestamp()
        verdicts = [
            await meter.check_and_count("reader-1", "192.0.2.1", article, now)
            for article in ("a", "b", "a", "c")
        ]
        return [verdict.allowed for verdict in verdicts]

    assert run_with(redis_url, body) == [True, True, True, False]


def test_redis_meter_naive_time_or_empty_key_raises(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> None:
        store = RedisMeterStore(client, retention=DAY, prefix=prefix)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.record_read("r", "a", datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="reader key"):
            await store.record_read("", "a", START)

    run_with(redis_url, body)


def test_redis_meter_unreachable_raises_storage_error_quickly() -> None:
    async def scenario() -> float:
        store = RedisMeterStore.from_url(f"redis://127.0.0.1:{free_port()}/0", retention=DAY)
        started = time.monotonic()
        with pytest.raises(StorageError, match="Redis"):
            await store.record_read("r", "a", START)
        with pytest.raises(StorageError, match="Redis"):
            await store.distinct_reads("r", START)
        await store.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 3


# --- rate limiter ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_redis_rate_limit_refuses_over_limit_and_window_slides(redis_url: str) -> None:
    clock = FakeClock()

    async def body(client: object, prefix: str) -> list[bool]:
        limiter = RedisRateLimiter(client, prefix=prefix, clock=clock)  # type: ignore[arg-type]
        results = []
        for step in (0, 1, 2, 3):  # three allowed, the fourth refused (and not counted)
            clock.now = 1_000_000.0 + step
            results.append(await limiter.hit("ip:1", 3, 60))
        results.append(await limiter.hit("ip:2", 3, 60))  # keys are independent
        clock.now = 1_000_061.5  # the first two hits have left the window
        results += [await limiter.hit("ip:1", 3, 60) for _ in range(3)]
        return results

    assert run_with(redis_url, body) == [True, True, True, False, True, True, True, False]


def test_redis_rate_limit_is_atomic_under_concurrency(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> int:
        limiters = [RedisRateLimiter(client, prefix=prefix) for _ in range(3)]  # type: ignore[arg-type]
        hits = await asyncio.gather(*(limiters[n % 3].hit("login:x", 10, 60) for n in range(60)))
        return sum(hits)

    assert run_with(redis_url, body) == 10


def test_redis_rate_limit_runs_with_other_prefixes_do_not_share_counts(redis_url: str) -> None:
    # Two test runs (or sites) on one database, hitting the same key at the same time:
    # each counts only its own hits, so neither can push the other past its limit.
    async def body(client: object, prefix: str) -> list[int]:
        runs = [RedisRateLimiter(client, prefix=f"{prefix}{run}:") for run in ("a", "b")]  # type: ignore[arg-type]
        hits = await asyncio.gather(*(runs[n % 2].hit("login:x", 10, 60) for n in range(60)))
        return [sum(hits[0::2]), sum(hits[1::2])]

    assert run_with(redis_url, body) == [10, 10]


def test_redis_run_url_puts_every_gate_key_under_the_run_prefix(redis_url: str) -> None:
    # The gate builds its client from meter_url; with the run's URL, the limiter and
    # the meter (default prefixes) write only under REDIS_KEY_PREFIX.
    async def scenario() -> tuple[list[str], list[bool]]:
        client = redis_client_from_url(run_redis_url(redis_url))
        reader = f"reader-{secrets.token_hex(4)}"
        try:
            limiter = RedisRateLimiter(client)
            meter = RedisMeterStore(client, retention=31 * DAY)
            allowed = [await limiter.hit(reader, 1, 60) for _ in range(2)]
            await meter.record_read(reader, "a1", datetime.now(UTC))
            keys = [key.decode() async for key in client.scan_iter(match=f"*{reader}*", count=1000)]
            if keys:
                await client.delete(*keys)
            return keys, allowed
        finally:
            await client.aclose()

    keys, allowed = asyncio.run(scenario())
    assert allowed == [True, False]
    assert len(keys) == 2
    assert all(key.startswith(REDIS_KEY_PREFIX) for key in keys), keys


def test_redis_rate_limit_key_expires_after_window(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> int:
        limiter = RedisRateLimiter(client, prefix=prefix)  # type: ignore[arg-type]
        await limiter.hit("k", 5, 30)
        return int(await client.pttl(prefix + "ratelimit:k"))  # type: ignore[attr-defined]

    assert 0 < run_with(redis_url, body) <= 30_000


def test_redis_rate_limit_outage_uses_fallback_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> list[bool]:
        limiter = RedisRateLimiter.from_url(
            f"redis://127.0.0.1:{free_port()}/0", fallback=MemoryRateLimiter()
        )
        try:
            return [await limiter.hit("k", 2, 60) for _ in range(3)]
        finally:
            await limiter.close()

    with caplog.at_level(logging.WARNING, logger="consentgate.storage.redis"):
        results = asyncio.run(scenario())

    assert results == [True, True, False]
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


def test_redis_rate_limit_outage_without_fallback_fails_open() -> None:
    async def scenario() -> list[bool]:
        limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0")
        try:
            return [await limiter.hit("k", 1, 60) for _ in range(3)]
        finally:
            await limiter.close()

    assert asyncio.run(scenario()) == [True, True, True]


def test_redis_rate_limit_bad_arguments_raise(redis_url: str) -> None:
    async def body(client: object, prefix: str) -> None:
        limiter = RedisRateLimiter(client, prefix=prefix)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await limiter.hit("k", 0, 60)

    run_with(redis_url, body)
