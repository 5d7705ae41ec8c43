"""Posts to the consent endpoints without a token: the browser's Origin and Fetch
Metadata vouch for them (Go's CrossOriginProtection approach); nothing else does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run

FORM = {"action": "reject_all", "next": "/"}


def _post(
    tmp_path: Path, headers: dict[str, str], path: str = "/consentgate/consent"
) -> httpx.Response:
    gate = make_gate(html_app(), tmp_path, accounts={"enabled": True})

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            response = await c.post(
                path, data=FORM, headers={"accept": "application/json", **headers}
            )
        await gate.ledger.close()
        return response

    return run(scenario())


def _consent_cookie(response: httpx.Response) -> bool:
    return any(v.startswith("cg_consent=") for v in response.headers.get_list("set-cookie"))


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "same-origin"},
        {"origin": "http://news.test"},
        {"origin": "http://news.test", "sec-fetch-site": "same-origin"},
        {"origin": "null", "sec-fetch-site": "same-origin"},  # Referrer-Policy: no-referrer
    ],
    ids=["fetch-metadata", "origin", "both", "null-origin-same-site-fetch"],
)
def test_cross_origin_browser_vouched_decision_needs_no_token(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    response = _post(tmp_path, headers)
    assert response.status_code == 303, response.text
    assert _consent_cookie(response)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "csrf_cookie_missing"),  # no word from a browser: the token is required
        ({"sec-fetch-site": "none"}, "csrf_cookie_missing"),  # typed by the reader: not ours
        ({"sec-fetch-site": "cross-site"}, "cross_origin"),
        ({"sec-fetch-site": "same-site"}, "cross_origin"),  # a sibling subdomain
        ({"origin": "https://evil.test"}, "cross_origin"),
        ({"origin": "https://news.test.evil.test"}, "cross_origin"),
        ({"origin": "http://news.test", "sec-fetch-site": "cross-site"}, "cross_origin"),
        ({"origin": "https://evil.test", "sec-fetch-site": "same-origin"}, "cross_origin"),
        ({"origin": "null"}, "cross_origin"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()) or "none",
)
def test_cross_origin_post_without_token_is_refused_unless_vouched(
    tmp_path: Path, headers: dict[str, str], code: str
) -> None:
    response = _post(tmp_path, headers)
    assert response.status_code == 403
    assert response.json()["error"] == code
    assert not _consent_cookie(response)


def test_cross_origin_vouching_is_for_the_consent_endpoints_only(tmp_path: Path) -> None:
    # Account forms live on private pages with a token: the token stays required there.
    response = _post(tmp_path, {"sec-fetch-site": "same-origin"}, "/consentgate/logout")
    assert response.status_code == 403
