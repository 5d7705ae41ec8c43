"""What the tree-construction steps test: namespaces, insertion modes, the element-name
tables of the HTML standard's steps (HTML namespace unless said) and the tests on a node
(special, a scope boundary, an integration point)."""

from __future__ import annotations

import enum
from typing import Protocol

from ._html import (
    FORMATTING_ELEMENTS,
    HEADINGS,
    SPECIAL_ELEMENTS,
    SPECIAL_MATHML,
    SPECIAL_SVG,
    VOID_ELEMENTS,
)
from ._html import names as _names
from .tokens import ContentModel

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

#: Every start tag name "in body" has a rule of its own for (the tests of ``_body_start``
#: before "any other start tag"). A name outside it is only: reconstruct the active
#: formatting elements, insert (the fast path of ``_InBody.push_plain``).
_BODY_START_RULES = (
    _CLOSES_P
    | FORMATTING_ELEMENTS
    | HEADINGS
    | _HEAD_RULES
    | _names("li dd dt")
    | VOID_ELEMENTS
    | _names("pre listing form plaintext button applet marquee object table textarea")
    | _RAW_TEXT
    | _names("select optgroup option rb rtc rp rt math svg html body frameset")
    | _BODY_IGNORED_STARTS
)
#: End tags whose "in body" rule does more than pop the current node when it is their own
#: element (the form pointer, markers, the insertion mode, ``</body>``/``</html>``/``</br>``
#: which pop nothing), and the formatting elements (the adoption agency; see
#: ``_InBody.pop_plain``).
_BODY_END_RULES = FORMATTING_ELEMENTS | _names(
    "applet marquee object template select form body html br"
)

_MARKER = None  # a scope marker in the list of active formatting elements

#: ``doctype`` prefixes of public identifiers are not looked at: anything but the plain
#: HTML5 doctype is taken as quirks mode (the direction that keeps a ``<p>`` open longer).
_NO_QUIRKS_SYSTEM_IDS = frozenset(("", "about:legacy-compat"))


class ModelLimit(Exception):
    """The stack grew past its bound; the model can no longer say what is open."""


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
