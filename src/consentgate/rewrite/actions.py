"""What operations do at a tag: insertions, attribute rewrites, removals and text
transforms at start tags, insertions at end tags and their fallbacks, the check of
``required`` targets, and the encoding of everything the rewriter writes itself."""

from __future__ import annotations

import codecs
import re

from ._html import VOID_ELEMENTS
from .charset import CharsetDecision
from .elements import _Element
from .errors import RewriteError, RewriteErrorReason
from .operations import (
    InsertHTML,
    Position,
    RemoveElement,
    RewriteAttributes,
    TransformText,
    Truncate,
)
from .selectors import compile_selector
from .state import _DropKind, _OpState, _Phase, _TruncateState
from .tokenizer import ContentModel
from .truncation import _Truncation

_ERRORS = "consentgate.rewrite"


def _escape_unencodable(err: UnicodeError) -> tuple[bytes, int]:
    """Encode error handler: surrogate-escaped input bytes go back as they were, characters the
    encoding lacks become character references."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    out = bytearray()
    for char in err.object[err.start : err.end]:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(code - 0xDC00)
        else:
            out += b"&#%d;" % code
    return bytes(out), err.end


codecs.register_error(_ERRORS, _escape_unencodable)

_VALID_ATTR_NAME = re.compile(r"[^\t\n\f\r />=\"'<\x00]+")

# What each RewriteAttributes made of a start tag, by (the operation, the tag's bytes, the
# page's codec): the rewritten tag, or None to keep the bytes. A callback must be pure, so
# the same tag gets the same answer, and a site's gated scripts come back byte for byte on
# every page (also on pages the memo of whole pages cannot answer): decoding, calling and
# serialising one costs more than finding it. An entry holds its operation, so no id in a
# key is reused meanwhile; bounded in number (emptied when full) and in tag length.
_ATTRIBUTE_ANSWERS: dict[tuple[int, bytes, str], tuple[RewriteAttributes, bytes | None]] = {}
_ATTRIBUTE_ANSWERS_MAX = 4096
_ATTRIBUTE_ANSWER_TAG_BYTES = 2048


class _Actions(_Truncation):
    """The operations of the rewriter, applied."""

    # -- encoding ----------------------------------------------------------------------------

    def _set_charset(self, decision: CharsetDecision) -> None:
        self.report.charset = decision
        if not decision.safe:
            raise RewriteError(
                RewriteErrorReason.UNSAFE_CHARSET,
                f"cannot rewrite {decision.encoding!r} ({decision.source}) as bytes",
            )
        self._charset = decision
        self._codec = decision.encoding
        for state in self._states:
            op = state.op
            if isinstance(op, InsertHTML | Truncate):
                state.snippet = self._encode_new(op.html)

    def _encode_new(self, text: str) -> bytes:
        if self._charset is None:
            raise RuntimeError("snippet encoded before the charset was decided")
        return text.encode(self._charset.snippet_encoding, _ERRORS)

    # -- operations on start tags -------------------------------------------------------------

    def _apply_start_ops(
        self, element: _Element, model: ContentModel, stack: list[_Element]
    ) -> None:
        name = element.name
        candidates = self._start_index.candidates(name)
        items = self._item_index.candidates(name) if self._truncates else []
        if not candidates and not items:
            self._out.append(element.raw)
            return
        matched = [state for selector, state in candidates if selector.matches(stack)]
        for state in matched:
            if isinstance(state.op, RemoveElement):
                state.matches += 1
                self.report.removals += 1
                # Only an element that stays open has content to drop; a void or a
                # self-closed foreign element (<svg><g/>) is just its tag.
                stays_open = (
                    not element.self_closing if element.foreign else name not in VOID_ELEMENTS
                )
                if stays_open:
                    self._begin_drop(element, _DropKind.REMOVE)
                return
        before: list[bytes] = []
        after: list[bytes] = []
        raw = element.raw
        for state in matched:
            op = state.op
            if isinstance(op, InsertHTML):
                if state.done and op.once:
                    continue
                (before if op.position is Position.BEFORE_START else after).append(state.snippet)
                self._count_insertion(state)
            elif isinstance(op, RewriteAttributes):
                raw = self._rewrite_attributes(state, op, element, raw)
            elif (
                isinstance(op, TransformText)
                and model is not ContentModel.DATA
                and self._capture is None
                and (op.accept is None or op.accept(dict(element.attrs)))
            ):
                state.matches += 1
                self._capture = []
                self._capture_size = 0
                self._capture_state = state
        self._out.append(b"".join((*before, raw, *after)) if before or after else raw)
        for state in matched:
            if isinstance(state, _TruncateState):
                if state.phase is _Phase.WAITING:
                    self._enter_container(state, element)
                elif state.phase is _Phase.DONE and not self._dropping:
                    self._empty_container(state, element)
        for selector, state in items:
            if not isinstance(state, _TruncateState):
                raise RuntimeError("the item index holds only truncations")
            if (
                state.phase is _Phase.ACTIVE
                and element is not state.container
                and state.keep_items is not None
                and selector.matches(stack)
                and not self._in_template()
            ):
                state.items_seen += 1
                if state.items_seen == state.keep_items:
                    if self._hold_from is not None:
                        self._release_hold()
                    if state.phase is _Phase.ACTIVE:
                        state.nth_item = element

    def _count_insertion(self, state: _OpState) -> None:
        state.done = True
        state.matches += 1
        self.report.insertions += 1

    def _rewrite_attributes(
        self, state: _OpState, op: RewriteAttributes, element: _Element, raw: bytes
    ) -> bytes:
        """``raw`` as this operation leaves it. The callback sees the element's own
        attributes, so its answer depends on the tag's bytes and the codec alone, and is
        kept by those (see _ATTRIBUTE_ANSWERS)."""
        state.matches += 1
        key = (id(op), element.raw, self._codec)
        known = None if element.synthetic else _ATTRIBUTE_ANSWERS.get(key)
        if known is not None and known[0] is op:
            rewritten = known[1]
        else:
            new_attrs = op.callback(element.name, dict(element.attrs))
            rewritten = None if new_attrs is None else self._serialize_start_tag(element, new_attrs)
            # An element the tree model made up has no bytes of its own (or a clone's, with
            # a name and flag of its own): asked each time.
            if not element.synthetic and len(element.raw) <= _ATTRIBUTE_ANSWER_TAG_BYTES:
                if len(_ATTRIBUTE_ANSWERS) >= _ATTRIBUTE_ANSWERS_MAX:
                    # Start again (as the layouts do): no iteration a thread could upset.
                    _ATTRIBUTE_ANSWERS.clear()
                _ATTRIBUTE_ANSWERS[key] = (op, rewritten)
        if rewritten is None:
            return raw
        self.report.attribute_rewrites += 1
        return rewritten

    def _serialize_start_tag(self, element: _Element, attrs: dict[str, str]) -> bytes:
        parts = ["<", element.name]
        for name, value in attrs.items():
            if not _VALID_ATTR_NAME.fullmatch(name):
                raise RewriteError(
                    RewriteErrorReason.CALLBACK_FAILED,
                    f"attribute callback returned an invalid attribute name {name!r}",
                )
            if value == "":
                parts.append(f" {name}")
            else:
                escaped = value.replace("&", "&amp;").replace('"', "&quot;")
                parts.append(f' {name}="{escaped}"')
        parts.append(" />" if element.self_closing else ">")
        return "".join(parts).encode(self._codec, _ERRORS)

    # -- text transforms --------------------------------------------------------------------

    def _finish_capture(self) -> None:
        captured = b"".join(self._capture or ())
        state = self._capture_state
        self._capture = None
        self._capture_state = None
        if state is None or not isinstance(state.op, TransformText):
            raise RuntimeError("a capture ended without its text transform")
        text = captured.decode(self._codec, "surrogateescape")
        try:
            new_text = state.op.callback(text)
        except Exception as exc:
            raise RewriteError(
                RewriteErrorReason.CALLBACK_FAILED, f"text transform callback raised {exc!r}"
            ) from exc
        self.report.text_transforms += 1
        self._out.append(new_text.encode(self._codec, _ERRORS))

    # -- insertions on end tags and fallbacks -----------------------------------------------------

    def _end_insertions(self, name: str, element: _Element | None) -> tuple[bytes, bytes]:
        candidates = self._end_index.candidates(name)
        if not candidates:
            return b"", b""
        before: list[bytes] = []
        after: list[bytes] = []
        stack = self._stack
        for selector, state in candidates:
            op = state.op
            if not isinstance(op, InsertHTML):
                raise RuntimeError("the end-tag index holds only insertions")
            if state.done and op.once:
                continue
            if element is not None and element in stack:
                hit = selector.matches(stack, stack.index(element))
            elif element is not None:
                hit = selector.matches([*stack, element])
            else:
                hit = selector.simple_tag == name
            if hit:
                (before if op.position is Position.BEFORE_END else after).append(state.snippet)
                self._count_insertion(state)
        return b"".join(before), b"".join(after)

    def _insert_content_fallbacks(self) -> None:
        pending = [s for s in self._content_fallbacks if not s.done]
        self._content_fallbacks = []
        for state in pending:
            self._out.append(state.snippet)
            self._count_insertion(state)
            self.report.fallbacks += 1

    def _insert_eof_fallbacks(self) -> None:
        for state in self._states:
            op = state.op
            if (
                isinstance(op, InsertHTML)
                and not state.done
                and (op.at_eof_if_missing or op.before_first_content_if_missing)
            ):
                self._out.append(state.snippet)
                self._count_insertion(state)
                self.report.fallbacks += 1

    def _check_required(self) -> None:
        for state in self._states:
            if state.matches:
                continue
            op = state.op
            self.report.not_found.append(op)
            if not op.required:
                continue
            if isinstance(op, Truncate):
                raise RewriteError(
                    RewriteErrorReason.CONTAINER_NOT_FOUND,
                    f"truncation container {compile_selector(op.container).source!r} not found",
                )
            target = compile_selector(op.target).source
            what = type(op).__name__
            raise RewriteError(
                RewriteErrorReason.TARGET_NOT_FOUND, f"{what} target {target!r} not found"
            )

    def _emit_visible(self, data: bytes) -> None:
        if not self._dropping:
            self._out.append(data)
