"""The state of one rewrite: the report, each operation's state, the indexes that find an
operation by tag name, and what the parts of :class:`~.rewriter.Rewriter` share.

The rewriter is one object built in layers, each a base class of the next: this state,
``truncation`` (the cut and the fail-closed bookkeeping), ``actions`` (what operations do at
a tag), ``modelswitch`` (the tree model on and off) and ``rewriter`` (the tokenizer's
handler). Whole methods live in each, so a token costs what it did in one class.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._html import HTML_ELEMENTS, SPECIAL_MATHML, SPECIAL_SVG
from .charset import CharsetDecision
from .elements import _Element
from .operations import (
    InsertHTML,
    Operation,
    RemoveElement,
    RewriteAttributes,
    TransformText,
    Truncate,
)
from .selectors import Combinator, Compound, Selector, compile_selector
from .tokenizer import Tokenizer
from .treemodel import TreeModel


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
        "fallback_closers",
        "fallback_set",
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
        # ShortContainer.CUT: counting words alongside the items, and where the cut falls if
        # the container ends with too few of them.
        self.fallback_set = False
        self.fallback_closers: tuple[bytes, bytes] = (b"", b"")


class _Index:
    """Operations grouped by the tag names their subject selector can match, for quick lookup."""

    __slots__ = ("any_tag", "by_tag")

    def __init__(self) -> None:
        self.by_tag: dict[str, list[tuple[Selector, _OpState]]] = {}
        self.any_tag: list[tuple[Selector, _OpState]] = []

    @classmethod
    def of(cls, layout: _IndexLayout, states: Sequence[_OpState]) -> _Index:
        """The index of one response: ``layout``'s entries with this response's states."""
        index = cls()
        by_tag, any_tag = layout
        index.by_tag = {
            tag: [(selector, states[i]) for selector, i in entries]
            for tag, entries in by_tag.items()
        }
        index.any_tag = [(selector, states[i]) for selector, i in any_tag]
        return index

    def candidates(self, tag: str) -> list[tuple[Selector, _OpState]]:
        found = self.by_tag.get(tag)
        if not self.any_tag:
            return found or []
        return (found or []) + self.any_tag


#: An index with operation numbers in place of states: (by tag name, any tag).
_IndexLayout = tuple[dict[str, list[tuple[Selector, int]]], list[tuple[Selector, int]]]


def _index_add(layout: _IndexLayout, selector: Selector, number: int) -> None:
    tags = selector.subject_tags
    if tags is None:
        layout[1].append((selector, number))
    else:
        for tag in tags:
            layout[0].setdefault(tag, []).append((selector, number))


@dataclass(frozen=True, slots=True)
class _Layout:
    """Everything the rewriter derives from its operations alone (the indexes, the tags the
    light path wants, whether the tree model runs from the start), worked out once per set of
    operations: a response then only makes its operations' states (see ``_layout_of``)."""

    starts: _IndexLayout
    ends: _IndexLayout
    items: _IndexLayout
    content_fallbacks: tuple[int, ...]
    always_model: bool
    #: No operation but the truncations needs the tree model: once every cut is over, the
    #: rest of the document can take the light path (see _ModelSwitch._maybe_stop_model).
    light_after_cut: bool
    #: An operation acts on elements inside SVG or MathML (``svg script``): on the light
    #: path the model entered at ``<svg>`` keeps foreign content open wherever it cannot
    #: know (see _ModelSwitch._leaves_foreign_content), so those elements are never missed.
    foreign_exact: bool
    start_any: bool
    start_names: frozenset[str]
    end_any: bool
    end_names: frozenset[str]
    light_wanted: frozenset[str] | None
    light_only_with: dict[str, frozenset[str]]
    whole_foreign: bool
    foreign_wanted: frozenset[str] | None


def _build_layout(operations: Sequence[Operation]) -> _Layout:
    starts: _IndexLayout = ({}, [])
    ends: _IndexLayout = ({}, [])
    items: _IndexLayout = ({}, [])
    content_fallbacks: list[int] = []
    always_model = False
    # Whether the model is needed past the end of every cut (see _Layout.light_after_cut).
    model_for_others = False
    foreign_exact = False
    for number, op in enumerate(operations):
        if isinstance(op, Truncate):
            container = compile_selector(op.container)
            _index_add(starts, container, number)
            # After the cut the light path must still see a second container (it is dropped
            # whole, see _Truncation._empty_container), which it can only for a selector
            # that looks at the element alone.
            model_for_others |= not _is_compound(container)
            _index_add(items, compile_selector(op.items), number)
            # A cut must end exactly where a browser ends the container, and an ancestor's
            # end tag can end it (<section><div class=c>…</section>): the model follows
            # the whole document.
            always_model = True
        elif isinstance(op, InsertHTML):
            target = compile_selector(op.target)
            if op.position.at_end_tag:
                _index_add(ends, target, number)
                # The light path finds end tags by name only.
                model_for_others |= target.simple_tag is None
            else:
                _index_add(starts, target, number)
                model_for_others |= not _is_compound(target)
            if op.before_first_content_if_missing:
                content_fallbacks.append(number)
        elif isinstance(op, RewriteAttributes | RemoveElement | TransformText):
            target = compile_selector(op.target)
            _index_add(starts, target, number)
            if _is_under_foreign_root(target):
                foreign_exact = True
            else:
                model_for_others |= not _is_compound(target)
        else:  # pragma: no cover - guarded by the type checker
            raise TypeError(f"not a rewrite operation: {op!r}")
    start_names = frozenset(starts[0]) | frozenset(items[0])
    end_names = frozenset(ends[0])
    # The light path needs the tags operations act on, those that start foreign content
    # (the model takes over there) and plaintext; the tokenizer reads the raw text of
    # every other element itself.
    light_wanted: frozenset[str] | None
    if starts[1] or ends[1]:
        light_wanted = None
    else:
        light_wanted = frozenset(starts[0]) | end_names | frozenset(("svg", "math", "plaintext"))
    return _Layout(
        starts=starts,
        ends=ends,
        items=items,
        content_fallbacks=tuple(content_fallbacks),
        always_model=always_model or model_for_others,
        light_after_cut=not model_for_others,
        foreign_exact=foreign_exact,
        start_any=bool(starts[1] or items[1]),
        start_names=start_names,
        end_any=bool(ends[1]),
        end_names=end_names,
        light_wanted=light_wanted,
        light_only_with=_attribute_filter(starts[0], end_names),
        # svg and math are wanted on the light path to follow foreign content; when no
        # operation names either, such an element that provably stays foreign (an icon, a
        # formula) passes whole, in C.
        whole_foreign=not {"svg", "math"} & (start_names | end_names),
        # Inside SVG/MathML (entered on the light path): what could end foreign content or
        # matter to an operation.
        foreign_wanted=(
            None
            if light_wanted is None
            else light_wanted | HTML_ELEMENTS | SPECIAL_SVG | SPECIAL_MATHML
        ),
    )


# A site's responses use a handful of operation sets (one per consent class, banner and
# language, and the wall's); working the layout out costs more than rewriting a small
# page. Keyed by the operations' values: equal operations give the same layout.
_cached_layout = functools.lru_cache(maxsize=256)(_build_layout)


# Callers that keep their operation objects (the gate builds each set once) find them
# here by identity, without hashing every field of every operation. The entry holds the
# operations themselves, so no id in a key can be reused by another object meanwhile.
_by_identity: dict[tuple[int, ...], tuple[tuple[Operation, ...], _Layout]] = {}
_BY_IDENTITY_MAX = 256


def _layout_of(operations: Sequence[Operation]) -> _Layout:
    key = tuple(operations)
    ids = tuple(map(id, key))
    known = _by_identity.get(ids)
    if known is not None:
        return known[1]
    try:
        layout = _cached_layout(key)
    except TypeError:  # an operation holding something unhashable: worked out each time
        return _build_layout(key)
    if len(_by_identity) >= _BY_IDENTITY_MAX:
        _by_identity.clear()
    _by_identity[ids] = (key, layout)
    return layout


class _RewriterState:
    """The attributes every part of the rewriter reads (``Rewriter.__init__`` sets them, and
    ``_build_states`` those that follow from the operations)."""

    report: RewriteReport
    _tokenizer: Tokenizer
    _out: list[bytes]
    _hold_from: int | None
    #: While holding: the pieces of ``_out`` counted so far, and their bytes.
    _held_counted: int
    _held_bytes: int
    _max_held: int
    _max_depth: int
    _model: TreeModel | None
    _model_base: int
    _charset: CharsetDecision | None
    _codec: str
    _drop_root: _Element | None
    _drop_kind: _DropKind
    _dropping: bool
    _capture: list[bytes] | None
    _capture_size: int
    _capture_state: _OpState | None
    _implicit_batch: list[_Element]
    #: A start tag is being given to the tree model: what it closes now, it closes by a
    #: start tag (see _Truncation._after_implicit_close).
    _in_start_tag: bool
    _collect: list[_Element] | None
    #: While an end tag's implied closes are handled: everything that end tag closes.
    _closing: Sequence[_Element]
    _wanted_state: tuple[frozenset[str] | None, bool] | None

    # -- setup -------------------------------------------------------------------------------

    def _build_states(self, operations: Sequence[Operation]) -> None:
        layout = _layout_of(operations)
        states: list[_OpState] = [
            _TruncateState(op) if isinstance(op, Truncate) else _OpState(op) for op in operations
        ]
        self._states = states
        self._start_index = _Index.of(layout.starts, states)
        self._end_index = _Index.of(layout.ends, states)
        self._item_index = _Index.of(layout.items, states)
        self._truncates: list[_TruncateState] = [
            state for state in states if isinstance(state, _TruncateState)
        ]
        self._active_truncates = 0  # how many are in _Phase.ACTIVE
        # The echo guard (see _Truncation._sample_dropped): pieces of the dropped text, the
        # end of the output checked last, and the containers' kept text.
        self._echo_on = any(
            isinstance(state.op, Truncate) and state.op.echo_guard for state in self._truncates
        )
        self._echo_samples: list[tuple[bytes, ...]] = []  # each piece in its forms
        self._echo_found: list[tuple[bytes, ...]] = []
        self._echo_keep = 0  # the longest form but one byte: output held back at its end
        # Inside a container: the element of the last token, when that was a start tag
        # (whitespace between does not count): a shadow root's template must follow its
        # host's start tag at once (see _Truncation._check_shadow_dom).
        self._last_start: _Element | None = None
        self._open_at_cut: list[_Element] = []  # the container and what was open in it
        self._echo_holding = False  # output held since a first find (see _check_echo)
        # 0: no cut yet; 1: cut, pieces being taken (not settled); 2: pieces final.
        self._echo_phase = 0
        self._unchecked: list[bytes] = []  # output handed on before the pieces were final
        self._unchecked_size = 0
        self._echo_nodes = 0  # dropped text nodes of sentence length seen
        self._echo_run: list[bytes] = []  # the dropped text node arriving in pieces
        self._echo_run_size = 0
        self._echo_tail = b""
        self._kept_text: list[bytes] = []
        self._kept_size = 0
        self._content_fallbacks: list[_OpState] = [states[i] for i in layout.content_fallbacks]
        self._always_model = layout.always_model
        self._light_after_cut = layout.light_after_cut
        self._foreign_exact = layout.foreign_exact
        self._cut_over = False  # every truncation just reached _Phase.DONE
        # Start tags with no candidate operation take a short path (see start_tag).
        self._start_any = layout.start_any
        self._start_names = layout.start_names
        self._end_any = layout.end_any
        self._end_names = layout.end_names
        self._light_wanted: frozenset[str] | None = layout.light_wanted
        self._light_only_with = layout.light_only_with
        self._whole_foreign = layout.whole_foreign
        self._foreign_wanted: frozenset[str] | None = layout.foreign_wanted

    @property
    def _stack(self) -> list[_Element]:
        model = self._model
        return model.stack if model is not None else []  # type: ignore[return-value]

    def _in_template(self) -> bool:
        """In inert template contents inside the container being counted: nothing there is
        shown with the article, so no paragraph or word of its lead is counted. A container
        that itself lies in a template (a page rendered from one by a script) counts inside
        it as any other: its bytes are what must not carry the rest of the article."""
        model = self._model
        if model is None:
            return False
        at = model.inert_template_at()
        if at < 0:
            return False
        stack = model.stack
        for state in self._truncates:
            if state.phase is _Phase.ACTIVE:
                container = state.container
                return any(stack[i] is container for i in range(at))
        return True


def _attribute_filter(
    starts: dict[str, list[tuple[Selector, int]]], end_names: frozenset[str]
) -> dict[str, frozenset[str]]:
    """Tag names whose every start-tag selector needs an attribute, with those attributes:
    the light path then wakes only for ``<script data-consent>``, not for every script."""
    only_with: dict[str, frozenset[str]] = {}
    for tag, entries in starts.items():
        needed = set()
        for selector, _state in entries:
            for alt in selector.alternatives:
                if alt.compounds[-1].tag == tag:
                    needed.add(_one_required_attribute(alt.compounds[-1]))
        if tag not in end_names and None not in needed:
            only_with[tag] = frozenset(name for name in needed if name is not None)
    return only_with


def _one_required_attribute(compound: Compound) -> str | None:
    """An attribute every element matching ``compound`` has, if there is one."""
    if compound.attrs:
        return compound.attrs[0].name
    if compound.ids:
        return "id"
    if compound.classes:
        return "class"
    return None


_FOREIGN_ROOTS = (Compound("svg"), Compound("math"))


def _is_under_foreign_root(selector: Selector) -> bool:
    """Whether the selector is ``svg X`` / ``math X``: X anywhere inside SVG or MathML. The
    light path follows foreign content with the tree model from its root element on, so
    it matches these as the model would from the start of the document."""
    return all(
        len(alt.compounds) == 2
        and alt.combinators[0] is Combinator.DESCENDANT
        and alt.compounds[0] in _FOREIGN_ROOTS
        for alt in selector.alternatives
    )


def _is_compound(selector: Selector) -> bool:
    """Whether the selector looks at the element alone (no ancestors)."""
    return all(len(alt.compounds) == 1 for alt in selector.alternatives)
