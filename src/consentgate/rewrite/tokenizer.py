"""A streaming, byte-level HTML tokenizer that never changes a byte.

It splits input into tokens the way a browser's tokenizer would (WHATWG "tokenization"), but
only as far as a rewriter needs: text, start tags, end tags, raw-text element content, and
"other" markup (comments, doctypes, processing instructions, CDATA) which is passed through.
Every input byte ends up in exactly one token, in order, so concatenating the tokens gives the
input back. Only an incomplete token at the end of the input is held back; comments and
raw-text contents are handed on in pieces so memory stays bounded.

The handler decides the content model after each start tag (a browser does not treat
``<script>`` inside ``<svg>`` as raw text, for example), so the tokenizer asks it.

**Wanted names.** A handler that only acts on a few tag names calls
:meth:`Tokenizer.set_wanted`. From then on one compiled regular expression (one per set of
names, cached) consumes, in C, every run of text, every tag whose name is not wanted,
comments, doctypes and whole raw-text and script elements that are not wanted, and hands those
bytes to ``handler.passthrough`` in bulk; Python wakes only at wanted tags. The tokens it does
report are exactly those the full tokenizer would report for those names (the tests compare
the two). Wanted mode assumes HTML content (no CDATA sections): a handler leaves it
(``set_wanted(None)``) while inside ``<svg>``/``<math>``, so it must want those names.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

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
from .errors import RewriteError, RewriteErrorReason

_WS = rb"\t\n\f\r "
#: Attribute value: quoted values may contain ``>``; an unterminated quote swallows the rest of
#: the buffer so that an incomplete tag never matches early (chunking must not matter).
_VALUE = rb"""(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >]*+)"""
_ATTR = rb"([^\t\n\f\r />][^\t\n\f\r />=]*+)(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(" + _VALUE + rb"))?+"
#: A complete start or end tag. All quantifiers are possessive: no backtracking blow-up, and a
#: failed match always means "need more input" because the grammar accepts any byte sequence
#: that eventually reaches an unquoted ``>``.
_ATTR_SKIP = rb"[^\t\n\f\r />][^\t\n\f\r />=]*+(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb")?+"
_TAG = re.compile(
    rb"</?([A-Za-z][^\t\n\f\r />]*+)(?:[\t\n\f\r /]*+"
    + _ATTR_SKIP
    + rb")*+(?P<tail>[\t\n\f\r /]*+)>"
)
_ATTR_AT = re.compile(rb"[\t\n\f\r /]*+" + _ATTR)
#: Lower-cased names of recently seen tag names (bounded); also makes equal names the same
#: ``str`` object, so comparisons and set lookups take their fast paths.
_NAME_CACHE: dict[bytes, str] = {}
_NAME_CACHE_SIZE = 2048
_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_EVENT = re.compile(rb"<!--|-->|<(/?)script[\t\n\f\r />]", re.IGNORECASE)
#: Outside the escapes only this ends a script; a literal-led pattern is searched fast in C.
_SCRIPT_END = re.compile(rb"</script[\t\n\f\r />]", re.IGNORECASE)
_CDATA_OPEN = b"<![CDATA["
#: Bytes after "<" that can start markup (anything else makes the "<" text), and the search
#: for the next such "<" (or a "<" at the end, which waits for the next byte).
_MARKUP_SECOND = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/!?")
_MARKUP_START = re.compile(rb"<(?:[A-Za-z/!?]|\Z)")
_DEFAULT_MAX_TOKEN = 1 << 20


class ContentModel(enum.Enum):
    """How the tokenizer reads what follows a start tag."""

    DATA = "data"
    RAWTEXT = "rawtext"  # style, textarea, title, xmp, iframe, noembed, noframes, noscript
    SCRIPT = "script"  # raw text with the script escape states
    PLAINTEXT = "plaintext"  # everything up to end of input is text


class StartTag:
    """A complete start tag; ``raw`` is its exact bytes.

    Subclasses may add slots (the tokenizer builds its tags with the class it was given); the
    attribute positions are only worked out when the attributes are asked for.
    """

    __slots__ = ("_attrs", "name", "raw", "self_closing")

    def __init__(self, raw: bytes, name: str, self_closing: bool) -> None:
        self.raw = raw
        self.name = name
        self.self_closing = self_closing
        self._attrs: dict[bytes, bytes] | None = None

    @property
    def name_end(self) -> int:
        """Where the tag name ends in ``raw`` (``<`` plus the name: lower-casing and latin-1
        keep the length)."""
        return 1 + len(self.name)

    @property
    def attrs_end(self) -> int:
        """Where the attributes end in ``raw`` (the start of the trailing spaces/slashes)."""
        match = _TAG.match(self.raw)
        if match is None:  # a StartTag is only ever made from a complete tag
            raise RuntimeError(f"not a complete start tag: {self.raw[:40]!r}")
        return match.start("tail")

    @property
    def raw_attrs(self) -> dict[bytes, bytes]:
        """Attribute names (lower-cased) to raw value bytes; the first of duplicates wins."""
        if self._attrs is None:
            attrs: dict[bytes, bytes] = {}
            # One findall in C rather than a match per attribute (a tag with 100k attributes
            # took 0.7 s): the attributes of a complete tag follow each other without a gap,
            # so the successive matches are exactly those iter_attributes finds.
            for name, value in _ATTR_AT.findall(self.raw, self.name_end, self.attrs_end):
                if value[:1] in b"\"'" and value:
                    value = value[1:-1]
                attrs.setdefault(name.lower(), value)
            self._attrs = attrs
        return self._attrs


class EndTag:
    """A complete end tag; ``raw`` is its exact bytes."""

    __slots__ = ("name", "raw")

    def __init__(self, raw: bytes, name: str) -> None:
        self.raw = raw
        self.name = name


def iter_attributes(raw: bytes, start: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    """Yield (lower-cased name, raw value without quotes) for the attributes in raw[start:end]."""
    pos = start
    while True:
        match = _ATTR_AT.match(raw, pos, end)
        if match is None:
            return
        pos = match.end()
        value = match.group(2)
        if value is None:
            value = b""
        elif value[:1] in (b'"', b"'"):
            value = value[1:-1]
        yield match.group(1).lower(), value


class TokenHandler(Protocol):
    """Receives tokens in input order; concatenating every ``raw`` and data gives the input."""

    def text(self, data: bytes) -> None: ...

    def start_tag(self, tag: StartTag) -> ContentModel: ...

    def end_tag(self, tag: EndTag) -> None: ...

    def raw_text(self, data: bytes) -> None: ...

    def other(self, data: bytes) -> None: ...

    def in_foreign_content(self) -> bool: ...

    def passthrough(self, data: bytes) -> None:
        """Bytes no wanted name is in (only called after :meth:`Tokenizer.set_wanted` with a
        set): text, unwanted tags, comments, unwanted raw-text and script elements whole."""
        ...


class _Mode(enum.Enum):
    DATA = 0
    RAWTEXT = 1
    SCRIPT = 2
    PLAINTEXT = 3
    COMMENT = 4  # until --> or --!>
    BOGUS = 5  # until >
    CDATA = 6  # until ]]>


_raw_end_patterns: dict[str, re.Pattern[bytes]] = {}


def _raw_end_pattern(name: str) -> re.Pattern[bytes]:
    pattern = _raw_end_patterns.get(name)
    if pattern is None:
        pattern = re.compile(b"</" + re.escape(name.encode()) + rb"[\t\n\f\r />]", re.IGNORECASE)
        _raw_end_patterns[name] = pattern
    return pattern


# -- the wanted-names scanner ----------------------------------------------------------------

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


def _named(names: Iterable[str]) -> bytes:
    """One of these tag names, ASCII-case-blind, as a whole name."""
    return rb"(?i:" + _name_alternation(frozenset(names)) + rb")(?=" + _DELIM + rb")"


def _whole_foreign(root: str, wanted: frozenset[str]) -> bytes:
    """A whole ``<svg>`` or ``<math>`` element (after its ``<``) whose content provably stays
    foreign up to its own end tag, as a browser builds it: no start tag that breaks out of
    foreign content (``font`` included, whatever its attributes), no nested ``svg``/``math``,
    no integration point but SVG's ``title``/``desc`` and MathML's ``mi``/``mo``/``mn``/``ms``/
    ``mtext`` holding text only, none of ``wanted``, and only end tags of the namespace's own
    elements or of HTML raw-text elements (another HTML name could close an open HTML element;
    their own names are ignored there, unless a page keeps an unknown HTML element of that name
    open). Text, comments,
    CDATA and bogus comments as in foreign content. Anything else and the pattern does not
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
    text_only = [
        _named((name,)) + _OPEN_REST + rb"[^<]*+</" + _named((name,)) + _TAG_BODY
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
                rb"|<(?:(?:",  # every alternative after a letter begins with its letter
                b"|".join(after_letter),
                rb")|/(?:",
                b"|".join(after_slash),
                rb")|!(?:",
                b"|".join(after_bang),
                rb")|\?[^>]*+>)",
                rb"|<(?=[^A-Za-z/!?])",  # a "<" that starts no markup is text
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


def _lower_name(name_bytes: bytes) -> str:
    name = _NAME_CACHE.get(name_bytes)
    if name is None:
        name = name_bytes.lower().decode("latin-1")
        if len(_NAME_CACHE) < _NAME_CACHE_SIZE:
            _NAME_CACHE[name_bytes] = name
    return name


class Tokenizer:
    """Feed bytes, get handler calls. ``close()`` hands over whatever is still held."""

    def __init__(
        self,
        handler: TokenHandler,
        *,
        max_token_bytes: int = _DEFAULT_MAX_TOKEN,
        start_tag_type: type[StartTag] = StartTag,
    ) -> None:
        self._handler = handler
        self._start_tag_type = start_tag_type
        self._max_token = max_token_bytes
        self._buf = b""
        # An incomplete tag waiting for its ">" keeps later chunks here, joined once one brings
        # a ">": a long tag fed in small pieces is copied once, not once per piece.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._mode = _Mode.DATA
        self._raw_name = ""
        self._script_state = 0  # 0 normal, 1 escaped (<!--), 2 double escaped (<!--<script>)
        self._retry_from = 0  # an incomplete tag is only re-matched once a new ">" arrived
        self._scan: _Scan | None = None
        self._wanted: frozenset[str] | None = None
        self._pass_re: re.Pattern[bytes] | None = None
        # The end tag of a raw-text or script element whose start tag was passed through
        # (an attribute filter said no) passes too, as the pattern passes the whole element.
        self._pass_end = False
        # Where text and "other" markup go: the handler's text/other, or passthrough in
        # wanted mode. ``_sink`` receives the content of the current non-DATA mode; it is
        # chosen when the mode is entered, so a set_wanted call inside an element does not
        # move the rest of that element.
        self._text_out: Callable[[bytes], None] = handler.text
        self._other_out: Callable[[bytes], None] = handler.other
        self._sink: Callable[[bytes], None] = handler.raw_text

    @property
    def held_bytes(self) -> int:
        """Bytes received but not yet handed to the handler (an incomplete token)."""
        return len(self._buf) + self._pending_size

    @property
    def wanted(self) -> frozenset[str] | None:
        return self._wanted

    def set_wanted(
        self,
        names: frozenset[str] | None,
        *,
        foreign: bool = False,
        only_with: Mapping[str, frozenset[str]] | None = None,
        whole_foreign: bool = False,
    ) -> None:
        """Report only tags with these (lower-case) names, plus ``plaintext`` start tags, and
        hand everything else to ``handler.passthrough``; ``None`` reports every token.

        May be called at any time, also from inside a handler call: it takes effect at the
        next token. With a set, the handler promises HTML content, where the content model
        of an unwanted start tag is the HTML one by name; with ``foreign=True`` it promises
        foreign content instead (the adjusted current node is an SVG/MathML element): no raw
        text, and ``<![CDATA[`` opens a CDATA section. Either way it must want every name
        whose tag could end that promise (``svg``/``math`` to enter foreign content; in it,
        its ends, integration points, HTML breakout tags and the end tags of open HTML
        elements).

        ``only_with`` maps wanted names to attribute names: such a start tag is reported only
        when it has one of them (``script`` with ``data-consent``, say); without, it passes
        with its whole element if that is raw text or a script, end tag included. Pass the
        same mapping object again to hit the pattern cache quickly.

        ``whole_foreign`` (HTML content only): an ``<svg>`` or ``<math>`` element that provably
        stays foreign up to its own end tag and holds no wanted name passes whole, like an
        unwanted raw-text element; any other such start tag is reported. For a handler that
        wants ``svg``/``math`` only to follow foreign content, not to act on them.
        """
        if names is None:
            self._scan = None
            self._wanted = None
            self._pass_re = None
            self._pass_end = False
            self._text_out = self._handler.text
            self._other_out = self._handler.other
            return
        scan = _scan_for(names, foreign, only_with, whole_foreign)
        self._scan = scan
        self._wanted = scan.wanted
        self._pass_re = scan.pattern
        self._text_out = self._other_out = self._handler.passthrough

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._buf:
            if self._retry_from and self._mode is _Mode.DATA and b">" not in data:
                # The held tag cannot end in this chunk: keep it aside (no re-copying).
                self._pending.append(bytes(data))
                self._pending_size += len(data)
                if len(self._buf) + self._pending_size > self._max_token:
                    raise RewriteError(
                        RewriteErrorReason.TOKEN_TOO_LARGE,
                        f"a tag or markup declaration exceeds {self._max_token} bytes",
                    )
                return
            if self._pending:
                self._pending.append(bytes(data))
                self._join_pending()
            else:
                self._buf += data
        else:
            self._buf = bytes(data)
            self._retry_from = 0
        pos = self._run(0, final=False)
        self._buf = self._buf[pos:]
        self._retry_from = max(0, self._retry_from - pos)

    def _join_pending(self) -> None:
        self._buf = b"".join([self._buf, *self._pending])
        self._pending.clear()
        self._pending_size = 0

    def close(self) -> None:
        if self._pending:
            self._join_pending()
        pos = self._run(0, final=True)
        rest = self._buf[pos:]
        self._buf = b""
        if rest:
            # Incomplete markup at end of input: browsers drop it or show it as text; we keep
            # the bytes as they are.
            if self._mode is _Mode.DATA:
                self._other_out(rest)
            else:
                self._sink(rest)

    # -- the state machine -------------------------------------------------------------------

    def _run(self, pos: int, *, final: bool) -> int:
        """Consume tokens from ``pos``; return where the held (incomplete) part begins."""
        while pos < len(self._buf):
            mode = self._mode
            if mode is _Mode.DATA:
                if self._pass_re is None:
                    new_pos = self._data_run(pos, final)
                else:
                    new_pos = self._wanted_run(pos, final)
            elif mode is _Mode.SCRIPT:
                new_pos = self._script(pos, final)
            elif mode is _Mode.RAWTEXT:
                new_pos = self._rawtext(pos, final)
            elif mode is _Mode.COMMENT:
                new_pos = self._until(pos, _COMMENT_END, 3, final)
            elif mode is _Mode.BOGUS:
                new_pos = self._until_bytes(pos, b">", final)
            elif mode is _Mode.CDATA:
                new_pos = self._until_bytes(pos, b"]]>", final)
            else:
                self._sink(self._buf[pos:])
                new_pos = len(self._buf)
            if new_pos == pos and self._mode is mode:
                break  # the rest is an incomplete token (a mode switch alone is progress)
            pos = new_pos
        return pos

    def _data_run(self, pos: int, final: bool) -> int:
        """Data state: hand on text and complete tags in one loop (the hot path).

        Anything unusual (markup declarations, a ``<`` that starts no tag, an incomplete tag,
        a tag that changes the content model) goes through :meth:`_data` / :meth:`_tag`, so the
        handler sees exactly the same calls. Returns when the buffer is used up, the mode
        changed, the handler asked for wanted names, or an incomplete token is held (then
        without progress from that token).
        """
        if self._retry_from:
            # An incomplete tag is held from the last call: the careful path decides.
            return self._data(pos, final)
        buf = self._buf
        size = len(buf)
        handler = self._handler
        text = handler.text
        start_tag = handler.start_tag
        end_tag = handler.end_tag
        make_start = self._start_tag_type
        find = buf.find
        tag_match = _TAG.match
        names = _NAME_CACHE
        max_token = self._max_token
        data_model = ContentModel.DATA
        while pos < size:
            lt = find(b"<", pos)
            if lt == -1:
                text(buf[pos:])
                return size
            if lt > pos:
                text(buf[pos:lt])
                pos = lt
                if self._pass_re is not None:
                    return pos
            match = tag_match(buf, lt)
            if match is None:
                if lt + 1 < size and buf[lt + 1] not in _MARKUP_SECOND:
                    # A "<" that starts no markup is text, and so is everything up to the
                    # next possible markup start: one C search, so "a < b" text stays linear.
                    more = _MARKUP_START.search(buf, lt + 1)
                    pos = size if more is None else more.start()
                    text(buf[lt:pos])
                    if self._pass_re is not None:
                        return pos
                    continue
                # Not a tag, or an incomplete one: the careful path decides, as before (it
                # returns without progress when the token is incomplete).
                new_pos = self._data(lt, final)
                if new_pos == lt or self._mode is not _Mode.DATA or self._pass_re is not None:
                    return new_pos
                pos = new_pos
                continue
            pos = match.end()
            if pos - lt > max_token:
                # The same limit as for a tag held across chunks, so that the chunking
                # never decides whether a page can be rewritten.
                raise RewriteError(
                    RewriteErrorReason.TOKEN_TOO_LARGE,
                    f"a tag or markup declaration exceeds {max_token} bytes",
                )
            name_bytes = match.group(1)
            name = names.get(name_bytes)
            if name is None:
                name = name_bytes.lower().decode("latin-1")
                if len(names) < _NAME_CACHE_SIZE:
                    names[name_bytes] = name
            if buf[lt + 1] == 0x2F:  # "</"
                end_tag(EndTag(buf[lt:pos], name))
                if self._pass_re is not None:
                    return pos
                continue
            # Self-closing when the tail (spaces and slashes before ">") ends with "/"; a "/"
            # right before ">" can also end an unquoted attribute value (<a href=/>).
            model = start_tag(
                make_start(
                    buf[lt:pos],
                    name,
                    buf[pos - 2] == 0x2F and match.start(2) < pos - 1,
                )
            )
            if model is not data_model:
                self._enter_model(model, name, handler.raw_text)
                return pos
            if self._pass_re is not None:
                return pos
        return pos

    def _wanted_run(self, pos: int, final: bool) -> int:
        """Data state with wanted names: the compiled pattern consumes everything up to the
        next wanted tag in one C call; that tag (or whatever stopped the pattern: an incomplete
        token, an unwanted raw-text element without its end yet) goes the careful way.

        Returns when the buffer is used up, the mode or the wanted names changed, or an
        incomplete token is held.
        """
        if self._retry_from:
            return self._data(pos, final)  # a held incomplete tag: see _tag
        pattern = self._pass_re
        if pattern is None:  # set_wanted(None) since _run looked
            return pos
        buf = self._buf
        size = len(buf)
        scan = pattern.match
        passthrough = self._handler.passthrough
        tag_match = _TAG.match
        # The scan looks at most max_token_bytes ahead: a tag longer than that never fits, so
        # it reaches the careful path and fails as it does when held across chunks (the
        # chunking must not decide whether a page can be rewritten). Tokens that merely
        # cross a window's end take the careful path too.
        window = self._max_token
        while pos < size:
            match = scan(buf, pos, pos + window)
            end = match.end() if match is not None else pos
            if end > pos:
                self._pass_end = False  # the first token passed was that end tag
                passthrough(buf[pos:end])
                pos = end
                if pos >= size or self._pass_re is not pattern:
                    return pos
            tag = tag_match(buf, pos)
            if tag is not None:
                new_pos = self._tag_token(tag, pos)
            else:
                new_pos = self._data(pos, final)
                if new_pos == pos:
                    return pos  # incomplete: held
            if self._mode is not _Mode.DATA or self._pass_re is not pattern:
                return new_pos
            pos = new_pos
        return pos

    def _tag_token(self, match: re.Match[bytes], pos: int) -> int:
        """Hand on the complete tag ``match`` found at ``pos``: to the handler, or in wanted
        mode to passthrough when its name is not wanted (then its content model is the HTML
        one, by name)."""
        buf = self._buf
        end = match.end()
        if end - pos > self._max_token:
            raise RewriteError(
                RewriteErrorReason.TOKEN_TOO_LARGE,
                f"a tag or markup declaration exceeds {self._max_token} bytes",
            )
        name = _lower_name(match.group(1))
        is_end = buf[pos + 1] == 0x2F
        scan = self._scan
        handler = self._handler
        if scan is None:
            if is_end:
                handler.end_tag(EndTag(buf[pos:end], name))
                return end
            tag = self._start_tag_type(buf[pos:end], name, match.group("tail").endswith(b"/"))
            self._enter_model(handler.start_tag(tag), name, handler.raw_text)
            return end
        if is_end:
            if name in scan.wanted and not self._pass_end:
                handler.end_tag(EndTag(buf[pos:end], name))
            else:
                handler.passthrough(buf[pos:end])
            self._pass_end = False
            return end
        if name in scan.wanted or name == PLAINTEXT:
            tag = self._start_tag_type(buf[pos:end], name, match.group("tail").endswith(b"/"))
            required = scan.only_with.get(name)
            if required is None or not required.isdisjoint(tag.raw_attrs):
                self._enter_model(handler.start_tag(tag), name, handler.raw_text)
                return end
        handler.passthrough(buf[pos:end])
        if not scan.foreign:
            if name == SCRIPT:
                self._enter_model(ContentModel.SCRIPT, name, handler.passthrough)
            elif name in _RAW_NAMES:
                self._enter_model(ContentModel.RAWTEXT, name, handler.passthrough)
            # A wanted name said no by its filter: its end tag must pass too (an unwanted
            # one passes anyway).
            self._pass_end = self._mode is not _Mode.DATA and name in scan.wanted
        return end

    def _enter_model(self, model: ContentModel, name: str, sink: Callable[[bytes], None]) -> None:
        if model is ContentModel.SCRIPT:
            self._mode = _Mode.SCRIPT
            self._script_state = 0
            self._sink = sink
        elif model is ContentModel.RAWTEXT:
            self._mode = _Mode.RAWTEXT
            self._raw_name = name
            self._sink = sink
        elif model is ContentModel.PLAINTEXT:
            self._mode = _Mode.PLAINTEXT
            self._sink = sink

    def _enter_other(self, mode: _Mode) -> None:
        self._mode = mode
        self._sink = self._other_out

    def _data(self, pos: int, final: bool) -> int:
        buf = self._buf
        lt = buf.find(b"<", pos)
        if lt == -1:
            self._text_out(buf[pos:])
            return len(buf)
        if lt > pos:
            self._text_out(buf[pos:lt])
            return lt
        # buf[pos] == "<"
        nxt = buf[pos + 1 : pos + 2]
        if not nxt:
            return self._incomplete(pos, final, as_text=True)
        if nxt.isalpha():
            return self._tag(pos, final)
        if nxt == b"/":
            return self._slash(pos, final)
        if nxt == b"!":
            return self._bang(pos, final)
        if nxt == b"?":
            self._enter_other(_Mode.BOGUS)
            return self._until_bytes(pos, b">", final, skip=2)
        self._text_out(b"<")
        return pos + 1

    def _incomplete(self, pos: int, final: bool, *, as_text: bool = False) -> int:
        """Hold an undecided token; at end of input hand it over unchanged."""
        if final:
            rest = self._buf[pos:]
            if as_text:
                self._text_out(rest)
            else:
                self._other_out(rest)
            return len(self._buf)
        if len(self._buf) - pos > self._max_token:
            raise RewriteError(
                RewriteErrorReason.TOKEN_TOO_LARGE,
                f"a tag or markup declaration exceeds {self._max_token} bytes",
            )
        return pos

    def _tag(self, pos: int, final: bool) -> int:
        buf = self._buf
        if not final and buf.find(b">", max(pos, self._retry_from)) == -1:
            self._retry_from = len(buf)
            return self._incomplete(pos, final)
        match = _TAG.match(buf, pos)
        if match is None:
            self._retry_from = len(buf)
            return self._incomplete(pos, final)
        self._retry_from = 0
        return self._tag_token(match, pos)

    def _slash(self, pos: int, final: bool) -> int:
        third = self._buf[pos + 2 : pos + 3]
        if not third:
            return self._incomplete(pos, final, as_text=True)
        if third.isalpha():
            return self._tag(pos, final)
        if third == b">":
            self._other_out(b"</>")  # ignored by browsers
            return pos + 3
        self._enter_other(_Mode.BOGUS)
        return self._until_bytes(pos, b">", final, skip=2)

    def _bang(self, pos: int, final: bool) -> int:
        buf = self._buf
        head = buf[pos : pos + 9]
        if head.startswith(b"<!--"):
            if len(buf) - pos < 6 and not final:
                return self._incomplete(pos, final)
            after = buf[pos + 4 : pos + 6]
            if after[:1] == b">":  # <!--> is an empty comment
                self._other_out(buf[pos : pos + 5])
                return pos + 5
            if after == b"->":  # <!---> too
                self._other_out(buf[pos : pos + 6])
                return pos + 6
            self._enter_other(_Mode.COMMENT)
            return self._until(pos, _COMMENT_END, 3, final, skip=4)
        if (
            len(head) < 9
            and not final
            and (b"<!--".startswith(head) or _CDATA_OPEN.startswith(head))
        ):
            return self._incomplete(pos, final)
        # In wanted mode the handler promised which content it is in.
        scan = self._scan
        if head == _CDATA_OPEN and (
            scan.foreign if scan is not None else self._handler.in_foreign_content()
        ):
            self._enter_other(_Mode.CDATA)
            return self._until_bytes(pos, b"]]>", final, skip=9)
        # Doctype, <![CDATA[ in HTML content and anything else: up to the next ">".
        self._enter_other(_Mode.BOGUS)
        return self._until_bytes(pos, b">", final, skip=2)

    def _until_bytes(self, pos: int, end: bytes, final: bool, skip: int = 0) -> int:
        buf = self._buf
        found = buf.find(end, pos + skip)
        if found != -1:
            stop = found + len(end)
            self._sink(buf[pos:stop])
            self._mode = _Mode.DATA
            return stop
        return self._stream_other(pos, len(end) - 1, final, skip)

    def _until(
        self, pos: int, end: re.Pattern[bytes], hold: int, final: bool, skip: int = 0
    ) -> int:
        buf = self._buf
        match = end.search(buf, pos + skip)
        if match is not None:
            self._sink(buf[pos : match.end()])
            self._mode = _Mode.DATA
            return match.end()
        return self._stream_other(pos, hold, final, skip)

    def _stream_other(self, pos: int, hold: int, final: bool, skip: int) -> int:
        """Hand on comment-like content, keeping back bytes that may start its terminator.

        The opening (``skip`` bytes, e.g. ``<!--``) is never split off on its own, so the
        terminator search cannot overlap it in a later call.
        """
        buf = self._buf
        stop = len(buf) if final else max(pos + skip, len(buf) - hold)
        if stop > pos:
            self._sink(buf[pos:stop])
        return stop

    def _rawtext(self, pos: int, final: bool) -> int:
        buf = self._buf
        match = _raw_end_pattern(self._raw_name).search(buf, pos)
        if match is not None:
            if match.start() > pos:
                self._sink(buf[pos : match.start()])
            self._mode = _Mode.DATA
            return match.start()
        hold = 0 if final else len(self._raw_name) + 2
        stop = max(pos, len(buf) - hold)
        if stop > pos:
            self._sink(buf[pos:stop])
        return stop

    def _script(self, pos: int, final: bool) -> int:
        """Script data with its escape states, so ``</script>`` inside ``<!--<script>`` is text.

        Outside an escape only ``</script`` and ``<!--`` matter: two literal searches (the
        usual case, fast in C); the escaped states take the event pattern.
        """
        buf = self._buf
        search_from = pos
        while True:
            if self._script_state == 0:
                end = _SCRIPT_END.search(buf, search_from)
                limit = end.start() if end is not None else len(buf)
                # "<!--" cannot overlap a "</script" that follows it, so the limit is exact.
                escape = buf.find(b"<!--", search_from, limit)
                if escape == -1:
                    if end is None:
                        return self._script_hold(pos, search_from, final)
                    if end.start() > pos:
                        self._sink(buf[pos : end.start()])
                    self._mode = _Mode.DATA
                    return end.start()
                self._script_state = 1
                # Continue right after "<!" so that "<!-->" closes the escape again.
                search_from = escape + 2
                continue
            match = _SCRIPT_EVENT.search(buf, search_from)
            if match is None:
                return self._script_hold(pos, search_from, final)
            token = match.group(0)
            state = self._script_state
            if token == b"<!--":
                search_from = match.start() + 2
            elif token == b"-->":
                self._script_state = 0
                search_from = match.end()
            elif match.group(1):  # </script
                if state == 2:
                    self._script_state = 1
                    search_from = match.end() - 1
                else:
                    if match.start() > pos:
                        self._sink(buf[pos : match.start()])
                    self._mode = _Mode.DATA
                    return match.start()
            else:  # <script
                if state == 1:
                    self._script_state = 2
                search_from = match.end() - 1

    def _script_hold(self, pos: int, search_from: int, final: bool) -> int:
        """Hand on script data up to the last 8 bytes, which may start ``</script`` + delimiter
        (the events before ``search_from`` are already counted in the state)."""
        buf = self._buf
        stop = len(buf) if final else max(pos, search_from, len(buf) - 8)
        if stop > pos:
            self._sink(buf[pos:stop])
        return stop
