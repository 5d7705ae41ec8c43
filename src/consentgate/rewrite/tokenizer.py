"""A streaming, byte-level HTML tokenizer that never changes a byte.

It splits input into tokens the way a browser's tokenizer would (WHATWG "tokenization"), but
only as far as a rewriter needs: text, start tags, end tags, raw-text element content, and
"other" markup (comments, doctypes, processing instructions, CDATA) which is passed through.
Every input byte ends up in exactly one token, in order, so concatenating the tokens gives the
input back. Only an incomplete token at the end of the input is held back; comments and
raw-text contents are handed on in pieces so memory stays bounded.

The handler decides the content model after each start tag (a browser does not treat
``<script>`` inside ``<svg>`` as raw text, for example), so the tokenizer asks it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Protocol

from .errors import RewriteError, RewriteErrorReason

_WS = rb"\t\n\f\r "
#: Attribute value: quoted values may contain ``>``; an unterminated quote swallows the rest of
#: the buffer so that an incomplete tag never matches early (chunking must not matter).
_VALUE = rb"""(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >]*+)"""
_ATTR = (
    rb"([^\t\n\f\r />][^\t\n\f\r />=]*+)(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(" + _VALUE + rb"))?+"
)
#: A complete start or end tag. All quantifiers are possessive: no backtracking blow-up, and a
#: failed match always means "need more input" because the grammar accepts any byte sequence
#: that eventually reaches an unquoted ``>``.
_ATTR_SKIP = (
    rb"[^\t\n\f\r />][^\t\n\f\r />=]*+(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb")?+"
)
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
_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_EVENT = re.compile(rb"<!--|-->|<(/?)script[\t\n\f\r />]", re.IGNORECASE)
_CDATA_OPEN = b"<![CDATA["
_DEFAULT_MAX_TOKEN = 1 << 20


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
            for name, value in iter_attributes(self.raw, self.name_end, self.attrs_end):
                attrs.setdefault(name, value)
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


class _Mode(enum.Enum):
    DATA = 0
    RAWTEXT = 1
    SCRIPT = 2
    PLAINTEXT = 3
    COMMENT = 4  # until --> or --!>
    BOGUS = 5  # until >
    CDATA = 6  # until ]]>


_raw_end_patterns: dict[str, re.Pattern[bytes]] = {}


def _raw_end_pattern(name: str) -> re.Pattern[bytes]:
    pattern = _raw_end_patterns.get(name)
    if pattern is None:
        pattern = re.compile(b"</" + re.escape(name.encode()) + rb"[\t\n\f\r />]", re.IGNORECASE)
        _raw_end_patterns[name] = pattern
    return pattern


class Tokenizer:
    """Feed bytes, get handler calls. ``close()`` hands over whatever is still held."""

    def __init__(
        self,
        handler: TokenHandler,
        *,
        max_token_bytes: int = _DEFAULT_MAX_TOKEN,
        start_tag_type: type[StartTag] = StartTag,
    ) -> None:
        self._handler = handler
        self._start_tag_type = start_tag_type
        self._max_token = max_token_bytes
        self._buf = b""
        self._mode = _Mode.DATA
        self._raw_name = ""
        self._script_state = 0  # 0 normal, 1 escaped (<!--), 2 double escaped (<!--<script>)
        self._retry_from = 0  # an incomplete tag is only re-matched once a new ">" arrived

    @property
    def held_bytes(self) -> int:
        """Bytes received but not yet handed to the handler (an incomplete token)."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._buf:
            self._buf += data
        else:
            self._buf = bytes(data)
            self._retry_from = 0
        pos = self._run(0, final=False)
        self._buf = self._buf[pos:]
        self._retry_from = max(0, self._retry_from - pos)

    def close(self) -> None:
        pos = self._run(0, final=True)
        rest = self._buf[pos:]
        self._buf = b""
        if rest:
            # Incomplete markup at end of input: browsers drop it or show it as text; we keep
            # the bytes as they are.
            if self._mode in (_Mode.RAWTEXT, _Mode.SCRIPT, _Mode.PLAINTEXT):
                self._handler.raw_text(rest)
            else:
                self._handler.other(rest)

    # -- the state machine -------------------------------------------------------------------

    def _run(self, pos: int, *, final: bool) -> int:
        """Consume tokens from ``pos``; return where the held (incomplete) part begins."""
        while pos < len(self._buf):
            mode = self._mode
            if mode is _Mode.DATA:
                new_pos = self._data_run(pos, final)
            elif mode is _Mode.SCRIPT:
                new_pos = self._script(pos, final)
            elif mode is _Mode.RAWTEXT:
                new_pos = self._rawtext(pos, final)
            elif mode is _Mode.COMMENT:
                new_pos = self._until(pos, _COMMENT_END, 3, final)
            elif mode is _Mode.BOGUS:
                new_pos = self._until_bytes(pos, b">", final)
            elif mode is _Mode.CDATA:
                new_pos = self._until_bytes(pos, b"]]>", final)
            else:
                self._handler.raw_text(self._buf[pos:])
                new_pos = len(self._buf)
            if new_pos == pos and self._mode is mode:
                break  # the rest is an incomplete token (a mode switch alone is progress)
            pos = new_pos
        return pos

    def _data_run(self, pos: int, final: bool) -> int:
        """Data state: hand on text and complete tags in one loop (the hot path).

        Anything unusual (markup declarations, a ``<`` that starts no tag, an incomplete tag,
        a tag that changes the content model) goes through :meth:`_data` / :meth:`_tag`, so the
        handler sees exactly the same calls. Returns when the buffer is used up, the mode
        changed or an incomplete token is held (then without progress from that token).
        """
        if self._retry_from:
            # An incomplete tag is held from the last call: the careful path decides.
            return self._data(pos, final)
        buf = self._buf
        size = len(buf)
        handler = self._handler
        text = handler.text
        start_tag = handler.start_tag
        end_tag = handler.end_tag
        make_start = self._start_tag_type
        find = buf.find
        tag_match = _TAG.match
        names = _NAME_CACHE
        data_model = ContentModel.DATA
        while pos < size:
            lt = find(b"<", pos)
            if lt == -1:
                text(buf[pos:])
                return size
            if lt > pos:
                text(buf[pos:lt])
                pos = lt
            match = tag_match(buf, lt)
            if match is None:
                # Not a tag, or an incomplete one: the careful path decides, as before (it
                # returns without progress when the token is incomplete).
                new_pos = self._data(lt, final)
                if new_pos == lt or self._mode is not _Mode.DATA:
                    return new_pos
                pos = new_pos
                continue
            pos = match.end()
            name_bytes = match.group(1)
            name = names.get(name_bytes)
            if name is None:
                name = name_bytes.lower().decode("latin-1")
                if len(names) < _NAME_CACHE_SIZE:
                    names[name_bytes] = name
            if buf[lt + 1] == 0x2F:  # "</"
                end_tag(EndTag(buf[lt:pos], name))
                continue
            # Self-closing when the tail (spaces and slashes before ">") ends with "/"; a "/"
            # right before ">" can also end an unquoted attribute value (<a href=/>).
            model = start_tag(
                make_start(
                    buf[lt:pos],
                    name,
                    buf[pos - 2] == 0x2F and match.start(2) < pos - 1,
                )
            )
            if model is not data_model:
                self._enter_model(model, name)
                return pos
        return pos

    def _enter_model(self, model: ContentModel, name: str) -> None:
        if model is ContentModel.SCRIPT:
            self._mode = _Mode.SCRIPT
            self._script_state = 0
        elif model is ContentModel.RAWTEXT:
            self._mode = _Mode.RAWTEXT
            self._raw_name = name
        elif model is ContentModel.PLAINTEXT:
            self._mode = _Mode.PLAINTEXT

    def _data(self, pos: int, final: bool) -> int:
        buf = self._buf
        lt = buf.find(b"<", pos)
        if lt == -1:
            self._handler.text(buf[pos:])
            return len(buf)
        if lt > pos:
            self._handler.text(buf[pos:lt])
            return lt
        # buf[pos] == "<"
        nxt = buf[pos + 1 : pos + 2]
        if not nxt:
            return self._incomplete(pos, final, as_text=True)
        if nxt.isalpha():
            return self._tag(pos, final, end=False)
        if nxt == b"/":
            return self._slash(pos, final)
        if nxt == b"!":
            return self._bang(pos, final)
        if nxt == b"?":
            self._mode = _Mode.BOGUS
            return self._until_bytes(pos, b">", final, skip=2)
        self._handler.text(b"<")
        return pos + 1

    def _incomplete(self, pos: int, final: bool, *, as_text: bool = False) -> int:
        """Hold an undecided token; at end of input hand it over unchanged."""
        if final:
            rest = self._buf[pos:]
            if as_text:
                self._handler.text(rest)
            else:
                self._handler.other(rest)
            return len(self._buf)
        if len(self._buf) - pos > self._max_token:
            raise RewriteError(
                RewriteErrorReason.TOKEN_TOO_LARGE,
                f"a tag or markup declaration exceeds {self._max_token} bytes",
            )
        return pos

    def _tag(self, pos: int, final: bool, *, end: bool) -> int:
        buf = self._buf
        if not final and buf.find(b">", max(pos, self._retry_from)) == -1:
            self._retry_from = len(buf)
            return self._incomplete(pos, final)
        match = _TAG.match(buf, pos)
        if match is None:
            self._retry_from = len(buf)
            return self._incomplete(pos, final)
        self._retry_from = 0
        raw = buf[pos : match.end()]
        name = match.group(1).lower().decode("latin-1")
        if end:
            self._handler.end_tag(EndTag(raw, name))
            return match.end()
        tail = match.group("tail")
        tag = self._start_tag_type(raw, name, tail.endswith(b"/"))
        self._enter_model(self._handler.start_tag(tag), name)
        return match.end()

    def _slash(self, pos: int, final: bool) -> int:
        third = self._buf[pos + 2 : pos + 3]
        if not third:
            return self._incomplete(pos, final, as_text=True)
        if third.isalpha():
            return self._tag(pos, final, end=True)
        if third == b">":
            self._handler.other(b"</>")  # ignored by browsers
            return pos + 3
        self._mode = _Mode.BOGUS
        return self._until_bytes(pos, b">", final, skip=2)

    def _bang(self, pos: int, final: bool) -> int:
        buf = self._buf
        head = buf[pos : pos + 9]
        if head.startswith(b"<!--"):
            if len(buf) - pos < 6 and not final:
                return self._incomplete(pos, final)
            after = buf[pos + 4 : pos + 6]
            if after[:1] == b">":  # <!--> is an empty comment
                self._handler.other(buf[pos : pos + 5])
                return pos + 5
            if after == b"->":  # <!---> too
                self._handler.other(buf[pos : pos + 6])
                return pos + 6
            self._mode = _Mode.COMMENT
            return self._until(pos, _COMMENT_END, 3, final, skip=4)
        if len(head) < 9 and not final and (
            b"<!--".startswith(head) or _CDATA_OPEN.startswith(head)
        ):
            return self._incomplete(pos, final)
        if head == _CDATA_OPEN and self._handler.in_foreign_content():
            self._mode = _Mode.CDATA
            return self._until_bytes(pos, b"]]>", final, skip=9)
        # Doctype, <![CDATA[ in HTML content and anything else: up to the next ">".
        self._mode = _Mode.BOGUS
        return self._until_bytes(pos, b">", final, skip=2)

    def _until_bytes(self, pos: int, end: bytes, final: bool, skip: int = 0) -> int:
        buf = self._buf
        found = buf.find(end, pos + skip)
        if found != -1:
            stop = found + len(end)
            self._handler.other(buf[pos:stop])
            self._mode = _Mode.DATA
            return stop
        return self._stream_other(pos, len(end) - 1, final, skip)

    def _until(
        self, pos: int, end: re.Pattern[bytes], hold: int, final: bool, skip: int = 0
    ) -> int:
        buf = self._buf
        match = end.search(buf, pos + skip)
        if match is not None:
            self._handler.other(buf[pos : match.end()])
            self._mode = _Mode.DATA
            return match.end()
        return self._stream_other(pos, hold, final, skip)

    def _stream_other(self, pos: int, hold: int, final: bool, skip: int) -> int:
        """Hand on comment-like content, keeping back bytes that may start its terminator.

        The opening (``skip`` bytes, e.g. ``<!--``) is never split off on its own, so the
        terminator search cannot overlap it in a later call.
        """
        buf = self._buf
        stop = len(buf) if final else max(pos + skip, len(buf) - hold)
        if stop > pos:
            self._handler.other(buf[pos:stop])
        return stop

    def _rawtext(self, pos: int, final: bool) -> int:
        buf = self._buf
        match = _raw_end_pattern(self._raw_name).search(buf, pos)
        if match is not None:
            if match.start() > pos:
                self._handler.raw_text(buf[pos : match.start()])
            self._mode = _Mode.DATA
            return match.start()
        hold = 0 if final else len(self._raw_name) + 2
        stop = max(pos, len(buf) - hold)
        if stop > pos:
            self._handler.raw_text(buf[pos:stop])
        return stop

    def _script(self, pos: int, final: bool) -> int:
        """Script data with its escape states, so ``</script>`` inside ``<!--<script>`` is text."""
        buf = self._buf
        search_from = pos
        while True:
            match = _SCRIPT_EVENT.search(buf, search_from)
            if match is None:
                stop = len(buf) if final else max(pos, search_from, len(buf) - 8)
                if stop > pos:
                    self._handler.raw_text(buf[pos:stop])
                return stop
            token = match.group(0)
            state = self._script_state
            if token == b"<!--":
                if state == 0:
                    self._script_state = 1
                # Continue right after "<!" so that "<!-->" closes the escape again.
                search_from = match.start() + 2
            elif token == b"-->":
                self._script_state = 0
                search_from = match.end()
            elif match.group(1):  # </script
                if state == 2:
                    self._script_state = 1
                    search_from = match.end() - 1
                else:
                    if match.start() > pos:
                        self._handler.raw_text(buf[pos : match.start()])
                    self._mode = _Mode.DATA
                    return match.start()
            else:  # <script
                if state == 1:
                    self._script_state = 2
                search_from = match.end() - 1
