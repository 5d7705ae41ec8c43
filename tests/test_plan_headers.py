"""The plan's headers written in one pass (plan.apply_headers) are exactly what writing
them name by name on Starlette's MutableHeaders gives: the same lines, in the same
order, for any head the app sends and any plan; and the planner's Set-Cookie filter
keeps what the reference filter keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from starlette.datastructures import MutableHeaders
from tests.conftest import make_gate

from consentgate import ConsentGate
from consentgate.articles import SIGNAL_HEADERS
from consentgate.consent.cookies import filter_set_cookie_headers
from consentgate.plan import CLASS_HEADER, Cache, ResponseHead, ResponsePlan, apply_headers


def _step_by_step(headers: MutableHeaders, plan: ResponsePlan, *, rewritten: bool) -> None:
    """The reference: each change made on its own, as the plan's promises read."""
    for name in plan.drop_headers:
        del headers[name]
    original = headers.getlist("set-cookie")
    kept, dropped = plan.filter_cookies(original)
    additions = [*plan.set_cookies, *plan.expire_cookies]
    if dropped or additions:
        del headers["set-cookie"]
        for value in [*kept, *additions]:
            headers.append("set-cookie", value)
    cache = plan.cache
    if cache is Cache.CLASS and (not rewritten or additions or original):
        cache = Cache.READER if rewritten else Cache.APP
    elif rewritten and cache is Cache.APP:
        cache = Cache.READER
    if cache is Cache.APP:
        if original or additions:
            _vary(headers, "Cookie")
        return
    if cache is Cache.CLASS:
        _vary(headers, "Cookie", "Sec-Fetch-Dest", *plan.class_vary)
        headers[CLASS_HEADER] = plan.consent_class or ""
        for validator in ("etag", "last-modified", "accept-ranges"):
            del headers[validator]
        return
    _vary(headers, "Cookie", "Sec-Fetch-Dest")
    del headers["etag"]
    if cache is not Cache.READER:
        del headers["last-modified"]
        del headers["accept-ranges"]
    if cache is Cache.NO_STORE:
        headers["cache-control"] = "private, no-store"
        return
    directives = [
        d.strip()
        for d in headers.get("cache-control", "").split(",")
        if d.strip() and d.strip().lower().split("=")[0] not in ("public", "s-maxage", "private")
    ]
    headers["cache-control"] = ", ".join(["private", *directives])


def _vary(headers: MutableHeaders, *added: str) -> None:
    names: list[str] = []
    for line in [*headers.getlist("vary"), ", ".join(added)]:
        for name in line.split(","):
            name = name.strip()
            if name and name.lower() not in (n.lower() for n in names):
                names.append(name)
    if "*" in names:
        names = ["*"]
    del headers["vary"]
    headers["vary"] = ", ".join(names)


def _drop_ads(values: Sequence[str]) -> tuple[list[str], bool]:
    kept = [v for v in values if not v.startswith("ad_id=")]
    return kept, len(kept) != len(values)


def _keep(values: Sequence[str]) -> tuple[list[str], bool]:
    return list(values), False


_LINES = st.sampled_from(
    [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"set-cookie", b"sessionid=1; Path=/"),
        (b"set-cookie", b"ad_id=2; Path=/"),
        (b"vary", b"Accept-Encoding"),
        (b"vary", b"cookie, *"),
        (b"cache-control", b"public, max-age=60"),
        (b"cache-control", b"s-maxage=300, Private, no-transform"),
        (b"etag", b'"v1"'),
        (b"last-modified", b"Tue, 11 Jun 2024 08:00:00 GMT"),
        (b"accept-ranges", b"bytes"),
        (CLASS_HEADER.encode(), b"forged"),
        (SIGNAL_HEADERS[0].encode(), b"registered"),
        (SIGNAL_HEADERS[1].encode(), b"story-1"),
        (b"content-length", b"42"),
        (b"content-encoding", b"gzip"),
        (b"content-encoding", b"identity"),
    ]
)


@settings(max_examples=600, deadline=None)
@given(
    raw=st.lists(_LINES, max_size=9),
    cache=st.sampled_from(list(Cache)),
    rewritten=st.booleans(),
    drop_signals=st.booleans(),
    filter_ads=st.booleans(),
    set_cookies=st.lists(st.sampled_from(["cg_consent=x; Path=/", "cg_meter=y"]), max_size=2),
    expire=st.lists(st.just("_ga=; Max-Age=0"), max_size=1),
    consent_class=st.sampled_from([None, "a1", ""]),
    class_vary=st.sampled_from([(), ("Accept-Language", "Sec-GPC")]),
    length=st.sampled_from([None, 0, 1234]),
)
def test_apply_headers_one_pass_matches_step_by_step(
    raw: list[tuple[bytes, bytes]],
    cache: Cache,
    rewritten: bool,
    drop_signals: bool,
    filter_ads: bool,
    set_cookies: list[str],
    expire: list[str],
    consent_class: str | None,
    class_vary: tuple[str, ...],
    length: int | None,
) -> None:
    def plan() -> ResponsePlan:
        return ResponsePlan(
            cache=cache,
            set_cookies=list(set_cookies),
            expire_cookies=tuple(expire),
            filter_cookies=_drop_ads if filter_ads else _keep,
            drop_headers=SIGNAL_HEADERS if drop_signals else (),
            consent_class=consent_class,
            class_vary=class_vary,
        )

    expected = MutableHeaders(raw=list(raw))
    _step_by_step(expected, plan(), rewritten=rewritten)
    if length is not None:
        expected["content-length"] = str(length)
    got = MutableHeaders(raw=list(raw))
    apply_headers(got, plan(), rewritten=rewritten, content_length=length)
    assert got.raw == expected.raw


@given(raw=st.lists(_LINES, max_size=9))
def test_response_head_answers_as_headers_do(raw: list[tuple[bytes, bytes]]) -> None:
    headers = MutableHeaders(raw=list(raw))
    head = ResponseHead(raw)
    for name in ("content-type", "cache-control", "set-cookie", "vary", SIGNAL_HEADERS[0]):
        assert head.get(name.encode()) == headers.get(name)
    encodings = headers.getlist("content-encoding")
    assert head.content_encoding == (", ".join(encodings) if encodings else None)
    assert head.has_set_cookie == ("set-cookie" in headers)


_SET_COOKIES = st.sampled_from(
    [
        "sessionid=1; Path=/",
        "_ga=GA1.2; Path=/",
        "_fbp=fb.1; Path=/",
        "unknown_one=1",
        "lang=fr",
        "novalue",
        "=nameless",
        "",
        "bad\x01name=1",
        "__Host-x",
        "big=" + "v" * 5000,
        " spaced = 1 ; Path=/",
    ]
)


@pytest.fixture(scope="module")
def cookie_gate(tmp_path_factory: pytest.TempPathFactory) -> ConsentGate:
    tmp = tmp_path_factory.mktemp("filter")
    return make_gate(
        _noop_app,
        tmp,
        cookies=[
            {"name": "sessionid", "category": "necessary"},
            {"name": "lang", "category": "preferences"},
            {"name": "_ga*", "category": "analytics"},
            {"name": "_fbp", "category": "marketing"},
        ],
    )


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(_SET_COOKIES, max_size=6),
    cookie=st.sampled_from([None, "lang=en", "_ga=1; other=2"]),
)
def test_cookie_filter_keeps_what_filter_set_cookie_headers_keeps(
    cookie_gate: ConsentGate, values: list[str], cookie: str | None
) -> None:
    # The planner's filter inlines consent.cookies.filter_set_cookie_headers (without its
    # report): it must keep and drop exactly the same values.
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    visitor = cookie_gate.visitors.read(scope)
    registry, consent = cookie_gate.registry, visitor.consent
    blocks_unknown = cookie_gate.config.blocks_unknown_cookies(visitor.mode)

    def allowed(name: str) -> bool:
        category = registry.category_of(name)
        return not blocks_unknown if category is None else consent.allows(category)

    expected = filter_set_cookie_headers(values, allowed)
    kept, dropped = cookie_gate.planner.consent.cookie_filter(visitor)(values)
    assert kept == expected.kept
    assert dropped == bool(expected.dropped_names or expected.dropped_unparseable)
