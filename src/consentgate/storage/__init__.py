"""Storage of the consent ledger, accounts, acceptances and the meter: one async
interface, several backends.

SQLite is always here; ``consentgate.storage.postgres`` (``PostgresStorage``) and
``consentgate.storage.redis`` (``RedisMeterStore``, ``RedisRateLimiter``) need their
extras and are imported only by whoever uses them.
"""

from consentgate.storage.base import (
    ACCEPTANCE_METHODS,
    ACCEPTANCE_PURPOSES,
    CONSENT_ACTIONS,
    CONSENT_METHODS,
    SESSION_KINDS,
    AcceptanceRecord,
    ConsentRecord,
    DuplicateUserError,
    SchemaTooNewError,
    SchemaTooOldError,
    SessionRecord,
    Storage,
    StorageError,
    User,
    email_key,
)
from consentgate.storage.ports import (
    Acceptances,
    Accounts,
    ConsentLog,
    Counters,
    Erasure,
    Lifecycle,
    MeterReads,
    Sessions,
)
from consentgate.storage.sqlite import SQLiteStorage
from consentgate.storage.urls import open_storage, storage_from_url

__all__ = [
    "ACCEPTANCE_METHODS",
    "ACCEPTANCE_PURPOSES",
    "CONSENT_ACTIONS",
    "CONSENT_METHODS",
    "SESSION_KINDS",
    "AcceptanceRecord",
    "Acceptances",
    "Accounts",
    "ConsentLog",
    "ConsentRecord",
    "Counters",
    "DuplicateUserError",
    "Erasure",
    "Lifecycle",
    "MeterReads",
    "SQLiteStorage",
    "SchemaTooNewError",
    "SchemaTooOldError",
    "SessionRecord",
    "Sessions",
    "Storage",
    "StorageError",
    "User",
    "email_key",
    "open_storage",
    "storage_from_url",
]
