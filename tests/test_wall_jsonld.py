"""JSON-LD scrubbing: no article text on gated pages, paywall markup on non-free ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consentgate.wall.jsonld import JsonLdError, scrub_jsonld

BODY = "The minister said the budget would double."
PAYWALL_PART = {
    "@type": "WebPageElement",
    "isAccessibleForFree": False,
    "cssSelector": ".cg-paywalled",
}


def article(**extra: Any) -> dict[str, Any]:
    return {
        "@type": "NewsArticle",
        "headline": "Budget",
        "articleBody": BODY,
        "text": BODY,
        "wordCount": 812,
        **extra,
    }


def scrub(data: Any, *, gated: bool = True, paywalled: bool = True) -> Any:
    out = scrub_jsonld(json.dumps(data), gated=gated, paywalled=paywalled, css_class="cg-paywalled")
    return json.loads(out)


def test_jsonld_single_article_body_removed_and_markup_added() -> None:
    result = scrub({"@context": "https://schema.org", **article()})
    assert "articleBody" not in result and "text" not in result
    assert result["wordCount"] == 812
    assert result["headline"] == "Budget"
    assert result["isAccessibleForFree"] is False
    assert result["hasPart"] == PAYWALL_PART


def test_jsonld_graph_article_scrubbed_and_others_untouched() -> None:
    org = {"@type": "Organization", "name": "Daily", "text": "About us"}
    data = {"@context": "https://schema.org", "@graph": [org, article()]}
    result = scrub(data)
    assert result["@graph"][0] == org
    assert "articleBody" not in result["@graph"][1]
    assert result["@graph"][1]["hasPart"] == PAYWALL_PART


def test_jsonld_top_level_array_scrubbed() -> None:
    crumbs = {"@type": "BreadcrumbList", "itemListElement": []}
    result = scrub([crumbs, article(**{"@type": ["BlogPosting", "Thing"]})])
    assert result[0] == crumbs
    assert "articleBody" not in result[1]
    assert BODY not in json.dumps(result)


def test_jsonld_nested_article_and_haspart_text_removed() -> None:
    page = {
        "@type": "WebPage",
        "mainEntity": article(hasPart=[{"@type": "WebPageElement", "text": BODY}]),
        "text": BODY,
    }
    result = scrub(page, paywalled=False)
    assert BODY not in json.dumps(result)
    assert "isAccessibleForFree" not in result


def test_jsonld_live_blog_updates_lose_their_bodies() -> None:
    live = {
        "@type": "LiveBlogPosting",
        "liveBlogUpdate": [{"@type": "BlogPosting", "headline": "12:01", "articleBody": BODY}],
    }
    result = scrub(live)
    assert BODY not in json.dumps(result)
    assert result["liveBlogUpdate"][0]["headline"] == "12:01"


def test_jsonld_schema_prefixed_types_are_recognised() -> None:
    result = scrub(article(**{"@type": "https://schema.org/ReportageNewsArticle"}))
    assert "articleBody" not in result


def test_jsonld_paywalled_but_not_gated_keeps_text_and_adds_markup() -> None:
    result = scrub(article(), gated=False, paywalled=True)
    assert result["articleBody"] == BODY
    assert result["isAccessibleForFree"] is False
    assert result["hasPart"] == PAYWALL_PART


def test_jsonld_free_page_returned_byte_for_byte() -> None:
    text = '{ "@type": "NewsArticle",  "articleBody": "x" }'
    assert scrub_jsonld(text, gated=False, paywalled=False, css_class="c") == text


def test_jsonld_non_article_objects_untouched() -> None:
    data = {"@type": "Recipe", "text": "Boil water", "isAccessibleForFree": True}
    assert scrub(data) == data


@pytest.mark.parametrize(
    "broken", ['{"articleBody": "x"', "", "<!-- {\"articleBody\": -->", "NaN", "[1, Infinity]"]
)
def test_jsonld_invalid_json_on_gated_page_raises(broken: str) -> None:
    with pytest.raises(JsonLdError):
        scrub_jsonld(broken, gated=True, paywalled=True, css_class="c")


def test_jsonld_invalid_json_on_ungated_page_passes_unchanged() -> None:
    broken = '{"@type": "NewsArticle",'
    assert scrub_jsonld(broken, gated=False, paywalled=True, css_class="c") == broken


def test_jsonld_deep_nesting_on_gated_page_raises() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(JsonLdError):
        scrub_jsonld(deep, gated=True, paywalled=True, css_class="c")


def test_jsonld_script_end_tag_in_strings_is_escaped() -> None:
    data = article(headline="a</script><script>alert(1)</script>", description="<!-- x")
    out = scrub_jsonld(json.dumps(data), gated=True, paywalled=True, css_class="c")
    assert "</" not in out
    assert "<!--" not in out
    parsed = json.loads(out)
    assert parsed["headline"] == "a</script><script>alert(1)</script>"
    assert parsed["description"] == "<!-- x"


def test_jsonld_output_is_compact() -> None:
    out = scrub_jsonld(json.dumps(article(), indent=4), gated=True, paywalled=True, css_class="c")
    assert "\n" not in out and ", " not in out


def test_jsonld_css_class_must_be_plain_identifier() -> None:
    with pytest.raises(ValueError, match="CSS class"):
        scrub_jsonld("{}", gated=True, paywalled=True, css_class="a b")


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        ("\n  <![CDATA[\n  ", "\n  ]]>\n"),
        ("//<![CDATA[\n", "\n//]]>"),
        ("/* <![CDATA[ */\n", "\n/* ]]> */"),
        ("<!--\n", "\n-->"),
    ],
    ids=["cdata", "js-comment-cdata", "block-comment-cdata", "html-comment"],
)
def test_jsonld_wrapped_blob_is_scrubbed_and_keeps_its_wrapper(opening: str, closing: str) -> None:
    blob = json.dumps({"@type": "NewsArticle", "articleBody": "the hidden text"})
    out = scrub_jsonld(opening + blob + closing, gated=True, paywalled=True, css_class="body")
    assert "hidden text" not in out
    assert out.startswith(opening) and out.endswith(closing)
    inner = json.loads(out[len(opening) : len(out) - len(closing)])
    assert inner["isAccessibleForFree"] is False
