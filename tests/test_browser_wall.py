"""The registration wall in a real browser, against the demo news site served over HTTP.

Headless Debian Chromium via Playwright (sync API), like tests/test_browser_consent.py:
the wrapped demo (examples/newsroom) runs in uvicorn on 127.0.0.1 in a background
thread with a fresh data directory for this module, and every test gets a fresh
browser context, hence an empty cookie jar (an unused meter).

The demo's wall: 3 free metered articles per 30 days (signed ``cg_meter`` cookie, a
*necessary* cookie, so it works for readers who reject everything), then the body of
``div.article-body`` is cut after 2 paragraphs and ``<aside id="consentgate-cta">``
offers free registration. ``library-reopening`` is free, ``local-election-explainer``
is for registered readers only, the rest are metered.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from examples.newsroom.app import create_app
from tests.browser_mail import demo_mail, mailed_link, smtp_fixture  # noqa: F401 (a fixture)
from tests.browser_support import (
    NewContext,
    cookie_names,
    cookies_by_name,
    serve,
)
from tests.mail_support import Inbox, SMTPServer

pytestmark = pytest.mark.browser

METERED = (
    "harbour-dredging-vote",
    "ferry-timetable-change",
    "school-robotics-team",
    "heatwave-water-authority",
)
FREE = "library-reopening"
REGISTERED_ONLY = "local-election-explainer"
METER_LIMIT = 3
LEAD_PARAGRAPHS = 2
FULL_MIN_PARAGRAPHS = 8

BANNER = "#consentgate-banner"
CTA = "#consentgate-cta"
BODY_P = "div.article-body p"
# The CTA is inserted *inside* div.article-body at the cut (Truncate keeps the
# container's end tag), so its own <p>s match BODY_P too; the article's paragraphs are
# the ones outside the aside.
ARTICLE_P = "div.article-body p:not(#consentgate-cta p)"
REGISTER_LABEL = "Register — it's free"
SESSION = "cg_session"
REGISTER_PATH = "/consentgate/register"
METER = "cg_meter"
PASSWORD = "harbour-light-2025-kestrel"


def article_path(slug: str) -> str:
    return f"/articles/{slug}"


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("newsroom-wall-data")


@pytest.fixture(scope="module")
def site(sync_api: Any, data_dir: Path, smtp: SMTPServer) -> Iterator[str]:
    """The wrapped demo over real HTTP, with its own ledger for this module; its mail goes
    by SMTP to a real server (aiosmtpd), where the tests read it."""
    with serve(create_app(data_dir, mail=demo_mail(smtp))) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def full_paragraphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every article's body paragraphs as the bare, unwrapped site serves them.

    Fetched through httpx's ASGITransport (no consentgate, no wall) and unescaped, so
    the tests compare the walled pages against what the publisher really sends.
    """
    bare = create_app(tmp_path_factory.mktemp("newsroom-bare"), wrap=False)
    slugs = (*METERED, FREE, REGISTERED_ONLY)

    async def fetch_all() -> dict[str, list[str]]:
        transport = httpx.ASGITransport(app=bare)
        async with httpx.AsyncClient(transport=transport, base_url="http://bare.test") as client:
            found: dict[str, list[str]] = {}
            for slug in slugs:
                response = await client.get(article_path(slug))
                assert response.status_code == 200, (slug, response.status_code)
                body = re.search(r'<div class="article-body">(.*?)</div>', response.text, re.DOTALL)
                assert body is not None, f"no article body in the bare {slug}"
                paragraphs = re.findall(r"<p>(.*?)</p>", body.group(1), re.DOTALL)
                found[slug] = [html.unescape(p) for p in paragraphs]
                # The leak check must be able to find each paragraph in a real page.
                for paragraph in found[slug]:
                    assert any(n in response.text for n in needles(paragraph)), slug
            return found

    # In a thread of its own: Playwright's sync API may already run a loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        found = pool.submit(asyncio.run, fetch_all()).result()
    for slug, paragraphs in found.items():
        assert len(paragraphs) >= FULL_MIN_PARAGRAPHS, (slug, len(paragraphs))
    return found


@pytest.fixture
def expect(sync_api: Any) -> Any:
    return sync_api.expect


# -- helpers --------------------------------------------------------------------------
def needles(paragraph: str) -> set[str]:
    """Forms a paragraph's text can take in a page's source: as is, HTML-escaped, and
    its longest run free of characters any escaping (HTML, JSON) could rewrite."""
    runs = re.findall(r"[A-Za-z0-9 ,.]+", paragraph)
    longest = max(runs, key=len).strip()
    assert len(longest) >= 30, f"no distinctive run in {paragraph!r}"
    return {paragraph, html.escape(paragraph), html.escape(paragraph, quote=False), longest}


def assert_text_absent(source: str, paragraph: str, where: str) -> None:
    leaked = sorted(n for n in needles(paragraph) if n in source)
    assert not leaked, f"{where}: the walled paragraph leaked: {leaked[0]!r}"


def reject_all(page: Any, expect: Any, *, javascript: bool) -> None:
    """Decline every optional cookie in the banner (script, or a plain form post)."""
    banner = page.locator(BANNER)
    expect(banner).to_be_visible()
    button = banner.get_by_role("button", name="Reject all", exact=True)
    if javascript:
        button.click()
    else:
        url = page.url
        with page.expect_navigation():
            button.click()
        assert page.url == url, f"Reject all (no JS) led to {page.url}, not back to {url}"
    expect(banner).to_have_count(0)


def assert_complete(page: Any, expect: Any, slug: str, paragraphs: list[str]) -> None:
    body = page.locator(BODY_P)
    assert body.count() >= FULL_MIN_PARAGRAPHS, (
        f"{slug}: {body.count()} body paragraphs, expected the full article"
    )
    expect(body).to_have_count(len(paragraphs))
    expect(body.last).to_have_text(paragraphs[-1])
    expect(page.locator(CTA)).to_have_count(0)


def assert_walled(
    page: Any, context: Any, expect: Any, site: str, slug: str, paragraphs: list[str]
) -> None:
    """The CTA is shown, only the lead is served, and the rest is nowhere in the source."""
    expect(page.locator(CTA)).to_be_visible()
    expect(page.locator(f"div.article-body > {CTA}")).to_have_count(1)
    body = page.locator(ARTICLE_P)
    expect(body).to_have_count(LEAD_PARAGRAPHS)
    expect(body.first).to_have_text(paragraphs[0])
    expect(body.last).to_have_text(paragraphs[LEAD_PARAGRAPHS - 1])
    cta_paragraphs = page.locator(f"{CTA} p").count()
    expect(page.locator(BODY_P)).to_have_count(LEAD_PARAGRAPHS + cta_paragraphs)
    hidden = paragraphs[4]  # the fifth paragraph, well past the lead
    assert_text_absent(page.content(), hidden, f"{slug}: page.content()")
    # The raw bytes the server sends to this reader (same cookies), not the DOM.
    raw = context.request.get(site + article_path(slug))
    assert raw.ok, f"{slug}: the raw fetch answered {raw.status}"
    assert_text_absent(raw.text(), hidden, f"{slug}: raw response")
    assert_text_absent(raw.text(), paragraphs[-1], f"{slug}: raw response (last paragraph)")


def register_link(page: Any) -> Any:
    return page.locator(CTA).get_by_role("link", name=REGISTER_LABEL, exact=True)


def funnel(
    context: Any,
    expect: Any,
    site: str,
    full_paragraphs: dict[str, list[str]],
    *,
    email: str,
    javascript: bool,
    inbox: Inbox,
) -> None:
    page = context.new_page()
    first, fourth = METERED[0], METERED[METER_LIMIT]

    # 1. Refuse every optional cookie: the meter is necessary, so it still counts.
    page.goto(article_path(first))
    reject_all(page, expect, javascript=javascript)
    assert "cg_consent" in cookie_names(context)

    # 2. Three metered articles in full.
    for slug in METERED[:METER_LIMIT]:
        page.goto(article_path(slug))
        assert_complete(page, expect, slug, full_paragraphs[slug])
    assert METER in cookie_names(context), "no meter cookie after three metered reads"

    # 3. The fourth is walled.
    page.goto(article_path(fourth))
    assert_walled(page, context, expect, site, fourth, full_paragraphs[fourth])
    expect(page.locator(CTA).get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    assert SESSION not in cookie_names(context)

    # 4. "Register — it's free" leads to the form, with the way back in ?next=.
    link = register_link(page)
    href = link.get_attribute("href") or ""
    assert urlsplit(href).path == REGISTER_PATH, href
    assert parse_qs(urlsplit(href).query).get("next") == [article_path(fourth)], href
    with page.expect_navigation():
        link.click()
    assert urlsplit(page.url).path == REGISTER_PATH, page.url
    form = page.locator('form[action="/consentgate/register"]')
    policy = form.locator('input[type="checkbox"][name="accept_policy"]')
    # The demo's two newsletters: a box each, unticked (docs/newsletters.md).
    newsletters = form.locator('input[type="checkbox"][name="newsletters"]')
    expect(policy).to_have_count(1)
    expect(newsletters).to_have_count(2)
    expect(policy).not_to_be_checked()
    for index in range(2):
        expect(newsletters.nth(index)).not_to_be_checked()
    assert policy.get_attribute("required") is not None, "the policy box is not required"

    # 5. Without the policy box: refused (browser validation or the server's 400).
    form.locator('input[name="email"]').fill(email)
    form.locator('input[name="password"]').fill(PASSWORD)
    submit = form.locator('button[type="submit"]')
    if form.get_attribute("novalidate") is not None:
        # The browser does not validate, so the server must refuse: 400, same form.
        with (
            page.expect_response(
                lambda r: r.request.method == "POST" and urlsplit(r.url).path == REGISTER_PATH
            ) as answer,
            page.expect_navigation(),
        ):
            submit.click()
        assert answer.value.status == 400, f"no policy box, yet {answer.value.status}"
        expect(page.locator("#cg-accept_policy-error")).to_be_visible()
    else:
        # The browser's `required` validation keeps the form from being sent at all.
        submit.click()
        assert policy.evaluate("el => el.validity.valueMissing") is True
    assert urlsplit(page.url).path == REGISTER_PATH, page.url
    assert SESSION not in cookie_names(context), "signed in without accepting the policy"
    expect(policy).not_to_be_checked()

    # 6. With it: "look in your inbox", and nobody is signed in yet.
    form.locator('input[name="email"]').fill(email)
    form.locator('input[name="password"]').fill(PASSWORD)
    policy.check()
    for index in range(2):
        expect(newsletters.nth(index)).not_to_be_checked()
    with page.expect_navigation():
        submit.click()
    expect(page.get_by_role("heading", name="Look in your inbox")).to_be_visible()
    assert SESSION not in cookie_names(context), "signed in before confirming the address"

    # 7. The verification mail's link opens a page whose button confirms, signs in and
    # goes back to the fourth article, now complete.
    link = mailed_link(inbox, email, "Confirm your e-mail address")
    assert link.startswith("/consentgate/verify?token="), link
    page.goto(site + link)
    with page.expect_navigation(url=site + article_path(fourth)):
        page.get_by_role("button", name="Confirm my address").click()
    assert page.url == site + article_path(fourth), page.url
    assert_complete(page, expect, fourth, full_paragraphs[fourth])
    jar = cookies_by_name(context)
    assert SESSION in jar, "no session cookie after registering"
    assert jar[SESSION]["httpOnly"] is True, "the session cookie is readable by scripts"
    if javascript:
        assert page.evaluate("() => document.cookie.includes('cg_session=')") is False

    # The raw response for the signed-in reader carries the whole article too.
    raw = context.request.get(site + article_path(fourth))
    assert raw.ok
    assert html.escape(full_paragraphs[fourth][-1], quote=False) in raw.text() or (
        html.escape(full_paragraphs[fourth][-1]) in raw.text()
    )


# -- 1. the funnel ----------------------------------------------------------------------
def test_wall_funnel_read_hit_wall_register_read_in_full(
    new_context: NewContext,
    expect: Any,
    site: str,
    full_paragraphs: dict[str, list[str]],
    smtp: SMTPServer,
) -> None:
    funnel(
        new_context(),
        expect,
        site,
        full_paragraphs,
        email="funnel-js@harbour-ledger.example",
        javascript=True,
        inbox=smtp.inbox,
    )


# -- 2. the funnel without JavaScript ----------------------------------------------------
def test_wall_funnel_without_javascript(
    new_context: NewContext,
    expect: Any,
    site: str,
    full_paragraphs: dict[str, list[str]],
    smtp: SMTPServer,
) -> None:
    funnel(
        new_context(java_script_enabled=False),
        expect,
        site,
        full_paragraphs,
        email="funnel-nojs@harbour-ledger.example",
        javascript=False,
        inbox=smtp.inbox,
    )


# -- 3. registration-only and free articles -----------------------------------------------
def test_wall_registration_only_article_walled_from_first_read(
    new_context: NewContext, expect: Any, site: str, full_paragraphs: dict[str, list[str]]
) -> None:
    context = new_context()
    page = context.new_page()

    page.goto(article_path(REGISTERED_ONLY))
    assert_walled(page, context, expect, site, REGISTERED_ONLY, full_paragraphs[REGISTERED_ONLY])
    expect(page.locator(CTA)).to_have_attribute("data-cg-reason", "registration_required")
    expect(register_link(page)).to_be_visible()

    # The free article is complete before, while and after the meter runs out.
    page.goto(article_path(FREE))
    assert_complete(page, expect, FREE, full_paragraphs[FREE])
    for slug in METERED[:METER_LIMIT]:
        page.goto(article_path(slug))
        assert_complete(page, expect, slug, full_paragraphs[slug])
    page.goto(article_path(METERED[METER_LIMIT]))
    expect(page.locator(CTA)).to_be_visible()
    page.goto(article_path(FREE))
    assert_complete(page, expect, FREE, full_paragraphs[FREE])

    # Still walled on a second visit, meter or not.
    page.goto(article_path(REGISTERED_ONLY))
    expect(page.locator(CTA)).to_be_visible()
    expect(page.locator(ARTICLE_P)).to_have_count(LEAD_PARAGRAPHS)


# -- 4. keyboard ------------------------------------------------------------------------
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  return {
    tag: el.tagName,
    text: (el.textContent || "").trim(),
    href: el.getAttribute("href"),
    inCta: !!el.closest("#consentgate-cta"),
    register: el.matches("#consentgate-cta a.cg-cta__register"),
    focusVisible: el.matches(":focus-visible"),
  };
}"""


def test_wall_cta_keyboard_reachable(new_context: NewContext, expect: Any, site: str) -> None:
    context = new_context()
    page = context.new_page()
    page.goto(article_path(REGISTERED_ONLY))
    expect(page.locator(CTA)).to_be_visible()
    # The banner stays open: a keyboard reader must get past it to the CTA.
    expect(page.locator(BANNER)).to_be_visible()

    presses = 0
    focused: dict[str, Any] | None = None
    while not (focused and focused["register"]):
        assert presses < 150, f"Tab never reached the CTA's register link; last: {focused}"
        page.keyboard.press("Tab")
        presses += 1
        focused = page.evaluate(FOCUSED)
    assert focused is not None
    assert focused["tag"] == "A" and focused["text"] == REGISTER_LABEL, focused
    assert focused["focusVisible"], f"the focused register link is not :focus-visible: {focused}"

    with page.expect_navigation():
        page.keyboard.press("Enter")
    parts = urlsplit(page.url)
    assert parts.path == REGISTER_PATH, page.url
    assert parse_qs(parts.query).get("next") == [article_path(REGISTERED_ONLY)], page.url
    expect(page.locator('form[action="/consentgate/register"]')).to_be_visible()
    assert SESSION not in cookie_names(context)
