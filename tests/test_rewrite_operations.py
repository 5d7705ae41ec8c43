"""Every operation, each fed whole, byte by byte and in random chunks (same output)."""

from __future__ import annotations

import json

import pytest

from consentgate.rewrite import (
    InsertHTML,
    Position,
    RemoveElement,
    RewriteAttributes,
    RewriteError,
    RewriteErrorReason,
    Rewriter,
    TransformText,
    Truncate,
)
from rewrite_helpers import run, run_all_chunkings, whole

PAGE = (
    b"<!DOCTYPE html><HTML><Head><title>T</title></head>\n<body class=x>"
    b"<div class='article-body'><p>One</p><p>Two <b>bold</b></p><p>Three</p>"
    b"<!-- c --><script>var s='<p>x</p>';</script><p>Four</p></div>"
    b"<footer>F</footer></body></html>"
)


def test_insert_after_head_start_and_before_body_end() -> None:
    out = run_all_chunkings(
        lambda: [
            InsertHTML.after_head_open("<script>cm()</script>"),
            InsertHTML.before_body_close("<div id=b></div>"),
        ],
        PAGE,
    )
    assert out == PAGE.replace(b"<Head>", b"<Head><script>cm()</script>").replace(
        b"</body>", b"<div id=b></div></body>"
    )


def test_insert_once_by_default_and_every_time_when_asked() -> None:
    data = b"<p>a</p><p>b</p>"
    assert run_all_chunkings(lambda: [InsertHTML("p", "X", Position.BEFORE_START)], data) == (
        b"X<p>a</p><p>b</p>"
    )
    out = run_all_chunkings(lambda: [InsertHTML("p", "Y", Position.AFTER_END, once=False)], data)
    assert out == b"<p>a</p>Y<p>b</p>Y"


def test_insert_before_end_of_selected_element() -> None:
    out = run_all_chunkings(
        lambda: [InsertHTML("div.article-body", "<i>end</i>", Position.BEFORE_END)], PAGE
    )
    assert out == PAGE.replace(b"</div>", b"<i>end</i></div>")


def test_insert_body_end_falls_back_to_eof() -> None:
    data = b"<html><body><p>no closing body"
    out, rewriter = run([InsertHTML.before_body_close("<B>")], whole(data))
    assert out == data + b"<B>"
    assert rewriter.report.fallbacks == 1


def test_insert_after_head_falls_back_before_first_content_tag() -> None:
    data = b"<!doctype html><html><meta charset=utf-8><p>x"
    out = run_all_chunkings(lambda: [InsertHTML.after_head_open("<S>")], data)
    assert out == b"<!doctype html><html><S><meta charset=utf-8><p>x"


def test_stray_body_end_tag_still_gets_insertion() -> None:
    data = b"<p>x</p></body>"
    assert run_all_chunkings(lambda: [InsertHTML.before_body_close("<B>")], data) == (
        b"<p>x</p><B></body>"
    )


def test_required_insertion_missing_raises() -> None:
    with pytest.raises(RewriteError) as info:
        run([InsertHTML("main", "x", required=True)], whole(b"<p>"))
    assert info.value.reason is RewriteErrorReason.TARGET_NOT_FOUND


def activate(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
    if attrs.get("type") != "text/plain" or "data-src" not in attrs:
        return None
    new = {k: v for k, v in attrs.items() if k not in ("type", "data-src")}
    return {"src": attrs["data-src"], **new}


def test_rewrite_attributes_activates_script() -> None:
    data = (
        b'<script type="text/plain" data-consent="analytics" data-src="x.js?a=1&amp;b=2">'
        b"</script><SCRIPT   src=keep.js ></SCRIPT>"
    )
    out = run_all_chunkings(lambda: [RewriteAttributes("script[data-consent]", activate)], data)
    assert out == (
        b'<script src="x.js?a=1&amp;b=2" data-consent="analytics"></script>'
        b"<SCRIPT   src=keep.js ></SCRIPT>"
    )


def test_rewrite_attributes_same_tag_answered_once_per_operation_each_counted() -> None:
    # The gated scripts of a site come back byte for byte on every page: the callback's
    # answer for a tag is kept (a callback must be pure), the report still counts each.
    asked: list[dict[str, str]] = []

    def counting(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
        asked.append(attrs)
        return activate(tag, attrs)

    gated = b'<script type="text/plain" data-consent="a" data-src="x.js"></script>'
    other = b'<script type="text/plain" data-consent="a" data-src="y.js"></script>'
    inert = b'<script data-consent="a">1</script>'
    page = b"<body>" + gated + inert + gated + other + b"</body>"
    expected = page.replace(gated, b'<script src="x.js" data-consent="a"></script>').replace(
        other, b'<script src="y.js" data-consent="a"></script>'
    )
    operations = [RewriteAttributes("script[data-consent]", counting)]
    for _ in range(3):  # three responses of one set of operations
        rewriter = Rewriter(operations, content_type="text/html; charset=utf-8")
        assert rewriter.feed(page) + rewriter.close() == expected
        assert rewriter.report.attribute_rewrites == 3
    assert len(asked) == 3  # x.js, the inert one, y.js: once each
    # Another encoding is another answer (the attributes decode differently).
    latin = Rewriter(operations, content_type="text/html; charset=windows-1252")
    assert latin.feed(page) + latin.close() == expected
    assert len(asked) == 6
    # The same operation in another set shares its answers; one built anew is asked anew
    # (by identity, as the gate keeps its operations), and so is another callback.
    with_more = [InsertHTML.before_body_close("<i>x</i>"), *operations]
    more = Rewriter(with_more, encoding="utf-8")
    assert more.feed(page) + more.close() == expected.replace(b"</body>", b"<i>x</i></body>")
    assert len(asked) == 6
    again = Rewriter([RewriteAttributes("script[data-consent]", counting)], encoding="utf-8")
    assert again.feed(page) + again.close() == expected and len(asked) == 9
    fresh_answers: list[str] = []

    def other_callback(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
        fresh_answers.append(tag)
        return None

    mine = Rewriter([RewriteAttributes("script[data-consent]", other_callback)], encoding="utf-8")
    assert mine.feed(page) + mine.close() == page and len(fresh_answers) == 3


def test_rewrite_attributes_long_tag_is_asked_every_time() -> None:
    asked: list[str] = []

    def mark(tag: str, attrs: dict[str, str]) -> dict[str, str]:
        asked.append(tag)
        return {**attrs, "data-seen": "1"}

    long_tag = b'<p title="' + b"t" * 4096 + b'">'
    page = long_tag + b"a</p>" + long_tag + b"b</p>"
    operations = [RewriteAttributes("p", mark)]
    for _ in range(2):
        rewriter = Rewriter(operations, encoding="utf-8")
        assert (rewriter.feed(page) + rewriter.close()).count(b'data-seen="1"') == 2
    assert len(asked) == 4


def test_rewrite_attributes_kept_answers_stay_bounded() -> None:
    from consentgate.rewrite import actions

    operations = [RewriteAttributes("p", lambda tag, attrs: {**attrs, "data-seen": "1"})]
    page = b"".join(b"<p id=%d>x</p>" % n for n in range(actions._ATTRIBUTE_ANSWERS_MAX + 100))
    rewriter = Rewriter(operations, encoding="utf-8")
    out = rewriter.feed(page) + rewriter.close()
    assert out.count(b'data-seen="1"') == actions._ATTRIBUTE_ANSWERS_MAX + 100
    assert len(actions._ATTRIBUTE_ANSWERS) <= actions._ATTRIBUTE_ANSWERS_MAX


def test_rewrite_attributes_escapes_and_keeps_untouched_bytes() -> None:
    data = b"<iframe data-src='/e?q=\"x\"&amp;y' Width=3 allowfullscreen></iframe><iframe src=z>"

    def swap(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
        if "data-src" not in attrs:
            return None
        return {"src": attrs["data-src"], "width": attrs["width"], "allowfullscreen": ""}

    out = run_all_chunkings(lambda: [RewriteAttributes("iframe", swap)], data)
    assert out == (
        b'<iframe src="/e?q=&quot;x&quot;&amp;y" width="3" allowfullscreen></iframe><iframe src=z>'
    )


def test_remove_element_with_content_and_nested_same_tag() -> None:
    data = b"<div>a<div class=ad>x<div>y</div>z</div>b</div>"
    assert run_all_chunkings(lambda: [RemoveElement("div.ad")], data) == b"<div>ab</div>"


def test_remove_void_and_raw_text_elements() -> None:
    data = b"<p>a<img class=t src=x>b<script class=t>if(a<b)x('</p>')</script>c</p>"
    assert run_all_chunkings(lambda: [RemoveElement(".t")], data) == b"<p>abc</p>"


def test_remove_element_closed_implicitly() -> None:
    data = b"<p class=ad>gone<div>kept</div>"
    assert run_all_chunkings(lambda: [RemoveElement("p.ad")], data) == b"<div>kept</div>"


def test_truncate_keep_items_inserts_cta_and_closes() -> None:
    out, rewriter = run([Truncate("div.article-body", "<CTA>", keep_items=2)], whole(PAGE))
    assert out == PAGE.replace(
        b"<p>Three</p><!-- c --><script>var s='<p>x</p>';</script><p>Four</p>", b"<CTA>"
    )
    assert rewriter.report.cuts == 1 and rewriter.report.truncated
    assert run_all_chunkings(lambda: [Truncate("div.article-body", "<CTA>", keep_items=2)], PAGE)


def test_truncate_closes_elements_open_at_the_cut() -> None:
    data = b"<div class=a><section><p>1<p>2<span>s<p>3</section>tail</div>after"
    out = run_all_chunkings(lambda: [Truncate("div.a", "<CTA>", keep_items=2)], data)
    # Open elements are closed first, so the call to action stands in the container itself.
    assert out == b"<div class=a><section><p>1<p>2<span>s</span></p></section><CTA></div>after"


def test_truncate_container_closed_implicitly_gets_end_tag() -> None:
    data = b"<section><div class=a><p>1</p><p>2</p><p>3</section>after"
    out = run_all_chunkings(lambda: [Truncate("div.a", "<CTA>", keep_items=1)], data)
    assert out == b"<section><div class=a><p>1</p><CTA></div></section>after"


def test_truncate_short_content_is_not_cut() -> None:
    data = b"<div class=a><p>1</p></div>"
    out, rewriter = run([Truncate("div.a", "<CTA>", keep_items=2)], whole(data))
    assert out == data and rewriter.report.cuts == 0 and rewriter.report.containers_found == 1


def test_truncate_keep_zero_items() -> None:
    data = b"<div class=a><p>1</p></div>x"
    assert run_all_chunkings(lambda: [Truncate("div.a", "C", keep_items=0)], data) == (
        b"<div class=a>C</div>x"
    )


def test_truncate_keep_words_cuts_mid_text() -> None:
    data = b"<div class=a><p>one two <b>three four</b> five</p><p>six</p></div>end"
    out = run_all_chunkings(lambda: [Truncate("div.a", "<CTA>", keep_words=3)], data)
    # The open elements are closed at the cut, then the snippet goes in the container.
    assert out == b"<div class=a><p>one two <b>three </b></p><CTA></div>end"


def test_truncate_keep_words_ignores_script_text() -> None:
    data = b"<div class=a><script>a b c d</script>one two</div>"
    out = run_all_chunkings(lambda: [Truncate("div.a", "|", keep_words=1)], data)
    assert out == b"<div class=a><script>a b c d</script>one |</div>"


def test_truncate_missing_container_raises_when_required() -> None:
    with pytest.raises(RewriteError) as info:
        run([Truncate("div.article", "x", keep_items=1)], whole(b"<p>1</p>"))
    assert info.value.reason is RewriteErrorReason.CONTAINER_NOT_FOUND
    out, rewriter = run(
        [Truncate("div.article", "x", keep_items=1, required=False)], whole(b"<p>1</p>")
    )
    assert out == b"<p>1</p>" and len(rewriter.report.not_found) == 1


def test_truncate_validates_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Truncate("div")
    with pytest.raises(ValueError, match="negative"):
        Truncate("div", keep_words=-1)


def strip_article_body(text: str) -> str:
    data = json.loads(text)
    data.pop("articleBody", None)
    return json.dumps(data)


def test_transform_json_ld_text() -> None:
    ld = b'{"@type": "NewsArticle", "articleBody": "secret </p> text"}'
    data = b'<script type="application/ld+json">' + ld + b"</script><script>x</script>"
    out = run_all_chunkings(
        lambda: [TransformText('script[type="application/ld+json"]', strip_article_body)], data
    )
    assert out == b'<script type="application/ld+json">{"@type": "NewsArticle"}</script>' + (
        b"<script>x</script>"
    )


def test_transform_text_over_cap_raises() -> None:
    data = b"<script type=t>" + b"x" * 100 + b"</script>"
    rewriter = Rewriter([TransformText("script", str.upper)], encoding="utf-8", max_text_bytes=50)
    with pytest.raises(RewriteError) as info:
        rewriter.rewrite(data)
    assert info.value.reason is RewriteErrorReason.TEXT_TOO_LARGE


def test_transform_callback_failure_is_reported() -> None:
    def boom(text: str) -> str:
        raise KeyError(text)

    with pytest.raises(RewriteError) as info:
        run([TransformText("script", boom)], whole(b"<script>x</script>"))
    assert info.value.reason is RewriteErrorReason.CALLBACK_FAILED


def test_operations_combined_on_a_gated_page() -> None:
    ops = lambda: [  # noqa: E731
        InsertHTML.after_head_open("<script>consent()</script>"),
        InsertHTML.before_body_close("<div id=banner></div>"),
        Truncate("div.article-body", "<a href=/register>Register</a>", keep_items=1),
        RemoveElement("footer"),
    ]
    out = run_all_chunkings(ops, PAGE)
    assert b"Two" not in out and b"Four" not in out and b"<footer>" not in out
    assert out.count(b"Register") == 1 and b"consent()" in out and b"banner" in out


def test_feed_after_close_is_an_error() -> None:
    rewriter = Rewriter([], encoding="utf-8")
    rewriter.close()
    with pytest.raises(RewriteError) as info:
        rewriter.feed(b"x")
    assert info.value.reason is RewriteErrorReason.CLOSED


def test_svg_script_is_not_raw_text_and_cdata_is_opaque() -> None:
    data = b"<svg><script><![CDATA[ a<b ]]></script><title><i>x</i></title><b>y</b></svg>"
    out = run_all_chunkings(lambda: [RemoveElement("svg i"), RemoveElement("svg b")], data)
    # <title> is an HTML integration point (its <i> is inside svg); <b> breaks out of SVG.
    assert out == data.replace(b"<i>x</i>", b"")


def test_table_implied_closes_keep_tracking() -> None:
    data = b"<table><tr><td class=a>1<td>2<tr><td>3</table><p>after"
    assert run_all_chunkings(lambda: [RemoveElement("td.a")], data) == (
        b"<table><tr><td>2<tr><td>3</table><p>after"
    )


def test_list_items_close_each_other() -> None:
    data = b"<ul class=l><li>1<li class=x>2<li>3</ul>"
    assert run_all_chunkings(lambda: [RemoveElement("ul > li.x")], data) == (
        b"<ul class=l><li>1<li>3</ul>"
    )


def test_unmatched_end_tag_is_ignored_for_tracking() -> None:
    data = b"<div class=a><p>1</span></p><p>2</p></div>x"
    out = run_all_chunkings(lambda: [Truncate("div.a", "C", keep_items=1)], data)
    assert out == b"<div class=a><p>1</span></p>C</div>x"


def test_truncate_second_container_is_emptied_not_passed_whole() -> None:
    """A page with two article bodies: the second must not leak past the cut."""
    html = (
        b"<body><div class=body><p>one</p><p>two</p><p>SECRET-1</p></div>"
        b"<div class=body><p>a</p><p>SECRET-2</p></div><p>after</p></body>"
    )
    out = run_all_chunkings(
        lambda: [Truncate("div.body", "<aside>CTA</aside>", keep_items=1)], html
    )
    assert b"SECRET" not in out
    assert out.count(b"<aside>CTA</aside>") == 1
    assert out.endswith(b"<div class=body></div><p>after</p></body>")


def test_remove_self_closed_foreign_element_keeps_the_rest() -> None:
    html = b"<body><svg><g/><text>kept</text></svg><p>after</p></body>"
    out = run_all_chunkings(lambda: [RemoveElement("svg g")], html)
    assert out == b"<body><svg><text>kept</text></svg><p>after</p></body>"


@pytest.mark.parametrize("chunk", [None, 1])
def test_truncate_nth_item_closed_by_the_containers_end_tag_cuts_there(chunk: int | None) -> None:
    # <p>b</main>: the container's end tag closes the N-th item too, in one step. The cut
    # falls where it would with an explicit </p> (it raised StopIteration, which on a
    # walled page meant the wall page instead of the lead).
    ops = [Truncate("main", "<b>CTA</b>", keep_items=2)]
    implied = b"<html><body><main><p>a</p><p>b</main><footer>f</footer></body></html>"
    explicit = implied.replace(b"<p>b</main>", b"<p>b</p></main>")
    expected = (
        b"<html><body><main><p>a</p><p>b</p><b>CTA</b></main><footer>f</footer></body></html>"
    )
    for page in (implied, explicit):
        rewriter = Rewriter(ops, content_type="text/html; charset=utf-8")
        pieces = [page] if chunk is None else [page[i : i + 1] for i in range(len(page))]
        assert b"".join(rewriter.feed(p) for p in pieces) + rewriter.close() == expected


@pytest.mark.parametrize(
    ("container", "tag"),
    [
        ("div.article-body", b"<div class='&#97;rticle-body'>"),  # a reference spells it
        ("div#story", b"<div ID=story>"),  # an attribute name in capitals
        ("div[data-kind=story]", b'<div data-kind="st&#111;ry">'),
    ],
)
def test_truncate_finds_a_container_whose_bytes_do_not_spell_its_selector(
    container: str, tag: bytes
) -> None:
    """Selectors skip elements whose tag bytes cannot hold the id or class they ask for,
    before decoding attributes: a value the bytes spell only through a character
    reference, or a name in capitals, must still match."""
    page = b"<body><div class=other>x</div>" + tag + b"<p>One</p><p>Two</p><p>Three</p></div>"
    out = run_all_chunkings(lambda: [Truncate(container, "<aside>CTA</aside>", keep_items=2)], page)
    assert b"Three" not in out and b"<aside>CTA</aside>" in out and b">x</div>" in out
