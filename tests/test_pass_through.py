"""The lean pass-through: a response with nothing to do leaves exactly as the app sent it,
and the shortcut that recognises one never skips work the full plan would do."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, example, given, settings
from starlette.datastructures import MutableHeaders
from tests.conftest import client, decide, make_gate, run

from consentgate import ConsentGate
from consentgate.consent.state import Decision
from consentgate.plan import Mode, apply_headers

RULES = {"rules": [{"path": "/premium/*", "access": "registered"}]}


def _raw_app(headers: list[tuple[bytes, bytes]], body: bytes = b'{"items": []}') -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return app


def _scope(path: str = "/api/items", cookie: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"news.test"), (b"accept", b"application/json")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("192.0.2.7", 5000),
        "server": ("news.test", 443),
    }


async def _messages(gate: ConsentGate, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await gate(scope, receive, send)
    return sent


def test_pass_through_json_leaves_exactly_as_the_app_sent_it(tmp_path: Path) -> None:
    # The app's own spelling and order, its caching, its validators: nothing to change.
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Cache-Control", b"public, max-age=60"),
        (b"ETag", b'"v1"'),
        (b"Vary", b"Accept-Encoding"),
    ]
    gate = make_gate(_raw_app(headers), tmp_path, wall=RULES)
    sent = run(_messages(gate, _scope()))
    assert sent[0]["headers"] == headers
    assert [m.get("body") for m in sent[1:]] == [b'{"items": []}']


def test_pass_through_set_cookie_in_any_spelling_on_json_is_still_filtered(
    tmp_path: Path,
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"SET-COOKIE", b"ad_id=1; Path=/"),
        (b"Set-Cookie", b"session=s; Path=/"),
    ]
    gate = make_gate(_raw_app(headers), tmp_path)
    sent = run(_messages(gate, _scope()))
    cookies = [v for k, v in sent[0]["headers"] if k.lower() == b"set-cookie"]
    assert cookies == [b"session=s; Path=/"]
    assert b"Cookie" in dict(sent[0]["headers"])[b"vary"]


def test_pass_through_refused_cookie_the_reader_holds_is_expired_on_json(tmp_path: Path) -> None:
    gate = make_gate(_raw_app([(b"content-type", b"application/json")]), tmp_path)

    async def scenario() -> list[str]:
        async with client(gate) as c:
            await decide(c, "reject")
            c.cookies.set("_stats_id", "42", domain="news.test")
            response = await c.get("/api/items")
            return response.headers.get_list("set-cookie")

    expiries = run(scenario())
    assert any(v.startswith("_stats_id=;") and "Max-Age=0" in v for v in expiries), expiries


def test_pass_through_refused_cookie_expired_on_every_request_of_one_reader(
    tmp_path: Path,
) -> None:
    # The expiries are kept with the reader's reading (same Cookie header): the second
    # and third requests expire the refused cookie as the first did, and a reader who
    # then accepts (a new Cookie header) keeps it.
    gate = make_gate(_raw_app([(b"content-type", b"application/json")]), tmp_path)

    async def scenario() -> tuple[list[list[str]], list[str]]:
        async with client(gate) as c:
            await decide(c, "reject_all")
            refused = []
            for _ in range(3):
                # Set again each time: the client drops the cookie each expiry names.
                c.cookies.set("_stats_id", "42", domain="news.test")
                refused.append((await c.get("/api/items")).headers.get_list("set-cookie"))
            await decide(c, "accept_all")
            c.cookies.set("_stats_id", "42", domain="news.test")
            accepted = (await c.get("/api/items")).headers.get_list("set-cookie")
            return refused, accepted

    refused, accepted = run(scenario())
    for expiries in refused:
        assert any(v.startswith("_stats_id=;") and "Max-Age=0" in v for v in expiries), expiries
    assert not any(v.startswith("_stats_id=") for v in accepted), accepted


def test_pass_through_signal_header_on_json_takes_the_full_plan(tmp_path: Path) -> None:
    # A free path, but the app says the response is a registration-only article: JSON
    # cannot be cut, so the reader gets the wall page; the signal never leaves us.
    headers = [(b"content-type", b"application/json"), (b"ConsentGate-Access", b"registered")]
    gate = make_gate(_raw_app(headers, b'{"body": "the whole text"}'), tmp_path, wall=RULES)
    sent = run(_messages(gate, _scope()))
    names = [k.lower() for k, _ in sent[0]["headers"]]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert b"consentgate-access" not in names
    assert b"the whole text" not in body


def test_pass_through_html_in_capitals_is_still_rewritten(tmp_path: Path) -> None:
    page = b"<html><head></head><body><p>Hello</p></body></html>"
    gate = make_gate(_raw_app([(b"Content-Type", b"TEXT/HTML; charset=UTF-8")], page), tmp_path)
    scope = _scope("/story")
    scope["headers"] = [(b"host", b"news.test"), (b"accept", b"text/html")]
    sent = run(_messages(gate, scope))
    assert b'id="consentgate-banner"' in b"".join(m.get("body", b"") for m in sent[1:])


# -- the shortcut against the full plan ----------------------------------------------------

_NAMES = st.sampled_from(
    [
        b"content-type",
        b"Content-Type",
        b"set-cookie",
        b"Set-Cookie",
        b"consentgate-access",
        b"ConsentGate-Article-Id",
        b"cache-control",
        b"etag",
        b"vary",
        b"x-request-id",
    ]
)
_VALUES = st.sampled_from(
    [
        b"application/json",
        b"text/html",
        b"TEXT/HTML; charset=utf-8",
        b"application/xhtml+xml",
        b"image/png",
        b"ad_id=1",
        b"session=2",
        b"registered",
        b"max-age=60",
        b"",
    ]
)
_COOKIES = st.sampled_from([None, "", "_stats_id=1", "ad_id=2; text_size=3", "other=4"])
_PATHS = st.sampled_from(["/api/items", "/premium/story", "/story"])
_STATUSES = st.sampled_from([200, 204, 206, 304, 404])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
    cookie=_COOKIES,
    path=_PATHS,
    status=_STATUSES,
    decided=st.sampled_from([None, "reject", "accept"]),
)
# The plainest response of all: the shortcut certainly applies here.
@example(
    raw=[(b"content-type", b"application/json")],
    cookie=None,
    path="/story",
    status=200,
    decided=None,
)
def test_pass_through_shortcut_only_when_the_full_plan_changes_nothing(
    tmp_path: Path,
    raw: list[tuple[bytes, bytes]],
    cookie: str | None,
    path: str,
    status: int,
    decided: str | None,
) -> None:
    gate = _GATES.get(tmp_path) or _GATES.setdefault(
        tmp_path, make_gate(_raw_app([]), tmp_path, wall=RULES)
    )
    cookies = [cookie] if cookie else []
    if decided is not None:
        cookies.append(f"{gate.config.cookie_names.consent}={_decision_cookie(gate, decided)}")
    scope = _scope(path, "; ".join(cookies) if cookies else None)
    visitor = gate.visitors.read(scope)
    bound = gate.planner.for_request(scope, visitor, [])
    if not bound.untouched(raw):
        return  # the full plan decides; nothing to compare
    headers = MutableHeaders(raw=[(name.lower(), value) for name, value in raw])
    plan = asyncio.run(bound(headers, status, "http.response.body"))
    before = list(headers.raw)
    apply_headers(headers, plan, rewritten=False)
    assert plan.mode is Mode.PASS and not plan.operations
    assert headers.raw == before


_GATES: dict[Path, ConsentGate] = {}


def _decision_cookie(gate: ConsentGate, action: str) -> str:
    config = gate.config
    every = frozenset(config.category_ids)
    granted = every if action == "accept" else frozenset(config.required_category_ids)
    decision = Decision("0" * 32, granted, every, config.policy.version, int(time.time()))
    return gate.codec.dumps(decision)
