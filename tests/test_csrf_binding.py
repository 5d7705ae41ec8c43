"""CSRF tokens are bound to the browser: a valid token of another browser is refused,
with or without an Origin header, wherever a token is what vouches for a post (on the
consent endpoints the browser's own Origin / Fetch Metadata may: see
tests/test_cross_origin.py); the Origin and Fetch Metadata checks stay."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import client, csrf_token, html_app, make_gate, run

from consentgate import ConsentGate

CONSENT = "/consentgate/consent"
LOGOUT = "/consentgate/logout"


async def browser_with_token(gate: ConsentGate) -> tuple[httpx.AsyncClient, str]:
    c = client(gate)
    return c, await csrf_token(c)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (CONSENT, {}),
        # Where the browser's word does not replace the token (the account forms), a
        # foreign token is refused with or without an Origin header.
        (LOGOUT, {}),
        (LOGOUT, {"origin": "http://news.test"}),
        (LOGOUT, {"sec-fetch-site": "same-origin"}),
    ],
    ids=["consent-no-origin", "logout-no-origin", "logout-our-origin", "logout-fetch-metadata"],
)
def test_csrf_binding_token_of_another_browser_is_refused(
    tmp_path: Path, path: str, headers: dict[str, str]
) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"enabled": True})

    async def scenario() -> tuple[int, int]:
        a, token_a = await browser_with_token(gate)
        b, token_b = await browser_with_token(gate)
        try:
            foreign = await b.post(
                path, data={"action": "accept_all", "csrf_token": token_a}, headers=headers
            )
            own = await b.post(
                path, data={"action": "accept_all", "csrf_token": token_b}, headers=headers
            )
        finally:
            await a.aclose()
            await b.aclose()
        return foreign.status_code, own.status_code

    assert run(scenario()) == (403, 303)


def test_csrf_binding_page_never_holds_the_cookie_value(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[str, str, int]:
        async with client(gate) as c:
            token = await csrf_token(c)
            cookie = c.cookies["cg_csrf"]
            # The old scheme's token was the cookie itself: no longer accepted.
            echoed = await c.post(CONSENT, data={"action": "accept_all", "csrf_token": cookie})
            return token, cookie, echoed.status_code

    token, cookie, echoed = run(scenario())
    assert token != cookie and cookie not in token
    assert echoed == 403


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site"}, 403),  # a sibling subdomain
        ({"origin": "https://evil.example"}, 403),
        ({"origin": "null"}, 403),
        ({"origin": "null", "sec-fetch-site": "same-origin"}, 303),  # no-referrer pages
        ({"sec-fetch-site": "none"}, 303),
    ],
    ids=["cross-site", "same-site", "other-origin", "null", "null-same-origin", "none"],
)
def test_csrf_binding_origin_and_fetch_metadata_checks_kept(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> int:
        async with client(gate) as c:
            token = await csrf_token(c)
            answer = await c.post(
                CONSENT, data={"action": "accept_all", "csrf_token": token}, headers=headers
            )
            return answer.status_code

    assert run(scenario()) == status


def test_csrf_binding_tampered_or_foreign_key_token_is_refused(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    other = make_gate(
        html_app(), tmp_path / "other", secret_keys=["another-secret-key-0123456789-abcdefgh"]
    )

    async def scenario() -> list[int]:
        async with client(other) as elsewhere:
            foreign_token = await csrf_token(elsewhere)
        async with client(gate) as c:
            token = await csrf_token(c)
            middle = len(token) // 2
            flipped = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
            answers = []
            for candidate in (flipped, foreign_token, "", "x" * 600):
                response = await c.post(
                    CONSENT, data={"action": "accept_all", "csrf_token": candidate}
                )
                answers.append(response.status_code)
            return answers

    assert run(scenario()) == [403, 403, 403, 403]


def test_csrf_binding_json_header_token_is_bound_too(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[int, int]:
        a, token_a = await browser_with_token(gate)
        b, token_b = await browser_with_token(gate)
        try:
            body = {"action": "reject_all"}
            foreign = await b.post(CONSENT, json=body, headers={"x-csrf-token": token_a})
            own = await b.post(CONSENT, json=body, headers={"x-csrf-token": token_b})
        finally:
            await a.aclose()
            await b.aclose()
        return foreign.status_code, own.status_code

    assert run(scenario()) == (403, 200)
