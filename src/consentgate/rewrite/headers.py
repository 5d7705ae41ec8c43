"""Can a response be rewritten, judging by its headers? And undoing gzip/deflate as it streams."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

_HTML_TYPES = frozenset(("text/html", "application/xhtml+xml"))
_DECODABLE = frozenset(("gzip", "x-gzip", "deflate"))


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _codings(content_encoding: str | None) -> list[str]:
    return [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]


def is_rewritable_content_type(content_type: str | None) -> bool:
    """True for ``text/html`` and ``application/xhtml+xml`` (any parameters)."""
    return _media_type(content_type) in _HTML_TYPES


def is_rewritable(
    content_type: str | None, content_encoding: str | None = None, *, allow_decoding: bool = False
) -> bool:
    """True when the body is HTML and not compressed (``identity`` counts as uncompressed).

    With ``allow_decoding=True`` a single ``gzip``/``deflate`` coding is accepted too: the
    caller then runs the body through :class:`StreamingDecoder` first (and drops the
    ``Content-Encoding`` and ``Content-Length`` headers).
    """
    if not is_rewritable_content_type(content_type):
        return False
    codings = [c for c in _codings(content_encoding) if c != "identity"]
    if not codings:
        return True
    return allow_decoding and len(codings) == 1 and codings[0] in _DECODABLE


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The (comma-joined) value of an ASGI-style header list entry, or None."""
    wanted = name.lower()
    values = [v.decode("latin-1") for k, v in headers if k.lower() == wanted]
    return ", ".join(values) if values else None


class StreamingDecoder:
    """Decompress a gzip or deflate body chunk by chunk, with a cap on the output size.

    ``deflate`` is accepted both zlib-wrapped (what the RFC says) and raw (what some servers
    send). Exceeding ``max_output`` raises ``ValueError`` (a decompression bomb guard).
    """

    def __init__(self, content_encoding: str, *, max_output: int = 64 << 20) -> None:
        coding = content_encoding.strip().lower()
        if coding not in _DECODABLE:
            raise ValueError(f"unsupported content-encoding {content_encoding!r}")
        self._gzip = coding != "deflate"
        self._max_output = max_output
        self._produced = 0
        self._decoder: zlib._Decompress | None = (
            zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        )
        self._sniffed = b""

    def feed(self, chunk: bytes) -> bytes:
        if self._decoder is None:
            # Decide zlib-wrapped vs raw deflate from the first two bytes (a zlib header).
            self._sniffed += chunk
            if len(self._sniffed) < 2:
                return b""
            first = self._sniffed
            self._sniffed = b""
            wrapped = (first[0] & 0x0F) == 8 and int.from_bytes(first[:2], "big") % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            chunk = first
        return self._limit(self._decoder.decompress(chunk, self._max_output - self._produced + 1))

    def close(self) -> bytes:
        if self._decoder is None:
            if not self._sniffed:
                return b""
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            data = self._decoder.decompress(self._sniffed)
        else:
            data = b""
        tail = self._decoder.unconsumed_tail
        while tail:
            data += self._decoder.decompress(tail, self._max_output - self._produced + 1)
            self._limit(b"")
            tail = self._decoder.unconsumed_tail
        return self._limit(data + self._decoder.flush())

    def _limit(self, data: bytes) -> bytes:
        self._produced += len(data)
        if self._produced > self._max_output:
            raise ValueError(f"decompressed body exceeds {self._max_output} bytes")
        return data
