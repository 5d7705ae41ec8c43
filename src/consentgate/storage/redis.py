"""Redis for what every worker and host must count together: meter reads, rate limits.

Needs the ``redis`` extra (``pip install 'consentgate[redis]'``). Both classes take a
``redis.asyncio.Redis`` client (share one: it holds the connection pool) or build one
with :func:`redis_client_from_url`, whose short socket timeouts make an outage answer
within about a second instead of hanging a page view. Every command is also bounded
by ``call_timeout`` and goes through one circuit breaker per client
(:mod:`consentgate.storage.breaker`), so a Redis that stopped answering costs
milliseconds per request once the breaker is open.

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
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as redis_asyncio
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from consentgate.storage.base import MeterOutcome, StorageError
from consentgate.storage.breaker import (
    BREAKER_URL_PARAMS,
    BreakerSettings,
    CircuitBreaker,
    breaker_settings_from,
)

if TYPE_CHECKING:
    from consentgate.accounts.ratelimit import Backoff, BackoffPolicy, RateLimiter
    from consentgate.wall.meter import MeterStore

__all__ = [
    "RedisBackoff",
    "RedisMeterStore",
    "RedisRateLimiter",
    "breaker_for",
    "key_prefix_of",
    "redis_client_from_url",
]

logger = logging.getLogger("consentgate.storage.redis")

DEFAULT_PREFIX = "consentgate:"
DEFAULT_TIMEOUT = 1.0
# A stale pooled connection may get one retry: two socket timeouts and a little slack.
DEFAULT_CALL_TIMEOUT = 2 * DEFAULT_TIMEOUT + 0.5
# A PING before a command on a connection idle this long (s), so one that died while
# idle is noticed and replaced before a reader's command is sent on it.
HEALTH_CHECK_INTERVAL = 10
Client = redis_asyncio.Redis
_T = TypeVar("_T")

# One breaker per client (the meter and the rate limiter share a client, so they share
# its breaker): keyed weakly, so a closed and dropped client takes its breaker along.
_BREAKERS: weakref.WeakKeyDictionary[Client, CircuitBreaker] = weakref.WeakKeyDictionary()
# The key prefix a client's URL asked for (``key_prefix=``): several sites, or test runs,
# can share one Redis database without sharing counts.
_PREFIXES: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()
_PREFIX_PARAM = "key_prefix"

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


# The server meter's check and record (see RedisMeterStore.meter_read). Returns
# {already read, recorded, reader's other articles, network's other articles or -1}.
_METER_SCRIPT = """
local article = ARGV[1]
local at = tonumber(ARGV[2])
local since = tonumber(ARGV[3])
local reader_limit = tonumber(ARGV[4])
local network_limit = tonumber(ARGV[5])
local retention = tonumber(ARGV[6])
local score = redis.call('ZSCORE', KEYS[1], article)
if score and tonumber(score) >= since then
    return {1, 0, redis.call('ZCOUNT', KEYS[1], since, '+inf') - 1, -1}
end
local reader = redis.call('ZCOUNT', KEYS[1], since, '+inf')
local network = -1
if #KEYS > 1 then
    network = redis.call('ZCOUNT', KEYS[2], since, '+inf')
    local seen = redis.call('ZSCORE', KEYS[2], article)
    if seen and tonumber(seen) >= since then
        network = network - 1
    end
end
if reader >= reader_limit or (network >= 0 and network >= network_limit) then
    return {0, 0, reader, network}
end
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, 'GT', at, article)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (at - retention))
    redis.call('PEXPIRE', key, math.ceil(retention * 1000))
end
return {0, 1, reader, network}
"""


def redis_client_from_url(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A client that fails fast: ``timeout`` seconds to connect and per command, TCP
    keepalives, a health check on connections idle for a while, and one immediate
    retry (a pooled connection may have died while idle: a Redis restart).

    redis-py's own query parameters (``socket_timeout``, ``socket_connect_timeout``,
    ``health_check_interval``, …) override these; ``call_timeout`` (the bound on every
    command, seconds), ``breaker_failures``, ``breaker_cooldown`` and ``key_prefix``
    (default ``consentgate:``) are ours. Building the client does not connect; the
    first command does.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own_keys = BREAKER_URL_PARAMS | {_PREFIX_PARAM}
    ours = {key: value for key, value in query if key in own_keys}
    rest = [(key, value) for key, value in query if key not in own_keys]
    settings = breaker_settings_from(ours, "Redis", call_timeout=2 * timeout + 0.5)
    client: Client = redis_asyncio.from_url(
        urlunsplit(parts._replace(query=urlencode(rest))),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(NoBackoff(), 1),
    )
    _BREAKERS[client] = _new_breaker(client, settings)
    if ours.get(_PREFIX_PARAM):
        _PREFIXES[client] = ours[_PREFIX_PARAM]
    return client


def key_prefix_of(client: Client) -> str:
    """The prefix the client's URL set with ``key_prefix=``, else ``consentgate:``."""
    return _PREFIXES.get(client, DEFAULT_PREFIX)


def breaker_for(client: Client) -> CircuitBreaker:
    """The breaker of ``client`` (one made with default settings for a foreign client)."""
    breaker = _BREAKERS.get(client)
    if breaker is None:
        breaker = _BREAKERS[client] = _new_breaker(
            client, BreakerSettings(call_timeout=DEFAULT_CALL_TIMEOUT)
        )
    return breaker


def _new_breaker(client: Client, settings: BreakerSettings) -> CircuitBreaker:
    kwargs = client.connection_pool.connection_kwargs
    where = f"{kwargs.get('host', 'unix socket')}:{kwargs.get('port', '')}"
    return CircuitBreaker(f"Redis {where}", settings, is_outage=_is_outage)


def _is_outage(exc: BaseException) -> bool:
    """No connection or no answer; a script or type error is an answer."""
    return isinstance(exc.__cause__, RedisConnectionError | RedisTimeoutError | OSError)


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
        self._breaker = breaker_for(client)

    @property
    def client(self) -> Client:
        return self._client

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def _call(self, job: Callable[[], Awaitable[_T]]) -> _T:
        """Every command goes through here: the bound, the breaker, StorageError."""

        async def attempt() -> _T:
            try:
                return await job()
            except (RedisError, OSError) as exc:
                raise StorageError(f"Redis failed: {type(exc).__name__}: {exc}") from exc

        return await self._breaker.call(attempt)

    async def ping(self) -> None:
        await self._call(self._client.ping)

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
        prefix: str | None = None,
        owns_client: bool = False,
    ) -> None:
        if retention.total_seconds() < 1:
            raise ValueError("retention must be at least one second")
        if prefix is None:
            prefix = key_prefix_of(client)
        super().__init__(client, prefix=prefix + "meter:", owns_client=owns_client)
        self._retention = retention.total_seconds()
        self._meter_script = client.register_script(_METER_SCRIPT)

    @classmethod
    def from_url(
        cls, url: str, *, retention: timedelta, timeout: float = 1.0, prefix: str | None = None
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
        async def write() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                # GT: reading again moves the time forward, never back (as in SQL).
                pipe.zadd(redis_key, {article: score}, gt=True)
                pipe.zremrangebyscore(redis_key, "-inf", f"({score - self._retention}")
                pipe.pexpire(redis_key, int(self._retention * 1000))
                await pipe.execute()

        await self._call(write)

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        low = _unix(since, "since")

        async def read() -> list[Any]:
            members: list[Any] = await self._client.zrangebyscore(self._prefix + key, low, "+inf")
            return members

        return frozenset(_text(member) for member in await self._call(read))

    async def meter_read(
        self,
        reader_key: str,
        network_key: str | None,
        article: str,
        at: datetime,
        since: datetime,
        reader_limit: int,
        network_limit: int,
    ) -> MeterOutcome:
        """Check and record in one Lua script: Redis runs a script alone, so no other
        command on these keys (from any worker or host) comes between the counts and
        the write. Both keys are used in one script, so this needs a single Redis, not
        a Redis Cluster (where they could live on different nodes)."""
        if not reader_key or not article:
            raise ValueError("meter_read needs a reader key and an article")
        keys = [self._prefix + reader_key]
        if network_key is not None:
            keys.append(self._prefix + network_key)
        args: list[str | int] = [
            article,
            repr(_unix(at, "at")),
            repr(_unix(since, "since")),
            reader_limit,
            network_limit,
            repr(self._retention),
        ]

        async def run() -> Any:
            return await self._meter_script(keys=keys, args=args)

        already, recorded, reader_reads, network_reads = (int(v) for v in await self._call(run))
        return MeterOutcome(
            already_read=bool(already),
            recorded=bool(recorded),
            reader_reads=reader_reads,
            network_reads=None if network_reads < 0 else network_reads,
        )


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
        prefix: str | None = None,
        owns_client: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if prefix is None:
            prefix = key_prefix_of(client)
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
        prefix: str | None = None,
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

        async def run() -> Any:
            return await self._script(
                keys=[self._prefix + key], args=[now, window_seconds, limit, member]
            )

        try:
            allowed = await self._call(run)
        except StorageError as exc:
            # With the breaker open this costs nothing: the fallback answers at once.
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


# Failures per key for the sign-in back-off: read, count or clear in one script, so two
# workers counting the same key never lose a failure. Returns {failures, last failure}.
_BACKOFF_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local op = ARGV[2]
local forget = tonumber(ARGV[3])
if op == 'clear' then
    redis.call('DEL', key)
    return {0, '0'}
end
local n = tonumber(redis.call('HGET', key, 'n') or '0')
local last = tonumber(redis.call('HGET', key, 'last') or '0')
if n > 0 and now - last >= forget then
    n = 0
end
if op == 'fail' then
    n = n + 1
    last = now
    redis.call('HSET', key, 'n', n, 'last', ARGV[1])
    redis.call('PEXPIRE', key, math.ceil(forget * 1000))
end
return {n, tostring(last)}
"""


class RedisBackoff(_RedisUser):
    """:class:`~consentgate.accounts.ratelimit.Backoff` shared by every worker.

    When Redis fails, ``fallback`` (a ``MemoryBackoff``) counts per process, as
    :class:`RedisRateLimiter` does: an outage must not stop every sign-in.
    """

    def __init__(
        self,
        client: Client,
        *,
        fallback: Backoff,
        prefix: str | None = None,
        owns_client: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if prefix is None:
            prefix = key_prefix_of(client)
        super().__init__(client, prefix=prefix + "backoff:", owns_client=owns_client)
        self._fallback = fallback
        self._clock = clock
        self._script = client.register_script(_BACKOFF_SCRIPT)

    async def _run(self, key: str, op: str, forget: float) -> tuple[int, float] | None:
        now = self._clock()

        async def run() -> Any:
            return await self._script(keys=[self._prefix + key], args=[f"{now:.6f}", op, forget])

        try:
            failures, last = await self._call(run)
        except StorageError as exc:
            logger.warning("consentgate: Redis back-off unavailable, per-process: %s", exc)
            return None
        return int(failures), float(_text(last))

    async def wait_seconds(self, key: str, policy: BackoffPolicy) -> float:
        found = await self._run(key, "get", policy.forget_seconds)
        if found is None:
            return await self._fallback.wait_seconds(key, policy)
        failures, last = found
        return max(0.0, last + policy.delay(failures) - self._clock())

    async def failure(self, key: str, policy: BackoffPolicy) -> None:
        if await self._run(key, "fail", policy.forget_seconds) is None:
            await self._fallback.failure(key, policy)

    async def success(self, key: str) -> None:
        await self._fallback.success(key)
        await self._run(key, "clear", 1.0)


if TYPE_CHECKING:

    def _implements_meter_store(store: RedisMeterStore) -> MeterStore:
        return store  # mypy proves the protocols are implemented

    def _implements_rate_limiter(limiter: RedisRateLimiter) -> RateLimiter:
        return limiter
