"""The storage interface, as narrow ports per concern, and their sum.

A component asks for the port it uses (the consent ledger a :class:`ConsentLog`, the
meter a :class:`MeterReads`), so its tests and its reader see exactly what it touches;
:class:`Storage` is every port together, which the SQLite and PostgreSQL backends
implement. (Redis serves only the meter and rate limits: see
:mod:`consentgate.storage.redis`.)

Every method raises :class:`~consentgate.storage.base.StorageError` when the backend
fails, so the caller can answer 503 without knowing which backend runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Protocol

from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    MeterOutcome,
    OutboxItem,
    OutgoingMail,
    SessionRecord,
    SubscriptionRecord,
    User,
)

__all__ = [
    "Acceptances",
    "Accounts",
    "ConsentLog",
    "Counters",
    "Erasure",
    "Lifecycle",
    "LinkClaims",
    "MeterReads",
    "Outbox",
    "Sessions",
    "Storage",
    "Subscriptions",
]


class Lifecycle(Protocol):
    """Connecting and the schema."""

    async def open(self) -> None:
        """Connect and check the schema. Calling it twice is harmless.

        An empty database gets the latest schema (a first start just works). An
        existing one must already be at :meth:`schema_version` of this code: older
        raises :class:`SchemaTooOldError`, newer :class:`SchemaTooNewError`.
        """

    async def close(self) -> None:
        """Release connections. The store may be opened again afterwards."""

    async def ping(self) -> None:
        """Return if the backend answers; raise :class:`StorageError` otherwise."""

    async def schema_version(self) -> int:
        """The version the database is at (0 when empty). Works before :meth:`open`."""

    async def migrate(self) -> list[int]:
        """Apply pending migrations and return their versions ([] when up to date).

        Idempotent and safe when several processes run it at once. Works before
        :meth:`open` (it connects itself; call :meth:`close` afterwards).
        """


class ConsentLog(Protocol):
    """The consent ledger: append-only evidence of each decision."""

    async def record_consent(self, rec: ConsentRecord) -> ConsentRecord:
        """Append ``rec`` (whose ``id`` must be None) and return it with its new id."""

    async def consent_history(self, consent_id: str) -> list[ConsentRecord]:
        """All records of one consent id, oldest first."""

    async def latest_consent(self, consent_id: str) -> ConsentRecord | None:
        """The newest record of one consent id, or None if it has none."""

    async def count_consents(self) -> int:
        """How many records the ledger holds."""

    def iter_consents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        """Stream records with ``since <= recorded_at < until``, oldest first.

        Declared without ``async`` because implementations are async generators:
        use it as ``async for rec in storage.iter_consents(...)``.
        """

    async def consents_for_user(self, user_id: str) -> list[ConsentRecord]:
        """Every consent record carrying this user id, oldest first."""


class Accounts(Protocol):
    """Readers' accounts."""

    async def create_user(
        self,
        user: User,
        acceptances: Sequence[AcceptanceRecord] = (),
        mail: Sequence[OutgoingMail] = (),
    ) -> User:
        """Store ``user`` and, in the same transaction, its first acceptance rows and the
        messages its registration sends (into the outbox).

        All or nothing: an account never exists without the acceptance recorded at its
        registration, nor without its verification mail. Raises
        :class:`DuplicateUserError` when :func:`email_key` of the e-mail is taken.
        """

    async def mark_email_verified(self, user_id: str, at: datetime) -> bool:
        """Note that the user proved the address theirs at ``at`` (the first time stays);
        False when there is no such user."""

    async def change_email(self, user_id: str, new_email: str, at: datetime) -> None:
        """Give the user ``new_email``, verified at ``at`` (a change is confirmed by the
        link sent to the new address). Raises :class:`DuplicateUserError` when taken."""

    async def user_by_email(self, email: str) -> User | None:
        """The user whose e-mail has the same :func:`email_key`, or None."""

    async def user_by_id(self, user_id: str) -> User | None:
        """The user with this id, or None."""

    async def update_password_hash(self, user_id: str, new_hash: str) -> None:
        """Replace a user's password hash (after a rehash or a password change)."""

    async def delete_user(self, user_id: str) -> bool:
        """Remove the account (not its ledger rows); False when there was none."""


class Acceptances(Protocol):
    """The privacy policy (and newsletter) acceptances of accounts: evidence too."""

    async def record_acceptance(self, rec: AcceptanceRecord) -> AcceptanceRecord:
        """Append ``rec`` (whose ``id`` must be None) and return it with its new id."""

    async def latest_acceptance(self, user_id: str, purpose: str) -> AcceptanceRecord | None:
        """The newest row of one user and purpose, or None."""

    async def acceptances_for(self, user_id: str) -> list[AcceptanceRecord]:
        """Every row of one user, oldest first."""

    def iter_acceptances(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AcceptanceRecord]:
        """Stream rows with ``since <= recorded_at < until``, oldest first."""


class Erasure(Protocol):
    """Erasure requests: what the append-only records may lose."""

    async def redact_user_records(self, user_id: str) -> int:
        """Null ``ip_hmac`` and ``user_agent`` in the user's consent and acceptance rows.

        The only change the append-only tables allow: the rows stay as pseudonymised
        proof (random user id, times, versions, hashes). Returns the rows changed.
        Newsletter rows are redacted the same way.
        """

    async def forget_mail(self, recipient: str) -> int:
        """Delete the outbox's messages to this address (by :func:`email_key`); how many."""


class Sessions(Protocol):
    """Server-side sessions of readers and of the dashboard."""

    async def create_session(self, rec: SessionRecord) -> None:
        """Store a new session (its ``id_hash`` is new: 256 random bits hashed)."""

    async def session_by_hash(self, id_hash: str) -> SessionRecord | None:
        """The session with this hash, expired or not (the caller checks), or None."""

    async def sessions_for(self, kind: str, subject: str) -> list[SessionRecord]:
        """Every stored session of ``subject``, expired or not, oldest first."""

    async def delete_session(self, id_hash: str) -> bool:
        """End one session; False when there was none."""

    async def delete_sessions(self, kind: str, subject: str, *, keep: str | None = None) -> int:
        """End every session of ``subject`` except the one hashed ``keep``; how many."""

    async def prune_sessions(self, before: datetime) -> int:
        """Forget sessions that expired before ``before``; returns how many."""


class MeterReads(Protocol):
    """The server-side meter."""

    async def record_read(self, key: str, article: str, at: datetime) -> None:
        """Note that ``key`` (a reader) read ``article`` at ``at``.

        One row per (key, article): reading again moves its time forward (never back),
        so an article counts once per period, in the period it was last read.
        """

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        """The articles ``key`` read at or after ``since``."""

    async def meter_read(
        self,
        reader_key: str,
        network_key: str | None,
        article: str,
        at: datetime,
        since: datetime,
        reader_limit: int,
        network_limit: int,
    ) -> MeterOutcome:
        """Check and record one read as ONE atomic step (see :func:`meter_outcome`).

        Looks at reads since ``since`` under both keys and, when allowed, records the
        read at ``at`` under both, with no other ``meter_read`` of the same keys in
        between (on any worker or host): a burst of parallel reads can never get past
        the limits.
        """

    async def prune_reads(self, before: datetime) -> int:
        """Forget reads last made before ``before``; returns how many were removed."""


class Outbox(Protocol):
    """Messages waiting for the mail server, written where their cause is written."""

    async def enqueue_mail(self, mail: OutgoingMail, at: datetime) -> int:
        """Add a message, due at once; returns its id."""

    async def claim_mail(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxItem]:
        """Up to ``limit`` pending messages due at ``now``, oldest first.

        Each one's next attempt moves to ``now + lease``, so no other sender (worker,
        process) takes it while this one tries, and one that dies mid-send leaves it to
        be retried when the lease ends.
        """

    async def mark_mail_sent(self, item_id: int, at: datetime) -> None:
        """The mail server took it: status sent; its bodies are cleared (the links in
        them are secrets) and the row stays for the stats."""

    async def mark_mail_failed(self, item_id: int, error: str, retry_at: datetime | None) -> None:
        """One more failed attempt (``error`` kept, cut to 500 characters): due again at
        ``retry_at``, or given up ("dead") when it is None."""

    async def outbox_counts(self) -> dict[str, int]:
        """``pending``, ``retrying`` (pending after a failed attempt), ``sent``, ``dead``."""

    async def oldest_pending(self) -> datetime | None:
        """When the oldest message still waiting was written, or None."""

    async def prune_mail(self, before: datetime) -> int:
        """Forget sent and dead messages written before ``before``; how many."""


class LinkClaims(Protocol):
    """What makes a link in a mail single-use."""

    async def claim_link(self, link_id: str, expires_at: datetime) -> bool:
        """True the first time ``link_id`` (a hash of the link's random id) is claimed,
        False ever after, on any worker (until pruned after ``expires_at``)."""

    async def link_claimed(self, link_id: str) -> bool:
        """Whether ``link_id`` was claimed already (read only: a GET page that shows a
        link's form must not show it for a link that can no longer be used)."""

    async def prune_links(self, before: datetime) -> int:
        """Forget claims of links that expired before ``before``; how many."""


class Subscriptions(Protocol):
    """The newsletter ledger: append-only evidence of each subscription step."""

    async def record_subscription(
        self, rec: SubscriptionRecord, mail: Sequence[OutgoingMail] = ()
    ) -> SubscriptionRecord:
        """Append ``rec`` (whose ``id`` must be None) and, in the same transaction, its
        messages (the double opt-in mail); returns it with its new id."""

    async def subscriptions_for(self, user_id: str) -> list[SubscriptionRecord]:
        """Every row of one user, oldest first."""

    def iter_subscribers(self, list_id: str) -> AsyncIterator[tuple[str, str, datetime]]:
        """``(user_id, email, confirmed at)`` of each existing account whose newest row
        for the list is a confirmation, by user id, in pages (an async generator)."""


class Counters(Protocol):
    """Daily counters, and the rollups the database keeps for the dashboard."""

    async def add_counts(self, day: date, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to the day's counters (missing ones start at 0), atomically."""

    async def counts(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, int]]:
        """``(day, name, value)`` with ``since <= day < until``, by day then name.

        Half-open like ``iter_consents``: ``counts(d, d + timedelta(days=1))`` is one day.
        """

    async def consent_daily(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, str, int]]:
        """``(day, action, method, decisions)`` with ``since <= day < until`` (UTC days)."""

    async def latest_decisions(
        self, since: datetime
    ) -> tuple[list[tuple[tuple[str, ...], int]], int]:
        """Consent ids whose latest row is at or after ``since``: ``([(granted set of
        that latest row, how many ids)], ids whose latest GPC row is at or after since)``.
        """


class Storage(
    Lifecycle,
    ConsentLog,
    Accounts,
    Acceptances,
    Erasure,
    Sessions,
    MeterReads,
    Counters,
    Outbox,
    LinkClaims,
    Subscriptions,
    Protocol,
):
    """Every port: what a SQL backend implements."""
