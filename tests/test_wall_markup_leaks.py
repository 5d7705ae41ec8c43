"""Markup that used to leak the walled text, through the public HTTP surface.

Each test serves one page from a tiny Starlette app behind ``ConsentGate`` on a
registration-only route, whole and streamed in 1-byte chunks, to an anonymous reader. The
text after the lead carries marker words (``HID0001DEN``); the oracle (html5lib and lexbor,
``tests/oracle.py``) first confirms that a browser puts every marker inside the article after
the lead, so the page tests what it claims. The answer must be 200 with the call to action
(the cut article, or the wall page when the gate fails closed) and no marker anywhere in the
body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.conftest import SECRET, client, run

from consentgate import Config, ConsentGate
from oracle import MARKER, PARSERS, analyze

SELECTOR = "div.article-body"
CTA = 'id="consentgate-cta"'
LEAD = (
    "<p>LEADA The first paragraph of the lead, long enough to be a paragraph.</p>"
    "<p>LEADB The second paragraph of the lead, also long enough to count.</p>"
)
CHUNKINGS = ["whole", "bytes"]


def hidden(number: int) -> str:
    return f"<p>HID{number:04d}DEN hidden paragraph {number} of the walled story.</p>"


def page(article: str, *, lead: str = LEAD) -> str:
    return (
        "<!DOCTYPE html><html><head><title>The story</title></head><body>"
        "<header>The Test Gazette</header><article><h1>The story</h1>"
        f'<div class="article-body">{lead}{article}</div>'
        "<footer>Also read</footer></article></body></html>"
    )


def article_app(body: str, chunking: str) -> Starlette:
    data = body.encode("utf-8")

    async def article(request: Request) -> Response:
        if chunking == "whole":
            return Response(data, media_type="text/html; charset=utf-8")

        async def one_byte_at_a_time() -> Any:
            for i in range(len(data)):
                yield data[i : i + 1]

        return StreamingResponse(one_byte_at_a_time(), media_type="text/html; charset=utf-8")

    return Starlette(routes=[Route("/premium/{slug}", article)])


def walled_gate(app: Any, tmp_path: Path, **wall: Any) -> ConsentGate:
    config = {
        "secret_keys": [SECRET],
        "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "wall": {
            "rules": [{"path": "/premium/*", "access": "registered"}],
            "article_selector": SELECTOR,
            "lead_paragraphs": 2,
            **wall,
        },
    }
    return ConsentGate(app, config=Config.from_mapping(config))


def walled_get(body: str, chunking: str, tmp_path: Path, **wall: Any) -> httpx.Response:
    """An anonymous reader's GET of the page on a registration-only route."""

    async def scenario() -> httpx.Response:
        gate = walled_gate(article_app(body, chunking), tmp_path, **wall)
        async with client(gate) as c:
            return await c.get("/premium/story", headers={"accept": "text/html"})

    return run(scenario())


def assert_walled_without_leak(
    body: str, chunking: str, tmp_path: Path, *, parsers: tuple[str, ...] = tuple(PARSERS)
) -> None:
    """``parsers``: the oracle parsers that read the page as browsers do (all, unless one
    predates the rule the page is about)."""
    markers = set(MARKER.findall(body))
    assert markers, "test precondition: the page carries hidden markers"
    for name in parsers:
        view = analyze(PARSERS[name](body), SELECTOR, 2)
        assert markers <= view.hidden_markers, (
            f"test precondition ({name}): a browser puts every marker after the lead"
        )

    response = walled_get(body, chunking, tmp_path)
    assert response.status_code == 200
    assert CTA in response.text, "neither the cut article nor the wall page"
    leaked = sorted(markers & set(MARKER.findall(response.text)))
    assert not leaked, f"hidden text reached the reader: {leaked}"


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_stray_body_end_tag_does_not_leak(chunking: str, tmp_path: Path) -> None:
    body = page(hidden(1) + "</body>" + hidden(2) + hidden(3))
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_stray_html_end_tag_does_not_leak(chunking: str, tmp_path: Path) -> None:
    body = page(hidden(1) + "</html>" + hidden(2) + hidden(3))
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_pasted_whole_document_does_not_leak(chunking: str, tmp_path: Path) -> None:
    pasted = (
        "<!DOCTYPE html><html><head><title>Pasted</title></head><body>"
        f"{hidden(1)}{hidden(2)}</body></html>"
    )
    body = page(pasted + hidden(3) + hidden(4))
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize("element", ["foreignObject", "desc", "title"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_div_end_inside_svg_integration_point_does_not_leak(
    element: str, chunking: str, tmp_path: Path
) -> None:
    svg = f"<svg><{element}></div>{hidden(1)}</{element}></svg>"
    body = page(svg + hidden(2) + hidden(3))
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize(
    "element",
    ["mi", "mo", "mn", "ms", "mtext", "annotation-xml", 'annotation-xml encoding="text/html"'],
)
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_div_end_inside_mathml_text_point_does_not_leak(
    element: str, chunking: str, tmp_path: Path
) -> None:
    name = element.split()[0]
    math = f"<math><{element}></div>{hidden(1)}</{name}></math>"
    body = page(math + hidden(2) + hidden(3))
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize(
    "foreign", ["<svg></p>", "<svg><g></br>", "<math></p>", "<svg><path></path></p>"]
)
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_p_or_br_end_tag_in_foreign_content_does_not_leak(
    foreign: str, chunking: str, tmp_path: Path
) -> None:
    # "</p>" and "</br>" leave SVG and MathML (the WHATWG rule of 2021; Chromium and lexbor
    # follow it, html5lib 1.1 predates it): the <style> after them is HTML raw text, so the
    # "</div>" in it is text and the article goes on. A model that stayed in the SVG read
    # that "</div>" as the end of the article and sent the rest whole.
    body = page(f"{foreign}<style></div></style>" + hidden(1) + hidden(2))
    assert_walled_without_leak(body, chunking, tmp_path, parsers=("lexbor",))


@pytest.mark.parametrize(
    ("host", "mode"),
    [("story-body", "open"), ("story-body", "closed"), ("div", "open"), ("section", "Open")],
)
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_article_in_a_declarative_shadow_root_does_not_leak(
    host: str, mode: str, chunking: str, tmp_path: Path
) -> None:
    # Server-rendered web components send their markup as a declarative shadow root: a
    # browser shows a <template shadowrootmode> element's contents in place of the element
    # around it. Counted as inert template contents, the article held no paragraph before
    # the cut, and went out whole.
    shadow = f'<{host}><template shadowrootmode="{mode}">{LEAD}{hidden(1)}{hidden(2)}</template>'
    body = page(shadow + f"</{host}>", lead="")
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_div_end_inside_select_does_not_leak(chunking: str, tmp_path: Path) -> None:
    select = f"<select><option>one</option></div></div>{hidden(1)}</select>"
    body = page(select + hidden(2) + hidden(3))
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_nesting_deeper_than_the_limit_does_not_leak(
    chunking: str, tmp_path: Path
) -> None:
    depth = 1100  # past the rewriter's depth limit of 1024
    deep = "<div>" * depth + "deep inside" + "</div>" * depth
    body = page(deep + hidden(1) + hidden(2))
    assert_walled_without_leak(body, chunking, tmp_path)


def _words(count: int, start: int) -> str:
    return " ".join(f"word{start + i}" for i in range(count))


SHORT_LEADS = {
    # 240 words before the first marker: past any word budget the wall uses by default.
    "div-paragraphs": "".join(f"<div>{_words(60, 60 * i)}</div>" for i in range(4)),
    "br-separated": "<br>".join(_words(60, 60 * i) for i in range(4)) + "<br>",
    "bare-text": _words(240, 0) + " ",
}


@pytest.mark.parametrize("form", sorted(SHORT_LEADS))
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_fewer_paragraphs_than_the_lead_does_not_leak(
    form: str, chunking: str, tmp_path: Path
) -> None:
    lead = SHORT_LEADS[form]
    rest = {
        "div-paragraphs": "<div>HID0001DEN more</div><div>HID0002DEN end</div>",
        "br-separated": "HID0001DEN more<br>HID0002DEN end",
        "bare-text": "HID0001DEN more HID0002DEN end",
    }[form]
    body = page(rest, lead=lead)
    for parse in PARSERS.values():
        assert analyze(parse(body), SELECTOR, 2).short, "test precondition: a short container"
    assert_walled_without_leak(body, chunking, tmp_path)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_nested_link_after_inner_div_does_not_leak(
    chunking: str, tmp_path: Path
) -> None:
    # The held-out real page: an <a> still open when an inner <div> starts, and a nested
    # <a> inside that div. The adoption agency moves the inner div out of the first link
    # and keeps it open; a model that pops it lets the later </div>s close the container.
    related = '<div class="related"><a href="/x">one<div>inner<a href="/y">two</a></div></div>'
    body = page(related + hidden(1) + hidden(2) + "<div>" + hidden(3) + "</div>")
    assert_walled_without_leak(body, chunking, tmp_path)


# A start tag that closes the container (by closing what it stands in) leaves the bytes
# that follow outside it in the browser's tree, where they are shown, though they were
# written inside the article. A browser would show them; so must nobody.
def _walled_body(body: str, chunking: str, tmp_path: Path) -> str:
    response = walled_get(body, chunking, tmp_path)
    assert response.status_code == 200
    assert CTA in response.text, "neither the cut article nor the wall page"
    return response.text


CLOSED_BY_A_START_TAG = {
    "textarea-in-select": ("<select>", "<textarea>"),
    "input-in-select": ("<select>", "<input>"),
    "next-table-cell": ("<table><tr><td>", "<td>"),
}


@pytest.mark.parametrize("case", sorted(CLOSED_BY_A_START_TAG))
@pytest.mark.parametrize("where", ["after-the-lead", "inside-the-lead"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_container_closed_by_a_start_tag_does_not_leak(
    case: str, where: str, chunking: str, tmp_path: Path
) -> None:
    opener, closer = CLOSED_BY_A_START_TAG[case]
    lead = LEAD if where == "after-the-lead" else LEAD.split("</p>")[0] + "</p>"
    body = (
        "<!DOCTYPE html><html><head><title>The story</title></head><body>"
        f'{opener}<div class="article-body">{lead}{closer}{hidden(1)}{hidden(2)}</div>'
        "<footer>Also read</footer></body></html>"
    )
    text = _walled_body(body, chunking, tmp_path)
    assert not MARKER.findall(text), "hidden text reached the reader"
    if where == "after-the-lead":
        assert "LEADB" in text  # the lead itself still goes out


@pytest.mark.parametrize(
    "template",
    [
        '<a><template shadowrootmode="open">',  # <a> cannot host a shadow root
        '<x-story><template shadowrootmode="opened">',  # not a mode
        '<x-story><template shadowroot="open">',  # the attribute's name before 2023
    ],
)
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_inert_template_counts_nothing_of_the_lead(
    template: str, chunking: str, tmp_path: Path
) -> None:
    # An ordinary template after a short lead: its paragraphs are shown nowhere, so they
    # must not make the container long enough to pass its word budget (90 words, then the
    # cut at 80: the last words of the third block are hidden).
    words = " ".join(f"word{i}" for i in range(90))
    blocks = f"<div>{words[:300]}</div><div>{words[300:]} HID0009DEN</div>"
    body = page(f"{blocks}{template}<p>one</p><p>two</p></template>", lead="")
    for name in PARSERS:
        assert "HID0009DEN" in analyze(PARSERS[name](body), SELECTOR, 2).hidden_markers
    text = _walled_body(body, chunking, tmp_path)
    assert "HID0009DEN" not in text and "word3 " in text


def _long_hidden(number: int) -> str:
    return (
        f"<p>HID{number:04d}DEN The council met again on Thursday evening and voted on the "
        f"budget for the coming year, item {number}, after a long debate about the library.</p>"
    )


def _page_data(numbers: range) -> str:
    """The article again as a framework's page data (as Next.js embeds it)."""
    paragraphs = "".join(_long_hidden(n).replace("<", "\\u003c") for n in numbers)
    return (
        '<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":'
        f'{{"article":{{"body":"{paragraphs}"}}}}}},"page":"/premium/[slug]"}}</script>'
    )


@pytest.mark.parametrize("where", ["after-the-article", "in-the-head"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_article_again_in_page_data_does_not_leak(
    where: str, chunking: str, tmp_path: Path
) -> None:
    # The cut drops the article's paragraphs from the markup; a framework's page data
    # carries them all a second time. Pieces of the dropped text are looked for in the
    # rest of the page: found, the page fails closed (the wall page when nothing went out
    # yet, else the body ends before the data). Streamed, what came before the cut (the
    # head) is held until the pieces are known, and searched too.
    hidden_part = "".join(_long_hidden(n) for n in range(1, 6))
    data = _page_data(range(1, 6))
    body = page(hidden_part)
    if where == "after-the-article":
        body = body.replace("</body>", data + "</body>")
    else:
        body = body.replace("</head>", data + "</head>")
    text = _walled_body(body, chunking, tmp_path)
    assert not MARKER.findall(text), "the article's text reached the reader in its page data"


def test_wall_markup_one_repeated_sentence_is_not_an_echo(tmp_path: Path) -> None:
    # A page's description (or a pull quote) repeating one sentence of the article is the
    # publisher's summary, not a copy of the article: the article is cut, not walled off.
    body = page("".join(_long_hidden(n) for n in range(1, 6)))
    sentence = "The council met again on Thursday evening and voted on the budget"
    body = body.replace("</head>", f'<meta name="description" content="{sentence}."></head>')
    text = _walled_body(body, "whole", tmp_path)
    assert "LEADB" in text and not MARKER.findall(text)


def test_wall_markup_one_repeated_sentence_streamed_goes_out(tmp_path: Path) -> None:
    # Streamed, a first find holds the output back until a second (or 64 KiB later, or the
    # end): one sentence repeated in the footer still reaches the reader.
    sentence = "HID0003DEN The council met again on Thursday evening and voted on the budget"
    body = page("".join(_long_hidden(n) for n in range(1, 6)))
    body = body.replace("<footer>Also read", f"<footer>Also read: {sentence}")
    text = _walled_body(body, "bytes", tmp_path)
    assert "LEADB" in text and "Also read: HID0003DEN" in text and "</html>" in text


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_page_data_goes_out_with_the_echo_guard_off(
    chunking: str, tmp_path: Path
) -> None:
    # The operator's switch: wall.echo_guard = false cuts the article as usual and leaves
    # the rest of the page alone, page data included.
    body = page("".join(_long_hidden(n) for n in range(1, 6)))
    body = body.replace("</body>", _page_data(range(1, 6)) + "</body>")

    text = walled_get(body, chunking, tmp_path, echo_guard=False).text
    assert CTA in text and "LEADB" in text
    assert "<p>HID0001DEN" not in text and "__NEXT_DATA__" in text


@pytest.mark.parametrize("wrapper", ["<template>", '<template id="story">', "<div><template>"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_article_inside_a_template_does_not_leak(
    wrapper: str, chunking: str, tmp_path: Path
) -> None:
    # A page a script renders from a <template>: the article is in its (inert) contents.
    # Nothing of it is shown until the script runs, but its bytes are the article: the
    # container counts inside the template as anywhere else, and is cut.
    body = page(hidden(1) + hidden(2) + hidden(3))
    body = body.replace('<div class="article-body">', wrapper + '<div class="article-body">')
    assert_walled_without_leak(body, chunking, tmp_path)


_WORDS = " ".join(f"word{i}" for i in range(90))
#: Shadow DOM whose effect on what a browser shows the model does not follow: (the article,
#: a word of the lead that must not go out either). Each gives the wall page, never a guess.
SHADOW_DOM_UNFOLLOWED = {
    # A host's own children are shown only where a slot of its shadow root takes them (and
    # where that slot stands): LEADA is light content of <x-story>.
    "host-children-before-the-cut": (
        '<x-story><template shadowrootmode="open"><h2>A heading</h2><slot></slot>'
        f"</template>{LEAD}{hidden(1)}{hidden(2)}</x-story>",
        "LEADA",
    ),
    # A second declarative shadow root of the same mode empties the first: the paragraph a
    # browser showed from it is gone, so what the lead counted no longer stands.
    "second-shadow-root-on-one-host": (
        '<x-story><template shadowrootmode="open"><p>LEADA gone once the second comes.</p>'
        f'</template><template shadowrootmode="open">{hidden(1)}{hidden(2)}</template>'
        "</x-story>",
        "LEADA",
    ),
    # Found by the property tests: the container itself became a shadow host after holding
    # text and a paragraph, which a browser then shows only where a slot takes them (here
    # nowhere). Counted as shown, they made a short container long enough to skip its word
    # budget. A shadow root's template must come first in its host.
    "after-other-content-of-its-host": (
        f"<div>{_WORDS}</div>{hidden(1)}"
        f'<template shadowrootmode="open">{hidden(2)}<p>after</p></template>',
        "word3 ",
    ),
    # Found by the property tests: a shadow root attached to the container after the cut
    # makes what a browser shows of the article the shadow root's, and the lead that went
    # out (the container's own children) shown only where a slot takes it.
    "after-the-cut-on-the-container": (
        f"{LEAD}{hidden(1)}{hidden(2)}"
        f'<template shadowrootmode="open">{hidden(3)}<p>after</p></template>',
        "LEADA",
    ),
}


@pytest.mark.parametrize("case", sorted(SHADOW_DOM_UNFOLLOWED))
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_shadow_dom_the_model_cannot_follow_fails_closed(
    case: str, chunking: str, tmp_path: Path
) -> None:
    article, absent = SHADOW_DOM_UNFOLLOWED[case]
    text = _walled_body(page(article, lead=""), chunking, tmp_path)
    assert not MARKER.findall(text) and absent not in text, "not the wall page"


def _hidden_chinese(number: int) -> str:
    sentence = (
        "市议会周四晚上再次开会，就明年的预算进行表决，此前围绕图书馆的问题进行了长时间的辩论。"
    )
    return f"<p>HID{number:04d}DEN {sentence}第{number}项</p>"


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_non_latin_article_again_in_page_data_does_not_leak(
    ensure_ascii: bool, chunking: str, tmp_path: Path
) -> None:
    # Text with no run of ASCII letters long enough for a piece: pieces of UTF-8 letters,
    # looked for as they are and as JSON's \\u escapes write them (Python's json.dumps
    # escapes by default; JavaScript's JSON.stringify does not).
    import json

    paragraphs = [_hidden_chinese(n) for n in range(1, 6)]
    data = json.dumps({"props": {"body": "".join(paragraphs)}}, ensure_ascii=ensure_ascii)
    data = data.replace("<", "\\u003c")
    script = f'<script id="__NEXT_DATA__" type="application/json">{data}</script>'
    body = page("".join(paragraphs)).replace("</body>", script + "</body>")
    text = _walled_body(body, chunking, tmp_path)
    assert not MARKER.findall(text) and "市议会" not in text


@pytest.mark.parametrize("where", ["the-whole-article", "before-the-lead"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_wall_markup_article_in_noscript_does_not_leak(
    where: str, chunking: str, tmp_path: Path
) -> None:
    # A page its scripts render keeps the article in <noscript> for readers without
    # JavaScript: raw text with scripting on (no paragraph, no word to count), markup for a
    # reader who turns JavaScript off, the oldest way around a wall. In a walled container
    # the element goes, whole.
    story = LEAD + hidden(1) + hidden(2) + hidden(3)
    if where == "the-whole-article":
        body = page(f'<noscript>{story}</noscript><div id="app"></div>', lead="")
    else:
        body = page(f"<noscript>{hidden(4)}{hidden(5)}</noscript>{story}", lead="")
    # Precondition: parsed with scripting off (lexbor, as such a reader's browser), the
    # <noscript> holds paragraphs, markers and all.
    marker = "HID0001DEN" if where == "the-whole-article" else "HID0004DEN"
    assert _noscript_paragraph_with(body, marker)
    response = walled_get(body, chunking, tmp_path)
    assert response.status_code == 200
    text = response.text
    assert not MARKER.findall(text), "a reader without JavaScript gets the walled text"
    assert "<noscript>" not in text
    if where == "before-the-lead":
        assert "LEADB" in text and CTA in text  # the visible article is cut as usual


def _noscript_paragraph_with(body: str, marker: str) -> bool:
    """Whether lexbor (scripting off) reads a <p> inside <noscript> holding ``marker``."""
    for node in PARSERS["lexbor"](body).descendants():
        if node.kind == "element" and node.name == "p":
            text = "".join(n.data for n in node.descendants() if n.kind == "text")
            if marker in text and any(a.name == "noscript" for a in node.ancestors()):
                return True
    return False
