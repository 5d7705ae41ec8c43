"""Each of our own cookies is described once (web/cookies.py) and every header that sets
or clears it has the same name, path and flags."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import SECRET, client, decide, html_app, make_gate, run
from tests.test_accounts_http import form_token, register

from consentgate import Config
from consentgate.web.cookies import CookieSpec, OwnCookies


def _attributes(header: str) -> tuple[str, dict[str, str]]:
    pair, *rest = [part.strip() for part in header.split(";")]
    name = pair.split("=", 1)[0]
    attributes = {}
    for item in rest:
        key, _, value = item.partition("=")
        attributes[key.lower()] = value
    return name, attributes


def _ours(response: httpx.Response, name: str) -> dict[str, str]:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(found) == 1, found
    return _attributes(found[0])[1]


def test_own_cookies_described_once_from_the_configuration() -> None:
    config = Config.from_mapping(
        {"secret_keys": [SECRET], "prefix": "/cg", "cookie_names": {"session": "my_session"}}
    )
    cookies = OwnCookies.from_config(config)
    assert cookies.session == CookieSpec("my_session")
    assert cookies.consent == CookieSpec("cg_consent")
    assert cookies.admin == CookieSpec("cg_admin", path="/cg/admin", same_site="Strict")
    assert {c.name for c in (cookies.consent, cookies.csrf, cookies.meter)} == {
        "cg_consent",
        "cg_csrf",
        "cg_meter",
    }


@pytest.mark.parametrize(
    ("secure", "scheme", "flag"),
    [
        ("auto", "http", False),
        ("auto", "https", True),
        ("always", "http", True),
        ("never", "https", False),
    ],
)
def test_own_cookies_secure_follows_the_setting(secure: str, scheme: str, flag: bool) -> None:
    spec = CookieSpec("cg_x", secure=secure)  # type: ignore[arg-type]
    header = spec.header("v", max_age=60, scheme=scheme)
    assert header.startswith("cg_x=v; Path=/; Max-Age=60; SameSite=Lax; HttpOnly")
    assert header.endswith("; Secure") is flag


def test_own_cookies_expiry_matches_what_was_set() -> None:
    spec = CookieSpec("cg_admin", path="/consentgate/admin", same_site="Strict")
    name, set_attributes = _attributes(spec.header("token", max_age=3600, scheme="https"))
    expired_name, expired_attributes = _attributes(spec.expired(scheme="https"))
    assert expired_name == name
    assert expired_attributes.pop("max-age") == "0"
    assert set_attributes.pop("max-age") == "3600"
    assert expired_attributes == set_attributes


def test_own_cookies_over_http_carry_their_spec(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path), base_url="https://news.test") as c:
            decided = await decide(c, "accept_all")
            registered = await register(c)
            token = await form_token(c, "/consentgate/login")
            out = await c.post("/consentgate/logout", data={"csrf_token": token, "next": "/x"})
            return decided, registered, out

    decided, registered, out = run(scenario())
    expected = {"path": "/", "samesite": "Lax", "httponly": "", "secure": ""}
    consent = _ours(decided, "cg_consent")
    assert int(consent.pop("max-age")) > 0 and consent == expected
    session = _ours(registered, "cg_session")
    assert int(session.pop("max-age")) > 0 and session == expected
    cleared = _ours(out, "cg_session")
    assert cleared.pop("max-age") == "0" and cleared == expected
