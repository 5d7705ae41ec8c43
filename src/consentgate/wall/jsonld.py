"""Scrubbing ``<script type="application/ld+json">``: no article text, paywall markup on.

JSON-LD is one of the ways walls leak: CMSs put the whole article in ``articleBody``.
For a gated page the text fields go; for every non-free article (gated or not, so that
crawlers and readers see the same markup) Google's paywalled-content markup is added.

Decisions:

* Article-like types (:data:`ARTICLE_TYPES`) get both the scrubbing and the markup.
  ``LiveBlogPosting`` is included: its updates are ``BlogPosting`` objects with their
  own ``articleBody``, reached because every nested value is searched.
* Page-like types (:data:`PAGE_TYPES`: ``WebPage`` and its kin) get the scrubbing only.
  Some CMSs copy the text into a page's ``text``; but the markup belongs on the article
  (one ``hasPart`` per page, "no nesting of sections"), so pages do not get it.
* Removed when gated: ``articleBody`` and ``text``, on the object and on each of its
  ``hasPart`` elements. ``wordCount`` stays: a number reveals nothing of the text, and
  ``description`` stays: it is the teaser the lead-in shows anyway.
* When paywalled, ``hasPart`` is *replaced* by the single paywalled element.
* Types are compared by their last segment, so ``schema:NewsArticle`` and
  ``https://schema.org/NewsArticle`` count as ``NewsArticle``.
* A blob that is neither gated nor paywalled is returned byte for byte.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ARTICLE_TYPES", "PAGE_TYPES", "JsonLdError", "scrub_jsonld"]

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
PAGE_TYPES = frozenset(
    {"WebPage", "ItemPage", "AboutPage", "CollectionPage", "FAQPage", "QAPage", "WebPageElement"}
)
_TEXT_FIELDS = ("articleBody", "text")
# Google accepts class selectors only; a plain CSS identifier needs no escaping.
_CSS_CLASS = re.compile(r"-?[_a-zA-Z][_a-zA-Z0-9-]*")


class JsonLdError(ValueError):
    """The blob cannot be parsed, so it cannot be scrubbed: the caller fails closed."""


def scrub_jsonld(text: str, *, gated: bool, paywalled: bool, css_class: str) -> str:
    """The blob with article text removed (``gated``) and paywall markup (``paywalled``).

    Raises :class:`JsonLdError` on a gated page whose blob is not valid JSON: it might
    hold the text, so it must not pass. On an ungated page an unparseable blob is
    returned as it is (the reader may see the text anyway; we only lose the markup).
    """
    if not _CSS_CLASS.fullmatch(css_class):
        raise ValueError(f"not a plain CSS class name: {css_class!r}")
    if not (gated or paywalled):
        return text
    opening, body, closing = _unwrap(text)
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
        scrubbed = _walk(data, gated=gated, paywalled=paywalled, css_class=css_class)
        return opening + _serialise(scrubbed) + closing
    except (ValueError, RecursionError) as exc:
        if gated:
            raise JsonLdError(f"unparseable JSON-LD on a gated page: {exc}") from None
        return text


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


def _walk(value: Any, *, gated: bool, paywalled: bool, css_class: str) -> Any:
    """Every object at any depth: ``@graph``, arrays, ``mainEntity``, live-blog updates."""
    if isinstance(value, list):
        return [
            _walk(item, gated=gated, paywalled=paywalled, css_class=css_class) for item in value
        ]
    if not isinstance(value, dict):
        return value
    result = {
        key: _walk(item, gated=gated, paywalled=paywalled, css_class=css_class)
        for key, item in value.items()
    }
    types = _type_names(result)
    is_article = bool(types & ARTICLE_TYPES)
    if gated and (is_article or types & PAGE_TYPES):
        _remove_text(result)
    if paywalled and is_article:
        _mark_paywalled(result, css_class)
    return result


def _type_names(node: dict[str, Any]) -> frozenset[str]:
    raw = node.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return frozenset(_last_segment(name) for name in names if isinstance(name, str))


def _last_segment(type_name: str) -> str:
    return type_name.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _remove_text(node: dict[str, Any]) -> None:
    for field in _TEXT_FIELDS:
        node.pop(field, None)
    parts = node.get("hasPart")
    for part in parts if isinstance(parts, list) else [parts]:
        if isinstance(part, dict):
            for field in _TEXT_FIELDS:
                part.pop(field, None)


def _mark_paywalled(node: dict[str, Any], css_class: str) -> None:
    node["isAccessibleForFree"] = False
    node["hasPart"] = {
        "@type": "WebPageElement",
        "isAccessibleForFree": False,
        "cssSelector": "." + css_class,
    }


def _serialise(data: Any) -> str:
    """Compact JSON that cannot end the script element nor start an HTML comment in it."""
    out = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # "<" only occurs inside JSON strings, where both escapes mean the same characters.
    return out.replace("</", "<\\/").replace("<!--", "\\u003c!--")
