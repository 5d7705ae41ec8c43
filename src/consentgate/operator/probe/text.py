"""Text out of markup: the text blocks of a page, every place an answer could carry
the text, and the windows of hidden text a leak is searched for."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from typing import Any

from consentgate.operator.probe.settings import STRIDE, WINDOW

_SPACE = re.compile(r"\s+")
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "body",
        "html",
        "head",
        "title",
        "option",
        "select",
        "textarea",
    }
)
_RAW_TEXT = frozenset({"script", "style"})


def normalize(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


class _Extractor(HTMLParser):
    """Text blocks (split at block elements and ``<br>``) and everything else a reader
    could read the text from: attribute values, comments, script and style text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.other: list[str] = []
        self.scripts: list[tuple[str, str]] = []  # (type attribute, text)
        self._text: list[str] = []
        self._raw: str | None = None
        self._raw_type = ""
        self._raw_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.other.extend(value for _, value in attrs if value)
        if tag in _RAW_TEXT:
            self._flush()
            self._raw = tag
            self._raw_type = next((v or "" for k, v in attrs if k == "type"), "")
            self._raw_text = []
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._raw is not None and tag == self._raw:
            self.scripts.append((self._raw_type, "".join(self._raw_text)))
            self._raw = None
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        (self._raw_text if self._raw is not None else self._text).append(data)

    def handle_comment(self, data: str) -> None:
        self.other.append(data)

    def _flush(self) -> None:
        text = normalize("".join(self._text))
        if text:
            self.blocks.append(text)
        self._text = []

    def finish(self) -> _Extractor:
        self.close()
        if self._raw is not None:  # an unclosed script: its text is still in the answer
            self.scripts.append((self._raw_type, "".join(self._raw_text)))
            self._raw = None
        self._flush()
        return self


def _extract(markup: str) -> _Extractor:
    parser = _Extractor()
    parser.feed(markup)
    return parser.finish()


def extract_blocks(markup: str) -> list[str]:
    """The page's text blocks, whitespace collapsed (scripts and styles left out)."""
    return _extract(markup).blocks


def _json_strings(value: Any, out: list[str], depth: int = 0) -> None:
    if depth > 100:  # deeper than any real document; json itself recursed this far
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.append(str(key))
            _json_strings(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_strings(item, out, depth + 1)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def searchable_text(markup: str, *, as_json: bool = False) -> str:
    """Every place an answer could carry the text, each normalized, one per line.

    The raw text (for text/plain and anything the parser misses), the HTML text blocks,
    attribute values, comments, scripts, and the strings of any JSON body or
    JSON(-LD) script, themselves read as HTML (an ``articleBody`` may hold markup).
    """
    parts = [normalize(markup)]
    page = _extract(markup)
    parts.append(" ".join(page.blocks))
    parts.extend(normalize(value) for value in page.other)
    strings: list[str] = []
    candidates = [text for _, text in page.scripts]
    if as_json or markup.lstrip()[:1] in ("{", "["):
        candidates.append(markup)
    for text in candidates:
        parts.append(normalize(text))
        parsed = _parse_json(text.strip())
        if parsed is not None:
            _json_strings(parsed, strings)
    for value in strings:
        inner = _extract(value)
        parts.append(normalize(value))
        parts.append(" ".join(inner.blocks))
        parts.extend(normalize(v) for v in inner.other)
    return "\n".join(part for part in parts if part)


def _windows(block: str) -> Iterator[str]:
    if len(block) < WINDOW:
        return
    last = len(block) - WINDOW
    yield from (block[i : i + WINDOW] for i in range(0, last + 1, STRIDE))
    if last % STRIDE:
        yield block[last:]


def secret_windows(hidden: Iterable[str], public: str) -> list[str]:
    """The windows of the hidden blocks that the public answer does not already show."""
    seen: dict[str, None] = {}
    for block in hidden:
        for window in _windows(block):
            if window not in public:
                seen.setdefault(window)
    return list(seen)
