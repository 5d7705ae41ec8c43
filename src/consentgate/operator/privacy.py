"""Readers' requests: access (GDPR Art. 15) and erasure (Art. 17).

``show`` gathers everything held about a consent id or an account; ``forget`` erases an
account and pseudonymises the rows that must be kept as proof of consent (Art. 7(1),
Art. 17(3)(b) and (e)): see docs/operators.md for the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consentgate.operator.store import (
    acceptance_dict,
    consent_dict,
    iso,
    session_dict,
    subscription_dict,
)
from consentgate.storage import AcceptanceRecord, ConsentRecord, SessionRecord, Storage, User
from consentgate.storage.records import SubscriptionRecord

__all__ = [
    "CONSENT_NOTE",
    "HASH_NOTE",
    "METER_NOTE",
    "SESSIONS_NOTE",
    "ConsentReport",
    "ForgetResult",
    "UserReport",
    "consent_lines",
    "consent_report",
    "forget_user",
    "user_lines",
    "user_report",
]

HASH_NOTE = "a scrypt hash is stored (the password itself is not, and the hash is never shown)"
METER_NOTE = (
    "The article meter lives in the reader's own browser (the signed cg_meter cookie: a "
    "random reader id and hashes of the articles read this period); the server does not "
    "keep it. With the server-side meter, reads are counted under HMACs of the reader id "
    "and of the network prefix: they are not linked to the account or the e-mail and "
    "cannot be listed per person — the reader can send their cg_meter cookie if they want "
    "it looked up."
)
SESSIONS_NOTE = (
    "Signed-in sessions are kept on the server as a SHA-256 of a random id, the account "
    "id and the start and end times, until they end or you sign out everywhere."
)
CONSENT_NOTE = (
    "Consent rows carry a random consent id from the reader's cg_consent cookie; rows "
    "made before signing in are not linked to the account. Look one up with "
    "`consentgate show consent ID`."
)


@dataclass(frozen=True, slots=True)
class ConsentReport:
    consent_id: str
    history: list[ConsentRecord]

    def to_json(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "found": bool(self.history),
            "records": [consent_dict(r) for r in self.history],
            "explanation": {
                "ip_hmac": "HMAC-SHA-256 of the IP address with the site's secret key; "
                "the address itself is not stored",
                "banner_text_sha256": "SHA-256 of exactly the banner text shown",
            },
        }


@dataclass(frozen=True, slots=True)
class UserReport:
    user: User
    acceptances: list[AcceptanceRecord]
    consents: list[ConsentRecord]
    consent_ids: list[str] = field(default_factory=list)
    #: The newsletter ledger's rows, oldest first.
    subscriptions: list[SubscriptionRecord] = field(default_factory=list)
    #: The reader's server-side sessions (shown by their times only), oldest first.
    sessions: list[SessionRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": {
                "id": self.user.id,
                "email": self.user.email,
                "created_at": iso(self.user.created_at),
                "password": HASH_NOTE,
            },
            "acceptances": [acceptance_dict(a) for a in self.acceptances],
            "consents": [consent_dict(c) for c in self.consents],
            "consent_ids": self.consent_ids,
            "newsletter_subscriptions": [subscription_dict(s) for s in self.subscriptions],
            "sessions": [session_dict(s) for s in self.sessions],
            "sessions_note": SESSIONS_NOTE,
            "meter": METER_NOTE,
            "note": CONSENT_NOTE,
        }


async def consent_report(storage: Storage, consent_id: str) -> ConsentReport:
    return ConsentReport(consent_id, await storage.consent_history(consent_id.strip()))


async def user_report(storage: Storage, email: str) -> UserReport | None:
    user = await storage.user_by_email(email)
    if user is None:
        return None
    acceptances = await storage.acceptances_for(user.id)
    consents = await storage.consents_for_user(user.id)
    ids = list(dict.fromkeys(c.consent_id for c in consents))
    subscriptions = await storage.subscriptions_for(user.id)
    # The readers' kind of session (SessionStore's default); the dashboard's are "admin".
    sessions = await storage.sessions_for("reader", user.id)
    return UserReport(user, acceptances, consents, ids, subscriptions, sessions)


@dataclass(frozen=True, slots=True)
class ForgetResult:
    user_id: str
    deleted: bool
    redacted_rows: int
    kept_acceptances: int
    kept_consents: int

    def lines(self) -> list[str]:
        return [
            f"account {self.user_id}: "
            + ("erased (e-mail and password hash deleted)" if self.deleted else "already gone"),
            f"rows pseudonymised (IP HMAC and user agent removed): {self.redacted_rows}",
            f"kept as proof of consent, now without the e-mail: {self.kept_acceptances} "
            f"acceptance rows, {self.kept_consents} consent rows (random ids only)",
        ]


async def forget_user(storage: Storage, user: User) -> ForgetResult:
    """Pseudonymise first, then erase: if erasing fails, running again finishes it."""
    acceptances = await storage.acceptances_for(user.id)
    consents = await storage.consents_for_user(user.id)
    redacted = await storage.redact_user_records(user.id)
    # Queued mail (a verification or reset link) must not go out to an erased account,
    # and sent items keep the address until pruned.
    await storage.forget_mail(user.email)
    deleted = await storage.delete_user(user.id)
    return ForgetResult(user.id, deleted, redacted, len(acceptances), len(consents))


# -- for people -----------------------------------------------------------------------


def _cats(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "none"


def _consent_row_lines(rec: ConsentRecord) -> list[str]:
    return [
        f"  {iso(rec.recorded_at)}  {rec.action} by {rec.method}"
        + (f" (signed in as user {rec.user_id})" if rec.user_id else ""),
        f"      granted: {_cats(rec.granted)}; denied: {_cats(rec.denied)}",
        f"      policy version {rec.policy_version}, language {rec.language}, "
        f"region mode {rec.region_mode}",
        f"      banner text sha256 {rec.banner_text_sha256}",
        f"      IP HMAC {rec.ip_hmac or '(none)'}; user agent {rec.user_agent or '(none)'}",
    ]


def consent_lines(report: ConsentReport) -> list[str]:
    if not report.history:
        return [f"No ledger rows for consent id {report.consent_id}."]
    lines = [
        f"Consent id {report.consent_id}: {len(report.history)} ledger rows, oldest first",
        "(the IP address is not stored: only an HMAC of it with the site's secret key)",
    ]
    for rec in report.history:
        lines += _consent_row_lines(rec)
    return lines


def user_lines(report: UserReport) -> list[str]:
    user = report.user
    lines = [
        f"Account {user.id}",
        f"  e-mail:     {user.email}",
        f"  registered: {iso(user.created_at)}",
        f"  password:   {HASH_NOTE}",
        "",
        f"Acceptances ({len(report.acceptances)}), oldest first:",
    ]
    for acc in report.acceptances:
        lines.append(
            f"  {iso(acc.recorded_at)}  {acc.purpose} "
            f"{'granted' if acc.granted else 'refused'} by {acc.method}, policy version "
            f"{acc.policy_version} (text sha256 {acc.policy_sha256})"
        )
        lines.append(
            f"      IP HMAC {acc.ip_hmac or '(none)'}; user agent {acc.user_agent or '(none)'}"
        )
    lines += ["", f"Consent rows recorded while signed in ({len(report.consents)}):"]
    for rec in report.consents:
        lines.append(f"  consent id {rec.consent_id}")
        lines += _consent_row_lines(rec)
    lines += ["", f"Newsletter subscription rows ({len(report.subscriptions)}), oldest first:"]
    for sub in report.subscriptions:
        lines.append(f"  {iso(sub.recorded_at)}  {sub.list_id} {sub.action} by {sub.method}")
        lines.append(
            f"      IP HMAC {sub.ip_hmac or '(none)'}; user agent {sub.user_agent or '(none)'}"
        )
    lines += ["", f"Sessions on the server ({len(report.sessions)}), oldest first:"]
    for session in report.sessions:
        lines.append(f"  started {iso(session.created_at)}, ends {iso(session.expires_at)}")
    lines += ["", SESSIONS_NOTE, "", CONSENT_NOTE, "", "Meter: " + METER_NOTE]
    return lines
