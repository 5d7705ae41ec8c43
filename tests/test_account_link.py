"""The small fixed link on decided pages: "Cookie settings" for a reader who is not
signed in; for one signed in to our accounts, "Account" beside it (the settings stay
one click away: withdrawing is as easy as giving)."""

from __future__ import annotations

from pathlib import Path

import html5lib
import httpx
import pytest
from tests.conftest import client, decide, html_app, make_gate, run
from tests.test_accounts_http import register

NS = "{http://www.w3.org/1999/xhtml}"
BROWSER = {"accept": "text/html"}


def _fixed_links(page: httpx.Response) -> dict[str, str]:
    tree = html5lib.parse(page.text)
    return {
        e.get("id"): "".join(e.itertext())
        for e in tree.iter(f"{NS}a")
        if e.get("id") in ("consentgate-settings-link", "consentgate-account-link")
    }


def test_account_link_for_a_signed_in_reader(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await decide(c, "reject_all")
            before = await c.get("/news/1", headers=BROWSER)
            registered = await register(c)
            assert registered.status_code == 303
            return before, await c.get("/news/1", headers=BROWSER)

    anonymous, signed_in = run(scenario())
    assert _fixed_links(anonymous) == {"consentgate-settings-link": "Cookie settings"}
    assert _fixed_links(signed_in) == {
        "consentgate-account-link": "Account",
        "consentgate-settings-link": "Cookie settings",
    }
    tree = html5lib.parse(signed_in.text)
    (box,) = [e for e in tree.iter(f"{NS}div") if e.get("id") == "consentgate-links"]
    account, settings = box.findall(f"{NS}a")
    assert account.get("href") == "/consentgate/account"
    assert settings.get("href", "").startswith("/consentgate/settings?next=")


def test_account_link_in_the_readers_language(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await decide(c, "accept_all")
            await register(c)
            return await c.get("/", headers={**BROWSER, "accept-language": "de"})

    assert _fixed_links(run(scenario())) == {
        "consentgate-account-link": "Konto",
        "consentgate-settings-link": "Cookie-Einstellungen",
    }


@pytest.mark.parametrize("accounts_enabled", [True, False])
def test_account_link_not_for_the_sites_own_accounts(
    tmp_path: Path, accounts_enabled: bool
) -> None:
    async def user(scope: object) -> str:
        return "site-user-1"  # the site's own accounts: our account page knows nobody

    async def scenario() -> httpx.Response:
        gate = make_gate(html_app(), tmp_path, accounts={"enabled": accounts_enabled})
        gate.user_resolver = user
        async with client(gate) as c:
            await decide(c, "reject_all")
            return await c.get("/", headers=BROWSER)

    assert _fixed_links(run(scenario())) == {"consentgate-settings-link": "Cookie settings"}
