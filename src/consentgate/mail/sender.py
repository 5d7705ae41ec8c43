"""The background task that empties the outbox: claim due mail, send it, mark it.

The outbox (storage) is the truth; this task only moves messages from it to the SMTP
server. So it may die, restart, run in every worker process, or be stopped mid-batch:
``claim_mail`` leases what it takes (nobody else sends it while the lease runs, and it is
taken again once the lease is over), and a message leaves the outbox only when the
server accepted it (``mark_mail_sent``) or when trying again cannot help (``dead``).

Delivery is at least once: a message the server accepted just before a crash, a cut
connection, or an abandoned send (beyond ``send_timeout``) may go out a second time.
Losing a sign-in link is worse than sending it twice.

Failures: a transient one (the server down, 4xx, a timeout) is retried after a back-off
that doubles from ``first_delay`` up to ``max_delay``, jittered so that many messages
failed together do not all come back in the same second; after ``max_attempts`` tries it
is dead. A permanent one (5xx to this message) is dead at once. A storage outage stops
nothing for good: the loop logs it, waits and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from consentgate.mail.message import build_message
from consentgate.mail.settings import MailSettings
from consentgate.mail.transport import MailError, MailTransport, transport_from_settings
from consentgate.storage.ports import Outbox
from consentgate.storage.records import OutboxItem

__all__ = ["OutboxSender", "retry_delay", "sender_from_settings"]

logger = logging.getLogger("consentgate.mail")

T = TypeVar("T")
Clock = Callable[[], datetime]


def retry_delay(
    attempts: int,
    *,
    first_delay: float = 30.0,
    max_delay: float = 3600.0,
    rng: Callable[[], float] = random.random,
) -> timedelta:
    """The wait after the ``attempts``-th failed try: doubling, capped, then up to a
    quarter shorter at random (never longer than the cap)."""
    delay = min(max_delay, first_delay * 2 ** min(max(attempts - 1, 0), 30))
    return timedelta(seconds=delay * (1 - 0.25 * rng()))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OutboxSender:
    """Sends what the outbox holds through ``transport``; ``start`` runs it in the
    background, ``run_once`` does one round (tests, a one-off command)."""

    def __init__(
        self,
        outbox: Outbox,
        transport: MailTransport,
        *,
        from_address: str,
        from_name: str = "",
        max_attempts: int = 30,
        poll_seconds: float = 30.0,
        send_timeout: float = 120.0,
        storage_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        keep_for: timedelta = timedelta(days=30),
        batch: int = 10,
        first_delay: float = 30.0,
        max_delay: float = 3600.0,
        opener: Callable[[], Awaitable[None]] | None = None,
        clock: Clock = _utc_now,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.from_address = from_address
        self.from_name = from_name
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.send_timeout = send_timeout
        self.storage_timeout = storage_timeout
        self.stop_timeout = stop_timeout
        self.batch = batch
        self.first_delay = first_delay
        self.max_delay = max_delay
        # Long enough for a whole batch, each send at its bound: a message is never
        # taken by a second sender while the first may still be sending it.
        self.lease = timedelta(seconds=batch * send_timeout + 60)
        self.keep_for = keep_for
        self._pruned_at: datetime | None = None
        self._opener = opener
        self._clock = clock
        self._rng = rng
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._stopping = False

    # -- the background task ------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _running_here(self) -> bool:
        # A task of a loop that has ended (asyncio.run in tests, a restarted server)
        # never finishes: it does not count as running on this one.
        return (
            self.running
            and self._task is not None
            and self._task.get_loop() is asyncio.get_running_loop()
        )

    def start(self) -> None:
        """Run in the background on the running event loop (idempotent)."""
        if self._running_here():
            return
        self._stopping = False
        # Created here, on the loop that waits on it.
        self._wakeup = asyncio.Event()
        # A fresh context: started during a request, the task must not inherit that
        # request's storage budget (or anything else of it) for its whole life.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="consentgate-outbox", context=contextvars.Context()
        )

    def wake(self) -> None:
        """Look for due mail now (after an enqueue) instead of at the next poll."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def stop(self) -> None:
        """Stop after the message in flight, waiting for it at most ``stop_timeout``;
        what was claimed and not sent is taken again when its lease ends."""
        task, self._task = self._task, None
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            return  # never started, or on a loop that has ended with its tasks
        self._stopping = True
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
        except TimeoutError:
            logger.warning("consentgate: the mail sender did not stop in time; cancelled")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.run_once()
                await self.prune()
            except Exception as exc:  # storage down, a bug: log, wait, go on
                logger.warning("consentgate: the mail sender failed a round (%s); will retry", exc)
                handled = 0
            if handled >= self.batch and not self._stopping:
                continue  # more may be due: no pause
            await self._pause()

    async def _pause(self) -> None:
        wakeup = self._wakeup
        if wakeup is None or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), self.poll_seconds)
        wakeup.clear()

    # -- one round ------------------------------------------------------------------
    async def run_once(self) -> int:
        """Claim the due mail (up to ``batch``) and try each; the number claimed."""
        if self._opener is not None:
            await self._bounded(self._opener())
        items = await self._bounded(self.outbox.claim_mail(self._clock(), self.batch, self.lease))
        for item in items:
            if self._stopping:
                break  # the rest keeps its lease and is taken again after it
            await self._deliver(item)
        return len(items)

    async def prune(self) -> int:
        """Forget sent and given-up messages older than ``keep_for``, at most hourly
        (the stats count them until then); how many were forgotten."""
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return 0
        forgotten = await self._bounded(self.outbox.prune_mail(now - self.keep_for))
        self._pruned_at = now
        return forgotten

    async def _bounded(self, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, self.storage_timeout)

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            message = build_message(
                item.mail, from_address=self.from_address, from_name=self.from_name
            )
            await asyncio.wait_for(self.transport.send(message), self.send_timeout)
        except MailError as exc:
            transient, reason = exc.transient, exc.reason
        except TimeoutError:
            transient, reason = True, f"no answer within {self.send_timeout:g} s"
        except ValueError as exc:  # a stored mail the builder refuses: never sendable
            transient, reason = False, f"message: {exc}"
        else:
            await self._bounded(self.outbox.mark_mail_sent(item.id, self._clock()))
            return
        # Servers quote the address in their replies ("550 <x@y>: unknown"): kept out of
        # the log and the stored error, which outlive the reader's wish to be forgotten.
        reason = reason.replace(item.mail.recipient, "<recipient>")
        attempts = item.attempts + 1
        retry_at: datetime | None = None
        if transient and attempts < self.max_attempts:
            delay = retry_delay(
                attempts, first_delay=self.first_delay, max_delay=self.max_delay, rng=self._rng
            )
            retry_at = self._clock() + delay
            # No address in the log: the item id finds it for whoever may look.
            logger.warning(
                "consentgate: mail %d (%s) not sent, try %d of %d, again in %d s: %s",
                item.id,
                item.mail.kind,
                attempts,
                self.max_attempts,
                delay.total_seconds(),
                reason,
            )
        else:
            logger.error(
                "consentgate: mail %d (%s) given up after %d tries: %s",
                item.id,
                item.mail.kind,
                attempts,
                reason,
            )
        await self._bounded(self.outbox.mark_mail_failed(item.id, reason, retry_at))


def sender_from_settings(
    settings: MailSettings,
    outbox: Outbox,
    *,
    site_name: str,
    opener: Callable[[], Awaitable[None]] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> OutboxSender | None:
    """The sender ``[mail]`` configures, or None when no transport is set (the mail
    then waits in the outbox, and goes out once one is)."""
    transport = transport_from_settings(settings, environ)
    if transport is None:
        return None
    return OutboxSender(
        outbox,
        transport,
        from_address=settings.from_address,
        from_name=settings.from_name or site_name,
        max_attempts=settings.max_attempts,
        poll_seconds=settings.poll_seconds,
        # Every command is bounded by the timeout; a whole session is a handful of them.
        send_timeout=settings.timeout_seconds * 4,
        opener=opener,
    )
