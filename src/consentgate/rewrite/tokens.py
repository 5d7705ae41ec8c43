"""The tokens the tokenizer hands on, and the tag grammar they are read with.

A start tag keeps its exact bytes; its attributes are only parsed (with the same grammar
the tokenizer matched the tag by) when someone asks for them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Protocol

_WS = rb"\t\n\f\r "
#: Attribute value: quoted values may contain ``>``; an unterminated quote swallows the rest of
#: the buffer so that an incomplete tag never matches early (chunking must not matter).
_VALUE = rb"""(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >]*+)"""
_ATTR = rb"([^\t\n\f\r />][^\t\n\f\r />=]*+)(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(" + _VALUE + rb"))?+"
#: A complete start or end tag. All quantifiers are possessive: no backtracking blow-up, and a
#: failed match always means "need more input" because the grammar accepts any byte sequence
#: that eventually reaches an unquoted ``>``.
_ATTR_SKIP = rb"[^\t\n\f\r />][^\t\n\f\r />=]*+(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb")?+"
_TAG = re.compile(
    rb"</?([A-Za-z][^\t\n\f\r />]*+)(?:[\t\n\f\r /]*+"
    + _ATTR_SKIP
    + rb")*+(?P<tail>[\t\n\f\r /]*+)>"
)
_ATTR_AT = re.compile(rb"[\t\n\f\r /]*+" + _ATTR)
#: Lower-cased names of recently seen tag names (bounded); also makes equal names the same
#: ``str`` object, so comparisons and set lookups take their fast paths.
_NAME_CACHE: dict[bytes, str] = {}
_NAME_CACHE_SIZE = 2048


class ContentModel(enum.Enum):
    """How the tokenizer reads what follows a start tag."""

    DATA = "data"
    RAWTEXT = "rawtext"  # style, textarea, title, xmp, iframe, noembed, noframes, noscript
    SCRIPT = "script"  # raw text with the script escape states
    PLAINTEXT = "plaintext"  # everything up to end of input is text


class StartTag:
    """A complete start tag; ``raw`` is its exact bytes.

    Subclasses may add slots (the tokenizer builds its tags with the class it was given); the
    attribute positions are only worked out when the attributes are asked for.
    """

    __slots__ = ("_attrs", "name", "raw", "self_closing")

    def __init__(self, raw: bytes, name: str, self_closing: bool) -> None:
        self.raw = raw
        self.name = name
        self.self_closing = self_closing
        self._attrs: dict[bytes, bytes] | None = None

    @property
    def name_end(self) -> int:
        """Where the tag name ends in ``raw`` (``<`` plus the name: lower-casing and latin-1
        keep the length)."""
        return 1 + len(self.name)

    @property
    def attrs_end(self) -> int:
        """Where the attributes end in ``raw`` (the start of the trailing spaces/slashes)."""
        match = _TAG.match(self.raw)
        if match is None:  # a StartTag is only ever made from a complete tag
            raise RuntimeError(f"not a complete start tag: {self.raw[:40]!r}")
        return match.start("tail")

    @property
    def raw_attrs(self) -> dict[bytes, bytes]:
        """Attribute names (lower-cased) to raw value bytes; the first of duplicates wins."""
        if self._attrs is None:
            attrs: dict[bytes, bytes] = {}
            # One findall in C rather than a match per attribute (a tag with 100k attributes
            # took 0.7 s): the attributes of a complete tag follow each other without a gap,
            # so the successive matches are exactly those iter_attributes finds.
            for name, value in _ATTR_AT.findall(self.raw, self.name_end, self.attrs_end):
                if value[:1] in b"\"'" and value:
                    value = value[1:-1]
                attrs.setdefault(name.lower(), value)
            self._attrs = attrs
        return self._attrs


class EndTag:
    """A complete end tag; ``raw`` is its exact bytes."""

    __slots__ = ("name", "raw")

    def __init__(self, raw: bytes, name: str) -> None:
        self.raw = raw
        self.name = name


def iter_attributes(raw: bytes, start: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    """Yield (lower-cased name, raw value without quotes) for the attributes in raw[start:end]."""
    pos = start
    while True:
        match = _ATTR_AT.match(raw, pos, end)
        if match is None:
            return
        pos = match.end()
        value = match.group(2)
        if value is None:
            value = b""
        elif value[:1] in (b'"', b"'"):
            value = value[1:-1]
        yield match.group(1).lower(), value


class TokenHandler(Protocol):
    """Receives tokens in input order; concatenating every ``raw`` and data gives the input."""

    def text(self, data: bytes) -> None: ...

    def start_tag(self, tag: StartTag) -> ContentModel: ...

    def end_tag(self, tag: EndTag) -> None: ...

    def raw_text(self, data: bytes) -> None: ...

    def other(self, data: bytes) -> None: ...

    def in_foreign_content(self) -> bool: ...

    def passthrough(self, data: bytes) -> None:
        """Bytes no wanted name is in (only called after :meth:`Tokenizer.set_wanted` with a
        set): text, unwanted tags, comments, unwanted raw-text and script elements whole."""
        ...


def _lower_name(name_bytes: bytes) -> str:
    name = _NAME_CACHE.get(name_bytes)
    if name is None:
        name = name_bytes.lower().decode("latin-1")
        if len(_NAME_CACHE) < _NAME_CACHE_SIZE:
            _NAME_CACHE[name_bytes] = name
    return name
