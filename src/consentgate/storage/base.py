"""The errors of every storage backend and the rules written once for all of them
(counter names, the meter's step). The rows live in :mod:`consentgate.storage.records`
and the interface in :mod:`consentgate.storage.ports`; both are re-exported here."""

from __future__ import annotations

import re
from collections.abc import Mapping

from consentgate.storage.ports import Storage
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
