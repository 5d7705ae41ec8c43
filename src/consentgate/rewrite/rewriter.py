"""The streaming rewriter: tokens in, the same bytes out except where an operation applies.

:class:`Rewriter` is the tokenizer's handler, the top of the layers ``state.py`` describes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import treemodel as T
from ._html import INLINE_ELEMENTS, VOID_ELEMENTS
from .charset import PRESCAN_BYTES, CharsetDecision, detect_charset
from .elements import _Element
from .errors import RewriteError, RewriteErrorReason
from .modelswitch import _ModelSwitch
from .operations import Operation
from .state import RewriteReport, _DropKind, _OpState, _Phase
from .tokenizer import ContentModel, EndTag, StartTag, Tokenizer
from .treemodel import HTML, ModelLimit, Outcome, TreeModel

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_HELD_BYTES",
    "DEFAULT_MAX_TEXT_BYTES",
    "DEFAULT_MAX_TOKEN_BYTES",
    "RewriteReport",
    "Rewriter",
    "rewrite_html",
]

DEFAULT_MAX_TOKEN_BYTES = 1 << 20
DEFAULT_MAX_TEXT_BYTES = 1 << 20
DEFAULT_MAX_DEPTH = 1024

#: Output held after a fallback cut point (``ShortContainer.CUT``) before giving up and
#: cutting there.
DEFAULT_MAX_HELD_BYTES = 1 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
_IN_BODY = T.Mode.IN_BODY
_DOCTYPE = re.compile(rb"<!doctype[\t\n\f\r ]*([^\t\n\f\r >]*)([^>]*)>?", re.IGNORECASE)
_DOCTYPE_ID = re.compile(rb"""(public|system)[\t\n\f\r ]*(?:"([^"]*)"?|'([^']*)'?)""", re.I)


class Rewriter(_ModelSwitch):
    """Rewrite one HTML response body as it streams.

    ``feed(chunk)`` returns the output that is ready; ``close()`` returns the rest and checks
    ``required`` operations. Any chunking of the same input gives the same output. Bytes that no
    operation touches pass through unchanged.

    The encoding is ``encoding`` if given, else decided from ``content_type``'s charset, a BOM or
    a ``<meta>`` in the first 1024 bytes (then up to 1024 bytes are held until decided). An
    encoding in which ``<``/``>``/quotes can be part of other characters raises
    ``UNSAFE_CHARSET``.

    Which elements are open is the business of :class:`~.treemodel.TreeModel`, the WHATWG
    tree-construction rules for the stack of open elements. It runs only where an operation
    needs it: from the start when a selector looks at ancestors, otherwise from the moment an
    element whose extent matters starts (a truncation's container, an element to remove, SVG
    or MathML content) until it ends. Between those, the tokenizer hands over only the tags
    an operation can act on (the "light" path).
    """

    def __init__(
        self,
        operations: Sequence[Operation],
        *,
        content_type: str | None = None,
        encoding: str | None = None,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
    ) -> None:
        self.report = RewriteReport()
        self._content_type = content_type
        self._max_text = max_text_bytes
        self._max_depth = max_depth
        self._max_held = max_held_bytes
        self._tokenizer = Tokenizer(self, max_token_bytes=max_token_bytes, start_tag_type=_Element)
        self._out: list[bytes] = []
        self._hold_from: int | None = None  # output from here on is held (fallback cut)
        self._held_counted = 0  # pieces of _out counted into _held_bytes
        self._held_bytes = 0
        self._model: TreeModel | None = None
        self._model_base = 0  # depth of the model's made-up context (html, body)
        self._closed = False
        self._pending_head = b""  # bytes held until the charset is known
        self._charset: CharsetDecision | None = None
        self._codec = "utf-8"
        self._drop_root: _Element | None = None
        self._drop_kind = _DropKind.REMOVE
        self._dropping = False
        self._capture: list[bytes] | None = None
        self._capture_size = 0
        self._capture_state: _OpState | None = None
        self._implicit_batch: list[_Element] = []  # closed without end tags since last token
        self._in_start_tag = False
        self._collect: list[_Element] | None = None  # closes seen while an end tag is handled
        self._closing: Sequence[_Element] = ()  # what the end tag being handled closes
        self._doctype: list[bytes] | None = None  # a doctype arriving in pieces
        # How much of a UTF-8 byte order mark the document's first bytes matched, while they
        # still may be one (None after the first other token or byte).
        self._bom_matched: int | None = 0
        self._wanted_state: tuple[frozenset[str] | None, bool] | None = None
        self._build_states(operations)
        if self._always_model:
            self._start_model((), mid_document=False)
        else:
            self._update_wanted()
        if encoding is not None:
            self._set_charset(detect_charset(f"text/html; charset={encoding}"))
        elif content_type and "charset" in content_type.lower():
            self._set_charset(detect_charset(content_type))

    # -- public API --------------------------------------------------------------------------

    @property
    def charset(self) -> CharsetDecision | None:
        return self._charset

    @property
    def settled(self) -> bool:
        """No truncation is still undecided: every container was cut or has ended, so the
        output so far is final. A caller serving a walled page holds output until then."""
        return self._echo_phase != 1 and all(
            s.phase is _Phase.CUTTING or s.phase is _Phase.DONE for s in self._truncates
        )

    def feed(self, chunk: bytes) -> bytes:
        """Process ``chunk``; return the output that can already be sent."""
        if self._closed:
            raise RewriteError(RewriteErrorReason.CLOSED, "feed() after close()")
        if self._charset is None:
            self._pending_head += chunk
            if len(self._pending_head) < PRESCAN_BYTES:
                return b""
            chunk, self._pending_head = self._pending_head, b""
            self._set_charset(detect_charset(self._content_type, chunk))
        self._tokenizer.feed(chunk)
        return self._take_output()

    def close(self) -> bytes:
        """Flush everything; raise :class:`RewriteError` for unfound ``required`` targets."""
        if self._closed:
            raise RewriteError(RewriteErrorReason.CLOSED, "close() called twice")
        if self._charset is None:
            head, self._pending_head = self._pending_head, b""
            self._set_charset(detect_charset(self._content_type, head))
            self._tokenizer.feed(head)
        self._closed = True
        self._tokenizer.close()
        if self._echo_run:
            self._end_echo_text()
        if self._echo_phase == 1:
            self._echo_phase = 2  # the end: the pieces are what they are
        if self._capture is not None:
            self._finish_capture()
        self._implicit_batch.clear()
        if self._model is not None:
            self._model.eof()
        self._insert_eof_fallbacks()
        self._check_required()
        return self._take_output(final=True)

    def rewrite(self, body: bytes) -> bytes:
        """Rewrite a whole body at once (``feed`` + ``close``)."""
        return self.feed(body) + self.close()

    def _take_output(self, *, final: bool = False) -> bytes:
        data = self._output_ready()
        if not self._echo_on:
            return data
        if self._echo_phase < 2:
            # Before the pieces of the dropped text are known: what goes out now is held
            # by a caller serving a walled page until ``settled``; keep it (up to
            # max_held_bytes) to search it once they are.
            if self.settled:
                self._unchecked.clear()
            elif self._unchecked_size <= self._max_held:
                self._unchecked.append(data)
                self._unchecked_size += len(data)
            return data
        if self._unchecked:
            self._search_kept(self._unchecked)
        if self._echo_samples:
            data = self._check_echo(data, final=final)
        return data

    def _output_ready(self) -> bytes:
        out = self._out
        hold = self._hold_from
        if hold is None:
            data = b"".join(out)
            out.clear()
            return data
        if self._held_too_much():
            self._cut_at_fallback_now()
            return self._output_ready()
        data = b"".join(out[:hold])
        del out[:hold]
        self._hold_from = 0
        self._held_counted -= hold
        return data

    # -- token handlers (called by the tokenizer) ------------------------------------------------

    def passthrough(self, data: bytes) -> None:
        """Bytes the light path has no use for (text, tags no operation wants, comments)."""
        if not self._dropping:
            self._out.append(data)

    def text(self, data: bytes) -> None:
        model = self._model
        if model is not None:
            if self._bom_matched is not None:
                model.characters(self._past_bom(data))
            elif model.mode is not _IN_BODY or model.afe or model._frameset_ok:
                model.characters(data)
            # else: text in body with no formatting element to reconstruct and frameset
            # already ruled out changes nothing in the model (TreeModel.characters), and it
            # is most text of a page: no call.
        if self._dropping:
            if self._echo_on and self._drop_kind is _DropKind.CUT:
                self._echo_text(data)
            return
        if self._active_truncates and data.strip(b"\t\n\f\r "):
            self._last_start = None
            if model is not None and model.shadow_hosts:
                self._check_shadow_dom(model, None, None)
        if self._active_truncates and not self._in_template():
            for state in self._truncates:
                if state.phase is _Phase.ACTIVE:
                    data = self._count_words(state, data)
                    if self._dropping:
                        return
            if self._echo_on:
                self._note_kept_text(data)
        self._out.append(data)

    def _past_bom(self, data: bytes) -> bytes:
        """A browser's decoder takes a byte order mark off before tree construction sees a
        character (the bytes still go out): the model must not take it for text."""
        matched = self._bom_matched or 0
        taken = 0
        while matched < 3 and taken < len(data) and data[taken] == _UTF8_BOM[matched]:
            matched += 1
            taken += 1
        if matched == 3 or taken < len(data):
            self._bom_matched = None
            if matched < 3:  # not a BOM after all: what was held back is text too
                return _UTF8_BOM[:matched] + data[taken:]
            return data[taken:]
        self._bom_matched = matched
        return b""

    def raw_text(self, data: bytes) -> None:
        if self._dropping:
            return
        if self._capture is not None:
            self._capture_size += len(data)
            if self._capture_size > self._max_text:
                raise RewriteError(
                    RewriteErrorReason.TEXT_TOO_LARGE,
                    f"text to transform exceeds {self._max_text} bytes",
                )
            self._capture.append(data)
            return
        self._out.append(data)

    def other(self, data: bytes) -> None:
        if self._echo_run:
            self._end_echo_text()
        self._last_start = None
        self._bom_matched = None
        model = self._model
        if model is not None:
            doctype = self._doctype
            if doctype is None and data[:2] == b"<!":
                head = data[:9].lower()
                if head.startswith(b"<!doctype") or b"<!doctype".startswith(head):
                    doctype = self._doctype = []
            if doctype is not None:
                # The tokenizer may hand a declaration over in pieces (any chunking).
                doctype.append(data[:512])
                if b">" in data:
                    self._doctype = None
                    model.doctype(*_parse_doctype(b"".join(doctype)))
            else:
                model.comment()
        if not self._dropping:
            self._out.append(data)

    def in_foreign_content(self) -> bool:
        model = self._model
        if model is None or not model.stack:
            return False
        return model.stack[-1].ns != HTML

    def start_tag(self, tag: StartTag) -> ContentModel:
        if self._echo_run:
            self._end_echo_text()
        try:
            # The tokenizer builds the class it was given (see __init__).
            element: _Element = tag  # type: ignore[assignment]
            self._bom_matched = None
            element.codec = self._codec
            name = element.name
            # Word boundaries matter only while a container's words are counted.
            if self._active_truncates and name not in INLINE_ELEMENTS:
                self._reset_word_boundaries()
            if self._implicit_batch:
                self._implicit_batch.clear()
            model = self._model
            if model is None and (name == "svg" or name == "math"):
                self._start_model((), mid_document=True)  # foreign content: the model knows it
                model = self._model
            if model is None:
                return self._light_start(element)
            self._in_start_tag = True
            try:
                if model.push_plain(element):  # the common case, without the dispatch
                    outcome, content = Outcome.OPEN, ContentModel.DATA
                else:
                    outcome, content = model.start_tag(element)
            except ModelLimit as exc:
                self._model_limit(exc)
                return self._light_start(element)
            finally:
                self._in_start_tag = False
            if outcome is Outcome.IGNORED:
                self._emit_visible(element.raw)
                return content
            stack: list[_Element] = model.stack  # type: ignore[assignment]
            if model.shadow_hosts and (self._active_truncates or self._open_at_cut):
                self._check_shadow_dom(model, element, self._last_start)
            self._last_start = element
            void = outcome is Outcome.VOID
            if void:
                stack.append(element)  # matched as the current node, then gone
            if not self._dropping:
                if (
                    name == "noscript"
                    and self._active_truncates
                    and content is not ContentModel.DATA
                    and not self._in_template()
                ):
                    self._drop_noscript(element)
                    return content
                if self._content_fallbacks and name not in ("html", "head"):
                    self._insert_content_fallbacks()
                if self._start_any or name in self._start_names:
                    self._apply_start_ops(element, content, stack)
                else:
                    self._out.append(element.raw)  # no operation can match: the bytes go through
            if void:
                stack.pop()
                if self._active_truncates:
                    self._element_closed(element)
            return content
        finally:
            # Foreign content entered mid-document: what the tokenizer may skip follows the
            # current node (a finally here rather than a wrapper: a call per tag costs).
            if self._model_base > 0 and self._model is not None:
                self._update_model_wanted()

    def _light_start(self, element: _Element) -> ContentModel:
        """A start tag outside the tree model: HTML content, context unknown."""
        name = element.name
        content = T.CONTENT_MODELS.get(name, ContentModel.DATA)
        if self._content_fallbacks and name not in ("html", "head"):
            self._insert_content_fallbacks()
            self._update_wanted()
        if not (self._start_any or name in self._start_names):
            self._out.append(element.raw)
            return content
        stack = [element]
        void = name in VOID_ELEMENTS
        if not void:
            element.open = True
        self._apply_start_ops(element, content, stack)
        if void:
            return content
        if self._dropping or any(s.container is element for s in self._truncates):
            # Its extent matters from here on: the model follows it, from a made-up context.
            self._start_model((element,), mid_document=True)
            model = self._model
            if model is not None and content is not ContentModel.DATA:
                model.mode = T.Mode.TEXT
        else:
            element.open = False
        if self._capture is not None:
            self._set_wanted(None)
        return content

    def end_tag(self, tag: EndTag) -> None:
        if self._echo_run:
            self._end_echo_text()
        self._last_start = None
        self._bom_matched = None
        name = tag.name
        if self._active_truncates and name not in INLINE_ELEMENTS:
            self._reset_word_boundaries()
        if self._implicit_batch:
            self._implicit_batch.clear()
        if self._capture is not None:
            self._finish_capture()
            self._update_wanted()
        model = self._model
        if model is None:
            self._light_end(tag)
            return
        # Most end tags of a page are the current node's, which the model only pops (see
        # TreeModel.pop_plain), and end nothing this rewriter ends with more than its end
        # tag: what _end_tag_full and _close_with_token would do for those, without their
        # lists and steps. Anything else takes the full path, with nothing done here.
        stack: list[_Element] = model.stack  # type: ignore[assignment]
        node = stack[-1] if stack else None
        if (
            node is None
            or node.name != name
            or node.synthetic  # made by the model: "</p>" with no p, a reconstructed <b>
            or node is self._drop_root
            or (self._active_truncates and self._is_active_container(node))
            or model.pop_plain(name) is None
        ):
            self._end_tag_full(tag, model)
            return
        if not self._dropping:
            if self._end_any or name in self._end_names:
                before, after = self._end_insertions(name, node)
                self._out.append(before + tag.raw + after if before or after else tag.raw)
            else:
                self._out.append(tag.raw)
        if self._active_truncates:
            self._element_closed(node)
        if self._model_base > 0:  # the model may stop here (it never does from the start)
            self._maybe_stop_model()
            self._update_model_wanted()

    def _end_tag_full(self, tag: EndTag, model: TreeModel) -> None:
        name = tag.name
        if self._leaves_foreign_content(model, name) and self._model is None:
            self._light_end(tag)
            return
        closed: list[_Element] = []
        self._collect = closed
        try:
            target: _Element | None = model.end_tag(name)  # type: ignore[assignment]
        finally:
            self._collect = None
        self._closing = closed
        try:
            for element in closed:
                if element is not target:
                    self._after_implicit_close(element)
        finally:
            self._closing = ()
        if target is not None and target.synthetic and not target.open:
            # "</p>" with no open p makes an empty paragraph: it counts as an item.
            self._emit_visible(tag.raw)
            self._synthetic_item(target)
            self._maybe_stop_model()
            return
        pops = target is not None and target in closed
        self._close_with_token(tag, target, pop=pops)
        self._maybe_stop_model()
        self._update_model_wanted()

    def _light_end(self, tag: EndTag) -> None:
        if self._end_any or tag.name in self._end_names:
            before, after = self._end_insertions(tag.name, None)
            self._out.append(before + tag.raw + after if before or after else tag.raw)
        else:
            self._out.append(tag.raw)

    # -- end tags ----------------------------------------------------------------------------

    def _close_with_token(self, tag: EndTag, element: _Element | None, *, pop: bool) -> None:
        """Emit an end tag token (unless dropped), with end-tag insertions around it."""
        ends_drop = pop and element is not None and element is self._drop_root
        if ends_drop and self._drop_kind is _DropKind.REMOVE:
            self._end_drop()
            self._element_closed(self._drop_root_element(element))
            return
        visible = not self._dropping or ends_drop
        if ends_drop:
            self._end_drop()
        if pop and element is not None and self._is_active_container(element):
            # A container ending before its cut: a fallback cut goes before its end tag.
            self._element_closed(element)
            pop = False
        before = after = b""
        if visible:
            before, after = self._end_insertions(tag.name, element)
            self._out.append(before + tag.raw + after if before or after else tag.raw)
        if pop and element is not None:
            self._element_closed(element)


def _parse_doctype(data: bytes) -> tuple[str, str | None, str | None]:
    match = _DOCTYPE.match(data)
    if match is None:
        return "", None, None
    name = match.group(1).lower().decode("latin-1")
    public = system = None
    for kind, dq, sq in _DOCTYPE_ID.findall(match.group(2)):
        value = (dq or sq).decode("latin-1")
        if kind.lower() == b"public" and public is None:
            public = value
        else:
            system = value
    return name, public, system


def rewrite_html(
    body: bytes,
    operations: Sequence[Operation],
    *,
    content_type: str | None = None,
    encoding: str | None = None,
) -> tuple[bytes, RewriteReport]:
    """Rewrite a complete body; return the output and the report."""
    rewriter = Rewriter(operations, content_type=content_type, encoding=encoding)
    output = rewriter.rewrite(body)
    return output, rewriter.report
