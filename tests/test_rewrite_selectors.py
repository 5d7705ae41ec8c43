"""The selector language: each construct, matching against an element stack, and errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from consentgate.rewrite import Selector, SelectorError, compile_selector


@dataclass
class El:
    name: str
    attrs: dict[str, str] = field(default_factory=dict)

    def get_attr(self, name: str) -> str | None:
        return self.attrs.get(name)

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(self.attrs.get("class", "").split())

    def may_hold(self, values: tuple[bytes, ...]) -> bool:
        return True  # no bytes to look at: the attributes decide


STACK = [
    El("html"),
    El("body", {"class": "page"}),
    El("div", {"class": "article-body main", "id": "story"}),
    El("section"),
    El("p", {"data-x": "1", "rel": "a b"}),
]


def matches(selector: str, stack: list[El] = STACK) -> bool:
    return Selector.parse(selector).matches(stack)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("p", True),
        ("P", True),
        ("div", False),
        ("*", True),
        ("p[data-x]", True),
        ("p[data-x=1]", True),
        ("p[data-x='1']", True),
        ('p[DATA-X="2"]', False),
        ("p[rel~=b]", True),
        ("p[rel~=c]", False),
        ("p[rel=a]", False),
        ("div p", True),
        ("div > p", False),
        ("section > p", True),
        ("div.article-body > section > p", True),
        ("body div.main#story p", True),
        ("#story p", True),
        (".page > div p", True),
        (".nope p", False),
        ("span, p", True),
        ("span, em", False),
        ("html > body > div > section > p", True),
        ("html > div p", False),
    ],
)
def test_selector_matches_stack(selector: str, expected: bool) -> None:
    assert matches(selector) is expected


def test_selector_matches_at_given_index() -> None:
    assert Selector.parse("body > div#story").matches(STACK, 2)


def test_descendant_backtracks() -> None:
    stack = [El("div", {"class": "a"}), El("div"), El("span"), El("div"), El("p")]
    assert matches("div.a > div span div p", stack)
    assert not matches("div.a > span p", stack)


def test_subject_tags_index() -> None:
    assert Selector.parse("div p, a.x").subject_tags == frozenset({"p", "a"})
    assert Selector.parse("div .x").subject_tags is None
    assert Selector.parse("body").simple_tag == "body"
    assert Selector.parse("body.x").simple_tag is None


def test_compile_selector_accepts_parsed() -> None:
    parsed = Selector.parse("p")
    assert compile_selector(parsed) is parsed
    assert compile_selector("p") == parsed


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("", "empty selector"),
        ("div,", "empty selector in group"),
        ("div >", "'>' needs a selector"),
        ("a:hover", "pseudo-classes"),
        ("a + b", "combinator is not supported"),
        ("a ~ b", "combinator is not supported"),
        ("a[href^=x]", "operator ^= is not supported"),
        ("a[href", "unclosed '['"),
        ("a[href='x]", "unterminated string"),
        ("a[=x]", "expected an attribute name"),
        ("a[x=]", "expected an attribute value"),
        ("#", "expected an id"),
        ("div.", "expected a class name"),
        ("div!", "unexpected '!'"),
        ("a[x=y i]", "flags"),
    ],
)
def test_invalid_selectors_name_the_problem(selector: str, problem: str) -> None:
    with pytest.raises(SelectorError, match="invalid selector") as info:
        Selector.parse(selector)
    assert problem in str(info.value)
    assert isinstance(info.value, ValueError)
