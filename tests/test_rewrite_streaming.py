"""Output streams out before the input ends, and memory stays bounded."""

from __future__ import annotations

from consentgate.rewrite import InsertHTML, Rewriter, Truncate

PARAGRAPH = b"<p class=x>Some text <a href='/x'>link</a> and more text.</p>\n"


def big_document(paragraphs: int = 20_000) -> bytes:
    return (
        b"<html><head><title>t</title></head><body><div class=article>"
        + PARAGRAPH * paragraphs
        + b"</div></body></html>"
    )


def test_output_is_emitted_before_close() -> None:
    data = big_document()
    rewriter = Rewriter([InsertHTML.before_body_close("<B>")], encoding="utf-8")
    half = len(data) // 2
    first = rewriter.feed(data[:half])
    assert len(first) > half - 100
    rest = rewriter.feed(data[half:]) + rewriter.close()
    assert first + rest == data.replace(b"</body>", b"<B></body>")


def test_held_bytes_stay_small_with_small_chunks() -> None:
    data = big_document(2_000)
    rewriter = Rewriter([Truncate("div.article", "C", keep_items=3)], encoding="utf-8")
    for i in range(0, len(data), 100):
        rewriter.feed(data[i : i + 100])
        assert rewriter._tokenizer.held_bytes < 200
    rewriter.close()
    assert rewriter.report.cuts == 1


def test_cut_content_is_dropped_while_streaming() -> None:
    data = big_document()
    rewriter = Rewriter([Truncate("div.article", "C", keep_items=2)], encoding="utf-8")
    out = [rewriter.feed(data[i : i + 4096]) for i in range(0, len(data), 4096)]
    out.append(rewriter.close())
    result = b"".join(out)
    assert result.count(b"<p class=x>") == 2
    assert result.endswith(b"C</div></body></html>")
