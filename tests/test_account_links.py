"""Links in mails, through the real SQLite store: they expire, are bound to their
purpose, work once, die with a password or address change, and refuse tampering."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from consentgate.accounts.links import LinkClaim, LinkPurpose, Links
from consentgate.storage import SQLiteStorage, User

T = TypeVar("T")
SECRET = "links-test-secret-key-0123456789abcdef"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def with_links(
    tmp_path: Path, body: Callable[[Links, SQLiteStorage, User, Clock], Awaitable[T]]
) -> T:
    async def scenario() -> T:
        storage = SQLiteStorage(tmp_path / "links.db")
        await storage.open()
        clock = Clock()
        user = await storage.create_user(
            User(email="reader@example.com", password_hash="scrypt$old", created_at=NOW)
        )
        links = Links([SECRET], storage, lifetime=timedelta(minutes=30), clock=clock)
        try:
            return await body(links, storage, user, clock)
        finally:
            await storage.close()

    return asyncio.run(scenario())


def fingerprints(storage: SQLiteStorage) -> Callable[[str], Awaitable[str | None]]:
    async def of(user_id: str) -> str | None:
        user = await storage.user_by_id(user_id)
        return Links.fingerprint(user) if user is not None else None

    return of


def issue(links: Links, user: User, purpose: LinkPurpose = LinkPurpose.SIGN_IN) -> str:
    return links.issue(purpose, user.id, fingerprint=Links.fingerprint(user), data="/news/1")


def test_account_links_redeem_once_then_never_again(tmp_path: Path) -> None:
    async def body(
        links: Links, storage: SQLiteStorage, user: User, clock: Clock
    ) -> tuple[LinkClaim | None, LinkClaim | None, LinkClaim | None]:
        token = issue(links, user)
        of = fingerprints(storage)
        peeked = await links.peek(token, LinkPurpose.SIGN_IN, fingerprint_of=of)
        first = await links.redeem(token, LinkPurpose.SIGN_IN, fingerprint_of=of)
        second = await links.redeem(token, LinkPurpose.SIGN_IN, fingerprint_of=of)
        # The GET page of a used link says it does not work instead of showing its form.
        assert await links.peek(token, LinkPurpose.SIGN_IN, fingerprint_of=of) is None
        return peeked, first, second

    peeked, first, second = with_links(tmp_path, body)
    # Peeking (the GET page) uses nothing up: the redeem after it still works.
    assert peeked is not None and first is not None
    assert (first.user_id, first.data, first.purpose) == (
        peeked.user_id,
        "/news/1",
        LinkPurpose.SIGN_IN,
    )
    assert second is None


def test_account_links_expire_after_their_lifetime(tmp_path: Path) -> None:
    async def body(
        links: Links, storage: SQLiteStorage, user: User, clock: Clock
    ) -> tuple[bool, bool]:
        token = issue(links, user)
        of = fingerprints(storage)
        clock.now = NOW + timedelta(minutes=29)
        before = await links.peek(token, LinkPurpose.SIGN_IN, fingerprint_of=of) is not None
        clock.now = NOW + timedelta(minutes=30)
        after = await links.redeem(token, LinkPurpose.SIGN_IN, fingerprint_of=of) is not None
        return before, after

    assert with_links(tmp_path, body) == (True, False)


@pytest.mark.parametrize(
    "other",
    [LinkPurpose.VERIFY_EMAIL, LinkPurpose.RESET_PASSWORD, LinkPurpose.CHANGE_EMAIL],
)
def test_account_links_work_only_for_their_purpose(tmp_path: Path, other: LinkPurpose) -> None:
    async def body(
        links: Links, storage: SQLiteStorage, user: User, clock: Clock
    ) -> tuple[bool, bool]:
        token = issue(links, user, LinkPurpose.SIGN_IN)
        of = fingerprints(storage)
        wrong = await links.redeem(token, other, fingerprint_of=of) is not None
        # The refused attempt used nothing up: the right purpose still works.
        right = await links.redeem(token, LinkPurpose.SIGN_IN, fingerprint_of=of) is not None
        return wrong, right

    assert with_links(tmp_path, body) == (False, True)


def test_account_links_die_when_the_password_changes(tmp_path: Path) -> None:
    async def body(links: Links, storage: SQLiteStorage, user: User, clock: Clock) -> bool:
        token = issue(links, user, LinkPurpose.RESET_PASSWORD)
        await storage.update_password_hash(user.id, "scrypt$new")
        of = fingerprints(storage)
        return await links.redeem(token, LinkPurpose.RESET_PASSWORD, fingerprint_of=of) is None

    assert with_links(tmp_path, body)


def test_account_links_die_when_the_address_changes(tmp_path: Path) -> None:
    async def body(links: Links, storage: SQLiteStorage, user: User, clock: Clock) -> bool:
        token = issue(links, user, LinkPurpose.CHANGE_EMAIL)
        await storage.change_email(user.id, "new@example.com", NOW)
        of = fingerprints(storage)
        return await links.peek(token, LinkPurpose.CHANGE_EMAIL, fingerprint_of=of) is None

    assert with_links(tmp_path, body)


def test_account_links_die_with_the_account(tmp_path: Path) -> None:
    async def body(links: Links, storage: SQLiteStorage, user: User, clock: Clock) -> bool:
        token = issue(links, user)
        await storage.delete_user(user.id)
        of = fingerprints(storage)
        return await links.redeem(token, LinkPurpose.SIGN_IN, fingerprint_of=of) is None

    assert with_links(tmp_path, body)


def test_account_links_tampered_or_foreign_tokens_are_refused(tmp_path: Path) -> None:
    async def body(
        links: Links, storage: SQLiteStorage, user: User, clock: Clock
    ) -> list[LinkClaim | None]:
        token = issue(links, user)
        of = fingerprints(storage)
        other_site = Links(["another-site-secret-0123456789abcdef"], storage, clock=clock)
        foreign = other_site.issue(
            LinkPurpose.SIGN_IN, user.id, fingerprint=Links.fingerprint(user)
        )
        flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        candidates = [flipped, foreign, "", "x" * 5000, token + "."]
        return [
            await links.redeem(candidate, LinkPurpose.SIGN_IN, fingerprint_of=of)
            for candidate in candidates
        ]

    assert with_links(tmp_path, body) == [None] * 5
