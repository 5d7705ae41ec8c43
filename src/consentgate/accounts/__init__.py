"""Accounts for sites without their own: users, passwords, sessions, acceptances.

Sites with their own accounts use only :meth:`Accounts.record_acceptance` (and
:meth:`Accounts.needs_policy_acceptance`) to keep proof of privacy-policy acceptance.
"""

from consentgate.accounts.passwords import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from consentgate.accounts.ratelimit import (
    Backoff,
    BackoffPolicy,
    MemoryBackoff,
    MemoryRateLimiter,
    RateLimiter,
)
from consentgate.accounts.service import (
    AcceptanceMethod,
    AccountError,
    AccountErrorReason,
    Accounts,
    RequestContext,
    normalize_email,
)
from consentgate.accounts.sessions import Session, SessionCodec, SessionStore

__all__ = [
    "DUMMY_HASH",
    "AcceptanceMethod",
    "AccountError",
    "AccountErrorReason",
    "Accounts",
    "Backoff",
    "BackoffPolicy",
    "MemoryBackoff",
    "MemoryRateLimiter",
    "RateLimiter",
    "RequestContext",
    "Session",
    "SessionCodec",
    "SessionStore",
    "hash_password",
    "needs_rehash",
    "normalize_email",
    "password_problem",
    "verify_password",
]
