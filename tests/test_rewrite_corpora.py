"""The rewriter against real markup: html5lib's tree-construction inputs and real news pages."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from consentgate.rewrite import InsertHTML, RewriteError, RewriteErrorReason, Truncate
from consentgate.rewrite._html import VOID_ELEMENTS as VOID
from rewrite_helpers import bytewise, corpus_dir, random_chunks, run, whole

pytestmark = pytest.mark.corpora

BANNER = "<div id=cg-banner>Cookies?</div>"
CTA = '<aside class="cg-cta">Register to read on</aside>'


def dat_sections(path: Path) -> list[bytes]:
    """The ``#data`` sections of an html5lib ``.dat`` file (up to the next ``#`` header line)."""
    sections: list[bytes] = []
    current: list[bytes] | None = None
    for line in path.read_bytes().split(b"\n"):
        if line == b"#data":
            current = []
        elif current is not None:
            if line.startswith(b"#"):
                sections.append(b"\n".join(current))
                current = None
            else:
                current.append(line)
    return sections


def html5lib_inputs() -> list[bytes]:
    folder = corpus_dir("html5lib-tree-construction")
    inputs = [data for path in sorted(folder.glob("*.dat")) for data in dat_sections(path)]
    assert len(inputs) > 1000
    return inputs


def test_html5lib_identity_when_nothing_matches_whole_and_bytewise() -> None:
    for data in html5lib_inputs():
        for chunks in (whole(data), bytewise(data)):
            out, _ = run([InsertHTML("never-there", "X")], chunks)
            assert out == data


def test_html5lib_body_end_insertion_adds_only_the_snippet() -> None:
    for data in html5lib_inputs():
        for chunks in (whole(data), bytewise(data)):
            out, rewriter = run([InsertHTML.before_body_close(BANNER)], chunks)
            assert rewriter.report.insertions == 1
            assert out.count(BANNER.encode()) == data.count(BANNER.encode()) + 1
            assert out.replace(BANNER.encode(), b"", 1) == data


def news_pages() -> list[Path]:
    pages = sorted(corpus_dir("news-pages").glob("*.html"))
    assert len(pages) >= 60
    return pages


def test_news_pages_banner_before_body_end() -> None:
    for page in news_pages():
        data = page.read_bytes()
        out, _ = run([InsertHTML.before_body_close(BANNER)], whole(data))
        banner = BANNER.encode()
        assert out.count(banner) == 1, page.name
        assert out.replace(banner, b"", 1) == data, page.name
        at = out.index(banner)
        if re.search(rb"</body", data, re.IGNORECASE):
            assert out[at + len(banner) :][:6].lower() == b"</body", page.name
        else:
            assert at == len(data), page.name


def test_news_pages_banner_random_chunking_matches_whole() -> None:
    for page in news_pages()[::8]:
        data = page.read_bytes()
        expected, _ = run([InsertHTML.before_body_close(BANNER)], whole(data))
        chunked, _ = run([InsertHTML.before_body_close(BANNER)], random_chunks(data, 7, 4096))
        assert chunked == expected, page.name


def manifest() -> list[tuple[str, dict[str, object]]]:
    folder = corpus_dir("news-pages")
    entries = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return sorted(entries.items())


class _ElementEnd(HTMLParser):
    """Find where the end tag of the element starting at offset 0 is, closing elements like a
    lenient browser would (an end tag closes up to its match). Also records whether every end tag
    matched the innermost open element (a balanced region)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.end_offset: int | None = None
        self.balanced = True
        self._line_starts = [0]

    def run(self, text: str) -> None:
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.feed(text)
        self.close()

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if self.end_offset is None and tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if self.end_offset is not None or tag not in self.stack:
            return
        if self.stack[-1] != tag:
            self.balanced = False
        while self.stack.pop() != tag:
            pass
        if not self.stack:
            self.end_offset = self._offset()  # where the element's end tag starts


def container_start(data: str, selector: str) -> int:
    tag, kind, value = re.fullmatch(r"(\w+)([#.])(.+)", selector).groups()  # type: ignore[union-attr]
    attr = "id" if kind == "#" else "class"
    value_re = rf"""["']?(?:[^"'>]*\s)?{re.escape(value)}(?:\s[^"'>]*)?["'\s>]"""
    pattern = rf"<{tag}\b[^>]*\b{attr}\s*=\s*{value_re}"
    match = re.search(pattern, data, re.IGNORECASE)
    assert match, selector
    return match.start()


def collapse(text: str) -> str:
    """Text without any whitespace: the manifest joins text nodes without spaces."""
    return "".join(text.split())


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return collapse("".join(parser.parts))


@pytest.mark.parametrize(
    "name",
    [name for name, _ in manifest()]
    if (Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "news-pages").is_dir()
    else ["(corpus absent)"],
)
def test_news_pages_keep_first_two_paragraphs(name: str) -> None:
    entries = dict(manifest())
    entry = entries[name]
    data = (corpus_dir("news-pages") / name).read_bytes()
    selector = str(entry["article_selector"])
    # The cut's bytes, whatever else the page carries (see the echo guard's test below).
    out, rewriter = run([Truncate(selector, CTA, keep_items=2, echo_guard=False)], whole(data))
    assert rewriter.report.containers_found == 1
    assert rewriter.report.cuts == 1
    assert out.count(CTA.encode()) == 1
    # latin-1 keeps byte offsets equal to character offsets.
    text_in, text_out = data.decode("latin-1"), out.decode("latin-1")
    start = container_start(text_in, selector)
    assert text_out[:start] == text_in[:start], "bytes before the container changed"
    end_in, end_out = _ElementEnd(), _ElementEnd()
    end_in.run(text_in[start:])
    end_out.run(text_out[start:])
    assert end_in.end_offset is not None and end_out.end_offset is not None
    assert text_out[start + end_out.end_offset :] == text_in[start + end_in.end_offset :], (
        "bytes after the container changed"
    )
    kept = out[start : start + end_out.end_offset].decode("utf-8", "replace")
    dropped = data[start : start + end_in.end_offset].decode("utf-8", "replace")
    last = collapse(str(entry["last_paragraph_text"]))[:60]
    before, after = visible_text(dropped).count(last), visible_text(kept).count(last)
    assert before >= 1, "test precondition: the paragraph is in the container"
    # (social-buttons.html repeats one paragraph text, hence a count and not "not in")
    assert after < before, "the last paragraph survived the cut"
    cta_at = kept.index(CTA)
    closing = kept[cta_at + len(CTA) :]
    assert re.fullmatch(r"(</[a-z0-9]+>)*", closing), closing[:200]
    # The kept part, closed as we closed it, nests properly.
    checker = _ElementEnd()
    checker.run(kept + "</" + selector.split("#")[0].split(".")[0] + ">")
    assert checker.end_offset is not None


def test_news_pages_truncation_chunking_invariant() -> None:
    for name, entry in manifest()[::5]:
        data = (corpus_dir("news-pages") / name).read_bytes()
        selector = str(entry["article_selector"])
        expected, _ = run([Truncate(selector, CTA, keep_items=2)], whole(data))
        for seed in (3, 4):
            ops = [Truncate(selector, CTA, keep_items=2)]
            chunked, _ = run(ops, random_chunks(data, seed, 2048))
            assert chunked == expected, name


def test_news_pages_keep_words_removes_last_paragraph() -> None:
    for name, entry in manifest()[:10]:
        data = (corpus_dir("news-pages") / name).read_bytes()
        ops = [Truncate(str(entry["article_selector"]), CTA, keep_words=30)]
        out, rewriter = run(ops, whole(data))
        assert rewriter.report.cuts == 1, name
        text = visible_text(out.decode("utf-8", "replace"))
        last = collapse(str(entry["last_paragraph_text"]))[:60]
        before = visible_text(data.decode("utf-8", "replace")).count(last)
        assert text.count(last) < before or before == 0, name


#: A run of text the echo guard could find (see rewrite/truncation.py), looked for here in
#: the article's last paragraph as the manifest gives it.
_PIECE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,;:]{38}[A-Za-z0-9]")


@pytest.mark.corpora
def test_news_pages_echo_guard_fires_where_the_article_is_also_outside_its_container() -> None:
    # Judged apart from the guard: a page whose last paragraph stands outside its container too
    # cannot be cut safely and must fail closed; every other page is cut. One corpus page
    # carries its whole article again, in JSON-LD before the markup (on a walled page the gate's
    # JSON-LD scrub removes that first; here the cut runs alone). A guard that fired on
    # descriptions, pull quotes or boilerplate would fail the second half.
    fired, cut = [], []
    for name, entry in manifest():
        data = (corpus_dir("news-pages") / name).read_bytes()
        selector = str(entry["article_selector"])
        text = data.decode("latin-1")
        start = container_start(text, selector)
        end = _ElementEnd()
        end.run(text[start:])
        assert end.end_offset is not None
        outside = data[:start] + data[start + end.end_offset :]
        piece = _PIECE.search(" ".join(str(entry["last_paragraph_text"]).split()))
        elsewhere = piece is not None and piece.group().encode() in outside
        try:
            run([Truncate(selector, CTA, keep_items=2)], whole(data))
        except RewriteError as exc:
            assert exc.reason is RewriteErrorReason.CUT_TEXT_ECHOED, (name, exc)
            assert elsewhere, f"{name}: the guard fired on a page that carries no copy"
            fired.append(name)
        else:
            assert not elsewhere, f"{name}: its article is also outside the container"
            cut.append(name)
    assert fired and len(cut) > 20, (fired, len(cut))
