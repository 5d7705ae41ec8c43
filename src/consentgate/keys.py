"""The key ring: every value we sign (cookies, CSRF tokens) is signed through one place.

``Keys(config.secret_keys)`` holds the configured keys, newest first. Each signed value
has a :class:`Purpose`, which is its itsdangerous salt: a value signed for one purpose
never verifies as another, even under the same key. Every serializer signs with HMAC-
SHA-256 and the newest key, and verifies with every key of the ring, so a rotation
(a new key first, the old ones after it) loses no cookie.

The salts are the wire format of cookies already in readers' browsers: renaming one
logs every reader out or asks them again. A new purpose gets a new salt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from itsdangerous import Signer, TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import want_bytes

__all__ = ["Keys", "Purpose"]


class Purpose(StrEnum):
    """What a signed value is for; the value is its salt (never to be renamed)."""

    CONSENT = "consentgate.consent.v1"  # cg_consent, timestamped
    CSRF = "consentgate.csrf.v1"  # cg_csrf: the browser id
    CSRF_TOKEN = "consentgate.csrf-token.v2"  # noqa: S105 (a salt: the form token)
    SESSION = "consentgate.session.v1"  # cg_session, timestamped
    METER = "consentgate.meter.v1"  # cg_meter, timestamped
    ADMIN = "consentgate.admin.v1"  # cg_admin, timestamped
    # Links in mails, one salt per purpose: a sign-in link is never a reset link.
    LINK_VERIFY_EMAIL = "consentgate.link.verify-email.v1"
    LINK_SIGN_IN = "consentgate.link.sign-in.v1"
    LINK_RESET_PASSWORD = "consentgate.link.reset-password.v1"  # noqa: S105 (a salt)
    LINK_CHANGE_EMAIL = "consentgate.link.change-email.v1"
    LINK_NEWSLETTER_CONFIRM = "consentgate.link.newsletter-confirm.v1"
    LINK_UNSUBSCRIBE = "consentgate.link.unsubscribe.v1"


def _signer_kwargs() -> dict[str, Any]:
    # A dict per serializer: itsdangerous keeps the one it is given, unshared is safer.
    return {"digest_method": hashlib.sha256}


class _DerivesOnce(Signer):
    """itsdangerous derives the HMAC key from (salt, secret key) on every signature it
    makes or checks; the result depends on nothing else, so it is kept. The signatures
    are the same bytes as before (the derivation itself is itsdangerous')."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived: dict[bytes, bytes] = self.__dict__.setdefault("_derived", {})
        key = derived.get(raw)
        if key is None:
            key = derived[raw] = super().derive_key(raw)
        return key


class _TimestampDerivesOnce(_DerivesOnce, TimestampSigner):
    pass


class _SignerPerSalt:
    """Serializers build a new signer for every dumps/loads; one per salt does (signers
    hold nothing but their configuration)."""

    salt: bytes | None
    secret_keys: list[bytes]
    signer: type[Signer]
    signer_kwargs: dict[str, Any]

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        key = self.salt if salt is None else want_bytes(salt)
        signers: dict[bytes | None, Signer] = self.__dict__.setdefault("_signers", {})
        signer = signers.get(key)
        if signer is None:
            signer = signers[key] = self.signer(self.secret_keys, salt=key, **self.signer_kwargs)
        return signer


class _Serializer(_SignerPerSalt, URLSafeSerializer):
    pass


class _TimedSerializer(_SignerPerSalt, URLSafeTimedSerializer):
    pass


class Keys:
    """The configured secret keys, newest first; built once per middleware."""

    __slots__ = ("_oldest_first", "_secret_keys")

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if isinstance(secret_keys, str):
            raise TypeError("secret_keys is a list of keys, not one key")
        if not secret_keys:
            raise ValueError("signing needs at least one secret key")
        self._secret_keys = tuple(secret_keys)
        # itsdangerous signs with the *last* key of its list and verifies with all.
        self._oldest_first = list(reversed(self._secret_keys))

    @classmethod
    def of(cls, keys: Keys | Sequence[str]) -> Keys:
        """The ring itself, or a ring of these keys (newest first)."""
        return keys if isinstance(keys, Keys) else cls(keys)

    @property
    def newest(self) -> str:
        """The key that signs; also the key of the IP HMACs."""
        return self._secret_keys[0]

    def serializer(self, purpose: Purpose) -> URLSafeSerializer:
        """Signed, not timestamped (CSRF values: they live as long as their cookie)."""
        return _Serializer(
            self._oldest_first,
            salt=purpose.value,
            signer=_DerivesOnce,
            signer_kwargs=_signer_kwargs(),
        )

    def timed_serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        """Signed and timestamped: ``loads(..., max_age=)`` or ``return_timestamp=True``."""
        return _TimedSerializer(
            self._oldest_first,
            salt=purpose.value,
            signer=_TimestampDerivesOnce,
            signer_kwargs=_signer_kwargs(),
        )

    def __repr__(self) -> str:
        return f"Keys(<{len(self._secret_keys)} secret keys>)"
