"""Element categories from the WHATWG HTML parsing algorithm, used to approximate its tree."""

from __future__ import annotations


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


VOID_ELEMENTS = _names(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta "
    "param source track wbr"
)

#: Elements whose content the tokenizer never parses as tags (end detected by ``</name``).
RAW_TEXT_ELEMENTS = _names(
    "style textarea title xmp iframe noembed noframes noscript"
)
#: ``script`` has its own escape states (``<!-- <script> ... </script> -->``).
SCRIPT = "script"
PLAINTEXT = "plaintext"

#: The "special" category: an end tag for a non-special element is ignored across these.
SPECIAL_ELEMENTS = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link "
    "listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre "
    "script search section select source style summary table tbody td template textarea tfoot th "
    "thead title tr track ul wbr xmp"
)

#: Elements that end the "has an element in scope" search.
SCOPE_BOUNDARIES = _names(
    "applet caption html table td th marquee object template"
)
TABLE_SCOPE_BOUNDARIES = frozenset(("html", "table", "template"))
TABLE_PARTS = _names("table tbody thead tfoot tr td th caption colgroup")

FORMATTING_ELEMENTS = _names(
    "a b big code em font i nobr s small strike strong tt u"
)

#: Start tags that close an open ``p`` (in button scope).
CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr main menu nav ol p pre listing "
    "search section summary table ul plaintext xmp li dd dt"
)
HEADINGS = _names("h1 h2 h3 h4 h5 h6")

#: Elements allowed in ``head``; any other start tag implicitly closes an open ``head``.
HEAD_CONTENT = _names(
    "base basefont bgsound link meta noframes script style template title noscript"
)

#: HTML start tags that break out of SVG/MathML content.
FOREIGN_BREAKOUT = _names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img "
    "li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul "
    "var"
)
FOREIGN_ROOTS = frozenset(("svg", "math"))
#: Inside these foreign elements, content is parsed as HTML again.
INTEGRATION_POINTS = _names(
    "foreignobject desc title mi mo mn ms mtext annotation-xml"
)
