"""Tokenizer edge cases: every byte comes back, and tokens are where a browser would see them."""

from __future__ import annotations

import random
import re

import pytest

from consentgate.rewrite import RewriteError, RewriteErrorReason
from consentgate.rewrite.tokenizer import ContentModel, EndTag, StartTag, Tokenizer
from rewrite_helpers import bytewise, corpus_dir, random_chunks

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
    [
        b"<!-- a -- b -->",
        b"<!-->",
        b"<!--->",
        b"<!---->",
        b"<!-- x --!>",
        b"<!x>",
        b"<?xml x?>",
        b"</ x>",
        b"<!DOCTYPE html>",
        b"<![CDATA[ x ]]>",
        b"</>",
    ],
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


def test_token_over_cap_raises_when_the_tag_arrives_in_chunks() -> None:
    # The chunks of a held tag are kept aside until a ">" arrives; the cap still counts them.
    tokenizer = Tokenizer(Recorder(), max_token_bytes=100)
    tokenizer.feed(b"<div title='")
    with pytest.raises(RewriteError) as info:
        for _ in range(20):
            tokenizer.feed(b"x" * 10)
    assert info.value.reason is RewriteErrorReason.TOKEN_TOO_LARGE
    assert tokenizer.held_bytes > 100


def test_held_tag_in_chunks_comes_out_whole() -> None:
    data = b"a<div title='" + b"x" * 50_000 + b"' id=b>c</div>"
    chunks = [data[i : i + 100] for i in range(0, len(data), 100)]
    recorder = tokenize(data, chunks)
    assert recorder.tokens == kinds(data)
    assert recorder.tags[0].raw_attrs[b"id"] == b"b"


# -- wanted names: the fast path against the careful path -------------------------------------

FOREIGN = frozenset(("svg", "math"))
PIECES = (
    b"<", b">", b"/", b"!", b"-", b"--", b"<!--", b"-->", b"--!>", b"<script", b"</script",
    b"<SCRIPT", b"</Script", b" ", b"\n", b"x", b"'", b'"', b"=", b"<div", b"</div", b"<title",
    b"</title", b"<style", b"</style>", b"<p", b"</p>", b"<?", b"<!x", b"<![CDATA[", b"]]>",
    b"<plaintext>", b"<b", b"</B", b"<textarea", b"</textarea", b"<!DOCTYPE html>", b"<br/>",
    b'title="<script>"', b"<a href='x>y'>", b"\t", b"<script>", b"</script>", b"<!--<script>",
    b"</ x>", b"</>", b"<!-->", b"<!--->", b"<svg>", b"</svg>", b"<math>", b"</math>",
    b" data-consent=a", b" DATA-consent", b" type=x", b" id=", b" data-consentx=1", b"<iframe",
    b"</iframe>", b"<![CDATA[<p>]]>", b"]]", b" x ", b"'x>'",
)  # fmt: skip
WANTED_SETS = (
    frozenset(),
    frozenset({"body"}),
    frozenset({"head", "body", "script", "iframe"}),
    frozenset({"div", "p", "script", "title", "li", "table"}),
    frozenset({"a", "b", "style", "textarea"}),
)


FILTERED_SETS: tuple[tuple[frozenset[str], dict[str, frozenset[str]]], ...] = (
    (
        frozenset({"html", "head", "body", "script", "iframe"}),
        {"script": frozenset({"data-consent"}), "iframe": frozenset({"data-consent"})},
    ),
    (frozenset({"script", "p", "div"}), {"script": frozenset({"type"}), "div": frozenset({"id"})}),
    (
        frozenset({"title", "style", "plaintext"}),
        {"title": frozenset({"x"}), "plaintext": frozenset({"y"})},
    ),
)


class FullRecorder:
    """Every byte in order (``out``) and the tag and raw-text tokens (``tokens``); raw text is
    merged per element so chunking does not show. With ``toggle`` it behaves like a rewriter:
    wanted names in HTML content, every token (``set_wanted(None)``) inside svg/math; without
    it every element is HTML (the promise a handler makes in wanted mode)."""

    def __init__(self, toggle: frozenset[str] | None = None, *, foreign: bool = False) -> None:
        self.all_foreign = foreign  # everything is foreign content (svg all the way)
        self.out: list[bytes] = []
        self.tokens: list[tuple[str, bytes]] = []
        self.toggle = toggle
        self.foreign_depth = 0
        self.tokenizer: Tokenizer | None = None

    def _raw(self, data: bytes) -> None:
        self.out.append(data)
        if self.tokens and self.tokens[-1][0] == "raw":
            self.tokens[-1] = ("raw", self.tokens[-1][1] + data)
        else:
            self.tokens.append(("raw", data))

    def text(self, data: bytes) -> None:
        self.out.append(data)

    def other(self, data: bytes) -> None:
        self.out.append(data)

    def passthrough(self, data: bytes) -> None:
        self.out.append(data)

    def raw_text(self, data: bytes) -> None:
        self._raw(data)

    def start_tag(self, tag: StartTag) -> ContentModel:
        self.out.append(tag.raw)
        self.tokens.append(("start", tag.raw))
        if self.toggle is not None and tag.name in FOREIGN and not tag.self_closing:
            self.foreign_depth += 1
            if self.foreign_depth == 1:
                self._set(None)
        if self.foreign_depth or self.all_foreign:
            return ContentModel.DATA
        if tag.name in RAW:
            return RAW[tag.name]
        return ContentModel.RAWTEXT if tag.name in RAWTEXT else ContentModel.DATA

    def end_tag(self, tag: EndTag) -> None:
        self.out.append(tag.raw)
        self.tokens.append(("end", tag.raw))
        if tag.name in FOREIGN and self.foreign_depth:
            self.foreign_depth -= 1
            if not self.foreign_depth:
                self._set(self.toggle)

    def in_foreign_content(self) -> bool:
        return self.foreign_depth > 0 or self.all_foreign

    def _set(self, names: frozenset[str] | None) -> None:
        if self.toggle is not None and self.tokenizer is not None:
            self.tokenizer.set_wanted(names)


def run_wanted(
    chunks: list[bytes],
    wanted: frozenset[str] | None,
    *,
    toggle: bool = False,
    foreign: bool = False,
    only_with: dict[str, frozenset[str]] | None = None,
    whole_foreign: bool = False,
) -> FullRecorder:
    recorder = FullRecorder(wanted if toggle else None, foreign=foreign)
    tokenizer = Tokenizer(recorder, max_token_bytes=1 << 26)
    recorder.tokenizer = tokenizer
    if wanted is not None:
        tokenizer.set_wanted(
            wanted, foreign=foreign, only_with=only_with, whole_foreign=whole_foreign
        )
    for chunk in chunks:
        tokenizer.feed(chunk)
    tokenizer.close()
    return recorder


def _tag_name(raw: bytes) -> str:
    match = re.match(rb"</?([^\t\n\f\r />]+)", raw)
    assert match is not None, raw
    return match.group(1).lower().decode("latin-1")


def expected_subsequence(
    reference: FullRecorder,
    wanted: frozenset[str],
    *,
    toggle: bool = False,
    only_with: dict[str, frozenset[str]] | None = None,
    foreign: bool = False,
) -> list[tuple[str, bytes]]:
    """The tokens the full tokenizer reports that wanted mode must report: tags with a wanted
    name, ``plaintext`` start tags, the raw text of elements so reported, and (``toggle``)
    every token inside svg/math. With ``only_with``, those start tags count only with one of
    the attributes; a raw-text or script element whose start does not count loses its end
    tag too (in the full tokenizer's stream it is the next tag)."""
    kept: list[tuple[str, bytes]] = []
    keep_raw = False
    skip_end = False
    depth = 0
    filters = only_with or {}
    for kind, raw in reference.tokens:
        if kind == "raw":
            if keep_raw:
                kept.append((kind, raw))
            continue
        name = _tag_name(raw)
        keep = name in wanted or (kind == "start" and name == "plaintext") or depth > 0
        if kind == "end" and skip_end:
            keep = skip_end = False
        if kind == "start" and keep and name in filters and name != "plaintext" and not depth:
            attrs = StartTag(raw, name, False).raw_attrs
            if not any(a.encode() in attrs for a in filters[name]):
                keep = False
                skip_end = not foreign and (name in RAW or name in RAWTEXT)
        if toggle and name in FOREIGN:
            if kind == "end" and depth:
                depth -= 1
            elif kind == "start" and not raw.rstrip(b">").rstrip().endswith(b"/"):
                depth += 1
        if kind == "start":
            keep_raw = keep
        if keep:
            kept.append((kind, raw))
    return kept


def random_pieces(data: bytes, rng: random.Random, max_size: int) -> list[bytes]:
    chunks = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, max_size)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def assert_wanted_matches_full(
    data: bytes, chunkings: list[list[bytes]], *, toggle: bool = False
) -> None:
    plain = run_wanted([data], None)
    assert b"".join(plain.out) == data
    for wanted in WANTED_SETS:
        names = wanted | FOREIGN if toggle else wanted
        reference = _toggled_reference(data, names) if toggle else plain
        expected = expected_subsequence(reference, names, toggle=toggle)
        for chunks in chunkings:
            got = run_wanted(chunks, names, toggle=toggle)
            assert b"".join(got.out) == data, (sorted(names), len(chunks), data[:200])
            assert got.tokens == expected, (sorted(names), len(chunks), data[:200])


def assert_filtered_and_foreign_match_full(data: bytes, chunkings: list[list[bytes]]) -> None:
    """Attribute filters in HTML content, and wanted names in foreign content, against the
    full tokenizer (in foreign content: no raw text, CDATA sections)."""
    plain = run_wanted([data], None)
    for wanted, only_with in FILTERED_SETS:
        expected = expected_subsequence(plain, wanted, only_with=only_with)
        for chunks in chunkings:
            got = run_wanted(chunks, wanted, only_with=only_with)
            assert b"".join(got.out) == data, (sorted(wanted), len(chunks), data[:200])
            assert got.tokens == expected, (sorted(wanted), only_with, len(chunks), data[:200])
    foreign = run_wanted([data], None, foreign=True)
    assert b"".join(foreign.out) == data
    cases = [(wanted, None) for wanted in WANTED_SETS] + list(FILTERED_SETS)
    for wanted, filters in cases:
        expected = expected_subsequence(foreign, wanted, only_with=filters, foreign=True)
        for chunks in chunkings:
            got = run_wanted(chunks, wanted, foreign=True, only_with=filters)
            assert b"".join(got.out) == data, (sorted(wanted), len(chunks), data[:200])
            assert got.tokens == expected, ("foreign", sorted(wanted), len(chunks), data[:200])


def _toggled_reference(data: bytes, names: frozenset[str]) -> FullRecorder:
    """Every token, with content models decided as the toggling handler decides them."""
    recorder = FullRecorder(names)
    tokenizer = Tokenizer(recorder, max_token_bytes=1 << 26)  # never told any names
    tokenizer.feed(data)
    tokenizer.close()
    return recorder


def test_wanted_reports_only_wanted_tags_and_passes_the_rest() -> None:
    data = (
        b"<!DOCTYPE html><html><head><title>a <b> t</title><style>p{}</style></head>"
        b"<body class=x><div id=a><p>one <b>two</b></p><!-- <p> --></div>"
        b"<script>if (a<b) x('</p>')</script><p>three</body></html>"
    )
    wanted = frozenset({"p", "body"})
    got = run_wanted([data], wanted)
    assert b"".join(got.out) == data
    assert [raw for _, raw in got.tokens] == [
        b"<body class=x>",
        b"<p>",
        b"</p>",
        b"<p>",
        b"</body>",
    ]
    assert got.tokens == expected_subsequence(run_wanted([data], None), wanted)


def test_wanted_quoted_markup_in_attribute_is_part_of_the_tag() -> None:
    data = b"<div title=\"<script>\" data-x='</p>'>x</div><p>y</p><script>z</script>"
    assert_wanted_matches_full(data, [[data], list(bytewise(data))])
    got = run_wanted([data], frozenset({"script"}))
    assert got.tokens == [("start", b"<script>"), ("raw", b"z"), ("end", b"</script>")]


@pytest.mark.parametrize(
    "script",
    [
        b"<script><!-- <script> </script> --></script>",
        b"<script><!-- x </script>",
        b"<script><!--> </script>",
        b"<script><!---> </script>",
        b"<script><!-- <script> </script> <!-- </script> </script>",
        b"<script><!-- <SCRIPT/> </Script\t> --!> --> </script >",
        b"<script>a<b </scripty> </script/>",
        b"<script><!-- --> <script> </script> <p>x</p> </script>",
        b"<script><!-- <script> --> <p></script>",
        b"<script><!-- <script> </script> <p> --> </script>",
    ],
)
def test_wanted_unwanted_script_keeps_its_escape_states(script: bytes) -> None:
    data = script + b"<p>after</p>"
    assert_wanted_matches_full(
        data, [[data], list(bytewise(data)), random_pieces(data, random.Random(3), 5)]
    )
    reported = run_wanted([data], frozenset({"p"})).tokens
    assert reported == expected_subsequence(run_wanted([data], None), frozenset({"p"}))
    assert reported[0] == ("start", b"<p>")


def test_wanted_plaintext_is_always_reported() -> None:
    data = b"<div><plaintext></div><p>"
    got = run_wanted([data], frozenset({"p"}))
    assert got.tokens == [("start", b"<plaintext>"), ("raw", b"</div><p>")]
    assert b"".join(got.out) == data


class _SwitchOnP(FullRecorder):
    """Asks for every token after the first <p> (from inside the callback)."""

    def start_tag(self, tag: StartTag) -> ContentModel:
        model = super().start_tag(tag)
        if tag.name == "p" and self.tokenizer is not None:
            self.tokenizer.set_wanted(None)
        return model


def test_wanted_set_inside_a_callback_takes_effect_at_the_next_token() -> None:
    data = b"<div>a</div><p>b<div>c</div><i>d</i>"
    full = run_wanted([data], None).tokens
    for chunks in ([data], list(bytewise(data))):
        recorder = _SwitchOnP()
        tokenizer = Tokenizer(recorder)
        recorder.tokenizer = tokenizer
        tokenizer.set_wanted(frozenset({"p"}))
        for chunk in chunks:
            tokenizer.feed(chunk)
        tokenizer.close()
        assert b"".join(recorder.out) == data
        assert recorder.tokens == full[full.index(("start", b"<p>")) :]
        assert tokenizer.wanted is None


def test_wanted_incomplete_unwanted_elements_stream_with_a_small_hold() -> None:
    for opening in (b"<style>", b"<script>", b"<!--", b"<textarea>", b"<!DOCTYPE "):
        recorder = FullRecorder()
        tokenizer = Tokenizer(recorder)
        tokenizer.set_wanted(frozenset({"p"}))
        tokenizer.feed(opening)
        for _ in range(100):
            tokenizer.feed(b"x y < z " * 128)
            assert tokenizer.held_bytes <= 16, opening
        tokenizer.close()
        assert b"".join(recorder.out) == opening + b"x y < z " * 128 * 100
        assert recorder.tokens == []


def test_wanted_only_with_reports_start_tags_that_have_the_attribute() -> None:
    # The consent job wants scripts with data-consent only: the others pass whole, end tag
    # included, in one piece or in any chunking.
    data = (
        b"<script>a('</p>')</script><script type=text/plain DATA-CONSENT=analytics>b</script>"
        b"<script data-consentx=1>c</script><iframe data-consent=m data-src=/x></iframe><p>"
    )
    filters = {"script": frozenset({"data-consent"}), "iframe": frozenset({"data-consent"})}
    wanted = frozenset({"script", "iframe", "p"})
    for chunks in ([data], list(bytewise(data))):
        got = run_wanted(chunks, wanted, only_with=filters)
        assert b"".join(got.out) == data
        assert got.tokens == [
            ("start", b"<script type=text/plain DATA-CONSENT=analytics>"),
            ("raw", b"b"),
            ("end", b"</script>"),
            ("start", b"<iframe data-consent=m data-src=/x>"),
            ("end", b"</iframe>"),
            ("start", b"<p>"),
        ]


def test_wanted_foreign_content_has_cdata_and_no_raw_text() -> None:
    # In svg, <style> is an ordinary element and <![CDATA[ hides what it holds.
    data = b"<style><p></style><![CDATA[<p>]]><script><p></script><p>"
    for chunks in ([data], list(bytewise(data))):
        got = run_wanted(chunks, frozenset({"p"}), foreign=True)
        assert b"".join(got.out) == data
        assert got.tokens == [("start", b"<p>")] * 3
        html = run_wanted(chunks, frozenset({"p"}))
        assert html.tokens == [("start", b"<p>")]


def test_wanted_pattern_is_compiled_once_per_name_set() -> None:
    first = Tokenizer(FullRecorder())
    second = Tokenizer(FullRecorder())
    first.set_wanted(frozenset({"p", "div"}))
    second.set_wanted(frozenset(["div", "p"]))
    assert first._pass_re is not None and first._pass_re is second._pass_re
    second.set_wanted(frozenset({"p"}))
    assert second._pass_re is not first._pass_re


def test_wanted_names_that_no_tag_can_have_are_ignored() -> None:
    # Tag names are lower-cased ASCII over latin-1; "DIV" or "\u20ac" can never match.
    data = "<div>a</div><p>\u20ac</p>".encode()
    got = run_wanted([data], frozenset({"DIV", "\u20ac", "p"}))
    assert got.tokens == [("start", b"<p>"), ("end", b"</p>")]
    assert b"".join(got.out) == data


def test_wanted_fuzzed_fragments_match_the_full_tokenizer() -> None:
    rng = random.Random(7)
    for _ in range(400):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
        chunkings = [[data], list(bytewise(data)), random_pieces(data, rng, 7)]
        assert_wanted_matches_full(data, chunkings)
        assert_wanted_matches_full(data, chunkings[:2], toggle=True)
        assert_filtered_and_foreign_match_full(data, chunkings)


SCRIPT_PIECES = (
    b"<script>", b"</script>", b"<!--", b"-->", b"-", b"<!", b"<p>", b"x", b">", b"<SCRIPT\t",
    b"</script/",
)  # fmt: skip


def test_wanted_fuzzed_scripts_match_the_full_tokenizer() -> None:
    # Scripts dense in escape events, with wanted tags among them, so that escapes, double
    # escapes and their ends meet and a wrong end shows as a lost or extra <p>.
    rng = random.Random(8)
    for index in range(3000):
        pieces = [rng.choice(SCRIPT_PIECES) for _ in range(rng.randint(1, 14))]
        data = b"<script>" + b"".join(pieces)
        chunkings = [[data], list(bytewise(data))] if index % 10 == 0 else [[data]]
        assert_wanted_matches_full(data, chunkings)
        assert_filtered_and_foreign_match_full(data, chunkings)


def dat_inputs() -> list[bytes]:
    """The ``#data`` sections of html5lib's tree-construction ``.dat`` files."""
    inputs: list[bytes] = []
    for path in sorted(corpus_dir("html5lib-tree-construction").glob("*.dat")):
        current: list[bytes] | None = None
        for line in path.read_bytes().split(b"\n"):
            if line == b"#data":
                current = []
            elif current is not None:
                if line.startswith(b"#"):
                    inputs.append(b"\n".join(current))
                    current = None
                else:
                    current.append(line)
    assert len(inputs) > 1000
    return inputs


@pytest.mark.corpora
def test_wanted_html5lib_inputs_match_the_full_tokenizer_in_any_chunking() -> None:
    rng = random.Random(11)
    for data in dat_inputs():
        chunkings = [[data], list(bytewise(data)), random_pieces(data, rng, 9)]
        assert_wanted_matches_full(data, chunkings)
        assert_filtered_and_foreign_match_full(data, chunkings[::2])


@pytest.mark.corpora
def test_wanted_html5lib_inputs_with_foreign_content_toggle() -> None:
    rng = random.Random(12)
    for data in dat_inputs():
        assert_wanted_matches_full(data, [[data], random_pieces(data, rng, 5)], toggle=True)


@pytest.mark.corpora
@pytest.mark.slow
def test_wanted_news_pages_match_the_full_tokenizer_in_any_chunking() -> None:
    rng = random.Random(13)
    pages = sorted(corpus_dir("news-pages").glob("*.html"))
    assert len(pages) >= 60
    for page in pages:
        data = page.read_bytes()
        chunkings = [[data], random_pieces(data, rng, 64), random_pieces(data, rng, 4096)]
        assert_wanted_matches_full(data, chunkings)
        assert_filtered_and_foreign_match_full(data, chunkings[::2])


@pytest.mark.parametrize("wanted", [None, frozenset({"p"})], ids=("all", "wanted"))
def test_tag_over_cap_fails_in_one_piece_and_in_chunks_alike(
    wanted: frozenset[str] | None,
) -> None:
    # An unwanted tag too: the scan never passes a tag longer than the cap.
    small = b"<div title='" + b"x" * 50 + b"'>"
    data = b"<p>a</p>" + small * 3 + b"<i title='" + b"y" * 300 + b"'>b</i><p>"
    for chunks in ([data], [data[i : i + 7] for i in range(0, len(data), 7)]):
        tokenizer = Tokenizer(FullRecorder(), max_token_bytes=100)
        tokenizer.set_wanted(wanted)
        with pytest.raises(RewriteError) as info:
            for chunk in chunks:
                tokenizer.feed(chunk)
            tokenizer.close()
        assert info.value.reason is RewriteErrorReason.TOKEN_TOO_LARGE
    # Under the cap, long runs of small tags and text still pass whole.
    fine = (small * 20 + b"text " * 40) * 5 + b"<p>"
    got = run_wanted_capped([fine], frozenset({"p"}), 100)
    assert b"".join(got.out) == fine
    assert got.tokens == [("start", b"<p>")]


def run_wanted_capped(chunks: list[bytes], wanted: frozenset[str], cap: int) -> FullRecorder:
    recorder = FullRecorder()
    tokenizer = Tokenizer(recorder, max_token_bytes=cap)
    tokenizer.set_wanted(wanted)
    for chunk in chunks:
        tokenizer.feed(chunk)
    tokenizer.close()
    return recorder


# -- whole svg/math elements on the wanted path ------------------------------------------------

ICON_WANTED = frozenset({"head", "body", "script", "iframe", "svg", "math"})
ICON_FILTER = {"script": frozenset({"data-consent"}), "iframe": frozenset({"data-consent"})}


@pytest.mark.parametrize(
    "element",
    [
        b'<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M0 0h24v24"/></svg>',
        b"<SVG><G><Path d=x></Path><use href='#a'/></G><!-- c --><![CDATA[<p>]]></Svg >",
        b"<svg><title>Search</title><desc>a magnifier</desc><circle r=1 /></svg>",
        b"<svg><a><text><tspan>x</tspan></text></svg>",
        b"<svg class=i><style>.a{fill:red}</style><g></g></svg>",
        b"<math><mrow><mi>x</mi><mo>=</mo><mn>2</mn></mrow>"
        b'<annotation encoding="application/x-tex">x=2</annotation></math>',
        # MathJax keeps the character in a comment inside an integration point.
        b"<math><mo stretchy=false>\xe2\x9f\xba<!-- \xe2\x9f\xba --></mo>"
        b"<mi><!----><!-->x</mi></math>",
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "1"])
def test_wanted_whole_foreign_element_passes_unreported(element: bytes, chunked: bool) -> None:
    data = b"<p>a" + element + b"b</p><script data-consent=x>y</script>"
    chunks = list(bytewise(data)) if chunked else [data]
    got = run_wanted(chunks, ICON_WANTED, only_with=ICON_FILTER, whole_foreign=True)
    assert b"".join(got.out) == data
    if chunked:
        # Byte by byte no element is ever complete in the buffer: reported as without.
        assert got.tokens[0][1].lower().startswith((b"<svg", b"<math"))
    else:
        assert got.tokens == [
            ("start", b"<script data-consent=x>"),
            ("raw", b"y"),
            ("end", b"</script>"),
        ]


@pytest.mark.parametrize(
    "inside",
    [
        b"<p>breaks out</p>",  # an HTML start tag that leaves foreign content
        b"<font color=red>x</font>",
        b"<font>x</font>",  # font only with color/face/size breaks out: not worth knowing
        b"</div>",  # could close an open HTML element
        b"</span>",
        b"<foreignObject><div>html</div></foreignObject>",
        b"<title><b>bold</b></title>",  # an integration point holding markup
        b"<desc>a<i>b</i></desc>",
        b"<svg></svg>",  # nested
        b"<math></math>",
        b"<script data-consent=x>y</script>",  # a wanted name
        b"<iframe></iframe>",
        b"<plaintext>",
        b"</a>",  # an HTML name: could run the adoption agency
    ],
)
def test_wanted_whole_foreign_reports_an_svg_that_may_leave(inside: bytes) -> None:
    data = b"<svg><g>" + inside + b"</g></svg><p>after</p>"
    got = run_wanted([data], ICON_WANTED, only_with=ICON_FILTER, whole_foreign=True)
    assert b"".join(got.out) == data
    assert got.tokens and got.tokens[0] == ("start", b"<svg>")


@pytest.mark.parametrize(
    "inside",
    [
        b"<mi><b>x</b></mi>",
        b"<annotation-xml encoding=text/html><div>x</div></annotation-xml>",
        b"<mtext><p>x</p></mtext>",
        b"<mo><!-- </mo> --><b>x</b></mo>",  # the end tag in the comment ends nothing
        b"<mi><!-- x --><i>y</i></mi>",
        b"</p>",
        b"<mglyph>",  # fine on its own, but inside no text integration point here: passes
    ],
)
def test_wanted_whole_foreign_math_with_html_inside_is_reported(inside: bytes) -> None:
    data = b"<math><mrow>" + inside + b"</mrow></math>"
    got = run_wanted([data], ICON_WANTED, only_with=ICON_FILTER, whole_foreign=True)
    assert b"".join(got.out) == data
    reported = bool(got.tokens) and got.tokens[0] == ("start", b"<math>")
    assert reported is (inside != b"<mglyph>")


def test_wanted_whole_foreign_self_closing_svg_is_reported() -> None:
    # <svg/> is an empty element; what follows is HTML again, so a whole-element match that
    # ran on to a later </svg> would misplace it.
    data = b"<svg/><p>x</p><svg><path/></svg>"
    got = run_wanted([data], ICON_WANTED, whole_foreign=True)
    assert b"".join(got.out) == data
    assert got.tokens == [("start", b"<svg/>")]
