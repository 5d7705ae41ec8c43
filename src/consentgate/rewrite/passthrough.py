"""The wanted-names scanner of :meth:`.tokenizer.Tokenizer.set_wanted`: one compiled regular
expression per set of wanted names (cached) that consumes, in C, every run of complete
tokens no wanted tag is in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ._html import (
    FOREIGN_BREAKOUT,
    MATHML_OWN_ELEMENTS,
    PLAINTEXT,
    RAW_TEXT_ELEMENTS,
    SCRIPT,
    SPECIAL_MATHML,
    SPECIAL_SVG,
    SVG_OWN_ELEMENTS,
)
from .tokens import _ATTR_SKIP

_RAW_NAMES = RAW_TEXT_ELEMENTS
_DELIM = rb"[\t\n\f\r />]"
#: What follows a tag name up to and including the closing ``>`` (the grammar of ``_TAG``).
_TAG_REST = rb"(?:[\t\n\f\r /]*+" + _ATTR_SKIP + rb")*+[\t\n\f\r /]*+>"
_TAG_NAME = rb"[A-Za-z][^\t\n\f\r />]*+"
#: The common shape of a tag after its name — attributes each after whitespace, values quoted
#: or plain right after "=" — matched faster than the full grammar (``_TAG_REST``). Wherever
#: it matches, it ends where the full grammar ends (the spec's tokenizer reads these bytes
#: the same way); anything else (spaces around "=", quotes in a name, "/" between
#: attributes …) falls to the full grammar.
_FAST_REST = (
    rb"(?:[\t\n\f\r ]++[^\t\n\f\r />=\"'<]++"
    rb"""(?:="[^"]*+"|='[^']*+'|=[^\t\n\f\r >"'=<`]++)?+)*+[\t\n\f\r ]*+/?>"""
)
#: After the tag name: the common shape, else the full grammar.
_TAG_BODY = rb"(?:" + _FAST_REST + rb"|" + _TAG_REST + rb")"
_NAME_REST = rb"[^\t\n\f\r />]*+"


def _unnamed(names: frozenset[str]) -> bytes:
    """The first letter of a tag name that is none of ``names`` (whole names, ASCII-case-
    blind). Dispatched on that letter, so a tag pays a lookahead only when a name it could
    be starts with its letter, and then only over those names: far cheaper in ``re`` than one
    lookahead over every name at every tag."""
    by_letter: dict[str, list[str]] = {}
    for name in names:
        if name and "a" <= name[0] <= "z":
            by_letter.setdefault(name[0], []).append(name[1:])
    free = "".join(ch + ch.upper() for ch in "abcdefghijklmnopqrstuvwxyz" if ch not in by_letter)
    alternatives = [b"[" + free.encode() + b"]"] if free else []
    for letter, rests in sorted(by_letter.items()):
        # Longest first; an empty rest (a one-letter name) excludes the letter alone.
        options = b"|".join(
            re.escape(rest.encode("latin-1")) for rest in sorted(rests, key=len, reverse=True)
        )
        alternatives.append(
            b"[" + (letter + letter.upper()).encode() + b"](?!(?i:" + options + b")" + _DELIM + b")"
        )
    return b"(?:" + b"|".join(alternatives) + b")"


def _unnamed_tag(names: frozenset[str]) -> bytes:
    """A whole tag (after ``<`` or ``</``) whose name is none of ``names``."""
    return _unnamed(names) + _NAME_REST + _TAG_BODY


_SCRIPT_NAME = rb"(?i:script)"
_SCRIPT_D = _SCRIPT_NAME + _DELIM


def _name_alternation(names: frozenset[str]) -> bytes:
    return b"|".join(re.escape(name.encode("latin-1")) for name in sorted(names))


def _script_element(start_rest: bytes = _TAG_REST) -> bytes:
    """A whole script element with the script data escape states, as :meth:`Tokenizer._script`
    reads it: ``<!--`` escapes, ``<script`` inside an escape double-escapes (``</script`` there
    is text and returns to the escape), ``-->`` ends either escape, and ``</script`` outside a
    double escape ends the element. The three states are three "text without an event" runs;
    every quantifier is possessive, so a failed attempt costs one more pass at most.
    ``start_rest`` is the grammar of the start tag after its name."""
    normal = rb"(?:[^<]++|<(?!!--|/" + _SCRIPT_D + rb"))*+"
    escaped = rb"(?:[^<-]++|-(?!->)|<(?!/?" + _SCRIPT_D + rb"))*+"
    double = rb"(?:[^<-]++|-(?!->)|<(?!/" + _SCRIPT_D + rb"))*+"
    # The escape begins after "<!" so that "<!-->" ends it again at once.
    escape_block = escaped + rb"(?:<" + _SCRIPT_D + double + rb"</" + _SCRIPT_D + escaped + rb")*+"
    body = b"".join(
        (
            normal,
            rb"(?:<!(?=--)",
            escape_block,
            rb"(?:-->|<",
            _SCRIPT_D,
            double,
            rb"-->)",
            normal,
            rb")*+(?:<!(?=--)",
            escape_block,
            rb")?+(?=</",
            _SCRIPT_D,
            rb")",
        )
    )
    return b"".join(
        (_SCRIPT_NAME, rb"(?=", _DELIM, rb")", start_rest, body, rb"</", _SCRIPT_NAME, _TAG_REST)
    )


def _raw_element(name: str, start_rest: bytes = _TAG_REST) -> bytes:
    """A whole raw-text element: start tag, content up to ``</name`` + delimiter, end tag."""
    n = rb"(?i:" + re.escape(name.encode("latin-1")) + rb")"
    return b"".join(
        (n, rb"(?=", _DELIM, rb")", start_rest, rb"(?:[^<]++|<(?!/", n, _DELIM, rb"))*+</")
    ) + b"".join((n, _TAG_REST))


def _rest_without(attributes: frozenset[str]) -> bytes:
    """The rest of a start tag that has none of these attributes (names ASCII-case-blind)."""
    not_named = rb"(?!(?i:" + _name_alternation(attributes) + rb")[\t\n\f\r />=])"
    return rb"(?:[\t\n\f\r /]*+" + not_named + _ATTR_SKIP + rb")*+[\t\n\f\r /]*+>"


#: The rest of a start tag that is not self-closing: its tail (spaces and slashes before ``>``)
#: does not end with ``/``. (A ``/`` that ends an unquoted value is in the attribute.)
_OPEN_REST = rb"(?:[\t\n\f\r /]*+" + _ATTR_SKIP + rb")*+(?:[\t\n\f\r /]*[\t\n\f\r ])?>"


#: After "<!": <!-->, <!--->, or a comment up to the first "--!?>" after "<!--" …
_COMMENT_REST = rb"--(?:>|->|(?:[^-]++|-(?!-!?>))*+--!?>)"
#: … then, in HTML content, a doctype, "<!x>" or a CDATA lookalike up to the next ">" …
_HTML_AFTER_BANG = (_COMMENT_REST, rb"(?!--)[^>]*+>")
#: … and in foreign content a CDATA section, or a doctype or "<!x>".
_FOREIGN_AFTER_BANG = (
    _COMMENT_REST,
    rb"\[CDATA\[(?:[^\]]++|\](?!\]>))*+\]\]>",
    rb"(?!--|\[CDATA\[)[^>]*+>",
)


#: The content of an integration point that holds nothing but text and comments.
_TEXT_AND_COMMENTS = rb"(?:[^<]++|<!" + _COMMENT_REST + rb")*+"


def _named(names: Iterable[str]) -> bytes:
    """One of these tag names, ASCII-case-blind, as a whole name."""
    return rb"(?i:" + _name_alternation(frozenset(names)) + rb")(?=" + _DELIM + rb")"


def _whole_foreign(root: str, wanted: frozenset[str]) -> bytes:
    """A whole ``<svg>`` or ``<math>`` element (after its ``<``) whose content provably stays
    foreign up to its own end tag, as a browser builds it: no start tag that breaks out of
    foreign content (``font`` included, whatever its attributes), no nested ``svg``/``math``,
    no integration point but SVG's ``title``/``desc`` and MathML's ``mi``/``mo``/``mn``/``ms``/
    ``mtext`` holding text and comments only, none of ``wanted``, and only end tags of the
    namespace's own elements or of HTML raw-text elements (another HTML name could close an
    open HTML element; their own names are ignored there, unless a page keeps an unknown HTML
    element of that name open). Text, comments, CDATA and bogus comments as in foreign
    content. Anything else and the pattern does not
    match: the start tag is then reported as usual."""
    if root == "svg":
        own, text_points, other_points = (
            SVG_OWN_ELEMENTS,
            SPECIAL_SVG - {"foreignobject"},
            {"foreignobject"},
        )
    else:
        own, text_points, other_points = (
            MATHML_OWN_ELEMENTS,
            SPECIAL_MATHML - {"annotation-xml"},
            {"annotation-xml"},
        )
    text_points = text_points - wanted
    stop_start = (
        FOREIGN_BREAKOUT
        | SPECIAL_SVG
        | SPECIAL_MATHML
        | other_points
        | wanted
        | {"font", "svg", "math", PLAINTEXT}
    )
    # Text and comments only (formulas rendered by MathJax keep a comment in an mo): a
    # comment changes nothing a browser builds, in HTML content or foreign.
    text_only = [
        _named((name,)) + _OPEN_REST + _TEXT_AND_COMMENTS + rb"</" + _named((name,)) + _TAG_BODY
        for name in sorted(text_points)
    ]
    content = b"".join(
        (
            rb"(?:[^<]++",
            rb"|<(?:",
            _unnamed_tag(frozenset(stop_start)),
            b"".join(b"|" + alternative for alternative in text_only),
            rb")",
            rb"|</(?:",
            # An HTML raw-text element or script is never open while tags are read, so its
            # end tag cannot close one (svg has its own style and script).
            _named((own | _RAW_NAMES | {SCRIPT}) - wanted - other_points),
            _TAG_BODY,
            rb"|>|[^A-Za-z>][^>]*+>)",
            rb"|<!(?:",
            b"|".join(_FOREIGN_AFTER_BANG),
            rb")",
            rb"|<\?[^>]*+>",
            rb"|<(?=[^A-Za-z/!?])",
            rb")*+",
        )
    )
    return _named((root,)) + _OPEN_REST + content + rb"</" + _named((root,)) + _TAG_BODY


def _compile_passthrough(
    wanted: frozenset[str],
    foreign: bool,
    only_with: Mapping[str, frozenset[str]],
    whole_foreign: bool = False,
) -> re.Pattern[bytes]:
    """The longest run of complete tokens no wanted tag is in, from the match position.

    It never matches part of a token whose reading could change with more input (a tag needs
    its ``>``, a comment its end, a raw-text element its end tag), so it stops at the first
    wanted tag, ``plaintext`` start tag or incomplete token, where the careful path decides.
    ``only_with`` names wanted start tags that count only with one of the given attributes;
    without, they pass like unwanted ones. In ``foreign`` content no element is raw text and
    ``<![CDATA[`` opens a CDATA section. With ``whole_foreign`` (HTML content, ``svg`` and
    ``math`` wanted only because they start foreign content), such an element that provably
    stays foreign to its end tag passes whole (see :func:`_whole_foreign`).
    """
    # Alternatives grouped by the byte after "<", so a "<" costs one or two failed attempts.
    after_letter: list[bytes] = []
    if foreign:
        stops = wanted | {PLAINTEXT}
        after_letter.append(_unnamed_tag(stops))
        after_letter += [
            rb"(?i:" + re.escape(name.encode("latin-1")) + rb")(?=" + _DELIM + rb")"
            + _rest_without(only_with[name])
            for name in sorted(only_with)
        ]  # fmt: skip
    else:
        stops = wanted | _RAW_NAMES | {SCRIPT, PLAINTEXT}
        # The common case first: a tag no one wants.
        after_letter.append(_unnamed_tag(stops))
        if whole_foreign:
            # Inline icons and formulas: without this, each wakes Python and the tree model.
            after_letter += [
                _whole_foreign(root, wanted) for root in ("svg", "math") if root in wanted
            ]
        for name in sorted(only_with):
            rest = _rest_without(only_with[name])
            if name == SCRIPT:
                after_letter.append(_script_element(rest))
            elif name in _RAW_NAMES:
                after_letter.append(_raw_element(name, rest))
            elif name != PLAINTEXT:
                after_letter.append(
                    rb"(?i:" + re.escape(name.encode("latin-1")) + rb")(?=" + _DELIM + rb")" + rest
                )
        after_letter += [_raw_element(name) for name in sorted(_RAW_NAMES - wanted)]
        if SCRIPT not in wanted:
            after_letter.append(_script_element())
    end_tag = _unnamed_tag(wanted)
    after_slash = [
        end_tag,
        rb">",  # "</>" is ignored by browsers
        rb"[^A-Za-z>][^>]*+>",  # "</ x>" and the like: a bogus comment
    ]
    after_bang = _FOREIGN_AFTER_BANG if foreign else _HTML_AFTER_BANG
    return re.compile(
        b"".join(
            (
                rb"(?:[^<]++",
                # A "<" that starts no markup is text. Tried before the markup alternatives
                # (it excludes them all by the next byte, so the order changes no match):
                # otherwise every such "<" fails through each of them first.
                rb"|<(?=[^A-Za-z/!?])",
                rb"|<(?:(?:",  # every alternative after a letter begins with its letter
                b"|".join(after_letter),
                rb")|/(?:",
                b"|".join(after_slash),
                rb")|!(?:",
                b"|".join(after_bang),
                rb")|\?[^>]*+>)",
                rb")*+",
            )
        )
    )


class _Scan:
    """One wanted-names configuration: its names, its attribute filters and its pattern."""

    __slots__ = ("foreign", "only_with", "pattern", "wanted")

    def __init__(
        self,
        wanted: frozenset[str],
        foreign: bool,
        only_with: dict[str, frozenset[bytes]],
        whole_foreign: bool,
    ) -> None:
        self.wanted = wanted
        self.foreign = foreign
        self.only_with = only_with
        self.pattern = _compile_passthrough(
            wanted,
            foreign,
            {
                name: frozenset(a.decode("latin-1") for a in attrs)
                for name, attrs in only_with.items()
            },
            whole_foreign,
        )


_ScanKey = tuple[frozenset[str], bool, frozenset[tuple[str, frozenset[str]]] | None, bool]
_SCAN_CACHE: dict[_ScanKey, _Scan] = {}
_SCAN_CACHE_SIZE = 64


def _scan_for(
    names: frozenset[str],
    foreign: bool,
    only_with: Mapping[str, frozenset[str]] | None,
    whole_foreign: bool = False,
) -> _Scan:
    whole_foreign = whole_foreign and not foreign and not {"svg", "math"} & set(only_with or ())
    key: _ScanKey = (
        names,
        foreign,
        frozenset(only_with.items()) if only_with else None,
        whole_foreign,
    )
    scan = _SCAN_CACHE.get(key)
    if scan is None:
        wanted = _usable_names(frozenset(names))
        filters = {
            name: frozenset(a.lower().encode("latin-1") for a in _usable_attributes(attrs))
            for name, attrs in (only_with or {}).items()
            if name in wanted and name != PLAINTEXT  # plaintext is always reported
        }
        # A filter without a usable attribute name matches no tag: the name is not wanted.
        wanted -= {name for name, attrs in filters.items() if not attrs}
        filters = {name: attrs for name, attrs in filters.items() if attrs}
        scan = _Scan(wanted, foreign, filters, whole_foreign)
        if len(_SCAN_CACHE) >= _SCAN_CACHE_SIZE:
            _SCAN_CACHE.pop(next(iter(_SCAN_CACHE)))  # the oldest: operation sets rarely vary
        _SCAN_CACHE[key] = scan
    return scan


def _usable_names(names: frozenset[str]) -> frozenset[str]:
    """The names a tag can have: tokenizer names are ASCII-lower-cased latin-1 (any other name
    never matches, and leaving it out keeps the pattern encodable)."""
    return frozenset(
        name
        for name in names
        if name and all(ord(ch) < 256 for ch in name) and not any("A" <= ch <= "Z" for ch in name)
    )


def _usable_attributes(names: Iterable[str]) -> frozenset[str]:
    """Attribute names a tag can have (latin-1, no delimiter); compared ASCII-case-blind."""
    return frozenset(
        name
        for name in names
        if name
        and all(ord(ch) < 256 for ch in name)
        and not any(ch in "\t\n\f\r />=" for ch in name)
    )
