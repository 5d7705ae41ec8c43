"""The cut against a spec parser: html5lib's tree-construction inputs and real news pages.

Each html5lib input is embedded (a) inside the container, after a two-paragraph lead and
before paragraphs that carry hidden marker words, and (b) around it (before the container and
again after it). The rewriter's output must pass the oracle (``tests/oracle.py``): no hidden
text in the output, nothing after the call to action inside the container, the lead kept as
the browser has it. A RewriteError is the rewriter failing closed (the wall page): safe.
Where html5lib and lexbor disagree, Chromium decides when it is installed (CI); without it
any problem either parser finds counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from oracle import (
    BROWSER_DECIDED,
    CTA_ID,
    CTA_TEXT,
    EMBEDDINGS,
    Case,
    LazyChromium,
    case_for,
    embed_inside,
    html5lib_cases,
    judge,
    rewrite,
)
from rewrite_helpers import corpus_dir

CORPUS = "html5lib-tree-construction"


@pytest.fixture(scope="module")
def arbiter() -> Iterator[LazyChromium]:
    chromium = LazyChromium()
    yield chromium
    chromium.close()


# -- the oracle itself -------------------------------------------------------------------
def test_oracle_flags_an_uncut_article_and_passes_a_faithful_cut() -> None:
    html = embed_inside("<b>bold</b>")
    uncut = html.replace("</div>", f'<aside id="{CTA_ID}">{CTA_TEXT}</aside></div>', 1)
    assert judge(case_for(html, uncut)).problems, "the full text must count as a leak"
    lead_end = html.index("<b>bold")
    faithful = (
        html[:lead_end] + f'<aside id="{CTA_ID}">{CTA_TEXT}</aside>' + html[html.index("</div>") :]
    )
    assert judge(case_for(html, faithful)).problems == []


def test_oracle_flags_content_after_the_cta_and_a_wrong_lead() -> None:
    html = embed_inside("")
    cta = f'<aside id="{CTA_ID}">{CTA_TEXT}</aside>'
    start = html.index("<p>LEADB")
    after_cta = html[:start] + cta + "<p>x</p>" + html[html.index("</div>") :]
    problems = judge(case_for(html, after_cta)).problems
    assert any("after the call to action" in p for p in problems), problems
    assert any("lead: differs" in p for p in problems), problems


def test_oracle_formatting_clone_after_the_cut_reveals_only_what_was_shown() -> None:
    # The <b> open at the cut is cloned into each later paragraph (reconstruction of the
    # active formatting elements), its title with it: that title was in a tag the reader
    # saw before the cut, so a faithful cut keeping it is no leak (hypothesis found this
    # false alarm); an attribute of a tag only after the cut still is one.
    html = (
        '<div id="oracle-art"><p><b title="HID0001DEN">LEADA one</p><p>LEADB two</p>'
        '<p>HID0002DEN three <i title="HID0003DEN">x</i></p></div>'
    )
    cta = f'<aside id="{CTA_ID}">{CTA_TEXT}</aside>'
    faithful = html[: html.index("<p>HID0002DEN")] + cta + "</div>"
    assert rewrite(html) is not None
    assert judge(case_for(html, faithful)).problems == []
    leaky = faithful.replace(cta, '<i title="HID0003DEN"></i>' + cta)
    assert any("HID0003DEN" in p for p in judge(case_for(html, leaky)).leaks)


def test_oracle_short_container_counts_words_across_inline_tags() -> None:
    words = " ".join(f"w{i}" for i in range(79))
    html = f'<div id="oracle-art">{words} x<b>y</b>z HID0001DEN<br>HID0002DEN</div>'
    from oracle import SELECTOR, analyze, parse_html5lib

    view = analyze(parse_html5lib(html), SELECTOR, 2)
    assert view.short
    assert view.lead[-1] == "xyz" and len(view.lead) == 80
    assert view.hidden_markers == {"HID0001DEN", "HID0002DEN"}


# -- html5lib's inputs ---------------------------------------------------------------------------
def _corpus_problems(embedding: str, arbiter: LazyChromium) -> tuple[list[str], int]:
    failures: list[str] = []
    closed = 0
    embed = EMBEDDINGS[embedding]
    for name, index, data in html5lib_cases(corpus_dir(CORPUS)):
        key = (name, index, embedding)
        html = embed(data)
        try:
            output = rewrite(html)
            if rewrite(html, chunks="bytes") != output:
                failures.append(f"{key}: 1-byte chunks give another output")
        except Exception as exc:  # anything but a RewriteError is a bug, not fail-closed
            failures.append(f"{key} {data[:60]!r}: raised {exc!r}"[:300])
            continue
        if output is None:
            closed += 1
            continue
        judgement = judge(case_for(html, output), arbiter)
        views = judgement.views
        split = views["html5lib"].summary() != views["lexbor"].summary()
        if split and key not in BROWSER_DECIDED:
            failures.append(
                f"{key}: html5lib and lexbor disagree on the container; check it in "
                "Chromium and add it to oracle.BROWSER_DECIDED"
            )
        if judgement.problems:
            failures.append(f"{key} {data[:60]!r}: {judgement.problems[:2]}")
    return failures, closed


@pytest.mark.corpora
@pytest.mark.slow
@pytest.mark.parametrize("embedding", ["inside", "around"])
def test_html5lib_inputs_cut_without_leak_by_oracle(embedding: str, arbiter: LazyChromium) -> None:
    failures, _closed = _corpus_problems(embedding, arbiter)
    assert not failures, f"{len(failures)} cases fail:\n" + "\n".join(failures[:25])


# -- real news pages ---------------------------------------------------------------------------
def _manifest() -> list[tuple[str, dict[str, object]]]:
    folder = corpus_dir("news-pages")
    entries = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return sorted(entries.items())


@pytest.mark.corpora
@pytest.mark.slow
def test_news_pages_cut_without_leak_by_oracle(arbiter: LazyChromium) -> None:
    failures: list[str] = []
    folder = corpus_dir("news-pages")
    for name, entry in _manifest():
        selector = str(entry["article_selector"])
        html = (folder / name).read_bytes().decode("utf-8", "replace")
        output = rewrite(html, selector=selector)
        if output is None:
            continue  # failed closed: the wall page
        case = Case(html, output, selector, 2, CTA_ID, CTA_TEXT, markers=False)
        judgement = judge(case, arbiter)
        view = judgement.views["html5lib"]
        if not view.found or not view.has_hidden:
            failures.append(f"{name}: the oracle finds no article to cut (test precondition)")
        if judgement.problems:
            failures.append(f"{name}: {judgement.problems[:2]}")
    assert not failures, "\n".join(failures)
