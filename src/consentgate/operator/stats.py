"""The operator's figures, from the consent ledger and the daily counters.

Shared by ``consentgate stats`` and the dashboard. Two ways to the same figures:

* **Rollups** (schema version 4): the database keeps, on every ledger insert, the
  decisions per day, action and method, and each consent id's latest decision and
  latest GPC signal. A window of whole UTC days that runs until now is answered from
  them with a few index reads, however long the ledger: the dashboard's windows.
* **The stream**, for any other window: the ledger is read in keyset pages
  (``iter_consents``); what needs one entry per consent id goes to a temporary on-disk
  SQLite index, so memory stays bounded however long the window is.

The dashboard accepts windows of at most :data:`MAX_WINDOW_DAYS`, so that no request
can make the server read years of ledger.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from consentgate.operator.store import (
    BANNER_IMPRESSIONS,
    COUNTER_NAMES,
    REGISTRATIONS,
    WALL_IMPRESSIONS,
    Window,
    iso,
)
from consentgate.storage import CONSENT_ACTIONS, ConsentRecord, Storage
from consentgate.storage.ports import Outbox

__all__ = [
    "ACTIONS",
    "MAX_WINDOW_DAYS",
    "CategoryRate",
    "Day",
    "OutboxFigures",
    "Stats",
    "WindowTooLong",
    "check_window",
    "compute_stats",
    "describe_age",
    "outbox_figures",
    "uses_rollups",
]

# Display order; every ledger action, as the storage layer defines them.
ACTIONS = tuple(sorted(CONSENT_ACTIONS, key=("grant", "reject", "update", "withdraw", "gpc").index))
METHODS = ("form", "js", "api", "gpc")
BANNER_METHODS = frozenset({"form", "js"})  # answers given in the banner or settings page
_BATCH = 1000
MAX_WINDOW_DAYS = 366  # a leap year


class WindowTooLong(ValueError):
    """The window is open at its start or longer than the limit."""


def check_window(window: Window, now: datetime, max_days: int = MAX_WINDOW_DAYS) -> None:
    """Raise :class:`WindowTooLong` unless ``window`` has a start and spans at most
    ``max_days`` days (until ``now`` when it has no end)."""
    if window.since is None:
        raise WindowTooLong(f"give a start (since); windows span at most {max_days} days")
    end = window.until if window.until is not None else now
    if end - window.since > timedelta(days=max_days):
        raise WindowTooLong(f"windows span at most {max_days} days")


def _midnight(moment: datetime) -> bool:
    return moment.astimezone(UTC).time() == time(0)


def uses_rollups(window: Window, now: datetime) -> bool:
    """Whole UTC days until now: then each consent id's latest decision in the window
    is its latest decision of all, which the rollups keep."""
    since, until = window.since, window.until
    if since is None or not _midnight(since):
        return False
    return until is None or (_midnight(until) and until >= now)


@dataclass(frozen=True, slots=True)
class CategoryRate:
    category: str
    granted: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.granted / self.total if self.total else None


@dataclass(slots=True)
class Day:
    day: date
    by_action: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)

    @property
    def decisions(self) -> int:
        return sum(self.by_action.values())


@dataclass(frozen=True, slots=True)
class OutboxFigures:
    """The outbox as it is now (not per window): what waits for the mail server.

    ``retrying`` are the waiting messages that failed at least once; a growing number,
    or an old ``oldest_pending``, means the mail server is down or refuses us (the
    log, ``consentgate.mail``, says why). ``dead`` were given up."""

    pending: int = 0
    retrying: int = 0
    dead: int = 0
    sent: int = 0
    oldest_pending: datetime | None = None
    as_of: datetime | None = None

    @property
    def oldest_pending_age(self) -> timedelta | None:
        if self.oldest_pending is None or self.as_of is None:
            return None
        return max(self.as_of - self.oldest_pending, timedelta(0))

    def to_json(self) -> dict[str, Any]:
        age = self.oldest_pending_age
        return {
            "pending": self.pending,
            "retrying": self.retrying,
            "dead": self.dead,
            "sent": self.sent,
            "oldest_pending": iso(self.oldest_pending) if self.oldest_pending else None,
            "oldest_pending_age_seconds": int(age.total_seconds()) if age is not None else None,
        }


async def outbox_figures(outbox: Outbox, now: datetime | None = None) -> OutboxFigures:
    counts = await outbox.outbox_counts()
    return OutboxFigures(
        pending=counts.get("pending", 0),
        retrying=counts.get("retrying", 0),
        dead=counts.get("dead", 0),
        sent=counts.get("sent", 0),
        oldest_pending=await outbox.oldest_pending(),
        as_of=now or datetime.now(UTC),
    )


def describe_age(age: timedelta | None) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``; ``–`` for none."""
    if age is None:
        return "–"
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


@dataclass(slots=True)
class Stats:
    window: Window
    decisions: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    banner_decisions: int = 0
    consent_ids: int = 0
    gpc_consent_ids: int = 0
    category_rates: list[CategoryRate] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    days: list[Day] = field(default_factory=list)
    outbox: OutboxFigures = field(default_factory=OutboxFigures)

    rate_basis = "latest decision of each consent id in the window"

    @property
    def banner_impressions(self) -> int:
        return self.counters[BANNER_IMPRESSIONS]

    @property
    def wall_impressions(self) -> int:
        return self.counters[WALL_IMPRESSIONS]

    @property
    def registrations(self) -> int:
        return self.counters[REGISTRATIONS]

    @property
    def gpc_share(self) -> float | None:
        return _share(self.gpc_consent_ids, self.consent_ids)

    @property
    def banner_answer_rate(self) -> float | None:
        """Banner and settings-page answers per banner impression."""
        return _share(self.banner_decisions, self.banner_impressions)

    @property
    def wall_conversion(self) -> float | None:
        """Registrations per wall impression."""
        return _share(self.registrations, self.wall_impressions)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.window.since) if self.window.since else None,
            "until": iso(self.window.until) if self.window.until else None,
            "decisions": {
                "total": self.decisions,
                "by_action": {a: self.by_action[a] for a in ACTIONS},
                "by_method": {m: self.by_method[m] for m in METHODS},
                "from_banner": self.banner_decisions,
            },
            "consent_ids": self.consent_ids,
            "consent_rate": {
                "basis": self.rate_basis,
                "categories": {
                    r.category: {"granted": r.granted, "total": r.total, "rate": r.rate}
                    for r in self.category_rates
                },
            },
            "gpc": {"consent_ids": self.gpc_consent_ids, "share": self.gpc_share},
            "banner": {
                "impressions": self.banner_impressions,
                "answers": self.banner_decisions,
                "answer_rate": self.banner_answer_rate,
            },
            "wall": {
                "impressions": self.wall_impressions,
                "registrations": self.registrations,
                "conversion": self.wall_conversion,
            },
            "days": [
                {
                    "day": d.day.isoformat(),
                    "decisions": d.decisions,
                    "by_action": {a: d.by_action[a] for a in ACTIONS},
                    **{name: d.counters[name] for name in COUNTER_NAMES},
                }
                for d in self.days
            ],
            "outbox": self.outbox.to_json(),
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class _LatestIndex:
    """consent id → (latest granted set, ever GPC), on disk, written in batches."""

    def __init__(self) -> None:
        # "": SQLite's private temporary database, on disk, deleted on close.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA cache_size = -2048")  # at most ~2 MiB of page cache
        self._db.execute(
            "CREATE TABLE ids (cid TEXT PRIMARY KEY, granted TEXT NOT NULL,"
            " gpc INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._pending: list[tuple[str, str, int]] = []

    def add(self, rec: ConsentRecord) -> None:
        granted = json.dumps(sorted(rec.granted))
        self._pending.append((rec.consent_id, granted, int(rec.action == "gpc")))
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self._db.execute("BEGIN")
        # Rows arrive oldest first, so the last write of an id is its latest decision.
        self._db.executemany(
            "INSERT INTO ids (cid, granted, gpc) VALUES (?, ?, ?) ON CONFLICT (cid) DO"
            " UPDATE SET granted = excluded.granted, gpc = MAX(gpc, excluded.gpc)",
            self._pending,
        )
        self._db.execute("COMMIT")
        self._pending = []

    def summary(self) -> tuple[int, int, list[tuple[tuple[str, ...], int]]]:
        """(ids, ids with GPC, [(granted set, how many ids)]) — few distinct sets."""
        self.flush()
        ids, gpc = self._db.execute("SELECT COUNT(*), COALESCE(SUM(gpc), 0) FROM ids").fetchone()
        sets = [
            (tuple(json.loads(granted)), int(n))
            for granted, n in self._db.execute("SELECT granted, COUNT(*) FROM ids GROUP BY granted")
        ]
        return int(ids), int(gpc), sets

    def close(self) -> None:
        self._db.close()


async def compute_stats(
    storage: Storage,
    window: Window = Window(),  # noqa: B008 - frozen, immutable
    *,
    categories: Sequence[str] = (),
    required: frozenset[str] = frozenset(),
    now: datetime | None = None,
    rollups: bool = True,
) -> Stats:
    """The figures of ``window``. ``categories`` orders the rates (others follow,
    sorted); ``required`` categories are always granted and get no rate. From the
    rollups when the window allows (and ``rollups``), else from the ledger's rows."""
    stats = Stats(window=window)
    days: dict[date, Day] = {}
    seen_categories: set[str] = set()
    if rollups and uses_rollups(window, now or datetime.now(UTC)):
        sets = await _from_rollups(storage, window, stats, days, categories, seen_categories)
    else:
        sets = await _from_stream(storage, window, stats, days, seen_categories)
    ids = stats.consent_ids

    ordered = [c for c in categories if c in seen_categories]
    ordered += sorted(seen_categories - set(ordered))
    for category in ordered:
        if category in required:
            continue
        granted = sum(n for granted_set, n in sets if category in granted_set)
        stats.category_rates.append(CategoryRate(category, granted, ids))

    rows = await storage.counts(window.first_day, _day_after(window.last_day))
    for day, name, value in rows:
        if not window.has_day(day) or name not in COUNTER_NAMES:
            continue
        stats.counters[name] += value
        bucket = days.get(day)
        if bucket is None:
            bucket = days[day] = Day(day)
        bucket.counters[name] += value
    stats.days = _every_day(days, window)
    stats.outbox = await outbox_figures(storage, now)
    return stats


GrantedSets = list[tuple[tuple[str, ...], int]]


async def _from_rollups(
    storage: Storage,
    window: Window,
    stats: Stats,
    days: dict[date, Day],
    categories: Sequence[str],
    seen_categories: set[str],
) -> GrantedSets:
    since = window.since
    if since is None:  # uses_rollups checked it; never trust -O
        raise ValueError("rollups need a window start")
    until = window.until.date() if window.until is not None else None
    for day, action, method, n in await storage.consent_daily(since.date(), until):
        stats.decisions += n
        stats.by_action[action] += n
        stats.by_method[method] += n
        if method in BANNER_METHODS:
            stats.banner_decisions += n
        bucket = days.get(day)
        if bucket is None:
            bucket = days[day] = Day(day)
        bucket.by_action[action] += n
    sets, gpc_ids = await storage.latest_decisions(since)
    stats.consent_ids = sum(n for _, n in sets)
    stats.gpc_consent_ids = gpc_ids
    if stats.consent_ids:
        # Every row names each category granted or denied: the stream sees them all.
        seen_categories.update(categories)
        for granted_set, _ in sets:
            seen_categories.update(granted_set)
    return sets


async def _from_stream(
    storage: Storage,
    window: Window,
    stats: Stats,
    days: dict[date, Day],
    seen_categories: set[str],
) -> GrantedSets:
    index = _LatestIndex()
    try:
        async for rec in storage.iter_consents(window.since, window.until):
            stats.decisions += 1
            stats.by_action[rec.action] += 1
            stats.by_method[rec.method] += 1
            if rec.method in BANNER_METHODS:
                stats.banner_decisions += 1
            day = rec.recorded_at.date()
            bucket = days.get(day)
            if bucket is None:
                bucket = days[day] = Day(day)
            bucket.by_action[rec.action] += 1
            seen_categories.update(rec.granted)
            seen_categories.update(rec.denied)
            index.add(rec)
        ids, gpc_ids, sets = index.summary()
    finally:
        index.close()
    stats.consent_ids, stats.gpc_consent_ids = ids, gpc_ids
    return sets


def _day_after(day: date | None) -> date | None:
    # Whether the backend's ``until`` is inclusive or not, asking one day further and
    # filtering with Window.has_day gives exactly the window's days.
    return day + timedelta(days=1) if day is not None else None


def _every_day(days: dict[date, Day], window: Window) -> list[Day]:
    """One entry per day from the first to the last (gaps as zeros), for the charts."""
    if not days and (window.first_day is None or window.last_day is None):
        return []
    first = window.first_day or min(days)
    last = window.last_day or max(days)
    if days:
        first, last = min(first, min(days)), max(last, max(days))
    out = []
    day = first
    while day <= last:
        out.append(days.get(day) or Day(day))
        day += timedelta(days=1)
    return out


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def stats_lines(stats: Stats) -> list[str]:
    """The figures as plain text, for the terminal."""
    lines = [f"consentgate figures {stats.window.describe()}", ""]
    lines.append(f"Decisions recorded: {stats.decisions}")
    lines.append("  by action:  " + ", ".join(f"{a} {stats.by_action[a]}" for a in ACTIONS))
    lines.append("  by method:  " + ", ".join(f"{m} {stats.by_method[m]}" for m in METHODS))
    lines.append(f"Consent ids: {stats.consent_ids}")
    lines.append(f"Consent rate per category ({stats.rate_basis}):")
    if not stats.category_rates:
        lines.append("  (no decisions)")
    for r in stats.category_rates:
        lines.append(f"  {r.category:<16} {percent(r.rate):>8}  ({r.granted} of {r.total})")
    lines.append(
        f"GPC: {stats.gpc_consent_ids} of {stats.consent_ids} consent ids "
        f"({percent(stats.gpc_share)})"
    )
    lines.append(
        f"Banner: {stats.banner_impressions} impressions, {stats.banner_decisions} answers "
        f"(form or script) = {percent(stats.banner_answer_rate)}"
    )
    lines.append(
        f"Wall: {stats.wall_impressions} impressions, {stats.registrations} registrations "
        f"= {percent(stats.wall_conversion)} conversion"
    )
    lines.extend(outbox_lines(stats.outbox))
    return lines


def outbox_lines(outbox: OutboxFigures) -> list[str]:
    lines = [
        f"Outbox (now): {outbox.pending} waiting ({outbox.retrying} after failed tries), "
        f"{outbox.dead} given up, {outbox.sent} sent"
    ]
    if outbox.oldest_pending is not None:
        lines.append(
            f"  oldest waiting: written {iso(outbox.oldest_pending)}, "
            f"{describe_age(outbox.oldest_pending_age)} ago"
        )
    if outbox.retrying or outbox.dead:
        lines.append("  why: the log of consentgate.mail names each failed try")
    return lines
