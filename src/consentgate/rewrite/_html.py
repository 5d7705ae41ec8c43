"""Element categories of the WHATWG HTML parsing algorithm (§13.2), named once for the
tokenizer, the tree model and the rewriter."""

from __future__ import annotations


def names(words: str) -> frozenset[str]:
    return frozenset(words.split())


VOID_ELEMENTS = names(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta "
    "param source track wbr"
)

#: Elements whose content the tokenizer never parses as tags (end detected by ``</name``).
RAW_TEXT_ELEMENTS = names("style textarea title xmp iframe noembed noframes noscript")
#: ``script`` has its own escape states (``<!-- <script> ... </script> -->``).
SCRIPT = "script"
PLAINTEXT = "plaintext"

#: The "special" category, by namespace: an end tag for another element is ignored across
#: these ("any other end tag"), and the adoption agency's furthest block is one of them.
SPECIAL_ELEMENTS = names(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link "
    "listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre "
    "script search section select source style summary table tbody td template textarea tfoot th "
    "thead title tr track ul wbr xmp"
)
#: MathML text integration points plus annotation-xml: special, and scope boundaries.
SPECIAL_MATHML = names("mi mo mn ms mtext annotation-xml")
#: SVG HTML integration points: special, and scope boundaries.
SPECIAL_SVG = names("foreignobject desc title")

FORMATTING_ELEMENTS = names("a b big code em font i nobr s small strike strong tt u")
HEADINGS = names("h1 h2 h3 h4 h5 h6")

#: HTML start tags that break out of SVG/MathML content (and ``font`` with color/face/size).
FOREIGN_BREAKOUT = names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img "
    "li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul "
    "var"
)

#: Phrasing elements: their tags do not separate words ("<b>un</b>cut" is one word).
INLINE_ELEMENTS = names(
    "a abbr b bdi bdo cite code data del dfn em font i ins kbd mark nobr q rp rt ruby s "
    "samp small span strike strong sub sup time tt u var wbr"
)

#: Every HTML element name. Inside SVG/MathML the light path wants these (a breakout start
#: tag, the end tag of an open HTML element) plus the integration points; SVG's own names
#: (path, g, circle, use, defs …) pass in C. A custom element (``my-widget``) left open
#: around an unclosed ``<svg>`` is not among them: its end tag passes unseen.
HTML_ELEMENTS = (
    SPECIAL_ELEMENTS
    | FORMATTING_ELEMENTS
    | INLINE_ELEMENTS
    | FOREIGN_BREAKOUT
    | names(
        "abbr audio canvas datalist dialog frameset label legend map menuitem meter optgroup "
        "option output picture progress rb rtc slot tbody template video"
    )
)

#: SVG's own element names (lower-cased as the tokenizer gives them), none an HTML name: their
#: end tags inside an svg element cannot close an HTML element (only an unknown HTML element
#: of that name could, which no real page keeps open around an icon).
SVG_OWN_ELEMENTS = (
    names(
        "animate animatemotion animatetransform circle clippath defs ellipse feblend "
        "fecolormatrix fecomponenttransfer fecomposite feconvolvematrix fediffuselighting "
        "fedisplacementmap fedistantlight fedropshadow feflood fefunca fefuncb fefuncg fefuncr "
        "fegaussianblur feimage femerge femergenode femorphology feoffset fepointlight "
        "fespecularlighting fespotlight fetile feturbulence filter g image line "
        "lineargradient marker mask metadata mpath path pattern polygon polyline "
        "radialgradient rect set stop switch symbol text textpath tspan use view"
    )
    - HTML_ELEMENTS
)

#: MathML's own element names, none an HTML name (as :data:`SVG_OWN_ELEMENTS`).
MATHML_OWN_ELEMENTS = (
    names(
        "annotation annotation-xml maction maligngroup malignmark menclose merror mfenced "
        "mfrac mglyph mi mlabeledtr mlongdiv mmultiscripts mn mo mover mpadded mphantom "
        "mprescripts mroot mrow ms mscarries mscarry msgroup msline mspace msqrt msrow mstack "
        "mstyle msub msubsup msup mtable mtd mtext mtr munder munderover none semantics"
    )
    - HTML_ELEMENTS
)
