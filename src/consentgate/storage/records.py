"""The rows storage keeps and the words they may hold: consent ledger records, users,
policy and newsletter acceptances, sessions, and what one meter step found.

Every backend stores and returns these types; the vocabularies are ``StrEnum``s whose
values are the words stored (the schemas' CHECK constraints list the same ones), and
each has a frozenset of plain strings for membership tests and messages.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "ACCEPTANCE_METHODS",
    "ACCEPTANCE_PURPOSES",
    "CONSENT_ACTIONS",
    "CONSENT_METHODS",
    "MAIL_STATUSES",
    "SESSION_KINDS",
    "SUBSCRIPTION_ACTIONS",
    "SUBSCRIPTION_METHODS",
    "AcceptanceMethod",
    "AcceptancePurpose",
    "AcceptanceRecord",
    "ConsentAction",
    "ConsentMethod",
    "ConsentRecord",
    "MailStatus",
    "MeterOutcome",
    "OutboxItem",
    "OutgoingMail",
    "SessionKind",
    "SessionRecord",
    "SubscriptionAction",
    "SubscriptionMethod",
    "SubscriptionRecord",
    "User",
    "email_key",
    "new_user_id",
]


class ConsentAction(StrEnum):
    GRANT = "grant"
    REJECT = "reject"
    UPDATE = "update"
    WITHDRAW = "withdraw"
    GPC = "gpc"


class ConsentMethod(StrEnum):
    FORM = "form"
    JS = "js"
    API = "api"
    GPC = "gpc"


class AcceptancePurpose(StrEnum):
    PRIVACY_POLICY = "privacy_policy"
    NEWSLETTER = "newsletter"


class AcceptanceMethod(StrEnum):
    REGISTRATION = "registration"
    RE_ACCEPTANCE = "re-acceptance"
    EXTERNAL = "external"
    WITHDRAWAL = "withdrawal"


class SessionKind(StrEnum):
    """Who a stored session belongs to: a reader of the built-in accounts, or the
    operator signed in to the dashboard (whose subject is a digest of the admin token
    in force)."""

    READER = "reader"
    ADMIN = "admin"


class MailStatus(StrEnum):
    """Where a message of the outbox is: waiting (maybe after failed attempts), handed
    to the mail server, or given up (a permanent refusal, or too many attempts)."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class SubscriptionAction(StrEnum):
    """A step of a newsletter subscription: asked for (double opt-in mail sent),
    confirmed by the link in that mail, withdrawn."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class SubscriptionMethod(StrEnum):
    REGISTRATION = "registration"
    ACCOUNT = "account"
    EMAIL_LINK = "email_link"
    ONE_CLICK = "one_click"
    OPERATOR = "operator"
    ERASURE = "erasure"


# Plain strings (not members), so sorting and messages show the stored words.
CONSENT_ACTIONS = frozenset(str(word.value) for word in ConsentAction)
CONSENT_METHODS = frozenset(str(word.value) for word in ConsentMethod)
ACCEPTANCE_PURPOSES = frozenset(str(word.value) for word in AcceptancePurpose)
ACCEPTANCE_METHODS = frozenset(str(word.value) for word in AcceptanceMethod)
SESSION_KINDS = frozenset(str(word.value) for word in SessionKind)
MAIL_STATUSES = frozenset(str(word.value) for word in MailStatus)
SUBSCRIPTION_ACTIONS = frozenset(str(word.value) for word in SubscriptionAction)
SUBSCRIPTION_METHODS = frozenset(str(word.value) for word in SubscriptionMethod)
_MAIL_KIND = re.compile(r"[a-z_]{1,40}")

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _utc(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


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
    #: When the reader proved the address is theirs (the link in the verification or
    #: the change-of-address mail); None until then.
    email_verified_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.email:
            raise ValueError("a user needs an id and an e-mail address")
        object.__setattr__(self, "created_at", _utc(self.created_at, "created_at"))
        if self.email_verified_at is not None:
            verified = _utc(self.email_verified_at, "email_verified_at")
            object.__setattr__(self, "email_verified_at", verified)


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


def _no_line_breaks(value: str, name: str) -> None:
    # A CR or LF in a header value would let its text add headers (or recipients).
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must not contain line breaks")


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """A message as the outbox keeps it until it is delivered.

    Written in the transaction of what caused it (a registration, a subscription), so a
    reader is never told "we sent you a link" for a link that no row will ever send.
    """

    recipient: str
    subject: str
    text: str
    html: str
    #: What the message is for (verify_email, password_reset, newsletter_confirm, …):
    #: counted in the stats, never shown to the reader.
    kind: str
    language: str = "en"
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.recipient or "@" not in self.recipient:
            raise ValueError("a message needs a recipient address")
        _no_line_breaks(self.recipient, "recipient")
        _no_line_breaks(self.subject, "subject")
        if not _MAIL_KIND.fullmatch(self.kind):
            raise ValueError(f"mail kind must be 1-40 of a-z and _, not {self.kind!r}")
        object.__setattr__(self, "headers", tuple((str(n), str(v)) for n, v in self.headers))
        for name, value in self.headers:
            _no_line_breaks(name, "a header name")
            _no_line_breaks(value, f"header {name}")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message in the outbox, with its delivery state."""

    id: int
    mail: OutgoingMail
    created_at: datetime
    #: Failed attempts so far.
    attempts: int
    next_attempt_at: datetime
    status: str
    last_error: str | None
    sent_at: datetime | None

    def __post_init__(self) -> None:
        if self.status not in MAIL_STATUSES:
            raise ValueError(f"unknown mail status {self.status!r}")


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """One row of the append-only newsletter ledger: a request, its confirmation by the
    link in the double opt-in mail, or a withdrawal, with the words the reader saw."""

    user_id: str
    list_id: str
    action: str
    method: str
    #: Exactly the text shown when the reader acted (name, description, frequency):
    #: what the consent was given to.
    text_shown: str
    ip_hmac: str | None
    user_agent: str | None
    recorded_at: datetime
    id: int | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.user_id or not self.list_id:
            raise ValueError("a subscription row needs a user id and a list id")
        if self.action not in SUBSCRIPTION_ACTIONS:
            raise ValueError(f"unknown subscription action {self.action!r}")
        if self.method not in SUBSCRIPTION_METHODS:
            raise ValueError(f"unknown subscription method {self.method!r}")
        object.__setattr__(self, "recorded_at", _utc(self.recorded_at, "recorded_at"))
