"""What every operator tool shares: opening the store, time windows, JSON-ready rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

# open_storage raises SchemaTooOldError when `consentgate migrate` is due.
from consentgate.storage import AcceptanceRecord, ConsentRecord, SessionRecord, open_storage
from consentgate.storage.records import SubscriptionRecord

__all__ = [
    "COUNTER_NAMES",
    "Window",
    "acceptance_dict",
    "consent_dict",
    "iso",
    "open_storage",
    "parse_when",
    "session_dict",
    "subscription_dict",
]

BANNER_IMPRESSIONS = "banner_impressions"
WALL_IMPRESSIONS = "wall_impressions"
REGISTRATIONS = "registrations"
COUNTER_NAMES = (BANNER_IMPRESSIONS, WALL_IMPRESSIONS, REGISTRATIONS)


# -- time windows ---------------------------------------------------------------------


def parse_when(text: str) -> datetime:
    """ISO-8601 date or date-time; without a zone it is UTC. ``2026-03-01`` = midnight."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not an ISO-8601 date or time: {text!r} (e.g. 2026-03-01 or 2026-03-01T12:00Z)"
        ) from None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """``since <= recorded_at < until``; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("--since must be before --until")

    @property
    def first_day(self) -> date | None:
        return self.since.date() if self.since is not None else None

    @property
    def last_day(self) -> date | None:
        """The last day with a moment inside the window (``until`` is exclusive)."""
        if self.until is None:
            return None
        return (self.until - timedelta(microseconds=1)).date()

    def has_day(self, day: date) -> bool:
        first, last = self.first_day, self.last_day
        return (first is None or day >= first) and (last is None or day <= last)

    def describe(self) -> str:
        since = iso(self.since) if self.since is not None else "the beginning"
        if self.until is None:
            return f"from {since} until now"
        return f"from {since} until {iso(self.until)} (exclusive)"


# -- rows as plain data ---------------------------------------------------------------


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, e.g. ``2026-03-01T12:00:00.123456Z``."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def consent_dict(rec: ConsentRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "consent_id": rec.consent_id,
        "user_id": rec.user_id,
        "action": rec.action,
        "granted": list(rec.granted),
        "denied": list(rec.denied),
        "policy_version": rec.policy_version,
        "banner_text_sha256": rec.banner_text_sha256,
        "language": rec.language,
        "region_mode": rec.region_mode,
        "method": rec.method,
        "ip_hmac": rec.ip_hmac,
        "user_agent": rec.user_agent,
        "recorded_at": iso(rec.recorded_at),
    }


def acceptance_dict(rec: AcceptanceRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "user_id": rec.user_id,
        "purpose": rec.purpose,
        "policy_version": rec.policy_version,
        "policy_sha256": rec.policy_sha256,
        "granted": rec.granted,
        "method": rec.method,
        "ip_hmac": rec.ip_hmac,
        "user_agent": rec.user_agent,
        "recorded_at": iso(rec.recorded_at),
    }


def subscription_dict(rec: SubscriptionRecord) -> dict[str, Any]:
    return {
        key: iso(value) if isinstance(value, datetime) else value
        for key, value in asdict(rec).items()
    }


def session_dict(rec: SessionRecord) -> dict[str, Any]:
    """When a session began and when it ends: never its hash, which names it."""
    return {"created_at": iso(rec.created_at), "expires_at": iso(rec.expires_at)}
