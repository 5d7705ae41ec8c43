"""Charset decisions and the header helpers."""

from __future__ import annotations

import gzip
import zlib

import pytest

from consentgate.rewrite import (
    InsertHTML,
    RewriteError,
    RewriteErrorReason,
    Rewriter,
    StreamingDecoder,
    detect_charset,
    is_rewritable,
    is_rewritable_content_type,
    prescan_meta_charset,
)


def test_header_charset_wins_over_meta() -> None:
    decision = detect_charset("text/html; charset=ISO-8859-2", b'<meta charset="utf-8">')
    assert (decision.encoding, decision.source, decision.safe) == ("iso8859-2", "header", True)


def test_bom_wins_over_everything() -> None:
    decision = detect_charset("text/html; charset=cp1251", b"\xef\xbb\xbf<p>")
    assert (decision.encoding, decision.source) == ("utf-8", "bom")
    assert not detect_charset(None, b"\xff\xfe<\x00").safe


@pytest.mark.parametrize(
    ("head", "label"),
    [
        (b'<meta charset="windows-1251">', "windows-1251"),
        (b"<META CHARSET=koi8-r>", "koi8-r"),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">', "Shift_JIS"),
        (b"<meta content='text/html;charset=gbk' http-equiv=content-type>", "gbk"),
        (b'<!-- <meta charset="big5"> --><meta charset=euc-jp>', "euc-jp"),
    ],
)
def test_meta_prescan(head: bytes, label: str) -> None:
    assert prescan_meta_charset(b"<html><head>" + head) == label


def test_meta_beyond_1024_bytes_is_ignored() -> None:
    assert prescan_meta_charset(b" " * 1100 + b"<meta charset=koi8-r>") is None


@pytest.mark.parametrize(
    "label",
    [
        "utf-8",
        "windows-1252",
        "iso-8859-1",
        "latin1",
        "koi8-r",
        "gb18030",
        "gbk",
        "shift_jis",
        "euc-jp",
        "euc-kr",
        "big5",
        "windows-1251",
        "iso-8859-15",
        "ascii",
    ],
)
def test_ascii_compatible_encodings_are_safe(label: str) -> None:
    assert detect_charset(f"text/html; charset={label}").safe


@pytest.mark.parametrize(
    "label",
    ["utf-16", "utf-16le", "utf-32", "iso-2022-jp", "hz-gb-2312", "utf-7", "no-such-charset"],
)
def test_unsafe_encodings_are_reported(label: str) -> None:
    assert not detect_charset(f"text/html; charset={label}").safe
    with pytest.raises(RewriteError) as info:
        Rewriter([], content_type=f"text/html; charset={label}")
    assert info.value.reason is RewriteErrorReason.UNSAFE_CHARSET


def test_default_is_utf8_undeclared() -> None:
    decision = detect_charset(None, b"<p>hi")
    assert (decision.encoding, decision.declared, decision.snippet_encoding) == (
        "utf-8",
        False,
        "ascii",
    )


def test_snippet_encoded_in_document_charset() -> None:
    ops = [InsertHTML("body", "<p>Café ✓</p>")]
    out = Rewriter(ops, content_type="text/html; charset=windows-1252").rewrite(b"<body>")
    assert out == b"<body><p>Caf\xe9 &#10003;</p>"
    out = Rewriter(ops, encoding="utf-8").rewrite(b"<body>")
    assert out == "<body><p>Café ✓</p>".encode()
    # Undeclared: character references are right whatever the real encoding is.
    out = Rewriter(ops).rewrite(b"<body>")
    assert out == b"<body><p>Caf&#233; &#10003;</p>"


def test_rewriter_sniffs_meta_from_body() -> None:
    body = b'<html><head><meta charset="windows-1250"></head><body>' + b"x" * 2000
    rewriter = Rewriter([InsertHTML("body", "ř")])
    out = rewriter.feed(body[:10]) + rewriter.feed(body[10:]) + rewriter.close()
    assert rewriter.charset is not None and rewriter.charset.encoding == "cp1250"
    assert out == body.replace(b"<body>", b"<body>\xf8")


def test_rewriter_raises_for_utf16_meta_sniffed_as_utf8() -> None:
    rewriter = Rewriter([])
    assert rewriter.rewrite(b'<meta charset="utf-16"><p>') == b'<meta charset="utf-16"><p>'
    assert rewriter.charset is not None and rewriter.charset.encoding == "utf-8"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html", True),
        ("TEXT/HTML; charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("application/json", False),
        (None, False),
        ("text/htmlx", False),
    ],
)
def test_is_rewritable_content_type(content_type: str | None, expected: bool) -> None:
    assert is_rewritable_content_type(content_type) is expected


def test_is_rewritable_checks_encoding() -> None:
    assert is_rewritable("text/html", None)
    assert is_rewritable("text/html", "identity")
    assert not is_rewritable("text/html", "gzip")
    assert is_rewritable("text/html", "gzip", allow_decoding=True)
    assert not is_rewritable("text/html", "br", allow_decoding=True)
    assert is_rewritable("text/html", "gzip, gzip", allow_decoding=True)  # RFC 9110 §8.4: a list
    assert not is_rewritable("text/html", "gzip, br", allow_decoding=True)


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda d: zlib.compress(d)[2:-4]),
    ],
)
def test_streaming_decoder(coding: str, compress: object) -> None:
    body = b"<p>hello</p>" * 1000
    packed = compress(body)  # type: ignore[operator]
    decoder = StreamingDecoder(coding)
    out = b"".join(decoder.feed(packed[i : i + 7]) for i in range(0, len(packed), 7))
    assert out + decoder.close() == body


def test_streaming_decoder_caps_output() -> None:
    decoder = StreamingDecoder("gzip", max_output=1000)
    with pytest.raises(ValueError, match="exceeds"):
        decoder.feed(gzip.compress(b"x" * 100_000))
