"""Rate limits for sign-in and registration: a protocol and an in-memory backend.

The in-memory limiter counts per process; behind several workers each one counts on
its own, so the effective limit is ``limit × workers``. The Redis backend (a later
release) shares the count.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["MemoryRateLimiter", "RateLimiter"]

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
