"""Daily counters for the operator's figures: banner and wall impressions, registrations.

Counting an impression must not cost a database write per page view, so counts gather
in memory and are added to the storage's daily counters every few seconds (and at
shutdown). A failed flush keeps the counts for the next one: figures may arrive late,
but are not lost while the process lives. They are statistics, not proof: a crash
loses at most one interval's counts, which is why consents never go through here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Protocol

from consentgate.storage import StorageError
from consentgate.storage.breaker import without_request_budget

logger = logging.getLogger("consentgate")

BANNER_IMPRESSIONS = "banner_impressions"
WALL_IMPRESSIONS = "wall_impressions"
REGISTRATIONS = "registrations"
# Cap on distinct (day, name) pairs kept while the storage is down: bounded memory.
_MAX_PENDING_KEYS = 10_000
_DAY_SECONDS = 86_400


class CountStore(Protocol):
    async def add_counts(self, day: date, counts: dict[str, int]) -> None: ...


class Metrics:
    def __init__(
        self,
        store: CountStore,
        *,
        flush_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._clock = clock
        self._pending: Counter[tuple[date, str]] = Counter()
        self._last_flush = clock()
        self._task: asyncio.Task[None] | None = None
        # The UTC day counted into, and when it ends (epoch seconds): a banner page
        # counts an impression, and asking the calendar each time costs more than that.
        self._day = date.min
        self._day_ends = 0.0

    def _today(self) -> date:
        now = time.time()
        if now >= self._day_ends or now < self._day_ends - _DAY_SECONDS:
            today = datetime.fromtimestamp(now, UTC).date()
            start = datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp()
            self._day, self._day_ends = today, start + _DAY_SECONDS
        return self._day

    def add(self, name: str, amount: int = 1) -> None:
        """Count now; flush in the background when the interval has passed."""
        key = (self._today(), name)
        if key in self._pending or len(self._pending) < _MAX_PENDING_KEYS:
            self._pending[key] += amount
        if self._clock() - self._last_flush >= self._flush_seconds and self._task is None:
            self._last_flush = self._clock()
            self._task = asyncio.get_running_loop().create_task(self._flush_in_background())

    async def _flush_in_background(self) -> None:
        # Started by some request, but not part of it: that request's storage budget
        # neither pays for the flush nor cuts it short.
        try:
            with without_request_budget():
                await self.flush()
        finally:
            self._task = None

    async def flush(self) -> None:
        """Write what has gathered; on failure, keep it for the next attempt."""
        pending, self._pending = self._pending, Counter()
        by_day: dict[date, dict[str, int]] = {}
        for (day, name), amount in pending.items():
            by_day.setdefault(day, {})[name] = amount
        for day, counts in by_day.items():
            try:
                await self._store.add_counts(day, counts)
            except StorageError as exc:
                logger.warning("consentgate: daily counters not written yet (%s)", exc)
                for name, amount in counts.items():
                    self._pending[(day, name)] += amount

    async def close(self) -> None:
        if self._task is not None:
            await self._task
        await self.flush()
