"""Behaviour the rewriter's fast paths must keep (short paths for tags no operation wants, the
open-element name list, lazily found attribute positions, the tag-name cache).

Expected outputs were taken from the implementation before those fast paths; every case is
also checked whole, byte by byte and in random chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from consentgate.rewrite import (
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    Truncate,
)
from consentgate.rewrite.tokenizer import ContentModel, EndTag, StartTag, Tokenizer
from rewrite_helpers import run_all_chunkings


def _mark(tag: str, attrs: dict[str, str]) -> dict[str, str]:
    return {**attrs, "data-seen": tag}


CASES: dict[str, tuple[Sequence[Operation], bytes, bytes]] = {
    # "/" before ">" self-closes a foreign element only when it is not the end of an unquoted
    # attribute value, and "/ >" does not self-close at all.
    "foreign_self_closing": (
        [InsertHTML("svg g text", "[in g]", once=False)],
        b"<svg><g/><text>a</text><g d=x/><text>b</text></g><G / ><text>c</text></svg>d",
        b"<svg><g/><text>a</text><g d=x/><text>[in g]b</text></g><G / ><text>[in g]c</text>"
        b"</svg>d",
    ),
    "implied_closes": (
        [Truncate("div.story", "<aside>CTA</aside>", keep_items=2, items="p, li")],
        b"<div class=story><p>one<p>two<ul><li>a<li>b</ul><p>three</div>after",
        b"<div class=story><p>one<p>two</p><aside>CTA</aside></div>after",
    ),
    "nth_item_closed_by_later_tag": (
        [Truncate("div.story", "[CTA]", keep_items=1)],
        b"<div class=story><p>one <b>bold<div>block</div><p>two</p></div>tail",
        b"<div class=story><p>one <b>bold</b></p>[CTA]</div>tail",
    ),
    "stray_end_tags": (
        [InsertHTML.before_body_close("[B]")],
        b"<p>x</span></div></b></body>y</html>",
        b"<p>x</span></div></b>[B]</body>y</html>",
    ),
    "nested_remove": (
        [RemoveElement("div.ad")],
        b"<div class=ad><div>x</div><p>y</div>after<div>z</div>",
        b"after<div>z</div>",
    ),
    "case_and_odd_names": (
        [RewriteAttributes("div, p", _mark)],
        b"<DIV id=a>x</DIV><Div/><d\xefv b>y</d\xefv><P class=Q>z</p>",
        b'<div id="a" data-seen="div">x</DIV><div data-seen="div" /><d\xefv b>y</d\xefv>'
        b'<p class="Q" data-seen="p">z</p>',
    ),
    "misnested_formatting": (
        [InsertHTML("b", "[endb]", Position.AFTER_END, once=False)],
        b"<b>1<div>2</b>3</div>4",
        b"<b>1<div>2</b>[endb]3</div>4",
    ),
    "tables": (
        [InsertHTML("td", "[td]", Position.BEFORE_END, once=False)],
        b"<table><tr><td>1<td>2<tr><td>3</table>x",
        b"<table><tr><td>1<td>2<tr><td>3</table>x",
    ),
    "head_implied": (
        [InsertHTML.after_head_open("[H]"), InsertHTML("head", "[/H]", Position.AFTER_END)],
        b"<html><head><title>t</title><div>x</div></html>",
        b"<html><head>[H]<title>t</title><div>x</div></html>",
    ),
    "classes_with_character_references": (
        [InsertHTML(".story", "[S]", once=False)],
        b'<div class="a st&#111;ry">1</div><div class="story-x">2</div>',
        b'<div class="a st&#111;ry">[S]1</div><div class="story-x">2</div>',
    ),
    # ASCII attribute names are looked up without decoding the others; non-ASCII ones decode all.
    "attribute_lookups": (
        [RewriteAttributes("#main, [d\u00e4ta=1], [data-id~=x]", _mark)],
        '<p ID=m&#97;in>1</p><p d\u00e4ta=1>2</p><i data-id="y&#32;x" data-id=z>3</i><b id=x>'
        .encode(),
        '<p id="main" data-seen="p">1</p><p d\u00e4ta="1" data-seen="p">2</p>'
        '<i data-id="y x" data-seen="i">3</i><b id=x>'.encode(),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_paths_keep_behaviour(case: str) -> None:
    ops, data, expected = CASES[case]
    assert run_all_chunkings(lambda: ops, data) == expected


class _Recorder:
    def __init__(self) -> None:
        self.tags: list[StartTag] = []
        self.ends: list[str] = []

    def text(self, data: bytes) -> None:
        pass

    def raw_text(self, data: bytes) -> None:
        pass

    def other(self, data: bytes) -> None:
        pass

    def start_tag(self, tag: StartTag) -> ContentModel:
        self.tags.append(tag)
        return ContentModel.DATA

    def end_tag(self, tag: EndTag) -> None:
        self.ends.append(tag.name)

    def in_foreign_content(self) -> bool:
        return False


def test_attribute_positions_are_found_lazily() -> None:
    recorder = _Recorder()
    tokenizer = Tokenizer(recorder)
    tokenizer.feed(b"<IMG\tSRC='a>b' alt=x  /><a href=/ ><Br/></A>")
    tokenizer.close()
    img, a, br = recorder.tags
    assert (img.name, img.name_end, img.raw[img.attrs_end :]) == ("img", 4, b"  />")
    assert img.raw_attrs == {b"src": b"a>b", b"alt": b"x"}
    assert img.self_closing and not a.self_closing and br.self_closing
    assert a.raw_attrs == {b"href": b"/"}  # "/ >" after a value: not self-closing
    assert br.raw_attrs == {}
    assert recorder.ends == ["a"]


def test_start_tag_type_is_used() -> None:
    class Mine(StartTag):
        __slots__ = ("extra",)

    recorder = _Recorder()
    tokenizer = Tokenizer(recorder, start_tag_type=Mine)
    for byte in b"<p class=x>y</p><b>":
        tokenizer.feed(bytes((byte,)))
    tokenizer.close()
    assert [type(tag) for tag in recorder.tags] == [Mine, Mine]
    assert recorder.tags[0].raw_attrs == {b"class": b"x"}


def test_many_distinct_tag_names_stay_correct() -> None:
    # More names than the name cache keeps: the names past the limit are still lower-cased.
    names = [f"X-Tag{i}" for i in range(3000)]
    data = "".join(f"<{n}>{i}</{n}>" for i, n in enumerate(names)).encode()
    recorder = _Recorder()
    tokenizer = Tokenizer(recorder)
    tokenizer.feed(data)
    tokenizer.close()
    assert [tag.name for tag in recorder.tags] == [n.lower() for n in names]
    assert recorder.ends == [n.lower() for n in names]
