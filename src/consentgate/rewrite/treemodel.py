"""The stack of open elements as the WHATWG tree-construction algorithm keeps it.

The rewriter needs to know, for every token, which elements are open: an operation's
selector is matched against them, and a cut or a removal lasts exactly as long as its
element stays open. Getting that wrong in the "closes too early" direction sends text a
browser places inside the article to a walled reader, so this module follows the parsing
algorithm of the HTML standard (§13.2.6, "tree construction") for everything that changes
the stack: insertion modes, implied end tags, the scopes, the list of active formatting
elements with the adoption agency algorithm and reconstruction, foreign content and its
integration points, tables, select, template, ``</body>``/``</html>`` (which close nothing).

It builds no tree. Where an element is *placed* (foster parenting, the adoption agency
moving nodes) does not change which bytes lie between an element's start and the token
that pops it, so only the stack and the list of active formatting elements are kept.

Two deliberate departures, both in the direction of keeping an element open longer (a
rewriter that ends a cut late drops a little too much; one that ends it early leaks):

* ``select``: browsers now parse its content with the "in body" rules (the 2025
  customizable-select change); older parsers ignored most tags there. Start tags follow the
  new rules (so paragraphs inside count as paragraphs) and ``select`` is a scope boundary
  for end tags, as the old rules effectively made it (a stray ``</div>`` inside a select
  closes nothing outside it).
* Quirks mode (``<table>`` does not close an open ``<p>``) is assumed unless the doctype is
  certainly a no-quirks one.

The model is fed by the rewriter; it calls ``on_close(element)`` for every element that
leaves the stack (popped, or removed from the middle by the adoption agency) and
``make(name, ns, like)`` to create the elements the algorithm inserts without a start tag
of their own (an implied ``<tbody>``, a reconstructed ``<b>``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from ._html import (
    FOREIGN_BREAKOUT,
    FORMATTING_ELEMENTS,
    HEADINGS,
    SPECIAL_ELEMENTS,
    SPECIAL_MATHML,
    SPECIAL_SVG,
    VOID_ELEMENTS,
)
from ._html import names as _names
from .tokenizer import ContentModel

HTML = 0
SVG = 1
MATHML = 2

_WS = b"\t\n\f\r "


class Node(Protocol):
    """What the model needs of an element (the rewriter's element class provides it)."""

    name: str
    ns: int
    open: bool
    self_closing: bool

    def get_attr(self, name: str) -> str | None: ...

    @property
    def raw_attrs(self) -> dict[bytes, bytes]: ...


class StartTagToken(Protocol):
    name: str
    self_closing: bool

    def get_attr(self, name: str) -> str | None: ...


class Mode(enum.Enum):
    INITIAL = enum.auto()
    BEFORE_HTML = enum.auto()
    BEFORE_HEAD = enum.auto()
    IN_HEAD = enum.auto()
    AFTER_HEAD = enum.auto()
    IN_BODY = enum.auto()
    TEXT = enum.auto()
    IN_TABLE = enum.auto()
    IN_TABLE_TEXT = enum.auto()
    IN_CAPTION = enum.auto()
    IN_COLUMN_GROUP = enum.auto()
    IN_TABLE_BODY = enum.auto()
    IN_ROW = enum.auto()
    IN_CELL = enum.auto()
    IN_TEMPLATE = enum.auto()
    AFTER_BODY = enum.auto()
    IN_FRAMESET = enum.auto()
    AFTER_FRAMESET = enum.auto()
    AFTER_AFTER_BODY = enum.auto()
    AFTER_AFTER_FRAMESET = enum.auto()


class Outcome(enum.Enum):
    """What became of a start tag token."""

    #: An element for the token was pushed and stays open.
    OPEN = enum.auto()
    #: An element was inserted and popped at once (void, self-closing foreign element).
    VOID = enum.auto()
    #: The token created no element (ignored, merged into ``<html>``/``<body>``).
    IGNORED = enum.auto()


# -- what the algorithm's steps test (HTML namespace unless said) -------------------------------

_DEFAULT_SCOPE = _names("applet caption html table td th marquee object template select")
_TABLE_SCOPE = _names("html table template")
_IMPLIED_END = _names("dd dt li optgroup option p rb rp rt rtc")
_IMPLIED_END_THOROUGH = _IMPLIED_END | _names("caption colgroup tbody td tfoot th thead tr")
_CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer header hgroup main menu nav ol p search section summary ul"
)
_BLOCK_END = _names(
    "address article aside blockquote button center details dialog dir div dl fieldset "
    "figcaption figure footer header hgroup listing main menu nav ol pre search section summary "
    "ul"
)
_HEAD_RULES = _names("base basefont bgsound link meta noframes script style template title")
_TABLE_SECTIONS = _names("tbody tfoot thead")
_CELLS = _names("td th")
_IN_TABLE_IGNORED_ENDS = _names("body caption col colgroup html tbody td tfoot th thead tr")
_TABLE_TEXT_TARGETS = _names("table tbody template tfoot thead tr")
_RAW_TEXT = _names("style xmp iframe noembed noframes noscript")

#: How the tokenizer reads the content of HTML elements (scripting enabled: noscript is raw).
CONTENT_MODELS = {
    "script": ContentModel.SCRIPT,
    "plaintext": ContentModel.PLAINTEXT,
    "title": ContentModel.RAWTEXT,
    "textarea": ContentModel.RAWTEXT,
    **{name: ContentModel.RAWTEXT for name in _RAW_TEXT},
}

_BUTTON = frozenset(("button",))
_LIST_ITEM = frozenset(("ol", "ul"))
_TABLE_CONTEXT = _names("table template html")
_TABLE_BODY_CONTEXT = _names("tbody tfoot thead template html")
_ROW_CONTEXT = _names("tr template html")
_CAPTION_ENDERS = _names("caption col colgroup tbody td tfoot th thead tr")
_TABLE_BODY_ENDERS = _names("caption col colgroup tbody tfoot thead")
_ROW_ENDERS = _names("caption col colgroup tbody tfoot thead tr")
_CELL_ENDERS = _names("caption col colgroup tbody td tfoot th thead tr")
_BODY_IGNORED_STARTS = _names("caption col colgroup frame head tbody td tfoot th thead tr")
_TEMPLATE_SWITCH = {
    "caption": Mode.IN_TABLE,
    "colgroup": Mode.IN_TABLE,
    "tbody": Mode.IN_TABLE,
    "tfoot": Mode.IN_TABLE,
    "thead": Mode.IN_TABLE,
    "col": Mode.IN_COLUMN_GROUP,
    "tr": Mode.IN_TABLE_BODY,
    "td": Mode.IN_ROW,
    "th": Mode.IN_ROW,
}

_MARKER = None  # a scope marker in the list of active formatting elements

#: ``doctype`` prefixes of public identifiers are not looked at: anything but the plain
#: HTML5 doctype is taken as quirks mode (the direction that keeps a ``<p>`` open longer).
_NO_QUIRKS_SYSTEM_IDS = frozenset(("", "about:legacy-compat"))


class ModelLimit(Exception):
    """The stack grew past its bound; the model can no longer say what is open."""


class TreeModel:
    """Feed tokens in document order; keeps ``stack`` as a browser would."""

    def __init__(
        self,
        make: Callable[[str, int, Node | None], Node],
        on_close: Callable[[Node], None],
        *,
        max_depth: int = 1024,
        stack: list[Node] | None = None,
        mode: Mode = Mode.INITIAL,
    ) -> None:
        self._make = make
        self._on_close = on_close
        self.max_depth = max_depth
        self.stack: list[Node] = []
        self._open_count: dict[str, int] = {}
        self.afe: list[Node | None] = []
        self.mode = mode
        self._original_mode = Mode.IN_BODY
        self._template_modes: list[Mode] = []
        self._head: Node | None = None
        self._form: Node | None = None
        self._frameset_ok = True
        self.quirks = True
        self._table_text_nonspace = False
        for node in stack or ():
            self._push(node)
            if node.name == "head" and node.ns == HTML:
                self._head = node

    # -- stack primitives ------------------------------------------------------------------

    def _push(self, node: Node) -> None:
        self._insert_at(len(self.stack), node)

    def _insert_at(self, index: int, node: Node) -> None:
        if len(self.stack) >= self.max_depth:
            raise ModelLimit(f"nesting deeper than {self.max_depth} elements")
        self.stack.insert(index, node)
        self._track(node)

    def _track(self, node: Node) -> None:
        """``node`` is on the stack now: its flag and the per-name count say so."""
        node.open = True
        if node.ns == HTML:
            counts = self._open_count
            counts[node.name] = counts.get(node.name, 0) + 1

    def _untrack(self, node: Node) -> None:
        node.open = False
        if node.ns == HTML:
            self._open_count[node.name] -= 1

    def _forget(self, node: Node) -> None:
        """``node`` left the stack: closed, as far as the rewriter is concerned."""
        self._untrack(node)
        self._on_close(node)

    def pop(self) -> Node:
        node = self.stack.pop()
        self._forget(node)
        return node

    def _remove(self, node: Node) -> None:
        index = self._index(node)
        del self.stack[index]
        self._forget(node)

    def _index(self, node: Node) -> int:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is node:
                return i
        raise ValueError("element not on the stack")

    def _has(self, name: str) -> bool:
        return self._open_count.get(name, 0) > 0

    def has_open(self, name: str) -> bool:
        """Whether an HTML element of this name is open."""
        return self._open_count.get(name, 0) > 0

    @property
    def in_template(self) -> bool:
        """Inside template contents: inert, never rendered, in no paragraph count."""
        return self._open_count.get("template", 0) > 0

    @property
    def current(self) -> Node | None:
        return self.stack[-1] if self.stack else None

    def _current_is(self, *names: str) -> bool:
        node = self.current
        return node is not None and node.ns == HTML and node.name in names

    def _pop_until(self, *names: str) -> None:
        """Pop elements until an HTML element with one of ``names`` has been popped."""
        while self.stack:
            node = self.pop()
            if node.ns == HTML and node.name in names:
                return

    def _pop_until_node(self, target: Node) -> None:
        while self.stack:
            if self.pop() is target:
                return

    def _insert(self, token: Node) -> None:
        self._push(token)

    def _synthetic(self, name: str, like: Node | None = None) -> Node:
        node = self._make(name, HTML if like is None else like.ns, like)
        self._push(node)
        return node

    # -- scopes ----------------------------------------------------------------------------

    def _in_scope(self, name: str, extra: frozenset[str] = frozenset()) -> bool:
        if not self._has(name):
            return False
        for node in reversed(self.stack):
            if node.ns == HTML:
                if node.name == name:
                    return True
                if node.name in _DEFAULT_SCOPE or node.name in extra:
                    return False
            elif _is_scope_boundary_foreign(node):
                return False
        return False

    def _in_button_scope(self, name: str) -> bool:
        return self._in_scope(name, _BUTTON)

    def _in_list_item_scope(self, name: str) -> bool:
        return self._in_scope(name, _LIST_ITEM)

    def _in_table_scope(self, name: str) -> bool:
        if not self._has(name):
            return False
        for node in reversed(self.stack):
            if node.ns != HTML:
                continue
            if node.name == name:
                return True
            if node.name in _TABLE_SCOPE:
                return False
        return False

    def _any_in_scope(self, names: frozenset[str], *, table: bool = False) -> bool:
        if not any(self._has(name) for name in names):
            return False
        for node in reversed(self.stack):
            if node.ns == HTML:
                if node.name in names:
                    return True
                if node.name in (_TABLE_SCOPE if table else _DEFAULT_SCOPE):
                    return False
            elif not table and _is_scope_boundary_foreign(node):
                return False
        return False

    # -- shared steps ----------------------------------------------------------------------

    def _implied_end_tags(self, exclude: str | None = None, *, thorough: bool = False) -> None:
        names = _IMPLIED_END_THOROUGH if thorough else _IMPLIED_END
        while True:
            node = self.current
            if node is None or node.ns != HTML or node.name not in names or node.name == exclude:
                return
            self.pop()

    def _close_p(self) -> None:
        self._implied_end_tags("p")
        self._pop_until("p")

    def _close_p_if_in_button_scope(self) -> None:
        if self._has("p") and self._in_button_scope("p"):
            self._close_p()

    def _reconstruct_formatting(self) -> None:
        afe = self.afe
        if not afe:
            return
        last = afe[-1]
        if last is _MARKER or last.open:
            return
        i = len(afe) - 1
        while i > 0:
            entry = afe[i - 1]
            if entry is _MARKER or entry.open:
                break
            i -= 1
        for j in range(i, len(afe)):
            entry = afe[j]
            if entry is None:  # pragma: no cover - markers stop the rewind above
                continue
            afe[j] = self._synthetic(entry.name, entry)

    def _clear_formatting_to_marker(self) -> None:
        afe = self.afe
        while afe:
            if afe.pop() is _MARKER:
                return

    def _push_formatting(self, node: Node) -> None:
        # Noah's Ark: at most three equal entries after the last marker.
        afe = self.afe
        same = []
        for i in range(len(afe) - 1, -1, -1):
            entry = afe[i]
            if entry is _MARKER:
                break
            if (
                entry.name == node.name
                and entry.ns == node.ns
                and entry.raw_attrs == node.raw_attrs
            ):
                same.append(i)
        if len(same) >= 3:
            del afe[same[-1]]
        afe.append(node)

    def reset_insertion_mode(self) -> None:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            node = stack[i]
            last = i == 0
            name = node.name if node.ns == HTML else ""
            if name in _CELLS and not last:
                self.mode = Mode.IN_CELL
            elif name == "tr":
                self.mode = Mode.IN_ROW
            elif name in _TABLE_SECTIONS:
                self.mode = Mode.IN_TABLE_BODY
            elif name == "caption":
                self.mode = Mode.IN_CAPTION
            elif name == "colgroup":
                self.mode = Mode.IN_COLUMN_GROUP
            elif name == "table":
                self.mode = Mode.IN_TABLE
            elif name == "template":
                self.mode = self._template_modes[-1] if self._template_modes else Mode.IN_BODY
            elif name == "head" and not last:
                self.mode = Mode.IN_HEAD
            elif name == "body":
                self.mode = Mode.IN_BODY
            elif name == "frameset":
                self.mode = Mode.IN_FRAMESET
            elif name == "html":
                self.mode = Mode.BEFORE_HEAD if self._head is None else Mode.AFTER_HEAD
            elif last:
                self.mode = Mode.IN_BODY
            else:
                continue
            return
        self.mode = Mode.IN_BODY

    # -- the dispatcher ----------------------------------------------------------------------

    def _html_content(self, token_name: str | None, *, start: bool) -> bool:
        """Whether a token goes to the insertion mode (True) or the foreign-content rules."""
        node = self.current
        if node is None or node.ns == HTML:
            return True
        if token_name is None:  # characters
            return _mathml_text_point(node) or _html_integration_point(node)
        if start:
            if _mathml_text_point(node) and token_name not in ("mglyph", "malignmark"):
                return True
            if node.ns == MATHML and node.name == "annotation-xml" and token_name == "svg":  # noqa: S105
                return True
            return _html_integration_point(node)
        return False

    def start_tag(self, token: Node) -> tuple[Outcome, ContentModel]:
        """Process a start tag whose element (made by the tokenizer) is ``token``."""
        if self.mode is Mode.IN_TABLE_TEXT:
            self._flush_table_text()
        if self._html_content(token.name, start=True):
            token.ns = HTML
            return self._start(token)
        return self._foreign_start(token)

    def end_tag(self, name: str) -> Node | None:
        """Process an end tag; return the element it ends, if any (for ``</body>`` and
        ``</html>``, which pop nothing, the body or html element they stand for)."""
        if self.mode is Mode.IN_TABLE_TEXT:
            self._flush_table_text()
        if self.mode is Mode.TEXT:
            node = self.pop()
            self.mode = self._original_mode
            return node
        if self._html_content(name, start=False):
            return self._end(name)
        return self._foreign_end(name)

    def characters(self, data: bytes) -> None:
        """A run of text; only whether it holds anything but whitespace matters here."""
        mode = self.mode
        if mode is Mode.IN_BODY or mode is Mode.IN_CELL or mode is Mode.IN_CAPTION:
            if self.afe:
                self._reconstruct_formatting()
            if self._frameset_ok and data.strip(_WS) and data.strip(_WS + b"\x00"):
                self._frameset_ok = False
            return
        if mode is Mode.TEXT:
            return
        if not self._html_content(None, start=False):
            if data.strip(_WS):
                self._frameset_ok = False
            return
        if mode is Mode.IN_TABLE_TEXT:
            if data.strip(_WS):
                self._table_text_nonspace = True
            return
        if mode in (Mode.IN_TABLE, Mode.IN_TABLE_BODY, Mode.IN_ROW):
            node = self.current
            if node is not None and node.ns == HTML and node.name in _TABLE_TEXT_TARGETS:
                self._original_mode = mode
                self.mode = Mode.IN_TABLE_TEXT
                self._table_text_nonspace = bool(data.strip(_WS))
                return
            self._body_characters(data)
            return
        stripped = data.lstrip(_WS)
        if not stripped:
            if mode in (Mode.AFTER_BODY, Mode.AFTER_AFTER_BODY):
                self._body_characters(data)
            return
        if mode is Mode.IN_TEMPLATE:
            self._body_characters(data)
            return
        if mode is Mode.IN_COLUMN_GROUP:
            if self._current_is("colgroup"):
                self.pop()
                self.mode = Mode.IN_TABLE
                self.characters(stripped)
            return
        if mode in (Mode.IN_FRAMESET, Mode.AFTER_FRAMESET, Mode.AFTER_AFTER_FRAMESET):
            return
        if mode in (Mode.AFTER_BODY, Mode.AFTER_AFTER_BODY):
            self.mode = Mode.IN_BODY
            self._body_characters(stripped)
            return
        # initial, before html, before head, in head, after head: anything else.
        self._anything_else_before_body()
        self.characters(stripped)

    def _body_characters(self, data: bytes) -> None:
        if self.afe:
            self._reconstruct_formatting()
        if data.strip(_WS):
            self._frameset_ok = False

    def _flush_table_text(self) -> None:
        self.mode = self._original_mode
        if self._table_text_nonspace:
            self._table_text_nonspace = False
            self._body_characters(b"x")  # foster-parented: reconstruct, as in body

    def comment(self) -> None:
        if self.mode is Mode.IN_TABLE_TEXT:
            self._flush_table_text()

    def doctype(self, name: str, public_id: str | None, system_id: str | None) -> None:
        if self.mode is Mode.IN_TABLE_TEXT:
            self._flush_table_text()
        if self.mode is Mode.INITIAL:
            self.quirks = not (
                name == "html"
                and public_id is None
                and (system_id or "").lower() in _NO_QUIRKS_SYSTEM_IDS
            )
            self.mode = Mode.BEFORE_HTML

    def eof(self) -> None:
        """End of input: everything still open is closed."""
        while self.stack:
            self.pop()

    # -- before the body ---------------------------------------------------------------------

    def _anything_else_before_body(self) -> None:
        """Move on from the modes before ``<body>`` as "anything else" does, once."""
        mode = self.mode
        if mode is Mode.INITIAL:
            self.mode = Mode.BEFORE_HTML
        elif mode is Mode.BEFORE_HTML:
            self._synthetic("html")
            self.mode = Mode.BEFORE_HEAD
        elif mode is Mode.BEFORE_HEAD:
            self._head = self._synthetic("head")
            self.mode = Mode.IN_HEAD
        elif mode is Mode.IN_HEAD:
            self.pop()
            self.mode = Mode.AFTER_HEAD
        elif mode is Mode.AFTER_HEAD:
            self._synthetic("body")
            self.mode = Mode.IN_BODY
        else:  # pragma: no cover - only called from the modes above
            raise RuntimeError(f"not a mode before the body: {mode}")

    def _start(self, token: Node) -> tuple[Outcome, ContentModel]:
        name = token.name
        while True:
            mode = self.mode
            if mode is Mode.IN_BODY:
                return self._body_start(token)
            if mode in (Mode.INITIAL, Mode.BEFORE_HTML):
                if mode is Mode.BEFORE_HTML and name == "html":
                    self._insert(token)
                    self.mode = Mode.BEFORE_HEAD
                    return Outcome.OPEN, ContentModel.DATA
                self._anything_else_before_body()
                continue
            if mode is Mode.BEFORE_HEAD:
                if name == "html":
                    return self._body_start(token)
                if name == "head":
                    self._insert(token)
                    self._head = token
                    self.mode = Mode.IN_HEAD
                    return Outcome.OPEN, ContentModel.DATA
                self._anything_else_before_body()
                continue
            if mode is Mode.IN_HEAD:
                if name == "html":
                    return self._body_start(token)
                if name in _HEAD_RULES or name == "noscript":
                    return self._head_start(token)
                if name == "head":
                    return Outcome.IGNORED, ContentModel.DATA
                self._anything_else_before_body()
                continue
            if mode is Mode.AFTER_HEAD:
                if name == "html":
                    return self._body_start(token)
                if name == "body":
                    self._insert(token)
                    self._frameset_ok = False
                    self.mode = Mode.IN_BODY
                    return Outcome.OPEN, ContentModel.DATA
                if name == "frameset":
                    self._insert(token)
                    self.mode = Mode.IN_FRAMESET
                    return Outcome.OPEN, ContentModel.DATA
                if name in _HEAD_RULES:
                    # Parse error: processed as in head with the head element pushed back.
                    head = self._head
                    if head is None or head.open:
                        return self._head_start(token)
                    self._push(head)
                    result = self._head_start(token)
                    if head.open:
                        self.stack.remove(head)
                        self._untrack(head)
                    return result
                if name == "head":
                    return Outcome.IGNORED, ContentModel.DATA
                self._anything_else_before_body()
                continue
            if mode is Mode.IN_TABLE:
                return self._table_start(token)
            if mode is Mode.IN_CAPTION:
                if name in _CAPTION_ENDERS:
                    if not self._in_table_scope("caption"):
                        return Outcome.IGNORED, ContentModel.DATA
                    self._close_caption()
                    continue
                return self._body_start(token)
            if mode is Mode.IN_COLUMN_GROUP:
                if name == "html":
                    return self._body_start(token)
                if name == "col":
                    self._insert(token)
                    self.pop()
                    return Outcome.VOID, ContentModel.DATA
                if name == "template":
                    return self._head_start(token)
                if not self._current_is("colgroup"):
                    return Outcome.IGNORED, ContentModel.DATA
                self.pop()
                self.mode = Mode.IN_TABLE
                continue
            if mode is Mode.IN_TABLE_BODY:
                if name == "tr":
                    self._clear_to_context(_TABLE_BODY_CONTEXT)
                    self._insert(token)
                    self.mode = Mode.IN_ROW
                    return Outcome.OPEN, ContentModel.DATA
                if name in _CELLS:
                    self._clear_to_context(_TABLE_BODY_CONTEXT)
                    self._synthetic("tr")
                    self.mode = Mode.IN_ROW
                    continue
                if name in _TABLE_BODY_ENDERS:
                    if not self._any_in_scope(_TABLE_SECTIONS, table=True):
                        return Outcome.IGNORED, ContentModel.DATA
                    self._clear_to_context(_TABLE_BODY_CONTEXT)
                    self.pop()
                    self.mode = Mode.IN_TABLE
                    continue
                return self._table_start(token)
            if mode is Mode.IN_ROW:
                if name in _CELLS:
                    self._clear_to_context(_ROW_CONTEXT)
                    self._insert(token)
                    self.mode = Mode.IN_CELL
                    self.afe.append(_MARKER)
                    return Outcome.OPEN, ContentModel.DATA
                if name in _ROW_ENDERS:
                    if not self._in_table_scope("tr"):
                        return Outcome.IGNORED, ContentModel.DATA
                    self._clear_to_context(_ROW_CONTEXT)
                    self.pop()
                    self.mode = Mode.IN_TABLE_BODY
                    continue
                return self._table_start(token)
            if mode is Mode.IN_CELL:
                if name in _CELL_ENDERS:
                    if not self._any_in_scope(_CELLS, table=True):
                        return Outcome.IGNORED, ContentModel.DATA
                    self._close_cell()
                    continue
                return self._body_start(token)
            if mode is Mode.IN_TEMPLATE:
                if name in _HEAD_RULES:
                    return self._head_start(token)
                new_mode = _TEMPLATE_SWITCH.get(name, Mode.IN_BODY)
                self._template_modes[-1:] = [new_mode]
                self.mode = new_mode
                continue
            if mode in (Mode.AFTER_BODY, Mode.AFTER_AFTER_BODY):
                if name == "html":
                    return self._body_start(token)
                self.mode = Mode.IN_BODY
                continue
            if mode in (Mode.IN_FRAMESET, Mode.AFTER_FRAMESET, Mode.AFTER_AFTER_FRAMESET):
                if name == "html":
                    return self._body_start(token)
                if name == "noframes":
                    return self._head_start(token)
                if mode is Mode.IN_FRAMESET and name == "frameset":
                    self._insert(token)
                    return Outcome.OPEN, ContentModel.DATA
                if mode is Mode.IN_FRAMESET and name == "frame":
                    self._insert(token)
                    self.pop()
                    return Outcome.VOID, ContentModel.DATA
                return Outcome.IGNORED, ContentModel.DATA
            # TEXT and IN_TABLE_TEXT never see start tags (handled before dispatch).
            self.mode = Mode.IN_BODY

    def _head_start(self, token: Node) -> tuple[Outcome, ContentModel]:
        name = token.name
        if name in ("base", "basefont", "bgsound", "link", "meta"):
            self._insert(token)
            self.pop()
            return Outcome.VOID, ContentModel.DATA
        if name == "template":
            self._insert(token)
            self.afe.append(_MARKER)
            self._frameset_ok = False
            self.mode = Mode.IN_TEMPLATE
            self._template_modes.append(Mode.IN_TEMPLATE)
            return Outcome.OPEN, ContentModel.DATA
        return self._text_element(token)

    def _text_element(self, token: Node) -> tuple[Outcome, ContentModel]:
        """script, style, title, textarea ...: the tokenizer reads raw text to the end tag."""
        self._insert(token)
        self._original_mode = self.mode
        self.mode = Mode.TEXT
        return Outcome.OPEN, CONTENT_MODELS[token.name]

    # -- in body ----------------------------------------------------------------------------

    def _body_start(self, token: Node) -> tuple[Outcome, ContentModel]:
        name = token.name
        if name in _CLOSES_P:
            self._close_p_if_in_button_scope()
            self._insert(token)
            return Outcome.OPEN, ContentModel.DATA
        if name in FORMATTING_ELEMENTS:
            if name == "a":
                active = self._active_formatting("a")
                if active is not None:
                    self._adoption_agency("a")
                    if active in self.afe:
                        self.afe.remove(active)
                    if active.open:
                        self._remove(active)
            self._reconstruct_formatting()
            if name == "nobr" and self._has("nobr") and self._in_scope("nobr"):
                self._adoption_agency("nobr")
                self._reconstruct_formatting()
            self._insert(token)
            self._push_formatting(token)
            return Outcome.OPEN, ContentModel.DATA
        if name in HEADINGS:
            self._close_p_if_in_button_scope()
            node = self.current
            if node is not None and node.ns == HTML and node.name in HEADINGS:
                self.pop()
            self._insert(token)
            return Outcome.OPEN, ContentModel.DATA
        if name in _HEAD_RULES:
            return self._head_start(token)
        if name in ("li", "dd", "dt"):
            self._frameset_ok = False
            group = ("li",) if name == "li" else ("dd", "dt")
            for node in reversed(self.stack):
                if node.ns == HTML and node.name in group:
                    self._implied_end_tags(node.name)
                    self._pop_until(node.name)
                    break
                if _is_special(node) and not (
                    node.ns == HTML and node.name in ("address", "div", "p")
                ):
                    break
            self._close_p_if_in_button_scope()
            self._insert(token)
            return Outcome.OPEN, ContentModel.DATA
        if name in VOID_ELEMENTS:
            if name in ("hr",):
                self._close_p_if_in_button_scope()
            elif name not in ("param", "source", "track") and name not in _HEAD_RULES:
                self._reconstruct_formatting()
            if name in ("area", "br", "embed", "img", "keygen", "wbr", "hr", "image"):
                self._frameset_ok = False
            if name == "input" and self._has("select") and self._in_scope("select"):
                self._pop_until("select")
                self.reset_insertion_mode()
            self._insert(token)
            self.pop()
            return Outcome.VOID, ContentModel.DATA
        if name in ("pre", "listing"):
            self._close_p_if_in_button_scope()
            self._insert(token)
            self._frameset_ok = False
            return Outcome.OPEN, ContentModel.DATA
        if name == "form":
            has_template = self._has("template")
            if self._form is not None and not has_template:
                return Outcome.IGNORED, ContentModel.DATA
            self._close_p_if_in_button_scope()
            self._insert(token)
            if not has_template:
                self._form = token
            return Outcome.OPEN, ContentModel.DATA
        if name == "plaintext":
            self._close_p_if_in_button_scope()
            self._insert(token)
            return Outcome.OPEN, ContentModel.PLAINTEXT
        if name == "button":
            if self._has("button") and self._in_scope("button"):
                self._implied_end_tags()
                self._pop_until("button")
            self._reconstruct_formatting()
            self._insert(token)
            self._frameset_ok = False
            return Outcome.OPEN, ContentModel.DATA
        if name in ("applet", "marquee", "object"):
            self._reconstruct_formatting()
            self._insert(token)
            self.afe.append(_MARKER)
            self._frameset_ok = False
            return Outcome.OPEN, ContentModel.DATA
        if name == "table":
            if not self.quirks:
                self._close_p_if_in_button_scope()
            self._insert(token)
            self._frameset_ok = False
            self.mode = Mode.IN_TABLE
            return Outcome.OPEN, ContentModel.DATA
        if name == "textarea":
            if self._has("select") and self._in_scope("select"):
                self._pop_until("select")
                self.reset_insertion_mode()
            self._frameset_ok = False
            return self._text_element(token)
        if name in _RAW_TEXT:
            if name == "xmp":
                self._close_p_if_in_button_scope()
                self._reconstruct_formatting()
            if name in ("xmp", "iframe"):
                self._frameset_ok = False
            return self._text_element(token)
        if name == "select":
            if self._has("select") and self._in_scope("select"):
                self._pop_until("select")
                self.reset_insertion_mode()
                return Outcome.IGNORED, ContentModel.DATA
            self._reconstruct_formatting()
            self._insert(token)
            self._frameset_ok = False
            return Outcome.OPEN, ContentModel.DATA
        if name in ("optgroup", "option"):
            if self._current_is("option"):
                self.pop()
            if name == "optgroup" and self._current_is("optgroup"):
                self.pop()
            self._reconstruct_formatting()
            self._insert(token)
            return Outcome.OPEN, ContentModel.DATA
        if name in ("rb", "rtc", "rp", "rt"):
            if self._has("ruby") and self._in_scope("ruby"):
                self._implied_end_tags("rtc" if name in ("rp", "rt") else None)
            self._insert(token)
            return Outcome.OPEN, ContentModel.DATA
        if name in ("math", "svg"):
            self._reconstruct_formatting()
            token.ns = MATHML if name == "math" else SVG
            self._insert(token)
            if token.self_closing:
                self.pop()
                return Outcome.VOID, ContentModel.DATA
            return Outcome.OPEN, ContentModel.DATA
        if name == "html":
            return Outcome.IGNORED, ContentModel.DATA
        if name == "body":
            # Merged into the first body, or ignored: no element either way.
            return Outcome.IGNORED, ContentModel.DATA
        if name == "frameset":
            stack = self.stack
            if (
                len(stack) > 1
                and stack[1].ns == HTML
                and stack[1].name == "body"
                and self._frameset_ok
            ):
                while len(self.stack) > 1:
                    self.pop()
                self._insert(token)
                self.mode = Mode.IN_FRAMESET
                return Outcome.OPEN, ContentModel.DATA
            return Outcome.IGNORED, ContentModel.DATA
        if name in _BODY_IGNORED_STARTS:
            return Outcome.IGNORED, ContentModel.DATA
        self._reconstruct_formatting()
        self._insert(token)
        return Outcome.OPEN, ContentModel.DATA

    def _end(self, name: str) -> Node | None:
        while True:
            mode = self.mode
            if mode is Mode.IN_BODY:
                return self._body_end(name)
            if mode in (Mode.INITIAL, Mode.BEFORE_HTML, Mode.BEFORE_HEAD):
                if name not in ("head", "body", "html", "br"):
                    return None
                self._anything_else_before_body()
                continue
            if mode is Mode.IN_HEAD:
                if name == "head":
                    node = self.pop()
                    self.mode = Mode.AFTER_HEAD
                    return node
                if name == "template":
                    return self._template_end()
                if name not in ("body", "html", "br"):
                    return None
                self._anything_else_before_body()
                continue
            if mode is Mode.AFTER_HEAD:
                if name == "template":
                    return self._template_end()
                if name not in ("body", "html", "br"):
                    return None
                self._anything_else_before_body()
                continue
            if mode is Mode.IN_TABLE:
                return self._table_end(name)
            if mode is Mode.IN_CAPTION:
                if name == "caption":
                    if not self._in_table_scope("caption"):
                        return None
                    return self._close_caption()
                if name == "table":
                    if not self._in_table_scope("caption"):
                        return None
                    self._close_caption()
                    continue
                if name in _IN_TABLE_IGNORED_ENDS:
                    return None
                return self._body_end(name)
            if mode is Mode.IN_COLUMN_GROUP:
                if name == "colgroup":
                    if not self._current_is("colgroup"):
                        return None
                    self.mode = Mode.IN_TABLE
                    return self.pop()
                if name == "col":
                    return None
                if name == "template":
                    return self._template_end()
                if not self._current_is("colgroup"):
                    return None
                self.pop()
                self.mode = Mode.IN_TABLE
                continue
            if mode is Mode.IN_TABLE_BODY:
                if name in _TABLE_SECTIONS:
                    if not self._in_table_scope(name):
                        return None
                    self._clear_to_context(_TABLE_BODY_CONTEXT)
                    self.mode = Mode.IN_TABLE
                    return self.pop()
                if name == "table":
                    if not self._any_in_scope(_TABLE_SECTIONS, table=True):
                        return None
                    self._clear_to_context(_TABLE_BODY_CONTEXT)
                    self.pop()
                    self.mode = Mode.IN_TABLE
                    continue
                if name in ("body", "caption", "col", "colgroup", "html", "td", "th", "tr"):
                    return None
                return self._table_end(name)
            if mode is Mode.IN_ROW:
                if name == "tr":
                    if not self._in_table_scope("tr"):
                        return None
                    self._clear_to_context(_ROW_CONTEXT)
                    self.mode = Mode.IN_TABLE_BODY
                    return self.pop()
                if name == "table" or name in _TABLE_SECTIONS:
                    if name != "table" and not self._in_table_scope(name):
                        return None
                    if not self._in_table_scope("tr"):
                        return None
                    self._clear_to_context(_ROW_CONTEXT)
                    self.pop()
                    self.mode = Mode.IN_TABLE_BODY
                    continue
                if name in ("body", "caption", "col", "colgroup", "html", "td", "th"):
                    return None
                return self._table_end(name)
            if mode is Mode.IN_CELL:
                if name in _CELLS:
                    if not self._in_table_scope(name):
                        return None
                    self._implied_end_tags()
                    cell = self._last_open(name)
                    self._pop_until(name)
                    self._clear_formatting_to_marker()
                    self.mode = Mode.IN_ROW
                    return cell
                if name in ("body", "caption", "col", "colgroup", "html"):
                    return None
                if name in ("table", "tbody", "tfoot", "thead", "tr"):
                    if not self._in_table_scope(name):
                        return None
                    self._close_cell()
                    continue
                return self._body_end(name)
            if mode is Mode.IN_TEMPLATE:
                if name == "template":
                    return self._template_end()
                return None
            if mode is Mode.AFTER_BODY:
                if name == "html":
                    self.mode = Mode.AFTER_AFTER_BODY
                    return self._last_open("html")
                self.mode = Mode.IN_BODY
                continue
            if mode is Mode.AFTER_AFTER_BODY:
                self.mode = Mode.IN_BODY
                continue
            if mode is Mode.IN_FRAMESET:
                if name == "frameset" and not self._current_is("html") and self.stack:
                    node = self.pop()
                    if not self._current_is("frameset"):
                        self.mode = Mode.AFTER_FRAMESET
                    return node
                return None
            if mode is Mode.AFTER_FRAMESET:
                if name == "html":
                    self.mode = Mode.AFTER_AFTER_FRAMESET
                return None
            if mode is Mode.AFTER_AFTER_FRAMESET:
                return None
            self.mode = Mode.IN_BODY  # TEXT and IN_TABLE_TEXT are handled before dispatch

    def _body_end(self, name: str) -> Node | None:
        if name == "body" or name == "html":
            if not self._in_scope("body"):
                return None
            self.mode = Mode.AFTER_BODY if name == "body" else Mode.AFTER_AFTER_BODY
            return self._last_open(name)
        if name in _BLOCK_END:
            if not self._in_scope(name):
                return None
            self._implied_end_tags()
            node = self._last_open(name)
            self._pop_until(name)
            return node
        if name == "p":
            if not self._in_button_scope("p"):
                # Parse error: an empty paragraph is made, and closed at once.
                self._insert(self._make("p", HTML, None))
            node = self._last_open("p")
            self._close_p()
            return node
        if name == "li":
            if not self._in_list_item_scope("li"):
                return None
            self._implied_end_tags("li")
            node = self._last_open("li")
            self._pop_until("li")
            return node
        if name in ("dd", "dt"):
            if not self._in_scope(name):
                return None
            self._implied_end_tags(name)
            node = self._last_open(name)
            self._pop_until(name)
            return node
        if name in HEADINGS:
            if not self._any_in_scope(HEADINGS):
                return None
            self._implied_end_tags()
            node = next(n for n in reversed(self.stack) if n.ns == HTML and n.name in HEADINGS)
            self._pop_until(*HEADINGS)
            return node
        if name == "form":
            if not self._has("template"):
                node = self._form
                self._form = None
                if node is None or not node.open or not self._in_scope("form"):
                    return None
                self._implied_end_tags()
                self._remove(node)
                return node
            if not self._in_scope("form"):
                return None
            self._implied_end_tags()
            node = self._last_open("form")
            self._pop_until("form")
            return node
        if name in FORMATTING_ELEMENTS:
            return self._adoption_agency(name)
        if name in ("applet", "marquee", "object"):
            if not self._in_scope(name):
                return None
            self._implied_end_tags()
            node = self._last_open(name)
            self._pop_until(name)
            self._clear_formatting_to_marker()
            return node
        if name == "br":
            self._reconstruct_formatting()
            self._frameset_ok = False
            return None  # treated as <br>: an element made and closed, nothing else
        if name == "template":
            return self._template_end()
        if name == "select":
            if not self._in_scope("select"):
                return None
            node = self._last_open("select")
            self._pop_until("select")
            self.reset_insertion_mode()
            return node
        return self._any_other_end(name)

    def _any_other_end(self, name: str) -> Node | None:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            node = stack[i]
            if node.ns == HTML and node.name == name:
                self._implied_end_tags(name)
                self._pop_until_node(node)
                return node
            if _is_special(node):
                return None
        return None

    def _last_open(self, name: str) -> Node | None:
        for node in reversed(self.stack):
            if node.ns == HTML and node.name == name:
                return node
        return None

    def _template_end(self) -> Node | None:
        if not self._has("template"):
            return None
        self._implied_end_tags(thorough=True)
        node = self._last_open("template")
        self._pop_until("template")
        self._clear_formatting_to_marker()
        if self._template_modes:
            self._template_modes.pop()
        self.reset_insertion_mode()
        return node

    # -- the adoption agency -------------------------------------------------------------------

    def _active_formatting(self, name: str) -> Node | None:
        for entry in reversed(self.afe):
            if entry is _MARKER:
                return None
            if entry.name == name:
                return entry
        return None

    def _adoption_agency(self, subject: str) -> Node | None:
        current = self.current
        if (
            current is not None
            and current.ns == HTML
            and current.name == subject
            and current not in self.afe
        ):
            return self.pop()
        ended: Node | None = None
        for _ in range(8):
            formatting = self._active_formatting(subject)
            if formatting is None:
                return self._any_other_end(subject) if ended is None else ended
            if not formatting.open:
                self.afe.remove(formatting)
                return ended
            if not self._in_scope_node(formatting):
                return ended
            ended = formatting
            stack = self.stack
            fe_index = self._index(formatting)
            furthest: Node | None = None
            for i in range(fe_index + 1, len(stack)):
                if _is_special(stack[i]):
                    furthest = stack[i]
                    break
            if furthest is None:
                while self.stack:
                    if self.pop() is formatting:
                        break
                self.afe.remove(formatting)
                return ended
            bookmark = self.afe.index(formatting)
            node = last = furthest
            node_index = self._index(furthest)
            inner = 0
            while True:
                inner += 1
                node_index -= 1
                node = self.stack[node_index]
                if node is formatting:
                    break
                in_afe = node in self.afe
                if inner > 3 and in_afe:
                    position = self.afe.index(node)
                    del self.afe[position]
                    if position < bookmark:
                        bookmark -= 1
                    in_afe = False
                if not in_afe:
                    del self.stack[node_index]
                    self._forget(node)
                    continue
                clone = self._make(node.name, node.ns, node)
                self.afe[self.afe.index(node)] = clone
                self.stack[node_index] = clone
                self._track(clone)
                self._forget(node)
                node = clone
                if last is furthest:
                    bookmark = self.afe.index(clone) + 1
                last = node
            new = self._make(formatting.name, formatting.ns, formatting)
            position = self.afe.index(formatting)
            del self.afe[position]
            if position < bookmark:
                bookmark -= 1
            self.afe.insert(bookmark, new)
            self._remove(formatting)
            self._insert_at(self._index(furthest) + 1, new)
        return ended

    def _in_scope_node(self, target: Node) -> bool:
        for node in reversed(self.stack):
            if node is target:
                return True
            if node.ns == HTML:
                if node.name in _DEFAULT_SCOPE:
                    return False
            elif _is_scope_boundary_foreign(node):
                return False
        return False

    # -- tables --------------------------------------------------------------------------------

    def _clear_to_context(self, names: frozenset[str]) -> None:
        while self.stack:
            node = self.stack[-1]
            if node.ns == HTML and node.name in names:
                return
            self.pop()

    def _close_caption(self) -> Node | None:
        self._implied_end_tags()
        node = self._last_open("caption")
        self._pop_until("caption")
        self._clear_formatting_to_marker()
        self.mode = Mode.IN_TABLE
        return node

    def _close_cell(self) -> None:
        self._implied_end_tags()
        self._pop_until("td", "th")
        self._clear_formatting_to_marker()
        self.mode = Mode.IN_ROW

    def _table_start(self, token: Node) -> tuple[Outcome, ContentModel]:
        name = token.name
        if name == "caption":
            self._clear_to_context(_TABLE_CONTEXT)
            self.afe.append(_MARKER)
            self._insert(token)
            self.mode = Mode.IN_CAPTION
            return Outcome.OPEN, ContentModel.DATA
        if name == "colgroup":
            self._clear_to_context(_TABLE_CONTEXT)
            self._insert(token)
            self.mode = Mode.IN_COLUMN_GROUP
            return Outcome.OPEN, ContentModel.DATA
        if name == "col":
            self._clear_to_context(_TABLE_CONTEXT)
            self._synthetic("colgroup")
            self.mode = Mode.IN_COLUMN_GROUP
            return self._start(token)
        if name in _TABLE_SECTIONS:
            self._clear_to_context(_TABLE_CONTEXT)
            self._insert(token)
            self.mode = Mode.IN_TABLE_BODY
            return Outcome.OPEN, ContentModel.DATA
        if name in ("td", "th", "tr"):
            self._clear_to_context(_TABLE_CONTEXT)
            self._synthetic("tbody")
            self.mode = Mode.IN_TABLE_BODY
            return self._start(token)
        if name == "table":
            if not self._in_table_scope("table"):
                return Outcome.IGNORED, ContentModel.DATA
            self._pop_until("table")
            self.reset_insertion_mode()
            return self._start(token)
        if name in ("style", "script", "template"):
            return self._head_start(token)
        if name == "input" and (token.get_attr("type") or "").lower() == "hidden":
            self._insert(token)
            self.pop()
            return Outcome.VOID, ContentModel.DATA
        if name == "form":
            if self._has("template") or self._form is not None:
                return Outcome.IGNORED, ContentModel.DATA
            self._insert(token)
            self._form = token
            self.pop()
            return Outcome.VOID, ContentModel.DATA
        return self._body_start(token)  # foster-parented: placement only

    def _table_end(self, name: str) -> Node | None:
        if name == "table":
            if not self._in_table_scope("table"):
                return None
            node = self._last_open("table")
            self._pop_until("table")
            self.reset_insertion_mode()
            return node
        if name in _IN_TABLE_IGNORED_ENDS:
            return None
        if name == "template":
            return self._template_end()
        return self._body_end(name)

    # -- foreign content -----------------------------------------------------------------------

    def _foreign_start(self, token: Node) -> tuple[Outcome, ContentModel]:
        name = token.name
        if name in FOREIGN_BREAKOUT or (
            name == "font" and any(token.get_attr(a) is not None for a in ("color", "face", "size"))
        ):
            while self.stack:
                node = self.stack[-1]
                if node.ns == HTML or _mathml_text_point(node) or _html_integration_point(node):
                    break
                self.pop()
            token.ns = HTML
            return self._start(token)
        current = self.current
        token.ns = current.ns if current is not None else HTML
        self._insert(token)
        if token.self_closing:
            self.pop()
            return Outcome.VOID, ContentModel.DATA
        return Outcome.OPEN, ContentModel.DATA

    def _foreign_end(self, name: str) -> Node | None:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            node = stack[i]
            if i == 0:
                return None
            if node.name == name:
                self._pop_until_node(node)
                return node
            if i > 0 and stack[i - 1].ns == HTML:
                return self._end(name)
        return None


def _is_special(node: Node) -> bool:
    if node.ns == HTML:
        return node.name in SPECIAL_ELEMENTS
    if node.ns == MATHML:
        return node.name in SPECIAL_MATHML
    return node.name in SPECIAL_SVG


def _is_scope_boundary_foreign(node: Node) -> bool:
    if node.ns == MATHML:
        return node.name in SPECIAL_MATHML
    return node.name in SPECIAL_SVG


def is_integration_point(node: Node) -> bool:
    """Whether HTML content is parsed as HTML again inside this foreign element."""
    return _mathml_text_point(node) or _html_integration_point(node)


def _mathml_text_point(node: Node) -> bool:
    return node.ns == MATHML and node.name in ("mi", "mo", "mn", "ms", "mtext")


def _html_integration_point(node: Node) -> bool:
    if node.ns == SVG:
        return node.name in SPECIAL_SVG
    if node.ns == MATHML and node.name == "annotation-xml":
        encoding = (node.get_attr("encoding") or "").lower()
        return encoding in ("text/html", "application/xhtml+xml")
    return False
