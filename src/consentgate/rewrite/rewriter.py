"""The streaming rewriter: tokens in, the same bytes out except where an operation applies."""

from __future__ import annotations

import codecs
import enum
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _html as H
from .charset import PRESCAN_BYTES, CharsetDecision, detect_charset
from .errors import RewriteError, RewriteErrorReason
from .operations import (
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    TransformText,
    Truncate,
)
from .selectors import Selector, compile_selector
from .tokenizer import ContentModel, EndTag, StartTag, Tokenizer

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

#: Start tags that may close open elements (see :meth:`Rewriter._implied_closes`); any other
#: start tag closes nothing unless the current element is ``head``.
_IMPLIED_CLOSE_TRIGGERS = (
    H.CLOSES_P
    | H.HEADINGS
    | frozenset(
        (
            "li", "dd", "dt", "option", "optgroup", "td", "th", "tr", "tbody", "thead",
            "tfoot", "caption", "colgroup", "table", "a", "nobr", "button",
        )
    )
)
_TABLE_SECTIONS = frozenset(("tbody", "thead", "tfoot", "caption", "colgroup"))
_P_SCOPE = H.SCOPE_BOUNDARIES | {"button"}
_DOCUMENT_ELEMENTS = frozenset(("html", "body", "head"))
_CONTENT_MODELS: dict[str, ContentModel] = {
    **{name: ContentModel.RAWTEXT for name in H.RAW_TEXT_ELEMENTS},
    H.PLAINTEXT: ContentModel.PLAINTEXT,
    H.SCRIPT: ContentModel.SCRIPT,
}
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
    """An open element: the start tag the tokenizer made (the rewriter has it build this class,
    so there is one object per tag), whether it is foreign, and lazily decoded attributes.

    ``foreign`` and ``codec`` are set by the rewriter before anything else reads the element;
    the decoded attributes and classes are only worked out when a selector asks.
    """

    __slots__ = ("_classes", "_decoded", "codec", "foreign")

    _classes: frozenset[str]
    _decoded: dict[str, str]
    codec: str
    foreign: bool

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
    ) -> None:
        self.report = RewriteReport()
        self._content_type = content_type
        self._max_text = max_text_bytes
        self._max_depth = max_depth
        self._tokenizer = Tokenizer(
            self, max_token_bytes=max_token_bytes, start_tag_type=_Element
        )
        self._out: list[bytes] = []
        self._stack: list[_Element] = []
        self._names: list[str] = []  # the names of ``_stack``, kept in step with it
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
        self._depth_warned = False
        self._implicit_batch: list[_Element] = []  # closed without end tags since last token
        self._build_states(operations)
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
        for op in operations:
            state: _OpState
            if isinstance(op, Truncate):
                state = _TruncateState(op)
                self._truncates.append(state)
                self._start_index.add(compile_selector(op.container), state)
                self._item_index.add(compile_selector(op.items), state)
            elif isinstance(op, InsertHTML):
                state = _OpState(op)
                index = self._end_index if op.position.at_end_tag else self._start_index
                index.add(compile_selector(op.target), state)
                if op.before_first_content_if_missing:
                    self._content_fallbacks.append(state)
            elif isinstance(op, RewriteAttributes | RemoveElement | TransformText):
                state = _OpState(op)
                self._start_index.add(compile_selector(op.target), state)
            else:  # pragma: no cover - guarded by the type checker
                raise TypeError(f"not a rewrite operation: {op!r}")
            self._states.append(state)
        self._watch_words = any(t.keep_words is not None for t in self._truncates)
        # Start tags with no candidate operation take a short path (see start_tag).
        starts, items, ends = self._start_index, self._item_index, self._end_index
        self._start_any = bool(starts.any_tag or items.any_tag)
        self._start_names = frozenset(starts.by_tag) | frozenset(items.by_tag)
        self._end_any = bool(ends.any_tag)
        self._end_names = frozenset(ends.by_tag)

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
        while self._stack:
            self._pop_implicit()
        self._insert_eof_fallbacks()
        self._check_required()
        return self._take_output()

    def rewrite(self, body: bytes) -> bytes:
        """Rewrite a whole body at once (``feed`` + ``close``)."""
        return self.feed(body) + self.close()

    def _take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- token handlers (called by the tokenizer) ------------------------------------------------

    def text(self, data: bytes) -> None:
        if self._dropping:
            return
        if self._watch_words:
            for state in self._truncates:
                if state.phase is _Phase.ACTIVE and state.keep_words is not None:
                    data = self._count_words(state, data)
                    if self._dropping:
                        return
        self._out.append(data)

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
        if not self._dropping:
            self._out.append(data)

    def in_foreign_content(self) -> bool:
        return bool(self._stack) and self._stack[-1].foreign

    def start_tag(self, tag: StartTag) -> ContentModel:
        name = tag.name
        if self._watch_words:
            self._reset_word_boundaries()
        if self._implicit_batch:
            self._implicit_batch.clear()
        stack = self._stack
        top = stack[-1] if stack else None
        if top is not None and top.foreign and top.name not in H.INTEGRATION_POINTS:
            foreign = self._prepare_for_start_tag(tag)
        else:
            # What _prepare_for_start_tag does outside foreign content, minus the calls that
            # cannot close anything.
            if name in _IMPLIED_CLOSE_TRIGGERS or (top is not None and top.name == "head"):
                self._implied_closes(name)
            foreign = name in H.FOREIGN_ROOTS
        model = ContentModel.DATA if foreign else _CONTENT_MODELS.get(name, ContentModel.DATA)
        if name in _DOCUMENT_ELEMENTS and self._already_open(name):
            self._emit_visible(tag.raw)  # browsers merge such duplicates into the first one
            return model
        if len(stack) >= self._max_depth:
            self._warn_depth()
            self._emit_visible(tag.raw)
            return model
        # The tokenizer builds the class it was given (see __init__).
        element: _Element = tag  # type: ignore[assignment]
        element.foreign = foreign
        element.codec = self._codec
        stack.append(element)
        self._names.append(name)
        if not self._dropping:
            if self._content_fallbacks and name not in ("html", "head"):
                self._insert_content_fallbacks()
            if self._start_any or name in self._start_names:
                self._apply_start_ops(element, model)
            else:
                self._out.append(tag.raw)  # no operation can match: the bytes go through
        if (tag.self_closing and foreign) or (not foreign and name in H.VOID_ELEMENTS):
            stack.pop()
            self._names.pop()
            if self._active_truncates:
                self._element_closed(element)
        return model

    def end_tag(self, tag: EndTag) -> None:
        if self._watch_words:
            self._reset_word_boundaries()
        if self._implicit_batch:
            self._implicit_batch.clear()
        if self._capture is not None:
            self._finish_capture()
        name = tag.name
        stack = self._stack
        names = self._names
        if names and names[-1] == name and name != "body" and name != "html":
            # The usual case: the end tag closes the current element (what _find_end_target
            # returns first; nothing is open above it, so nothing else closes).
            if self._dropping or self._end_any or name in self._end_names:
                self._close_with_token(tag, len(stack) - 1, pop=True)
            else:  # what _close_with_token does when nothing is dropped or inserted
                element = stack.pop()
                names.pop()
                self._out.append(tag.raw)
                if self._active_truncates:
                    self._element_closed(element)
            return
        if name in ("body", "html"):
            # These do not close anything in a browser (later content still lands in body), but
            # whatever is still open inside body is over as far as we are concerned.
            keep = self._last_index("body")
            if keep is None:
                keep = self._last_index("html")
            while stack and (keep is None or len(stack) - 1 > keep):
                self._pop_implicit()
            target = keep if keep is not None and stack[keep].name == name else None
            self._close_with_token(tag, target, pop=False)
            return
        index = self._find_end_target(name)
        if index is None:
            self._close_with_token(tag, None, pop=False)
            return
        if name in H.FORMATTING_ELEMENTS and any(
            el.name in H.SPECIAL_ELEMENTS and not el.foreign for el in stack[index + 1 :]
        ):
            # Mis-nested formatting (<b><div></b>): browsers keep the block open and end the
            # formatting element only; approximate the adoption agency by removing it in place.
            self._remove_in_place(index)
            self._close_with_token(tag, None, pop=False)
            return
        while len(stack) - 1 > index:
            self._pop_implicit()
        self._close_with_token(tag, index, pop=True)

    # -- tree-construction approximations ----------------------------------------------------------

    def _prepare_for_start_tag(self, tag: StartTag) -> bool:
        """Apply the implied end tags a browser would; return whether the new element is
        foreign (SVG/MathML)."""
        name = tag.name
        stack = self._stack
        if stack and stack[-1].foreign and stack[-1].name not in H.INTEGRATION_POINTS:
            if name in H.FOREIGN_BREAKOUT or (
                name == "font" and any(a in tag.raw_attrs for a in (b"color", b"face", b"size"))
            ):
                while stack and stack[-1].foreign:
                    self._pop_implicit()
            else:
                return True
        self._implied_closes(name)
        return name in H.FOREIGN_ROOTS

    def _implied_closes(self, name: str) -> None:
        # The membership tests on ``names`` (in C) skip scans that cannot find anything.
        names = self._names
        if names and names[-1] == "head" and name not in H.HEAD_CONTENT and name not in (
            "html",
            "head",
        ):
            self._pop_implicit()
        if name == "li":
            if "li" in names:
                self._close_list_item(("li",))
        elif name in ("dd", "dt") and ("dd" in names or "dt" in names):
            self._close_list_item(("dd", "dt"))
        if name in H.CLOSES_P and "p" in names:
            self._close_p()
        if name in H.HEADINGS:
            if names and names[-1] in H.HEADINGS:
                self._pop_implicit()
        elif name == "option":
            self._pop_if_top("option")
        elif name == "optgroup":
            self._pop_if_top("option")
            self._pop_if_top("optgroup")
        elif name in ("td", "th"):
            if "td" in names or "th" in names:
                self._close_nearest(("td", "th"), ("tr", "table", "html", "template"))
        elif name == "tr":
            if "tr" in names or "td" in names or "th" in names:
                self._close_nearest(
                    ("tr", "td", "th"), ("tbody", "thead", "tfoot", "table", "html", "template")
                )
        elif name in _TABLE_SECTIONS:
            if "table" in names:
                table = self._nearest(("table",), ("html", "template"))
                if table is not None:
                    while len(names) - 1 > table:
                        self._pop_implicit()
        elif name == "table":
            if "table" in names:
                self._close_nearest(("table",), ("td", "th", "caption", "html", "template"))
        elif name in ("a", "nobr", "button") and name in names:
            self._close_nearest((name,), H.SCOPE_BOUNDARIES)

    def _nearest(
        self, wanted: tuple[str, ...], stop: tuple[str, ...] | frozenset[str]
    ) -> int | None:
        names = self._names
        for i in range(len(names) - 1, -1, -1):
            node = names[i]
            if node in wanted:
                return i
            if node in stop:
                return None
        return None

    def _close_nearest(
        self, wanted: tuple[str, ...], stop: tuple[str, ...] | frozenset[str]
    ) -> None:
        index = self._nearest(wanted, stop)
        if index is not None:
            while len(self._stack) > index:
                self._pop_implicit()

    def _close_p(self) -> None:
        self._close_nearest(("p",), _P_SCOPE)

    def _close_list_item(self, wanted: tuple[str, ...]) -> None:
        names = self._names
        for i in range(len(names) - 1, -1, -1):
            node = names[i]
            if node in wanted:
                while len(names) > i:
                    self._pop_implicit()
                return
            if node in H.SPECIAL_ELEMENTS and node not in ("address", "div", "p"):
                return

    def _pop_if_top(self, name: str) -> None:
        if self._names and self._names[-1] == name:
            self._pop_implicit()

    def _already_open(self, name: str) -> bool:
        names = self._names
        if name == "head":
            return "head" in names or "body" in names
        return name in names

    def _last_index(self, name: str) -> int | None:
        names = self._names
        if name not in names:
            return None
        for i in range(len(names) - 1, -1, -1):
            if names[i] == name:
                return i
        return None  # pragma: no cover - found above

    def _find_end_target(self, name: str) -> int | None:
        """The open element an end tag closes, or None when a browser would ignore it."""
        stack = self._stack
        if name not in self._names:
            return None  # the loop below only ever returns an index of an element so named
        table_part = name in H.TABLE_PARTS
        plain = name not in H.SPECIAL_ELEMENTS and name not in H.FORMATTING_ELEMENTS
        for i in range(len(stack) - 1, -1, -1):
            element = stack[i]
            node = element.name
            if node == name:
                return i
            if element.foreign:
                continue
            if table_part:
                if node in H.TABLE_SCOPE_BOUNDARIES:
                    return None
            elif node in H.SCOPE_BOUNDARIES or (plain and node in H.SPECIAL_ELEMENTS):
                return None
        return None

    def _warn_depth(self) -> None:
        if not self._depth_warned:
            self._depth_warned = True
            self.report.warnings.append(
                f"nesting deeper than {self._max_depth} elements; deeper elements are not tracked"
            )

    # -- closing elements ----------------------------------------------------------------------

    def _pop_implicit(self) -> None:
        """Close the current element without an end tag of its own in the input."""
        element = self._stack.pop()
        self._names.pop()
        self._after_implicit_close(element)

    def _remove_in_place(self, index: int) -> None:
        element = self._stack.pop(index)
        del self._names[index]
        self._after_implicit_close(element)

    def _after_implicit_close(self, element: _Element) -> None:
        self._implicit_batch.append(element)
        if element is self._drop_root:
            kind = self._drop_kind
            self._end_drop()
            if kind is _DropKind.CUT:
                self._out.append(self._end_tag_bytes(element))
        self._element_closed(element)

    def _close_with_token(self, tag: EndTag, index: int | None, *, pop: bool) -> None:
        """Emit an end tag token (unless dropped), with end-tag insertions around it."""
        stack = self._stack
        element = stack[index] if index is not None else None
        ends_drop = pop and element is not None and element is self._drop_root
        if ends_drop and self._drop_kind is _DropKind.REMOVE:
            stack.pop()
            self._names.pop()
            self._end_drop()
            self._element_closed(self._drop_root_element(element))
            return
        visible = not self._dropping or ends_drop
        before = after = b""
        if visible:
            before, after = self._end_insertions(tag.name, index)
        if pop:
            stack.pop()
            self._names.pop()
        if ends_drop:
            self._end_drop()
        if visible:
            self._out.append(before + tag.raw + after if before or after else tag.raw)
        if pop and element is not None:
            self._element_closed(element)

    def _element_closed(self, element: _Element) -> None:
        if not self._active_truncates:
            return
        for state in self._truncates:
            if state.phase is not _Phase.ACTIVE:
                continue
            if element is state.container:
                state.phase = _Phase.DONE  # ended before the limit: nothing to cut
                self._active_truncates -= 1
            elif element is state.nth_item:
                if element in self._implicit_batch:
                    # Closed by a later tag (<p>1<p>2): the input has no end tags for it and
                    # what was open inside it, so the kept part gets them here.
                    self._out.extend(self._end_tag_bytes(e) for e in self._implicit_batch)
                self._start_cut(state)

    def _end_tag_bytes(self, element: _Element) -> bytes:
        return b"</" + element.name.encode("ascii", "ignore") + b">"

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
        container = state.container
        if container is None:
            raise RuntimeError("cut started outside its container")
        out = self._out
        out.append(state.snippet)
        stack = self._stack
        position = next(i for i in range(len(stack) - 1, -1, -1) if stack[i] is container)
        for element in reversed(stack[position + 1 :]):
            out.append(self._end_tag_bytes(element))
        state.phase = _Phase.CUTTING  # always from ACTIVE
        self._active_truncates -= 1
        state.done = True
        self.report.cuts += 1
        self._begin_drop(container, _DropKind.CUT)

    # -- operations on start tags -------------------------------------------------------------

    def _apply_start_ops(self, element: _Element, model: ContentModel) -> None:
        stack = self._stack
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
                    not element.self_closing if element.foreign else name not in H.VOID_ELEMENTS
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
                and selector.matches(stack)
            ):
                state.items_seen += 1
                if state.items_seen == state.keep_items:
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
        if state.keep_items == 0:
            self._start_cut(state)

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
        if self._watch_words:
            for state in self._truncates:
                state.in_word = False

    def _count_words(self, state: _TruncateState, data: bytes) -> bytes:
        """Count words in ``data``; when the limit is passed, cut right before the next word and
        return only the part that stays."""
        limit = state.keep_words
        if limit is None:
            raise RuntimeError("word counting for a truncation that keeps items")
        for match in _WORD.finditer(data):
            if match.start() == 0 and state.in_word:
                continue  # the word began in the previous piece of text
            state.words_seen += 1
            if state.words_seen > limit:
                kept = data[: match.start()]
                if kept:
                    self._out.append(kept)
                self._start_cut(state)
                return b""
        state.in_word = bool(data) and data[-1:] not in (b"\t", b"\n", b"\f", b"\r", b" ")
        return data

    # -- insertions on end tags and fallbacks -----------------------------------------------------

    def _end_insertions(self, name: str, index: int | None) -> tuple[bytes, bytes]:
        candidates = self._end_index.candidates(name)
        if not candidates:
            return b"", b""
        before: list[bytes] = []
        after: list[bytes] = []
        for selector, state in candidates:
            op = state.op
            if not isinstance(op, InsertHTML):
                raise RuntimeError("the end-tag index holds only insertions")
            if state.done and op.once:
                continue
            if index is not None:
                hit = selector.matches(self._stack, index)
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
