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

:class:`TreeModel` is built in layers, each a base class of the next: ``treedata`` (the
tables the steps test), ``treestack`` (the stack, the scopes, the shared steps),
``treebody`` (in body, in head, text, the adoption agency), ``treemodes`` (the other
insertion modes) and this module (the entry points: tokens in, and foreign content). Only
whole methods live in each, so a token costs what it did in one class.
"""

from __future__ import annotations

from ._html import FOREIGN_BREAKOUT
from .tokens import ContentModel
from .treedata import (
    _NO_QUIRKS_SYSTEM_IDS,
    _TABLE_TEXT_TARGETS,
    _WS,
    CONTENT_MODELS,
    HTML,
    MATHML,
    SVG,
    Mode,
    ModelLimit,
    Node,
    Outcome,
    StartTagToken,
    _html_integration_point,
    _mathml_text_point,
    is_integration_point,
)
from .treemodes import _InsertionModes

__all__ = [
    "CONTENT_MODELS",
    "HTML",
    "MATHML",
    "SVG",
    "Mode",
    "ModelLimit",
    "Node",
    "Outcome",
    "StartTagToken",
    "TreeModel",
    "is_integration_point",
]


class TreeModel(_InsertionModes):
    """Feed tokens in document order; keeps ``stack`` as a browser would."""

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
        if name == "p" or name == "br":
            # "</p>" and "</br>" break out of foreign content as the breakout start tags do
            # (the WHATWG rule of 2021, which Chromium follows; html5lib 1.1 predates it):
            # without this, "<svg></p><style>" would keep the style SVG's, whose markup
            # the model reads as tags while a browser reads raw text.
            while stack:
                node = stack[-1]
                if node.ns == HTML or _mathml_text_point(node) or _html_integration_point(node):
                    break
                self.pop()
            return self._end(name)
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
