"""Truncation: where a lead ends (items and words counted), closing what the cut leaves
open, dropping the rest of the container (and of a removed element), the output held after a
fallback cut point, and the cases that fail closed (a cut inside a table, too much held, a
container too short for ``ShortContainer.FAIL``)."""

from __future__ import annotations

import json
import re

from .elements import _Element
from .errors import RewriteError, RewriteErrorReason
from .operations import ShortContainer, Truncate
from .selectors import compile_selector
from .state import _DropKind, _Phase, _RewriterState, _TruncateState
from .treedata import HTML
from .treemodel import TreeModel

_WORD = re.compile(rb"[^\t\n\f\r ]+")
#: A piece of dropped text the echo guard looks for: 40 bytes of ASCII letters, digits,
#: spaces and plain punctuation, which HTML text, attribute values and JSON strings all
#: carry as the same bytes (no quote, ampersand, "<", backslash or line break to escape).
_ECHO_PIECE = re.compile(rb"[A-Za-z0-9][A-Za-z0-9 .,;:]{38}[A-Za-z0-9]")
#: Text with no such run (Chinese, Russian, Greek): 16 characters of UTF-8 letters and the
#: same plain ASCII, looked for as they are and as JSON's ``\u`` escapes write them.
_ECHO_PIECE_UTF8 = re.compile(rb"(?:[\xc2-\xf4][\x80-\xbf]{1,3}|[A-Za-z0-9 .,;:]){16}")
_ECHO_MIN_TEXT = 80  # a text node shorter than this is no sentence (a credit, a label)
_ECHO_SAMPLES = 4  # from as many dropped text nodes: a find costs a search per piece
#: Pieces of this many different dropped text nodes found make an echo. One is not: a
#: page's description or a pull quote may repeat a sentence of the article; a copy of
#: the article repeats them all.
_ECHO_FINDS = 2
_ECHO_HOLD = 64 << 10  # output held after a first find, waiting for a second
_KEPT_TEXT_LIMIT = 64 << 10
_ECHO_TEXT_LIMIT = 512  # bytes of one dropped text looked at for a piece


class _Truncation(_RewriterState):
    """The cut machinery of the rewriter."""

    # -- the echo guard ---------------------------------------------------------------------
    # Pages built by JavaScript frameworks carry their data a second time, for the browser
    # to hydrate: the whole article as JSON in a script (Next.js, Nuxt, Apollo, Arc). The
    # cut drops the article's text from the markup; its copy would still reach the reader.
    # So pieces of the dropped text are kept, and every output the rewriter hands on after
    # that is searched for them; a find is an error, and a walled page fails closed. A
    # piece that also stands in what the container kept (a pull quote of a later sentence)
    # is no echo and is not kept.

    def _note_kept_text(self, data: bytes) -> None:
        room = _KEPT_TEXT_LIMIT - self._kept_size
        if room > 0:
            piece = data[:room]
            self._kept_text.append(piece)
            self._kept_size += len(piece)

    def _echo_text(self, data: bytes) -> None:
        """Dropped text, which may come in pieces (any chunking): a text node is whole at
        the next token, see _end_echo_text."""
        room = _ECHO_TEXT_LIMIT - self._echo_run_size
        if self._echo_nodes < 1 << (_ECHO_SAMPLES - 1) and room > 0:
            # A piece comes from a text's first bytes: a megabyte of text is not searched.
            piece = data[:room]
            self._echo_run.append(piece)
            self._echo_run_size += len(piece)

    def _end_echo_text(self) -> None:
        data = b"".join(self._echo_run)
        self._echo_run.clear()
        self._echo_run_size = 0
        if len(data) >= _ECHO_MIN_TEXT:
            self._sample_dropped(data)
            if self._echo_nodes >= 1 << (_ECHO_SAMPLES - 1) and self._echo_phase == 1:
                self._echo_phase = 2  # all pieces taken

    def _search_kept(self, kept: list[bytes]) -> None:
        """What went to the caller before the pieces were known (the head and the lead of a
        streamed page, which the caller holds until ``settled``), searched once for them."""
        data = b"".join(kept)
        kept.clear()
        self._note_finds(data)
        if len(self._echo_found) >= _ECHO_FINDS:
            self._raise_echo()

    def _note_finds(self, data: bytes) -> int | None:
        """Pieces not found before that ``data`` holds go to ``_echo_found``; where the
        first of them starts, if any."""
        found = self._echo_found
        first = None
        for forms in self._echo_samples:
            if forms in found:
                continue
            at = _find(forms, data)
            if at >= 0:
                found.append(forms)
                first = at if first is None else min(first, at)
        return first

    def _raise_echo(self) -> None:
        found = self._echo_found
        raise RewriteError(
            RewriteErrorReason.CUT_TEXT_ECHOED,
            f"text cut from the article reappears elsewhere in the page "
            f"({_shown(found[0])}..., {_shown(found[1])}...), "
            "most likely in a framework's page data (script#__NEXT_DATA__, "
            "window.__NUXT__): remove that element with wall.remove_selectors",
        )

    def _sample_dropped(self, data: bytes) -> None:
        """A dropped text node of sentence length: the 1st, 2nd, 4th and 8th give a piece
        each, spread over the dropped text rather than taken from its first paragraph."""
        self._echo_nodes += 1
        if self._echo_nodes & (self._echo_nodes - 1):
            return  # not a power of two
        forms = _echo_forms(data)
        if forms is None:
            self._echo_nodes -= 1  # the next sentence takes this one's turn
            return
        if forms in self._echo_samples or any(forms[0] in kept for kept in self._kept_text):
            return
        self._echo_samples.append(forms)
        self._echo_keep = max(self._echo_keep, max(len(form) for form in forms) - 1)

    def _check_echo(self, data: bytes, *, final: bool) -> bytes:
        """``data`` searched for the pieces; what may go out of it. The last bytes are held
        back until more come (or the end), so that no beginning of a piece leaves before
        the rest of it is seen, whatever the chunking; after a first find, everything from
        it on is held until a second (an echo: an error) or ``_ECHO_HOLD`` bytes later
        (a sentence repeated once: it goes out)."""
        window = self._echo_tail + data
        if not window:
            return b""
        first = self._note_finds(window)
        if len(self._echo_found) >= _ECHO_FINDS:
            self._raise_echo()
        if final:
            self._echo_tail = b""
            return window
        if first is not None and not self._echo_holding:
            self._echo_holding = True
            self._echo_tail = window[first:]
            return window[:first]
        if self._echo_holding:
            if len(window) <= _ECHO_HOLD:
                self._echo_tail = window
                return b""
            self._echo_holding = False  # one find in all that: no echo
        keep = self._echo_keep
        self._echo_tail = window[-keep:]
        return window[:-keep]

    # -- closing elements ----------------------------------------------------------------------

    def _after_implicit_close(self, element: _Element) -> None:
        self._implicit_batch.append(element)
        if element is self._drop_root:
            kind = self._drop_kind
            if kind is _DropKind.CUT and self._in_start_tag:
                # A start tag closed the cut container (<textarea> or <input> closing the
                # <select> it stands in, a new table cell): the bytes that follow were
                # written inside the container, though a browser now places them after
                # it, where they would be shown. Fail closed: the page ends where the lead
                # ended (the drop goes on; its root is gone, so nothing ends it).
                self._out.append(self._end_tag_bytes(element))
                return
            self._end_drop()
            if kind is _DropKind.CUT:
                self._out.append(self._end_tag_bytes(element))
        elif self._in_start_tag and self._is_active_container(element):
            # The same before the cut point: what the lead would end in is unknowable.
            raise RewriteError(
                RewriteErrorReason.MODEL_LIMIT,
                f"a <{element.name}> container was closed by a later start tag, which places "
                "what follows it in the bytes outside it",
            )
        self._element_closed(element)

    def _check_shadow_dom(
        self, model: TreeModel, element: _Element | None, previous: _Element | None
    ) -> None:
        """Inside a container before its cut (``element``: a start tag, else text; and the
        start tag just before it): where declarative shadow roots make what a browser shows
        depend on slots, which the model does not follow, the count of the lead cannot be
        trusted. A shadow root's own contents are shown and counted; the children of its
        host are shown only where a slot takes them (those before the template as much as
        those after it), and a second shadow root on one element empties the first. So the
        template must come first in its host, and its host must get nothing else; anything
        else inside the container fails closed (counting text a browser does not show can
        end a short container's lead by its paragraphs, after its word budget)."""
        if element is not None and element.name == "template" and model.is_shadow_root(element):
            stack = model.stack
            host = stack[-2] if len(stack) > 1 else None
            if any(host is e for e in self._open_at_cut):
                # After the cut, on the container or an element the lead went out in: the
                # lead a browser shows is now the shadow root's, and what went out before
                # is shown only where a slot takes it.
                raise RewriteError(
                    RewriteErrorReason.MODEL_LIMIT,
                    f"a declarative shadow root after the cut on <{host.name if host else ''}>,"
                    " which holds the lead: what a browser shows of the lead changes",
                )
            if not self._active_truncates:
                return
            if model.shadow_root_replaced or host is not previous:
                raise RewriteError(
                    RewriteErrorReason.MODEL_LIMIT,
                    "a declarative shadow root in the container on an element with other "
                    "content (a browser shows that content only where a slot takes it, or "
                    "not at all once a second shadow root empties the first)",
                )
            return
        host = model.in_shadow_host_light_tree()
        if host is None:
            return
        stack = model.stack
        at = next(i for i in range(len(stack) - 1, -1, -1) if stack[i] is host)
        for state in self._truncates:
            container = state.container
            if state.phase is _Phase.ACTIVE and any(n is container for n in stack[: at + 1]):
                raise RewriteError(
                    RewriteErrorReason.MODEL_LIMIT,
                    f"content of <{host.name}>, a shadow host in the container: whether a "
                    "browser shows it depends on the slots of its shadow root",
                )

    def _is_active_container(self, element: _Element) -> bool:
        return any(s.phase is _Phase.ACTIVE and s.container is element for s in self._truncates)

    def _element_closed(self, element: _Element) -> None:
        if not self._active_truncates:
            return
        for state in self._truncates:
            if state.phase is not _Phase.ACTIVE:
                continue
            if element is state.container:
                self._container_ended(state)
            elif element is state.nth_item:
                if element in self._implicit_batch:
                    # Closed by a later tag (<p>1<p>2): the input has no end tags for it and
                    # what was open inside it, so the kept part gets them here.
                    self._out.extend(self._end_tag_bytes(e) for e in self._implicit_batch)
                self._start_cut(state)

    def _container_ended(self, state: _TruncateState) -> None:
        """The container ended before the cut point."""
        state.phase = _Phase.DONE
        self._active_truncates -= 1
        self._note_cut_over()
        op = state.op
        if not isinstance(op, Truncate) or state.keep_items is None:
            return  # a word budget that was never reached: nothing to cut
        if state.items_seen >= state.keep_items:
            return
        self.report.short_containers += 1
        if op.short is ShortContainer.FAIL:
            raise RewriteError(
                RewriteErrorReason.SHORT_CONTAINER,
                f"container {compile_selector(op.container).source!r} holds "
                f"{state.items_seen} of the {state.keep_items} items to keep",
            )
        if op.short is ShortContainer.CUT and state.fallback_set:
            self._write_cut(state, state.fallback_closers, discard_held=True)
        else:
            self._hold_from = None

    def _end_tag_bytes(self, element: _Element) -> bytes:
        return b"</" + element.name.encode("ascii", "ignore") + b">"

    def _closers(self, container: _Element) -> tuple[bytes, bytes]:
        """End tags for the elements open inside ``container``, innermost first, in two
        parts: the call to action goes between them. The second part starts at the
        innermost declarative shadow root open there (``<template shadowrootmode>``): a
        browser shows that template's contents instead of its host's children, so the call
        to action must stand inside it to be seen.

        A cut inside a table open in the container cannot be made: a browser places later
        content of the table (foster parenting) *before* it, so text after the cut point in
        the bytes can come before it in the page. That fails closed.
        """
        stack = self._stack
        position = next((i for i in range(len(stack) - 1, -1, -1) if stack[i] is container), None)
        if position is None:
            if any(element is container for element in self._closing):
                # The N-th item and the container end in the same step (<p>b</main>):
                # nothing inside the container is left open.
                return b"", b""
            # Not open and not being closed: what is open inside it is unknowable.
            raise RewriteError(
                RewriteErrorReason.MODEL_LIMIT,
                "the cut point is outside the open elements of its container",
            )
        inside = stack[position + 1 :]
        if any(e.name == "table" and e.ns == HTML for e in inside):
            raise RewriteError(
                RewriteErrorReason.MODEL_LIMIT,
                "the cut point lies inside a table, whose later content a browser may place "
                "before it",
            )
        end_tags = [self._end_tag_bytes(e) for e in inside]  # outermost first
        shadow = next(
            (
                i
                for i in range(len(inside) - 1, -1, -1)
                if self._model is not None and self._model.is_shadow_root(inside[i])
            ),
            None,
        )
        if shadow is None:
            return b"".join(reversed(end_tags)), b""
        return b"".join(reversed(end_tags[shadow + 1 :])), b"".join(
            reversed(end_tags[: shadow + 1])
        )

    def _synthetic_item(self, element: _Element) -> None:
        if self._in_template():
            return
        for state in self._truncates:
            if state.phase is not _Phase.ACTIVE or state.keep_items is None:
                continue
            for selector, candidate in self._item_index.candidates(element.name):
                if candidate is state and selector.matches([*self._stack, element]):
                    state.items_seen += 1
                    if state.items_seen == state.keep_items:
                        self._release_hold()
                        if state.phase is _Phase.ACTIVE:
                            self._start_cut(state)
                    break

    # -- dropping ---------------------------------------------------------------------------------

    def _drop_noscript(self, element: _Element) -> None:
        """A ``<noscript>`` inside a container before its cut: with scripting on (as the
        model reads it) its content is raw text and counts for nothing, but a reader who
        turns JavaScript off sees it as markup. A page rendered by scripts often keeps its
        whole article there for such readers: it would go out uncut, in front of the cut.
        So it goes, whole; a reader with scripting on loses nothing."""
        self._begin_drop(element, _DropKind.REMOVE)

    def _begin_drop(self, root: _Element, kind: _DropKind) -> None:
        self._drop_root = root
        self._drop_kind = kind
        self._dropping = True
        if kind is _DropKind.CUT and self._echo_on and self._echo_phase == 0:
            self._echo_phase = 1  # the pieces are being taken: not settled until they are

    def _end_drop(self) -> None:
        if self._drop_kind is _DropKind.CUT:
            self._open_at_cut = []
            if self._echo_run:
                self._end_echo_text()
            if self._echo_phase == 1:
                self._echo_phase = 2
            for state in self._truncates:
                if state.phase is _Phase.CUTTING and state.container is self._drop_root:
                    state.phase = _Phase.DONE
            self._note_cut_over()
        self._drop_root = None
        self._dropping = False

    def _note_cut_over(self) -> None:
        if all(state.phase is _Phase.DONE for state in self._truncates):
            self._cut_over = True

    @staticmethod
    def _drop_root_element(element: _Element | None) -> _Element:
        if element is None:  # ends_drop implies an element; say so without assert
            raise RuntimeError("end of a dropped element without the element")
        return element

    def _start_cut(self, state: _TruncateState) -> None:
        """Cut at the current position: the lead is complete."""
        container = state.container
        if container is None:
            raise RuntimeError("cut started outside its container")
        self._write_cut(state, self._closers(container), discard_held=False)
        self._drop_rest_of(state, container)

    def _write_cut(
        self, state: _TruncateState, closers: tuple[bytes, bytes], *, discard_held: bool
    ) -> None:
        """Close what is open inside the container, then the call to action, so that it stands
        in the container itself whatever the lead ended in (a table, a list, SVG). With
        ``discard_held`` the cut goes at the fallback point: what was held after it is dropped.
        """
        hold = self._hold_from
        self._hold_from = None
        if discard_held and hold is not None:
            del self._out[hold:]
        inner, outer = closers
        self._out.append(inner)
        self._out.append(state.snippet)
        self._out.append(outer)
        state.done = True
        self.report.cuts += 1

    def _drop_rest_of(self, state: _TruncateState, container: _Element) -> None:
        state.phase = _Phase.CUTTING  # always from ACTIVE
        self._active_truncates -= 1
        self._begin_drop(container, _DropKind.CUT)
        # The elements the lead went out in (see _check_shadow_dom).
        stack = self._stack
        at = next((i for i in range(len(stack) - 1, -1, -1) if stack[i] is container), None)
        self._open_at_cut = stack[at:] if at is not None else []

    def _release_hold(self) -> None:
        """The N-th item arrived after the fallback point: what was held goes out, unless it
        outgrew ``max_held_bytes`` (then the cut falls at the fallback point, as it would
        have when the limit was noticed between two chunks: the chunking must not matter)."""
        if self._held_too_much():
            self._cut_at_fallback_now()
        self._hold_from = None

    def _held_too_much(self) -> bool:
        hold = self._hold_from
        if hold is None:
            return False
        # Counted as it grows: summing every held piece on each feed() was quadratic in
        # what is held (a page fed byte by byte held one piece per byte).
        out, counted = self._out, self._held_counted
        self._held_bytes += sum(len(out[i]) for i in range(counted, len(out)))
        self._held_counted = len(out)
        return self._held_bytes > self._max_held

    def _cut_at_fallback_now(self) -> None:
        """Too much held after the fallback point: cut there (fail closed)."""
        for state in self._truncates:
            container = state.container
            if state.phase is _Phase.ACTIVE and state.fallback_set and container is not None:
                self._write_cut(state, state.fallback_closers, discard_held=True)
                self.report.warnings.append(
                    f"more than {self._max_held} bytes after the fallback cut point: cut there"
                )
                self._drop_rest_of(state, container)
                return
        self._hold_from = None

    # -- containers ---------------------------------------------------------------------------

    def _enter_container(self, state: _TruncateState, element: _Element) -> None:
        state.container = element
        state.matches += 1
        state.phase = _Phase.ACTIVE
        self._active_truncates += 1
        self.report.containers_found += 1
        op = state.op
        if state.keep_items == 0 or state.keep_words == 0:
            self._start_cut(state)
        elif (
            isinstance(op, Truncate)
            and state.keep_items is not None
            and op.short is ShortContainer.CUT
            and op.fallback_words == 0
        ):
            self._set_fallback_point(state)

    def _empty_container(self, state: _TruncateState, element: _Element) -> None:
        """A second match of the container (a page with two article bodies): keep none
        of it. Its lead was not asked for, and passing it whole would leak the text."""
        state.container = element
        state.matches += 1
        state.phase = _Phase.CUTTING
        self.report.containers_found += 1
        self._begin_drop(element, _DropKind.CUT)

    # -- words ----------------------------------------------------------------------------------

    def _reset_word_boundaries(self) -> None:
        for state in self._truncates:
            state.in_word = False

    def _count_words(self, state: _TruncateState, data: bytes) -> bytes:
        """Count words in ``data``. With ``keep_words``, cut right before the word past the
        limit and return only the part that stays; with ``keep_items`` and a fallback budget,
        mark the fallback cut point there (the output after it is held)."""
        op = state.op
        if state.keep_words is not None:
            limit = state.keep_words
        elif (
            isinstance(op, Truncate)
            and op.short is ShortContainer.CUT
            and not state.fallback_set
            and state.nth_item is None
        ):
            limit = op.fallback_words
        else:
            return data
        for match in _WORD.finditer(data):
            if match.start() == 0 and state.in_word:
                continue  # the word began in the previous piece of text
            state.words_seen += 1
            if state.words_seen > limit:
                kept = data[: match.start()]
                if kept:
                    self._out.append(kept)
                if state.keep_words is not None:
                    self._start_cut(state)
                    return b""
                self._set_fallback_point(state)
                state.in_word = True
                return data[match.start() :]
        state.in_word = bool(data) and data[-1:] not in (b"\t", b"\n", b"\f", b"\r", b" ")
        return data

    def _set_fallback_point(self, state: _TruncateState) -> None:
        container = state.container
        if container is None:
            raise RuntimeError("fallback point outside its container")
        state.fallback_set = True
        state.fallback_closers = self._closers(container)
        if self._hold_from is None:
            self._hold_from = self._held_counted = len(self._out)
            self._held_bytes = 0


def _echo_forms(text: bytes) -> tuple[bytes, ...] | None:
    """A piece of dropped text, in the forms a copy of it would take; None without one."""
    piece = _ECHO_PIECE.search(text)
    if piece is not None:
        return (piece.group(),)
    raw = next((m.group() for m in _ECHO_PIECE_UTF8.finditer(text) if max(m.group()) >= 0x80), None)
    if raw is None:
        return None
    try:
        escaped = json.dumps(raw.decode("utf-8"))[1:-1].encode("ascii")
    except UnicodeDecodeError:
        return None
    if escaped == raw:
        return None  # all ASCII, and too short for a piece of its own
    upper = re.sub(rb"\\u[0-9a-f]{4}", lambda m: m.group().upper().replace(b"\\U", b"\\u"), escaped)
    return (raw, escaped, upper) if upper != escaped else (raw, escaped)


def _find(forms: tuple[bytes, ...], data: bytes) -> int:
    """Where the first of ``forms`` found in ``data`` starts, or -1."""
    places = [at for at in (data.find(form) for form in forms) if at >= 0]
    return min(places) if places else -1


def _shown(forms: tuple[bytes, ...]) -> str:
    return forms[0][:24].decode("utf-8", "replace")
