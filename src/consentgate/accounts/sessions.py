"""The signed session cookie (``cg_session``) of readers signed in with our accounts.

It holds only ``{"u": user_id, "s": nonce}``, signed and timestamped (HMAC-SHA-256,
salt ``consentgate.session.v1``). The nonce makes every sign-in's cookie distinct and
lets a later server-side session list revoke one sign-in without touching the others.
Keys rotate like the consent cookie's: newest signs, every configured key verifies.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

__all__ = ["SESSION_SALT", "Session", "SessionCodec"]

SESSION_SALT = "consentgate.session.v1"
_DAY = 86_400
# Cookies are at most 4 KiB; a longer value is not ours and is not worth verifying.
_MAX_COOKIE_LENGTH = 1024
_MAX_ID_LENGTH = 128


def _new_nonce() -> str:
    return secrets.token_urlsafe(16)


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

    def __init__(self, secret_keys: tuple[str, ...], lifetime_days: int) -> None:
        if not secret_keys:
            raise ValueError("SessionCodec needs at least one secret key")
        if lifetime_days < 1:
            raise ValueError("lifetime_days must be at least 1")
        # itsdangerous signs with the *last* key of its list; ours are newest first.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secret_keys)),
            salt=SESSION_SALT,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self.lifetime_seconds = lifetime_days * _DAY

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
