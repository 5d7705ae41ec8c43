"""Every endpoint consentgate serves, fuzzed: random methods, paths, query strings,
content types, bodies, headers and cookies (garbage, oversized, and real signed values
tampered with). Whatever arrives, the answer is below 500 and nothing is logged at
ERROR: no traceback, no "consent not recorded".

The endpoints come from the gate's own route table (web/endpoints.py, web/accounts.py,
operator/dashboard.py), so a route added later is fuzzed too. Requests go straight
through ASGI with header bytes a real HTTP server would pass on (h11: visible ASCII,
obs-text, tabs).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import client, html_app, make_gate

from consentgate import ConsentGate

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "admin-token-for-fuzzing-0123456789abcdefghij"
PASSWORD = "correct horse battery staple"
EMAIL = "fuzz@example.com"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
EXAMPLES = 400

ARTICLE = (
    "<!DOCTYPE html><html><head><title>A story</title></head><body>"
    '<div class="article-body"><p>Lead one.</p><p>Lead two.</p><p>The rest.</p></div>'
    "</body></html>"
)


# --- a gate with every endpoint, and real cookies to tamper with ---------------------------


class Site:
    def __init__(self, gate: ConsentGate, loop: asyncio.AbstractEventLoop) -> None:
        self.gate = gate
        self.loop = loop
        self.cookies: dict[str, str] = {}
        self.csrf_token = ""
        statics = [("GET", path) for path in gate.endpoints.static_paths]
        self.routes = sorted(gate.endpoints.route_keys) + statics
        self.paths = sorted({path for _, path in self.routes})
        self.post_routes = [route for route in self.routes if route[0] == "POST"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    gate = make_gate(
        html_app(ARTICLE),
        tmp_path,
        admin={"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()},
        wall={
            "article_selector": "div.article-body",
            "rules": [{"path": "/articles/*", "access": "metered"}],
        },
    )
    loop = asyncio.new_event_loop()
    site = Site(gate, loop)
    try:
        loop.run_until_complete(_collect_real_cookies(site))
        yield site
    finally:
        loop.run_until_complete(gate.ledger.close())
        loop.close()


async def _form_token(c: httpx.AsyncClient, path: str) -> str:
    page = await c.get(path, headers={"accept": "text/html"})
    match = CSRF_FIELD.search(page.text)
    assert match, f"{path} carries no form"
    return html.unescape(match.group(1))


async def _collect_real_cookies(site: Site) -> None:
    """Walk the site as a reader and as the operator would, keeping every cookie set."""
    async with client(site.gate) as c:
        token = await _form_token(c, "/consentgate/settings")
        await c.post("/consentgate/consent", data={"action": "accept_all", "csrf_token": token})
        await c.get("/articles/one")
        register = {
            "csrf_token": await _form_token(c, "/consentgate/register"),
            "email": EMAIL,
            "password": PASSWORD,
            "accept_policy": "yes",
            "next": "/",
        }
        assert (await c.post("/consentgate/register", data=register)).status_code == 200
        login = {
            "csrf_token": await _form_token(c, "/consentgate/login"),
            "email": EMAIL,
            "password": PASSWORD,
            "next": "/",
        }
        assert (await c.post("/consentgate/login", data=login)).status_code == 303
        admin = {
            "csrf_token": await _form_token(c, "/consentgate/admin/login"),
            "token": ADMIN_TOKEN,
            "next": "/consentgate/admin",
        }
        assert (await c.post("/consentgate/admin/login", data=admin)).status_code == 303
        site.cookies = {name: value for name, value in c.cookies.items() if value}
        site.csrf_token = await _form_token(c, "/consentgate/settings")
    for name in ("cg_consent", "cg_csrf", "cg_session", "cg_admin"):
        assert name in site.cookies, f"the walk did not get a {name} cookie"


# --- strategies ---------------------------------------------------------------------------

# Header bytes h11 lets through: visible ASCII, space, tab, obs-text.
HEADER_BYTES = st.binary(max_size=300).map(
    lambda raw: bytes(b for b in raw if b == 9 or 32 <= b <= 126 or b >= 128).strip()
)
TEXT = st.text(max_size=60)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS"])
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "application/json",
            "application/json; charset=utf-16",
            "multipart/form-data; boundary=----x",
            "text/plain",
            "application/xml",
            "",
        ]
    ),
    HEADER_BYTES.map(lambda b: b.decode("latin-1")),
)
FIELD_NAMES = st.sampled_from(
    [
        "action",
        "category",
        "csrf_token",
        "next",
        "email",
        "password",
        "current_password",
        "new_password",
        "accept_policy",
        "newsletter",
        "token",
        "policy_version",
    ]
)


def _tamper(value: str, how: int, position: int, junk: str) -> str:
    if not value:
        return junk
    i = position % len(value)
    match how:
        case 0:  # one character changed
            flipped = "A" if value[i] != "A" else "B"
            return value[:i] + flipped + value[i + 1 :]
        case 1:
            return value[:i]
        case 2:
            return value + junk
        case 3:  # the signature moved to another payload
            head, _, tail = value.rpartition(".")
            return f"{junk}.{tail}" if head else junk + value
        case 4:
            return value * 40  # oversized
        case _:
            return value.replace(".", junk, 1)


@st.composite
def cookie_values(draw: st.DrawFn, site: Site) -> str:
    real = list(site.cookies.values())
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.sampled_from(real))  # a real value, perhaps under another name
    if kind == 1:
        return _tamper(
            draw(st.sampled_from(real)),
            draw(st.integers(0, 5)),
            draw(st.integers(0, 10_000)),
            draw(st.text(alphabet="abcXYZ019.-_=%", max_size=12)),
        )
    if kind == 2:
        return "x" * draw(st.sampled_from([0, 1, 4096, 16_384]))
    return draw(HEADER_BYTES).decode("latin-1").replace(";", "")


@st.composite
def cookie_headers(draw: st.DrawFn, site: Site) -> bytes:
    """Mostly the real cookies, each kept, tampered with or swapped; sometimes junk."""
    pairs: list[tuple[str, str]] = []
    for name, value in site.cookies.items():
        fate = draw(st.integers(0, 5))
        if fate <= 2:
            pairs.append((name, value))
        elif fate <= 4:
            pairs.append((name, draw(cookie_values(site))))
    names = [*site.cookies, "cg_meter", "x", ""]
    pairs += draw(st.lists(st.tuples(st.sampled_from(names), cookie_values(site)), max_size=3))
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    header = "; ".join(f"{name}={value}" if name else value for name, value in pairs)
    return header.encode("latin-1", "replace")


@st.composite
def form_bodies(draw: st.DrawFn, site: Site) -> bytes:
    values = st.one_of(
        TEXT,
        st.sampled_from(
            [
                "accept_all",
                "reject_all",
                "save",
                "analytics",
                "necessary",
                site.csrf_token,
                EMAIL,
                PASSWORD,
                ADMIN_TOKEN,
                "yes",
                "//evil.example/",
                "/\\evil.example",
                "javascript:alert(1)",
            ]
        ),
        st.integers(0, 70_000).map(lambda n: "y" * n),
    )
    fields = draw(st.lists(st.tuples(FIELD_NAMES | TEXT, values), max_size=12))
    body = urlencode(fields).encode()
    if draw(st.booleans()):
        body += draw(st.sampled_from([b"&%ff%fe=%c3", b"&&&==", b"%", b"\xff\xfe", b"&a"]))
    return body


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:  # json.loads recurses once per level: past about 1,000 it raised
        depth = draw(st.sampled_from([8, 9, 1000, 5000, 20_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return opener * depth + closer * draw(st.sampled_from([0, depth]))
    if kind == 1:
        return b'{"action": ' + b"9" * draw(st.integers(1, 6000)) + b"}"
    if kind == 2:
        shape = {
            "action": draw(JSON_VALUES | st.sampled_from(["accept_all", "save"])),
            "categories": draw(JSON_VALUES | st.just(["analytics"])),
            "next": draw(JSON_VALUES),
        }
        return json.dumps(shape).encode()
    return json.dumps(draw(JSON_VALUES)).encode()


FORM = "application/x-www-form-urlencoded"


@st.composite
def bodies(draw: st.DrawFn, site: Site) -> tuple[bytes, str]:
    """A body and the content type that usually goes with it."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return b"", ""
    if kind == 1:
        return draw(form_bodies(site)), FORM
    if kind in (2, 5):
        return draw(json_bodies()), "application/json"
    if kind == 3:
        return draw(st.binary(max_size=2048)), draw(CONTENT_TYPES)
    return b"z" * draw(st.integers(60_000, 200_000)), draw(st.sampled_from([FORM, ""]))


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    keys = st.sampled_from(["next", "since", "until", "q", "email", "consent_id", "page", ""])
    values = st.one_of(
        TEXT.map(lambda t: quote(t, safe="")),
        st.sampled_from(
            ["0001-01-01", "9999-12-31", "2026-01-01", "%ff%fe", "%", "//evil", "-1", "1e99"]
        ),
    )
    pairs = draw(st.lists(st.tuples(keys, values), max_size=4))
    return "&".join(f"{k}={v}" for k, v in pairs).encode("latin-1", "replace")


@st.composite
def requests(draw: st.DrawFn, site: Site) -> dict[str, Any]:
    if draw(st.integers(0, 3)):  # mostly a route as it is meant to be called, often a POST
        method, path = draw(st.sampled_from(site.routes) | st.sampled_from(site.post_routes))
    else:
        method, path = draw(METHODS), draw(st.sampled_from(site.paths))
    if draw(st.integers(0, 9)) == 0:
        path += draw(st.sampled_from(["/", "/x", "%00", "\x00", "/../settings", "\u00e9"]))
    headers: list[tuple[bytes, bytes]] = [(b"host", b"news.test")]
    if draw(st.integers(0, 9)) == 0:
        headers = [(b"host", draw(HEADER_BYTES))]
    body, content_type = draw(bodies(site))
    if draw(st.integers(0, 3)) == 0:
        content_type = draw(CONTENT_TYPES)
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    if draw(st.integers(0, 4)):
        headers.append((b"cookie", draw(cookie_headers(site))))
    if draw(st.booleans()):
        headers.append((b"origin", b"http://news.test"))
    if draw(st.booleans()):
        headers.append((b"x-csrf-token", site.csrf_token.encode()))
    optional = {
        b"origin": st.sampled_from([b"https://news.test", b"null", b"http://evil.example"])
        | HEADER_BYTES,
        b"sec-fetch-site": st.sampled_from([b"same-origin", b"cross-site", b"none"]),
        b"accept": st.sampled_from([b"application/json", b"text/html", b"*/*"]) | HEADER_BYTES,
        b"accept-language": HEADER_BYTES,
        b"sec-gpc": st.sampled_from([b"1", b"0"]) | HEADER_BYTES,
        b"x-csrf-token": HEADER_BYTES,
        b"authorization": st.sampled_from(
            [f"Bearer {ADMIN_TOKEN}".encode(), b"Bearer x", b"Basic Zm9vOmJhcg=="]
        )
        | HEADER_BYTES,
        b"x-forwarded-for": HEADER_BYTES,
        b"forwarded": HEADER_BYTES,
        b"user-agent": HEADER_BYTES | st.sampled_from([b"Googlebot/2.1", b"x" * 10_000]),
        b"referer": HEADER_BYTES,
        b"range": st.sampled_from([b"bytes=0-10", b"bytes=-5"]) | HEADER_BYTES,
        b"x-consentgate-client": st.sampled_from([b"banner"]) | HEADER_BYTES,
        b"cookie": cookie_headers(site),  # a second Cookie header
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
        headers.append((name, draw(optional[name])))
    if draw(st.booleans()):
        headers.append((b"content-length", str(len(body)).encode()))
    cut = draw(st.integers(1, 64 * 1024))
    chunks = [body[i : i + cut] for i in range(0, len(body), cut)] or [b""]
    client_address = draw(
        st.sampled_from([("203.0.113.9", 5000), ("2001:db8::1", 5000), ("x", 0), None])
    )
    return {
        "method": method,
        "path": path,
        "query_string": draw(query_strings()),
        "headers": headers,
        "chunks": chunks,
        "client": client_address,
    }


# --- one request through ASGI ---------------------------------------------------------------


async def send_request(gate: ConsentGate, request: dict[str, Any]) -> int:
    path: str = request["path"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request["method"],
        "scheme": "http",
        "path": path,
        "raw_path": quote(path).encode(),
        "root_path": "",
        "query_string": request["query_string"],
        "headers": request["headers"],
        "client": request["client"],
        "server": ("news.test", 80),
    }
    pending = list(request["chunks"])
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await gate(scope, receive, send)
    assert status, "no response was started"
    return status[0]


def test_fuzz_every_endpoint_answers_below_500_and_logs_no_error(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(requests(site))
    def one(request: dict[str, Any]) -> None:
        caplog.clear()
        status = site.loop.run_until_complete(send_request(site.gate, request))
        statuses[status] = statuses.get(status, 0) + 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        shown = {k: v for k, v in request.items() if k != "chunks"}
        assert status < 500, (status, shown)
        assert not errors, ([r.getMessage() for r in errors], shown)

    with caplog.at_level(logging.WARNING):
        one()
    # The fuzzing reached the endpoints, not only their error paths.
    assert any(200 <= s < 400 for s in statuses), statuses
    assert any(400 <= s < 500 for s in statuses), statuses
