"""The admin dashboard in a real browser (Debian Chromium via Playwright): sign in with
the token through the form, see the overview with its SVG charts, search a consent id.
Skipped without /usr/bin/chromium, failed then under CONSENTGATE_REQUIRE_BROWSER=1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser_support import launch_chromium, require_browser, serve
from tests.test_dashboard import ADMIN, TOKEN, admin_gate

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def sync_api() -> Any:
    return require_browser()


@pytest.fixture
def site(sync_api: Any, tmp_path: Path) -> Iterator[str]:
    with serve(admin_gate(tmp_path)) as base_url:
        yield base_url


@pytest.fixture
def page(sync_api: Any, site: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(base_url=site, java_script_enabled=False)
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def test_browser_dashboard_login_overview_and_search(page: Any, sync_api: Any) -> None:
    expect = sync_api.expect
    csp_errors: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            csp_errors.append(message.text)

    page.on("console", on_console)

    page.goto(ADMIN)
    assert page.url.split("?")[0].endswith(f"{ADMIN}/login")  # sent to the form
    page.get_by_label("Admin token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")

    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("svg[role=img]").first).to_be_visible()

    page.goto(f"{ADMIN}?since=2026-03-01&until=2026-03-03")
    chart = page.get_by_role("img", name="Decisions per day, by action")
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() >= 5  # one per action and day
    expect(page.get_by_role("table", name="Consent rate per category")).to_contain_text("75.0 %")
    # The inline stylesheet is allowed by its hash, nothing else is needed.
    collapse = page.evaluate(
        "() => getComputedStyle(document.querySelector('table')).borderCollapse"
    )
    assert collapse == "collapse"

    page.get_by_label("Consent id or e-mail").fill("c" * 32)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("table", name="Ledger history")).to_contain_text("gpc")
    expect(page.get_by_text("2 ledger rows")).to_be_visible()

    cookie = next(c for c in page.context.cookies() if c["name"] == "cg_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == ADMIN
    assert csp_errors == []

    page.get_by_role("button", name="Sign out").click()
    assert "/login" in page.url
    page.goto(ADMIN)
    assert "/login" in page.url
