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
        # Declarative shadow roots (see _declare_shadow_root): each host with its mode, and
        # the templates whose contents a browser shows as a shadow root.
        self.shadow_hosts: dict[int, tuple[Node, str]] = {}
        self._shadow_templates: list[Node] = []
        #: The last template start tag declared a second shadow root on its element,
        #: which empties the first: what a browser showed of it is gone.
        self.shadow_root_replaced = False
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
        """Inside inert template contents: never rendered, in no paragraph count. A
        declarative shadow root's template is not inert (see _declare_shadow_root)."""
        return self.inert_template_at() >= 0

    def inert_template_at(self) -> int:
        """The stack index of the innermost inert template open, or -1."""
        if not self._open_count.get("template", 0):
            return -1
        stack, shadows = self.stack, self._shadow_templates
        for i in range(len(stack) - 1, -1, -1):
            node = stack[i]
            if node.name == "template" and node.ns == HTML and not any(node is t for t in shadows):
                return i
        return -1

    def is_shadow_root(self, node: Node) -> bool:
        """Whether ``node`` is a template whose contents a browser shows as a shadow root."""
        return any(node is t for t in self._shadow_templates)

    def in_shadow_host_light_tree(self) -> Node | None:
        """The shadow host whose own children are being inserted, if any: whether a browser
        shows them depends on the slots of its shadow tree, which this model does not
        follow. None inside a shadow root's template, or with no host open."""
        if not self.shadow_hosts:
            return None
        hosts, shadows = self.shadow_hosts, self._shadow_templates
        for node in reversed(self.stack):
            if any(node is t for t in shadows):
                return None
            if id(node) in hosts and hosts[id(node)][0] is node:
                return node
        return None

    def _declare_shadow_root(self, template: Node) -> bool:
        """A template start tag: does it declare a shadow root (HTML's "in head" rules for
        ``template``, with DOM's "attach a shadow root")? Only with ``shadowrootmode`` open
        or closed, on an element that is not the document element and can host one (a
        custom element or one of DOM's list), and that has no shadow root of another mode
        yet (one of the same mode is emptied and filled again: ``shadow_root_replaced``).
        Otherwise the template is an ordinary, inert one."""
        self.shadow_root_replaced = False
        mode = (template.get_attr("shadowrootmode") or "").lower()
        if mode not in ("open", "closed"):
            return False
        stack = self.stack
        host = stack[-1] if len(stack) > 1 else None
        if host is None or host.ns != HTML or not _can_host_shadow_root(host.name):
            return False
        known = self.shadow_hosts.get(id(host))
        if known is not None and known[0] is host:
            if known[1] != mode:
                return False
            self.shadow_root_replaced = True
        self.shadow_hosts[id(host)] = (host, mode)
        self._shadow_templates.append(template)
        return True

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


#: DOM's "valid shadow host name"s, besides valid custom element names.
_SHADOW_HOST_NAMES = frozenset(
    {"article", "aside", "blockquote", "body", "div", "footer", "h1", "h2", "h3", "h4"}
    | {"h5", "h6", "header", "main", "nav", "p", "section", "span"}
)
_RESERVED_CUSTOM = frozenset(
    {"annotation-xml", "color-profile", "font-face", "font-face-src", "font-face-uri"}
    | {"font-face-format", "font-face-name", "missing-glyph"}
)


def _can_host_shadow_root(name: str) -> bool:
    if name in _SHADOW_HOST_NAMES:
        return True
    # A valid custom element name: starts with a lower-case ASCII letter, holds a hyphen,
    # no upper-case ASCII (the tokenizer lowered it already), not a reserved name.
    return "-" in name and "a" <= name[:1] <= "z" and name not in _RESERVED_CUSTOM
