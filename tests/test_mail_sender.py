"""The outbox sender against a real SQLite outbox and a real SMTP server (aiosmtpd):
delivery, an outage that ends (nothing lost, nothing sent twice), a server that never
answers, permanent refusals, a storage outage the loop lives through, and wake()."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import run
from tests.mail_support import black_hole, free_port, smtp_server
from tests.services import fresh_postgres_schema, require_postgres

from consentgate.mail.compose import compose_mail
from consentgate.mail.sender import OutboxSender, retry_delay
from consentgate.mail.transport import SMTPTransport
from consentgate.storage import SQLiteStorage, Storage
from consentgate.storage.records import OutgoingMail
from consentgate.storage.sql.store import SQLStorage

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The sender's clock, moved by the test: back-off is hours, tests are seconds."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _mail(number: int, kind: str = "verify_email") -> OutgoingMail:
    return compose_mail(
        recipient=f"reader{number}@example.org",
        kind=kind,
        language="en",
        site_name="Example News",
        subject=f"Confirm your address ({number})",
        paragraphs=["Hello,", "please confirm your address."],
        action_label="Confirm",
        action_url=f"https://news.example/verify?t={number}",
    )


@asynccontextmanager
async def _store(tmp_path: Path, **options: Any) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "ledger.db", **options) as store:
        yield store


OpenStore = Callable[[], SQLStorage]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """The outbox of either SQL backend: the claim, lease and marks are SQL of each."""
    if request.param == "sqlite":
        yield lambda: SQLiteStorage(tmp_path / "ledger.db")
        return
    from consentgate.storage.postgres import PostgresStorage

    with fresh_postgres_schema(require_postgres()) as url:
        yield lambda: PostgresStorage(url)


def _sender(store: Storage, port: int, clock: Clock, **options: Any) -> OutboxSender:
    timeout = options.pop("timeout", 5.0)
    transport = SMTPTransport("127.0.0.1", port, security="none", timeout=timeout)
    options.setdefault("send_timeout", timeout * 4)
    return OutboxSender(
        store, transport, from_address="news@example.org", from_name="News", clock=clock, **options
    )


async def _enqueue(store: Storage, count: int, clock: Clock) -> None:
    for number in range(count):
        await store.enqueue_mail(_mail(number), clock())


def test_mail_sender_delivers_and_marks_sent(open_store: OpenStore) -> None:
    clock = Clock()

    async def scenario() -> dict[str, int]:
        async with open_store() as store:
            await _enqueue(store, 2, clock)
            sender = _sender(store, server.port, clock)
            assert await sender.run_once() == 2
            assert await sender.run_once() == 0
            assert await store.oldest_pending() is None
            return await store.outbox_counts()

    with smtp_server() as server:
        counts = run(scenario())
    assert counts == {"pending": 0, "retrying": 0, "sent": 2, "dead": 0}
    recipients = sorted(str(m["To"]) for m in server.inbox.messages)
    assert recipients == ["reader0@example.org", "reader1@example.org"]
    assert all(m["From"].addresses[0].display_name == "News" for m in server.inbox.messages)


def test_mail_sender_outage_then_recovery_loses_nothing_sends_nothing_twice(
    open_store: OpenStore,
) -> None:
    clock = Clock()
    port = free_port()  # nothing listens there yet: the mail server is down

    async def during_outage(store: Storage, sender: OutboxSender) -> None:
        await _enqueue(store, 3, clock)
        assert await sender.run_once() == 3  # each tried, each failed
        counts = await store.outbox_counts()
        assert counts == {"pending": 3, "retrying": 3, "sent": 0, "dead": 0}
        # Backing off: not tried again at once, nor within the first (jittered) delay.
        assert await sender.run_once() == 0
        clock.advance(seconds=20)
        assert await sender.run_once() == 0
        # Waiting counts as waiting since it was written.
        assert await store.oldest_pending() == START

    async def scenario() -> list[Any]:
        async with open_store() as store:
            sender = _sender(store, port, clock)
            await during_outage(store, sender)
            with smtp_server(port) as server:
                clock.advance(hours=2)
                assert await sender.run_once() == 3
                assert await sender.run_once() == 0
                clock.advance(hours=2)
                assert await sender.run_once() == 0
                counts = await store.outbox_counts()
                return [counts, list(server.inbox.messages)]

    counts, messages = run(scenario())
    assert counts == {"pending": 0, "retrying": 0, "sent": 3, "dead": 0}
    recipients = sorted(str(m["To"]) for m in messages)
    assert recipients == [f"reader{n}@example.org" for n in range(3)]


def test_mail_sender_black_hole_times_out_and_retries(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(port: int) -> tuple[float, Any]:
        async with _store(tmp_path) as store:
            await _enqueue(store, 1, clock)
            sender = _sender(store, port, clock, timeout=0.3, send_timeout=1.0)
            started = time.monotonic()
            assert await sender.run_once() == 1
            elapsed = time.monotonic() - started
            clock.advance(hours=1)
            [item] = await store.claim_mail(clock(), 10, timedelta(minutes=1))
            return elapsed, item

    with black_hole() as port:
        elapsed, item = run(scenario(port))
    assert elapsed < 1.5
    assert item.attempts == 1 and item.status == "pending"
    assert item.last_error is not None and "connect" in item.last_error


def _last_error(tmp_path: Path) -> str | None:
    connection = sqlite3.connect(tmp_path / "ledger.db")
    try:
        row = connection.execute("SELECT last_error FROM outbox").fetchone()
    finally:
        connection.close()
    return None if row is None else row[0]


@pytest.mark.parametrize("reply", ["550 5.1.1 no such mailbox", "554 5.7.1 refused"])
def test_mail_sender_permanent_refusal_is_dead_at_once(
    tmp_path: Path, reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()

    async def scenario() -> tuple[dict[str, int], str | None]:
        async with _store(tmp_path) as store:
            await _enqueue(store, 1, clock)
            assert await _sender(store, server.port, clock).run_once() == 1
            clock.advance(hours=5)
            assert await store.claim_mail(clock(), 10, timedelta(minutes=1)) == []
            return await store.outbox_counts(), _last_error(tmp_path)

    with smtp_server() as server, caplog.at_level(logging.WARNING, "consentgate.mail"):
        # Servers quote the address; neither the log nor the stored error keeps it.
        server.inbox.rcpt_reply = f"{reply} <reader0@example.org>"
        counts, error = run(scenario())
    assert counts == {"pending": 0, "retrying": 0, "sent": 0, "dead": 1}
    assert server.inbox.messages == []
    assert error is not None and reply in error and "<recipient>" in error
    assert "reader0@" not in error and "reader0@" not in caplog.text
    assert "given up" in caplog.text


def test_mail_sender_gives_up_after_max_attempts(tmp_path: Path) -> None:
    clock = Clock()
    port = free_port()

    async def scenario() -> list[dict[str, int]]:
        async with _store(tmp_path) as store:
            await _enqueue(store, 1, clock)
            sender = _sender(store, port, clock, max_attempts=3)
            seen = []
            for _ in range(3):
                assert await sender.run_once() == 1
                seen.append(await store.outbox_counts())
                clock.advance(hours=2)
            assert await sender.run_once() == 0
            return seen

    seen = run(scenario())
    assert [c["retrying"] for c in seen] == [1, 1, 0]
    assert seen[-1]["dead"] == 1


def test_mail_sender_loop_outlives_a_storage_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database locked by another process: rounds fail, the loop goes on, and the
    mail goes out once the lock is gone."""
    clock = Clock()

    async def scenario() -> int:
        async with _store(tmp_path, busy_timeout=0.1, breaker_cooldown=0.1) as store:
            await _enqueue(store, 1, clock)
            blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            sender = _sender(store, server.port, clock, poll_seconds=0.05, storage_timeout=1.0)
            sender.start()
            try:
                await asyncio.sleep(0.6)
                assert sender.running and server.inbox.messages == []
                blocker.execute("ROLLBACK")
                blocker.close()
                await _until(lambda: len(server.inbox.messages) == 1)
            finally:
                await sender.stop()
            return (await store.outbox_counts())["sent"]

    with smtp_server() as server, caplog.at_level(logging.WARNING, "consentgate.mail"):
        assert run(scenario()) == 1
    failed_rounds = [r for r in caplog.records if "failed a round" in r.getMessage()]
    assert len(failed_rounds) >= 2


def test_mail_sender_wake_sends_at_once_and_stop_ends_the_task(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> float:
        async with _store(tmp_path) as store:
            # A poll of a minute: only wake() can make it send within the test.
            sender = _sender(store, server.port, clock, poll_seconds=60)
            sender.start()
            sender.start()  # idempotent
            await asyncio.sleep(0.1)
            await _enqueue(store, 1, clock)
            started = time.monotonic()
            sender.wake()
            await _until(lambda: len(server.inbox.messages) == 1)
            took = time.monotonic() - started
            await sender.stop()
            assert not sender.running
            await sender.stop()  # harmless twice
            return took

    with smtp_server() as server:
        assert run(scenario()) < 2.0


def test_mail_sender_stop_waits_for_the_message_in_flight(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> dict[str, int]:
        async with _store(tmp_path) as store:
            await _enqueue(store, 1, clock)
            sender = _sender(store, server.port, clock, poll_seconds=60)
            sender.start()
            await _until(lambda: server.inbox.data_started > 0)
            await sender.stop()  # mid-DATA: it waits, then the mark is written
            return await store.outbox_counts()

    with smtp_server() as server:
        server.inbox.data_delay = 0.5
        counts = run(scenario())
    assert counts["sent"] == 1 and counts["pending"] == 0


def test_mail_sender_stop_is_bounded_when_the_server_hangs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()

    async def scenario(port: int) -> tuple[float, dict[str, int]]:
        async with _store(tmp_path) as store:
            await _enqueue(store, 1, clock)
            sender = _sender(store, port, clock, timeout=1.0, send_timeout=5.0, stop_timeout=0.3)
            sender.start()
            await asyncio.sleep(0.2)  # connected, waiting for a greeting that never comes
            started = time.monotonic()
            await sender.stop()
            took = time.monotonic() - started
            return took, await store.outbox_counts()

    with black_hole() as port, caplog.at_level(logging.WARNING, "consentgate.mail"):
        took, counts = run(scenario(port))
    assert took < 1.0
    assert "did not stop in time" in caplog.text
    # Not marked: it keeps its lease and is taken again after it.
    assert counts == {"pending": 1, "retrying": 0, "sent": 0, "dead": 0}


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_mail_sender_retry_delay_doubles_caps_and_jitters() -> None:
    def exact(attempts: int) -> float:
        return retry_delay(attempts, rng=lambda: 0.0).total_seconds()

    assert [exact(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert exact(8) == 3600 and exact(200) == 3600
    assert retry_delay(1, rng=lambda: 0.999).total_seconds() == pytest.approx(22.5, abs=0.1)


def test_mail_sender_prunes_old_sent_mail_at_most_hourly(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> list[Any]:
        async with _store(tmp_path) as store:
            await _enqueue(store, 2, clock)
            await store.enqueue_mail(_mail(9), clock() + timedelta(days=2))  # not due
            sender = _sender(store, server.port, clock, keep_for=timedelta(days=30))
            assert await sender.run_once() == 2
            clock.advance(days=31)
            seen: list[Any] = [await sender.prune()]
            # Another old one sent now: within the hour of the last prune it stays.
            await store.enqueue_mail(_mail(8), START)
            assert await sender.run_once() == 2
            seen.append(await sender.prune())
            clock.advance(hours=1)
            seen.append(await sender.prune())
            seen.append(await store.outbox_counts())
            return seen

    with smtp_server() as server:
        first, too_soon, later, counts = run(scenario())
    assert (first, too_soon, later) == (2, 0, 1)
    # The one written two days later is within keep_for of the clock: kept.
    assert counts == {"pending": 0, "retrying": 0, "sent": 1, "dead": 0}
