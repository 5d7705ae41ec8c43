"""No page consentgate renders can be framed (unless ``frame_ancestors`` names who may),
and each carries the strict CSP.

Every route is requested (the list is checked against the routes the gate registers, so
a new route fails here until it is covered), plus the HTML error, message and wall pages.
A real browser confirms the headers stop a framing page and break none of our pages.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.browser_support import serve
from tests.conftest import SECRET, client, html_app, make_gate, run
from tests.test_accounts_http import PASSWORD, form_token, login, register
from tests.test_wall_http import ArticleApp, article_html, wall_gate

from consentgate import Config, ConfigError, ConsentGate

TOKEN = "admin-token-for-framing-tests-0123456789abcdef"
ADMIN = {"token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}
BEARER = {"authorization": f"Bearer {TOKEN}"}
HTML = {"accept": "text/html"}

# (path, headers, signed in?) for every GET route; JSON and static answers included:
# the check below applies to whatever answers with HTML.
GET_ROUTES: list[tuple[str, dict[str, str], bool]] = [
    ("/consentgate/consent", {}, False),
    ("/consentgate/consent/receipt", HTML, False),
    ("/consentgate/settings", HTML, False),
    ("/.well-known/gpc.json", {}, False),
    ("/consentgate/register", HTML, False),
    ("/consentgate/login", HTML, False),
    ("/consentgate/policy", HTML, True),
    ("/consentgate/verify?token=x", HTML, False),
    ("/consentgate/verify/resend", HTML, True),
    ("/consentgate/login/link", HTML, False),
    ("/consentgate/login/link/confirm?token=x", HTML, False),
    ("/consentgate/password/forgot", HTML, False),
    ("/consentgate/password/reset?token=x", HTML, False),
    ("/consentgate/account", HTML, True),
    ("/consentgate/account/email/confirm?token=x", HTML, False),
    ("/consentgate/account/export", HTML, True),
    ("/consentgate/account/delete", HTML, True),
    ("/consentgate/newsletters/confirm?token=x", HTML, False),
    ("/consentgate/newsletters/unsubscribe?token=x", HTML, False),
    ("/consentgate/admin", BEARER, False),
    ("/consentgate/admin/search?q=nobody@example.com", BEARER, False),
    ("/consentgate/admin/login", HTML, False),
    ("/consentgate/newsletters/confirm?token=not-a-token", HTML, False),
    ("/consentgate/newsletters/unsubscribe?token=not-a-token", HTML, False),
]


def assert_unframeable(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (response.request.url, csp)
    assert "default-src 'none'" in csp
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("x-content-type-options") == "nosniff"


def gate_with_everything(tmp_path: Path) -> ConsentGate:
    return make_gate(html_app(), tmp_path, admin=ADMIN, policy={"version": "1"})


def test_framing_route_list_covers_every_registered_get_route(tmp_path: Path) -> None:
    gate = gate_with_everything(tmp_path)
    # The routing table itself: what a reader can reach is what must be covered.
    registered = {path for method, path in gate.endpoints._routes if method == "GET"}
    covered = {path.split("?")[0] for path, _, _ in GET_ROUTES}
    assert registered - covered == set()


@pytest.mark.parametrize(("path", "headers", "signed_in"), GET_ROUTES, ids=lambda v: str(v))
def test_framing_every_html_page_is_unframeable(
    tmp_path: Path, path: str, headers: dict[str, str], signed_in: bool
) -> None:
    # The policy changes after registration, so the policy page has something to ask.
    first = gate_with_everything(tmp_path)
    later = make_gate(html_app(), tmp_path, admin=ADMIN, policy={"version": "2"})

    async def scenario() -> httpx.Response:
        async with client(first) as c:
            if signed_in:
                assert (await register(c)).status_code == 303
            cookies = c.cookies
        async with client(later, cookies=cookies) as c:
            return await c.get(path, headers=headers)

    response = run(scenario())
    if response.headers.get("content-type", "").startswith("text/html"):
        assert_unframeable(response)
    else:
        assert response.headers.get("content-type", "").startswith("application/json")


def test_framing_error_message_and_form_pages_are_unframeable(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 1})

    async def scenario() -> list[httpx.Response]:
        async with client(gate) as c:
            answers = [
                # a consent POST without its CSRF token: the HTML failure page
                await c.post("/consentgate/consent", data={"action": "accept_all"}, headers=HTML),
                # a registration with errors: the form again, 400
                await c.post(
                    "/consentgate/register",
                    data={
                        "csrf_token": await form_token(c, "/consentgate/register"),
                        "email": "not-an-address",
                        "password": PASSWORD,
                    },
                ),
                # an account POST without a token: the account failure page
                await c.post("/consentgate/login", data={"email": "a@example.com"}),
                # a wrong password, then the limit: 400 form, 429 message page
                await login(c, password="wrong password!"),
                await login(c, password="wrong password!"),
            ]
            return answers

    answers = run(scenario())
    assert [a.status_code for a in answers] == [403, 400, 403, 400, 429]
    for answer in answers:
        assert_unframeable(answer)


def test_framing_wall_page_is_unframeable(tmp_path: Path) -> None:
    app = ArticleApp()
    app.encoding = "br"  # cannot be cut safely: the wall page instead
    app.body_override = article_html("echo").encode()

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await c.get("/premium/echo", headers={"accept-encoding": "identity"})

    response = run(scenario())
    assert 'id="consentgate-cta"' in response.text
    assert_unframeable(response)


# -- frame_ancestors: who else may frame them ------------------------------------------
PARTNER = ["'self'", "https://partner.example", "https://*.news.example:8443"]
STRICT_CSP_PARTS = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
)


def framing_answers(gate: ConsentGate, app: ArticleApp | None = None) -> list[httpx.Response]:
    """Our pages of each kind: settings, register, login, an HTML failure page, the wall
    page (when ``gate`` walls /premium/* and its app sends what cannot be cut)."""

    async def scenario() -> list[httpx.Response]:
        async with client(gate) as c:
            answers = [
                await c.get("/consentgate/settings", headers=HTML),
                await c.get("/consentgate/register", headers=HTML),
                await c.get("/consentgate/login", headers=HTML),
                await c.post("/consentgate/consent", data={"action": "accept_all"}, headers=HTML),
            ]
            if app is not None:
                answers.append(
                    await c.get("/premium/echo", headers={"accept-encoding": "identity"})
                )
            return answers

    return run(scenario())


def walled_app() -> ArticleApp:
    app = ArticleApp()
    app.encoding = "br"  # cannot be cut safely: the wall page instead
    app.body_override = article_html("echo").encode()
    return app


def test_framing_frame_ancestors_default_is_none_with_deny(tmp_path: Path) -> None:
    app = walled_app()
    answers = framing_answers(wall_gate(app, tmp_path), app)
    assert [a.status_code for a in answers] == [200, 200, 200, 403, 200]
    assert 'id="consentgate-cta"' in answers[-1].text
    for answer in answers:
        assert_unframeable(answer)


def test_framing_frame_ancestors_list_is_sent_without_x_frame_options(tmp_path: Path) -> None:
    app = walled_app()
    answers = framing_answers(wall_gate(app, tmp_path, frame_ancestors=PARTNER), app)
    assert [a.status_code for a in answers] == [200, 200, 200, 403, 200]
    assert 'id="consentgate-cta"' in answers[-1].text
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        directives = [d.strip() for d in csp.split(";")]
        expected = "frame-ancestors 'self' https://partner.example https://*.news.example:8443"
        assert expected in directives, (answer.request.url, csp)
        assert [d for d in directives if d.startswith("frame-ancestors")] == [expected]
        assert all(part in directives for part in STRICT_CSP_PARTS), csp
        # X-Frame-Options cannot name other sites; a DENY would stop what the list allows.
        assert "x-frame-options" not in answer.headers, answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_framing_frame_ancestors_self_alone_sends_sameorigin(tmp_path: Path) -> None:
    app = walled_app()
    answers = framing_answers(wall_gate(app, tmp_path, frame_ancestors=["'self'"]), app)
    for answer in answers:
        assert "frame-ancestors 'self';" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"


def test_framing_frame_ancestors_list_leaves_the_dashboard_unframeable(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, admin=ADMIN, frame_ancestors=PARTNER)

    async def scenario() -> list[httpx.Response]:
        async with client(gate) as c:
            return [
                await c.get("/consentgate/admin", headers=BEARER),
                await c.get("/consentgate/admin/login", headers=HTML),
            ]

    for answer in run(scenario()):
        assert answer.status_code == 200
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"


def test_framing_frame_ancestors_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f'secret_keys = ["{SECRET}"]\nframe_ancestors = ["\'SELF\'", "https://partner.example"]\n',
        encoding="utf-8",
    )
    # Keywords are case-insensitive in CSP; they are sent lower-case.
    assert Config.from_toml(path).frame_ancestors == ("'self'", "https://partner.example")


@pytest.mark.parametrize(
    ("value", "key", "says"),
    [
        ([], "frame_ancestors", "non-empty list"),
        ("'self'", "frame_ancestors", "non-empty list"),
        ([42], "frame_ancestors", "non-empty list"),
        (["'none'", "'self'"], "frame_ancestors", "'none' must be the only entry"),
        (["'self'", "https://a.example;script-src *"], "frame_ancestors[1]", "';'"),
        (["https://a.example,https://b.example"], "frame_ancestors[0]", "','"),
        (["https://a.example https://b.example"], "frame_ancestors[0]", "whitespace"),
        (["https://a.example\tx"], "frame_ancestors[0]", "whitespace"),
        (["https://a.example\r\nSet-Cookie: x=1"], "frame_ancestors[0]", "whitespace"),
        (["https://bücher.example"], "frame_ancestors[0]", "printable ASCII"),
        ([""], "frame_ancestors[0]", "is empty"),
        (["self"], "frame_ancestors[0]", "single quotes"),
        (["'unsafe-inline'"], "frame_ancestors[0]", "'self' and 'none'"),
        (["https//partner.example"], "frame_ancestors[0]", "not a CSP source"),
    ],
)
def test_framing_frame_ancestors_bad_values_refused_at_start_up_naming_the_key(
    tmp_path: Path, value: Any, key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        make_gate(html_app(), tmp_path, frame_ancestors=value)
    assert excinfo.value.key == key
    assert says in excinfo.value.reason


def test_framing_frame_ancestors_config_built_directly_is_checked_too() -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config(secret_keys=(SECRET,), frame_ancestors=("'none'", "https://a.example"))
    assert excinfo.value.key == "frame_ancestors"


# -- in a real browser ---------------------------------------------------------------


class _Framer(http.server.BaseHTTPRequestHandler):
    """Another site that frames our settings page (the clickjacking set-up)."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<!DOCTYPE html><html><body><iframe id="f" src="{self.target}" '
            'width="800" height="600"></iframe></body></html>'
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def framer() -> Iterator[tuple[http.server.HTTPServer, type[_Framer]]]:
    handler = type("Framer", (_Framer,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.browser
def test_framing_browser_refuses_to_frame_settings_and_page_still_works(
    tmp_path: Path, browser: Any, framer: tuple[http.server.HTTPServer, type[_Framer]]
) -> None:
    with serve(make_gate(html_app(), tmp_path)) as base:
        server, handler = framer
        page = browser.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if m.type == "error" else None)
        try:
            # Our page on its own: renders, styled, and nothing our CSP blocks.
            page.goto(f"{base}/consentgate/settings")
            assert page.locator("form").count() >= 1
            styled = page.evaluate(
                "() => [...document.styleSheets].some(s => s.href && s.href.includes('banner.css'))"
            )
            assert styled
            assert not [v for v in violations if "Content Security Policy" in v]
            # Framed by another origin: the app's own page (no framing headers: the
            # control) renders in the frame, without a banner of its own (it is asked for
            # as a frame); our settings page does not render at all.
            framer_url = f"http://127.0.0.1:{server.server_address[1]}/"
            handler.target = f"{base}/"
            page.goto(framer_url)
            page.frame_locator("#f").locator("h1", has_text="News").wait_for()
            assert page.frame_locator("#f").locator("#consentgate-banner").count() == 0
            handler.target = f"{base}/consentgate/settings"
            page.goto(framer_url)
            page.wait_for_timeout(1000)
            assert page.frame_locator("#f").locator("form").count() == 0
        finally:
            page.close()
