"""The storage interface every backend implements, and the rows it stores: consent
ledger records, users, policy and newsletter acceptances."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

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

CONSENT_ACTIONS = frozenset({"grant", "reject", "update", "withdraw", "gpc"})
CONSENT_METHODS = frozenset({"form", "js", "api", "gpc"})
ACCEPTANCE_PURPOSES = frozenset({"privacy_policy", "newsletter"})
ACCEPTANCE_METHODS = frozenset({"registration", "re-acceptance", "external", "withdrawal"})
# Who a stored session belongs to: a reader of the built-in accounts, or the operator
# signed in to the dashboard (whose subject is a digest of the admin token in force).
SESSION_KINDS = frozenset({"reader", "admin"})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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


def _utc(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


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


def new_user_id() -> str:
    """128 random bits, hex, like consent ids: unguessable and never reused."""
    return secrets.token_hex(16)


def email_key(email: str) -> str:
    """What makes two addresses "the same account": case-insensitive, trimmed.

    Local parts are case-sensitive in RFC 5321, but no mail provider in use treats
    them so, and readers type capitals by accident: matching without case avoids
    duplicate accounts and failed sign-ins. Every backend indexes this value.
    """
    return email.strip().casefold()


@dataclass(frozen=True, slots=True)
class User:
    """A registered reader. ``email`` is stored as normalised by the accounts service."""

    email: str
    password_hash: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=new_user_id)

    def __post_init__(self) -> None:
        if not self.id or not self.email:
            raise ValueError("a user needs an id and an e-mail address")
        object.__setattr__(self, "created_at", _utc(self.created_at, "created_at"))


@dataclass(frozen=True, slots=True)
class AcceptanceRecord:
    """One row of the append-only acceptance ledger (privacy policy, newsletter).

    ``user_id`` is ours or, for sites with their own accounts, theirs: the table has
    no foreign key to ``users`` on purpose. ``policy_version``/``policy_sha256`` name
    the privacy policy in force when the reader acted (for the newsletter too: its
    consent was given under that text).
    """

    user_id: str
    purpose: str
    policy_version: str
    policy_sha256: str
    granted: bool
    method: str
    ip_hmac: str | None
    user_agent: str | None
    recorded_at: datetime
    id: int | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("user_id must not be empty")
        if self.purpose not in ACCEPTANCE_PURPOSES:
            raise ValueError(f"unknown acceptance purpose {self.purpose!r}")
        if self.method not in ACCEPTANCE_METHODS:
            raise ValueError(f"unknown acceptance method {self.method!r}")
        if self.method == "withdrawal" and self.granted:
            raise ValueError("a withdrawal cannot grant anything")
        if not _SHA256_HEX.fullmatch(self.policy_sha256):
            raise ValueError("policy_sha256 must be 64 lowercase hex digits")
        object.__setattr__(self, "recorded_at", _utc(self.recorded_at, "recorded_at"))


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One row of the append-only consent ledger: a visitor's decision and its context.

    ``recorded_at`` must be timezone-aware; it is normalised to UTC so that records
    compare and sort the same whatever zone the caller used.
    """

    consent_id: str
    user_id: str | None
    action: str
    granted: tuple[str, ...]
    denied: tuple[str, ...]
    policy_version: str
    banner_text_sha256: str
    language: str
    region_mode: str
    method: str
    ip_hmac: str | None
    user_agent: str | None
    recorded_at: datetime
    id: int | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.consent_id:
            raise ValueError("consent_id must not be empty")
        if self.action not in CONSENT_ACTIONS:
            raise ValueError(f"unknown consent action {self.action!r}")
        if self.method not in CONSENT_METHODS:
            raise ValueError(f"unknown consent method {self.method!r}")
        if not _SHA256_HEX.fullmatch(self.banner_text_sha256):
            raise ValueError("banner_text_sha256 must be 64 lowercase hex digits")
        # Lists sneak in from JSON and forms; tuples keep the record hashable and frozen.
        object.__setattr__(self, "granted", tuple(self.granted))
        object.__setattr__(self, "denied", tuple(self.denied))
        overlap = set(self.granted) & set(self.denied)
        if overlap:
            raise ValueError(f"categories both granted and denied: {sorted(overlap)}")
        object.__setattr__(self, "recorded_at", _utc(self.recorded_at, "recorded_at"))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in browser: the cookie holds a random id, the store only its SHA-256.

    A copied database therefore holds no usable session, and deleting the row ends the
    session wherever its cookie went (logout, "sign out everywhere", password change).
    """

    id_hash: str
    kind: str
    subject: str
    created_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        if not _SHA256_HEX.fullmatch(self.id_hash):
            raise ValueError("id_hash must be 64 lowercase hex digits")
        if self.kind not in SESSION_KINDS:
            raise ValueError(f"unknown session kind {self.kind!r}")
        if not self.subject:
            raise ValueError("a session needs a subject")
        object.__setattr__(self, "created_at", _utc(self.created_at, "created_at"))
        object.__setattr__(self, "expires_at", _utc(self.expires_at, "expires_at"))


@dataclass(frozen=True, slots=True)
class MeterOutcome:
    """What one atomic step of the server meter (``meter_read``) found and did.

    ``reader_reads``/``network_reads`` count the distinct *other* articles in the
    window before this read (``network_reads`` is None without a network key).
    ``recorded`` is False for a re-read (``already_read``) and for a refused read.
    """

    already_read: bool
    recorded: bool
    reader_reads: int
    network_reads: int | None


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
