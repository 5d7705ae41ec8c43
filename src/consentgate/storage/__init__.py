"""Storage of the consent ledger, accounts, acceptances and the meter: one async
interface, several backends."""

from consentgate.storage.base import (
    ACCEPTANCE_METHODS,
    ACCEPTANCE_PURPOSES,
    CONSENT_ACTIONS,
    CONSENT_METHODS,
    AcceptanceRecord,
    ConsentRecord,
    DuplicateUserError,
    Storage,
    StorageError,
    User,
    email_key,
    storage_from_url,
)
from consentgate.storage.sqlite import SQLiteStorage

__all__ = [
    "ACCEPTANCE_METHODS",
    "ACCEPTANCE_PURPOSES",
    "CONSENT_ACTIONS",
    "CONSENT_METHODS",
    "AcceptanceRecord",
    "ConsentRecord",
    "DuplicateUserError",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "User",
    "email_key",
    "storage_from_url",
]
