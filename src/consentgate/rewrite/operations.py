"""Rewrite operations. They are immutable configuration: build them once, reuse them for every
response (the per-response state lives in the :class:`~consentgate.rewrite.Rewriter`)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from .selectors import Selector, compile_selector

#: ``(tag_name, attributes) -> new attributes``, or None to keep the tag's bytes unchanged.
#: Attribute values arrive with character references decoded; names are lower-case.
AttributesCallback = Callable[[str, dict[str, str]], "dict[str, str] | None"]
#: ``(text) -> new text`` for the content of a raw-text element (script, style, textarea ...).
TextCallback = Callable[[str], str]
#: ``(attributes) -> bool``: a further test on a matched element's decoded attributes, for what
#: a selector cannot say (a MIME type compared by its essence, say).
AttributesPredicate = Callable[[dict[str, str]], bool]


class ShortContainer(enum.Enum):
    """What a :class:`Truncate` with ``keep_items`` does when its container ends holding fewer
    item matches than it keeps (paragraphs as ``<div>``, ``<br>``-separated or bare text)."""

    #: Cut after ``fallback_words`` words of the container's text instead (block elements and
    #: ``<br>`` separate words; inline tags do not).
    CUT = "cut"
    #: Raise ``SHORT_CONTAINER``: the caller serves something else (the wall page).
    FAIL = "fail"
    #: Keep the container whole; :attr:`RewriteReport.short_containers` counts it.
    KEEP = "keep"


class Position(enum.Enum):
    """Where an :class:`InsertHTML` snippet goes relative to its target element."""

    BEFORE_START = "before_start"
    AFTER_START = "after_start"
    BEFORE_END = "before_end"
    AFTER_END = "after_end"

    @property
    def at_end_tag(self) -> bool:
        return self in (Position.BEFORE_END, Position.AFTER_END)


def _selector_field(obj: object, field: str) -> None:
    """Parse a selector given as a string once, at construction (SelectorError surfaces early)."""
    object.__setattr__(obj, field, compile_selector(getattr(obj, field)))


@dataclass(frozen=True)
class InsertHTML:
    """Insert ``html`` before/after the start or end tag of elements matching ``target``.

    End-tag positions trigger on an explicit end tag that closes a matching element; for a plain
    tag-name target (``"body"``) also on a stray end tag of that name (``</body>`` without a
    ``<body>`` start tag). ``once`` (default) inserts at the first match only.

    Fallbacks when the target never shows up: ``at_eof_if_missing`` inserts at the end of the
    document; ``before_first_content_if_missing`` inserts before the first start tag that is not
    ``html``/``head`` (for "right after ``<head>``" on pages without a ``<head>`` tag).
    ``required`` makes :meth:`Rewriter.close` raise ``TARGET_NOT_FOUND`` when nothing was
    inserted at all.
    """

    target: Selector | str
    html: str
    position: Position = Position.AFTER_START
    once: bool = True
    at_eof_if_missing: bool = False
    before_first_content_if_missing: bool = False
    required: bool = False

    def __post_init__(self) -> None:
        _selector_field(self, "target")

    @classmethod
    def after_head_open(cls, html: str, *, required: bool = False) -> InsertHTML:
        """Right after ``<head>``; without one, before the first body-ish tag, else at EOF."""
        return cls(
            "head",
            html,
            Position.AFTER_START,
            at_eof_if_missing=True,
            before_first_content_if_missing=True,
            required=required,
        )

    @classmethod
    def before_body_close(cls, html: str, *, required: bool = False) -> InsertHTML:
        """Right before ``</body>``; at the end of the document if the page has none."""
        return cls("body", html, Position.BEFORE_END, at_eof_if_missing=True, required=required)


@dataclass(frozen=True)
class RewriteAttributes:
    """Call ``callback(tag_name, attrs)`` for start tags matching ``target``.

    A returned dict replaces the attributes and the tag is re-serialised (values quoted with
    ``"``, ``&`` and ``"`` escaped, empty values written as bare names); None keeps the bytes.
    """

    target: Selector | str
    callback: AttributesCallback
    required: bool = False

    def __post_init__(self) -> None:
        _selector_field(self, "target")


@dataclass(frozen=True)
class RemoveElement:
    """Drop matching elements: start tag, content (raw text too) and end tag."""

    target: Selector | str
    required: bool = False

    def __post_init__(self) -> None:
        _selector_field(self, "target")


@dataclass(frozen=True)
class TransformText:
    """Replace the content of matching raw-text elements (``script``, ``style``, ``textarea``,
    ``title`` ...) with ``callback(text)``. The content is buffered up to ``max_text_bytes``;
    larger content raises ``TEXT_TOO_LARGE``. Matches on other elements are ignored."""

    target: Selector | str
    callback: TextCallback
    required: bool = False
    #: Only elements whose decoded attributes pass this test (None: every match).
    accept: AttributesPredicate | None = None

    def __post_init__(self) -> None:
        _selector_field(self, "target")


@dataclass(frozen=True)
class Truncate:
    """Keep the beginning of the first element matching ``container`` and drop the rest of it.

    Exactly one of:
      * ``keep_items=N``: keep everything up to the end of the N-th element matching ``items``
        inside the container;
      * ``keep_words=N``: keep the first N words of the container's text (cutting mid-text or
        at a tag).
    At the cut ``html`` (the call to action) is inserted, elements still open inside the
    container are closed with end tags, everything up to the container's end is dropped and
    the container's end tag is kept. Nothing happens when the content is shorter.
    ``required`` (default True) makes a missing container an error: ``CONTAINER_NOT_FOUND``.
    """

    container: Selector | str
    html: str = ""
    keep_items: int | None = None
    items: Selector | str = "p"
    keep_words: int | None = None
    required: bool = True
    #: With ``keep_items``: what happens when the container holds fewer items (see
    #: :class:`ShortContainer`); ``fallback_words`` is the word budget of ``CUT``.
    short: ShortContainer = ShortContainer.CUT
    fallback_words: int = 80
    #: After the cut, look for pieces of the dropped text in the rest of the output (and,
    #: for a body rewritten in one piece, in what came before): a framework's page data
    #: (``script#__NEXT_DATA__``, ``window.__NUXT__``) often carries the whole article. A
    #: find raises ``CUT_TEXT_ECHOED``.
    echo_guard: bool = True

    def __post_init__(self) -> None:
        _selector_field(self, "container")
        _selector_field(self, "items")
        if (self.keep_items is None) == (self.keep_words is None):
            raise ValueError("Truncate needs exactly one of keep_items= or keep_words=")
        limit = self.keep_items if self.keep_items is not None else self.keep_words
        if limit is not None and limit < 0:
            raise ValueError("Truncate limits must not be negative")
        if self.fallback_words < 0:
            raise ValueError("Truncate fallback_words must not be negative")


Operation = InsertHTML | RewriteAttributes | RemoveElement | TransformText | Truncate
