"""The insertion modes around "in body": before it (initial … after head), the table modes
(in table, caption, column group, table body, row, cell), template, after body and the frameset
modes. Each loops until a mode takes the token, as the standard's "reprocess the token" says."""

from __future__ import annotations

from .tokens import ContentModel
from .treebody import _InBody
from .treedata import (
    _CAPTION_ENDERS,
    _CELL_ENDERS,
    _CELLS,
    _HEAD_RULES,
    _IN_TABLE_IGNORED_ENDS,
    _MARKER,
    _ROW_CONTEXT,
    _ROW_ENDERS,
    _TABLE_BODY_CONTEXT,
    _TABLE_BODY_ENDERS,
    _TABLE_CONTEXT,
    _TABLE_SECTIONS,
    Mode,
    Node,
    Outcome,
)

#: Defined here, where it is used, not imported: CPython 3.11 compiles a method call on an
#: imported name (``_TEMPLATE_SWITCH.get(…)``) as an attribute load plus a call, which
#: makes a bound method each time.
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


class _InsertionModes(_InBody):
    """Start and end tags dispatched on the insertion mode."""

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

    # -- tables --------------------------------------------------------------------------------

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
