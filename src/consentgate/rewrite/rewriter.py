"""The streaming rewriter: tokens in, the same bytes out except where an operation applies."""

from __future__ import annotations

import codecs
import enum
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import treemodel as T
from ._html import (
    HTML_ELEMENTS,
    INLINE_ELEMENTS,
    MATHML_OWN_ELEMENTS,
    RAW_TEXT_ELEMENTS,
    SPECIAL_MATHML,
    SPECIAL_SVG,
    SVG_OWN_ELEMENTS,
    VOID_ELEMENTS,
)
from .charset import PRESCAN_BYTES, CharsetDecision, detect_charset
from .errors import RewriteError, RewriteErrorReason
from .operations import (
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    ShortContainer,
    TransformText,
    Truncate,
)
from .selectors import Compound, Selector, compile_selector
from .tokenizer import ContentModel, EndTag, StartTag, Tokenizer
from .treemodel import HTML, ModelLimit, Outcome, TreeModel

#: End tags that close nothing when no element of theirs is open in foreign content: no
#: HTML element of the name can be open around it (SVG's and MathML's own names; raw-text
#: elements and scripts, never open while tags are read; void elements but br, which
#: leaves foreign content by its own rule). Browsers ignore them.
_IGNORED_IN_FOREIGN = (SVG_OWN_ELEMENTS | MATHML_OWN_ELEMENTS | RAW_TEXT_ELEMENTS | {"script"}) | (
    VOID_ELEMENTS - {"br"}
)

DEFAULT_MAX_TOKEN_BYTES = 1 << 20
DEFAULT_MAX_TEXT_BYTES = 1 << 20
DEFAULT_MAX_DEPTH = 1024

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

_WORD = re.compile(rb"[^\t\n\f\r ]+")

#: Output held after a fallback cut point (``ShortContainer.CUT``) before giving up and
#: cutting there.
DEFAULT_MAX_HELD_BYTES = 1 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
_DOCTYPE = re.compile(rb"<!doctype[\t\n\f\r ]*([^\t\n\f\r >]*)([^>]*)>?", re.IGNORECASE)
_DOCTYPE_ID = re.compile(rb"""(public|system)[\t\n\f\r ]*(?:"([^"]*)"?|'([^']*)'?)""", re.I)
_VALID_ATTR_NAME = re.compile(r"[^\t\n\f\r />=\"'<\x00]+")


@dataclass
class RewriteReport:
    """What the rewriter did; complete after :meth:`Rewriter.close`."""

    charset: CharsetDecision | None = None
    insertions: int = 0
    attribute_rewrites: int = 0
    removals: int = 0
    text_transforms: int = 0
    #: Truncations performed (content was actually cut).
    cuts: int = 0
    #: Truncation containers found (a found container with short content is not cut).
    containers_found: int = 0
    #: Containers that ended with fewer items than ``keep_items`` (see ``ShortContainer``).
    short_containers: int = 0
    #: Insertions that used their fallback (EOF / before first content tag).
    fallbacks: int = 0
    #: Operations whose target was never seen (required or not).
    not_found: list[Operation] = field(default_factory=list)
    #: Non-fatal oddities (e.g. nesting deeper than ``max_depth``).
    warnings: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.cuts > 0


class _Element(StartTag):
    """An element: the start tag the tokenizer made (the rewriter has it build this class, so
    there is one object per tag), its namespace, whether it is open, and lazily decoded
    attributes. Elements the tree model creates without a tag of their own (an implied
    ``<tbody>``, a reconstructed ``<b>``) are ``synthetic``: their bytes are never written.
    """

    __slots__ = ("_classes", "_decoded", "codec", "ns", "open", "synthetic")

    _classes: frozenset[str]
    _decoded: dict[str, str]
    codec: str
    ns: int
    open: bool
    synthetic: bool

    def __init__(self, raw: bytes, name: str, self_closing: bool) -> None:
        super().__init__(raw, name, self_closing)
        self.ns = HTML
        self.open = False
        self.synthetic = False

    @property
    def foreign(self) -> bool:
        return self.ns != HTML

    @property
    def attrs(self) -> dict[str, str]:
        try:
            return self._decoded
        except AttributeError:
            codec = self.codec
            self._decoded = {
                name.decode(codec, "surrogateescape"): _decode_value(value, codec)
                for name, value in self.raw_attrs.items()
            }
            return self._decoded

    def get_attr(self, name: str) -> str | None:
        if name.isascii():
            # Only the bytes of an ASCII name decode to it in the encodings we rewrite, so
            # decoding this one value is the same as decoding them all and looking it up.
            value = self.raw_attrs.get(name.encode("ascii"))
            return None if value is None else _decode_value(value, self.codec)
        return self.attrs.get(name)

    @property
    def classes(self) -> frozenset[str]:
        try:
            return self._classes
        except AttributeError:
            self._classes = frozenset((self.get_attr("class") or "").split())
            return self._classes


def _decode_value(value: bytes, codec: str) -> str:
    text = value.decode(codec, "surrogateescape")
    return html.unescape(text) if "&" in text else text


class _DropKind(enum.Enum):
    REMOVE = 0
    CUT = 1


class _Phase(enum.Enum):
    WAITING = 0  # container not seen yet
    ACTIVE = 1  # inside the container, counting
    CUTTING = 2  # cut done, dropping until the container ends
    DONE = 3


class _OpState:
    """Per-response state of one operation."""

    __slots__ = ("done", "matches", "op", "snippet")

    def __init__(self, op: Operation) -> None:
        self.op = op
        self.done = False
        self.matches = 0
        self.snippet = b""


class _TruncateState(_OpState):
    __slots__ = (
        "container",
        "fallback_closers",
        "fallback_set",
        "in_word",
        "items_seen",
        "keep_items",
        "keep_words",
        "nth_item",
        "phase",
        "words_seen",
    )

    def __init__(self, op: Truncate) -> None:
        super().__init__(op)
        self.keep_items = op.keep_items
        self.keep_words = op.keep_words
        self.phase = _Phase.WAITING
        self.container: _Element | None = None
        self.nth_item: _Element | None = None
        self.items_seen = 0
        self.words_seen = 0
        self.in_word = False
        # ShortContainer.CUT: counting words alongside the items, and where the cut falls if
        # the container ends with too few of them.
        self.fallback_set = False
        self.fallback_closers = b""


class _Index:
    """Operations grouped by the tag names their subject selector can match, for quick lookup."""

    def __init__(self) -> None:
        self.by_tag: dict[str, list[tuple[Selector, _OpState]]] = {}
        self.any_tag: list[tuple[Selector, _OpState]] = []

    def add(self, selector: Selector, state: _OpState) -> None:
        tags = selector.subject_tags
        if tags is None:
            self.any_tag.append((selector, state))
        else:
            for tag in tags:
                self.by_tag.setdefault(tag, []).append((selector, state))

    def candidates(self, tag: str) -> list[tuple[Selector, _OpState]]:
        found = self.by_tag.get(tag)
        if not self.any_tag:
            return found or []
        return (found or []) + self.any_tag


class Rewriter:
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
        self._collect: list[_Element] | None = None  # closes seen while an end tag is handled
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

    # -- setup -------------------------------------------------------------------------------

    def _build_states(self, operations: Sequence[Operation]) -> None:
        self._states: list[_OpState] = []
        self._start_index = _Index()
        self._end_index = _Index()
        self._item_index = _Index()
        self._truncates: list[_TruncateState] = []
        self._active_truncates = 0  # how many are in _Phase.ACTIVE
        self._content_fallbacks: list[_OpState] = []
        always_model = False
        for op in operations:
            state: _OpState
            if isinstance(op, Truncate):
                state = _TruncateState(op)
                self._truncates.append(state)
                self._start_index.add(compile_selector(op.container), state)
                self._item_index.add(compile_selector(op.items), state)
                # A cut must end exactly where a browser ends the container, and an ancestor's
                # end tag can end it (<section><div class=c>…</section>): the model follows
                # the whole document.
                always_model = True
            elif isinstance(op, InsertHTML):
                state = _OpState(op)
                target = compile_selector(op.target)
                if op.position.at_end_tag:
                    self._end_index.add(target, state)
                    # The light path finds end tags by name only.
                    always_model |= target.simple_tag is None
                else:
                    self._start_index.add(target, state)
                    always_model |= not _is_compound(target)
                if op.before_first_content_if_missing:
                    self._content_fallbacks.append(state)
            elif isinstance(op, RewriteAttributes | RemoveElement | TransformText):
                state = _OpState(op)
                target = compile_selector(op.target)
                self._start_index.add(target, state)
                always_model |= not _is_compound(target)
            else:  # pragma: no cover - guarded by the type checker
                raise TypeError(f"not a rewrite operation: {op!r}")
            self._states.append(state)
        self._always_model = always_model
        self._watch_words = bool(self._truncates)
        # Start tags with no candidate operation take a short path (see start_tag).
        starts, items, ends = self._start_index, self._item_index, self._end_index
        self._start_any = bool(starts.any_tag or items.any_tag)
        self._start_names = frozenset(starts.by_tag) | frozenset(items.by_tag)
        self._end_any = bool(ends.any_tag)
        self._end_names = frozenset(ends.by_tag)
        # The light path needs the tags operations act on, those that start foreign content
        # (the model takes over there) and plaintext; the tokenizer reads the raw text of
        # every other element itself.
        if starts.any_tag or ends.any_tag:
            self._light_wanted: frozenset[str] | None = None
        else:
            self._light_wanted = (
                frozenset(starts.by_tag)
                | frozenset(ends.by_tag)
                | frozenset(("svg", "math", "plaintext"))
            )
        self._light_only_with = _attribute_filter(starts, frozenset(ends.by_tag))
        # svg and math are wanted on the light path to follow foreign content; when no
        # operation names either, such an element that provably stays foreign (an icon, a
        # formula) passes whole, in C.
        self._whole_foreign = not {"svg", "math"} & (self._start_names | self._end_names)
        # Inside SVG/MathML (entered on the light path): what could end foreign content or
        # matter to an operation.
        self._foreign_wanted: frozenset[str] | None = (
            None
            if self._light_wanted is None
            else self._light_wanted | HTML_ELEMENTS | SPECIAL_SVG | SPECIAL_MATHML
        )

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

    # -- the tree model, on and off ------------------------------------------------------------

    def _make_element(self, name: str, ns: int, like: T.Node | None) -> _Element:
        element = _Element(like.raw if isinstance(like, _Element) else b"", name, False)
        if not isinstance(like, _Element):
            element._attrs = {}
        element.codec = self._codec
        element.ns = ns
        element.synthetic = True
        return element

    def _start_model(self, context: Sequence[_Element], *, mid_document: bool) -> None:
        """Run the tree model from here on. Mid-document the context is made up (html, body,
        then ``context``): what lies outside it can only make a browser close an element
        earlier than the model does, never later."""
        stack: list[_Element] = []
        mode = T.Mode.INITIAL
        self._model_base = -1  # from the start of the document: never leaves
        if mid_document:
            stack = [self._make_element("html", HTML, None), self._make_element("body", HTML, None)]
            self._model_base = len(stack)
            stack.extend(context)
            mode = T.Mode.IN_BODY
        model = self._model = TreeModel(
            self._make_element,
            self._closed_by_model,  # type: ignore[arg-type]
            max_depth=self._max_depth,
            stack=stack,  # type: ignore[arg-type]
            mode=mode,
        )
        if context:
            model.reset_insertion_mode()  # a cell is in a cell, a row in a row
        self._set_wanted(None)

    def _maybe_stop_model(self) -> None:
        model = self._model
        if model is not None and len(model.stack) <= self._model_base and not self._dropping:
            self._model = None
            self._update_wanted()

    def _update_wanted(self) -> None:
        if self._model is not None or self._content_fallbacks or self._capture is not None:
            self._set_wanted(None)
        else:
            self._set_wanted(self._light_wanted, self._light_only_with)

    def _set_wanted(
        self,
        names: frozenset[str] | None,
        only_with: dict[str, frozenset[str]] | None = None,
        *,
        foreign: bool = False,
    ) -> None:
        state = (names, foreign)
        if state != self._wanted_state:
            self._wanted_state = state
            self._tokenizer.set_wanted(
                names, foreign=foreign, only_with=only_with, whole_foreign=self._whole_foreign
            )

    def _update_model_wanted(self) -> None:
        """The model runs for foreign content met on the light path: while the current node is
        an SVG/MathML element (not an integration point) and nothing is being cut, removed or
        captured, the tokenizer skips SVG's own tags in C."""
        model = self._model
        if model is None or self._model_base <= 0:
            return
        stack = model.stack
        node = stack[-1] if stack else None
        if (
            node is not None
            and node.ns != HTML
            and self._foreign_wanted is not None
            and not T.is_integration_point(node)
            and not self._dropping
            and self._capture is None
            and not self._content_fallbacks
        ):
            self._set_wanted(self._foreign_wanted, self._light_only_with, foreign=True)
        else:
            self._set_wanted(None)

    @property
    def _stack(self) -> list[_Element]:
        model = self._model
        return model.stack if model is not None else []  # type: ignore[return-value]

    def _closed_by_model(self, element: _Element) -> None:
        if self._collect is not None:
            self._collect.append(element)
        else:
            self._after_implicit_close(element)

    def _model_limit(self, exc: ModelLimit) -> None:
        """The stack outgrew ``max_depth``: nothing the model says can be trusted any more."""
        busy = self._dropping or any(
            s.phase is _Phase.ACTIVE or s.phase is _Phase.CUTTING for s in self._truncates
        )
        if busy or self._always_model:
            raise RewriteError(RewriteErrorReason.MODEL_LIMIT, str(exc)) from exc
        self.report.warnings.append(f"{exc}; the rest is rewritten without the tree model")
        self._model = None
        self._update_wanted()

    # -- public API --------------------------------------------------------------------------

    @property
    def charset(self) -> CharsetDecision | None:
        return self._charset

    @property
    def settled(self) -> bool:
        """No truncation is still undecided: every container was cut or has ended, so the
        output so far is final. A caller serving a walled page holds output until then."""
        return all(s.phase is _Phase.CUTTING or s.phase is _Phase.DONE for s in self._truncates)

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
        if self._capture is not None:
            self._finish_capture()
        self._implicit_batch.clear()
        if self._model is not None:
            self._model.eof()
        self._insert_eof_fallbacks()
        self._check_required()
        return self._take_output()

    def rewrite(self, body: bytes) -> bytes:
        """Rewrite a whole body at once (``feed`` + ``close``)."""
        return self.feed(body) + self.close()

    def _take_output(self) -> bytes:
        out = self._out
        hold = self._hold_from
        if hold is None:
            data = b"".join(out)
            out.clear()
            return data
        if self._held_too_much():
            self._cut_at_fallback_now()
            return self._take_output()
        data = b"".join(out[:hold])
        del out[:hold]
        self._hold_from = 0
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
            else:
                model.characters(data)
        if self._dropping:
            return
        if self._active_truncates and not (model is not None and model.in_template):
            for state in self._truncates:
                if state.phase is _Phase.ACTIVE:
                    data = self._count_words(state, data)
                    if self._dropping:
                        return
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
        content = self._start_tag(tag)
        if self._model_base > 0 and self._model is not None:
            self._update_model_wanted()
        return content

    def _start_tag(self, tag: StartTag) -> ContentModel:
        # The tokenizer builds the class it was given (see __init__).
        element: _Element = tag  # type: ignore[assignment]
        self._bom_matched = None
        element.codec = self._codec
        name = element.name
        if self._watch_words and name not in INLINE_ELEMENTS:
            self._reset_word_boundaries()
        if self._implicit_batch:
            self._implicit_batch.clear()
        model = self._model
        if model is None and (name == "svg" or name == "math"):
            self._start_model((), mid_document=True)  # foreign content: the model knows it
            model = self._model
        if model is None:
            return self._light_start(element)
        try:
            outcome, content = model.start_tag(element)
        except ModelLimit as exc:
            self._model_limit(exc)
            return self._light_start(element)
        if outcome is Outcome.IGNORED:
            self._emit_visible(element.raw)
            return content
        stack: list[_Element] = model.stack  # type: ignore[assignment]
        void = outcome is Outcome.VOID
        if void:
            stack.append(element)  # matched as the current node, then gone
        if not self._dropping:
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
        self._bom_matched = None
        name = tag.name
        if self._watch_words and name not in INLINE_ELEMENTS:
            self._reset_word_boundaries()
        if self._implicit_batch:
            self._implicit_batch.clear()
        if self._capture is not None:
            self._finish_capture()
            self._update_wanted()
        model = self._model
        if model is not None and self._leaves_foreign_content(model, name):
            model = self._model
        if model is None:
            self._light_end(tag)
            return
        closed: list[_Element] = []
        self._collect = closed
        try:
            target: _Element | None = model.end_tag(name)  # type: ignore[assignment]
        finally:
            self._collect = None
        for element in closed:
            if element is not target:
                self._after_implicit_close(element)
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

    def _leaves_foreign_content(self, model: TreeModel, name: str) -> bool:
        """Foreign content entered on the light path, whose ancestors the model does not know:
        an end tag for no element open in it most likely closes one of them (<p><svg> … </p>),
        which ends the foreign content. Leaving it early is the safe mistake here (only
        consent markup is placed on this path, never a cut). True when the model stopped."""
        stack = model.stack
        if self._model_base <= 0 or stack[-1].ns == HTML or model.has_open(name):
            return False
        if name in _IGNORED_IN_FOREIGN:
            return False  # the model ignores it, as a browser does
        if any(node.name == name for node in stack[self._model_base :]):
            return False  # an SVG/MathML element of that name is open: the model places it
        while len(stack) > self._model_base and stack[-1].ns != HTML:
            model.pop()
        self._maybe_stop_model()
        return self._model is None

    def _light_end(self, tag: EndTag) -> None:
        if self._end_any or tag.name in self._end_names:
            before, after = self._end_insertions(tag.name, None)
            self._out.append(before + tag.raw + after if before or after else tag.raw)
        else:
            self._out.append(tag.raw)

    # -- closing elements ----------------------------------------------------------------------

    def _after_implicit_close(self, element: _Element) -> None:
        self._implicit_batch.append(element)
        if element is self._drop_root:
            kind = self._drop_kind
            self._end_drop()
            if kind is _DropKind.CUT:
                self._out.append(self._end_tag_bytes(element))
        self._element_closed(element)

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

    def _closers(self, container: _Element) -> bytes:
        """End tags for the elements open inside ``container``, innermost first.

        A cut inside a table open in the container cannot be made: a browser places later
        content of the table (foster parenting) *before* it, so text after the cut point in
        the bytes can come before it in the page. That fails closed.
        """
        stack = self._stack
        position = next(i for i in range(len(stack) - 1, -1, -1) if stack[i] is container)
        inside = stack[position + 1 :]
        if any(e.name == "table" and e.ns == HTML for e in inside):
            raise RewriteError(
                RewriteErrorReason.MODEL_LIMIT,
                "the cut point lies inside a table, whose later content a browser may place "
                "before it",
            )
        return b"".join(self._end_tag_bytes(e) for e in reversed(inside))

    def _in_template(self) -> bool:
        model = self._model
        return model is not None and model.in_template

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

    def _begin_drop(self, root: _Element, kind: _DropKind) -> None:
        self._drop_root = root
        self._drop_kind = kind
        self._dropping = True

    def _end_drop(self) -> None:
        if self._drop_kind is _DropKind.CUT:
            for state in self._truncates:
                if state.phase is _Phase.CUTTING and state.container is self._drop_root:
                    state.phase = _Phase.DONE
        self._drop_root = None
        self._dropping = False

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

    def _write_cut(self, state: _TruncateState, closers: bytes, *, discard_held: bool) -> None:
        """Close what is open inside the container, then the call to action, so that it stands
        in the container itself whatever the lead ended in (a table, a list, SVG). With
        ``discard_held`` the cut goes at the fallback point: what was held after it is dropped.
        """
        hold = self._hold_from
        self._hold_from = None
        if discard_held and hold is not None:
            del self._out[hold:]
        self._out.append(closers)
        self._out.append(state.snippet)
        state.done = True
        self.report.cuts += 1

    def _drop_rest_of(self, state: _TruncateState, container: _Element) -> None:
        state.phase = _Phase.CUTTING  # always from ACTIVE
        self._active_truncates -= 1
        self._begin_drop(container, _DropKind.CUT)

    def _release_hold(self) -> None:
        """The N-th item arrived after the fallback point: what was held goes out, unless it
        outgrew ``max_held_bytes`` (then the cut falls at the fallback point, as it would
        have when the limit was noticed between two chunks: the chunking must not matter)."""
        if self._held_too_much():
            self._cut_at_fallback_now()
        self._hold_from = None

    def _held_too_much(self) -> bool:
        hold = self._hold_from
        return hold is not None and sum(len(piece) for piece in self._out[hold:]) > self._max_held

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

    def _rewrite_attributes(
        self, state: _OpState, op: RewriteAttributes, element: _Element, raw: bytes
    ) -> bytes:
        state.matches += 1
        new_attrs = op.callback(element.name, dict(element.attrs))
        if new_attrs is None:
            return raw
        self.report.attribute_rewrites += 1
        return self._serialize_start_tag(element, new_attrs)

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
            self._hold_from = len(self._out)

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


def _attribute_filter(starts: _Index, end_names: frozenset[str]) -> dict[str, frozenset[str]]:
    """Tag names whose every start-tag selector needs an attribute, with those attributes:
    the light path then wakes only for ``<script data-consent>``, not for every script."""
    only_with: dict[str, frozenset[str]] = {}
    for tag, entries in starts.by_tag.items():
        needed = set()
        for selector, _state in entries:
            for alt in selector.alternatives:
                if alt.compounds[-1].tag == tag:
                    needed.add(_one_required_attribute(alt.compounds[-1]))
        if tag not in end_names and None not in needed:
            only_with[tag] = frozenset(name for name in needed if name is not None)
    return only_with


def _one_required_attribute(compound: Compound) -> str | None:
    """An attribute every element matching ``compound`` has, if there is one."""
    if compound.attrs:
        return compound.attrs[0].name
    if compound.ids:
        return "id"
    if compound.classes:
        return "class"
    return None


def _is_compound(selector: Selector) -> bool:
    """Whether the selector looks at the element alone (no ancestors)."""
    return all(len(alt.compounds) == 1 for alt in selector.alternatives)


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
