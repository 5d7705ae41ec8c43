"""Content-Encoding as RFC 9110 §8.4 says: a list of codings in the order applied, decoded
from the last to the first, ``identity`` ignored, names case-insensitive, whitespace
tolerated. gzip, x-gzip and deflate (zlib-wrapped or raw) are undone; anything else on a
walled page gives the wall page and on a free page passes through untouched. Never a 500.

The oracle for "decoded right" is the same page served without any coding: the answer to
the encoded page must be the answer to the plain one.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Callable

import pytest
from tests.test_wall_fail_closed import (
    CTA,
    LEAD_TEXT,
    SLUG,
    Page,
    Result,
    assert_never_passed_through,
    error_lines,
    serve,
)
from tests.test_wall_http import article_html, full_text_present, hidden_markers

from consentgate.rewrite import StreamingDecoder, is_rewritable
from consentgate.rewrite.headers import MAX_CODINGS, content_codings

BODY = article_html(SLUG).encode()
WALLED = f"/premium/{SLUG}"
FREE = f"/free/{SLUG}"
CHUNKINGS = [None, 1]


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


CODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "identity": lambda data: data,
}


def encode(data: bytes, codings: list[str]) -> bytes:
    """Apply the codings in the order listed (the order of application)."""
    for coding in codings:
        data = CODERS[coding.strip().lower()](data)
    return data


def comparable(result: Result) -> bytes:
    # Per-response tokens (CSRF) differ between any two answers.
    return re.sub(rb'(value|cg_csrf)="?[^";]*', b"", result.body)


def plain(tmp_path_factory: pytest.TempPathFactory, path: str) -> Result:
    return serve(tmp_path_factory.mktemp("plain"), Page(BODY), path=path)


# -- lists that are undone ----------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize(
    "header",
    [
        "identity, gzip",
        "gzip, identity",
        "gzip, gzip",
        "GZIP",
        " gzip\t",
        "x-gzip",
        "deflate",
        "deflate, gzip",
        "gzip,deflate",
        "Identity , GZip , identity",
    ],
)
@pytest.mark.parametrize("path", [WALLED, FREE])
def test_wall_encodings_list_decoded_in_order_and_served_as_the_plain_page(
    tmp_path_factory: pytest.TempPathFactory, header: str, chunk: int | None, path: str
) -> None:
    encoded = encode(BODY, header.split(","))
    page = Page(encoded, chunk=chunk, headers=[("content-encoding", header)])
    result = serve(tmp_path_factory.mktemp("encoded"), page, path=path)
    assert result.status == 200
    assert "content-encoding" not in result.headers
    assert comparable(result) == comparable(plain(tmp_path_factory, path))
    if path == WALLED:
        assert hidden_markers(result.body) == [] and CTA in result.text
    else:
        assert full_text_present(result.text, SLUG)


def test_wall_encodings_raw_deflate_is_undone(tmp_path_factory: pytest.TempPathFactory) -> None:
    page = Page(raw_deflate(BODY), chunk=1, headers=[("content-encoding", "deflate")])
    result = serve(tmp_path_factory.mktemp("raw"), page)
    assert comparable(result) == comparable(plain(tmp_path_factory, WALLED))


def test_wall_encodings_header_lines_are_one_list(tmp_path_factory: pytest.TempPathFactory) -> None:
    # RFC 9110 §5.3: two Content-Encoding lines are the list "deflate, gzip".
    encoded = encode(BODY, ["deflate", "gzip"])
    lines = [("content-encoding", "deflate"), ("content-encoding", "gzip")]
    result = serve(tmp_path_factory.mktemp("lines"), Page(encoded, headers=lines))
    assert comparable(result) == comparable(plain(tmp_path_factory, WALLED))


def test_wall_encodings_identity_alone_changes_nothing_but_is_rewritten(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    page = Page(BODY, chunk=1, headers=[("content-encoding", "identity")])
    result = serve(tmp_path_factory.mktemp("identity"), page)
    assert comparable(result) == comparable(plain(tmp_path_factory, WALLED))


# -- codings that are not undone ------------------------------------------------------------


UNDECODABLE = ["br", "zstd", "compress", "bogus-coding", "gzip, br", "br, gzip", "gzip, bogus"]


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize("header", [*UNDECODABLE, ", ".join(["gzip"] * (MAX_CODINGS + 1))])
def test_wall_encodings_unknown_coding_on_a_walled_page_gives_the_wall_page(
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
    header: str,
    chunk: int | None,
) -> None:
    # The body is the plain page: whatever the label says, it must not get through.
    page = Page(BODY, chunk=chunk, headers=[("content-encoding", header)])
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path_factory.mktemp("unknown"), page)
    assert result.status == 200
    assert hidden_markers(result.body) == []
    assert "Paragraph 0" not in result.text and CTA in result.text
    assert "content-encoding" not in result.headers
    assert any("sent the wall page" in m and "content encoding" in m for m in error_lines(caplog))
    assert_never_passed_through(caplog)


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize("header", UNDECODABLE)
def test_wall_encodings_unknown_coding_on_a_free_page_passes_untouched(
    tmp_path_factory: pytest.TempPathFactory, header: str, chunk: int | None
) -> None:
    opaque = b"\x8b\x00opaque bytes the gate cannot read\xff" * 40
    page = Page(opaque, chunk=chunk, headers=[("content-encoding", header)])
    result = serve(tmp_path_factory.mktemp("free"), page, path=FREE)
    assert result.status == 200
    assert result.body == opaque
    assert result.headers["content-encoding"] == header


# -- broken streams ---------------------------------------------------------------------------


def _flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1 :]


BROKEN = {
    "truncated-early": gzip.compress(BODY)[:40],
    "truncated-late": gzip.compress(BODY)[:-12],
    "corrupt": _flipped(gzip.compress(BODY)),
    "not-gzip": BODY,
    "empty": b"",
    "trailing-garbage": gzip.compress(BODY) + b"GARBAGE",
}


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_wall_encodings_broken_gzip_on_a_walled_page_never_gives_the_text(
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
    name: str,
    chunk: int | None,
) -> None:
    page = Page(BROKEN[name], chunk=chunk, headers=[("content-encoding", "gzip")])
    with caplog.at_level(logging.INFO, logger="consentgate"):
        result = serve(tmp_path_factory.mktemp("broken"), page)
    assert result.status == 200
    assert hidden_markers(result.body) == []
    assert CTA in result.text or LEAD_TEXT in result.text
    lines = error_lines(caplog)
    assert any("sent the wall page" in m or "ended the body" in m for m in lines), lines
    assert_never_passed_through(caplog)


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_wall_encodings_broken_gzip_on_a_free_page_is_never_a_500(
    tmp_path_factory: pytest.TempPathFactory, name: str, chunk: int | None
) -> None:
    page = Page(BROKEN[name], chunk=chunk, headers=[("content-encoding", "gzip")])
    result = serve(tmp_path_factory.mktemp("broken-free"), page, path=FREE)
    assert result.status == 200
    if chunk is None:
        # Nothing was sent when the decoder gave up: the app's bytes go as the app sent them.
        assert result.body == BROKEN[name]
        assert result.headers["content-encoding"] == "gzip"


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "codings"),
    [
        (None, []),
        ("", []),
        ("identity", []),
        ("identity, gzip", ["gzip"]),
        ("gzip, identity", ["gzip"]),
        (" GZIP ,\tDeflate ", ["gzip", "deflate"]),
        ("gzip,,gzip", ["gzip", "gzip"]),
        ("\u212a", ["\u212a"]),  # the Kelvin sign is not an ASCII "k"
    ],
)
def test_wall_encodings_content_codings_parse(value: str | None, codings: list[str]) -> None:
    assert content_codings(value) == codings


def test_wall_encodings_is_rewritable_accepts_decodable_lists_only() -> None:
    assert is_rewritable("text/html", "identity, gzip", allow_decoding=True)
    assert is_rewritable("text/html", "gzip, gzip", allow_decoding=True)
    assert not is_rewritable("text/html", "gzip, br", allow_decoding=True)
    assert not is_rewritable("text/html", "identity, gzip")  # decoding not allowed
    too_many = ", ".join(["gzip"] * (MAX_CODINGS + 1))
    assert not is_rewritable("text/html", too_many, allow_decoding=True)


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_wall_encodings_decoder_undoes_gzip_members_and_layers(step: int) -> None:
    data = BODY * 5
    packed = gzip.compress(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    decoder = StreamingDecoder("gzip, gzip")
    out = b"".join(decoder.feed(packed[i : i + step]) for i in range(0, len(packed), step))
    assert out + decoder.close() == data


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_wall_encodings_decoder_refuses_broken_streams(name: str) -> None:
    decoder = StreamingDecoder("gzip")
    with pytest.raises(ValueError, match="gzip"):
        decoder.feed(BROKEN[name])
        decoder.close()


def test_wall_encodings_decoder_caps_each_layer() -> None:
    bomb = gzip.compress(gzip.compress(b"\0" * (4 << 20)))
    decoder = StreamingDecoder("gzip, gzip", max_output=1 << 20)
    with pytest.raises(ValueError, match="exceeds"):
        decoder.feed(bomb)
        decoder.close()
