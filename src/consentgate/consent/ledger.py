"""Turning decisions into ledger rows: the proof of consent a regulator asks for.

One append-only row per decision: who (consent id, user id), what (granted and denied
categories), when (UTC), under which policy version and banner text (its SHA-256),
how (form, js, api, gpc), in which language and region mode. The IP address is kept
only as an HMAC, which proves "same address" without revealing it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol

from starlette.datastructures import Headers

from consentgate.storage import ConsentLog, ConsentRecord, Counters, Lifecycle
from consentgate.visitor import ip_hmac

if TYPE_CHECKING:
    from starlette.types import Scope

    from consentgate.config import Config
    from consentgate.consent.state import Decision
    from consentgate.visitor import Visitor

_MAX_USER_AGENT = 512
# Daily counter of page views that carried Sec-GPC: 1 but no consent cookie. They are
# counted, not written as rows: anonymous traffic must not grow the append-only ledger
# without bound (each row is a reader's proof and can never be deleted).
GPC_WITHOUT_COOKIE = "gpc_without_cookie"


class LedgerStore(Lifecycle, ConsentLog, Counters, Protocol):
    """What the ledger uses of the storage: the consent log and the daily counters."""


class Ledger:
    """The storage behind the ledger, opened on first use (after the server forked)."""

    def __init__(self, storage: LedgerStore, config: Config) -> None:
        self.storage = storage
        self._config = config
        self._opened = False
        # Created on first use, inside the server's event loop.
        self._open_lock: asyncio.Lock | None = None

    async def ensure_open(self) -> None:
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.storage.open()
                self._opened = True

    async def record(
        self,
        decision: Decision,
        visitor: Visitor,
        scope: Scope,
        *,
        action: str,
        method: str,
        granted: frozenset[str],
        banner_hash: str,
    ) -> ConsentRecord:
        """Write one row; raises StorageError if it cannot be written (then: no cookie)."""
        await self.ensure_open()
        headers = Headers(scope=scope)
        category_ids = self._config.category_ids
        record = ConsentRecord(
            consent_id=decision.consent_id,
            user_id=visitor.user_id,
            action=action,
            granted=tuple(c for c in category_ids if c in granted),
            denied=tuple(c for c in category_ids if c not in granted),
            policy_version=self._config.policy.version,
            banner_text_sha256=banner_hash,
            language=visitor.language,
            region_mode=visitor.mode,
            method=method,
            ip_hmac=ip_hmac(self._config.secret_keys[0], visitor.client_ip),
            user_agent=headers.get("user-agent", "")[:_MAX_USER_AGENT] or None,
            recorded_at=datetime.now(UTC),
        )
        return await self.storage.record_consent(record)

    async def history(self, consent_id: str) -> list[ConsentRecord]:
        await self.ensure_open()
        return await self.storage.consent_history(consent_id)

    async def add_counts(self, day: date, counts: dict[str, int]) -> None:
        """Daily counters (impressions, registrations) for the operator's figures."""
        await self.ensure_open()
        await self.storage.add_counts(day, counts)

    async def close(self) -> None:
        if self._opened:
            await self.storage.close()
            self._opened = False
