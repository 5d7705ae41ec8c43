"""The server-rendered banner, settings link, settings page and message page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from consentgate.config import SUPPORTED_LANGUAGES, Category, default_categories
from consentgate.consent.texts import BUILTIN_TEXTS, resolve_texts
from consentgate.web.templates import (
    BannerContext,
    render_banner,
    render_message_page,
    render_settings_control,
    render_settings_page,
)

STATIC = Path(__file__).resolve().parents[1] / "src" / "consentgate" / "web" / "static"
VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
EVIL_NEXT = '/article?a=1&b="><script>alert(1)</script>'


# -- a tiny DOM built with the standard library's parser ------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and all(n.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]

    def text(self) -> str:
        return "".join("".join(n.text_parts) for n in self.iter())

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.current = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [k for k, _ in attrs]
        if len(names) != len(set(names)):
            self.errors.append(f"duplicate attribute on <{tag}>")
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.current.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.current.tag}>")
            return
        assert self.current.parent is not None
        self.current = self.current.parent

    def handle_data(self, data: str) -> None:
        self.current.text_parts.append(data)


def parse(markup: str) -> Node:
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    assert not builder.errors, builder.errors
    assert builder.current is builder.root, "unclosed elements"
    return builder.root


def make_ctx(**changes: Any) -> BannerContext:
    lang = changes.pop("lang", "en")
    ctx = BannerContext(
        prefix="/consentgate",
        lang=lang,
        texts=resolve_texts(lang, {}),
        categories=default_categories(),
        granted=frozenset(),
        decided=False,
        csrf_token="tok-123_abc",
        next_url="/news/2024/a-story",
        policy_url="/privacy",
        policy_version="3",
        site_name="The Daily Example",
        gpc=False,
        mode="opt-in",
        static_version="v42",
        nonce=None,
    )
    return replace(ctx, **changes)


def optional_inputs(root: Node) -> list[Node]:
    return root.find_all("input", type="checkbox", name="category")


# -- banner -------------------------------------------------------------------------------


def test_banner_undecided_no_checked_optional_category() -> None:
    root = parse(render_banner(make_ctx()))
    inputs = optional_inputs(root)
    assert [i.attrs["value"] for i in inputs] == ["preferences", "analytics", "marketing"]
    assert all("checked" not in i.attrs for i in inputs)


def test_banner_undecided_with_stale_granted_still_unticked() -> None:
    root = parse(render_banner(make_ctx(granted=frozenset({"analytics", "marketing"}))))
    assert all("checked" not in i.attrs for i in optional_inputs(root))


def test_banner_required_category_visual_only_not_submitted() -> None:
    root = parse(render_banner(make_ctx()))
    boxes = root.find_all("input", type="checkbox")
    required = [b for b in boxes if "name" not in b.attrs]
    assert len(required) == 1
    assert "checked" in required[0].attrs
    assert "disabled" in required[0].attrs
    assert "Always on" in root.text()


def test_banner_accept_reject_equal_weight() -> None:
    root = parse(render_banner(make_ctx()))
    accept = root.find("button", value="accept_all")
    reject = root.find("button", value="reject_all")
    for button in (accept, reject):
        assert button.attrs["type"] == "submit"
        assert button.attrs["name"] == "action"
        assert "style" not in button.attrs
    assert accept.attrs["class"] == reject.attrs["class"]
    assert set(accept.attrs) == set(reject.attrs)
    assert accept.parent is reject.parent  # adjacent, same container
    siblings = accept.parent.children if accept.parent else []
    assert abs(siblings.index(accept) - siblings.index(reject)) == 1
    form_a = next(a for a in accept.ancestors() if a.tag == "form")
    form_r = next(a for a in reject.ancestors() if a.tag == "form")
    assert form_a is form_r
    assert not any(a.tag == "details" for a in accept.ancestors())
    assert not any(a.tag == "details" for a in reject.ancestors())


def test_banner_form_posts_to_consent_endpoint() -> None:
    root = parse(render_banner(make_ctx()))
    form = root.find("form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == "/consentgate/consent"


def test_banner_customise_details_holds_checkboxes_and_save() -> None:
    root = parse(render_banner(make_ctx()))
    details = root.find("details")
    assert details.find("summary").text() == "Customise"
    assert len(optional_inputs(details)) == 3
    save = details.find("button", value="save")
    assert save.attrs["type"] == "submit" and save.attrs["name"] == "action"


def test_banner_dialog_aria_points_at_existing_ids() -> None:
    root = parse(render_banner(make_ctx()))
    dialog = root.find(id="consentgate-banner")
    assert dialog.attrs["role"] == "dialog"
    assert dialog.attrs["aria-modal"] == "false"
    ids = {n.attrs["id"] for n in root.iter() if n.attrs.get("id")}
    labelled = str(dialog.attrs["aria-labelledby"])
    described = str(dialog.attrs["aria-describedby"])
    assert labelled in ids and described in ids
    assert root.find(id=labelled).text() == BUILTIN_TEXTS["en"]["title"]
    for node in root.iter():
        ref = node.attrs.get("aria-describedby")
        if ref:
            assert ref in ids


def test_banner_ids_unique() -> None:
    root = parse(render_banner(make_ctx(gpc=True)))
    ids = [n.attrs["id"] for n in root.iter() if n.attrs.get("id")]
    assert len(ids) == len(set(ids))


def test_banner_hidden_fields_present() -> None:
    root = parse(render_banner(make_ctx()))
    form = root.find("form")
    hidden = {i.attrs["name"]: i.attrs["value"] for i in form.find_all("input", type="hidden")}
    assert hidden == {"csrf_token": "tok-123_abc", "next": "/news/2024/a-story", "lang": "en"}


def test_banner_hostile_next_url_escaped() -> None:
    markup = render_banner(make_ctx(next_url=EVIL_NEXT, csrf_token='a"b<c>'))
    assert "<script>alert" not in markup
    assert '"><script>' not in markup
    root = parse(markup)
    hidden = {i.attrs["name"]: i.attrs["value"] for i in root.find_all("input", type="hidden")}
    assert hidden["next"] == EVIL_NEXT  # round-trips intact once the browser unescapes it
    assert hidden["csrf_token"] == 'a"b<c>'
    assert len(root.find_all("script")) == 1  # only ours


def test_banner_hostile_texts_and_categories_escaped() -> None:
    evil = '<img src=x onerror="alert(1)">'
    ctx = make_ctx(
        texts=resolve_texts("en", {"en": {"title": evil}}),
        categories=(*default_categories(), Category("x-evil", evil, evil)),
        policy_url='/p?"><script>',
        site_name=evil,
    )
    markup = render_banner(ctx)
    assert "<img" not in markup
    assert "<script>" not in markup
    parse(markup)


def test_banner_csp_friendly_no_inline_code() -> None:
    markup = render_banner(make_ctx())
    root = parse(markup)
    for node in root.iter():
        assert "style" not in node.attrs
        assert not any(name.startswith("on") for name in node.attrs)
    assert root.find_all("style") == []
    scripts = root.find_all("script")
    assert len(scripts) == 1
    assert scripts[0].attrs["src"] == "/consentgate/static/banner.js?v=v42"
    assert "defer" in scripts[0].attrs
    assert scripts[0].text() == ""
    link = root.find("link", rel="stylesheet")
    assert link.attrs["href"] == "/consentgate/static/banner.css?v=v42"
    assert "javascript:" not in markup


def test_banner_nonce_on_script_and_link() -> None:
    root = parse(render_banner(make_ctx(nonce="n0nce+/=")))
    assert root.find("script").attrs["nonce"] == "n0nce+/="
    assert root.find("link").attrs["nonce"] == "n0nce+/="


def test_banner_without_nonce_has_no_nonce_attribute() -> None:
    root = parse(render_banner(make_ctx()))
    assert all("nonce" not in n.attrs for n in root.iter())


def test_banner_gpc_true_shows_note_and_keeps_gpc_boxes_unticked() -> None:
    root = parse(render_banner(make_ctx(gpc=True)))
    assert BUILTIN_TEXTS["en"]["gpc_note"] in root.text()
    marketing = root.find("input", value="marketing")
    assert "checked" not in marketing.attrs


def test_banner_gpc_false_no_note() -> None:
    root = parse(render_banner(make_ctx()))
    assert "Global Privacy Control" not in root.text()


def test_banner_policy_link_with_version() -> None:
    root = parse(render_banner(make_ctx()))
    link = root.find("a", href="/privacy")
    assert link.text() == "Privacy policy"
    assert link.parent is not None
    assert "(version 3)" in link.parent.text()


@pytest.mark.parametrize(
    ("mode", "key"), [("opt-in", "intro"), ("opt-out", "intro_opt_out"), ("notice", "intro_notice")]
)
def test_banner_mode_selects_intro(mode: str, key: str) -> None:
    root = parse(render_banner(make_ctx(mode=mode)))
    # The mode's intro, naming the purposes of the default categories (a notice also
    # the strictly necessary one).
    purposes = "remember your preferences, measure our audience and show advertising"
    if mode == "notice":
        purposes = "keep the site working, " + purposes
    expected = BUILTIN_TEXTS["en"][key].replace("{purposes}", purposes)
    assert "{purposes}" in BUILTIN_TEXTS["en"][key]
    assert root.find(id="cg-intro").text() == expected


def test_banner_settings_label_for_script() -> None:
    root = parse(render_banner(make_ctx(next_url="/a b?c=d")))
    dialog = root.find(id="consentgate-banner")
    assert dialog.attrs["data-settings-label"] == "Cookie settings"
    assert dialog.attrs["data-settings-url"] == "/consentgate/settings?next=/a%20b%3Fc%3Dd"


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_banner_every_language_renders(lang: str) -> None:
    ctx = make_ctx(lang=lang, gpc=True)
    root = parse(render_banner(ctx))
    texts = BUILTIN_TEXTS[lang]
    assert root.find(id="consentgate-banner").attrs["lang"] == lang
    assert root.find("button", value="accept_all").text() == texts["accept_all"]
    assert root.find("button", value="reject_all").text() == texts["reject_all"]
    assert texts["category.analytics.title"] in root.text()
    assert texts["gpc_note"] in root.text()


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_settings_page_every_language_renders(lang: str) -> None:
    root = parse(render_settings_page(make_ctx(lang=lang), consent_id=None, decided_at=None))
    assert root.find("html").attrs["lang"] == lang
    assert BUILTIN_TEXTS[lang]["withdraw"] in root.text()


def test_banner_size_budget_html_css_js_within_8_kib() -> None:
    markup = render_banner(make_ctx(csrf_token="x" * 43))
    css = (STATIC / "banner.css").read_bytes()
    js = (STATIC / "banner.js").read_bytes()
    total = len(markup.encode("utf-8")) + len(css) + len(js)
    assert total <= 8192, f"{total} bytes"


# -- static files -------------------------------------------------------------------------


def test_static_css_selectors_namespaced() -> None:
    css = (STATIC / "banner.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"@keyframes[^{]*\{(?:[^{}]*\{[^}]*\})*[^}]*\}", "", css)
    for selectors in re.findall(r"(?:^|[{}])\s*([^{}@]+?)\s*\{", css):
        for selector in selectors.split(","):
            first = selector.strip().split()[0]
            assert first.startswith(("#consentgate-", ".cg-")), selector


def test_static_css_focus_and_reduced_motion() -> None:
    css = (STATIC / "banner.css").read_text(encoding="utf-8")
    assert ":focus-visible" in css
    assert "prefers-reduced-motion" in css


def test_static_js_no_eval_or_inline_code() -> None:
    js = (STATIC / "banner.js").read_text(encoding="utf-8")
    for forbidden in ("eval(", "new Function", "innerHTML", "document.write", 'setTimeout("'):
        assert forbidden not in js
    assert "X-CSRF-Token" in js and "form.submit()" in js
    # form.action would return the <button name="action"> controls, not the URL
    assert "form.action" not in js


# -- settings control ---------------------------------------------------------------------


def test_settings_control_link_with_next() -> None:
    root = parse(render_settings_control(make_ctx(decided=True, next_url=EVIL_NEXT)))
    link = root.find("a", id="consentgate-settings-link")
    assert link.attrs["href"] == (
        "/consentgate/settings?next=/article%3Fa%3D1%26b%3D%22%3E%3Cscript%3Ealert%281%29"
        "%3C/script%3E"
    )
    assert link.text() == "Cookie settings"
    assert root.find_all("script") == []


def test_settings_control_small() -> None:
    assert len(render_settings_control(make_ctx(decided=True))) < 400


# -- settings page ------------------------------------------------------------------------


def _settings(**changes: Any) -> Node:
    consent_id = changes.pop("consent_id", "cr_123")
    decided_at = changes.pop("decided_at", "2024-05-01 10:00 UTC")
    history = changes.pop("history", ())
    markup = render_settings_page(
        make_ctx(**changes), consent_id=consent_id, decided_at=decided_at, history=history
    )
    assert markup.startswith("<!DOCTYPE html>")
    return parse(markup)


def test_settings_page_reflects_current_choice() -> None:
    root = _settings(decided=True, granted=frozenset({"necessary", "analytics"}))
    ticked = {i.attrs["value"]: "checked" in i.attrs for i in optional_inputs(root)}
    assert ticked == {"preferences": False, "analytics": True, "marketing": False}
    states = {n.attrs["data-cg-state"]: n.text() for n in root.iter() if "data-cg-state" in n.attrs}
    assert states == {
        "preferences": "Not allowed",
        "analytics": "Allowed",
        "marketing": "Not allowed",
    }


def test_settings_page_undecided_unticked_and_says_so() -> None:
    root = _settings(
        decided=False, granted=frozenset({"analytics"}), consent_id=None, decided_at=None
    )
    assert all("checked" not in i.attrs for i in optional_inputs(root))
    assert BUILTIN_TEXTS["en"]["state_undecided"] in root.text()
    assert root.find_all("a", href="/consentgate/consent/receipt") == []


def test_settings_page_document_basics() -> None:
    root = _settings(decided=True)
    assert root.find("html").attrs["lang"] == "en"
    assert root.find("title").text() == "Cookie settings – The Daily Example"
    assert root.find("meta", name="viewport")
    stylesheet = root.find("link", rel="stylesheet")
    assert stylesheet.attrs["href"] == "/consentgate/static/banner.css?v=v42"


def test_settings_page_forms_and_buttons() -> None:
    root = _settings(decided=True, granted=frozenset({"marketing"}))
    consent_form = root.find("form", action="/consentgate/consent")
    accept = consent_form.find("button", value="accept_all")
    reject = consent_form.find("button", value="reject_all")
    assert accept.attrs["class"] == reject.attrs["class"]
    assert consent_form.find("button", value="save")
    hidden = {i.attrs["name"] for i in consent_form.find_all("input", type="hidden")}
    assert hidden == {"csrf_token", "next", "lang"}
    withdraw_form = root.find("form", action="/consentgate/consent/withdraw")
    assert withdraw_form.attrs["method"] == "post"
    assert withdraw_form.find("input", name="csrf_token").attrs["value"] == "tok-123_abc"
    assert withdraw_form.find("input", name="next").attrs["value"] == "/news/2024/a-story"
    assert withdraw_form.find("button").text() == "Withdraw consent"


def test_settings_page_links() -> None:
    root = _settings(decided=True, next_url=EVIL_NEXT)
    assert root.find("a", href="/consentgate/consent/receipt")
    assert root.find("a", href="/privacy")
    assert root.find("a", href=EVIL_NEXT).text() == "Back to the site"
    assert "cr_123" in root.text() and "2024-05-01 10:00 UTC" in root.text()


def test_settings_page_hostile_values_escaped() -> None:
    markup = render_settings_page(
        make_ctx(decided=True, next_url=EVIL_NEXT, site_name="<b>x</b>"),
        consent_id='"><script>1</script>',
        decided_at="<i>",
        history=(("<when>", "<action>", "<cats>"),),
    )
    assert "<script>1" not in markup and "<b>x" not in markup and "<i>" not in markup
    assert "<when>" not in markup and "<action>" not in markup
    parse(markup)


def test_settings_page_history_labels() -> None:
    root = _settings(
        decided=True,
        history=(("2024-05-01", "withdraw", "—"), ("2024-04-01", "grant", "analytics")),
    )
    table_text = root.find_all("table")[-1].text()
    assert "Withdrew consent" in table_text and "Gave consent" in table_text


def test_settings_page_gpc_note() -> None:
    root = _settings(gpc=True)
    assert BUILTIN_TEXTS["en"]["gpc_note"] in root.text()


def test_settings_page_works_without_script_handlers() -> None:
    root = _settings(decided=True, nonce="abc")
    for node in root.iter():
        assert not any(name.startswith("on") for name in node.attrs)
        assert "style" not in node.attrs
    assert all(s.attrs.get("nonce") == "abc" for s in root.find_all("script"))


# -- message page -------------------------------------------------------------------------


def test_message_page_escaped_and_complete() -> None:
    markup = render_message_page(
        "fr", "<Erreur>", 'Réessayez "maintenant" <script>', "/back?x=\"'", prefix="/consentgate"
    )
    assert "<script>" not in markup and "<Erreur>" not in markup
    root = parse(markup)
    assert root.find("html").attrs["lang"] == "fr"
    assert root.find("title").text() == "<Erreur>"
    back = root.find("a", href="/back?x=\"'")
    assert back.text() == BUILTIN_TEXTS["fr"]["back"]
    assert str(root.find("link", rel="stylesheet").attrs["href"]).startswith("/consentgate/static/")


def test_message_page_without_back_link() -> None:
    root = parse(render_message_page("en", "Oops", "Try again.", None, prefix="/cg"))
    assert root.find_all("a") == []


# -- in a real browser (progressive enhancement under a strict CSP) -------------------------


@pytest.mark.browser
def test_banner_script_in_browser_saves_activates_and_falls_back() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    posts: list[tuple[str, str, str]] = []
    fail = {"on": False}
    csp = "default-src 'self'; script-src 'nonce-n1' 'strict-dynamic'; style-src 'self'"
    page_html = (
        "<!doctype html><html><body><h1>Story</h1>"
        '<script type="text/plain" data-consent="analytics" data-src="/t.js"></script>'
        '<script type="text/plain" data-consent="marketing">window.ads=1</script>'
        '<iframe data-consent="analytics" data-src="/done"></iframe>'
        + render_banner(make_ctx(nonce="n1", next_url="/done"))
        + "</body></html>"
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-security-policy", csp)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.startswith("/consentgate/static/"):
                name = path.rsplit("/", 1)[-1]
                ctype = "text/css" if name.endswith(".css") else "text/javascript"
                self.reply(200, (STATIC / name).read_bytes(), ctype)
            elif path == "/t.js":
                self.reply(200, b"window.tracked=(window.tracked||0)+1;", "text/javascript")
            elif path == "/done":
                self.reply(200, b"<p>done</p>", "text/html")
            else:
                self.reply(200, page_html.encode(), "text/html")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            ctype = self.headers.get("content-type", "")
            posts.append((ctype, self.headers.get("x-csrf-token", ""), body))
            if "json" not in ctype:
                self.send_response(303)
                self.send_header("location", "/done")
                self.end_headers()
                return
            if fail["on"]:
                self.reply(503, b'{"error":"storage_unavailable"}', "application/json")
                return
            data = json.loads(body)
            granted = ["necessary", *data["categories"]]
            answer = {"granted": granted, "settings_url": "/consentgate/settings?next=/done"}
            self.reply(200, json.dumps(answer).encode(), "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(base + "/story")
            page.click("summary")
            page.check('input[value="analytics"]')
            page.click('button[value="save"]')
            page.wait_for_selector("#consentgate-banner", state="detached")
            # Polled with evaluate: wait_for_function evaluates a string in the page, which
            # the page's strict CSP (no 'unsafe-eval') refuses whenever it has to poll.
            for _ in range(200):
                if page.evaluate("window.tracked") == 1:
                    break
                page.wait_for_timeout(50)
            assert page.evaluate("window.tracked") == 1
            assert page.evaluate("window.ads") is None
            assert page.get_attribute("iframe", "src") == "/done"
            assert page.evaluate("document.activeElement.id") == "consentgate-settings-link"
            ctype, token, body = posts[-1]
            assert ctype == "application/json" and token == "tok-123_abc"
            assert json.loads(body) == {
                "action": "save",
                "categories": ["analytics"],
                "next": "/done",
                "lang": "en",
            }
            fail["on"] = True
            page.goto(base + "/story")
            page.click('button[value="accept_all"]')
            page.wait_for_url("**/done")
            assert posts[-1][0] == "application/x-www-form-urlencoded"
            assert "action=accept_all" in posts[-1][2] and "csrf_token=tok-123_abc" in posts[-1][2]
            browser.close()
    finally:
        server.shutdown()
