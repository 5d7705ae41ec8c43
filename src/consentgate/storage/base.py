"""The storage interface every backend implements, and the consent ledger row."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

__all__ = [
    "CONSENT_ACTIONS",
    "CONSENT_METHODS",
    "ConsentRecord",
    "Storage",
    "StorageError",
    "storage_from_url",
]

CONSENT_ACTIONS = frozenset({"grant", "reject", "update", "withdraw", "gpc"})
CONSENT_METHODS = frozenset({"form", "js", "api", "gpc"})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class StorageError(Exception):
    """Any failure of the storage backend; the web layer answers 503 on it."""


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
        if self.recorded_at.utcoffset() is None:
            raise ValueError("recorded_at must be timezone-aware")
        object.__setattr__(self, "recorded_at", self.recorded_at.astimezone(UTC))


class Storage(Protocol):
    """Async storage shared by the SQLite, PostgreSQL and Redis backends.

    Every method raises :class:`StorageError` when the backend fails, so the caller can
    answer 503 without knowing which backend runs.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema. Calling it twice is harmless."""

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

    async def ping(self) -> None:
        """Return if the backend answers; raise :class:`StorageError` otherwise."""


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
        raise ValueError(
            "PostgreSQL support arrives with the postgres extra "
            "(pip install 'consentgate[postgres]') in a coming release; "
            "use sqlite:///path/to/consentgate.db until then"
        )
    raise ValueError(f"unsupported storage URL scheme {scheme!r}; use sqlite:///path.db")


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
    if "?" in path:
        raise ValueError("sqlite URLs take no query parameters")
    return SQLiteStorage(path)
