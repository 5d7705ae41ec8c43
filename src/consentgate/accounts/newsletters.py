"""Newsletters with consent: the lists an operator offers and the readers' subscriptions.

Every step is a row of the append-only subscription ledger (storage's
:class:`~consentgate.storage.records.SubscriptionRecord`): which list, the exact words
the reader saw, when, and how (registration form, account page, e-mail link, one-click).
A subscription is double opt-in: ``request`` records "requested" and writes the
confirmation mail in the same transaction; only the link in that mail ("confirmed")
makes the reader a subscriber. Withdrawal is one row ("unsubscribed"), by any route.

Two kinds of link go out: the confirmation link (single-use, two days) and the
unsubscribe link of every newsletter mail. The latter is long-lived and reusable on
purpose: RFC 8058 one-click requests may be retried, and a reader may click the link in
an old mail; all it can do is unsubscribe one reader from one list.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlsplit

from consentgate.accounts.links import LinkPurpose, Links
from consentgate.accounts.newsletter_lists import LIST_ID, NewsletterList
from consentgate.accounts.service import RequestContext
from consentgate.i18n import locale
from consentgate.mail.compose import compose_mail
from consentgate.storage import StorageError, User, ports
from consentgate.storage.records import (
    OutgoingMail,
    SubscriptionAction,
    SubscriptionMethod,
    SubscriptionRecord,
)

__all__ = [
    "CONFIRM_LIFETIME",
    "LIST_ID",
    "UNSUBSCRIBE_LIFETIME",
    "ListState",
    "NewsletterList",
    "NewsletterState",
    "NewsletterStore",
    "Newsletters",
    "Subscriber",
    "newsletter_texts",
]

logger = logging.getLogger("consentgate")

# Long enough for a reader who reads the confirmation mail the next evening, short
# enough that an old mail in a shared inbox cannot subscribe anyone months later.
CONFIRM_LIFETIME = timedelta(hours=48)
# An unsubscribe link must work for as long as the mail it came in is kept; all it can
# do is take one reader off one list, so it does not need to expire soon.
UNSUBSCRIBE_LIFETIME = timedelta(days=3650)
LANGUAGE = re.compile(r"[a-z]{2}")


def newsletter_texts(lang: str) -> Mapping[str, str]:
    """The newsletter pages' and mails' wording in ``lang`` (English where it has none)."""
    return locale(lang, "newsletters")


class NewsletterState(Protocol):
    """What the account page's section shows for one list."""

    @property
    def list(self) -> NewsletterList: ...
    @property
    def state(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ListState:
    """One list and the reader's standing on it: "none", "requested" (waiting for the
    confirmation link), "confirmed" (a subscriber) or "unsubscribed"."""

    list: NewsletterList
    state: str
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One row of ``consentgate export subscribers``."""

    email: str
    subscribed_at: datetime
    unsubscribe_url: str


class NewsletterStore(
    ports.Lifecycle, ports.Accounts, ports.Subscriptions, ports.LinkClaims, Protocol
):
    """What newsletters use of the storage."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _unsubscribe_fingerprint(email: str) -> str:
    """What an unsubscribe link is bound to: the address it was sent to (not the
    password, unlike sign-in links: changing one's password must not break the
    unsubscribe links of the mails one already has)."""
    return hashlib.sha256(f"unsubscribe:{email.casefold()}".encode()).hexdigest()


class Newsletters:
    """Double opt-in subscriptions to the configured lists, over a :class:`NewsletterStore`.

    ``public_url`` is the site's origin (``https://news.example``), for the links in
    mails: never the request's Host header, which a client chooses.
    """

    def __init__(
        self,
        storage: NewsletterStore,
        lists: Sequence[NewsletterList],
        links: Links,
        *,
        public_url: str,
        prefix: str,
        site_name: str,
        clock: Callable[[], datetime] = _utc_now,
        opener: Callable[[], Awaitable[None]] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.storage = storage
        self.lists = tuple(lists)
        self._by_id = {lst.id: lst for lst in self.lists}
        self.links = links
        self.base = f"{public_url.rstrip('/')}{prefix}/newsletters"
        self.site_name = site_name
        self._clock = clock
        self._opener = opener
        #: The mail sender's "send now" (set by the composition root when it has one).
        self.wake = wake
        self._opened = False
        self._open_lock: asyncio.Lock | None = None

    def find(self, list_id: str) -> NewsletterList | None:
        return self._by_id.get(list_id)

    # -- the ledger ---------------------------------------------------------------------
    async def current(self, user_id: str) -> list[ListState]:
        """Each configured list with the reader's standing on it, in the configured order."""
        await self._ensure_open()
        latest: dict[str, SubscriptionRecord] = {}
        for row in await self.storage.subscriptions_for(user_id):
            latest[row.list_id] = row  # oldest first: the last one wins
        states = []
        for lst in self.lists:
            last = latest.get(lst.id)
            states.append(
                ListState(lst, "none", None)
                if last is None
                else ListState(lst, last.action, last.recorded_at)
            )
        return states

    async def state_of(self, user_id: str, list_id: str) -> str:
        for entry in await self.current(user_id):
            if entry.list.id == list_id:
                return entry.state
        return "none"

    async def request(
        self,
        user: User,
        list_id: str,
        method: SubscriptionMethod,
        context: RequestContext,
        lang: str,
    ) -> SubscriptionRecord | None:
        """Record "requested" and write the confirmation mail, in one transaction.

        A second request while one is pending sends a new mail (the reader lost the
        first); a request by a subscriber does nothing (None). Raises ``KeyError`` for an
        unknown list, :class:`StorageError` when nothing could be written.
        """
        lst = self._by_id[list_id]
        if await self.state_of(user.id, list_id) == SubscriptionAction.CONFIRMED:
            return None
        row = self._row(user.id, lst, SubscriptionAction.REQUESTED, method, context, lang)
        mail = self._confirmation_mail(user, lst, lang)
        stored = await self.storage.record_subscription(row, mail=[mail])
        if self.wake is not None:
            self.wake()
        return stored

    async def request_many(
        self,
        user: User,
        list_ids: Iterable[str],
        method: SubscriptionMethod,
        context: RequestContext,
        lang: str,
    ) -> list[SubscriptionRecord]:
        """``request`` for each known list among ``list_ids`` (a form's ticked boxes;
        unknown ids and repeats are ignored: a form is not trusted to hold only ours)."""
        done: list[SubscriptionRecord] = []
        for list_id in dict.fromkeys(list_ids):
            if list_id in self._by_id:
                row = await self.request(user, list_id, method, context, lang)
                if row is not None:
                    done.append(row)
        return done

    async def subscribe_at_registration(
        self, user: User, list_ids: Iterable[str], context: RequestContext, lang: str
    ) -> None:
        """The registration form's ticked lists. The account exists already: a storage
        failure here is logged, not raised (the reader is signed in and can subscribe
        from the account page; nothing half-done is left, each request is atomic)."""
        try:
            await self.request_many(user, list_ids, SubscriptionMethod.REGISTRATION, context, lang)
        except (StorageError, ValueError) as exc:  # ValueError: the mail refused the address
            logger.error("consentgate: newsletter requests at registration not stored: %s", exc)

    async def confirm(
        self, token: str, context: RequestContext, lang: str
    ) -> SubscriptionRecord | None:
        """Redeem a confirmation link: "confirmed", once. None for a bad, used or expired
        link, or when the reader withdrew (or confirmed) after asking."""
        claim = await self.peek_confirm(token)
        if claim is None:
            return None
        await self._ensure_open()
        redeemed = await self.links.redeem(
            token, LinkPurpose.NEWSLETTER_CONFIRM, fingerprint_of=self._fingerprint
        )
        if redeemed is None:
            return None
        lst = claim[1]
        row = self._row(
            redeemed.user_id,
            lst,
            SubscriptionAction.CONFIRMED,
            SubscriptionMethod.EMAIL_LINK,
            context,
            lang,
        )
        return await self.storage.record_subscription(row)

    async def peek_confirm(self, token: str) -> tuple[str, NewsletterList] | None:
        """(user id, list) of a confirmation link that would confirm now; claims nothing."""
        await self._ensure_open()
        claim = await self.links.peek(
            token, LinkPurpose.NEWSLETTER_CONFIRM, fingerprint_of=self._fingerprint
        )
        if claim is None:
            return None
        lst = self._by_id.get(claim.data)
        if lst is None:  # a list the operator removed since
            return None
        if await self.state_of(claim.user_id, lst.id) != SubscriptionAction.REQUESTED:
            return None
        return claim.user_id, lst

    async def unsubscribe(
        self,
        user_id: str,
        list_id: str,
        method: SubscriptionMethod,
        context: RequestContext,
        lang: str,
    ) -> SubscriptionRecord | None:
        """Record "unsubscribed" unless the reader is neither subscribed nor waiting
        for a confirmation (None: nothing to withdraw, nothing written twice)."""
        lst = self._by_id[list_id]
        state = await self.state_of(user_id, list_id)
        if state not in (SubscriptionAction.REQUESTED, SubscriptionAction.CONFIRMED):
            return None
        row = self._row(user_id, lst, SubscriptionAction.UNSUBSCRIBED, method, context, lang)
        return await self.storage.record_subscription(row)

    async def unsubscribe_target(self, token: str) -> tuple[str, NewsletterList, str] | None:
        """(user id, list, language of the mail) an unsubscribe link names, if valid."""
        await self._ensure_open()
        claim = await self.links.redeem(
            token,
            LinkPurpose.UNSUBSCRIBE,
            fingerprint_of=self._unsubscribe_fingerprint_of,
            single_use=False,
        )
        if claim is None:
            return None
        list_id, _, lang = claim.data.partition(" ")
        lst = self._by_id.get(list_id)
        if lst is None:
            return None
        return claim.user_id, lst, lang if LANGUAGE.fullmatch(lang) else "en"

    # -- newsletter mails -----------------------------------------------------------------
    def unsubscribe_url(self, user_id: str, email: str, list_id: str, lang: str = "en") -> str:
        """The reader's long-lived unsubscribe link for one list (RFC 8058's HTTPS URI)."""
        token = self.links.issue(
            LinkPurpose.UNSUBSCRIBE,
            user_id,
            fingerprint=_unsubscribe_fingerprint(email),
            data=f"{list_id} {lang}",
            lifetime=UNSUBSCRIBE_LIFETIME,
        )
        return f"{self.base}/unsubscribe?token={quote(token, safe='')}"

    def mail_headers(
        self, lst: NewsletterList, user: User, lang: str = "en"
    ) -> tuple[tuple[str, str], ...]:
        """The headers every mail of ``lst`` to ``user`` must carry (RFC 8058 section 3.1):
        List-Unsubscribe with the HTTPS link (and a mailto only if configured) and
        List-Unsubscribe-Post, plus List-Id (RFC 2919) so clients can group and filter.
        The sending platform must DKIM-sign both List-Unsubscribe headers."""
        targets = [f"<{self.unsubscribe_url(user.id, user.email, lst.id, lang)}>"]
        if lst.unsubscribe_mailto:
            subject = quote(f"unsubscribe {lst.id}", safe="")
            targets.append(f"<mailto:{lst.unsubscribe_mailto}?subject={subject}>")
        host = urlsplit(self.base).hostname or "localhost"
        return (
            ("List-Id", f"<{lst.id}.{host}>"),
            ("List-Unsubscribe", ", ".join(targets)),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        )

    async def subscribers(self, list_id: str) -> AsyncIterator[Subscriber]:
        """The current subscribers of a list, streamed (storage yields only existing
        accounts, so an erased reader is never among them). ``KeyError``: no such list."""
        if list_id not in self._by_id:
            raise KeyError(list_id)
        await self._ensure_open()
        async for user_id, email, since in self.storage.iter_subscribers(list_id):
            yield Subscriber(email, since, self.unsubscribe_url(user_id, email, list_id))

    # -- internals ------------------------------------------------------------------------
    def _row(
        self,
        user_id: str,
        lst: NewsletterList,
        action: SubscriptionAction,
        method: SubscriptionMethod,
        context: RequestContext,
        lang: str,
    ) -> SubscriptionRecord:
        return SubscriptionRecord(
            user_id=user_id,
            list_id=lst.id,
            action=action.value,
            method=method.value,
            text_shown=lst.text_shown(lang),
            ip_hmac=context.ip_hmac,
            user_agent=context.user_agent,
            recorded_at=self._clock(),
        )

    def _confirmation_mail(self, user: User, lst: NewsletterList, lang: str) -> OutgoingMail:
        texts = newsletter_texts(lang)
        token = self.links.issue(
            LinkPurpose.NEWSLETTER_CONFIRM,
            user.id,
            fingerprint=Links.fingerprint(user),
            data=lst.id,
            lifetime=CONFIRM_LIFETIME,
        )
        name, frequency = lst.text("name", lang), lst.text("frequency", lang)

        def fill(key: str) -> str:
            return (
                texts[key]
                .replace("{name}", name)
                .replace("{frequency}", frequency)
                .replace("{site}", self.site_name)
            )

        return compose_mail(
            recipient=user.email,
            kind="newsletter_confirm",
            language=lang,
            site_name=self.site_name,
            subject=fill("confirm_mail_subject"),
            paragraphs=[
                fill("confirm_mail_intro"),
                lst.text("description", lang),
                fill("confirm_mail_ignore"),
            ],
            action_label=fill("confirm_mail_button"),
            action_url=f"{self.base}/confirm?token={quote(token, safe='')}",
        )

    async def _fingerprint(self, user_id: str) -> str | None:
        user = await self.storage.user_by_id(user_id)
        return None if user is None else Links.fingerprint(user)

    async def _unsubscribe_fingerprint_of(self, user_id: str) -> str | None:
        user = await self.storage.user_by_id(user_id)
        return None if user is None else _unsubscribe_fingerprint(user.email)

    async def _ensure_open(self) -> None:
        if self._opener is not None:
            await self._opener()  # every time: the owner may close and reopen it
            return
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.storage.open()
                self._opened = True
