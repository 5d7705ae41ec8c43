"""A consent receipt for the reader, using Kantara Consent Receipt v1.1 field names.

Kantara's receipt is built for one controller collecting personal data for purposes;
cookie consent maps onto it as one service (the site) whose purposes are our
categories. Where the spec has no field for something a cookie receipt needs (the
policy version, the banner text's hash, the history of changes), we add fields under
``consentgate`` rather than bending the spec's own fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
        "consentReceiptID": f"{latest.consent_id}-{latest.id}",
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
