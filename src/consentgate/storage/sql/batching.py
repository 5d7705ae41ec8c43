"""Group commit: rows that arrive while a write is in flight go together in the next one.

A consent decision is acknowledged only once its row is durable, and on SQLite every
commit is an ``fsync`` (``synchronous = FULL``): one transaction per decision caps a site
at a few hundred decisions a second on ordinary disks, with the CPU idle. Here the first
writer starts a flush at once (no timer, so a lone decision waits no longer than
before); those who arrive meanwhile queue, and the next flush commits all of them in one
transaction and one ``fsync``. Each caller still gets its own row id, or the error.
On PostgreSQL a batch is one multi-row INSERT (``Dialect.values_rows``): one round trip,
one run of the rollup trigger and one commit for many decisions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from consentgate.storage.breaker import (
    StorageTimeoutError,
    current_request_budget,
    without_request_budget,
)

logger = logging.getLogger("consentgate")

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Rows per transaction at most: a bounded statement list, a bounded wait for the last.
MAX_BATCH = 64


class GroupCommit(Generic[Item, Result]):
    """Writes items through ``flush`` (one transaction for a list, a result per item)."""

    def __init__(
        self,
        flush: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: Item) -> Result:
        """The item's result once its transaction committed.

        The wait counts against the request's storage budget like any storage call: a
        request whose budget runs out first gets :class:`StorageTimeoutError` (its row
        may still be written: never a cookie without a row, at worst a row without a
        cookie), and one whose budget is already used up is not queued at all."""
        budget = current_request_budget()
        if budget is not None and budget.left <= 0:
            raise StorageTimeoutError(
                f"not asked: the request's {budget.total:g} s for storage are used up"
            )
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (a test's next asyncio.run, a server restarted in-process):
            # whatever belonged to the old one can never complete there.
            self._loop, self._pending, self._writer = loop, [], None
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            # The writer is not any one request's work: each flush is bounded by the
            # backend's own call bound, not by the budget of whoever came first.
            with without_request_budget():
                self._writer = loop.create_task(self._write())
        if budget is None:
            return await future
        started = time.monotonic()
        try:
            # Shielded: the row stays queued for the others' transaction even if this
            # request stops waiting for it.
            return await asyncio.wait_for(asyncio.shield(future), timeout=budget.left)
        except TimeoutError:
            future.add_done_callback(_retrieve)  # nobody awaits it now: no warning later
            raise StorageTimeoutError(
                f"the row was not committed within the request's {budget.total:g} s for storage"
            ) from None
        finally:
            budget.left -= time.monotonic() - started

    async def _write(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            # One bad row must not fail the others: each alone gets its own answer.
            for one in batch:
                await self._commit([one])
            return
        except BaseException:  # cancelled (shutdown): nobody's row is known to be in
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _retrieve(future: asyncio.Future[Result]) -> None:
    if not future.cancelled():
        future.exception()


def _settle(
    future: asyncio.Future[Result],
    *,
    result: Result | None = None,
    error: BaseException | None = None,
) -> None:
    # A caller who stopped waiting (a client gone) leaves a cancelled future: its row may
    # be stored all the same, which is safe: no cookie ever goes out without one.
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
