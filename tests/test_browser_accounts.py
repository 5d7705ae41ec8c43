"""Forgotten password in a real browser, against the demo news site over HTTP: the
reset mail's link, a new password, and every other session ended.

Headless Chromium via Playwright, like tests/test_browser_wall.py. The mail goes
by SMTP to a real server (aiosmtpd) and is read as it arrived there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from examples.newsroom.app import create_app
from tests.browser_mail import demo_mail, mailed_link, smtp_fixture  # noqa: F401 (a fixture)
from tests.browser_support import NewContext, cookie_names, serve
from tests.mail_support import SMTPServer

pytestmark = pytest.mark.browser

EMAIL = "forgetful@harbour-ledger.example"
OLD_PASSWORD = "harbour-light-2025-kestrel"
NEW_PASSWORD = "tidewater-beacon-2026-osprey"
SESSION = "cg_session"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("newsroom-accounts-data")


@pytest.fixture(scope="module")
def site(sync_api: Any, data_dir: Path, smtp: SMTPServer) -> Iterator[str]:
    with serve(create_app(data_dir, mail=demo_mail(smtp))) as base_url:
        yield base_url


@pytest.fixture
def expect(sync_api: Any) -> Any:
    return sync_api.expect


def sign_in(page: Any, site: str, password: str) -> None:
    page.goto(f"{site}/consentgate/login")
    page.locator("#cg-email").fill(EMAIL)
    page.locator("#cg-password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()


def test_browser_forgotten_password_reset_ends_the_old_sessions(
    new_context: NewContext, expect: Any, site: str, smtp: SMTPServer
) -> None:
    # A reader registers and signs in on their phone (the grace period lets an
    # unverified account sign in with its password).
    phone_context = new_context()
    phone = phone_context.new_page()
    phone.goto(f"{site}/consentgate/register")
    phone.locator("#cg-email").fill(EMAIL)
    phone.locator("#cg-password").fill(OLD_PASSWORD)
    phone.locator("#cg-accept_policy").check()
    with phone.expect_navigation():
        phone.get_by_role("button", name="Register").click()
    expect(phone.get_by_role("heading", name="Look in your inbox")).to_be_visible()
    sign_in(phone, site, OLD_PASSWORD)
    assert SESSION in cookie_names(phone_context), "not signed in on the phone"

    # On the laptop they have forgotten it: the sign-in page leads to the reset form.
    laptop_context = new_context()
    laptop = laptop_context.new_page()
    laptop.goto(f"{site}/consentgate/login")
    with laptop.expect_navigation():
        laptop.get_by_role("link", name="Forgotten your password?").click()
    laptop.locator("#cg-email").fill(EMAIL)
    with laptop.expect_navigation():
        laptop.get_by_role("button", name="Send me a reset link").click()
    expect(laptop.get_by_text("If an account exists for this address")).to_be_visible()

    # The reset mail's link: a page asking for the new password; saving it signs in here.
    laptop.goto(site + mailed_link(smtp.inbox, EMAIL, "Choose a new password"))
    laptop.locator("#cg-new_password").fill(NEW_PASSWORD)
    with laptop.expect_navigation():
        laptop.get_by_role("button", name="Save the new password").click()
    assert SESSION in cookie_names(laptop_context), "not signed in after the reset"
    laptop.goto(f"{site}/consentgate/account")
    expect(laptop.get_by_text(f"You are signed in as {EMAIL}.")).to_be_visible()

    # The phone's session ended with the old password: the account page wants a sign-in.
    phone.goto(f"{site}/consentgate/account")
    assert urlsplit(phone.url).path == "/consentgate/login", phone.url
    sign_in(phone, site, OLD_PASSWORD)
    expect(phone.get_by_text("E-mail or password is not right.")).to_be_visible()
    sign_in(phone, site, NEW_PASSWORD)
    phone.goto(f"{site}/consentgate/account")
    expect(phone.get_by_text(f"You are signed in as {EMAIL}.")).to_be_visible()
