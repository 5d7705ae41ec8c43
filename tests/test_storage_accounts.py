"""The storage of readers' accounts in full, on SQLite and PostgreSQL: the outbox, used
links, verified and changed addresses, the newsletter ledger and a reader's sessions."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from tests.test_storage_contract import START, Backend, backend, on_open

from consentgate.storage import DuplicateUserError, User
from consentgate.storage.records import OutgoingMail, SessionRecord, SubscriptionRecord

__all__ = ["backend"]  # the fixture, shared with the contract tests

LEASE = timedelta(minutes=2)


def mail(to: str = "reader@example.org", kind: str = "verify_email", **extra: Any) -> OutgoingMail:
    fields: dict[str, Any] = {
        "recipient": to,
        "subject": "Bestätigen Sie Ihre Adresse",
        "text": "Link: https://news.example/x?token=secret\n",
        "html": "<p><a href='https://news.example/x?token=secret'>Bestätigen</a></p>",
        "kind": kind,
        "language": "de",
        "headers": (("List-Unsubscribe", "<https://news.example/u?t=1>"),),
    }
    fields.update(extra)
    return OutgoingMail(**fields)


def subscription(user_id: str, action: str, list_id: str = "daily", **extra: Any) -> Any:
    fields: dict[str, Any] = {
        "user_id": user_id,
        "list_id": list_id,
        "action": action,
        "method": "account",
        "text_shown": "The Daily Briefing: the morning's news, every weekday",
        "ip_hmac": "c" * 64,
        "user_agent": "Firefox",
        "recorded_at": START,
    }
    fields.update(extra)
    return SubscriptionRecord(**fields)


def test_outbox_claim_round_trips_a_message_and_leases_it(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        item_id = await storage.enqueue_mail(mail(), START)
        first = await storage.claim_mail(START, 10, LEASE)
        during_lease = await storage.claim_mail(START + LEASE / 2, 10, LEASE)
        after_lease = await storage.claim_mail(START + LEASE * 2, 10, LEASE)
        return item_id, first, during_lease, after_lease

    item_id, first, during_lease, after_lease = on_open(backend, body)
    assert [item.id for item in first] == [item_id]
    assert first[0].mail == mail()  # every field, the headers and the umlauts included
    assert first[0].status == "pending" and first[0].attempts == 0
    assert first[0].next_attempt_at == START + LEASE
    assert during_lease == []  # another sender does not take a message being sent
    assert [item.id for item in after_lease] == [item_id]  # a dead sender's lease ends


def test_outbox_claim_takes_the_oldest_due_first_up_to_the_limit(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        ids = [await storage.enqueue_mail(mail(f"r{n}@example.org"), START) for n in range(5)]
        later = await storage.enqueue_mail(mail("later@example.org"), START + timedelta(hours=1))
        claimed = await storage.claim_mail(START, 3, LEASE)
        rest = await storage.claim_mail(START, 10, LEASE)
        return ids, later, claimed, rest

    ids, later, claimed, rest = on_open(backend, body)
    assert [item.id for item in claimed] == ids[:3]
    assert [item.id for item in rest] == ids[3:]  # not yet due: the later one
    assert later not in [item.id for item in claimed + rest]


def test_outbox_sent_message_loses_its_bodies_and_is_counted(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        sent = await storage.enqueue_mail(mail(), START)
        retried = await storage.enqueue_mail(mail("b@example.org"), START)
        dead = await storage.enqueue_mail(mail("c@example.org"), START)
        waiting = await storage.enqueue_mail(mail("d@example.org"), START + timedelta(minutes=1))
        await storage.claim_mail(START, 3, LEASE)
        await storage.mark_mail_sent(sent, START)
        await storage.mark_mail_failed(retried, "421 try later", START + timedelta(minutes=5))
        await storage.mark_mail_failed(dead, "550 no such user " + "x" * 900, None)
        counts = await storage.outbox_counts()
        oldest = await storage.oldest_pending()
        due = await storage.claim_mail(START + timedelta(minutes=10), 10, LEASE)
        return counts, oldest, due, waiting, retried

    counts, oldest, due, waiting, retried = on_open(backend, body)
    assert counts == {"pending": 2, "retrying": 1, "sent": 1, "dead": 1}
    assert oldest == START
    by_id = {item.id: item for item in due}
    assert set(by_id) == {retried, waiting}
    assert by_id[retried].attempts == 1 and by_id[retried].last_error == "421 try later"


def test_outbox_finished_messages_keep_no_link(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        sent = await storage.enqueue_mail(mail(), START)
        dead = await storage.enqueue_mail(mail("c@example.org"), START)
        await storage.mark_mail_sent(sent, START)
        await storage.mark_mail_failed(dead, "550 " + "x" * 900, None)
        # Reading the rows as the operator would: nothing of the bodies is left.
        rows = await storage._all("SELECT body_text, body_html, last_error FROM outbox")
        return rows

    rows = on_open(backend, body)
    assert [(text, html) for text, html, _ in rows] == [("", ""), ("", "")]
    assert max(len(error or "") for _, _, error in rows) == 500


def test_outbox_prune_and_forget_remove_only_what_they_name(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        old_sent = await storage.enqueue_mail(mail("a@example.org"), START)
        await storage.enqueue_mail(mail("pending@example.org"), START)
        await storage.mark_mail_sent(old_sent, START)
        pruned = await storage.prune_mail(START + timedelta(days=1))
        forgotten = await storage.forget_mail("  PENDING@example.org ")
        return pruned, forgotten, await storage.outbox_counts()

    pruned, forgotten, counts = on_open(backend, body)
    assert (pruned, forgotten) == (1, 1)  # the pending one survived the prune
    assert counts == {"pending": 0, "retrying": 0, "sent": 0, "dead": 0}


def test_outbox_two_senders_never_claim_the_same_message(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        for n in range(40):
            await storage.enqueue_mail(mail(f"r{n}@example.org"), START)
        other = backend.make()
        await other.open()
        try:
            batches = await asyncio.gather(
                *(store.claim_mail(START, 7, LEASE) for store in [storage, other] * 4)
            )
        finally:
            await other.close()
        return [item.id for batch in batches for item in batch]

    claimed = on_open(backend, body)
    assert len(claimed) == len(set(claimed)) == 40


def test_create_user_mail_is_written_with_the_user_or_not_at_all(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        await storage.create_user(User("taken@example.org", "h"), mail=[mail("taken@example.org")])
        with pytest.raises(DuplicateUserError):
            await storage.create_user(
                User("TAKEN@example.org", "h2"), mail=[mail("TAKEN@example.org", kind="other")]
            )
        return await storage.claim_mail(START + timedelta(days=3650), 10, LEASE)

    claimed = on_open(backend, body)
    assert [item.mail.kind for item in claimed] == ["verify_email"]


def test_email_verified_and_changed_addresses_round_trip(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        user = await storage.create_user(User("old@example.org", "h"))
        await storage.create_user(User("other@example.org", "h"))
        fresh = await storage.user_by_id(user.id)
        assert await storage.mark_email_verified(user.id, START)
        assert await storage.mark_email_verified(user.id, START + timedelta(days=1))
        verified = await storage.user_by_id(user.id)
        with pytest.raises(DuplicateUserError):
            await storage.change_email(user.id, "Other@example.org", START)
        await storage.change_email(user.id, "new@example.org", START + timedelta(days=2))
        moved = await storage.user_by_email("NEW@example.org")
        gone = await storage.user_by_email("old@example.org")
        missing = await storage.mark_email_verified("no-such-user", START)
        return fresh, verified, moved, gone, missing

    fresh, verified, moved, gone, missing = on_open(backend, body)
    assert fresh.email_verified_at is None
    assert verified.email_verified_at == START  # the first proof stands
    assert moved.email == "new@example.org"
    assert moved.email_verified_at == START + timedelta(days=2)
    assert gone is None and missing is False


def test_link_claims_are_single_use_until_pruned(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        link = "d" * 64
        before = await storage.link_claimed(link)
        first = await storage.claim_link(link, START)
        again = await storage.claim_link(link, START + timedelta(hours=1))
        others = await asyncio.gather(*(storage.claim_link("e" * 64, START) for _ in range(5)))
        seen = (await storage.link_claimed(link), await storage.link_claimed("f" * 64))
        kept = await storage.prune_links(START - timedelta(seconds=1))
        pruned = await storage.prune_links(START + timedelta(seconds=1))
        after = await storage.link_claimed(link)
        return before, first, again, others, seen, kept, pruned, after

    before, first, again, others, seen, kept, pruned, after = on_open(backend, body)
    assert before is False and (first, again) == (True, False)
    assert sorted(others) == [False] * 4 + [True]
    assert seen == (True, False), "a claimed link reads as claimed, another does not"
    assert (kept, pruned) == (0, 2)
    assert after is False, "pruned claims are forgotten"


def test_subscriptions_record_their_mail_and_yield_the_confirmed(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        users = [await storage.create_user(User(f"u{n}@example.org", "h")) for n in range(5)]
        ids = sorted(user.id for user in users)
        request = subscription(ids[0], "requested", method="registration")
        stored = await storage.record_subscription(request, mail=[mail("u@example.org")])
        for user_id in ids:
            await storage.record_subscription(subscription(user_id, "confirmed"))
        await storage.record_subscription(subscription(ids[1], "unsubscribed"))
        await storage.record_subscription(subscription(ids[2], "confirmed", list_id="weekly"))
        await storage.delete_user(ids[3])  # an erased reader is nobody's subscriber
        current = [row async for row in storage.iter_subscribers("daily")]
        weekly = [row async for row in storage.iter_subscribers("weekly")]
        history = await storage.subscriptions_for(ids[1])
        queued = await storage.claim_mail(START + timedelta(days=3650), 10, LEASE)
        return ids, stored, current, weekly, history, queued

    ids, stored, current, weekly, history, queued = on_open(backend, body, batch_size=2)
    assert stored.id is not None and [item.mail.kind for item in queued] == ["verify_email"]
    assert [row[0] for row in current] == [ids[0], ids[2], ids[4]]  # in pages of 2
    emails = {row[0]: row[1] for row in current}
    assert all(
        email.startswith("u") and email.endswith("@example.org") for email in emails.values()
    )
    assert len(set(emails.values())) == 3
    assert [row[0] for row in weekly] == [ids[2]]
    assert [row.action for row in history] == ["confirmed", "unsubscribed"]
    assert history[0].text_shown.startswith("The Daily Briefing")


def test_subscriptions_are_append_only_but_redactable(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        user = await storage.create_user(User("r@example.org", "h"))
        await storage.record_subscription(subscription(user.id, "confirmed"))
        redacted = await storage.redact_user_records(user.id)
        again = await storage.redact_user_records(user.id)
        return user.id, redacted, again, await storage.subscriptions_for(user.id)

    user_id, redacted, again, rows = on_open(backend, body)
    assert (redacted, again) == (1, 0)
    assert rows[0].ip_hmac is None and rows[0].user_agent is None
    with pytest.raises(backend.refused):
        backend.raw(f"UPDATE subscriptions SET list_id = 'other' WHERE user_id = '{user_id}'")
    with pytest.raises(backend.refused):
        backend.raw(f"DELETE FROM subscriptions WHERE user_id = '{user_id}'")


def session(n: int, subject: str, kind: str = "reader", started: int = 0) -> SessionRecord:
    created = START + timedelta(hours=started)
    return SessionRecord(f"{n:064x}", kind, subject, created, created + timedelta(days=30))


def test_sessions_for_lists_one_subjects_sessions_oldest_first(backend: Backend) -> None:
    async def body(storage: Any) -> Any:
        # Stored out of order; another reader's, and an admin's of the same name, too.
        for rec in (
            session(1, "u-1", started=5),
            session(2, "u-1", started=1),
            session(3, "u-2", started=0),
            session(4, "u-1", kind="admin", started=0),
            session(5, "u-1", started=3),
        ):
            await storage.create_session(rec)
        await storage.delete_session(f"{5:064x}")  # an ended one is gone
        return await storage.sessions_for("reader", "u-1"), await storage.sessions_for(
            "reader", "nobody"
        )

    mine, nobody = on_open(backend, body)
    assert mine == [session(2, "u-1", started=1), session(1, "u-1", started=5)]
    assert nobody == []


def test_outgoing_mail_refuses_header_injection() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        mail(subject="Hello\r\nBcc: victim@example.org")
    with pytest.raises(ValueError, match="line breaks"):
        mail(headers=(("List-Unsubscribe", "<x>\nBcc: v@example.org"),))
    with pytest.raises(ValueError, match="recipient"):
        mail(to="not-an-address")
    with pytest.raises(ValueError, match="kind"):
        mail(kind="Verify Email")
