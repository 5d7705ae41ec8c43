"""Our reader pages in the site's own look ([pages] layout_path, web/shell.py), through
HTTP: the site's layout page carries our content inside its marker (by html5lib's
parse, the browsers' algorithm), loses its scripts, is fetched anonymously and kept for
its TTL per language; any trouble with it gives our default page, never a failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import html5lib
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from tests.conftest import client, make_gate, run

from consentgate.config import Config, ConfigError
from consentgate.web.shell import MAX_LAYOUT_BYTES

NS = "{http://www.w3.org/1999/xhtml}"
LAYOUT_PATH = "/_consentgate/layout"
BROWSER = {"accept": "text/html", "accept-language": "en"}

LAYOUT = """<!doctype html>
<html lang="en-GB"><head><meta charset="utf-8"><title>The Site</title>
<link rel="stylesheet" href="/static/site.css">
<link rel="preconnect dns-prefetch" href="https://tracker.test">
<link rel="preload" as="script" href="https://tracker.test/t.js">
<base href="https://elsewhere.test/">
<meta http-equiv="refresh" content="0; url=https://elsewhere.test/">
<script src="https://tracker.test/t.js"></script>
<script>window.track("page");</script>
</head><body class="site">
<header class="site-header"><p class="masthead"><a href="/">The Harbour Ledger</a></p>
<nav class="site-nav"><ul><li><a href="/">Home</a></li></ul></nav></header>
<noscript><img src="https://tracker.test/pixel.gif"></noscript>
<main id="main" data-consentgate-content><p>Placeholder the site writes here.</p></main>
<footer class="site-footer"><p>14 Quay Street</p></footer>
<script>window.track("end");</script>
</body></html>"""


class Site:
    """A site app whose layout page answers as a test says, counting its requests."""

    def __init__(self, layout: Callable[[Request], Awaitable[Response]] | None = None) -> None:
        self.requests: list[Request] = []
        self._layout = layout or self.default_layout

    async def default_layout(self, request: Request) -> Response:
        language = request.headers.get("accept-language", "")
        return HTMLResponse(LAYOUT.replace('lang="en-GB"', f'lang="{language}"'))

    async def layout(self, request: Request) -> Response:
        self.requests.append(request)
        return await self._layout(request)

    async def home(self, request: Request) -> Response:
        return HTMLResponse("<!doctype html><html><head></head><body><p>Home</p></body></html>")

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route(LAYOUT_PATH, self.layout), Route("/", self.home)],
        )


def _gate(site: Site, tmp_path: Path, **pages: Any) -> Any:
    return make_gate(site.app(), tmp_path, pages={"layout_path": LAYOUT_PATH, **pages})


def _get(app: Any, *paths: str, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        async with client(app) as c:
            return [await c.get(path, headers=headers or BROWSER) for path in paths]

    return run(scenario())


def _marker(document: str | Any) -> Any:
    tree = html5lib.parse(document) if isinstance(document, str) else document
    found = [e for e in tree.iter() if "data-consentgate-content" in e.attrib]
    assert len(found) == 1
    return found[0]


def _assert_default_page(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert 'class="cg-page"' in response.text and "masthead" not in response.text
    assert 'action="/consentgate/register"' in response.text


# -- with a working layout ------------------------------------------------------------


def test_page_shell_register_page_in_the_sites_layout(tmp_path: Path) -> None:
    (response,) = _get(_gate(Site(), tmp_path), "/consentgate/register")
    assert response.status_code == 200
    tree = html5lib.parse(response.text)
    masthead = [e for e in tree.iter(f"{NS}p") if e.get("class") == "masthead"]
    assert masthead and "".join(masthead[0].itertext()) == "The Harbour Ledger"
    assert [e for e in tree.iter(f"{NS}nav") if e.get("class") == "site-nav"]
    marker = _marker(tree)
    assert marker.tag == f"{NS}main"
    forms = [e for e in tree.iter(f"{NS}form") if e.get("action") == "/consentgate/register"]
    assert len(forms) == 1 and forms[0] in marker.iter(f"{NS}form")
    # The site's placeholder went; its footer stayed outside our content.
    assert "Placeholder the site writes here." not in response.text
    assert not list(marker.iter(f"{NS}footer")) and list(tree.iter(f"{NS}footer"))
    # Our title replaced the site's; our stylesheets sit in the head beside the site's.
    titles = ["".join(t.itertext()) for t in tree.iter(f"{NS}title")]
    assert titles == ["Register at no cost – This site"]
    head = tree.find(f"{NS}head")
    links = [link.get("href") for link in head.iter(f"{NS}link")]
    assert "/static/site.css" in links
    assert any(href.startswith("/consentgate/static/banner.css") for href in links)
    # Still a page of ours: private, under our CSP (which allows the site's own fonts).
    assert "no-store" in response.headers["cache-control"]
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "font-src 'self'" in csp


def test_page_shell_removes_the_layouts_scripts_and_what_moves_our_forms(
    tmp_path: Path,
) -> None:
    (response,) = _get(_gate(Site(), tmp_path), "/consentgate/register")
    tree = html5lib.parse(response.text)
    assert list(tree.iter(f"{NS}script")) == []
    assert "tracker.test" not in response.text and "window.track" not in response.text
    assert list(tree.iter(f"{NS}base")) == [] and "http-equiv" not in response.text


def test_page_shell_every_reader_page_goes_into_the_layout(tmp_path: Path) -> None:
    app = _gate(Site(), tmp_path)
    login, settings, missing = _get(
        app, "/consentgate/login", "/consentgate/settings", "/consentgate/consent/receipt"
    )
    for response in (login, settings):
        assert response.status_code == 200
        assert 'class="masthead"' in response.text
    assert _marker(login.text).find(f".//{NS}form").get("action") == "/consentgate/login"
    assert list(_marker(settings.text).iter(f"{NS}form"))
    # A message page (no receipt without a consent) too, with its status.
    assert missing.status_code == 404 and 'class="masthead"' in missing.text
    assert list(_marker(missing.text).iter(f"{NS}h1"))


def test_page_shell_request_is_anonymous_in_the_readers_language(tmp_path: Path) -> None:
    site = Site()
    headers = {
        "accept": "text/html",
        "accept-language": "de-DE,de;q=0.9",
        "cookie": "session=reader-secret; ad_id=123",
        "authorization": "Bearer reader-secret",
        "host": "evil.test",
    }
    (response,) = _get(_gate(site, tmp_path), "/consentgate/register", headers=headers)
    assert response.status_code == 200 and '<html lang="de">' in response.text
    assert 'lang="de"' in response.text  # our content says its language
    (request,) = site.requests
    assert request.headers["accept-language"] == "de"
    assert "cookie" not in request.headers and "authorization" not in request.headers
    assert "reader-secret" not in str(request.headers)
    assert "evil" not in request.headers["host"]  # never the reader's Host
    # Nothing of the reader's request state either (we keep the reader's consent there).
    assert "consent" not in request.scope["state"]


def test_page_shell_layout_host_names_the_request(tmp_path: Path) -> None:
    site = Site()
    _get(_gate(site, tmp_path, layout_host="www.site.test"), "/consentgate/login")
    assert site.requests[0].headers["host"] == "www.site.test"


# -- caching ----------------------------------------------------------------------------


def test_page_shell_layout_fetched_once_within_its_ttl_and_again_after(tmp_path: Path) -> None:
    site = Site()
    app = _gate(site, tmp_path, layout_cache_seconds=1)

    async def scenario() -> list[int]:
        counts = []
        async with client(app) as c:
            for _ in range(3):
                assert (await c.get("/consentgate/register", headers=BROWSER)).status_code == 200
            counts.append(len(site.requests))
            await asyncio.sleep(1.1)
            await c.get("/consentgate/login", headers=BROWSER)
            counts.append(len(site.requests))
        return counts

    assert run(scenario()) == [1, 2]


def test_page_shell_cached_per_language(tmp_path: Path) -> None:
    site = Site()
    app = _gate(site, tmp_path)
    responses = _get(app, "/consentgate/register", headers={**BROWSER, "accept-language": "fr"})
    responses += _get(app, "/consentgate/register", headers={**BROWSER, "accept-language": "es"})
    responses += _get(app, "/consentgate/register", headers={**BROWSER, "accept-language": "fr"})
    assert [r.headers["accept-language"] for r in site.requests] == ["fr", "es"]
    assert ['<html lang="fr">' in r.text for r in responses] == [True, False, True]
    assert "Inscription gratuite" in responses[0].text


def test_page_shell_concurrent_readers_share_one_fetch(tmp_path: Path) -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.05)
        return HTMLResponse(LAYOUT)

    site = Site(slow)
    app = _gate(site, tmp_path)

    async def scenario() -> list[httpx.Response]:
        async with client(app) as c:
            return list(
                await asyncio.gather(
                    *(c.get("/consentgate/register", headers=BROWSER) for _ in range(5))
                )
            )

    responses = run(scenario())
    assert all('class="masthead"' in r.text for r in responses)
    assert len(site.requests) == 1


# -- anything wrong: our default page, 200, one warning ---------------------------------


async def _raises(request: Request) -> Response:
    raise RuntimeError("the layout template is broken")


async def _server_error(request: Request) -> Response:
    return HTMLResponse(LAYOUT, status_code=500)


async def _not_html(request: Request) -> Response:
    return JSONResponse({"layout": "no"})


async def _plain_text(request: Request) -> Response:
    return PlainTextResponse(LAYOUT)


async def _too_big(request: Request) -> Response:
    padding = "<p>" + "x" * (MAX_LAYOUT_BYTES + 1) + "</p>"
    return HTMLResponse(LAYOUT.replace("</footer>", padding + "</footer>"))


async def _slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return HTMLResponse(LAYOUT)


async def _no_marker(request: Request) -> Response:
    return HTMLResponse(LAYOUT.replace(" data-consentgate-content", ""))


async def _marker_on_a_paragraph(request: Request) -> Response:
    return HTMLResponse(LAYOUT.replace("<main id", "<p id").replace("</main>", "</p>"))


async def _marker_never_closed(request: Request) -> Response:
    return HTMLResponse(LAYOUT.replace("</main>", ""))


async def _two_markers(request: Request) -> Response:
    return HTMLResponse(LAYOUT.replace("<footer", "<div data-consentgate-content></div><footer", 1))


def _layout_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The shell's warnings (others, say that mail is not configured, are not its own)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "[pages] layout_path" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        (_raises, "RuntimeError"),
        (_server_error, "answered 500"),
        (_not_html, "not text/html"),
        (_plain_text, "not text/html"),
        (_too_big, "larger than"),
        (_slow, "no answer within"),
        (_no_marker, "no element with the data-consentgate-content"),
        (_marker_on_a_paragraph, "is a <p>"),
        (_marker_never_closed, "closed by its own end tag"),
        (_two_markers, "2 elements"),
    ],
)
def test_page_shell_broken_layout_gives_the_default_page(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    layout: Callable[[Request], Awaitable[Response]],
    problem: str,
) -> None:
    app = _gate(Site(layout), tmp_path, layout_timeout_seconds=0.2)
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        first, second = _get(app, "/consentgate/register", "/consentgate/login")
    _assert_default_page(first)
    assert second.status_code == 200 and 'class="cg-page"' in second.text
    warnings = _layout_warnings(caplog)
    assert len(warnings) == 1 and problem in warnings[0], warnings
    assert LAYOUT_PATH in warnings[0]


def test_page_shell_failure_burst_warns_once_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = {"now": True}

    async def flaky(request: Request) -> Response:
        return HTMLResponse(LAYOUT, status_code=503 if broken["now"] else 200)

    app = _gate(Site(flaky), tmp_path, layout_cache_seconds=0)

    async def scenario() -> list[httpx.Response]:
        async with client(app) as c:
            answers = [await c.get("/consentgate/register", headers=BROWSER) for _ in range(3)]
            broken["now"] = False
            answers.append(await c.get("/consentgate/register", headers=BROWSER))
            broken["now"] = True
            answers.append(await c.get("/consentgate/register", headers=BROWSER))
            return answers

    with caplog.at_level(logging.WARNING, logger="consentgate"):
        responses = run(scenario())
    assert ['class="masthead"' in r.text for r in responses] == [False, False, False, True, False]
    assert len(_layout_warnings(caplog)) == 2  # one per burst of failures


def test_page_shell_without_layout_path_never_asks_the_site(tmp_path: Path) -> None:
    site = Site()
    (response,) = _get(make_gate(site.app(), tmp_path), "/consentgate/register")
    _assert_default_page(response)
    assert site.requests == []
    assert "font-src" not in response.headers["content-security-policy"]


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pages", "key"),
    [
        ({"layout_path": "_consentgate/layout"}, "pages.layout_path"),
        ({"layout_path": "https://site.test/layout"}, "pages.layout_path"),
        ({"layout_path": "//site.test/layout"}, "pages.layout_path"),
        ({"layout_path": "/consentgate/layout"}, "pages.layout_path"),
        ({"layout_path": "/layout?x=1"}, "pages.layout_path"),
        ({"layout_cache_seconds": -1}, "pages.layout_cache_seconds"),
        ({"layout_timeout_seconds": 0}, "pages.layout_timeout_seconds"),
        ({"layout_host": "bad host"}, "pages.layout_host"),
        ({"layuot_path": "/layout"}, "pages.layuot_path"),
    ],
)
def test_page_shell_config_mistakes_refused_naming_the_key(pages: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_mapping({"secret_keys": ["k" * 32], "pages": pages})
    assert raised.value.key == key


def test_page_shell_config_defaults() -> None:
    config = Config.from_mapping({"secret_keys": ["k" * 32], "pages": {"layout_path": "/x"}})
    assert config.pages.layout_path == "/x"
    assert config.pages.layout_cache_seconds == 300
    assert config.pages.layout_timeout_seconds == 2.0
    assert Config().pages.layout_path == ""


# -- the demo site ----------------------------------------------------------------------


def test_page_shell_demo_pages_carry_the_demo_masthead(tmp_path: Path) -> None:
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from examples.newsroom.app import LAYOUT_PATH as DEMO_LAYOUT
    from examples.newsroom.app import create_app

    app = create_app(tmp_path)
    register, settings, layout = _get(
        app, "/consentgate/register", "/consentgate/settings", DEMO_LAYOUT
    )
    for page in (register, settings):
        assert page.status_code == 200
        tree = html5lib.parse(page.text)
        masthead = [e for e in tree.iter(f"{NS}p") if e.get("class") == "masthead"]
        assert masthead and "The Harbour Ledger" in "".join(masthead[0].itertext())
        assert [e for e in tree.iter(f"{NS}nav") if e.get("class") == "site-nav"]
        assert list(_marker(tree).iter(f"{NS}form"))
        # The demo's analytics tag never runs on our pages.
        assert list(tree.iter(f"{NS}script")) == [] or all(
            s.get("src", "").startswith("/consentgate/static/") for s in tree.iter(f"{NS}script")
        )
        assert "demo-analytics.js" not in page.text
    # The layout is a normal page of the site, marker and all.
    assert layout.status_code == 200 and "data-consentgate-content" in layout.text


def test_page_shell_our_stylesheets_after_the_sites(tmp_path: Path) -> None:
    async def implied_head(request: Request) -> Response:
        return HTMLResponse(LAYOUT.replace("</head>", ""))

    written, implied = (
        _get(_gate(Site(layout), tmp_path / name), "/consentgate/register")[0]
        for name, layout in (("written", None), ("implied", implied_head))
    )
    for response in (written, implied):
        head = html5lib.parse(response.text).find(f"{NS}head")
        links = [link.get("href") for link in head.iter(f"{NS}link")]
        assert "/static/site.css" in links, response.text[:600]
        assert any(href.startswith("/consentgate/static/banner.css") for href in links)
    head = html5lib.parse(written.text).find(f"{NS}head")
    links = [link.get("href") for link in head.iter(f"{NS}link")]
    assert links[0] == "/static/site.css"


def test_page_shell_marker_with_nested_elements_replaced_whole(tmp_path: Path) -> None:
    async def nested(request: Request) -> Response:
        inner = "<div><div><p>old</p></div><section><p>older</p></section></div>"
        return HTMLResponse(
            LAYOUT.replace("<p>Placeholder the site writes here.</p>", inner)
            .replace("<main id", '<div class="page"><div class="col"><main id')
            .replace("</main>", "</main></div></div>")
        )

    (response,) = _get(_gate(Site(nested), tmp_path), "/consentgate/register")
    assert "<p>old</p>" not in response.text and "<p>older</p>" not in response.text
    tree = html5lib.parse(response.text)
    marker = _marker(tree)
    assert marker.find(f".//{NS}form") is not None
    footer = tree.find(f".//{NS}footer")
    assert footer is not None and footer not in list(marker.iter())


def test_page_shell_account_failure_pages_in_the_layout(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(_gate(Site(), tmp_path)) as c:
            # A form posted without its CSRF token: 403, drawn as an account page.
            return await c.post(
                "/consentgate/register",
                data={"email": "a@b.test", "password": "x" * 12, "accept_policy": "yes"},
                headers={**BROWSER, "origin": "https://evil.test"},
            )

    response = run(scenario())
    assert response.status_code == 403
    assert 'class="masthead"' in response.text
    assert list(_marker(response.text).iter(f"{NS}h1"))


def test_page_shell_json_failures_never_fetch_the_layout(tmp_path: Path) -> None:
    site = Site()
    (response,) = _get(
        _gate(site, tmp_path),
        "/consentgate/consent/receipt",
        headers={"accept": "application/json"},
    )
    assert response.status_code == 404 and response.json()["error"] == "no_consent"
    assert site.requests == []


def test_page_shell_leaves_a_page_of_another_shape_alone() -> None:
    from consentgate.web.shell import split_document

    assert split_document("<!doctype html><p>no title, no main</p>") is None
    parts = split_document(
        '<!DOCTYPE html><html><head><title>A &amp; B</title><link rel="x"></head>'
        '<body class="cg-page"><main class="cg-main"><h1>Hi</h1></main></body></html>'
    )
    assert parts is not None
    assert (parts.title, parts.head, parts.content) == ("A & B", '<link rel="x">', "<h1>Hi</h1>")
