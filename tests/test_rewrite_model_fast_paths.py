"""The tree model's fast paths (pushes and pops "in body" and in foreign content without the
dispatch) against its full rules: for any sequence of start and end tags, a model that tries
``push_plain``/``pop_plain`` first keeps the same stack, list of active formatting
elements, insertion mode and closes as one that only takes ``start_tag``/``end_tag``.

The fast paths decline whatever they do not take exactly as the rules do, so this compares
state after every token, over every tag name the rules name and a few they do not.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consentgate.rewrite._html import HTML_ELEMENTS
from consentgate.rewrite.elements import _Element
from consentgate.rewrite.tokens import ContentModel
from consentgate.rewrite.treemodel import Node, TreeModel

NAMES = sorted(
    HTML_ELEMENTS
    | {"image", "listing", "rp", "rt", "search", "xmp", "noscript", "plaintext"}
    | {"svg", "math", "mi", "annotation-xml", "foreignobject", "path", "custom-el", "x"}
)
#: Mostly a few names whose rules meet (formatting elements across blocks, lists,
#: paragraphs, tables, foreign content), so that sequences reach the cases that differ.
COMMON = (
    "a", "b", "i", "nobr", "p", "div", "span", "li", "ul", "dd", "h1", "h2", "button", "form",
    "table", "td", "tr", "select", "option", "template", "object", "svg", "math", "mi",
    "foreignobject", "br", "img", "body", "path", "g", "desc", "mrow", "font",
)  # fmt: skip
NAME = st.one_of(st.sampled_from(COMMON), st.sampled_from(NAMES))
TOKENS = st.lists(st.tuples(st.booleans(), NAME, st.booleans()), min_size=1, max_size=60)


class _Run:
    """One model fed from the start of a document, recording what it reports closed."""

    def __init__(self, *, fast: bool) -> None:
        self.fast = fast
        self.closed: list[tuple[str, int]] = []
        self.model = TreeModel(self._make, self._on_close, max_depth=40)

    def _make(self, name: str, ns: int, like: Node | None) -> _Element:
        element = _Element(like.raw if isinstance(like, _Element) else b"", name, False)
        if not isinstance(like, _Element):
            element._attrs = {}
        element.codec = "utf-8"
        element.ns = ns
        element.synthetic = True
        return element

    def _on_close(self, node: Node) -> None:
        self.closed.append((node.name, node.ns))

    def start(self, name: str, self_closing: bool) -> ContentModel:
        raw = f"<{name}{'/' if self_closing else ''}>".encode()
        element = _Element(raw, name, self_closing)
        element.codec = "utf-8"
        if self.fast and self.model.push_plain(element):
            return ContentModel.DATA
        return self.model.start_tag(element)[1]

    def end(self, name: str) -> None:
        if self.fast:
            node = self.model.pop_plain(name)
            if node is not None:
                self.closed.append((node.name, node.ns))  # the caller's part
                return
        self.model.end_tag(name)

    def state(self) -> object:
        model = self.model
        return (
            [(n.name, n.ns, n.open) for n in model.stack],
            [None if e is None else (e.name, e.ns, e.open) for e in model.afe],
            model.mode,
            {name: count for name, count in model._open_count.items() if count},
            self.closed,
        )


def _tokens(spec: str) -> list[tuple[bool, str, bool]]:
    """``"b p i /p /b"``: start and end tags, none self-closing."""
    return [(not t.startswith("/"), t.lstrip("/"), False) for t in spec.split()]


@settings(max_examples=1500, deadline=None)
@given(TOKENS)
# A closed formatting element still listed after the current one (the adoption agency
# takes the current <b> off the list, not the last entry).
@example(_tokens("html body b p i /p /b"))
# An <li> whose walk must go on past a <div> to an open <li>.
@example(_tokens("ul li div li /li /div"))
# A paragraph open: a <div> closes it first.
@example(_tokens("p span div /div /span /p"))
# Foreign content: its own elements, an integration point, a breakout tag.
@example(_tokens("svg g path /path /g desc span /span /desc g p /g /svg"))
@example(_tokens("math mrow mi b /b /mi /mrow /math"))
def test_model_fast_paths_match_the_full_rules(tokens: list[tuple[bool, str, bool]]) -> None:
    fast, full = _Run(fast=True), _Run(fast=False)
    for is_start, name, self_closing in tokens:
        for run in (fast, full):
            if not is_start:
                run.end(name)
            elif run.start(name, self_closing) is not ContentModel.DATA:
                run.end(name)  # raw text: the tokenizer's next tag is its end tag
        assert fast.state() == full.state(), (is_start, name)


def test_model_fast_paths_take_the_common_tags() -> None:
    """The fast paths are taken where they should be (else the comparison above proves
    nothing): a <div>, a <span>, an <a>, an <li> in a <ul>, an <svg>'s <g>, and their end
    tags."""
    run = _Run(fast=True)
    for name in ("html", "body"):
        run.start(name, False)
    model = run.model
    taken = []
    for name in ("div", "span", "a", "ul", "li"):
        taken.append(model.push_plain(_Element(f"<{name}>".encode(), name, False)))
    run.start("svg", False)
    taken.append(model.push_plain(_Element(b"<g>", "g", False)))
    taken.append(model.pop_plain("g") is not None)
    run.end("svg")
    for name in ("li", "ul", "a", "span", "div"):
        taken.append(model.pop_plain(name) is not None)
    assert taken == [True] * 12
    assert [n.name for n in model.stack] == ["html", "body"] and model.afe == []
