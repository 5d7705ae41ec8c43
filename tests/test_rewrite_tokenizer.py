"""Tokenizer edge cases: every byte comes back, and tokens are where a browser would see them."""

from __future__ import annotations

import pytest

from consentgate.rewrite import RewriteError, RewriteErrorReason
from consentgate.rewrite.tokenizer import ContentModel, EndTag, StartTag, Tokenizer
from rewrite_helpers import bytewise, random_chunks

RAW = {"script": ContentModel.SCRIPT, "plaintext": ContentModel.PLAINTEXT}
RAWTEXT = {"style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"}


class Recorder:
    def __init__(self) -> None:
        self.tokens: list[tuple[str, bytes]] = []
        self.tags: list[StartTag] = []

    def _add(self, kind: str, data: bytes) -> None:
        # Merge pieces of the same kind so chunking does not show.
        if self.tokens and self.tokens[-1][0] == kind and kind in ("text", "raw", "other+"):
            self.tokens[-1] = (kind, self.tokens[-1][1] + data)
        else:
            self.tokens.append((kind, data))

    def text(self, data: bytes) -> None:
        self._add("text", data)

    def raw_text(self, data: bytes) -> None:
        self._add("raw", data)

    def other(self, data: bytes) -> None:
        self._add("other+", data)

    def start_tag(self, tag: StartTag) -> ContentModel:
        self.tags.append(tag)
        self.tokens.append(("start", tag.raw))
        if tag.name in RAW:
            return RAW[tag.name]
        return ContentModel.RAWTEXT if tag.name in RAWTEXT else ContentModel.DATA

    def end_tag(self, tag: EndTag) -> None:
        self.tokens.append(("end", tag.raw))

    def in_foreign_content(self) -> bool:
        return False


def tokenize(data: bytes, chunks: list[bytes] | None = None) -> Recorder:
    recorder = Recorder()
    tokenizer = Tokenizer(recorder)
    for chunk in chunks if chunks is not None else [data]:
        tokenizer.feed(chunk)
    tokenizer.close()
    assert b"".join(raw for _, raw in recorder.tokens) == data
    return recorder


def kinds(data: bytes) -> list[tuple[str, bytes]]:
    tokens = tokenize(data).tokens
    assert tokenize(data, list(bytewise(data))).tokens == tokens, "1-byte chunking differs"
    assert tokenize(data, list(random_chunks(data, 5, 7))).tokens == tokens
    return tokens


def test_tag_names_are_case_insensitive() -> None:
    recorder = tokenize(b"<DiV Class=x>a</DIV>")
    assert recorder.tags[0].name == "div"
    assert kinds(b"<DiV>a</DIV>") == [("start", b"<DiV>"), ("text", b"a"), ("end", b"</DIV>")]


def test_gt_inside_quoted_attribute_does_not_end_tag() -> None:
    assert kinds(b"<a title=\"x>y\" b='>'>t") == [
        ("start", b"<a title=\"x>y\" b='>'>"),
        ("text", b"t"),
    ]


def test_unquoted_and_odd_attributes_are_parsed() -> None:
    tag = tokenize(b"<img src=a.png alt = 'x' data-x=\"1\"ismap =foo/>").tags[0]
    assert tag.raw_attrs == {
        b"src": b"a.png",
        b"alt": b"x",
        b"data-x": b"1",
        b"ismap": b"foo/",
    }
    assert not tag.self_closing


def test_self_closing_syntax_detected() -> None:
    assert tokenize(b"<br/>").tags[0].self_closing
    assert tokenize(b"<x a='1' />").tags[0].self_closing
    assert not tokenize(b"<a href=/>").tags[0].self_closing


def test_duplicate_attributes_first_wins() -> None:
    assert tokenize(b"<a x=1 X=2>").tags[0].raw_attrs == {b"x": b"1"}


@pytest.mark.parametrize(
    "markup",
    [b"<!-- a -- b -->", b"<!-->", b"<!--->", b"<!---->", b"<!-- x --!>", b"<!x>", b"<?xml x?>",
     b"</ x>", b"<!DOCTYPE html>", b"<![CDATA[ x ]]>", b"</>"],
)
def test_comment_like_markup_is_one_opaque_token(markup: bytes) -> None:
    assert kinds(markup + b"<p>") == [("other+", markup), ("start", b"<p>")]


def test_comment_end_variants() -> None:
    assert kinds(b"<!--!><p>--><b>") == [("other+", b"<!--!><p>-->"), ("start", b"<b>")]


def test_lone_less_than_is_text() -> None:
    assert kinds(b"a < b <3 <") == [("text", b"a < b <3 <")]


def test_script_content_is_not_parsed_as_tags() -> None:
    data = b"<script>if (a<b && c>d) document.write('<p>')</script><p>"
    assert kinds(data) == [
        ("start", b"<script>"),
        ("raw", b"if (a<b && c>d) document.write('<p>')"),
        ("end", b"</script>"),
        ("start", b"<p>"),
    ]


@pytest.mark.parametrize("end", [b"</script>", b"</SCRIPT >", b"</script/>", b"</script\n>"])
def test_script_end_variants(end: bytes) -> None:
    assert kinds(b"<script>x" + end) == [("start", b"<script>"), ("raw", b"x"), ("end", end)]


def test_script_end_needs_delimiter() -> None:
    assert kinds(b"<script></scripty></script>")[1] == ("raw", b"</scripty>")


def test_script_double_escaped_end_tag_is_text() -> None:
    body = b"<!-- <script> </script> -->"
    assert kinds(b"<script>" + body + b"</script>")[1] == ("raw", body)


def test_script_escaped_end_tag_ends_script() -> None:
    assert kinds(b"<script><!-- x </script>y")[1:] == [
        ("raw", b"<!-- x "),
        ("end", b"</script>"),
        ("text", b"y"),
    ]


@pytest.mark.parametrize("name", sorted(RAWTEXT))
def test_rawtext_elements_hide_tags(name: str) -> None:
    n = name.encode()
    data = b"<" + n + b"><b>x</b></" + n.upper() + b">"
    assert kinds(data) == [
        ("start", b"<" + n + b">"),
        ("raw", b"<b>x</b>"),
        ("end", b"</" + n.upper() + b">"),
    ]


def test_plaintext_swallows_everything() -> None:
    assert kinds(b"<plaintext></plaintext><p>") == [
        ("start", b"<plaintext>"),
        ("raw", b"</plaintext><p>"),
    ]


def test_incomplete_tag_at_end_is_kept() -> None:
    assert kinds(b"a<div class='x") == [("text", b"a"), ("other+", b"<div class='x")]


def test_unterminated_comment_streams_out() -> None:
    recorder = Recorder()
    tokenizer = Tokenizer(recorder)
    tokenizer.feed(b"<!--" + b"x" * 10_000)
    assert tokenizer.held_bytes <= 3
    tokenizer.feed(b"-->")
    tokenizer.close()
    assert b"".join(raw for _, raw in recorder.tokens) == b"<!--" + b"x" * 10_000 + b"-->"


def test_long_script_streams_out() -> None:
    recorder = Recorder()
    tokenizer = Tokenizer(recorder)
    tokenizer.feed(b"<script>" + b"a<b;" * 100_000)
    assert tokenizer.held_bytes <= 8


def test_token_over_cap_raises() -> None:
    tokenizer = Tokenizer(Recorder(), max_token_bytes=100)
    with pytest.raises(RewriteError) as info:
        tokenizer.feed(b"<div title='" + b"x" * 200)
    assert info.value.reason is RewriteErrorReason.TOKEN_TOO_LARGE
