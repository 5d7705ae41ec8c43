"""A reader's newsletter and their data in a real browser, against the demo news site
over HTTP: double opt-in by the mail's link, RFC 8058 one-click unsubscribe as a mail
provider sends it, the data download and the deletion of the account.

Headless Chromium via Playwright, like tests/test_browser_wall.py; the mail goes by SMTP
to a real server (aiosmtpd) and is read as it arrived there. The unsubscribe URL is the
one the operator's sending platform gets from ``consentgate export subscribers``.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.newsroom.app import CONFIG_PATH, create_app
from tests.browser_mail import demo_mail, mailed, mailed_link, smtp_fixture  # noqa: F401 (a fixture)
from tests.browser_support import NewContext, cookie_names, serve
from tests.mail_support import SMTPServer
from tests.test_cli_packaging import child_env, consentgate_command

pytestmark = pytest.mark.browser

EMAIL = "tide-reader@harbour-ledger.example"
PASSWORD = "salt-spray-2026-cormorant"
LIST_ID = "week-in-review"
LIST_NAME = "The Week in Review"
SESSION = "cg_session"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("newsroom-newsletters-data")


@pytest.fixture(scope="module")
def site(sync_api: Any, data_dir: Path, smtp: SMTPServer) -> Iterator[str]:
    with serve(create_app(data_dir, mail=demo_mail(smtp))) as base_url:
        yield base_url


@pytest.fixture
def expect(sync_api: Any) -> Any:
    return sync_api.expect


def newsletter_entry(page: Any) -> Any:
    return page.locator(f'.cg-newsletters li[data-list="{LIST_ID}"]')


def subscriber_export(data_dir: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """What the operator hands their sending platform: the demo's configuration on the
    demo's database, through the real command."""
    config = tmp_path / "consentgate.toml"
    text = CONFIG_PATH.read_text(encoding="utf-8")
    text = re.sub(
        r"^database_url = .*$",
        f'database_url = "sqlite:///{data_dir / "consentgate.db"}"',
        text,
        count=1,
        flags=re.MULTILINE,
    )
    config.write_text(text.replace('text_file = "', f'text_file = "{CONFIG_PATH.parent}/'))
    output = tmp_path / "subscribers.jsonl"
    command = ["export", "subscribers", "--list", LIST_ID, "--config", str(config)]
    # Its own process, as an operator runs it (Playwright's loop runs in this one).
    done = subprocess.run(
        [*consentgate_command(), *command, "--output", str(output)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def test_browser_newsletter_double_opt_in_one_click_out_then_export_and_deletion(
    new_context: NewContext,
    expect: Any,
    site: str,
    smtp: SMTPServer,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    context = new_context(accept_downloads=True)
    page = context.new_page()

    # Registering with the weekly letter ticked, and confirming the address.
    page.goto(f"{site}/consentgate/register")
    form = page.locator('form[action="/consentgate/register"]')
    form.locator("#cg-email").fill(EMAIL)
    form.locator("#cg-password").fill(PASSWORD)
    form.locator('input[name="accept_policy"]').check()
    form.locator(f'input[name="newsletters"][value="{LIST_ID}"]').check()
    with page.expect_navigation():
        form.locator('button[type="submit"]').click()
    expect(page.get_by_role("heading", name="Look in your inbox")).to_be_visible()
    page.goto(site + mailed_link(smtp.inbox, EMAIL, "Confirm your e-mail address"))
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm my address").click()
    assert SESSION in cookie_names(context)

    # Double opt-in: not a subscriber until the mail's link is followed and its button
    # pressed (a mail scanner fetching the link confirms nothing).
    page.goto(f"{site}/consentgate/account")
    expect(newsletter_entry(page).locator(".cg-state")).to_contain_text("Waiting for your")
    confirmation = mailed(smtp.inbox, EMAIL, f"Please confirm: {LIST_NAME}")
    assert confirmation.get_body(preferencelist=("html",)) is not None, "no HTML part"
    link = mailed_link(smtp.inbox, EMAIL, f"Please confirm: {LIST_NAME}")
    assert link.startswith("/consentgate/newsletters/confirm?token="), link
    page.goto(site + link)
    page.goto(f"{site}/consentgate/account")
    expect(newsletter_entry(page).locator(".cg-state")).to_contain_text("Waiting for your")
    page.goto(site + link)
    with page.expect_navigation():
        page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    page.goto(f"{site}/consentgate/account")
    expect(newsletter_entry(page).locator(".cg-state")).to_have_text("Subscribed")

    # The platform's list, with the URL for List-Unsubscribe; its one-click POST (RFC
    # 8058: no cookies, from the provider's servers) takes the reader off.
    (subscriber,) = [row for row in subscriber_export(data_dir, tmp_path) if row["email"] == EMAIL]
    unsubscribe = httpx.URL(subscriber["unsubscribe_url"])
    one_click = httpx.post(
        f"{site}{unsubscribe.raw_path.decode()}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert one_click.status_code == 200, one_click.text
    page.reload()
    expect(newsletter_entry(page).locator(".cg-state")).to_have_text("Not subscribed")
    assert all(row["email"] != EMAIL for row in subscriber_export(data_dir, tmp_path))

    # The reader's data, downloaded from the account page: every step is in it.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["account"]["email"] == EMAIL
    steps = [
        (row["action"], row["method"])
        for row in data["newsletter_subscriptions"]
        if row["list_id"] == LIST_ID
    ]
    assert steps == [
        ("requested", "registration"),
        ("confirmed", "email_link"),
        ("unsubscribed", "one_click"),
    ], steps
    assert any(row["purpose"] == "privacy_policy" for row in data["acceptances"])

    # Deleting the account: the password and a ticked box; then signed out, and gone.
    page.goto(f"{site}/consentgate/account/delete")
    page.locator("#cg-password").fill(PASSWORD)
    page.locator("#cg-confirm").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Delete my account").click()
    assert SESSION not in cookie_names(context)
    page.goto(f"{site}/consentgate/login")
    page.locator("#cg-email").fill(EMAIL)
    page.locator("#cg-password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator('form[action="/consentgate/login"] button[type="submit"]').click()
    expect(page.get_by_text("E-mail or password is not right.")).to_be_visible()
