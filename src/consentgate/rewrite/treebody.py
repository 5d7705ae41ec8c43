"""The "in body" rules (with "in head" and "text", which they reach): start and end tags,
the adoption agency algorithm."""

from __future__ import annotations

from ._html import (
    FOREIGN_BREAKOUT,
    FORMATTING_ELEMENTS,
    HEADINGS,
    SPECIAL_ELEMENTS,
    SPECIAL_MATHML,
    SPECIAL_SVG,
    VOID_ELEMENTS,
)
from .tokens import ContentModel
from .treedata import (
    _BLOCK_END,
    _BODY_END_RULES,
    _BODY_IGNORED_STARTS,
    _BODY_START_RULES,
    _CLOSES_P,
    _HEAD_RULES,
    _MARKER,
    _RAW_TEXT,
    CONTENT_MODELS,
    HTML,
    MATHML,
    SVG,
    Mode,
    Node,
    Outcome,
    _is_special,
)
from .treestack import _OpenElements

#: What the "li" start tag's walk down the stack goes past (or stops at: li itself).
_LI_WALK_ON = frozenset(("address", "div", "p", "li"))


class _InBody(_OpenElements):
    """Tokens in the "in body" insertion mode (and the head rules it defers to)."""

    def _head_start(self, token: Node) -> tuple[Outcome, ContentModel]:
        name = token.name
        if name in ("base", "basefont", "bgsound", "link", "meta"):
            self._insert(token)
            self.pop()
            return Outcome.VOID, ContentModel.DATA
        if name == "template":
            self._declare_shadow_root(token)  # before the template is on the stack
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

    # Most tags of a page are a <span>, a <div>, an <a> "in body" (or a <path> in an icon)
    # whose rule is only to push or pop. These two take them without the dispatch (mode,
    # namespace, the chain of rules of _body_start/_body_end): the profile of a walled page
    # spent most of its model time there. Each does exactly what the full rules do, or
    # nothing at all and says so.

    def push_plain(self, token: Node) -> bool:
        """A start tag whose rule is only to insert it: "in body" (after reconstructing the
        active formatting elements where the rule says so), or in foreign content away from
        integration points and breakout tags. Inserted, True; the element is open
        (``Outcome.OPEN``, ``ContentModel.DATA``). False, with nothing changed, for every
        other case, which :meth:`start_tag` then takes."""
        stack = self.stack
        if not stack or len(stack) >= self.max_depth:
            return False  # no html element yet; or start_tag raises ModelLimit
        current = stack[-1]
        name = token.name
        if current.ns != HTML:
            # _foreign_start's "any other start tag": the element takes the current node's
            # namespace. Not at a MathML text or HTML integration point (annotation-xml
            # included, whatever its encoding), not a breakout tag (font: with attributes).
            if (
                token.self_closing
                or self.mode is Mode.IN_TABLE_TEXT
                or current.name in (SPECIAL_SVG if current.ns == SVG else SPECIAL_MATHML)
                or name in FOREIGN_BREAKOUT
                or name == "font"
            ):
                return False
            token.ns = current.ns
            stack.append(token)
            token.open = True  # not counted: the counts are of HTML elements
            return True
        if self.mode is not Mode.IN_BODY:
            return False
        counts = self._open_count
        formatting = False
        if name not in _BODY_START_RULES:  # "any other start tag"
            if self.afe:
                self._reconstruct_formatting()
        elif name in _CLOSES_P:
            if counts.get("p"):
                return False  # maybe a <p> to close first
        elif name in FORMATTING_ELEMENTS:
            if name == "nobr" or (name == "a" and self._active_formatting("a") is not None):
                return False  # the adoption agency may run first
            if self.afe:
                self._reconstruct_formatting()
            formatting = True
        elif name == "li":
            # The rule walks down the stack for an <li> to close; it stops at once at a
            # special element other than address, div and p (a <ul>, an <ol>).
            top = current.name
            if counts.get("p") or top not in SPECIAL_ELEMENTS or top in _LI_WALK_ON:
                return False
            self._frameset_ok = False
        else:
            return False
        if len(stack) >= self.max_depth:
            return False  # reconstructed elements took the room: start_tag raises
        # _push, inlined: this is the hot path.
        token.ns = HTML
        stack.append(token)
        token.open = True
        counts[name] = counts.get(name, 0) + 1
        if formatting:
            self._push_formatting(token)
        return True

    def pop_plain(self, name: str) -> Node | None:
        """An end tag naming the current node, whose rule then is only to pop it: "in body"
        (for a formatting element: the adoption agency's outcome when it is the last active
        formatting element, popped and taken off the list), or in foreign content. Returns
        the popped element, without ``on_close``: the caller takes it as the element this end
        tag ends, as it does with what :meth:`end_tag` returns. None, with nothing changed,
        for every other case, which :meth:`end_tag` then takes."""
        stack = self.stack
        if len(stack) < 2:
            return None
        node = stack[-1]
        if node.name != name:
            return None
        mode = self.mode
        if node.ns != HTML:
            # _foreign_end, first step: the current node has the name.
            if mode is Mode.TEXT or mode is Mode.IN_TABLE_TEXT:
                return None
            stack.pop()
            node.open = False
            return node
        if mode is not Mode.IN_BODY:
            return None
        if name in _BODY_END_RULES:
            afe = self.afe
            if name not in FORMATTING_ELEMENTS or not afe or afe[-1] is not node:
                return None
            afe.pop()
        stack.pop()
        node.open = False
        self._open_count[name] -= 1
        return node

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
