"""Rate limits for sign-in and registration: protocols and in-memory backends.

Two shapes. :class:`RateLimiter` is a sliding window of attempts (registrations per
network). :class:`Backoff` counts *failures* per key and answers with a growing delay
once a few free ones are used up (sign-in per account and network, per network, the
admin token): the delay doubles with every further failure up to a ceiling, and a
success clears it. Keyed by account *and* network, failures from elsewhere never
delay the owner's own network.

The in-memory backends count per process; behind several workers each one counts on
its own. The Redis backends (:mod:`consentgate.storage.redis`) share the counts.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backoff", "BackoffPolicy", "MemoryBackoff", "MemoryRateLimiter", "RateLimiter"]

DEFAULT_MAX_KEYS = 100_000


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one attempt for ``key``; False when ``limit`` were already made in the
        last ``window_seconds`` (a refused attempt is not counted)."""
        ...


class _Window:
    __slots__ = ("hits", "seconds")

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.hits: deque[float] = deque()

    def drop_before(self, now: float) -> None:
        while self.hits and self.hits[0] <= now - self.seconds:
            self.hits.popleft()

    def expired(self, now: float) -> bool:
        return not self.hits or self.hits[-1] <= now - self.seconds


class MemoryRateLimiter:
    """A sliding-window log per key, in a bounded LRU map.

    Memory: at most ``max_keys`` keys, each holding at most ``limit`` timestamps (refused
    attempts are not stored). When full, keys whose window has passed go first, then the
    least recently used — callers should check a per-address key before a per-e-mail
    one, so that flooding the map with e-mails is itself limited.
    """

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        # No await inside: on one event loop this runs atomically, no lock needed.
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window_seconds must be at least 1")
        now = self._clock()
        window = self._window(key, window_seconds, now)
        window.drop_before(now)
        if len(window.hits) >= limit:
            return False
        window.hits.append(now)
        return True

    def _window(self, key: str, seconds: int, now: float) -> _Window:
        window = self._windows.get(key)
        if window is not None:
            self._windows.move_to_end(key)
            window.seconds = seconds
            return window
        if len(self._windows) >= self._max_keys:
            self._evict(now)
        window = self._windows[key] = _Window(seconds)
        return window

    def _evict(self, now: float) -> None:
        # Least recently used first: those are the likeliest to have expired.
        while self._windows:
            oldest_key, oldest = next(iter(self._windows.items()))
            if not oldest.expired(now):
                break
            del self._windows[oldest_key]
        while len(self._windows) >= self._max_keys:
            self._windows.popitem(last=False)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """After ``free`` failures the key waits ``base_seconds`` before its next try,
    and each further failure doubles the wait (at most ``max_seconds``). A key with
    no failure for ``forget_seconds`` starts afresh."""

    free: int = 10
    base_seconds: float = 1.0
    max_seconds: float = 900.0
    forget_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        if self.free < 1 or self.base_seconds <= 0 or self.max_seconds < self.base_seconds:
            raise ValueError("free >= 1 and 0 < base_seconds <= max_seconds")
        if self.forget_seconds < self.max_seconds:
            raise ValueError("forget_seconds must be at least max_seconds")

    def delay(self, failures: int) -> float:
        """How long to wait after the last of ``failures`` failures."""
        over = failures - self.free
        if over < 0:
            return 0.0
        # Capped before the power, so that a huge count cannot overflow a float.
        return min(self.max_seconds, self.base_seconds * 2.0 ** min(over, 64))


class Backoff(Protocol):
    async def wait_seconds(self, key: str, policy: BackoffPolicy) -> float:
        """Seconds before ``key`` may try again (0: now). Counts nothing."""
        ...

    async def failure(self, key: str, policy: BackoffPolicy) -> None:
        """Count one failure of ``key``."""
        ...

    async def success(self, key: str) -> None:
        """Forget ``key``'s failures (the owner proved who they are)."""
        ...


class MemoryBackoff:
    """Failures per key in a bounded LRU map (least recently failed dropped first)."""

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._clock = clock
        # key -> (failures, time of the last failure)
        self._keys: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def _current(self, key: str, policy: BackoffPolicy, now: float) -> tuple[int, float]:
        entry = self._keys.get(key)
        if entry is None or now - entry[1] >= policy.forget_seconds:
            return 0, now
        return entry

    async def wait_seconds(self, key: str, policy: BackoffPolicy) -> float:
        now = self._clock()
        failures, last = self._current(key, policy, now)
        return max(0.0, last + policy.delay(failures) - now)

    async def failure(self, key: str, policy: BackoffPolicy) -> None:
        now = self._clock()
        failures, _ = self._current(key, policy, now)
        self._keys[key] = (failures + 1, now)
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)

    async def success(self, key: str) -> None:
        self._keys.pop(key, None)
