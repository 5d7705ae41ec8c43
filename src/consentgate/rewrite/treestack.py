"""The stack of open elements and the list of active formatting elements, with the steps
every insertion mode shares: pushing and popping (each pop reported), the scopes, implied end
tags, reconstructing formatting elements, resetting the insertion mode."""

from __future__ import annotations

from collections.abc import Callable

from .treedata import (
    _BUTTON,
    _CELLS,
    _DEFAULT_SCOPE,
    _IMPLIED_END,
    _IMPLIED_END_THOROUGH,
    _LIST_ITEM,
    _MARKER,
    _TABLE_SCOPE,
    _TABLE_SECTIONS,
    HTML,
    Mode,
    ModelLimit,
    Node,
    _is_scope_boundary_foreign,
)


class _OpenElements:
    """The model's state: ``stack`` as a browser keeps it, ``afe`` (the list of active
    formatting elements), the insertion mode and the flags the steps read."""

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

    def _last_open(self, name: str) -> Node | None:
        for node in reversed(self.stack):
            if node.ns == HTML and node.name == name:
                return node
        return None

    def _active_formatting(self, name: str) -> Node | None:
        for entry in reversed(self.afe):
            if entry is _MARKER:
                return None
            if entry.name == name:
                return entry
        return None

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

    def _clear_to_context(self, names: frozenset[str]) -> None:
        while self.stack:
            node = self.stack[-1]
            if node.ns == HTML and node.name in names:
                return
            self.pop()
