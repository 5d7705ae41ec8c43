"""The storage interface every backend implements, its errors, and the rules written
once for every backend (counter names, the meter's step). The rows it stores live in
:mod:`consentgate.storage.records` and are re-exported here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from consentgate.storage.records import (
    ACCEPTANCE_METHODS,
    ACCEPTANCE_PURPOSES,
    CONSENT_ACTIONS,
    CONSENT_METHODS,
    SESSION_KINDS,
    AcceptanceRecord,
    ConsentRecord,
    MeterOutcome,
    SessionRecord,
    User,
    email_key,
    new_user_id,
)

__all__ = [
    "ACCEPTANCE_METHODS",
    "ACCEPTANCE_PURPOSES",
    "CONSENT_ACTIONS",
    "CONSENT_METHODS",
    "SESSION_KINDS",
    "AcceptanceRecord",
    "ConsentRecord",
    "DuplicateUserError",
    "MeterOutcome",
    "SchemaTooNewError",
    "SchemaTooOldError",
    "SessionRecord",
    "Storage",
    "StorageError",
    "User",
    "check_counts",
    "email_key",
    "meter_outcome",
    "new_user_id",
    "storage_from_url",
]


class StorageError(Exception):
    """Any failure of the storage backend; the web layer answers 503 on it."""


class DuplicateUserError(StorageError):
    """``create_user`` found the e-mail address already registered."""


class SchemaTooOldError(StorageError):
    """The database holds an older schema: an operator must run ``consentgate migrate``.

    ``open()`` never migrates an existing database by itself: with several workers or
    hosts, an upgrade must be one deliberate step, not a race at start-up.
    """

    def __init__(self, found: int, needed: int) -> None:
        super().__init__(
            f"database schema is version {found}, this consentgate needs {needed}: "
            "run `consentgate migrate`"
        )
        self.found = found
        self.needed = needed


class SchemaTooNewError(StorageError):
    """The database was migrated by a newer consentgate than this one."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database schema is version {found}, newer than this consentgate supports "
            f"({supported}): upgrade consentgate"
        )
        self.found = found
        self.supported = supported


_COUNTER_NAME = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")


def check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Validate ``add_counts`` input once for every backend: names are short
    identifiers (they become dashboard labels), values plain integers."""
    checked: dict[str, int] = {}
    for name, value in counts.items():
        if not isinstance(name, str) or not _COUNTER_NAME.fullmatch(name):
            raise ValueError(f"counter names are lowercase identifiers, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"counter {name!r} needs an integer, got {value!r}")
        checked[name] = value
    return checked


def meter_outcome(
    reader_seen: frozenset[str],
    network_seen: frozenset[str] | None,
    article: str,
    reader_limit: int,
    network_limit: int,
) -> MeterOutcome:
    """The meter's rule, written once for every backend that runs it in a transaction.

    Re-reading an article already counted for the reader is allowed and not counted
    again; otherwise the read is refused when either count already holds its limit.
    """
    if article in reader_seen:
        return MeterOutcome(True, False, len(reader_seen - {article}), None)
    network_reads = None if network_seen is None else len(network_seen - {article})
    refused = len(reader_seen) >= reader_limit or (
        network_reads is not None and network_reads >= network_limit
    )
    return MeterOutcome(False, not refused, len(reader_seen), network_reads)


class Storage(Protocol):
    """Async storage implemented by the SQLite and PostgreSQL backends.

    (Redis serves only the meter and rate limits: see :mod:`consentgate.storage.redis`.)

    Every method raises :class:`StorageError` when the backend fails, so the caller can
    answer 503 without knowing which backend runs.
    """

    async def open(self) -> None:
        """Connect and check the schema. Calling it twice is harmless.

        An empty database gets the latest schema (a first start just works). An
        existing one must already be at :meth:`schema_version` of this code: older
        raises :class:`SchemaTooOldError`, newer :class:`SchemaTooNewError`.
        """

    async def close(self) -> None:
        """Release connections. The store may be opened again afterwards."""

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

    # -- accounts ------------------------------------------------------------------
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

    # -- sessions (schema version 4) ----------------------------------------------
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

    # -- dashboard rollups (schema version 4, kept by the database on every insert) ---
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

    # -- the server-side meter -----------------------------------------------------
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

    async def ping(self) -> None:
        """Return if the backend answers; raise :class:`StorageError` otherwise."""

    # -- operators: counters, erasure, schema -----------------------------------------
    async def add_counts(self, day: date, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to the day's counters (missing ones start at 0), atomically."""

    async def counts(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, int]]:
        """``(day, name, value)`` with ``since <= day < until``, by day then name.

        Half-open like ``iter_consents``: ``counts(d, d + timedelta(days=1))`` is one day.
        """

    async def delete_user(self, user_id: str) -> bool:
        """Remove the account (not its ledger rows); False when there was none."""

    async def redact_user_records(self, user_id: str) -> int:
        """Null ``ip_hmac`` and ``user_agent`` in the user's consent and acceptance rows.

        The only change the append-only tables allow: the rows stay as pseudonymised
        proof (random user id, times, versions, hashes). Returns the rows changed.
        """

    async def consents_for_user(self, user_id: str) -> list[ConsentRecord]:
        """Every consent record carrying this user id, oldest first."""

    async def schema_version(self) -> int:
        """The version the database is at (0 when empty). Works before :meth:`open`."""

    async def migrate(self) -> list[int]:
        """Apply pending migrations and return their versions ([] when up to date).

        Idempotent and safe when several processes run it at once. Works before
        :meth:`open` (it connects itself; call :meth:`close` afterwards).
        """


_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})


def storage_from_url(url: str) -> Storage:
    """Build the (unopened) storage a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` and
    ``sqlite:///:memory:`` are supported. Error messages name only the scheme, never
    the whole URL, because URLs of server databases carry passwords.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError("storage URL needs a scheme, e.g. sqlite:///consentgate.db")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _sqlite_from_url_rest(rest)
    if scheme.split("+", 1)[0] in _POSTGRES_SCHEMES:
        return _postgres_from_url(url)
    raise ValueError(
        f"unsupported storage URL scheme {scheme!r}; use sqlite:///path.db or postgresql://…"
    )


def _postgres_from_url(url: str) -> Storage:
    # psycopg is an optional extra: only PostgreSQL URLs may require it.
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            "PostgreSQL storage needs the postgres extra: install consentgate[postgres] "
            f"(missing module {exc.name!r})"
        ) from exc
    from consentgate.storage.postgres import PostgresStorage

    return PostgresStorage(url)


def _sqlite_from_url_rest(rest: str) -> Storage:
    # Imported here: the SQLite backend imports this module, and server backends
    # will need optional dependencies that only their own URLs should load.
    from consentgate.storage.sqlite import SQLiteStorage

    if not rest.startswith("/"):
        raise ValueError(
            "sqlite URLs take no host: use sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = rest[1:]
    if not path:
        raise ValueError("sqlite URL needs a database path, e.g. sqlite:///consentgate.db")
    path, _, query = path.partition("?")
    return SQLiteStorage(path, **_sqlite_params(query))


# busy_timeout: how long SQLite waits for another connection's write lock; the others
# bound every call and tune the circuit breaker (see storage/breaker.py).
_SQLITE_PARAMS = frozenset({"busy_timeout", "call_timeout", "breaker_failures", "breaker_cooldown"})


def _sqlite_params(query: str) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _SQLITE_PARAMS:
            known = ", ".join(sorted(_SQLITE_PARAMS))
            raise ValueError(f"sqlite URLs take no query parameter {key!r} (only {known})")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"sqlite URL parameter {key} must be a number") from None
    return params
