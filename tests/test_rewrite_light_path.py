"""The light path (tokenizer waking only for the tags operations need, attribute filters, the
tree model only where an extent matters) against the full path (the tree model over every
token), which a selector that looks at ancestors forces: same output, any chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial

import pytest

from consentgate.rewrite import (
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    Rewriter,
)
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
