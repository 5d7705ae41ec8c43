"""The consent banner in a real browser, against the demo news site served over HTTP.

Headless Debian Chromium via Playwright (sync API). The demo (examples/newsroom) runs
in uvicorn on 127.0.0.1 in a background thread, with a fresh data directory for this
module; every test gets a fresh browser context, hence an empty cookie jar.

Trackers of the demo: ``demo_analytics_id`` (analytics; set in the browser by the gated
``/static/demo-analytics.js``, which also sets ``window.demoAnalyticsRan`` and shows an
"analytics active" badge) and ``demo_ad_id`` (marketing; HttpOnly, set by the server
on every HTML page).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from examples.newsroom.app import create_app
from tests.browser_support import (
    DESKTOP,
    NewContext,
    assert_absent,
    cookie_names,
    cookies_by_name,
    serve,
)

pytestmark = pytest.mark.browser

ARTICLE = "/articles/harbour-dredging-vote"
OTHER_PAGES = ("/articles/library-reopening", "/sections/politics")
ANALYTICS = "demo_analytics_id"
AD = "demo_ad_id"
CONSENT = "cg_consent"
BANNER = "#consentgate-banner"
SETTINGS_LINK = "#consentgate-settings-link"
BADGE = ".demo-analytics-badge"
MOBILE = {"width": 375, "height": 740}


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(sync_api: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The wrapped demo over real HTTP, with its own ledger for this module."""
    data_dir = tmp_path_factory.mktemp("newsroom-data")
    with serve(create_app(data_dir)) as base_url:
        yield base_url


@pytest.fixture
def context(new_context: NewContext) -> Any:
    return new_context()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture
def expect(sync_api: Any) -> Any:
    return sync_api.expect


# -- helpers --------------------------------------------------------------------------
def banner_button(page: Any, name: str) -> Any:
    return page.locator(BANNER).get_by_role("button", name=name, exact=True)


def analytics_ran(page: Any) -> Any:
    return page.evaluate("() => window.demoAnalyticsRan")


def consent_json(context: Any) -> dict[str, Any]:
    """``GET /consentgate/consent`` with the context's cookies and headers."""
    page = context.new_page()
    try:
        response = page.goto("/consentgate/consent")
        assert response is not None and response.ok
        data: dict[str, Any] = json.loads(response.text())
        return data
    finally:
        page.close()


def assert_no_trackers(page: Any, expect: Any, when: str) -> None:
    assert_absent(page.context, [ANALYTICS, AD], when)
    assert analytics_ran(page) is None, f"{when}: the analytics script ran"
    expect(page.locator(BADGE)).to_have_count(0)


def decide_in_banner(page: Any, expect: Any, name: str) -> None:
    """Click a banner button; the banner's script records it and removes the banner."""
    expect(page.locator(BANNER)).to_be_visible()
    banner_button(page, name).click()
    expect(page.locator(BANNER)).to_have_count(0)
    expect(page.locator(SETTINGS_LINK)).to_be_visible()


# -- 1. reject --------------------------------------------------------------------------
def test_reject_all_sets_no_tracker_and_runs_no_script(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    assert_no_trackers(page, expect, "undecided, first page")

    decide_in_banner(page, expect, "Reject all")
    assert_no_trackers(page, expect, "right after Reject all")

    for path in OTHER_PAGES:
        page.goto(path)
        assert_no_trackers(page, expect, f"after Reject all, on {path}")
        expect(page.locator(BANNER)).to_have_count(0)
        expect(page.locator(SETTINGS_LINK)).to_be_visible()

    jar = cookies_by_name(page.context)
    assert CONSENT in jar, "no consent cookie after Reject all"
    assert jar[CONSENT]["httpOnly"] is True
    state = consent_json(page.context)
    assert state["decided"] is True
    assert state["granted"] == ["necessary"]


# -- 2. accept --------------------------------------------------------------------------
def test_accept_all_sets_both_trackers_and_runs_script(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    assert_no_trackers(page, expect, "undecided")

    decide_in_banner(page, expect, "Accept all")
    # The banner's script activates the gated script on the spot, without a reload.
    page.wait_for_function("() => window.demoAnalyticsRan === true")
    expect(page.locator(BADGE)).to_be_visible()
    assert ANALYTICS in cookie_names(page.context)

    page.reload()
    # Now the server itself ships the script live, and lets the ad cookie through.
    page.wait_for_function("() => window.demoAnalyticsRan === true")
    expect(page.locator(BADGE)).to_be_visible()
    expect(page.locator(BANNER)).to_have_count(0)
    live = page.locator('script[src="/static/demo-analytics.js"]')
    expect(live).to_have_count(1)
    assert live.get_attribute("type") is None
    expect(page.locator("iframe[data-consent=marketing]")).to_have_attribute(
        "src", "/static/embed.html"
    )
    jar = cookies_by_name(page.context)
    assert ANALYTICS in jar
    assert AD in jar, "the server's ad cookie did not arrive after Accept all"
    assert jar[AD]["httpOnly"] is True
    assert jar[ANALYTICS]["httpOnly"] is False


# -- 3. withdraw ------------------------------------------------------------------------
def test_withdraw_consent_expires_both_trackers(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    decide_in_banner(page, expect, "Accept all")
    page.wait_for_function("() => window.demoAnalyticsRan === true")
    page.goto(OTHER_PAGES[0])
    page.wait_for_function("() => window.demoAnalyticsRan === true")
    jar = cookies_by_name(page.context)
    assert ANALYTICS in jar and AD in jar, f"precondition: both trackers set, got {sorted(jar)}"
    assert jar[AD]["httpOnly"] is True

    page.locator(SETTINGS_LINK).click()
    page.wait_for_url("**/consentgate/settings**")
    withdraw = page.locator('form[data-cg="withdraw"]').get_by_role(
        "button", name="Withdraw consent", exact=True
    )
    with page.expect_response(
        lambda r: r.url.endswith("/consentgate/consent/withdraw") and r.request.method == "POST"
    ) as answer:
        withdraw.click()
    assert answer.value.ok, f"withdraw answered {answer.value.status}"
    # The script reports the change on the page (no reload).
    expect(page.locator("#cg-status")).not_to_be_empty()
    for box in page.locator('form[data-cg="settings"] input[name="category"]').all():
        expect(box).not_to_be_checked()

    # The server expired both — the HttpOnly ad cookie and the script-set analytics one.
    assert_absent(page.context, [ANALYTICS, AD], "right after Withdraw consent")
    state = consent_json(page.context)
    assert state["granted"] == ["necessary"]
    assert set(state["denied"]) >= {"analytics", "marketing"}

    page.goto(OTHER_PAGES[1])
    assert_no_trackers(page, expect, "on the next page after withdrawing")
    expect(page.locator(SETTINGS_LINK)).to_be_visible()


# -- 4. customise -----------------------------------------------------------------------
def test_customise_analytics_only_sets_analytics_cookie_only(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    banner = page.locator(BANNER)
    boxes = banner.locator('input[type="checkbox"][name="category"]')
    # Nothing pre-ticked before the reader touches anything (Planet49).
    assert boxes.count() == 3
    for box in boxes.all():
        assert not box.is_checked(), f"{box.get_attribute('value')} is pre-ticked"

    banner.get_by_text("Customise", exact=True).click()
    for box in boxes.all():
        expect(box).to_be_visible()
        expect(box).not_to_be_checked()
    banner.locator('input[name="category"][value="analytics"]').check()
    banner_button(page, "Save my choices").click()
    expect(banner).to_have_count(0)
    page.wait_for_function("() => window.demoAnalyticsRan === true")

    page.goto(OTHER_PAGES[0])
    page.wait_for_function("() => window.demoAnalyticsRan === true")
    names = cookie_names(page.context)
    assert ANALYTICS in names
    assert AD not in names, "the ad cookie got through with only analytics allowed"
    expect(page.locator("iframe[data-consent=marketing]")).not_to_have_attribute(
        "src", "/static/embed.html"
    )
    state = consent_json(page.context)
    assert state["granted"] == ["necessary", "analytics"]


# -- 5. keyboard only -------------------------------------------------------------------
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  return {
    text: (el.textContent || "").trim(),
    tag: el.tagName,
    id: el.id,
    inBanner: !!el.closest("#consentgate-banner"),
    focusVisible: el.matches(":focus-visible"),
    outlineStyle: getComputedStyle(el).outlineStyle,
    outlineWidth: parseFloat(getComputedStyle(el).outlineWidth) || 0,
    boxShadow: getComputedStyle(el).boxShadow,
  };
}"""


def test_keyboard_only_reaches_reject_and_decides(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    expect(page.locator(BANNER)).to_be_visible()

    # banner.js may put focus on the banner's first button at load; either way, walk
    # the real Tab order (at least one press, wrapping round the page if need be)
    # until focus lands on "Reject all" again.
    presses = 0
    focused: dict[str, Any] | None = None
    while presses == 0 or not (focused and focused["inBanner"] and focused["text"] == "Reject all"):
        assert presses < 100, f"Tab never reached the banner's Reject all; last: {focused}"
        page.keyboard.press("Tab")
        presses += 1
        focused = page.evaluate(FOCUSED)
    assert focused is not None

    assert focused["tag"] == "BUTTON"
    assert focused["focusVisible"], "the keyboard-focused button is not :focus-visible"
    has_outline = focused["outlineStyle"] != "none" and focused["outlineWidth"] > 0
    has_ring = focused["boxShadow"] not in ("", "none")
    assert has_outline or has_ring, f"no visible focus indicator: {focused}"

    page.keyboard.press("Enter")
    expect(page.locator(BANNER)).to_have_count(0)
    assert CONSENT in cookie_names(page.context)
    # Focus is not lost with the banner: it moves to the new "Cookie settings" link.
    expect(page.locator(SETTINGS_LINK)).to_be_focused()
    state = consent_json(page.context)
    assert state["decided"] is True
    assert state["granted"] == ["necessary"]
    assert_no_trackers(page, expect, "after rejecting by keyboard")


# -- 6. no JavaScript -------------------------------------------------------------------
def test_no_javascript_reject_and_accept_work_by_form(
    new_context: NewContext, site: str, expect: Any
) -> None:
    context = new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(ARTICLE)
    banner = page.locator(BANNER)
    expect(banner).to_be_visible()

    with page.expect_navigation():
        banner_button(page, "Reject all").click()
    assert page.url == site + ARTICLE, "the 303 did not lead back to the article"
    expect(banner).to_have_count(0)
    expect(page.locator(SETTINGS_LINK)).to_be_visible()
    assert CONSENT in cookie_names(context)
    assert_absent(context, [ANALYTICS, AD], "no JS, after Reject all")
    page.goto(OTHER_PAGES[0])
    assert_absent(context, [ANALYTICS, AD], "no JS, next page after Reject all")

    page.locator(SETTINGS_LINK).click()
    page.wait_for_url("**/consentgate/settings**")
    settings_form = page.locator('form[data-cg="settings"]')
    with page.expect_navigation():
        settings_form.get_by_role("button", name="Accept all", exact=True).click()
    assert page.url == site + OTHER_PAGES[0], "the settings form did not lead back"
    page.goto(OTHER_PAGES[1])
    jar = cookies_by_name(context)
    assert AD in jar, "no JS: the ad cookie did not arrive after accepting on the settings page"
    assert jar[AD]["httpOnly"] is True
    # The server ships the analytics script live (a browser with JS would run it).
    live = page.locator('script[src="/static/demo-analytics.js"]')
    expect(live).to_have_count(1)
    assert live.get_attribute("type") is None
    assert ANALYTICS not in jar, "no JS, yet the analytics cookie appeared"


def test_no_javascript_banner_form_without_its_token_is_vouched_for_by_the_browser(
    new_context: NewContext, site: str, expect: Any
) -> None:
    # A banner on a page a shared cache keeps carries no per-reader token. Chromium's
    # own Origin and Sec-Fetch-Site on the form post are what let the decision through:
    # without the CSRF cookie, the form's token matches nothing.
    context = new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(ARTICLE)
    context.clear_cookies(name="cg_csrf")
    with page.expect_navigation():
        banner_button(page, "Reject all").click()
    assert page.url == site + ARTICLE
    expect(page.locator(BANNER)).to_have_count(0)
    assert CONSENT in cookie_names(context)


# -- 7. equal weight --------------------------------------------------------------------
STYLE = """el => {
  const s = getComputedStyle(el);
  return {background: s.backgroundColor, color: s.color, weight: s.fontWeight,
          size: s.fontSize, border: s.borderTopColor + " " + s.borderTopWidth};
}"""


def test_equal_weight_accept_and_reject_look_the_same(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    expect(page.locator(BANNER)).to_be_visible()
    page.mouse.move(0, 0)  # no hover on either button
    accept = banner_button(page, "Accept all")
    reject = banner_button(page, "Reject all")
    accept_box = accept.bounding_box()
    reject_box = reject.bounding_box()
    assert accept_box and reject_box
    assert abs(accept_box["width"] - reject_box["width"]) <= 1, (accept_box, reject_box)
    assert abs(accept_box["height"] - reject_box["height"]) <= 1, (accept_box, reject_box)
    # Side by side in the first layer, both in view.
    assert abs(accept_box["y"] - reject_box["y"]) <= 1, (accept_box, reject_box)
    assert accept.is_visible() and reject.is_visible()
    assert accept.evaluate(STYLE) == reject.evaluate(STYLE)


# -- 8. Global Privacy Control ----------------------------------------------------------
def test_gpc_signal_denies_marketing_without_any_click(
    new_context: NewContext, expect: Any
) -> None:
    context = new_context(extra_http_headers={"Sec-GPC": "1"})
    page = context.new_page()
    page.goto(ARTICLE)
    banner = page.locator(BANNER)
    expect(banner).to_be_visible()
    expect(banner.locator(".cg-gpc")).to_be_visible()
    expect(banner.locator(".cg-gpc")).to_contain_text("Global Privacy Control")
    marketing = banner.locator('input[name="category"][value="marketing"]')
    assert not marketing.is_checked()

    page.goto(OTHER_PAGES[0])
    assert AD not in cookie_names(context), "the ad cookie was set despite Sec-GPC: 1"

    state = consent_json(context)
    assert state["gpc"] is True
    assert state["mode"] == "opt-in"
    assert "marketing" in state["denied"]
    assert "marketing" not in state["granted"]


# -- 8b. the video embed, a page of the site shown in a frame ---------------------------
def test_embed_in_a_frame_gets_no_banner_or_settings_link(page: Any, expect: Any) -> None:
    page.goto(ARTICLE)
    decide_in_banner(page, expect, "Accept all")
    page.reload()
    embed = page.locator("iframe[data-consent=marketing]")
    embed.scroll_into_view_if_needed()  # it loads lazily
    frame = page.frame_locator("iframe[data-consent=marketing]")
    expect(frame.get_by_text("Demo video player")).to_be_visible()
    # Chromium asked for it with Sec-Fetch-Dest: iframe: the article around it carries
    # the settings link, the embed neither that nor a banner of its own.
    expect(frame.locator(SETTINGS_LINK)).to_have_count(0)
    expect(frame.locator(BANNER)).to_have_count(0)
    expect(page.locator(SETTINGS_LINK)).to_have_count(1)
    # The same page opened on its own is a page like any other.
    page.goto("/static/embed.html")
    expect(page.locator(SETTINGS_LINK)).to_be_visible()


# -- 9. layout & screenshot -------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "viewport", "mobile"),
    [("desktop", DESKTOP, False), ("mobile", MOBILE, True)],
    ids=["desktop-1280x800", "mobile-375x740"],
)
def test_banner_layout_fits_viewport_and_screenshot(
    new_context: NewContext,
    expect: Any,
    tmp_path: Path,
    label: str,
    viewport: dict[str, int],
    mobile: bool,
) -> None:
    context = new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
    page = context.new_page()
    page.goto(ARTICLE)
    banner = page.locator(BANNER)
    expect(banner).to_be_visible()
    page.wait_for_load_state("load")

    shot = tmp_path / f"banner-{label}.png"
    page.screenshot(path=str(shot))
    banner.screenshot(path=str(tmp_path / f"banner-{label}-element.png"))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 1000

    box = banner.bounding_box()
    assert box is not None
    width, height = viewport["width"], viewport["height"]
    assert box["x"] >= -0.5 and box["y"] >= -0.5, box
    assert box["x"] + box["width"] <= width + 0.5, box
    assert box["y"] + box["height"] <= height + 0.5, box
    assert box["height"] < 0.6 * height, (
        f"{label}: the banner is {box['height']:.0f}px high, "
        f"{box['height'] / height:.0%} of a {width}×{height} viewport"
    )
    # Both choices are on screen without scrolling the banner.
    for name in ("Reject all", "Accept all"):
        button_box = banner_button(page, name).bounding_box()
        assert button_box is not None
        assert button_box["y"] + button_box["height"] <= height + 0.5, (name, button_box)
