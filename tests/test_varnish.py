"""A real shared cache: Varnish, running the published VCL, in front of uvicorn serving an
app wrapped in the gate.

What a CDN operator is promised (docs/caching.md): readers of one consent class share one
stored copy of a free page; a reader never receives another class's copy, even with a
forged class cookie; walled, signed-in and Set-Cookie responses never come from the
cache; a decision changes the reader's copy at once; ``[cache] shared = false`` turns
sharing off. The origin's hit counter says what reached the app.

The first tests check the VCL's own rules against a bare app that plays the origin's
contract (headers only), so a fault in the VCL is told apart from one in the gate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from tests.browser_support import serve
from tests.conftest import CSRF_FIELD, PAGE, make_gate
from tests.varnish_support import varnish, varnishd_path

BANNER = 'id="consentgate-banner"'
SETTINGS_LINK = 'id="consentgate-settings-link"'
# The analytics script once granted; held back it is `data-src=` (hence the space).
ACTIVE_ANALYTICS = ' src="/stats.js"'
CLASS_VALUE = re.compile(r"^(u|g(\.[a-z][a-z0-9_-]{0,31})*)$")
PUBLIC = "public, max-age=60"
ARTICLE = (
    "<!DOCTYPE html><html><head><title>Premium</title></head><body>"
    '<div class="article-body"><p>Lead paragraph.</p><p>HIDDEN-premium-1</p>'
    "<p>HIDDEN-premium-2</p></div></body></html>"
)
WALL = {
    "rules": [{"path": "/news/premium", "access": "registered"}],
    "article_selector": "div.article-body",
    "lead_paragraphs": 1,
}


@pytest.fixture(autouse=True)
def _needs_varnishd() -> None:
    varnishd_path()  # skip (or fail under CONSENTGATE_REQUIRE_SERVICES=1) without it


# -- the site -----------------------------------------------------------------------------
def news_app(hits: Counter[str]) -> Starlette:
    """Free, walled and cookie-setting pages, each public in its own header; ``hits``
    counts the requests that reached the app, per path."""

    async def free(request: Request) -> Response:
        hits[request.url.path] += 1
        return HTMLResponse(PAGE, headers={"cache-control": PUBLIC})

    async def premium(request: Request) -> Response:
        hits[request.url.path] += 1
        return HTMLResponse(ARTICLE, headers={"cache-control": PUBLIC})

    async def sets_cookie(request: Request) -> Response:
        hits[request.url.path] += 1
        response = HTMLResponse(PAGE, headers={"cache-control": PUBLIC})
        # A necessary cookie (make_gate's config): the gate lets it through.
        response.set_cookie("session", "s-123", path="/")
        return response

    return Starlette(
        routes=[
            Route("/news/free", free),
            Route("/news/premium", premium),
            Route("/news/sets-cookie", sets_cookie),
        ]
    )


@dataclass(frozen=True)
class Site:
    url: str  # through Varnish
    hits: Counter[str]


@contextmanager
def site(tmp_path: Path, **gate_options: Any) -> Iterator[Site]:
    hits: Counter[str] = Counter()
    gate_options.setdefault("wall", WALL)
    gate = make_gate(news_app(hits), tmp_path, **gate_options)
    with serve(gate) as origin, varnish(origin, tmp_path / "varnish") as cache:
        yield Site(cache.base_url, hits)


@contextmanager
def bare_site(tmp_path: Path, app: Any) -> Iterator[str]:
    """Varnish in front of ``app`` alone (no gate): the VCL's own rules."""
    with serve(app) as origin, varnish(origin, tmp_path / "varnish") as cache:
        yield cache.base_url


def reader(base_url: str, **headers: str) -> httpx.Client:
    """A reader with a fresh cookie jar, asking for pages as a browser does."""
    return httpx.Client(base_url=base_url, headers={"accept": "text/html", **headers}, timeout=15.0)


def decide(c: httpx.Client, action: str, categories: Sequence[str] = ()) -> str:
    """A real decision through the cache: the settings page (ours, never stored) for the
    form's token, then the POST. Returns the class cookie the gate set."""
    page = c.get("/consentgate/settings")
    match = CSRF_FIELD.search(page.text)
    assert match, f"the settings page carries no consent form ({page.status_code})"
    data: dict[str, Any] = {"action": action, "csrf_token": match.group(1), "next": "/"}
    if categories:
        data["category"] = list(categories)
    response = c.post("/consentgate/consent", data=data)
    assert response.status_code in (200, 303), response.status_code
    klass = c.cookies.get("cg_class")
    assert klass and CLASS_VALUE.match(klass), f"no valid cg_class after {action}: {klass!r}"
    return klass


def register(c: httpx.Client, email: str = "reader@example.com") -> None:
    """A real account and session through the cache (our own pages always pass)."""
    form = c.get("/consentgate/register")
    match = CSRF_FIELD.search(form.text)
    assert match, f"the register page carries no form ({form.status_code})"
    data = {
        "csrf_token": match.group(1),
        "email": email,
        "password": "a long enough passphrase",
        "accept_policy": "yes",
        "next": "/news/free",
    }
    response = c.post("/consentgate/register", data=data)
    assert response.status_code == 200, response.status_code  # "look in your inbox"
    # Unverified, the reader signs in with the password (the grace period).
    form = c.get("/consentgate/login")
    match = CSRF_FIELD.search(form.text)
    assert match, f"the sign-in page carries no form ({form.status_code})"
    login = {
        "csrf_token": match.group(1),
        "email": email,
        "password": "a long enough passphrase",
        "next": "/news/free",
    }
    response = c.post("/consentgate/login", data=login)
    assert response.status_code in (200, 303), response.status_code
    assert c.cookies.get("cg_session"), "signing in signed nobody in"


def set_cookie(c: httpx.Client, name: str, value: str) -> None:
    """Put ``name=value`` in the jar in place of any cookie of that name (the gate's
    are host-only cookies of 127.0.0.1, where the cache listens)."""
    c.cookies.delete(name)
    c.cookies.set(name, value, domain="127.0.0.1")


def shared_class(response: httpx.Response) -> str | None:
    value: str | None = response.headers.get("consentgate-class")
    return value


# -- the VCL's own rules, against a bare origin ------------------------------------------
def class_echo_app(hits: Counter[str], marked_class: str | None = None) -> Any:
    """An origin that marks every page shareable for the class its cg_class cookie names
    (or for ``marked_class``: an origin that gets it wrong), with the contract's Vary."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        hits[scope["path"]] += 1
        cookie = dict(scope["headers"]).get(b"cookie", b"").decode()
        named = re.search(r"(?:^|;)\s*cg_class=([^;]*)", cookie)
        klass = marked_class or (named.group(1) if named else "u")
        body = f"<html><body>copy for {klass}</body></html>".encode()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", PUBLIC.encode()),
            (b"vary", b"Cookie, Sec-Fetch-Dest, Accept-Language, Sec-GPC"),
            (b"consentgate-class", klass.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def test_varnish_vcl_keys_on_the_class_not_the_whole_cookie(tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    with bare_site(tmp_path, class_echo_app(hits)) as url:
        bodies = set()
        for n in range(5):
            # Every reader's jar differs (the site's own cookies), the class does not.
            with reader(url) as c:
                set_cookie(c, "site_pref", f"reader-{n}")
                set_cookie(c, "cg_class", "g.analytics")
                response = c.get("/page")
                assert response.headers["vary"].startswith("Cookie"), response.headers
                bodies.add(response.text)
        assert hits["/page"] == 1
        assert bodies == {"<html><body>copy for g.analytics</body></html>"}
        with reader(url) as c:  # another class: its own copy
            assert "copy for u" in c.get("/page").text
        assert hits["/page"] == 2


def test_varnish_vcl_keys_on_language_gpc_and_fetch_dest(tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    with bare_site(tmp_path, class_echo_app(hits)) as url:
        variants = [
            {},
            {"accept-language": "fr"},
            {"sec-gpc": "1"},
            {"sec-fetch-dest": "iframe"},
        ]
        for headers in variants * 2:
            with reader(url, **headers) as c:
                c.get("/page")
        assert hits["/page"] == len(variants)


def test_varnish_vcl_refuses_a_copy_marked_for_another_class(tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    with bare_site(tmp_path, class_echo_app(hits, marked_class="g")) as url:
        for _ in range(3):
            with reader(url) as c:
                set_cookie(c, "cg_class", "g.analytics")
                response = c.get("/page")
                assert response.headers.get("x-cache") == "MISS"
        assert hits["/page"] == 3, "a copy marked for class g was stored for g.analytics"
        for _ in range(3):
            with reader(url) as c:
                set_cookie(c, "cg_class", "g")
                c.get("/page")
        assert hits["/page"] == 4


def test_varnish_vcl_passes_sessions_auth_own_pages_and_bad_classes(tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    with bare_site(tmp_path, class_echo_app(hits)) as url:
        cases: list[tuple[str, dict[str, str], dict[str, str]]] = [
            ("/signed-in", {"cg_session": "anything"}, {}),
            ("/auth", {}, {"authorization": "Basic dTpw"}),
            ("/consentgate/settings", {}, {}),
            ("/bad-class", {"cg_class": "G.Analytics"}, {}),
        ]
        for path, cookies, headers in cases:
            for _ in range(2):
                with reader(url, **headers) as c:
                    for name, value in cookies.items():
                        set_cookie(c, name, value)
                    c.get(path)
            assert hits[path] == 2, f"{path} came from the cache"


# -- the gate behind the cache ------------------------------------------------------------
def test_varnish_undecided_readers_share_one_origin_request(tmp_path: Path) -> None:
    with site(tmp_path) as s:
        responses = []
        for _ in range(10):
            with reader(s.url) as c:
                responses.append(c.get("/news/free"))
        assert s.hits["/news/free"] == 1
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1, "readers of one class got other bytes"
        first = responses[0]
        assert BANNER in first.text
        assert shared_class(first) == "u"
        assert "set-cookie" not in first.headers
        assert "cookie" in first.headers["vary"].lower(), "Vary: Cookie must reach the client"
        assert first.headers["cache-control"] == PUBLIC


def test_varnish_accepted_class_has_its_own_copy_and_no_other_class_gets_it(
    tmp_path: Path,
) -> None:
    with site(tmp_path) as s:
        with reader(s.url) as c:
            undecided = c.get("/news/free")
        assert s.hits["/news/free"] == 1

        accepted = []
        klass = ""
        for _ in range(3):
            with reader(s.url) as c:
                klass = decide(c, "accept_all")
                accepted.append(c.get("/news/free"))
        assert klass.startswith("g.") and "analytics" in klass.split(".")
        assert s.hits["/news/free"] == 2, "readers who accepted all did not share one copy"
        assert len({r.content for r in accepted}) == 1
        assert {shared_class(r) for r in accepted} == {klass}
        assert SETTINGS_LINK in accepted[0].text and BANNER not in accepted[0].text
        assert ACTIVE_ANALYTICS in accepted[0].text

        with reader(s.url) as c:
            assert decide(c, "reject_all") == "g"
            rejected = c.get("/news/free")
        assert s.hits["/news/free"] == 3
        assert shared_class(rejected) == "g"
        assert rejected.content != accepted[0].content
        assert ACTIVE_ANALYTICS not in rejected.text, "a rejecting reader got the accepted copy"
        assert SETTINGS_LINK in rejected.text and BANNER not in rejected.text

        with reader(s.url) as c:  # the undecided copy is still the undecided one
            again = c.get("/news/free")
        assert again.content == undecided.content and shared_class(again) == "u"
        assert s.hits["/news/free"] == 3


def test_varnish_forged_class_is_not_stored_for_the_forged_class(tmp_path: Path) -> None:
    with site(tmp_path) as s:
        with reader(s.url) as honest:
            accepted_class = decide(honest, "accept_all")
        with reader(s.url) as forger:
            assert decide(forger, "reject_all") == "g"
            # The real consent cookie says "necessary only"; the class cookie lies.
            set_cookie(forger, "cg_class", accepted_class)
            forged = forger.get("/news/free")
        assert s.hits["/news/free"] == 1
        assert ACTIVE_ANALYTICS not in forged.text, "the forged class unlocked scripts"
        assert shared_class(forged) in (None, "g"), shared_class(forged)
        assert shared_class(forged) != accepted_class

        copies = []
        for _ in range(2):
            with reader(s.url) as c:
                assert decide(c, "accept_all") == accepted_class
                copies.append(c.get("/news/free"))
        assert s.hits["/news/free"] == 2, "the forged response was stored, or nothing was"
        for copy in copies:
            assert shared_class(copy) == accepted_class
            assert ACTIVE_ANALYTICS in copy.text, "an honest reader got the forger's copy"


def test_varnish_walled_signed_in_and_set_cookie_responses_always_reach_the_app(
    tmp_path: Path,
) -> None:
    with site(tmp_path) as s:
        with reader(s.url) as c:
            c.get("/news/free")  # a stored free copy, which signed-in readers must not get
        for _ in range(3):
            with reader(s.url) as c:
                walled = c.get("/news/premium")
                assert "HIDDEN-premium-2" not in walled.text, "the wall did not cut"
                assert shared_class(walled) is None
                assert walled.headers["cache-control"].startswith("private")
        with reader(s.url) as c:
            register(c)
            for _ in range(2):
                signed_in = c.get("/news/free")
                assert signed_in.headers.get("x-cache") == "MISS"
                assert shared_class(signed_in) is None
                assert signed_in.headers["cache-control"].startswith("private")
        for _ in range(2):
            with reader(s.url) as c:
                # Any cg_session cookie passes: the cache cannot tell a valid one, and
                # a signed-in reader's page must never come from it.
                set_cookie(c, "cg_session", "any-session-value")
                assert c.get("/news/free").headers.get("x-cache") == "MISS"
        for _ in range(3):
            with reader(s.url) as c:
                sets = c.get("/news/sets-cookie")
                assert "session=s-123" in sets.headers.get("set-cookie", "")
                assert shared_class(sets) is None
        assert s.hits == Counter(
            {"/news/free": 1 + 2 + 2, "/news/premium": 3, "/news/sets-cookie": 3}
        )


def test_varnish_decision_changes_the_readers_copy_at_once(tmp_path: Path) -> None:
    with site(tmp_path) as s:
        with reader(s.url) as other:
            other.get("/news/free")  # the undecided copy is stored
        with reader(s.url) as c:
            before = c.get("/news/free")
            assert BANNER in before.text
            klass = decide(c, "accept_all")
            after = c.get("/news/free")
            assert BANNER not in after.text and SETTINGS_LINK in after.text
            assert shared_class(after) == klass
            assert ACTIVE_ANALYTICS in after.text
            assert decide(c, "reject_all") == "g"
            withdrawn = c.get("/news/free")
            assert ACTIVE_ANALYTICS not in withdrawn.text
            assert shared_class(withdrawn) == "g"


def test_varnish_shared_off_nothing_is_shared(tmp_path: Path) -> None:
    with site(tmp_path, cache={"shared": False}) as s:
        for _ in range(3):
            with reader(s.url) as c:
                response = c.get("/news/free")
                assert shared_class(response) is None
                assert response.headers["cache-control"].startswith("private")
        assert s.hits["/news/free"] == 3


def test_varnish_banner_of_a_cached_copy_decides_with_the_browsers_word(tmp_path: Path) -> None:
    # The stored copy's banner holds no token (it is everyone's); its form posts through
    # the cache with the Origin and Fetch Metadata a browser sends.
    with site(tmp_path) as s:
        with reader(s.url) as other:
            other.get("/news/free")
        with reader(s.url) as c:
            page = c.get("/news/free")
            assert page.headers.get("x-cache") == "HIT" and BANNER in page.text
            assert "cg_csrf" not in c.cookies
            token = CSRF_FIELD.search(page.text)
            posted = c.post(
                "/consentgate/consent",
                data={
                    "action": "accept_all",
                    "csrf_token": token.group(1) if token else "",
                    "next": "/news/free",
                },
                headers={"origin": s.url, "sec-fetch-site": "same-origin"},
            )
            assert posted.status_code == 303, posted.status_code
            after = c.get("/news/free")
            assert shared_class(after) == c.cookies.get("cg_class")
            assert BANNER not in after.text and ACTIVE_ANALYTICS in after.text
        assert s.hits["/news/free"] == 2
