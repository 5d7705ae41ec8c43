"""The memo of whole pages rewritten: the same output as the rewriter, for exactly the
same input, and never one reader's page for another's plan.

Units against the rewriter itself (the oracle: a fresh ``Rewriter`` on the same bytes),
then through HTTP: readers of different consent choices and a walled reader beside a
registered one, interleaved on one gate serving the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import client, decide, html_app, make_gate, run
from tests.test_wall_http import (
    ArticleApp,
    full_text_present,
    hidden_markers,
    read,
    register,
    wall_gate,
)

from consentgate.rewrite import (
    InsertHTML,
    Operation,
    RemoveElement,
    RewriteAttributes,
    RewriteError,
    RewriteMemo,
    Rewriter,
    TransformText,
    Truncate,
)

CT = "text/html; charset=utf-8"
LIMIT = 1 << 20
PAGE = (
    b"<!DOCTYPE html><html><head><title>t</title></head><body><main><p>one</p><p>two</p>"
    + b"<p>three</p>" * 300
    + b"</main></body></html>"
)


def fresh(operations: list, body: bytes) -> bytes:  # type: ignore[type-arg]
    rewriter = Rewriter(operations, content_type=CT, max_token_bytes=LIMIT)
    return rewriter.feed(body) + rewriter.close()


def kept(
    memo: RewriteMemo,
    operations: Sequence[Operation],
    body: bytes,
    *,
    content_type: str = CT,
    max_token_bytes: int = LIMIT,
) -> bytes:
    """Rewrite ``body`` twice through the memo: the second time it is kept."""
    for _ in range(2):
        output, _ = memo.rewrite(
            operations, body, content_type=content_type, max_token_bytes=max_token_bytes
        )
    return output


def upper(tag: str, attrs: dict[str, str]) -> dict[str, str]:
    return {**attrs, "data-seen": tag}


OPERATIONS: list[Operation] = [
    InsertHTML.before_body_close("<div id=x>end</div>"),
    RewriteAttributes("p", upper),
    Truncate("main", "<b>CTA</b>", keep_items=2),
]


def test_rewrite_memo_hit_gives_the_rewriters_output_without_running_it() -> None:
    memo = RewriteMemo()
    first, _ = memo.rewrite(OPERATIONS, PAGE, content_type=CT, max_token_bytes=LIMIT)
    assert (memo.misses, len(memo)) == (1, 0)  # seen once: remembered, not kept
    second, _ = memo.rewrite(OPERATIONS, PAGE, content_type=CT, max_token_bytes=LIMIT)
    again, _ = memo.rewrite(
        list(OPERATIONS), bytes(bytearray(PAGE)), content_type=CT, max_token_bytes=LIMIT
    )
    assert first == second == again == fresh(OPERATIONS, PAGE)
    assert (memo.hits, memo.misses, len(memo)) == (1, 2, 1)


def test_rewrite_memo_pages_that_never_repeat_are_never_kept_nor_push_out_one_that_does() -> None:
    # A token of its own in every response (a nonce, a time): storing each would cost
    # its memory for nothing and, the memo being bounded, evict the pages read again.
    page_size = len(PAGE) + len(fresh(OPERATIONS, PAGE))
    memo = RewriteMemo(max_bytes=page_size * 3)
    kept(memo, OPERATIONS, PAGE)
    for n in range(50):
        unique = PAGE.replace(b"</body>", b"<!-- response %d --></body>" % n)
        output, _ = memo.rewrite(OPERATIONS, unique, content_type=CT, max_token_bytes=LIMIT)
        assert output == fresh(OPERATIONS, unique)
    assert len(memo) == 1 and memo.size == page_size
    hits = memo.hits
    assert memo.rewrite(OPERATIONS, PAGE, content_type=CT, max_token_bytes=LIMIT)[0] == fresh(
        OPERATIONS, PAGE
    )
    assert memo.hits == hits + 1


def test_rewrite_memo_same_sample_other_middle_is_rewritten_anew() -> None:
    # Same length, same first and last KiB: only the whole comparison tells them apart.
    memo = RewriteMemo()
    middle = len(PAGE) // 2
    other = PAGE[:middle] + b"X" + PAGE[middle + 1 :]
    assert len(other) == len(PAGE) and other[:1024] == PAGE[:1024]
    uncut = OPERATIONS[:2]  # no cut: the changed middle is in the output
    kept(memo, uncut, PAGE)
    assert len(memo) == 1
    output, _ = memo.rewrite(uncut, other, content_type=CT, max_token_bytes=LIMIT)
    assert output == fresh(uncut, other) != fresh(uncut, PAGE)
    assert memo.hits == 0
    assert (len(memo), memo.size) == (0, 0)  # the page changed: its old entry is dropped


def test_rewrite_memo_other_operations_or_content_type_miss() -> None:
    memo = RewriteMemo()
    kept(memo, OPERATIONS, PAGE)
    fewer = OPERATIONS[:2]
    assert kept(memo, fewer, PAGE) == fresh(fewer, PAGE)
    latin = "text/html; charset=windows-1252"
    kept(memo, OPERATIONS, PAGE, content_type=latin)
    kept(memo, OPERATIONS, PAGE, max_token_bytes=LIMIT // 2)
    assert memo.hits == 0 and len(memo) == 4


def test_rewrite_memo_callbacks_compare_by_identity() -> None:
    # Two callbacks that happen to do the same are different operations: the gate
    # builds its operations once, so equal behaviour means the same object.
    memo = RewriteMemo()
    kept(memo, [RewriteAttributes("p", upper)], PAGE)

    def other(tag: str, attrs: dict[str, str]) -> dict[str, str]:
        return {**attrs, "data-other": tag}

    output, _ = memo.rewrite(
        [RewriteAttributes("p", other)], PAGE, content_type=CT, max_token_bytes=LIMIT
    )
    assert b"data-other" in output and memo.hits == 0


def test_rewrite_memo_failures_are_not_kept() -> None:
    memo = RewriteMemo()
    missing = [Truncate("section.nowhere", "<b>CTA</b>", keep_items=1)]
    for _ in range(2):
        with pytest.raises(RewriteError):
            memo.rewrite(missing, PAGE, content_type=CT, max_token_bytes=LIMIT)
    assert (memo.misses, len(memo)) == (2, 0)


def test_rewrite_memo_size_bound_evicts_the_least_recently_used() -> None:
    pages = [PAGE.replace(b"<title>t", b"<title>" + bytes([65 + n])) for n in range(6)]
    one = len(pages[0]) + len(fresh(OPERATIONS, pages[0]))
    memo = RewriteMemo(max_bytes=one * 3 + 10)
    for page in pages[:3]:
        kept(memo, OPERATIONS, page)
    memo.rewrite(OPERATIONS, pages[0], content_type=CT, max_token_bytes=LIMIT)  # used again
    kept(memo, OPERATIONS, pages[3])  # evicts [1]
    assert len(memo) == 3 and memo.size <= memo.max_bytes
    hits = memo.hits
    memo.rewrite(OPERATIONS, pages[0], content_type=CT, max_token_bytes=LIMIT)
    assert memo.hits == hits + 1
    memo.rewrite(OPERATIONS, pages[1], content_type=CT, max_token_bytes=LIMIT)
    assert memo.hits == hits + 1  # [1] was gone


def test_rewrite_memo_equal_operations_built_anew_miss() -> None:
    # By identity: the gate keeps its operations; equal ones built again are rewritten
    # again (correct, only slower), never confused with another set.
    memo = RewriteMemo()
    kept(memo, OPERATIONS, PAGE)
    again = [InsertHTML.before_body_close("<div id=x>end</div>"), *OPERATIONS[1:]]
    assert again == OPERATIONS and again[0] is not OPERATIONS[0]
    output, _ = memo.rewrite(again, PAGE, content_type=CT, max_token_bytes=LIMIT)
    assert output == fresh(OPERATIONS, PAGE) and (memo.hits, memo.misses) == (0, 3)


def test_rewrite_memo_large_body_is_never_kept_an_unhashable_operation_is() -> None:
    memo = RewriteMemo(max_body=100)
    kept(memo, OPERATIONS, PAGE)
    assert len(memo) == 0

    class Unhashable:  # __eq__ without __hash__: an operation holding it cannot be hashed
        def __eq__(self, other: object) -> bool:
            return self is other

        def __call__(self, text: str) -> str:
            return text.upper()

    memo = RewriteMemo()
    unhashable = [TransformText("title", Unhashable())]
    output = kept(memo, unhashable, PAGE)
    again, _ = memo.rewrite(unhashable, PAGE, content_type=CT, max_token_bytes=LIMIT)
    assert b"<title>T</title>" in output and output == again
    assert (memo.hits, len(memo)) == (1, 1)


_chunks = st.lists(
    st.sampled_from(
        ["<p>a</p>", "<p>b", "</p>", "<main>", "</main>", "<div>", "</div>", "text ", "<br>",
         "<!-- c -->", "<script>x</script>", "</body>", "<svg><p>s</svg>", "<table><td>t"]
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(_chunks, min_size=1, max_size=4))
def test_rewrite_memo_any_sequence_of_pages_equals_fresh_rewrites(pages: list[list[str]]) -> None:
    memo = RewriteMemo(max_bytes=4096)
    operations = [RemoveElement("div"), *OPERATIONS]
    for parts in pages * 3:  # every page thrice: kept the second time, a hit (or evicted)
        body = ("<html><body>" + "".join(parts)).encode()
        try:
            expected: bytes | type[RewriteError] = fresh(operations, body)
        except RewriteError:
            expected = RewriteError
        try:
            got: bytes | type[RewriteError] = memo.rewrite(
                operations, body, content_type=CT, max_token_bytes=LIMIT
            )[0]
        except RewriteError:
            got = RewriteError
        assert got == expected


# -- through HTTP ---------------------------------------------------------------------------

TRACKED = (
    "<!DOCTYPE html><html><head><title>Story</title></head><body><p>Story</p>"
    '<script type="text/plain" data-consent="analytics" data-src="/stats.js"></script>'
    "</body></html>"
)


def test_rewrite_memo_readers_of_other_choices_never_share_a_page(tmp_path: Path) -> None:
    gate = make_gate(html_app(TRACKED), tmp_path)

    async def scenario() -> list[tuple[str, str]]:
        async with client(gate) as yes, client(gate) as no:
            await decide(yes, "accept_all")
            await decide(no, "reject_all")
            pages = []
            for _ in range(4):  # each page kept the second time, then served
                for name, c in (("yes", yes), ("no", no)):
                    response = await c.get("/story", headers={"accept": "text/html"})
                    pages.append((name, response.text))
            return pages

    pages = run(scenario())
    assert gate.memo is not None and gate.memo.hits >= 4  # the memo did serve them
    for name, text in pages:
        live = ' src="/stats.js"' in text
        assert live is (name == "yes"), (name, text)


def test_rewrite_memo_walled_reader_beside_a_registered_one_never_gets_the_text(
    tmp_path: Path,
) -> None:
    app = ArticleApp()
    gate = wall_gate(app, tmp_path)

    async def scenario() -> list[tuple[str, httpx.Response]]:
        async with client(gate) as member, client(gate) as anonymous:
            # The same consent for both: their pages differ by the wall alone.
            await decide(member, "reject_all")
            await decide(anonymous, "reject_all")
            await register(member)
            seen = []
            for _ in range(4):  # each page kept the second time, then served
                for name, c in (("member", member), ("anonymous", anonymous)):
                    seen.append((name, await read(c, "/premium/alpha")))
            return seen

    seen = run(scenario())
    assert gate.memo is not None and gate.memo.hits >= 4
    for name, response in seen:
        if name == "member":
            assert full_text_present(response.text, "alpha")
        else:
            assert hidden_markers(response.text) == []
            assert 'id="consentgate-cta"' in response.text


def test_rewrite_memo_off_rewrites_every_page(tmp_path: Path) -> None:
    gate = make_gate(html_app(TRACKED), tmp_path, cache={"rewrite_memo_mb": 0})

    async def scenario() -> list[str]:
        async with client(gate) as c:
            await decide(c, "accept_all")
            return [(await c.get("/", headers={"accept": "text/html"})).text for _ in range(2)]

    first, second = run(scenario())
    assert gate.memo is None
    assert first == second and ' src="/stats.js"' in first


def test_rewrite_memo_walled_page_that_cannot_be_cut_is_the_wall_page_every_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No container in the page: the first response fails closed, and so must the
    # second (a failure is never kept as if it were an output).
    app = ArticleApp()
    app.body_override = b"<html><body><p>HIDDEN-alpha-2 not in a container</p></body></html>"
    gate = wall_gate(app, tmp_path)

    async def scenario() -> list[httpx.Response]:
        async with client(gate) as c:
            return [await read(c, "/premium/alpha") for _ in range(2)]

    with caplog.at_level(logging.ERROR, logger="consentgate"):
        responses = run(scenario())
    for response in responses:
        assert response.status_code == 200
        assert hidden_markers(response.text) == []
        assert 'id="consentgate-cta"' in response.text
    assert sum("sent the wall page" in r.getMessage() for r in caplog.records) == 2
