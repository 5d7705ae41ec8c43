"""Redis for what every worker and host must count together: meter reads, rate limits.

Needs the ``redis`` extra (``pip install 'consentgate[redis]'``). Both classes take a
``redis.asyncio.Redis`` client (share one: it holds the connection pool) or build one
with :func:`redis_client_from_url`, whose short socket timeouts make an outage answer
within about a second instead of hanging a page view.

* :class:`RedisMeterStore` raises :class:`~consentgate.storage.base.StorageError` on any
  Redis failure: the article gate then applies ``wall.meter.on_store_error``.
* :class:`RedisRateLimiter` never raises for an outage: it falls back to a per-process
  limiter (or allows the attempt), logging once per outage. Failing closed would turn a
  Redis outage into "nobody can sign in or register"; the scrypt password hashing and
  the per-process fallback still slow a guesser down while Redis is away.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis_asyncio
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from consentgate.storage.base import StorageError

if TYPE_CHECKING:
    from consentgate.accounts.ratelimit import RateLimiter
    from consentgate.wall.meter import MeterStore

__all__ = ["RedisMeterStore", "RedisRateLimiter", "redis_client_from_url"]

logger = logging.getLogger("consentgate.storage.redis")

DEFAULT_PREFIX = "consentgate:"
Client = redis_asyncio.Redis

# Sliding-window log, atomic because a script runs alone: drop hits that left the
# window, refuse when `limit` remain, otherwise log this hit (a refused one is not
# counted, as in MemoryRateLimiter). Members are made unique by a random suffix.
_HIT_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
    return 0
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, math.ceil(window * 1000))
return 1
"""


def redis_client_from_url(url: str, *, timeout: float = 1.0) -> Client:
    """A client that fails fast: ``timeout`` seconds to connect and per command, and
    one immediate retry (a pooled connection may have died while idle: a Redis restart).

    Building it does not connect; the first command does.
    """
    client: Client = redis_asyncio.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return client


def _unix(moment: datetime, name: str) -> float:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.timestamp()


class _RedisUser:
    """A client, who closes it, and the key prefix."""

    def __init__(self, client: Client, *, prefix: str, owns_client: bool) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client

    @property
    def client(self) -> Client:
        return self._client

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the client if this object created it (a shared one is the caller's)."""
        if self._owns_client:
            await self._client.aclose()


class RedisMeterStore(_RedisUser):
    """:class:`~consentgate.wall.meter.MeterStore` on Redis: a sorted set per reader key,
    article → time of the last read.

    ``retention`` must cover the longest meter period (e.g. 31 days for a calendar
    month): reads older than that are dropped, and a set expires that long after its
    last write.
    """

    def __init__(
        self,
        client: Client,
        *,
        retention: timedelta,
        prefix: str = DEFAULT_PREFIX,
        owns_client: bool = False,
    ) -> None:
        if retention.total_seconds() < 1:
            raise ValueError("retention must be at least one second")
        super().__init__(client, prefix=prefix + "meter:", owns_client=owns_client)
        self._retention = retention.total_seconds()

    @classmethod
    def from_url(
        cls, url: str, *, retention: timedelta, timeout: float = 1.0, prefix: str = DEFAULT_PREFIX
    ) -> RedisMeterStore:
        client = redis_client_from_url(url, timeout=timeout)
        return cls(client, retention=retention, prefix=prefix, owns_client=True)

    async def record_read(self, key: str, article: str, at: datetime) -> None:
        if not key or not article:
            raise ValueError("record_read needs a reader key and an article")
        score = _unix(at, "at")
        redis_key = self._prefix + key
        # One MULTI/EXEC, so another worker never sees half of it: keep the newest
        # time per article, forget reads past the retention, expire an idle reader.
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                # GT: reading again moves the time forward, never back (as in SQL).
                pipe.zadd(redis_key, {article: score}, gt=True)
                pipe.zremrangebyscore(redis_key, "-inf", f"({score - self._retention}")
                pipe.pexpire(redis_key, int(self._retention * 1000))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis meter failed: {type(exc).__name__}: {exc}") from exc

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        low = _unix(since, "since")
        try:
            members: list[Any] = await self._client.zrangebyscore(self._prefix + key, low, "+inf")
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis meter failed: {type(exc).__name__}: {exc}") from exc
        return frozenset(_text(member) for member in members)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisRateLimiter(_RedisUser):
    """:class:`~consentgate.accounts.ratelimit.RateLimiter` shared by every worker.

    The same sliding window as ``MemoryRateLimiter`` (a refused attempt is not
    counted). When Redis fails, ``fallback`` decides (pass a ``MemoryRateLimiter`` to
    keep per-process limits); without one the attempt is allowed.
    """

    def __init__(
        self,
        client: Client,
        *,
        fallback: RateLimiter | None = None,
        prefix: str = DEFAULT_PREFIX,
        owns_client: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client, prefix=prefix + "ratelimit:", owns_client=owns_client)
        self._fallback = fallback
        self._clock = clock
        self._script = client.register_script(_HIT_SCRIPT)
        self._failing = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        fallback: RateLimiter | None = None,
        timeout: float = 1.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> RedisRateLimiter:
        client = redis_client_from_url(url, timeout=timeout)
        return cls(client, fallback=fallback, prefix=prefix, owns_client=True)

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window_seconds must be at least 1")
        # The clock is the web server's: skew between hosts of a few milliseconds is
        # nothing against windows of minutes, and a fake clock keeps tests exact.
        now = self._clock()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        try:
            allowed = await self._script(
                keys=[self._prefix + key], args=[now, window_seconds, limit, member]
            )
        except (RedisError, OSError) as exc:
            return await self._degraded(exc, key, limit, window_seconds)
        if self._failing:
            self._failing = False
            logger.warning("consentgate: Redis rate limiter is back")
        return bool(int(allowed))

    async def _degraded(self, exc: BaseException, key: str, limit: int, window: int) -> bool:
        if not self._failing:
            # Once per outage: a log line per sign-in attempt would flood the logs.
            self._failing = True
            how = "per-process limits" if self._fallback is not None else "failing open"
            logger.warning(
                "consentgate: Redis rate limiter unavailable (%s: %s); %s until it is back",
                type(exc).__name__,
                exc,
                how,
            )
        if self._fallback is None:
            return True
        return await self._fallback.hit(key, limit, window)


if TYPE_CHECKING:

    def _implements_meter_store(store: RedisMeterStore) -> MeterStore:
        return store  # mypy proves the protocols are implemented

    def _implements_rate_limiter(limiter: RedisRateLimiter) -> RateLimiter:
        return limiter
