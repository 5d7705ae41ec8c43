"""No error path opens: on a walled page every failure gives the wall page (nothing sent yet)
or ends the body (the cut lead already went out), logged at ERROR; never "passed through as
it was". Free pages keep best effort.

ConsentGate sits in front of a tiny Starlette news app; bodies are sent whole and as 1-byte
chunks (large pages in 64 KiB chunks). The article is the one of ``test_wall_http``: every
paragraph after the lead, and the ``data-consentgate-remove`` aside after the container,
carry a ``HIDDEN-`` marker that a walled response must never contain.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.conftest import SECRET, client, run
from tests.test_wall_http import article_html, full_text_present, hidden_markers, wall_gate

from consentgate import Config, ConfigError, ConsentGate
from consentgate.articles import ArticleGate, ArticleVerdict
from consentgate.config import WallSettings
from consentgate.rewrite import Operation, RewriteAttributes
from consentgate.visitor import Visitor

SLUG = "alpha"
CTA = 'id="consentgate-cta"'
LEAD_TEXT = "Paragraph 1 of the alpha story"
FOOTER = "<footer>Also read</footer>"
BIG = 17 << 20  # over the rewriter's 16 MiB token limit for consent pages
CHUNKINGS = [None, 1]


# -- the tiny app -----------------------------------------------------------------------------


@dataclass
class Page:
    """What the app answers for any article path."""

    body: bytes
    chunk: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"
    status: int = 200


def news_app(page: Page) -> Starlette:
    async def article(request: Request) -> Response:
        body = page.body
        response: Response
        if page.chunk is None:
            response = Response(body, status_code=page.status)
        else:
            size = page.chunk

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(body), size):
                    yield body[i : i + size]

            response = StreamingResponse(chunks(), status_code=page.status)
        response.raw_headers.append((b"content-type", page.content_type.encode()))
        response.raw_headers.extend((k.encode(), v.encode()) for k, v in page.headers)
        return response

    paths = ("/premium/{slug}", "/free/{slug}", "/articles/{slug}")
    return Starlette(routes=[Route(path, article) for path in paths])


@dataclass
class Result:
    status: int
    headers: httpx.Headers
    body: bytes  # as sent, not decoded by the client

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def fetch_raw(gate: ConsentGate, path: str) -> Result:
    async with client(gate) as c:
        request = c.build_request("GET", path, headers={"accept": "text/html"})
        response = await c.send(request, stream=True)
        body = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        return Result(response.status_code, response.headers, body)


def serve(tmp_path: Path, page: Page, path: str = f"/premium/{SLUG}", **wall: Any) -> Result:
    gate = wall_gate(news_app(page), tmp_path, wall=wall)
    return run(fetch_raw(gate, path))


def page_with(
    *,
    in_head: str = "",
    in_lead: str = "",
    after_cut: str = "",
    after_container: str = "",
) -> bytes:
    """The test article with markup put at one of the points that matter."""
    html = article_html(SLUG)
    html = html.replace("</head>", in_head + "</head>", 1)
    html = html.replace(f"<p>{LEAD_TEXT}", in_lead + f"<p>{LEAD_TEXT}", 1)
    html = html.replace("<p>Paragraph 5 of", after_cut + "<p>Paragraph 5 of", 1)
    html = html.replace("<aside", after_container + "<aside", 1)
    return html.encode()


# -- what a fail-closed answer looks like -------------------------------------------------------


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def assert_never_passed_through(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if "passed through" in r.getMessage()]


def assert_wall_page(result: Result, caplog: pytest.LogCaptureFixture, why: str) -> None:
    assert result.status == 200
    assert hidden_markers(result.body) == []
    assert CTA in result.text
    assert "Paragraph 0" not in result.text  # the wall page carries none of the app's body
    lines = error_lines(caplog)
    assert any("sent the wall page" in m and SLUG in m and why in m for m in lines), lines
    assert_never_passed_through(caplog)


def assert_body_ended(result: Result, caplog: pytest.LogCaptureFixture, why: str) -> None:
    assert result.status == 200
    assert hidden_markers(result.body) == []
    assert LEAD_TEXT in result.text and CTA in result.text  # the cut lead went out...
    assert FOOTER not in result.text  # ...and nothing after the failure did
    lines = error_lines(caplog)
    assert any("ended the body" in m and SLUG in m and why in m for m in lines), lines
    assert_never_passed_through(caplog)


def assert_cut(result: Result, caplog: pytest.LogCaptureFixture, why: str = "") -> None:
    """No failure at all: an ordinary cut page (a token that arrives whole is not "held", so
    the held-token limit does not apply to it)."""
    assert result.status == 200
    assert hidden_markers(result.body) == []
    assert LEAD_TEXT in result.text and CTA in result.text and FOOTER in result.text
    assert_never_passed_through(caplog)


Outcome = Callable[[Result, pytest.LogCaptureFixture, str], None]


# -- rewriter errors after the container was found ---------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_wall_fail_closed_invalid_jsonld_on_a_streamed_page_is_emptied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None
) -> None:
    broken = '<script type="application/ld+json">{"articleBody": "HIDDEN-alpha-ld" </script>'
    page = Page(page_with(after_container=broken), chunk=chunk)
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, page)
    assert hidden_markers(result.body) == []
    assert LEAD_TEXT in result.text and CTA in result.text
    assert '<script type="application/ld+json"></script>' in result.text
    assert FOOTER in result.text  # emptying the block is safe: the page goes on
    assert_never_passed_through(caplog)


@pytest.mark.parametrize(
    ("chunk", "outcome"), [(None, assert_wall_page), (64 << 10, assert_body_ended)]
)
def test_wall_fail_closed_jsonld_block_over_the_size_limit_after_the_container_ends_the_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None, outcome: Outcome
) -> None:
    blob = '{"articleBody": "HIDDEN-alpha-ld ' + "x" * (2 << 20) + '"}'
    block = f'<script type="application/ld+json">{blob}</script>'
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(page_with(after_container=block), chunk=chunk))
    outcome(result, caplog, "text_too_large")


@pytest.mark.parametrize("chunk", [None, 64 << 10])
def test_wall_fail_closed_jsonld_block_over_the_size_limit_in_the_head_gives_the_wall_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None
) -> None:
    blob = '{"articleBody": "HIDDEN-alpha-ld ' + "x" * (2 << 20) + '"}'
    block = f'<script type=" Application/LD+JSON ">{blob}</script>'
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(page_with(in_head=block), chunk=chunk))
    assert_wall_page(result, caplog, "text_too_large")


# The token limit applies whether the tag arrives whole or in pieces (the chunking never
# decides whether a page can be rewritten): in one piece nothing was sent yet (the wall
# page); streamed, the lead already went out (the body ends there).
@pytest.mark.parametrize(
    ("chunk", "outcome"), [(None, assert_wall_page), (64 << 10, assert_body_ended)]
)
def test_wall_fail_closed_attribute_over_the_token_limit_after_the_container_ends_the_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None, outcome: Outcome
) -> None:
    # Outside the container, so not itself secret; what follows it (the aside) is.
    tag = '<div data-blob="' + "y" * BIG + '"></div>'
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(page_with(after_container=tag), chunk=chunk))
    outcome(result, caplog, "token_too_large")


@pytest.mark.parametrize(
    ("chunk", "outcome"), [(None, assert_wall_page), (64 << 10, assert_wall_page)]
)
def test_wall_fail_closed_17_mib_inline_image_in_the_lead_gives_the_wall_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None, outcome: Outcome
) -> None:
    image = '<img src="data:image/png;base64,' + "A" * BIG + '">'
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(page_with(in_lead=image), chunk=chunk))
    outcome(result, caplog, "token_too_large")


@pytest.mark.parametrize(
    ("where", "outcome"),
    [
        # After the article the cut lead is out: the body ends there.
        ("after_container", "body ended"),
        # In the article's dropped part the lead is still held, until the echo guard knows
        # its pieces of the dropped text (docs/wall.md): nothing went out, the wall page.
        ("after_cut", "wall page"),
    ],
)
def test_wall_fail_closed_17_mib_inline_image_after_the_cut(
    where: str, outcome: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = '<img src="data:image/png;base64,' + "A" * BIG + '">'
    page = Page(page_with(**{where: image}), chunk=64 << 10)
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, page)
    check = assert_body_ended if outcome == "body ended" else assert_wall_page
    check(result, caplog, "token_too_large")


# -- exceptions nobody foresaw ----------------------------------------------------------------


def with_extra_operation(gate: ConsentGate, operation: Operation) -> ConsentGate:
    """Fault injection: one more operation on walled pages, as a buggy one would be."""
    articles: ArticleGate = gate.articles
    original = articles.operations

    def operations(visitor: Visitor, verdict: ArticleVerdict) -> list[Operation]:
        return [*original(visitor, verdict), operation]

    articles.operations = operations  # type: ignore[method-assign]
    return gate


def boom(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
    raise ZeroDivisionError(f"a bug in the callback for <{tag}>")


@pytest.mark.parametrize(
    ("target", "chunk", "outcome"),
    [
        ("header", None, assert_wall_page),
        ("header", 1, assert_wall_page),
        ("span.trap", None, assert_wall_page),  # one message: nothing was sent yet
        ("span.trap", 1, assert_body_ended),
    ],
    ids=["before-whole", "before-bytewise", "after-whole", "after-bytewise"],
)
def test_wall_fail_closed_unforeseen_callback_exception(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    chunk: int | None,
    target: str,
    outcome: Outcome,
) -> None:
    page = Page(page_with(after_container='<span class="trap"></span>'), chunk=chunk)
    gate = with_extra_operation(
        wall_gate(news_app(page), tmp_path), RewriteAttributes(target, boom)
    )
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = run(fetch_raw(gate, f"/premium/{SLUG}"))
    outcome(result, caplog, "ZeroDivisionError")


# -- the hold: nothing of a container before its cut is decided -------------------------------


@pytest.mark.parametrize("short_article", ["free", "wall_page"])
def test_wall_fail_closed_cut_undecided_past_the_hold_limit_gives_the_wall_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, short_article: str
) -> None:
    # The first paragraph is 9 MiB long: the second (the cut point) comes too late.
    long_lead = "<p>" + "word " * ((9 << 20) // 5) + "</p>"
    page = Page(page_with(in_lead=long_lead), chunk=64 << 10)
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, page, short_article=short_article)
    assert_wall_page(result, caplog, "not decided")


def test_wall_fail_closed_container_missing_from_the_first_8_mib_gives_the_wall_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filler = "<!-- " + "z" * (9 << 20) + " -->"
    page = Page(page_with(in_head=filler), chunk=64 << 10)
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, page)
    assert_wall_page(result, caplog, "not decided")


def test_wall_fail_closed_nothing_is_sent_before_the_cut_is_decided(tmp_path: Path) -> None:
    body = article_html(SLUG).encode()
    lead_end = body.index(b"</p>", body.index(LEAD_TEXT.encode())) + len(b"</p>")
    events: list[tuple[str, int]] = []  # ("app", bytes sent so far) / ("out", body bytes)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(len(body)):
            more = i + 1 < len(body)
            await send({"type": "http.response.body", "body": body[i : i + 1], "more_body": more})
            events.append(("app", i + 1))

    gate = wall_gate(app, tmp_path)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def out(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                events.append(("out", len(message["body"])))
            await send(message)

        await gate(scope, receive, out)

    async def scenario() -> bytes:
        async with client(recording) as c:
            return (await c.get(f"/premium/{SLUG}", headers={"accept": "text/html"})).content

    content = run(scenario())
    assert hidden_markers(content) == [] and CTA in content.decode()
    first_out = events.index(next(e for e in events if e[0] == "out"))
    sent_by_app = max([n for kind, n in events[:first_out] if kind == "app"], default=0)
    assert sent_by_app >= lead_end


# -- short articles (wall.short_article) -------------------------------------------------------


def container_words(html: str) -> list[str]:
    """The words of the article container, by a spec parser's (lexbor's) reading; the CTA,
    which the cut inserts into the container, is not the article's."""
    tree = LexborHTMLParser(html)
    for cta in tree.css("#consentgate-cta"):
        cta.decompose()
    container = tree.css_first("div.article-body")
    return container.text(separator=" ").split() if container is not None else []


def div_article() -> bytes:
    """Paragraphs as <div>: no ``p`` for the lead to count."""
    return article_html(SLUG).replace("<p>", "<div>").replace("</p>", "</div>").encode()


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_wall_short_article_wall_page_option_gives_the_wall_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None
) -> None:
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(div_article(), chunk=chunk), short_article="wall_page")
    assert_wall_page(result, caplog, "short_container")


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_wall_short_article_cut_option_cuts_by_the_word_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None
) -> None:
    # Each paragraph has 12 words: 20 words end inside the second, before any marker.
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(div_article(), chunk=chunk), short_article_words=20)
    assert hidden_markers(result.body) == []
    assert "Paragraph 0 of the alpha story" in result.text and CTA in result.text
    assert FOOTER in result.text
    assert_never_passed_through(caplog)


def test_wall_short_article_default_is_cut_after_80_words(tmp_path: Path) -> None:
    original = container_words(div_article().decode())
    result = serve(tmp_path, Page(div_article()))
    kept = container_words(result.text)
    assert CTA in result.text
    assert 0 < len(kept) <= 80 < len(original)
    assert kept == original[: len(kept)]  # a prefix of the article, as a browser reads it
    assert f"HIDDEN-{SLUG}-9" not in result.text


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_wall_short_article_free_option_sends_it_whole_and_logs_the_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None
) -> None:
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, Page(div_article(), chunk=chunk), short_article="free")
    assert full_text_present(result.text, SLUG)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and "sent whole" in r.getMessage()
    ]
    assert len(warnings) == 1 and f"/premium/{SLUG}" in warnings[0]


@pytest.mark.parametrize(
    ("wall", "key"),
    [
        ({"short_article": "open"}, "wall.short_article"),
        ({"short_article": 1}, "wall.short_article"),
        ({"short_article_words": -1}, "wall.short_article_words"),
        ({"short_article_words": "80"}, "wall.short_article_words"),
        ({"short_article_words": 100_001}, "wall.short_article_words"),
        ({"echo_guard": "yes"}, "wall.echo_guard"),
        ({"echo_guard": 1}, "wall.echo_guard"),
    ],
)
def test_wall_short_article_config_errors_name_the_key(
    tmp_path: Path, wall: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Config.from_mapping(
            {
                "secret_keys": [SECRET],
                "database_url": f"sqlite:///{tmp_path / 'x.db'}",
                "wall": wall,
            }
        )
    assert key in str(error.value)


# -- free pages keep best effort ---------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_wall_fail_closed_free_page_keeps_best_effort(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk: int | None
) -> None:
    broken = '<script type="application/ld+json">{"articleBody": "HIDDEN-alpha-ld" </script>'
    page = Page(page_with(after_container=broken), chunk=chunk)
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path, page, path=f"/free/{SLUG}")
    assert full_text_present(result.text, SLUG)
    assert broken in result.text  # unparseable on a free page: kept as it was
    assert not error_lines(caplog)


def test_wall_fail_closed_free_page_in_utf16_passes_through_untouched(tmp_path: Path) -> None:
    body = article_html(SLUG).encode("utf-16")
    page = Page(body, content_type="text/html; charset=utf-16")
    result = serve(tmp_path, page, path=f"/free/{SLUG}")
    assert result.status == 200
    assert result.body == body


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"short_article": "open"}, "wall.short_article"),
        ({"short_article_words": -5}, "wall.short_article_words"),
    ],
)
def test_wall_short_article_settings_built_in_code_are_checked_too(
    options: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as error:
        WallSettings(**options)
    assert key in str(error.value)
