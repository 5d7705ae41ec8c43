"""JSON-LD scrubbing: no article text on gated pages, paywall markup on non-free ones.

The oracle for "no text left" is a real JSON-LD processor (PyLD): the scrubbed block is
expanded, as any consumer would, and no schema.org text property may survive, whatever
spelling (compact, prefixed, expanded IRI, ``@context`` alias) the input used. The article's
text itself must not occur anywhere in the output either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pyld import jsonld as pyld
from selectolax.lexbor import LexborHTMLParser
from tests.conftest import corpora_dir
from tests.test_wall_fail_closed import SLUG, Page, serve
from tests.test_wall_http import article_html

from consentgate.rewrite import Rewriter, TransformText
from consentgate.wall.jsonld import (
    MAX_DEPTH,
    JsonLdError,
    accepts_jsonld_script,
    is_jsonld_type,
    parse_jsonld,
    scrub_jsonld,
)

BODY = "The minister said the budget would double."
PAYWALL_PART = {
    "@type": "WebPageElement",
    "isAccessibleForFree": False,
    "cssSelector": ".cg-paywalled",
}
SCHEMA_TEXT_PROPERTIES = {
    f"{scheme}://schema.org/{name}"
    for scheme in ("http", "https")
    for name in ("articleBody", "text", "transcript", "reviewBody")
}


def _schema_context_loader(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """schema.org's context, offline: every term under the schema.org vocabulary (which is
    what the published context does for the properties that matter here)."""
    if "schema.org" not in url:
        raise pyld.JsonLdError("unknown remote context", "loading remote context failed")
    vocab = "https://schema.org/" if url.startswith("https") else "http://schema.org/"
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": {"@context": {"@vocab": vocab}},
    }


def expanded_properties(data: Any) -> set[str]:
    """Every property IRI of the expanded document, at any depth (the oracle)."""
    found: set[str] = set()
    stack: list[Any] = [pyld.expand(data, {"documentLoader": _schema_context_loader})]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found.update(k for k in value if not k.startswith("@"))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


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


def assert_no_text(result: Any) -> None:
    assert BODY not in json.dumps(result)
    assert not expanded_properties(result) & SCHEMA_TEXT_PROPERTIES


# -- which scripts are JSON-LD ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "application/ld+json",
        "APPLICATION/LD+JSON",
        "Application/Ld+Json",
        "  application/ld+json\t\n",
        "\fapplication/ld+json\r",
        "application/ld+json; charset=utf-8",
        "application/ld+json ;profile=http://www.w3.org/ns/json-ld#compacted",
    ],
)
def test_jsonld_type_as_a_browser_compares_it_is_jsonld(value: str) -> None:
    assert is_jsonld_type(value)
    assert accepts_jsonld_script({"type": value})


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "application/json",
        "application/ld+jsonx",
        "text/ld+json",
        "application/ld json",
        "\xa0application/ld+json",  # NBSP is not ASCII whitespace
        "applicat\u0131on/ld+json",  # dotless i: not an ASCII case variant
        "text/javascript",
    ],
)
def test_jsonld_type_other_values_are_not_jsonld(value: str | None) -> None:
    assert not is_jsonld_type(value)


# -- what is removed ------------------------------------------------------------------------


def test_jsonld_single_article_body_removed_and_markup_added() -> None:
    result = scrub({"@context": "https://schema.org", **article()})
    assert "articleBody" not in result and "text" not in result
    assert result["wordCount"] == 812
    assert result["headline"] == "Budget"
    assert result["isAccessibleForFree"] is False
    assert result["hasPart"] == PAYWALL_PART
    assert_no_text(result)


def test_jsonld_graph_every_object_loses_text_whatever_its_type() -> None:
    org = {"@type": "Organization", "name": "Daily", "text": BODY}
    data = {"@context": "https://schema.org", "@graph": [org, article()]}
    result = scrub(data)
    assert result["@graph"][0] == {"@type": "Organization", "name": "Daily"}
    assert result["@graph"][1]["hasPart"] == PAYWALL_PART
    assert_no_text(result)


@pytest.mark.parametrize(
    "type_value",
    [None, "newsarticle", "Recipe", "Thing", ["CreativeWork", "Unknown"], "WebPage"],
    ids=["missing", "lower-case", "recipe", "thing", "list", "webpage"],
)
def test_jsonld_type_missing_lowercase_or_not_an_article_still_loses_text(
    type_value: Any,
) -> None:
    node: dict[str, Any] = {"@context": "https://schema.org", "articleBody": BODY, "text": BODY}
    if type_value is not None:
        node["@type"] = type_value
    node["transcript"] = BODY
    result = scrub(node)
    assert_no_text(result)
    # Only article types get the paywall markup.
    assert "isAccessibleForFree" not in result


def test_jsonld_top_level_array_scrubbed() -> None:
    crumbs = {"@type": "BreadcrumbList", "itemListElement": []}
    result = scrub([crumbs, article(**{"@type": ["BlogPosting", "Thing"]})])
    assert result[0] == crumbs
    assert "articleBody" not in result[1]
    assert BODY not in json.dumps(result)


def test_jsonld_nested_main_entity_has_part_subject_of_at_any_depth_lose_text() -> None:
    deepest: dict[str, Any] = {"@type": "VideoObject", "transcript": BODY}
    for key in ("hasPart", "subjectOf", "mainEntity", "about", "isPartOf") * 6:
        deepest = {"@type": "CreativeWork", key: [deepest], "text": BODY}
    page = {"@context": "https://schema.org", "@type": "WebPage", "mainEntity": deepest}
    result = scrub(page, paywalled=False)
    assert_no_text(result)
    assert "isAccessibleForFree" not in result


def test_jsonld_live_blog_updates_lose_their_bodies() -> None:
    live = {
        "@type": "LiveBlogPosting",
        "liveBlogUpdate": [{"@type": "BlogPosting", "headline": "12:01", "articleBody": BODY}],
    }
    result = scrub(live)
    assert BODY not in json.dumps(result)
    assert result["liveBlogUpdate"][0]["headline"] == "12:01"


@pytest.mark.parametrize(
    "key",
    [
        "schema:articleBody",
        "http://schema.org/articleBody",
        "https://schema.org/articleBody",
        "https://schema.org/articleBody/",
        "http://schema.org/text",
        "https://schema.org/transcript",
        "http://schema.org/reviewBody",
        "ArticleBody",
    ],
)
def test_jsonld_prefixed_and_expanded_iri_keys_are_removed(key: str) -> None:
    data = {
        "@context": {"schema": "http://schema.org/"},
        "@type": "http://schema.org/NewsArticle",
        key: BODY,
        "http://schema.org/headline": "Budget",
    }
    result = scrub(data)
    assert key not in result
    assert BODY not in json.dumps(result)
    assert result["http://schema.org/headline"] == "Budget"


@pytest.mark.parametrize(
    "context",
    [
        {"@vocab": "http://schema.org/", "body": "articleBody"},
        {"body": "http://schema.org/articleBody"},
        {"body": {"@id": "https://schema.org/articleBody", "@type": "@id"}},
        {"s": "https://schema.org/", "body": "s:text"},
        {"s": "https://schema.org/article", "body": "s:Body"},
        {"s": "https://schema.org/", "t": "s:transcript", "body": "t"},
        [
            "https://schema.org",
            {"body": {"@id": "schema:articleBody"}, "schema": "https://schema.org/"},
        ],
    ],
    ids=["vocab", "iri", "id-object", "prefix", "prefix-split", "chain", "list"],
)
def test_jsonld_context_aliases_are_resolved_and_removed(context: Any) -> None:
    data = {"@context": context, "@type": "Thing", "body": BODY, "name": "Budget"}
    result = scrub(data)
    assert "body" not in result
    assert result["name"] == "Budget"
    assert_no_text(result)


def test_jsonld_scoped_context_alias_in_a_nested_object_is_removed() -> None:
    inner = {"@context": {"b": "http://schema.org/articleBody"}, "@type": "Thing", "b": BODY}
    result = scrub({"@context": "https://schema.org", "@type": "WebPage", "mainEntity": inner})
    assert_no_text(result)


def test_jsonld_word_count_and_description_stay() -> None:
    result = scrub(article(description="The teaser."))
    assert result["wordCount"] == 812
    assert result["description"] == "The teaser."


def test_jsonld_schema_prefixed_types_get_the_markup() -> None:
    result = scrub(article(**{"@type": "https://schema.org/ReportageNewsArticle"}))
    assert "articleBody" not in result
    assert result["hasPart"] == PAYWALL_PART


def test_jsonld_paywalled_but_not_gated_keeps_text_and_adds_markup() -> None:
    result = scrub(article(), gated=False, paywalled=True)
    assert result["articleBody"] == BODY
    assert result["isAccessibleForFree"] is False
    assert result["hasPart"] == PAYWALL_PART


def test_jsonld_free_page_returned_byte_for_byte() -> None:
    text = '{ "@type": "NewsArticle",  "articleBody": "x" }'
    assert scrub_jsonld(text, gated=False, paywalled=False, css_class="c") == text


# -- what cannot be parsed ------------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    ['{"articleBody": "x"', "", '<!-- {"articleBody": -->', "NaN", "[1, Infinity]", "{'a': 1}"],
)
def test_jsonld_invalid_json_on_gated_page_is_emptied(broken: str) -> None:
    assert scrub_jsonld(broken, gated=True, paywalled=True, css_class="c") == ""
    with pytest.raises(JsonLdError):
        parse_jsonld(broken)


def test_jsonld_invalid_json_on_ungated_page_passes_unchanged() -> None:
    broken = '{"@type": "NewsArticle",'
    assert scrub_jsonld(broken, gated=False, paywalled=True, css_class="c") == broken


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 100_000])
def test_jsonld_deep_nesting_on_gated_page_is_emptied_without_recursion_error(depth: int) -> None:
    deep = '{"a":' * depth + '{"articleBody": "x"}' + "}" * depth
    assert scrub_jsonld(deep, gated=True, paywalled=True, css_class="c") == ""
    assert scrub_jsonld(deep, gated=False, paywalled=True, css_class="c") == deep


def test_jsonld_nesting_at_the_limit_is_scrubbed() -> None:
    depth = MAX_DEPTH - 1
    deep = '{"a":' * depth + json.dumps({"articleBody": BODY}) + "}" * depth
    out = scrub_jsonld(deep, gated=True, paywalled=True, css_class="c")
    assert out and BODY not in out


# -- serialisation --------------------------------------------------------------------------


def test_jsonld_script_end_tag_in_strings_is_escaped() -> None:
    data = article(headline="a</script><script>alert(1)</script>", description="<!-- x")
    out = scrub_jsonld(json.dumps(data), gated=True, paywalled=True, css_class="c")
    assert "</" not in out
    assert "<!--" not in out
    parsed = json.loads(out)
    assert parsed["headline"] == "a</script><script>alert(1)</script>"
    assert parsed["description"] == "<!-- x"


def test_jsonld_lone_surrogate_escape_stays_an_escape() -> None:
    out = scrub_jsonld('{"headline": "a\\ud800b"}', gated=True, paywalled=True, css_class="c")
    out.encode("utf-8")  # encodable: the rewriter can write it into any page
    assert json.loads(out)["headline"] == "a\ud800b"


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


# -- real pages -----------------------------------------------------------------------------


def _jsonld_blocks(html: str) -> list[str]:
    """The JSON-LD blocks a spec parser (lexbor) finds, typed as a browser compares types."""
    tree = LexborHTMLParser(html)
    return [
        node.text(deep=True)
        for node in tree.css("script")
        if is_jsonld_type(node.attributes.get("type"))
    ]


def _values(data: Any) -> tuple[list[str], list[str]]:
    """(values of the text properties, values of every other property), by the expanded
    (oracle) reading."""
    texts: list[str] = []
    others: list[str] = []
    stack: list[Any] = [pyld.expand(data, {"documentLoader": _schema_context_loader})]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key.startswith("@") or not isinstance(item, list):
                    continue
                strings = [v["@value"] for v in item if isinstance(v.get("@value"), str)]
                (texts if key in SCHEMA_TEXT_PROPERTIES else others).extend(strings)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return texts, others


def _start(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:200]


def test_jsonld_news_pages_lose_every_text_property_through_the_rewriter() -> None:
    pages = sorted(corpora_dir("news-pages").glob("*.html"))
    checked = 0
    for page in pages:
        raw = page.read_bytes()
        html = raw.decode("utf-8", "replace")
        texts: list[str] = []
        others: set[str] = set()
        for block in _jsonld_blocks(html):
            try:
                found, other = _values(parse_jsonld(block))
            except (JsonLdError, pyld.JsonLdError):
                continue  # unparseable input: must come out empty (checked below)
            texts += found
            others |= {_start(o) for o in other}
        if not texts:
            continue

        def scrub_gated(text: str) -> str:
            return scrub_jsonld(text, gated=True, paywalled=True, css_class="c")

        operation = TransformText("script[type]", scrub_gated, accept=accepts_jsonld_script)
        out = Rewriter([operation], content_type="text/html").rewrite(raw)
        out_html = out.decode("utf-8", "replace")
        for block in _jsonld_blocks(out_html):
            if block.strip():
                assert not expanded_properties(parse_jsonld(block)) & SCHEMA_TEXT_PROPERTIES
        scrubbed = re.sub(r"\s+", " ", " ".join(_jsonld_blocks(out_html)))
        for text in texts:
            # Substantial texts only (a one-word "text" may be anywhere), and not those the
            # page also gives as a kept property (a description that repeats the teaser).
            if len(text) > 200 and _start(text) not in others:
                assert _start(text) not in scrubbed
        checked += 1
    assert checked >= 3, "the corpus has pages with articleBody/text in their JSON-LD"


def test_jsonld_test_oracle_sees_text_properties_in_unscrubbed_input() -> None:
    # The oracle must be able to fail: on the raw input it finds what the scrub removes.
    data = {"@context": {"s": "https://schema.org/", "b": "s:articleBody"}, "b": BODY}
    assert expanded_properties(data) & SCHEMA_TEXT_PROPERTIES


# -- through HTTP: the variants a review found kept on walled pages ------------------------------


def _page_with_jsonld(block: str, *, where: str = "</head>") -> bytes:
    html = article_html(SLUG)
    return html.replace(where, block + where, 1).encode()


def _served(tmp_path: Path, body: bytes, path: str, chunk: int | None) -> str:
    return serve(tmp_path, Page(body, chunk=chunk), path=path).text


LD_SECRET = "HIDDEN-alpha-ld"
JSONLD_VARIANTS = {
    "type-case": f'<script type="APPLICATION/LD+JSON">{{"articleBody": "{LD_SECRET}"}}</script>',
    "type-spaces": (
        f'<script type="  application/ld+json\n">{{"articleBody": "{LD_SECRET}"}}</script>'
    ),
    "type-parameters": (
        '<script type="application/ld+json; charset=utf-8">'
        f'{{"@type": "NewsArticle", "articleBody": "{LD_SECRET}"}}</script>'
    ),
    "no-at-type": f'<script type="application/ld+json">{{"text": "{LD_SECRET}"}}</script>',
    "lower-case-at-type": (
        '<script type="application/ld+json">'
        f'{{"@type": "newsarticle", "articleBody": "{LD_SECRET}"}}</script>'
    ),
    "not-an-article-type": (
        '<script type="application/ld+json">'
        f'{{"@type": "VideoObject", "transcript": "{LD_SECRET}"}}</script>'
    ),
    "expanded-iri": (
        '<script type="application/ld+json">'
        f'{{"@type": "http://schema.org/NewsArticle", '
        f'"http://schema.org/articleBody": "{LD_SECRET}"}}</script>'
    ),
    "context-alias": (
        '<script type="application/ld+json">'
        '{"@context": {"@vocab": "https://schema.org/", "body": "articleBody"}, '
        f'"@type": "NewsArticle", "body": "{LD_SECRET}"}}</script>'
    ),
    "graph-nested": (
        '<script type="application/ld+json">{"@graph": [{"@type": "WebPage", "mainEntity": '
        f'{{"hasPart": [{{"subjectOf": {{"text": "{LD_SECRET}"}}}}]}}}}]}}</script>'
    ),
    "inside-svg": (
        '<svg><script type="application/ld+json">'
        f'{{"@type": "NewsArticle", "articleBody": "{LD_SECRET}"}}</script></svg>'
    ),
    "inside-math": (
        f'<math><script type="application/ld+json">{{"articleBody": "{LD_SECRET}"}}</script></math>'
    ),
}


@pytest.mark.parametrize("chunk", [None, 1])
@pytest.mark.parametrize("variant", sorted(JSONLD_VARIANTS))
def test_jsonld_variant_scrubbed_on_a_walled_page_through_http(
    tmp_path: Path, variant: str, chunk: int | None
) -> None:
    # In the header, outside the container: only the scrub can keep it out.
    body = _page_with_jsonld(JSONLD_VARIANTS[variant], where="<header>")
    walled = _served(tmp_path / "walled", body, f"/premium/{SLUG}", chunk)
    assert LD_SECRET not in walled
    assert 'id="consentgate-cta"' in walled and "The Test Gazette" in walled
    # The same block on a free page is kept: the test would see a leak.
    assert LD_SECRET in _served(tmp_path / "free", body, f"/free/{SLUG}", chunk)
