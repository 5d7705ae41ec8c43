"""Counts go to the UTC day they were made on, also when the day is kept between counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from consentgate import metrics
from consentgate.metrics import BANNER_IMPRESSIONS, Metrics


class _Store:
    def __init__(self) -> None:
        self.counts: dict[date, dict[str, int]] = {}

    async def add_counts(self, day: date, counts: dict[str, int]) -> None:
        for name, amount in counts.items():
            day_counts = self.counts.setdefault(day, {})
            day_counts[name] = day_counts.get(name, 0) + amount


def test_metrics_counts_land_on_the_utc_day_they_were_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    midnight = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    now = [midnight - 1.0]
    monkeypatch.setattr(metrics.time, "time", lambda: now[0])
    store = _Store()
    counter = Metrics(store, flush_seconds=1e9)
    counter.add(BANNER_IMPRESSIONS)
    counter.add(BANNER_IMPRESSIONS)
    now[0] = midnight  # the first second of the next day
    counter.add(BANNER_IMPRESSIONS)
    now[0] = midnight - 10.0  # a clock set back: the earlier day again
    counter.add(BANNER_IMPRESSIONS)
    asyncio.run(counter.flush())
    assert store.counts == {
        date(2026, 2, 28): {BANNER_IMPRESSIONS: 3},
        date(2026, 3, 1): {BANNER_IMPRESSIONS: 1},
    }
