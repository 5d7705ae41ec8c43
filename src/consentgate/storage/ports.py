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
from datetime import date, datetime
from typing import Protocol

from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    MeterOutcome,
    SessionRecord,
    User,
)

__all__ = [
    "Acceptances",
    "Accounts",
    "ConsentLog",
    "Counters",
    "Erasure",
    "Lifecycle",
    "MeterReads",
    "Sessions",
    "Storage",
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

    async def create_user(self, user: User, acceptances: Sequence[AcceptanceRecord] = ()) -> User:
        """Store ``user`` and, in the same transaction, its first acceptance rows.

        All or nothing: an account never exists without the acceptance recorded at its
        registration. Raises :class:`DuplicateUserError` when :func:`email_key` of the
        e-mail is taken.
        """

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
        """


class Sessions(Protocol):
    """Server-side sessions of readers and of the dashboard."""

    async def create_session(self, rec: SessionRecord) -> None:
        """Store a new session (its ``id_hash`` is new: 256 random bits hashed)."""

    async def session_by_hash(self, id_hash: str) -> SessionRecord | None:
        """The session with this hash, expired or not (the caller checks), or None."""

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
    Protocol,
):
    """Every port: what a SQL backend implements."""
