"""A small CSS selector language, parsed once and matched against the open-element stack.

Supported: type selectors (``div``), ``*``, ``#id``, ``.class``, ``[attr]``, ``[attr=value]``,
``[attr~=word]`` (values bare or quoted), compound selectors (``div.a#b[x]``), the descendant
(space) and child (``>``) combinators, and comma-separated groups. Tag and attribute names are
case-insensitive; ids, classes and attribute values are case-sensitive.
"""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from .errors import SelectorError

_WS_CHARS = "\t\n\f\r "
_name_of = operator.attrgetter("name")


class MatchableElement(Protocol):
    """What a selector needs to know about an element."""

    @property
    def name(self) -> str: ...

    def get_attr(self, name: str) -> str | None: ...

    @property
    def classes(self) -> frozenset[str]: ...

    def may_hold(self, values: tuple[bytes, ...]) -> bool:
        """False only when the element's attributes cannot hold every one of these ASCII
        values (a quick test before its attributes are decoded; True is always correct)."""
        ...


class AttrOp(enum.Enum):
    EXISTS = ""
    EQUALS = "="
    INCLUDES = "~="


@dataclass(frozen=True, slots=True)
class AttrTest:
    name: str
    op: AttrOp
    value: str = ""

    def matches(self, element: MatchableElement) -> bool:
        actual = element.get_attr(self.name)
        if actual is None:
            return False
        if self.op is AttrOp.EXISTS:
            return True
        if self.op is AttrOp.EQUALS:
            return actual == self.value
        return self.value in actual.split()


@dataclass(frozen=True, slots=True)
class Compound:
    """One element's tests: tag (None for any), ids, classes and attribute tests."""

    tag: str | None
    ids: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    attrs: tuple[AttrTest, ...] = ()
    #: The ASCII ids, classes and attribute values a match needs, as bytes: most elements of
    #: the tag (every <div> of a page, for ``div.article-body``) fail ``may_hold`` on them
    #: before their attributes are parsed.
    needles: tuple[bytes, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        values = [*self.ids, *self.classes]
        values += [t.value for t in self.attrs if t.op is not AttrOp.EXISTS and t.value]
        needles = tuple(v.encode("ascii") for v in values if v.isascii())
        object.__setattr__(self, "needles", needles)

    def matches(self, element: MatchableElement) -> bool:
        if self.tag is not None and element.name != self.tag:
            return False
        if self.needles and not element.may_hold(self.needles):
            return False
        for wanted_id in self.ids:
            if element.get_attr("id") != wanted_id:
                return False
        if self.classes:
            present = element.classes
            for cls in self.classes:
                if cls not in present:
                    return False
        return all(test.matches(element) for test in self.attrs)


class Combinator(enum.Enum):
    DESCENDANT = " "
    CHILD = ">"


@dataclass(frozen=True, slots=True)
class ComplexSelector:
    """Compounds left to right; ``combinators[i]`` joins ``compounds[i]`` and ``[i + 1]``."""

    compounds: tuple[Compound, ...]
    combinators: tuple[Combinator, ...]

    def matches(self, stack: Sequence[MatchableElement], index: int) -> bool:
        # The subject's own compound first, here: most elements asked fail it.
        compounds = self.compounds
        if not compounds[-1].matches(stack[index]):
            return False
        return len(compounds) == 1 or self._match_left(len(compounds) - 1, stack, index)

    def _match_from(self, part: int, stack: Sequence[MatchableElement], index: int) -> bool:
        if not self.compounds[part].matches(stack[index]):
            return False
        return part == 0 or self._match_left(part, stack, index)

    def _match_left(self, part: int, stack: Sequence[MatchableElement], index: int) -> bool:
        """``compounds[part]`` matches ``stack[index]``: do the compounds left of it match
        its ancestors?"""
        if self.combinators[part - 1] is Combinator.CHILD:
            return index > 0 and self._match_from(part - 1, stack, index - 1)
        if part == 1:
            # The outermost compound has nothing left of it: one test per ancestor, not a
            # call (``svg script`` looks at every <script>'s ancestors).
            ancestor = self.compounds[0]
            tag = ancestor.tag
            if tag is not None and not (ancestor.ids or ancestor.classes or ancestor.attrs):
                return tag in map(_name_of, islice(stack, index))  # the scan runs in C
            return any(ancestor.matches(stack[i]) for i in range(index - 1, -1, -1))
        return any(self._match_from(part - 1, stack, i) for i in range(index - 1, -1, -1))


class Selector:
    """A parsed selector group. Build with :meth:`parse` (or :func:`compile_selector`)."""

    __slots__ = ("_hash", "alternatives", "source")

    def __init__(self, source: str, alternatives: tuple[ComplexSelector, ...]) -> None:
        self.source = source
        self.alternatives = alternatives
        # Immutable, and hashed with every operation that holds it (the rewriter's set-up
        # and its memo look operations up): the nested parts are hashed once.
        self._hash = hash(alternatives)

    @classmethod
    def parse(cls, source: str) -> Selector:
        return cls(source, _Parser(source).parse())

    def matches(self, stack: Sequence[MatchableElement], index: int | None = None) -> bool:
        """Does the element at ``stack[index]`` (default: the last one) match?

        ``stack`` holds the open elements from the root down to the subject element.
        """
        if not stack:
            return False
        subject = len(stack) - 1 if index is None else index
        for alt in self.alternatives:  # noqa: SIM110 - a loop, not any(): asked of many
            if alt.matches(stack, subject):
                return True
        return False

    @property
    def subject_tags(self) -> frozenset[str] | None:
        """Tag names the subject element can have, or None when any tag can match."""
        tags: set[str] = set()
        for alt in self.alternatives:
            tag = alt.compounds[-1].tag
            if tag is None:
                return None
            tags.add(tag)
        return frozenset(tags)

    @property
    def simple_tag(self) -> str | None:
        """The tag name when the selector is nothing but one type selector (``body``)."""
        if len(self.alternatives) != 1:
            return None
        (alt,) = self.alternatives
        if len(alt.compounds) != 1:
            return None
        compound = alt.compounds[0]
        if compound.ids or compound.classes or compound.attrs:
            return None
        return compound.tag

    def __repr__(self) -> str:
        return f"Selector({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and other.alternatives == self.alternatives

    def __hash__(self) -> int:
        return self._hash


def compile_selector(selector: str | Selector) -> Selector:
    """Parse a selector string (a :class:`Selector` is returned unchanged).

    Selectors are immutable values, and the same few strings ("body", "head", the
    configured ones) are compiled for every response's operations: each is parsed once."""
    return selector if isinstance(selector, Selector) else _parse_once(selector)


@functools.lru_cache(maxsize=512)
def _parse_once(source: str) -> Selector:
    return Selector.parse(source)


_IDENT = re.compile(r"-?(?:[A-Za-z_\u00a0-\U0010ffff])[\w\u00a0-\U0010ffff-]*")
#: Ids and classes: real pages use names CSS would reject (``#3col``), so allow any word chars.
_NAME = re.compile(r"[\w\u00a0-\U0010ffff-]+")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR_NAME = re.compile(r"[^\t\n\f\r \"'>/=\[\]~|^$*]+")


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def error(self, problem: str) -> SelectorError:
        return SelectorError(f"invalid selector {self.source!r}: {problem} at position {self.pos}")

    def peek(self) -> str:
        return self.source[self.pos : self.pos + 1]

    def skip_ws(self) -> bool:
        start = self.pos
        while self.peek() and self.peek() in _WS_CHARS:
            self.pos += 1
        return self.pos > start

    def parse(self) -> tuple[ComplexSelector, ...]:
        if not self.source.strip():
            raise self.error("empty selector")
        alternatives = [self.parse_complex()]
        while self.peek() == ",":
            self.pos += 1
            alternatives.append(self.parse_complex())
        if self.pos != len(self.source):
            raise self.error(f"unexpected {self.peek()!r}")
        return tuple(alternatives)

    def parse_complex(self) -> ComplexSelector:
        self.skip_ws()
        if self.peek() in ("", ","):
            raise self.error("empty selector in group")
        compounds = [self.parse_compound()]
        combinators: list[Combinator] = []
        while True:
            had_ws = self.skip_ws()
            char = self.peek()
            if char in ("", ","):
                break
            if char == ">":
                self.pos += 1
                self.skip_ws()
                if self.peek() in ("", ",", ">"):
                    raise self.error("'>' needs a selector on its right")
                combinators.append(Combinator.CHILD)
            elif char in "+~":
                raise self.error(f"the {char!r} combinator is not supported")
            elif had_ws:
                combinators.append(Combinator.DESCENDANT)
            else:
                raise self.error(f"unexpected {char!r}")
            compounds.append(self.parse_compound())
        return ComplexSelector(tuple(compounds), tuple(combinators))

    def parse_compound(self) -> Compound:
        tag: str | None = None
        ids: list[str] = []
        classes: list[str] = []
        attrs: list[AttrTest] = []
        start = self.pos
        if self.peek() == "*":
            self.pos += 1
        else:
            match = _TAG_NAME.match(self.source, self.pos)
            if match:
                tag = match.group(0).lower()
                self.pos = match.end()
        while True:
            char = self.peek()
            if char == "#":
                ids.append(self.parse_name("an id after '#'"))
            elif char == ".":
                classes.append(self.parse_name("a class name after '.'"))
            elif char == "[":
                attrs.append(self.parse_attr())
            elif char == ":":
                raise self.error("pseudo-classes and pseudo-elements are not supported")
            elif char == "\\":
                raise self.error("escapes are not supported")
            else:
                break
        if self.pos == start:
            found = f", found {char!r}" if char else ""
            raise self.error(f"expected a selector{found}")
        return Compound(tag, tuple(ids), tuple(classes), tuple(attrs))

    def parse_name(self, what: str) -> str:
        self.pos += 1
        match = _NAME.match(self.source, self.pos)
        if not match:
            raise self.error(f"expected {what}")
        self.pos = match.end()
        return match.group(0)

    def parse_attr(self) -> AttrTest:
        self.pos += 1
        self.skip_ws()
        match = _ATTR_NAME.match(self.source, self.pos)
        if not match:
            raise self.error("expected an attribute name after '['")
        name = match.group(0).lower()
        self.pos = match.end()
        self.skip_ws()
        if self.peek() == "]":
            self.pos += 1
            return AttrTest(name, AttrOp.EXISTS)
        if self.source.startswith("~=", self.pos):
            op = AttrOp.INCLUDES
            self.pos += 2
        elif self.peek() == "=":
            op = AttrOp.EQUALS
            self.pos += 1
        elif self.peek() in ("^", "$", "*", "|"):
            raise self.error(f"the attribute operator {self.peek()}= is not supported")
        elif not self.peek():
            raise self.error("unclosed '['")
        else:
            raise self.error(f"unexpected {self.peek()!r} in attribute selector")
        self.skip_ws()
        value = self.parse_value()
        self.skip_ws()
        if self.peek() in ("i", "s", "I", "S") and self.source[self.pos + 1 : self.pos + 2] == "]":
            raise self.error("attribute selector flags (i/s) are not supported")
        if self.peek() != "]":
            raise self.error("unclosed '['" if not self.peek() else "expected ']'")
        self.pos += 1
        return AttrTest(name, op, value)

    def parse_value(self) -> str:
        quote = self.peek()
        if quote in ("'", '"'):
            end = self.source.find(quote, self.pos + 1)
            if end == -1:
                raise self.error("unterminated string")
            value = self.source[self.pos + 1 : end]
            self.pos = end + 1
            return value
        match = _IDENT.match(self.source, self.pos) or _NAME.match(self.source, self.pos)
        if not match:
            raise self.error("expected an attribute value (bare word or quoted string)")
        self.pos = match.end()
        return match.group(0)
