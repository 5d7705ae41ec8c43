"""Scrubbing JSON-LD blocks: no article text on gated pages, paywall markup on non-free ones.

JSON-LD is one of the ways walls leak: CMSs put the whole article in ``articleBody``, and
whatever sits in the block is in the page's source, whether a search engine reads it or
not. For a gated page the text fields go; for every non-free article (gated or not, so that
crawlers and readers see the same markup) Google's paywalled-content markup is added.

Which ``<script>`` is JSON-LD is decided as a browser decides a script's type
(:func:`is_jsonld_type`): the ``type`` attribute with ASCII whitespace stripped, compared
ASCII case-insensitively, by its MIME essence (parameters after ``;`` ignored).

Decisions:

* Removed when gated, from **every** object in the block at any depth (arrays, ``@graph``,
  ``mainEntity``, ``hasPart``, ``subjectOf``, live-blog updates, ``@included`` ...), **whatever
  its ``@type``** (missing, lower-case, an unknown or non-article type): the text fields
  :data:`TEXT_FIELDS`. A key is one of them when its local name (after the last ``/``, ``#``
  or ``:``, trailing ``/`` and ``#`` ignored, ASCII case-insensitive) is, so compact keys
  (``articleBody``), prefixed ones (``schema:articleBody``) and expanded IRIs
  (``http://schema.org/articleBody``, ``https://schema.org/articleBody/``) all go; and so do
  keys a ``@context`` anywhere in the block aliases to one (``"body": "schema:articleBody"``,
  ``{"@id": ...}``, prefixes defined there). Types are not consulted: a page-like or unknown
  type holding the text leaks just the same, and over-removal on a walled page costs nothing.
  Names are compared case-insensitively for the same reason: ``ArticleBody`` is not schema.org,
  but its text would still be in the page.
* ``reviewBody`` is among them: a ``ReviewNewsArticle`` is also a ``CriticReview`` whose
  ``reviewBody`` is the article.
* ``wordCount`` stays: a number reveals nothing of the text, and Google's article markup
  uses it. ``description`` and ``abstract`` stay: they are the teaser the lead shows anyway.
* A block that cannot be parsed (not JSON, ``NaN``, nesting deeper than :data:`MAX_DEPTH`) on
  a gated page is emptied: it might hold the text. On an ungated page it is kept as it is
  (the reader may read the text anyway; we only lose the markup).
* Article-like types (:data:`ARTICLE_TYPES`) get the paywall markup; ``hasPart`` is then
  *replaced* by the single paywalled element ("no nesting of sections"). Types are compared
  by their last segment, so ``schema:NewsArticle`` and ``https://schema.org/NewsArticle``
  count as ``NewsArticle``.
* A blob that is neither gated nor paywalled is returned byte for byte.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "ARTICLE_TYPES",
    "MAX_DEPTH",
    "PAGE_TYPES",
    "TEXT_FIELDS",
    "JsonLdError",
    "is_jsonld_type",
    "parse_jsonld",
    "scrub_jsonld",
]

ARTICLE_TYPES = frozenset(
    {
        "Article",
        "NewsArticle",
        "AnalysisNewsArticle",
        "AskPublicNewsArticle",
        "BackgroundNewsArticle",
        "OpinionNewsArticle",
        "ReportageNewsArticle",
        "ReviewNewsArticle",
        "BlogPosting",
        "LiveBlogPosting",
        "SocialMediaPosting",
        "SatiricalArticle",
        "ScholarlyArticle",
        "MedicalScholarlyArticle",
        "TechArticle",
        "APIReference",
        "Report",
    }
)
#: Page-like types. No longer needed for the scrubbing (every object is scrubbed); kept as the
#: documented vocabulary of what is *not* an article for the paywall markup.
PAGE_TYPES = frozenset(
    {"WebPage", "ItemPage", "AboutPage", "CollectionPage", "FAQPage", "QAPage", "WebPageElement"}
)
#: Local names (ASCII lower case) of the properties that carry an article's text.
TEXT_FIELDS = frozenset({"articlebody", "text", "transcript", "reviewbody"})
#: Deeper blocks count as unparseable: well inside Python's recursion limit, far beyond any
#: real JSON-LD (a few levels), so neither json nor the walk can raise RecursionError.
MAX_DEPTH = 200
# Google accepts class selectors only; a plain CSS identifier needs no escaping.
_CSS_CLASS = re.compile(r"-?[_a-zA-Z][_a-zA-Z0-9-]*")
_ASCII_WHITESPACE = "\t\n\f\r "
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_JSONLD_ESSENCE = "application/ld+json"
# How many alias hops a context may chain (a cycle would loop for ever).
_MAX_ALIAS_HOPS = 8


class JsonLdError(ValueError):
    """The blob cannot be parsed (:func:`parse_jsonld`), so it cannot be scrubbed."""


def is_jsonld_type(type_attribute: str | None) -> bool:
    """True when a ``<script type=...>`` value names JSON-LD, compared as a browser does.

    HTML strips leading and trailing ASCII whitespace from a script's type and compares MIME
    types ASCII case-insensitively (``str.lower`` would also map the Kelvin sign to ``k``);
    the MIME essence ignores parameters (``application/ld+json; profile=...``).
    """
    if type_attribute is None:
        return False
    essence = type_attribute.strip(_ASCII_WHITESPACE).partition(";")[0]
    return essence.strip(_ASCII_WHITESPACE).translate(_ASCII_LOWER) == _JSONLD_ESSENCE


def accepts_jsonld_script(attrs: dict[str, str]) -> bool:
    """A ``TransformText`` ``accept`` predicate: the element's ``type`` names JSON-LD."""
    return is_jsonld_type(attrs.get("type"))


def parse_jsonld(text: str) -> Any:
    """The JSON value of a blob (read through CDATA/comment wrappers), or :class:`JsonLdError`.

    Refuses ``NaN``/``Infinity`` (not JSON) and nesting deeper than :data:`MAX_DEPTH`.
    """
    _, body, _ = _unwrap(text)
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise JsonLdError(f"unparseable JSON-LD: {exc}") from None
    _check_depth(data)
    return data


def scrub_jsonld(text: str, *, gated: bool, paywalled: bool, css_class: str) -> str:
    """The blob with article text removed (``gated``) and paywall markup (``paywalled``).

    On a gated page a blob that cannot be parsed comes back empty (it might hold the text);
    on an ungated page it comes back as it was.
    """
    if not _CSS_CLASS.fullmatch(css_class):
        raise ValueError(f"not a plain CSS class name: {css_class!r}")
    if not (gated or paywalled):
        return text
    opening, _, closing = _unwrap(text)
    try:
        data = parse_jsonld(text)
    except JsonLdError:
        return "" if gated else text
    aliases = _TextKeys(_term_definitions(data)) if gated else None
    _scrub(data, aliases, paywalled=paywalled, css_class=css_class)
    return opening + _serialise(data) + closing


# Real pages wrap JSON-LD as XHTML taught: <![CDATA[ … ]]>, <!-- … -->, sometimes behind
# "//" or "/* */". Browsers and search engines read through it; so must we.
_WRAPPED = re.compile(
    r"\A(\s*(?:/\*\s*|//\s*)?(?:<!\[CDATA\[|<!--)(?:\s*\*/)?\s*)(.*?)"
    r"(\s*(?:/\*\s*|//\s*)?(?:\]\]>|-->)(?:\s*\*/)?\s*)\Z",
    re.DOTALL,
)


def _unwrap(text: str) -> tuple[str, str, str]:
    """(opening wrapper, JSON, closing wrapper); the wrappers are kept on output."""
    match = _WRAPPED.match(text)
    if match is None:
        return "", text, ""
    return match.group(1), match.group(2), match.group(3)


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; re-emitting them would produce an invalid blob.
    raise ValueError(f"{name} is not valid JSON")


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, dict | list)]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict | list)]
    return []


def _check_depth(data: Any) -> None:
    # Iterative: the point is not to trust the call stack with untrusted nesting.
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JsonLdError(f"JSON-LD nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in _children(value))


def _objects(data: Any) -> list[dict[str, Any]]:
    """Every object in the value, at any depth (depth already checked)."""
    found: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found.append(value)
        stack.extend(_children(value))
    return found


def _term_definitions(data: Any) -> dict[str, set[str]]:
    """term -> what it stands for, from every ``@context`` object in the block.

    Scoping is ignored on purpose: a term defined anywhere counts everywhere, which can only
    remove more. Remote contexts (URLs) cannot be read here; their terms are judged by name.
    """
    definitions: dict[str, set[str]] = {}
    for node in _objects(data):
        context = node.get("@context")
        for item in context if isinstance(context, list) else [context]:
            if not isinstance(item, dict):
                continue
            for term, definition in item.items():
                target = definition.get("@id") if isinstance(definition, dict) else definition
                if isinstance(target, str):
                    definitions.setdefault(term, set()).add(target)
    return definitions


class _TextKeys:
    """Is a key, expanded through the block's contexts, one of :data:`TEXT_FIELDS`?"""

    def __init__(self, definitions: dict[str, set[str]]) -> None:
        self._definitions = definitions
        self._cache: dict[str, bool] = {}

    def __contains__(self, key: str) -> bool:
        known = self._cache.get(key)
        if known is None:
            known = any(_local_name(form) in TEXT_FIELDS for form in self._expansions(key))
            self._cache[key] = known
        return known

    def _expansions(self, key: str) -> set[str]:
        forms = {key}
        frontier = [key]
        for _ in range(_MAX_ALIAS_HOPS):
            following: list[str] = []
            for form in frontier:
                targets = set(self._definitions.get(form, ()))
                prefix, colon, suffix = form.partition(":")
                if colon and not suffix.startswith("//"):  # a compact IRI, not http://
                    targets |= {base + suffix for base in self._definitions.get(prefix, ())}
                following.extend(t for t in targets if t not in forms)
                forms |= targets
            if not following:
                break
            frontier = following
        return forms


def _local_name(iri: str) -> str:
    trimmed = iri.rstrip("/#")
    cut = max(trimmed.rfind("/"), trimmed.rfind("#"), trimmed.rfind(":"))
    return trimmed[cut + 1 :].translate(_ASCII_LOWER)


def _scrub(data: Any, text_keys: _TextKeys | None, *, paywalled: bool, css_class: str) -> None:
    """In place, on every object; ``text_keys`` None keeps the text (an ungated page)."""
    for node in _objects(data):
        if text_keys is not None:
            for key in [k for k in node if k in text_keys]:
                del node[key]
        if paywalled and _type_names(node) & ARTICLE_TYPES:
            _mark_paywalled(node, css_class)


def _type_names(node: dict[str, Any]) -> frozenset[str]:
    raw = node.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return frozenset(_last_segment(name) for name in names if isinstance(name, str))


def _last_segment(type_name: str) -> str:
    return type_name.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _mark_paywalled(node: dict[str, Any], css_class: str) -> None:
    node["isAccessibleForFree"] = False
    node["hasPart"] = {
        "@type": "WebPageElement",
        "isAccessibleForFree": False,
        "cssSelector": "." + css_class,
    }


# Lone surrogates come from "\ud800"-style escapes; the rewriter re-encodes only U+DC80-U+DCFF
# (the bytes it could not decode, put back as they were). Any other one must stay an escape.
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _serialise(data: Any) -> str:
    """Compact JSON that cannot end the script element nor start an HTML comment in it."""
    out = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    out = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    # "<" only occurs inside JSON strings, where both escapes mean the same characters.
    return out.replace("</", "<\\/").replace("<!--", "\\u003c!--")
