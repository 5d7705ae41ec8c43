"""Links in mails: signed, bound to one purpose, expiring, single-use, and dead once the
password or the address changes.

A link carries its own claim (who, what for, until when), signed with the purpose's
salt, so nothing needs storing when a mail goes out; what storage keeps is the hash of
each *used* link's random id (:class:`~consentgate.storage.ports.LinkClaims`), which is
what makes a second click (or a second worker) fail. The claim also holds a fingerprint
of the account's password hash and address as they were when the link was made: a
password reset, a password change or a new address kills every older link, with no
list of links to revoke.

Redeeming is only for POSTs: mail scanners fetch the links in a mail, so a GET shows a
page (:meth:`Links.peek`) and its button redeems.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from itsdangerous import BadData

from consentgate.keys import Keys, Purpose
from consentgate.storage.ports import LinkClaims
from consentgate.storage.records import User, email_key

__all__ = ["DEFAULT_LINK_LIFETIME", "FingerprintOf", "LinkClaim", "LinkPurpose", "Links"]

#: Long enough to find the mail and click, short enough that a mailbox read later (a
#: shared computer, a forwarded message) finds it dead.
DEFAULT_LINK_LIFETIME = timedelta(minutes=30)

#: Looks up the fingerprint a link of ``user_id`` must carry now (None: no such user).
FingerprintOf = Callable[[str], Awaitable[str | None]]


class LinkPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    SIGN_IN = "sign_in"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
    CHANGE_EMAIL = "change_email"
    NEWSLETTER_CONFIRM = "newsletter_confirm"
    UNSUBSCRIBE = "unsubscribe"


_SALTS = {
    LinkPurpose.VERIFY_EMAIL: Purpose.LINK_VERIFY_EMAIL,
    LinkPurpose.SIGN_IN: Purpose.LINK_SIGN_IN,
    LinkPurpose.RESET_PASSWORD: Purpose.LINK_RESET_PASSWORD,
    LinkPurpose.CHANGE_EMAIL: Purpose.LINK_CHANGE_EMAIL,
    LinkPurpose.NEWSLETTER_CONFIRM: Purpose.LINK_NEWSLETTER_CONFIRM,
    LinkPurpose.UNSUBSCRIBE: Purpose.LINK_UNSUBSCRIBE,
}
# The longest token we try to read: a real one is ~200 characters; more is not ours.
_MAX_TOKEN_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a valid link says."""

    purpose: LinkPurpose
    user_id: str
    #: The SHA-256 (hex) of the link's random id: what storage marks as used.
    link_id: str
    #: Whatever the purpose needs besides the user (the new address of a change, the
    #: list of a newsletter link).
    data: str
    issued_at: datetime
    expires_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Links:
    """Makes and checks the links of one site (one key ring, one claims store)."""

    def __init__(
        self,
        keys: Keys | Sequence[str],
        claims: LinkClaims,
        *,
        lifetime: timedelta = DEFAULT_LINK_LIFETIME,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("a link's lifetime must be positive")
        ring = Keys.of(keys)
        self._serializers = {purpose: ring.serializer(salt) for purpose, salt in _SALTS.items()}
        self._claims = claims
        self.lifetime = lifetime
        self._clock = clock

    @staticmethod
    def fingerprint(user: User) -> str:
        """What binds a link to the account as it is now: its password hash and address.

        Not a secret (the link is signed); a digest so the link reveals neither.
        """
        material = f"{user.password_hash}\0{email_key(user.email)}".encode()
        return hashlib.sha256(material).hexdigest()[:32]

    def issue(
        self,
        purpose: LinkPurpose,
        user_id: str,
        *,
        fingerprint: str,
        data: str = "",
        lifetime: timedelta | None = None,
    ) -> str:
        """A URL-safe token for a link of ``purpose`` to ``user_id``."""
        if not user_id:
            raise ValueError("a link needs a user id")
        now = self._clock()
        expires = now + (lifetime if lifetime is not None else self.lifetime)
        payload = {
            "u": user_id,
            "n": secrets.token_hex(16),
            "f": fingerprint,
            "d": data,
            "i": int(now.timestamp()),
            "e": int(expires.timestamp()),
        }
        token = self._serializers[purpose].dumps(payload)
        return token if isinstance(token, str) else token.decode()

    async def peek(
        self, token: str, purpose: LinkPurpose, *, fingerprint_of: FingerprintOf
    ) -> LinkClaim | None:
        """The claim of a valid, unexpired, unused link of ``purpose`` whose account is
        as it was when the link was made; None for anything else. Claims nothing (for
        GET pages, which a mail scanner may fetch); only :meth:`redeem` uses a link up,
        atomically, so a link used between the two is still refused there."""
        found = await self._valid(token, purpose, fingerprint_of)
        if found is None or await self._claims.link_claimed(found.link_id):
            return None
        return found

    async def _valid(
        self, token: str, purpose: LinkPurpose, fingerprint_of: FingerprintOf
    ) -> LinkClaim | None:
        claim = self._read(token, purpose)
        if claim is None:
            return None
        expected = await fingerprint_of(claim[0].user_id)
        if expected is None or not secrets.compare_digest(expected, claim[1]):
            return None
        return claim[0]

    async def redeem(
        self,
        token: str,
        purpose: LinkPurpose,
        *,
        fingerprint_of: FingerprintOf,
        single_use: bool = True,
    ) -> LinkClaim | None:
        """As :meth:`peek`, then mark the link used: a second redeem (anywhere) is None.

        ``single_use=False`` is for unsubscribe links, which a mail client may POST
        again (RFC 8058) and which must go on working.
        """
        claim = await self._valid(token, purpose, fingerprint_of)
        if claim is None:
            return None
        if single_use and not await self._claims.claim_link(claim.link_id, claim.expires_at):
            return None
        return claim

    def _read(self, token: str, purpose: LinkPurpose) -> tuple[LinkClaim, str] | None:
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        try:
            payload: Any = self._serializers[purpose].loads(token)
        except BadData:
            return None
        try:
            user_id, nonce = str(payload["u"]), str(payload["n"])
            fingerprint, data = str(payload["f"]), str(payload["d"])
            issued = datetime.fromtimestamp(int(payload["i"]), UTC)
            expires = datetime.fromtimestamp(int(payload["e"]), UTC)
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            return None
        if not user_id or not nonce or self._clock() >= expires:
            return None
        link_id = hashlib.sha256(nonce.encode()).hexdigest()
        return LinkClaim(purpose, user_id, link_id, data, issued, expires), fingerprint
