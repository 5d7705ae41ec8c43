"""The accounts' business rules: register, authenticate, record policy acceptances.

:meth:`Accounts.record_acceptance` is the documented API for sites that keep their own
accounts: call it from your own sign-up (``method="external"``) so that the acceptance
ledger proves which privacy policy each reader accepted, when, and how.

Scrypt takes tens of milliseconds of CPU, so hashing runs in a worker thread and the
event loop keeps serving other readers meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Literal, Protocol

from consentgate.accounts.passwords import (
    DUMMY_HASH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from consentgate.accounts.settings import AccountsSettings
from consentgate.consent.settings import Policy
from consentgate.storage import (
    AcceptanceRecord,
    DuplicateUserError,
    StorageError,
    User,
    email_key,
    ports,
)
from consentgate.storage.records import OutgoingMail
from consentgate.visitor import ip_hmac

__all__ = [
    "AcceptanceMethod",
    "AccountError",
    "AccountErrorReason",
    "Accounts",
    "PasswordProblem",
    "RegistrationMail",
    "RequestContext",
    "normalize_email",
]

logger = logging.getLogger("consentgate")

AcceptanceMethod = Literal["registration", "re-acceptance", "external"]
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_USER_AGENT = 512  # as in the consent ledger

# Deliberately loose (no dependency, no RFC 5322 parser): printable, no spaces, no
# characters that only appear in quoted local parts nobody uses for a news site.
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]{1,64}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Letters (any script) and digits, inner hyphens; no underscore (\w would allow one).
_DOMAIN_LABEL = re.compile(r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?")


class AccountErrorReason(Enum):
    EMAIL_INVALID = "email_invalid"
    PASSWORD_WEAK = "password_weak"  # noqa: S105 (a reason code, not a password)
    POLICY_NOT_ACCEPTED = "policy_not_accepted"

    @property
    def field(self) -> str:
        """The form field the problem belongs to, so the page can show it there."""
        return _REASON_FIELDS[self]


_REASON_FIELDS = {
    AccountErrorReason.EMAIL_INVALID: "email",
    AccountErrorReason.PASSWORD_WEAK: "password",
    AccountErrorReason.POLICY_NOT_ACCEPTED: "accept_policy",
}


class AccountError(Exception):
    """Why registration refused; ``reason.field`` names the form field to blame."""

    def __init__(self, reason: AccountErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def field(self) -> str:
        return self.reason.field


@dataclass(frozen=True, slots=True)
class PasswordProblem:
    """Why a password change was refused; ``wrong_current`` counts as a failed sign-in."""

    message: str
    wrong_current: bool = False


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What an acceptance row records about the request (never the IP address itself)."""

    ip_hmac: str | None = None
    user_agent: str | None = None


def normalize_email(raw: str) -> str | None:
    """Trimmed, domain lower-cased; None if it does not look like an address at all."""
    email = raw.strip()
    if not email or len(email) > MAX_EMAIL_LENGTH or email.count("@") != 1:
        return None
    local, domain = email.split("@")
    domain = domain.lower().rstrip(".")
    if not _LOCAL_PART.fullmatch(local) or ".." in local or local[0] == "." or local[-1] == ".":
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None  # an IP address or a typo, not a mail domain
    return f"{local}@{domain}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AccountStore(ports.Lifecycle, ports.Accounts, ports.Acceptances, ports.Outbox, Protocol):
    """What accounts use of the storage: users, their acceptances, the mail they cause."""


# The mail a registration causes: to the new account's address (the verification link)
# or, when the address has an account already, to its owner (``new`` False).
RegistrationMail = Callable[[User, bool], Sequence[OutgoingMail]]


class Accounts:
    """Registration, sign-in and the acceptance ledger, over any :class:`AccountStore`.

    ``opener`` opens the storage on first use; pass the consent ledger's so that one
    component owns opening and closing the shared storage. Without it the storage is
    opened here on first use (``Storage.open`` is idempotent).
    """

    def __init__(
        self,
        storage: AccountStore,
        secret_keys: tuple[str, ...],
        policy: Policy,
        *,
        clock: Callable[[], datetime] = _utc_now,
        min_password_length: int = MIN_PASSWORD_LENGTH,
        opener: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not secret_keys:
            raise ValueError("Accounts needs at least one secret key")
        if not _SHA256_HEX.fullmatch(policy.text_sha256):
            raise ValueError("policy.text_sha256 must be the policy text's SHA-256 (hex)")
        self.storage = storage
        self.policy = policy
        self._secret_key = secret_keys[0]
        self._clock = clock
        self._min_password_length = min_password_length
        self._opener = opener
        self._opened = False
        self._open_lock: asyncio.Lock | None = None

    @property
    def min_password_length(self) -> int:
        return self._min_password_length

    # -- helpers for the web layer ----------------------------------------------------
    def context(self, client_ip: str | None, user_agent: str | None) -> RequestContext:
        """The request facts to record, with the address reduced to an HMAC."""
        agent = (user_agent or "")[:MAX_USER_AGENT] or None
        return RequestContext(ip_hmac=ip_hmac(self._secret_key, client_ip), user_agent=agent)

    def email_key(self, email: str) -> str:
        """A keyed hash of an address, for rate-limit keys that must not hold e-mails."""
        normalized = email_key(normalize_email(email) or email)
        return hmac.new(
            self._secret_key.encode(), f"email:{normalized}".encode(), hashlib.sha256
        ).hexdigest()

    def registration_problems(
        self, email: str, password: str, accepted_policy: bool
    ) -> list[AccountError]:
        """Every problem a registration form has, without touching storage."""
        problems: list[AccountError] = []
        normalized = normalize_email(email)
        if normalized is None:
            problems.append(
                AccountError(
                    AccountErrorReason.EMAIL_INVALID,
                    "Enter an e-mail address such as name@example.com.",
                )
            )
        weakness = password_problem(
            password, normalized or email, min_length=self._min_password_length
        )
        if weakness is not None:
            problems.append(AccountError(AccountErrorReason.PASSWORD_WEAK, weakness))
        if not accepted_policy:
            problems.append(
                AccountError(
                    AccountErrorReason.POLICY_NOT_ACCEPTED,
                    "Registering needs your acceptance of the privacy policy; "
                    "tick the box to accept it.",
                )
            )
        return problems

    # -- the business rules ---------------------------------------------------------
    async def register(
        self,
        email: str,
        password: str,
        accepted_policy: bool,
        context: RequestContext,
        *,
        mail: RegistrationMail | None = None,
    ) -> User | None:
        """Create an account, its acceptance rows and its mail, all in one transaction.

        None when the address has an account already: then nothing is created and
        ``mail(existing, False)`` goes to its owner instead, so that the caller can
        answer exactly as for a new account (nobody learns which addresses exist).
        The password is hashed either way, so the time taken tells nothing either.
        Raises :class:`AccountError` (the first problem) or :class:`StorageError`; on
        either, no account exists afterwards.
        """
        problems = self.registration_problems(email, password, accepted_policy)
        if problems:
            raise problems[0]
        normalized = normalize_email(email)
        if normalized is None:  # registration_problems checked it; never trust -O
            raise AccountError(AccountErrorReason.EMAIL_INVALID, "This is not an e-mail address.")
        password_hash = await asyncio.to_thread(hash_password, password)
        user = User(email=normalized, password_hash=password_hash, created_at=self._clock())
        rows = [self._acceptance(user.id, "privacy_policy", True, "registration", context)]
        await self._ensure_open()
        try:
            return await self.storage.create_user(
                user, rows, mail=mail(user, True) if mail is not None else ()
            )
        except DuplicateUserError:
            pass
        existing = await self.storage.user_by_email(normalized)
        if existing is not None and mail is not None:
            for message in mail(existing, False):
                await self.storage.enqueue_mail(message, self._clock())
        return None

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password is right; None otherwise, whatever the reason.

        An unknown or malformed e-mail still runs scrypt (against a dummy hash), so the
        answer and its timing are the same as for a wrong password.
        """
        normalized = normalize_email(email)
        user = None
        if normalized is not None:
            await self._ensure_open()
            user = await self.storage.user_by_email(normalized)
        stored = user.password_hash if user is not None else DUMMY_HASH
        matches = await asyncio.to_thread(verify_password, password, stored)
        if user is None or not matches:
            return None
        if needs_rehash(stored):
            await self._rehash(user, password)
        return user

    async def change_password(self, user_id: str, current: str, new: str) -> PasswordProblem | None:
        """Replace the password if ``current`` is right and ``new`` is acceptable.

        None when changed; the caller then ends the reader's other sessions (whoever
        knew the old password may hold one). Raises :class:`StorageError`.
        """
        await self._ensure_open()
        user = await self.storage.user_by_id(user_id)
        stored = user.password_hash if user is not None else DUMMY_HASH
        matches = await asyncio.to_thread(verify_password, current, stored)
        if user is None or not matches:
            return PasswordProblem("Your current password is not right.", wrong_current=True)
        weakness = password_problem(new, user.email, min_length=self._min_password_length)
        if weakness is not None:
            return PasswordProblem(weakness)
        new_hash = await asyncio.to_thread(hash_password, new)
        await self.storage.update_password_hash(user.id, new_hash)
        return None

    async def set_password(self, user_id: str, new: str) -> PasswordProblem | None:
        """Replace the password without the current one: the caller proved the reader
        controls the address (a reset link). None when changed. Raises StorageError."""
        await self._ensure_open()
        user = await self.storage.user_by_id(user_id)
        if user is None:
            return PasswordProblem("This account does not exist any more.")
        weakness = password_problem(new, user.email, min_length=self._min_password_length)
        if weakness is not None:
            return PasswordProblem(weakness)
        new_hash = await asyncio.to_thread(hash_password, new)
        await self.storage.update_password_hash(user.id, new_hash)
        return None

    async def check_password(self, user_id: str, password: str) -> User | None:
        """The user if ``password`` is theirs (for confirming a change or a deletion)."""
        await self._ensure_open()
        user = await self.storage.user_by_id(user_id)
        stored = user.password_hash if user is not None else DUMMY_HASH
        matches = await asyncio.to_thread(verify_password, password, stored)
        return user if user is not None and matches else None

    async def user(self, user_id: str) -> User | None:
        await self._ensure_open()
        return await self.storage.user_by_id(user_id)

    async def user_by_email(self, email: str) -> User | None:
        """The account of an address as typed (None for an unknown or malformed one)."""
        normalized = normalize_email(email)
        if normalized is None:
            return None
        await self._ensure_open()
        return await self.storage.user_by_email(normalized)

    async def mark_verified(self, user_id: str) -> bool:
        await self._ensure_open()
        return await self.storage.mark_email_verified(user_id, self._clock())

    async def change_email(self, user_id: str, new_email: str) -> bool:
        """False when the new address has an account already. Raises StorageError."""
        await self._ensure_open()
        try:
            await self.storage.change_email(user_id, new_email, self._clock())
        except DuplicateUserError:
            return False
        return True

    async def send(self, mail: Sequence[OutgoingMail]) -> None:
        """Queue mail that no other write causes (a link asked for). Raises StorageError."""
        await self._ensure_open()
        for message in mail:
            await self.storage.enqueue_mail(message, self._clock())

    def verification_needed(self, user: User, settings: AccountsSettings) -> bool:
        """Whether ``user`` is kept at the wall until they verify their address."""
        if user.email_verified_at is not None or settings.verification == "off":
            return False
        if settings.verification == "required":
            return True
        grace = timedelta(hours=settings.verification_grace_hours)
        return self._clock() >= user.created_at + grace

    async def record_acceptance(
        self,
        user_id: str,
        method: AcceptanceMethod,
        context: RequestContext,
    ) -> AcceptanceRecord:
        """Record that ``user_id`` accepted the current privacy policy.

        The public API for sites with their own accounts (``method="external"``).
        Raises :class:`StorageError` when it cannot be written: then treat the policy
        as not accepted.
        """
        if method not in ("registration", "re-acceptance", "external"):
            raise ValueError(f"unknown acceptance method {method!r}")
        row = self._acceptance(user_id, "privacy_policy", True, method, context)
        await self._ensure_open()
        return await self.storage.record_acceptance(row)

    async def needs_policy_acceptance(self, user_id: str) -> bool:
        """True unless the reader's latest privacy-policy row accepts today's version.

        No row at all also means True: an account is never usable on an acceptance we
        cannot show.
        """
        await self._ensure_open()
        latest = await self.storage.latest_acceptance(user_id, "privacy_policy")
        return latest is None or not latest.granted or latest.policy_version != self.policy.version

    # -- internals ------------------------------------------------------------------
    def _acceptance(
        self, user_id: str, purpose: str, granted: bool, method: str, context: RequestContext
    ) -> AcceptanceRecord:
        return AcceptanceRecord(
            user_id=user_id,
            purpose=purpose,
            policy_version=self.policy.version,
            policy_sha256=self.policy.text_sha256,
            granted=granted,
            method=method,
            ip_hmac=context.ip_hmac,
            user_agent=context.user_agent,
            recorded_at=self._clock(),
        )

    async def _rehash(self, user: User, password: str) -> None:
        new_hash = await asyncio.to_thread(hash_password, password)
        try:
            await self.storage.update_password_hash(user.id, new_hash)
        except StorageError as exc:
            # The old hash still works; the next sign-in tries again.
            logger.warning("consentgate: could not store a rehashed password: %s", exc)

    async def _ensure_open(self) -> None:
        if self._opener is not None:
            # Every time: the owner of the storage may close and reopen it.
            await self._opener()
            return
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.storage.open()
                self._opened = True
