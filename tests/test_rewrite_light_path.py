"""The light path (tokenizer waking only for the tags operations need, attribute filters, the
tree model only where an extent matters) against the full path (the tree model over every
token), which a selector that looks at ancestors forces: same output, any chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.rewrite import (
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    Rewriter,
)
from consentgate.rewrite.tokenizer import Tokenizer
from rewrite_helpers import bytewise, corpus_dir, random_chunks, whole

Chunker = Callable[[bytes], Iterator[bytes]]


def _activate(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
    if attrs.get("type") == "text/plain":
        return {**attrs, "type": "text/javascript"}
    return None


def banner_ops(prefix: str) -> list[Operation]:
    """The consent jobs' operations; ``prefix`` ("html ") makes every selector look at an
    ancestor, which takes the rewriter off the light path."""
    return [
        InsertHTML(f"{prefix}head", "<!--CM-->", Position.AFTER_START),
        InsertHTML(f"{prefix}body", "<!--BANNER-->", Position.BEFORE_END, at_eof_if_missing=True),
        RewriteAttributes(f"{prefix}script[data-consent]", _activate),
        RewriteAttributes(f"{prefix}iframe[data-consent]", _activate),
        RemoveElement(f"{prefix}div.cg-remove-me"),
    ]


def rewrite(data: bytes, ops: Sequence[Operation], chunker: Chunker) -> bytes:
    rewriter = Rewriter(ops, encoding="utf-8")
    out = [rewriter.feed(piece) for piece in chunker(data)]
    out.append(rewriter.close())
    return b"".join(out)


PAGE = (
    b"<!DOCTYPE html><html><head><title>t</title>"
    b'<script>var s = "<script data-consent=x type=text/plain>";</script></head><body>'
    b'<p>one<script type="text/plain" data-consent="analytics">track()</script>'
    b"<svg><style><p>in svg</p></style><title>not raw</title></svg>"
    b'<div class="cg-remove-me"><p>gone<div>nested</div></p></div>'
    b'<iframe data-consent="marketing" type="text/plain" src="x"></iframe>'
    b"<textarea><script data-consent=y type=text/plain></textarea>"
    # Foreign content: SVG's own tags pass in C, but an integration point, a breakout tag
    # and the end tag of an open HTML element are seen (an unclosed <svg> ends at </p>, and
    # the script after it is raw text again: its "</body>" is no end tag).
    b'<svg><g><path d="M0"/><foreignObject><script type="text/plain" data-consent="a">'
    b"f()</script></foreignObject><g><circle/></g></svg>"
    b'<p>two<svg><g><rect/><use href="#x"/></p><script>var t = "</body>";</script>'
    b'<math><mi><iframe data-consent="marketing" type="text/plain"></iframe></mi></math>'
    b"<svg><desc><b>bold</b></desc><div>breaks out</div>"
    b"</body></html>"
)


@pytest.mark.parametrize(
    "chunker", [whole, bytewise, partial(random_chunks, seed=7)], ids=["whole", "1", "rnd"]
)
def test_light_path_equals_full_path_on_tricky_markup(chunker: Chunker) -> None:
    light = rewrite(PAGE, banner_ops(""), chunker)
    assert light == rewrite(PAGE, banner_ops("html "), whole)
    # The filter let the gated script and iframe through to their operations, and only them.
    assert light.count(b'type="text/javascript"') == 4
    assert b"gone" not in light and b"nested" not in light
    assert b"<!--CM-->" in light and b"<!--BANNER-->" in light


@pytest.mark.corpora
@pytest.mark.slow
def test_light_path_equals_full_path_on_news_pages() -> None:
    folder = corpus_dir("news-pages")
    pages = sorted(folder.glob("*.html"))
    assert pages
    differ = [
        page.name
        for page in pages
        if rewrite(page.read_bytes(), banner_ops(""), partial(random_chunks, seed=3, max_size=4096))
        != rewrite(page.read_bytes(), banner_ops("html "), whole)
    ]
    assert not differ, differ


@pytest.mark.parametrize("chunker", [whole, bytewise], ids=["whole", "1"])
def test_full_path_byte_order_mark_is_not_text(chunker: Chunker) -> None:
    # A decoder drops the BOM before tree construction: the <head> after it is the head (were
    # the BOM text, the head and body would be implied before it and <head> ignored).
    page = b"\xef\xbb\xbf<!DOCTYPE html><html><head><title>t</title></head><body><p>x</body>"
    out = rewrite(page, banner_ops("html "), chunker)
    assert out.startswith(b"\xef\xbb\xbf<!DOCTYPE html><html><head><!--CM-->")
    assert out == rewrite(page, banner_ops(""), chunker)


# -- whole svg/math elements: the light path skips them in C when they provably stay foreign --

FOREIGN_PIECES = (
    b"<svg>", b"<svg viewBox='0 0 1 1'>", b"</svg>", b"<math>", b"</math>", b"<g>", b"</g>",
    b"<path d=x/>", b"<use href='#a'></use>", b"<title>t</title>", b"<title>", b"</title>",
    b"<desc>d</desc>", b"<foreignObject>", b"</foreignObject>", b"<mi>x</mi>", b"<mi>",
    b"</mi>", b"<mo>", b"<annotation-xml encoding=text/html>", b"</annotation-xml>",
    b"<p>", b"</p>", b"<div>", b"</div>", b"<b>", b"</b>", b"<font color=x>", b"<font>",
    b"</font>", b"<style>", b"</style>", b"<a>", b"</a>", b"<my-el>", b"</my-el>", b"<br>",
    b"<![CDATA[<p>]]>", b"<!--</svg>-->", b"x", b" ", b"<", b"</", b"<svg/>",
    b"<script type=text/plain data-consent=a>t()</script>",
    b"<iframe data-consent=m type=text/plain></iframe>", b'<div class="cg-remove-me">',
    b"<script>'</svg>'</script>", b"<table>", b"<td>", b"</table>", b"<select>", b"</select>",
)  # fmt: skip


def rewrite_without_whole_foreign(data: bytes, ops: Sequence[Operation], chunker: Chunker) -> bytes:
    """The light path as it was before whole svg/math elements passed in C: the tokenizer
    reports every svg/math start tag and the tree model follows the foreign content."""
    original = Tokenizer.set_wanted

    def set_wanted(self: Tokenizer, names: frozenset[str] | None, **kwargs: Any) -> None:
        original(self, names, **{**kwargs, "whole_foreign": False})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Tokenizer, "set_wanted", set_wanted)
        return rewrite(data, ops, chunker)


GATED = b"<script type=text/plain data-consent=a>t()</script>"
#: Openers whose reading changes what follows: raw text in HTML, plain elements in SVG.
RAW_OPENERS = (b"<style>", b"<title>", b"<textarea>", b"<noscript>", b"<script>", b"<xmp>")
#: What decides where foreign content ends, often enough to meet in a few hundred examples.
FOREIGN_INNER = (
    *RAW_OPENERS,
    b"<p>", b"</p>", b"<b>", b"<font color=x>", b"<font>", b"<div>", b"</div>", b"</title>",
    b"<desc>", b"</desc>", b"<foreignObject>", b"</foreignObject>", b"<mi>", b"</mi>",
    b"<mtext>", b"<annotation-xml encoding=text/html>", b"</annotation-xml>", b"<g>", b"</g>",
    b"<path/>", b"<svg>", b"</svg>", b"<math>", b"</math>", b"x", b"<a>", b"</a>", b"<my-el>",
    b"</my-el>", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"</style>", b"<svg/>", b"<br>",
)  # fmt: skip


@st.composite
def foreign_segment(draw: st.DrawFn) -> bytes:
    """An svg or math element with random content, closed or not, then a gated script: where
    the content really ends decides whether that script is markup (activated) or text."""
    root = draw(st.sampled_from((b"svg", b"math")))
    pieces = st.lists(st.sampled_from(FOREIGN_INNER), max_size=5)
    # Something that may or may not end foreign content, then an opener that is raw text in
    # HTML and a plain element in SVG/MathML: the script's fate shows which reading won.
    inner = (
        b"".join(draw(pieces))
        + draw(st.sampled_from(FOREIGN_INNER))
        + draw(st.sampled_from(RAW_OPENERS))
        + b"".join(draw(pieces))
    )
    closer = draw(st.sampled_from((b"</" + root + b">", b"")))
    return b"<" + root + b">" + inner + closer + GATED


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments=st.lists(
        st.one_of(foreign_segment(), st.sampled_from(FOREIGN_PIECES + RAW_OPENERS)), max_size=12
    ),
    seed=st.integers(0, 1000),
)
def test_light_path_whole_foreign_elements_only_move_towards_the_model(
    segments: list[bytes], seed: int
) -> None:
    """Passing an svg/math element whole gives the tree model's answer (the full path, which
    knows every open element) or, where the light path already guessed otherwise (its
    "an end tag for no open element leaves foreign content" rule), the old light answer:
    never a third one."""
    page = b"<!DOCTYPE html><html><head></head><body>" + b"".join(segments) + b"</body></html>"
    full = rewrite(page, banner_ops("html "), whole)
    before = rewrite_without_whole_foreign(page, banner_ops(""), whole)
    got = rewrite(page, banner_ops(""), whole)
    assert got in (full, before)
    assert rewrite(page, banner_ops(""), partial(random_chunks, seed=seed, max_size=16)) == got


def test_light_path_whole_foreign_stray_end_tag_inside_svg_is_ignored_as_browsers_do() -> None:
    # "</title>" with no title open is ignored (svg is not special; body is): the <style> is
    # SVG's, </svg> ends the element, and the gated script after it is markup.
    page = b"<html><head></head><body><svg></title><style></svg>" + GATED + b"</body></html>"
    out = rewrite(page, banner_ops(""), whole)
    assert out == rewrite(page, banner_ops("html "), whole)
    assert b'type="text/javascript"' in out


def test_light_path_whole_foreign_icons_do_not_start_the_tree_model() -> None:
    icon = b'<svg viewBox="0 0 9 9"><title>Share</title><path d="M0 0"/></svg>'
    page = b"<html><head></head><body><p>" + icon * 3 + b"</p><svg><p>out</svg></body></html>"
    starts: list[str] = []
    original = Rewriter._start_model

    def spy(self: Rewriter, context: Sequence[Any], *, mid_document: bool) -> None:
        starts.append("mid" if mid_document else "doc")
        original(self, context, mid_document=mid_document)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rewriter, "_start_model", spy)
        out = rewrite(page, banner_ops(""), whole)
    assert out == rewrite_without_whole_foreign(page, banner_ops(""), whole)
    # Only the svg holding a <p> (which leaves foreign content) was followed by the model.
    assert starts.count("mid") == 1


def test_light_path_whole_foreign_formulas_with_comments_do_not_start_the_tree_model() -> None:
    # As Wikipedia's MathML renders ⟺: the character again in a comment inside the mo.
    formula = (
        b'<math alttext="A"><semantics><mrow><mi>A</mi><mo stretchy="false">\xe2\x9f\xba'
        b"<!-- \xe2\x9f\xba --></mo><mspace width=1em></mspace></mrow>"
        b'<annotation encoding="application/x-tex">A</annotation></semantics></math>'
    )
    page = b"<html><head></head><body><p>" + formula * 3 + b"</p></body></html>"
    starts: list[str] = []
    original = Rewriter._start_model

    def spy(self: Rewriter, context: Sequence[Any], *, mid_document: bool) -> None:
        starts.append("mid" if mid_document else "doc")
        original(self, context, mid_document=mid_document)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rewriter, "_start_model", spy)
        out = rewrite(page, banner_ops(""), whole)
    assert out == rewrite_without_whole_foreign(page, banner_ops(""), whole)
    assert out == rewrite(page, banner_ops("html "), whole)
    assert starts == []
