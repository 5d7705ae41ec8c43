"""Consent ledger storage: one async interface, several backends."""

from consentgate.storage.base import (
    CONSENT_ACTIONS,
    CONSENT_METHODS,
    ConsentRecord,
    Storage,
    StorageError,
    storage_from_url,
)
from consentgate.storage.sqlite import SQLiteStorage

__all__ = [
    "CONSENT_ACTIONS",
    "CONSENT_METHODS",
    "ConsentRecord",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "storage_from_url",
]
