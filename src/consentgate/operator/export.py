"""Streamed exports of the ledger, the acceptances, the accounts and a newsletter's
current subscribers (for the operator's sending platform).

Rows go from the storage's keyset-paginated iterators straight to the output, so an
export of any size runs in constant memory. CSV has a header row (categories joined
by spaces); JSON lines carry ISO-8601 UTC times. Password hashes are never exported.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal, TextIO

from consentgate.operator.store import (
    Window,
    acceptance_dict,
    consent_dict,
    iso,
)
from consentgate.storage import Storage

if TYPE_CHECKING:
    from consentgate.accounts.newsletters import Newsletters

__all__ = ["FIELDS", "KINDS", "SUBSCRIBER_FIELDS", "Progress", "export", "export_subscribers"]

Kind = Literal["consents", "acceptances", "users"]
Format = Literal["jsonl", "csv"]
KINDS: tuple[Kind, ...] = ("consents", "acceptances", "users")

FIELDS: dict[str, tuple[str, ...]] = {
    "consents": (
        "id",
        "consent_id",
        "user_id",
        "action",
        "granted",
        "denied",
        "policy_version",
        "banner_text_sha256",
        "language",
        "region_mode",
        "method",
        "ip_hmac",
        "user_agent",
        "recorded_at",
    ),
    "acceptances": (
        "id",
        "user_id",
        "purpose",
        "policy_version",
        "policy_sha256",
        "granted",
        "method",
        "ip_hmac",
        "user_agent",
        "recorded_at",
    ),
    "users": ("id", "email", "created_at"),
}
#: ``export subscribers``: what a sending platform needs for each mail, the unsubscribe
#: URL included (it goes into the List-Unsubscribe header, RFC 8058).
SUBSCRIBER_FIELDS = ("email", "subscribed_at", "unsubscribe_url")


class Progress:
    """``12,345 rows · 4,100 rows/s`` on one stderr line, only on a terminal."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float = 0.2,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._clock = clock
        self._every = every
        self._start = clock()
        self._shown = self._start
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.enabled and self._clock() - self._shown >= self._every:
            self._show()

    def _show(self, end: str = "") -> None:
        now = self._clock()
        self._shown = now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        self._stream.write(f"\r{self.count:,} rows · {rate:,.0f} rows/s\x1b[K{end}")
        self._stream.flush()

    def done(self) -> None:
        if self.enabled:
            self._show(end="\n")


async def _rows(storage: Storage, kind: Kind, window: Window) -> AsyncIterator[dict[str, Any]]:
    if kind == "consents":
        async for rec in storage.iter_consents(window.since, window.until):
            yield consent_dict(rec)
    elif kind == "acceptances":
        async for acc in storage.iter_acceptances(window.since, window.until):
            yield acceptance_dict(acc)
    else:
        async for user in _users(storage, window):
            yield user


async def _users(storage: Storage, window: Window) -> AsyncIterator[dict[str, Any]]:
    """Accounts, found through their acceptance rows (every account has one from its
    registration; the storage has no user iterator). Users are deduplicated with an
    on-disk index, so memory stays constant; ``window`` applies to ``created_at``."""
    seen = sqlite3.connect("", isolation_level=None)
    try:
        seen.execute("PRAGMA cache_size = -1024")
        seen.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")
        # Accounts are created with their first acceptance: none predates `since`.
        async for acc in storage.iter_acceptances(window.since, None):
            if seen.execute("INSERT OR IGNORE INTO seen VALUES (?)", (acc.user_id,)).rowcount == 0:
                continue
            user = await storage.user_by_id(acc.user_id)
            if user is None:  # the site's own accounts, or an erased one
                continue
            if window.since is not None and user.created_at < window.since:
                continue
            if window.until is not None and user.created_at >= window.until:
                continue
            yield {"id": user.id, "email": user.email, "created_at": iso(user.created_at)}
    finally:
        seen.close()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


async def _subscriber_rows(newsletters: Newsletters, list_id: str) -> AsyncIterator[dict[str, Any]]:
    async for subscriber in newsletters.subscribers(list_id):
        yield {
            "email": subscriber.email,
            "subscribed_at": iso(subscriber.subscribed_at),
            "unsubscribe_url": subscriber.unsubscribe_url,
        }


async def export_subscribers(
    newsletters: Newsletters,
    list_id: str,
    out: TextIO,
    *,
    fmt: Format = "jsonl",
    progress: Progress | None = None,
) -> int:
    """Write the current subscribers of ``list_id`` to ``out`` (streamed: the storage
    yields them one by one); returns how many. ``KeyError`` for an unknown list."""
    if newsletters.find(list_id) is None:
        raise KeyError(list_id)
    rows = _subscriber_rows(newsletters, list_id)
    return await _write(rows, SUBSCRIBER_FIELDS, out, fmt, progress)


async def export(
    storage: Storage,
    kind: Kind,
    out: TextIO,
    *,
    window: Window = Window(),  # noqa: B008 - frozen, immutable
    fmt: Format = "jsonl",
    progress: Progress | None = None,
) -> int:
    """Write every row of ``kind`` in ``window`` to ``out``; returns how many."""
    return await _write(_rows(storage, kind, window), FIELDS[kind], out, fmt, progress)


async def _write(
    rows: AsyncIterator[dict[str, Any]],
    fields: tuple[str, ...],
    out: TextIO,
    fmt: Format,
    progress: Progress | None,
) -> int:
    writer = None
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(fields)
    count = 0
    async for row in rows:
        if writer is not None:
            writer.writerow([_csv_value(row[name]) for name in fields])
        else:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
        if progress is not None:
            progress.tick()
    if progress is not None:
        progress.done()
    return count
