"""The tokenizer's state and its careful path: a tag token handed on, markup declarations,
comments, raw text and script data with its escape states. :class:`.tokenizer.Tokenizer`
adds the data-state loops that call these only for what is unusual.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

from . import tokens as _tokens
from ._html import PLAINTEXT, SCRIPT
from .errors import RewriteError, RewriteErrorReason
from .passthrough import _RAW_NAMES, _Scan
from .tokens import ContentModel, EndTag, StartTag, TokenHandler, _lower_name

_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_EVENT = re.compile(rb"<!--|-->|<(/?)script[\t\n\f\r />]", re.IGNORECASE)
#: Outside the escapes only this ends a script; a literal-led pattern is searched fast in C.
_SCRIPT_END = re.compile(rb"</script[\t\n\f\r />]", re.IGNORECASE)
_CDATA_OPEN = b"<![CDATA["
#: Bound by assignment, not imported: CPython 3.11 compiles a method call on an imported name
#: (``_TAG.match(…)``) as an attribute load plus a call, which makes a bound method each time.
_TAG = _tokens._TAG
_DEFAULT_MAX_TOKEN = 1 << 20


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


class _TokenizerStates:
    """What a :class:`~.tokenizer.Tokenizer` holds between calls, and the states it reads
    token by token."""

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
        # An incomplete tag waiting for its ">" keeps later chunks here, joined once one brings
        # a ">": a long tag fed in small pieces is copied once, not once per piece.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._mode = _Mode.DATA
        self._raw_name = ""
        self._script_state = 0  # 0 normal, 1 escaped (<!--), 2 double escaped (<!--<script>)
        self._retry_from = 0  # an incomplete tag is only re-matched once a new ">" arrived
        self._scan: _Scan | None = None
        self._wanted: frozenset[str] | None = None
        self._pass_re: re.Pattern[bytes] | None = None
        # The end tag of a raw-text or script element whose start tag was passed through
        # (an attribute filter said no) passes too, as the pattern passes the whole element.
        self._pass_end = False
        # Where text and "other" markup go: the handler's text/other, or passthrough in
        # wanted mode. ``_sink`` receives the content of the current non-DATA mode; it is
        # chosen when the mode is entered, so a set_wanted call inside an element does not
        # move the rest of that element.
        self._text_out: Callable[[bytes], None] = handler.text
        self._other_out: Callable[[bytes], None] = handler.other
        self._sink: Callable[[bytes], None] = handler.raw_text

    @property
    def held_bytes(self) -> int:
        """Bytes received but not yet handed to the handler (an incomplete token)."""
        return len(self._buf) + self._pending_size

    def _tag_token(self, match: re.Match[bytes], pos: int) -> int:
        """Hand on the complete tag ``match`` found at ``pos``: to the handler, or in wanted
        mode to passthrough when its name is not wanted (then its content model is the HTML
        one, by name)."""
        buf = self._buf
        end = match.end()
        if end - pos > self._max_token:
            raise RewriteError(
                RewriteErrorReason.TOKEN_TOO_LARGE,
                f"a tag or markup declaration exceeds {self._max_token} bytes",
            )
        name = _lower_name(match.group(1))
        is_end = buf[pos + 1] == 0x2F
        scan = self._scan
        handler = self._handler
        if scan is None:
            if is_end:
                handler.end_tag(EndTag(buf[pos:end], name))
                return end
            tag = self._start_tag_type(buf[pos:end], name, match.group("tail").endswith(b"/"))
            self._enter_model(handler.start_tag(tag), name, handler.raw_text)
            return end
        if is_end:
            if name in scan.wanted and not self._pass_end:
                handler.end_tag(EndTag(buf[pos:end], name))
            else:
                handler.passthrough(buf[pos:end])
            self._pass_end = False
            return end
        if name in scan.wanted or name == PLAINTEXT:
            tag = self._start_tag_type(buf[pos:end], name, match.group("tail").endswith(b"/"))
            required = scan.only_with.get(name)
            if required is None or not required.isdisjoint(tag.raw_attrs):
                self._enter_model(handler.start_tag(tag), name, handler.raw_text)
                return end
        handler.passthrough(buf[pos:end])
        if not scan.foreign:
            if name == SCRIPT:
                self._enter_model(ContentModel.SCRIPT, name, handler.passthrough)
            elif name in _RAW_NAMES:
                self._enter_model(ContentModel.RAWTEXT, name, handler.passthrough)
            # A wanted name said no by its filter: its end tag must pass too (an unwanted
            # one passes anyway).
            self._pass_end = self._mode is not _Mode.DATA and name in scan.wanted
        return end

    def _enter_model(self, model: ContentModel, name: str, sink: Callable[[bytes], None]) -> None:
        if model is ContentModel.SCRIPT:
            self._mode = _Mode.SCRIPT
            self._script_state = 0
            self._sink = sink
        elif model is ContentModel.RAWTEXT:
            self._mode = _Mode.RAWTEXT
            self._raw_name = name
            self._sink = sink
        elif model is ContentModel.PLAINTEXT:
            self._mode = _Mode.PLAINTEXT
            self._sink = sink

    def _enter_other(self, mode: _Mode) -> None:
        self._mode = mode
        self._sink = self._other_out

    def _data(self, pos: int, final: bool) -> int:
        buf = self._buf
        lt = buf.find(b"<", pos)
        if lt == -1:
            self._text_out(buf[pos:])
            return len(buf)
        if lt > pos:
            self._text_out(buf[pos:lt])
            return lt
        # buf[pos] == "<"
        nxt = buf[pos + 1 : pos + 2]
        if not nxt:
            return self._incomplete(pos, final, as_text=True)
        if nxt.isalpha():
            return self._tag(pos, final)
        if nxt == b"/":
            return self._slash(pos, final)
        if nxt == b"!":
            return self._bang(pos, final)
        if nxt == b"?":
            self._enter_other(_Mode.BOGUS)
            return self._until_bytes(pos, b">", final, skip=2)
        self._text_out(b"<")
        return pos + 1

    def _incomplete(self, pos: int, final: bool, *, as_text: bool = False) -> int:
        """Hold an undecided token; at end of input hand it over unchanged."""
        if final:
            rest = self._buf[pos:]
            if as_text:
                self._text_out(rest)
            else:
                self._other_out(rest)
            return len(self._buf)
        if len(self._buf) - pos > self._max_token:
            raise RewriteError(
                RewriteErrorReason.TOKEN_TOO_LARGE,
                f"a tag or markup declaration exceeds {self._max_token} bytes",
            )
        return pos

    def _tag(self, pos: int, final: bool) -> int:
        buf = self._buf
        if not final and buf.find(b">", max(pos, self._retry_from)) == -1:
            self._retry_from = len(buf)
            return self._incomplete(pos, final)
        match = _TAG.match(buf, pos)
        if match is None:
            self._retry_from = len(buf)
            return self._incomplete(pos, final)
        self._retry_from = 0
        return self._tag_token(match, pos)

    def _slash(self, pos: int, final: bool) -> int:
        third = self._buf[pos + 2 : pos + 3]
        if not third:
            return self._incomplete(pos, final, as_text=True)
        if third.isalpha():
            return self._tag(pos, final)
        if third == b">":
            self._other_out(b"</>")  # ignored by browsers
            return pos + 3
        self._enter_other(_Mode.BOGUS)
        return self._until_bytes(pos, b">", final, skip=2)

    def _bang(self, pos: int, final: bool) -> int:
        buf = self._buf
        head = buf[pos : pos + 9]
        if head.startswith(b"<!--"):
            if len(buf) - pos < 6 and not final:
                return self._incomplete(pos, final)
            after = buf[pos + 4 : pos + 6]
            if after[:1] == b">":  # <!--> is an empty comment
                self._other_out(buf[pos : pos + 5])
                return pos + 5
            if after == b"->":  # <!---> too
                self._other_out(buf[pos : pos + 6])
                return pos + 6
            self._enter_other(_Mode.COMMENT)
            return self._until(pos, _COMMENT_END, 3, final, skip=4)
        if (
            len(head) < 9
            and not final
            and (b"<!--".startswith(head) or _CDATA_OPEN.startswith(head))
        ):
            return self._incomplete(pos, final)
        # In wanted mode the handler promised which content it is in.
        scan = self._scan
        if head == _CDATA_OPEN and (
            scan.foreign if scan is not None else self._handler.in_foreign_content()
        ):
            self._enter_other(_Mode.CDATA)
            return self._until_bytes(pos, b"]]>", final, skip=9)
        # Doctype, <![CDATA[ in HTML content and anything else: up to the next ">".
        self._enter_other(_Mode.BOGUS)
        return self._until_bytes(pos, b">", final, skip=2)

    def _until_bytes(self, pos: int, end: bytes, final: bool, skip: int = 0) -> int:
        buf = self._buf
        found = buf.find(end, pos + skip)
        if found != -1:
            stop = found + len(end)
            self._sink(buf[pos:stop])
            self._mode = _Mode.DATA
            return stop
        return self._stream_other(pos, len(end) - 1, final, skip)

    def _until(
        self, pos: int, end: re.Pattern[bytes], hold: int, final: bool, skip: int = 0
    ) -> int:
        buf = self._buf
        match = end.search(buf, pos + skip)
        if match is not None:
            self._sink(buf[pos : match.end()])
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
            self._sink(buf[pos:stop])
        return stop

    def _rawtext(self, pos: int, final: bool) -> int:
        buf = self._buf
        match = _raw_end_pattern(self._raw_name).search(buf, pos)
        if match is not None:
            if match.start() > pos:
                self._sink(buf[pos : match.start()])
            self._mode = _Mode.DATA
            return match.start()
        hold = 0 if final else len(self._raw_name) + 2
        stop = max(pos, len(buf) - hold)
        if stop > pos:
            self._sink(buf[pos:stop])
        return stop

    def _script(self, pos: int, final: bool) -> int:
        """Script data with its escape states, so ``</script>`` inside ``<!--<script>`` is text.

        Outside an escape only ``</script`` and ``<!--`` matter: two literal searches (the
        usual case, fast in C); the escaped states take the event pattern.
        """
        buf = self._buf
        search_from = pos
        while True:
            if self._script_state == 0:
                end = _SCRIPT_END.search(buf, search_from)
                limit = end.start() if end is not None else len(buf)
                # "<!--" cannot overlap a "</script" that follows it, so the limit is exact.
                escape = buf.find(b"<!--", search_from, limit)
                if escape == -1:
                    if end is None:
                        return self._script_hold(pos, search_from, final)
                    if end.start() > pos:
                        self._sink(buf[pos : end.start()])
                    self._mode = _Mode.DATA
                    return end.start()
                self._script_state = 1
                # Continue right after "<!" so that "<!-->" closes the escape again.
                search_from = escape + 2
                continue
            match = _SCRIPT_EVENT.search(buf, search_from)
            if match is None:
                return self._script_hold(pos, search_from, final)
            token = match.group(0)
            state = self._script_state
            if token == b"<!--":
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
                        self._sink(buf[pos : match.start()])
                    self._mode = _Mode.DATA
                    return match.start()
            else:  # <script
                if state == 1:
                    self._script_state = 2
                search_from = match.end() - 1

    def _script_hold(self, pos: int, search_from: int, final: bool) -> int:
        """Hand on script data up to the last 8 bytes, which may start ``</script`` + delimiter
        (the events before ``search_from`` are already counted in the state)."""
        buf = self._buf
        stop = len(buf) if final else max(pos, search_from, len(buf) - 8)
        if stop > pos:
            self._sink(buf[pos:stop])
        return stop
