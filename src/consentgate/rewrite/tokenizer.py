"""A streaming, byte-level HTML tokenizer that never changes a byte.

It splits input into tokens the way a browser's tokenizer would (WHATWG "tokenization"), but
only as far as a rewriter needs: text, start tags, end tags, raw-text element content, and
"other" markup (comments, doctypes, processing instructions, CDATA) which is passed through.
Every input byte ends up in exactly one token, in order, so concatenating the tokens gives the
input back. Only an incomplete token at the end of the input is held back; comments and
raw-text contents are handed on in pieces so memory stays bounded.

The handler decides the content model after each start tag (a browser does not treat
``<script>`` inside ``<svg>`` as raw text, for example), so the tokenizer asks it.

**Wanted names.** A handler that only acts on a few tag names calls
:meth:`Tokenizer.set_wanted`. From then on one compiled regular expression (one per set of
names, cached) consumes, in C, every run of text, every tag whose name is not wanted,
comments, doctypes and whole raw-text and script elements that are not wanted, and hands those
bytes to ``handler.passthrough`` in bulk; Python wakes only at wanted tags. The tokens it does
report are exactly those the full tokenizer would report for those names (the tests compare
the two). Wanted mode assumes HTML content (no CDATA sections): a handler leaves it
(``set_wanted(None)``) while inside ``<svg>``/``<math>``, so it must want those names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import RewriteError, RewriteErrorReason
from .passthrough import _scan_for
from .tokens import (
    _NAME_CACHE,
    _NAME_CACHE_SIZE,
    _TAG,
    ContentModel,
    EndTag,
    StartTag,
    TokenHandler,
    iter_attributes,
)
from .tokenstates import _COMMENT_END, _Mode, _TokenizerStates

__all__ = ["ContentModel", "EndTag", "StartTag", "TokenHandler", "Tokenizer", "iter_attributes"]

#: Bytes after "<" that can start markup (anything else makes the "<" text), and the search
#: for the next such "<" (or a "<" at the end, which waits for the next byte).
_MARKUP_SECOND = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/!?")
_MARKUP_START = re.compile(rb"<(?:[A-Za-z/!?]|\Z)")


class Tokenizer(_TokenizerStates):
    """Feed bytes, get handler calls. ``close()`` hands over whatever is still held."""

    @property
    def wanted(self) -> frozenset[str] | None:
        return self._wanted

    def set_wanted(
        self,
        names: frozenset[str] | None,
        *,
        foreign: bool = False,
        only_with: Mapping[str, frozenset[str]] | None = None,
        whole_foreign: bool = False,
    ) -> None:
        """Report only tags with these (lower-case) names, plus ``plaintext`` start tags, and
        hand everything else to ``handler.passthrough``; ``None`` reports every token.

        May be called at any time, also from inside a handler call: it takes effect at the
        next token. With a set, the handler promises HTML content, where the content model
        of an unwanted start tag is the HTML one by name; with ``foreign=True`` it promises
        foreign content instead (the adjusted current node is an SVG/MathML element): no raw
        text, and ``<![CDATA[`` opens a CDATA section. Either way it must want every name
        whose tag could end that promise (``svg``/``math`` to enter foreign content; in it,
        its ends, integration points, HTML breakout tags and the end tags of open HTML
        elements).

        ``only_with`` maps wanted names to attribute names: such a start tag is reported only
        when it has one of them (``script`` with ``data-consent``, say); without, it passes
        with its whole element if that is raw text or a script, end tag included. Pass the
        same mapping object again to hit the pattern cache quickly.

        ``whole_foreign`` (HTML content only): an ``<svg>`` or ``<math>`` element that provably
        stays foreign up to its own end tag and holds no wanted name passes whole, like an
        unwanted raw-text element; any other such start tag is reported. For a handler that
        wants ``svg``/``math`` only to follow foreign content, not to act on them.
        """
        if names is None:
            self._scan = None
            self._wanted = None
            self._pass_re = None
            self._pass_end = False
            self._text_out = self._handler.text
            self._other_out = self._handler.other
            return
        scan = _scan_for(names, foreign, only_with, whole_foreign)
        self._scan = scan
        self._wanted = scan.wanted
        self._pass_re = scan.pattern
        self._text_out = self._other_out = self._handler.passthrough

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._buf:
            if self._retry_from and self._mode is _Mode.DATA and b">" not in data:
                # The held tag cannot end in this chunk: keep it aside (no re-copying).
                self._pending.append(bytes(data))
                self._pending_size += len(data)
                if len(self._buf) + self._pending_size > self._max_token:
                    raise RewriteError(
                        RewriteErrorReason.TOKEN_TOO_LARGE,
                        f"a tag or markup declaration exceeds {self._max_token} bytes",
                    )
                return
            if self._pending:
                self._pending.append(bytes(data))
                self._join_pending()
            else:
                self._buf += data
        else:
            self._buf = bytes(data)
            self._retry_from = 0
        pos = self._run(0, final=False)
        self._buf = self._buf[pos:]
        self._retry_from = max(0, self._retry_from - pos)

    def _join_pending(self) -> None:
        self._buf = b"".join([self._buf, *self._pending])
        self._pending.clear()
        self._pending_size = 0

    def close(self) -> None:
        if self._pending:
            self._join_pending()
        pos = self._run(0, final=True)
        rest = self._buf[pos:]
        self._buf = b""
        if rest:
            # Incomplete markup at end of input: browsers drop it or show it as text; we keep
            # the bytes as they are.
            if self._mode is _Mode.DATA:
                self._other_out(rest)
            else:
                self._sink(rest)

    # -- the state machine -------------------------------------------------------------------

    def _run(self, pos: int, *, final: bool) -> int:
        """Consume tokens from ``pos``; return where the held (incomplete) part begins."""
        while pos < len(self._buf):
            mode = self._mode
            if mode is _Mode.DATA:
                if self._pass_re is None:
                    new_pos = self._data_run(pos, final)
                else:
                    new_pos = self._wanted_run(pos, final)
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
                self._sink(self._buf[pos:])
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
        changed, the handler asked for wanted names, or an incomplete token is held (then
        without progress from that token).
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
        max_token = self._max_token
        data_model = ContentModel.DATA
        while pos < size:
            lt = find(b"<", pos)
            if lt == -1:
                text(buf[pos:])
                return size
            if lt > pos:
                text(buf[pos:lt])
                pos = lt
                if self._pass_re is not None:
                    return pos
            match = tag_match(buf, lt)
            if match is None:
                if lt + 1 < size and buf[lt + 1] not in _MARKUP_SECOND:
                    # A "<" that starts no markup is text, and so is everything up to the
                    # next possible markup start: one C search, so "a < b" text stays linear.
                    more = _MARKUP_START.search(buf, lt + 1)
                    pos = size if more is None else more.start()
                    text(buf[lt:pos])
                    if self._pass_re is not None:
                        return pos
                    continue
                # Not a tag, or an incomplete one: the careful path decides, as before (it
                # returns without progress when the token is incomplete).
                new_pos = self._data(lt, final)
                if new_pos == lt or self._mode is not _Mode.DATA or self._pass_re is not None:
                    return new_pos
                pos = new_pos
                continue
            pos = match.end()
            if pos - lt > max_token:
                # The same limit as for a tag held across chunks, so that the chunking
                # never decides whether a page can be rewritten.
                raise RewriteError(
                    RewriteErrorReason.TOKEN_TOO_LARGE,
                    f"a tag or markup declaration exceeds {max_token} bytes",
                )
            name_bytes = match.group(1)
            name = names.get(name_bytes)
            if name is None:
                name = name_bytes.lower().decode("latin-1")
                if len(names) < _NAME_CACHE_SIZE:
                    names[name_bytes] = name
            if buf[lt + 1] == 0x2F:  # "</"
                end_tag(EndTag(buf[lt:pos], name))
                if self._pass_re is not None:
                    return pos
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
                self._enter_model(model, name, handler.raw_text)
                return pos
            if self._pass_re is not None:
                return pos
        return pos

    def _wanted_run(self, pos: int, final: bool) -> int:
        """Data state with wanted names: the compiled pattern consumes everything up to the
        next wanted tag in one C call; that tag (or whatever stopped the pattern: an incomplete
        token, an unwanted raw-text element without its end yet) goes the careful way.

        Returns when the buffer is used up, the mode or the wanted names changed, or an
        incomplete token is held.
        """
        if self._retry_from:
            return self._data(pos, final)  # a held incomplete tag: see _tag
        pattern = self._pass_re
        if pattern is None:  # set_wanted(None) since _run looked
            return pos
        buf = self._buf
        size = len(buf)
        scan = pattern.match
        passthrough = self._handler.passthrough
        tag_match = _TAG.match
        # The scan looks at most max_token_bytes ahead: a tag longer than that never fits, so
        # it reaches the careful path and fails as it does when held across chunks (the
        # chunking must not decide whether a page can be rewritten). Tokens that merely
        # cross a window's end take the careful path too.
        window = self._max_token
        while pos < size:
            match = scan(buf, pos, pos + window)
            end = match.end() if match is not None else pos
            if end > pos:
                self._pass_end = False  # the first token passed was that end tag
                passthrough(buf[pos:end])
                pos = end
                if pos >= size or self._pass_re is not pattern:
                    return pos
            tag = tag_match(buf, pos)
            if tag is not None:
                new_pos = self._tag_token(tag, pos)
            else:
                new_pos = self._data(pos, final)
                if new_pos == pos:
                    return pos  # incomplete: held
            if self._mode is not _Mode.DATA or self._pass_re is not pattern:
                return new_pos
            pos = new_pos
        return pos
