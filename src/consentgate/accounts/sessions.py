"""Sessions of readers signed in with our accounts (``cg_session``), and of the
operator on the dashboard (``cg_admin``): a signed cookie naming a stored session.

The cookie holds ``{"u": subject, "s": session id}``, signed and timestamped
(HMAC-SHA-256, a salt per purpose). The session id is 256 random bits; the store keeps
only its SHA-256 (:class:`~consentgate.storage.SessionRecord`), so a copy of the
database signs nobody in. A session is valid while its row exists and has not expired:
logout deletes the row (a copied cookie stops working), "sign out everywhere" and a
password change delete the others, erasing the account deletes them all.
Keys rotate like the consent cookie's: newest signs, every configured key verifies.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData

from consentgate.keys import Keys, Purpose
from consentgate.storage import SessionRecord, Sessions, StorageError

__all__ = ["SESSION_SALT", "Session", "SessionCodec", "SessionStore"]

logger = logging.getLogger("consentgate")

SESSION_SALT = Purpose.SESSION.value
_DAY = 86_400
# Cookies are at most 4 KiB; a longer value is not ours and is not worth verifying.
_MAX_COOKIE_LENGTH = 1024
_MAX_ID_LENGTH = 128


def _new_nonce() -> str:
    return secrets.token_urlsafe(32)  # 256 bits: the session id


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    nonce: str = field(default_factory=_new_nonce)

    def to_payload(self) -> dict[str, str]:
        return {"u": self.user_id, "s": self.nonce}

    @classmethod
    def from_payload(cls, payload: Any) -> Session | None:
        """Strict: anything but the exact shape we write is no session."""
        if not isinstance(payload, Mapping) or set(payload) != {"u", "s"}:
            return None
        user_id, nonce = payload["u"], payload["s"]
        if not (isinstance(user_id, str) and 0 < len(user_id) <= _MAX_ID_LENGTH):
            return None
        if not (isinstance(nonce, str) and 0 < len(nonce) <= _MAX_ID_LENGTH):
            return None
        return cls(user_id, nonce)


class SessionCodec:
    """Signs and reads ``cg_session``; bad, expired, tampered or foreign → None."""

    def __init__(
        self,
        keys: Keys | Sequence[str],
        lifetime_days: int = 30,
        *,
        purpose: Purpose = Purpose.SESSION,
        lifetime_seconds: int | None = None,
    ) -> None:
        if lifetime_days < 1:
            raise ValueError("lifetime_days must be at least 1")
        self._serializer = Keys.of(keys).timed_serializer(purpose)
        self.lifetime_seconds = lifetime_seconds or lifetime_days * _DAY

    def new_session(self, user_id: str) -> Session:
        return Session(user_id)

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps(session.to_payload())

    def loads(self, value: str | None) -> Session | None:
        if not value or len(value) > _MAX_COOKIE_LENGTH:
            return None
        try:
            payload = self._serializer.loads(value, max_age=self.lifetime_seconds)
        except (BadData, ValueError, TypeError):
            return None
        return Session.from_payload(payload)


def session_hash(session: Session) -> str:
    """What the store keeps of a session id: its SHA-256 (the id itself is a secret)."""
    return hashlib.sha256(session.nonce.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


PRUNE_EVERY_SECONDS = 3600
CACHE_SECONDS = 5.0
MAX_CACHE = 10_000


class SessionStore:
    """Server-side sessions of one ``kind`` ("reader" or "admin") over any storage with sessions.

    Every request with a session cookie costs one primary-key lookup, except that a
    found session is remembered for ``cache_seconds`` per process (so a logout on one
    worker ends the session on the others within that time; on its own worker at once).
    A storage failure on a lookup reads as signed out, never as an error page.
    """

    def __init__(
        self,
        storage: Sessions,
        codec: SessionCodec,
        *,
        kind: str = "reader",
        opener: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.storage = storage
        self.codec = codec
        self.kind = kind
        self._opener = opener
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[str, datetime, float]] = OrderedDict()
        self._last_prune = float("-inf")  # the first session started prunes

    @property
    def lifetime_seconds(self) -> int:
        return self.codec.lifetime_seconds

    async def start(self, subject: str) -> str:
        """A new session for ``subject``; returns the cookie value. Raises StorageError."""
        session = self.codec.new_session(subject)
        now = self._clock()
        record = SessionRecord(
            id_hash=session_hash(session),
            kind=self.kind,
            subject=subject,
            created_at=now,
            expires_at=now + timedelta(seconds=self.lifetime_seconds),
        )
        await self._open()
        await self.storage.create_session(record)
        await self._prune(now)
        return self.codec.dumps(session)

    async def subject(self, value: str | None) -> str | None:
        """Whose session the cookie names, or None (bad, ended, expired, storage down)."""
        session = self.codec.loads(value)
        if session is None:
            return None
        id_hash = session_hash(session)
        now = self._clock()
        cached = self._cache.get(id_hash)
        if cached is not None and time.monotonic() - cached[2] < self._cache_seconds:
            subject, expires_at, _ = cached
            return subject if expires_at > now else None
        try:
            await self._open()
            record = await self.storage.session_by_hash(id_hash)
        except StorageError as exc:
            logger.warning("consentgate: session lookup failed, reading as signed out: %s", exc)
            return None
        if (
            record is None
            or record.kind != self.kind
            or record.subject != session.user_id
            or record.expires_at <= now
        ):
            self._cache.pop(id_hash, None)
            return None
        self._remember(id_hash, record)
        return record.subject

    async def end(self, value: str | None) -> bool:
        """End the session the cookie names; False if it named none. Raises StorageError."""
        session = self.codec.loads(value)
        if session is None:
            return False
        id_hash = session_hash(session)
        self._cache.pop(id_hash, None)
        await self._open()
        return await self.storage.delete_session(id_hash)

    async def end_all(self, subject: str, *, keep: str | None = None) -> int:
        """End every session of ``subject`` but the one the cookie ``keep`` names."""
        kept = self.codec.loads(keep)
        keep_hash = session_hash(kept) if kept is not None else None
        for id_hash in [h for h, entry in self._cache.items() if entry[0] == subject]:
            if id_hash != keep_hash:
                del self._cache[id_hash]
        await self._open()
        return await self.storage.delete_sessions(self.kind, subject, keep=keep_hash)

    def forget_cached(self) -> None:
        """Drop this process's cache: the next lookup of every session asks the store."""
        self._cache.clear()

    def _remember(self, id_hash: str, record: SessionRecord) -> None:
        if self._cache_seconds <= 0:
            return
        self._cache[id_hash] = (record.subject, record.expires_at, time.monotonic())
        self._cache.move_to_end(id_hash)
        while len(self._cache) > MAX_CACHE:
            self._cache.popitem(last=False)

    async def _prune(self, now: datetime) -> None:
        # At most hourly, when a session starts: expired rows go without a cron job.
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        try:
            await self.storage.prune_sessions(now)
        except StorageError as exc:
            logger.warning("consentgate: could not prune expired sessions: %s", exc)

    async def _open(self) -> None:
        if self._opener is not None:
            await self._opener()
