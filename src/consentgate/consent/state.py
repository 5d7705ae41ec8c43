"""The reader's consent: what the signed cookie holds and what it means right now.

Two layers, kept apart on purpose:

* :class:`Decision` is what the reader *chose* (or that a GPC signal was recorded),
  exactly as stored in the signed ``cg_consent`` cookie;
* :class:`Consent` is what is *in force* for this request: the decision, read against
  today's policy version and categories, the region's regime and the ``Sec-GPC``
  header. The app sees it as ``request.state.consent``.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from itsdangerous import BadData, URLSafeTimedSerializer

from consentgate.consent.settings import RegionMode
from consentgate.keys import Keys, Purpose

if TYPE_CHECKING:
    from consentgate.config import Config

CONSENT_COOKIE_SALT = Purpose.CONSENT.value
_DAY = 86_400


def new_consent_id() -> str:
    """128 random bits, hex: enough that ids never collide nor can be guessed."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the consent cookie records.

    ``decided_at`` is None when the reader has made no explicit choice yet and the
    cookie only remembers that a Global Privacy Control signal was recorded
    (``gpc_at``). Times are Unix seconds (UTC).
    """

    consent_id: str
    granted: frozenset[str]
    known: frozenset[str]
    policy_version: str
    decided_at: int | None
    gpc_at: int | None = None

    @property
    def explicit(self) -> bool:
        return self.decided_at is not None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "i": self.consent_id,
            "g": sorted(self.granted),
            "k": sorted(self.known),
            "v": self.policy_version,
        }
        if self.decided_at is not None:
            payload["t"] = self.decided_at
        if self.gpc_at is not None:
            payload["p"] = self.gpc_at
        return payload

    @classmethod
    def from_payload(cls, payload: Any) -> Decision | None:
        """Strict: anything but the exact shape we write is treated as no cookie."""
        if not isinstance(payload, Mapping):
            return None
        consent_id = payload.get("i")
        granted = payload.get("g")
        known = payload.get("k")
        version = payload.get("v")
        decided_at = payload.get("t")
        gpc_at = payload.get("p")
        if not (isinstance(consent_id, str) and len(consent_id) == 32):
            return None
        if not (isinstance(granted, list) and isinstance(known, list)):
            return None
        if not (_is_str_list(granted) and _is_str_list(known) and isinstance(version, str)):
            return None
        if not (_is_time(decided_at) and _is_time(gpc_at)):
            return None
        return cls(consent_id, frozenset(granted), frozenset(known), version, decided_at, gpc_at)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) for v in value)


def _is_time(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def consent_serializer(keys: Keys | Sequence[str]) -> URLSafeTimedSerializer:
    """The consent cookie's serializer: timestamped, verifies with every key, signs with
    the newest. ``keys`` is the ring, or secret keys newest first (the config's order)."""
    return Keys.of(keys).timed_serializer(Purpose.CONSENT)


_FOREVER = float("inf")


class ConsentCookieCodec:
    """Signs and reads the consent cookie; keys rotate without losing decisions."""

    def __init__(self, config: Config, keys: Keys | None = None) -> None:
        self._serializer = consent_serializer(keys or config.secret_keys)
        self._grant_lifetime = config.consent_lifetime_days * _DAY
        self._reject_lifetime = config.reject_lifetime_days * _DAY
        self._optional = config.optional_category_ids
        # A reader sends the same cookie on every request for months: verify each
        # distinct value once per process. The key is the whole signed value, so a
        # cached answer is exactly what verifying again would give; age is still
        # checked on every request.
        self._verified = functools.lru_cache(maxsize=8192)(self._verify)

    def dumps(self, decision: Decision) -> str:
        return self._serializer.dumps(decision.to_payload())

    def loads(self, value: str | None, *, now: float | None = None) -> Decision | None:
        """The decision, or None for a missing, tampered, foreign-key or expired cookie."""
        if not value or len(value) > 4096:
            return None
        verified = self._verified(value)
        if verified is None:
            return None
        decision, signed_at = verified
        age = (time.time() if now is None else now) - signed_at
        return None if age > self.lifetime_seconds(decision) else decision

    def loads_until(self, value: str | None) -> tuple[Decision | None, float]:
        """As :meth:`loads` now, and until when (Unix seconds) that answer holds: a valid
        cookie until it expires, anything else for good (a tampered or expired cookie
        never becomes valid)."""
        if not value or len(value) > 4096:
            return None, _FOREVER
        verified = self._verified(value)
        if verified is None:
            return None, _FOREVER
        decision, signed_at = verified
        until = signed_at + self.lifetime_seconds(decision)
        return (None, _FOREVER) if time.time() > until else (decision, until)

    def _verify(self, value: str) -> tuple[Decision, float] | None:
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
        except (BadData, ValueError, TypeError):
            return None
        decision = Decision.from_payload(payload)
        return None if decision is None else (decision, signed_at.timestamp())

    def lifetime_seconds(self, decision: Decision) -> int:
        """Grants and refusals may live for different times (both capped at 395 days)."""
        grants_something = bool(decision.granted & self._optional)
        return self._grant_lifetime if grants_something else self._reject_lifetime


@dataclass(frozen=True, slots=True)
class Consent:
    """The consent in force for one request; the app asks ``allows("analytics")``."""

    granted: frozenset[str]
    decided: bool
    mode: RegionMode
    gpc: bool
    decision: Decision | None = None
    categories: tuple[str, ...] = field(default=())

    @property
    def consent_id(self) -> str | None:
        return self.decision.consent_id if self.decision else None

    @property
    def denied(self) -> frozenset[str]:
        return frozenset(self.categories) - self.granted

    def allows(self, category: str) -> bool:
        return category in self.granted

    @property
    def needs_banner(self) -> bool:
        return not self.decided


def consent_in_force(
    config: Config, decision: Decision | None, *, mode: RegionMode, gpc_signal: bool
) -> Consent:
    """Read a decision against today's policy, categories, region and GPC signal.

    * A decision under an older policy version no longer counts: the reader is asked
      again and, meanwhile, treated as undecided.
    * A category added since the decision is asked about again; what the reader
      granted for the older categories still holds.
    * ``Sec-GPC: 1`` denies the categories it applies to, unless the reader chose
      explicitly *after* the signal was first recorded (a later explicit choice wins).
    """
    all_ids = config.category_ids
    required = config.required_category_ids
    optional = frozenset(all_ids) - required
    current = (
        decision is not None
        and decision.explicit
        and decision.policy_version == config.policy.version
    )
    if current and decision is not None:
        granted = (decision.granted & optional) | required
        decided = optional <= decision.known
    elif mode == "opt-in":
        granted, decided = required, False
    else:  # opt-out and notice: on until the reader says no
        granted, decided = frozenset(all_ids), False
    if gpc_signal and config.gpc_enabled and not _explicit_choice_after_gpc(decision, current):
        granted = granted - (config.gpc_category_ids - required)
    return Consent(
        granted=granted,
        decided=decided,
        mode=mode,
        gpc=gpc_signal,
        decision=decision,
        categories=all_ids,
    )


def _explicit_choice_after_gpc(decision: Decision | None, current: bool) -> bool:
    if decision is None or not current or decision.decided_at is None:
        return False
    return decision.gpc_at is None or decision.decided_at >= decision.gpc_at


def decide(
    config: Config,
    previous: Decision | None,
    granted: frozenset[str],
    *,
    gpc_signal: bool,
    now: int | None = None,
) -> Decision:
    """A new explicit decision, keeping the consent id so the ledger shows its history."""
    timestamp = int(time.time()) if now is None else now
    return Decision(
        consent_id=previous.consent_id if previous else new_consent_id(),
        granted=(granted & frozenset(config.category_ids)) | config.required_category_ids,
        known=frozenset(config.category_ids),
        policy_version=config.policy.version,
        decided_at=timestamp,
        gpc_at=(previous.gpc_at if previous else None) or (timestamp if gpc_signal else None),
    )


def record_gpc(config: Config, previous: Decision | None, *, now: int | None = None) -> Decision:
    """Remember that a GPC signal was seen (and recorded) for this reader."""
    timestamp = int(time.time()) if now is None else now
    if previous is not None:
        return replace(previous, gpc_at=timestamp)
    return Decision(
        consent_id=new_consent_id(),
        granted=config.required_category_ids,
        known=frozenset(config.category_ids),
        policy_version=config.policy.version,
        decided_at=None,
        gpc_at=timestamp,
    )
