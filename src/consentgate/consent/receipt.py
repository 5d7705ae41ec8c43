"""A consent receipt for the reader, using Kantara Consent Receipt v1.1 field names.

Kantara's receipt is built for one controller collecting personal data for purposes;
cookie consent maps onto it as one service (the site) whose purposes are our
categories. Where the spec has no field for something a cookie receipt needs (the
policy version, the banner text's hash, the history of changes), we add fields under
``consentgate`` rather than bending the spec's own fields.

The same receipt is a page a person can read (:func:`receipt_view`, drawn by
web/templates.render_receipt_page): what was chosen, when (a date in the reader's
language, the time in UTC, said so), under which policy, the id to quote and the
controller's contact; the JSON is its download.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from consentgate.i18n import locale, table

if TYPE_CHECKING:
    from consentgate.config import Config
    from consentgate.consent.state import Consent
    from consentgate.storage import ConsentRecord

RECEIPT_VERSION = "KI-CR-v1.1.0"
_COLLECTION_METHODS = {
    "form": "web form (banner or settings page, no script)",
    "js": "web form (banner, submitted by script)",
    "api": "API call by the site",
    "gpc": "Global Privacy Control browser signal",
}


def consent_receipt(
    config: Config, history: Sequence[ConsentRecord], consent: Consent
) -> dict[str, Any]:
    """The receipt for the latest ledger row, with the earlier rows as history."""
    latest = history[-1]
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": config.jurisdiction,
        "consentTimestamp": int(latest.recorded_at.timestamp()),
        "collectionMethod": _COLLECTION_METHODS.get(latest.method, latest.method),
        "consentReceiptID": receipt_id(latest),
        "publicKey": None,
        "language": latest.language,
        "piiPrincipalId": latest.consent_id,
        "piiControllers": [
            {
                "piiController": config.controller_name or config.site_name,
                "contact": config.controller_contact,
                "address": None,
                "email": config.controller_email,
                "phone": None,
                "url": config.controller_url or None,
            }
        ],
        "policyUrl": config.policy.url,
        "services": [
            {
                "service": config.site_name,
                "purposes": [
                    _purpose(config, category_id, latest) for category_id in config.category_ids
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        "consentgate": {
            "policyVersion": latest.policy_version,
            "bannerTextSha256": latest.banner_text_sha256,
            "regionMode": latest.region_mode,
            "action": latest.action,
            "gpcSignal": consent.gpc,
            "inForce": sorted(consent.granted),
            "history": [
                {
                    "recordedAt": row.recorded_at.isoformat(),
                    "action": row.action,
                    "method": row.method,
                    "granted": list(row.granted),
                    "denied": list(row.denied),
                    "policyVersion": row.policy_version,
                }
                for row in history
            ],
        },
    }


def _purpose(config: Config, category_id: str, latest: ConsentRecord) -> dict[str, Any]:
    category = config.category(category_id)
    required = category is not None and category.required
    granted = category_id in latest.granted
    return {
        "purpose": category.description if category else category_id,
        "purposeCategory": [category.title if category else category_id],
        # Strictly necessary storage rests on no consent; Kantara calls that implicit.
        "consentType": "IMPLICIT" if required else "EXPLICIT",
        "piiCategory": ["cookie identifiers"],
        "primaryPurpose": required,
        "termination": (
            "when the consent cookie expires or is withdrawn on the settings page"
            if not required
            else "when the session or choice cookie expires"
        ),
        "thirdPartyDisclosure": category_id == "marketing",
        "thirdPartyName": None,
        "consentgateGranted": granted,
    }


def receipt_id(latest: ConsentRecord) -> str:
    """The id a reader quotes: the consent's id and the ledger row's."""
    return f"{latest.consent_id}-{latest.id}"


def receipt_texts(lang: str) -> Mapping[str, str]:
    """The receipt page's wording in ``lang`` (``[receipt]`` of the locales)."""
    return locale(lang, "receipt")


def _months(lang: str) -> list[str]:
    for source in (lang, "en"):
        try:
            months = table(source, "receipt").get("months")
        except KeyError:
            continue
        if isinstance(months, list) and len(months) == 12:
            return [str(month) for month in months]
    raise LookupError("the English [receipt] months are missing")  # pragma: no cover


def format_when(moment: datetime, lang: str) -> str:
    """A date as the reader's language writes it, with the time in UTC (and saying so):
    a receipt is read later and elsewhere, so a time in no named zone would mislead."""
    if moment.tzinfo is None:  # the stores keep UTC
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    values = {
        "{day}": str(utc.day),
        "{month}": _months(lang)[utc.month - 1],
        "{year}": str(utc.year),
        "{time}": f"{utc.hour:02d}:{utc.minute:02d}",
    }
    text = receipt_texts(lang)["date_format"]
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """What the receipt page shows, in the reader's language; values are plain text."""

    receipt_id: str
    recorded: str
    policy_version: str
    policy_url: str
    #: (category id, granted) for each category, in display order.
    choices: tuple[tuple[str, bool], ...]
    controller_name: str
    controller_contact: str
    controller_email: str
    controller_url: str
    #: (when, action, granted category ids) for each ledger row, oldest first.
    history: tuple[tuple[str, str, tuple[str, ...]], ...]


def receipt_view(config: Config, history: Sequence[ConsentRecord], lang: str) -> ReceiptView:
    """The receipt of the latest ledger row, for a person to read."""
    latest = history[-1]
    return ReceiptView(
        receipt_id=receipt_id(latest),
        recorded=format_when(latest.recorded_at, lang),
        policy_version=latest.policy_version,
        policy_url=config.policy.url,
        choices=tuple((cid, cid in latest.granted) for cid in config.category_ids),
        controller_name=config.controller_name or config.site_name,
        controller_contact=config.controller_contact,
        controller_email=config.controller_email,
        controller_url=config.controller_url,
        history=tuple(
            (format_when(row.recorded_at, lang), row.action, tuple(row.granted)) for row in history
        ),
    )
