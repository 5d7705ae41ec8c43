"""Can a response be rewritten, judging by its headers? And undoing its content codings as it
streams.

``Content-Encoding`` follows RFC 9110 §8.4: a comma-separated list of codings *in the order
they were applied*, so a body is decoded from the last coding to the first. Coding names are
case-insensitive, optional whitespace around the commas is allowed, and ``identity`` (which
means "no coding") is ignored wherever it appears. Several header lines are one list, joined
with commas in order (RFC 9110 §5.3).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

_HTML_TYPES = frozenset(("text/html", "application/xhtml+xml"))
_DECODABLE = frozenset(("gzip", "x-gzip", "deflate"))
#: More codings than this are not undone (the response is then treated like an unknown coding):
#: real servers apply one, a misconfigured stack two; a long list is a decoding-cost attack.
MAX_CODINGS = 4
_OWS = " \t"  # RFC 9110 §5.6.3: optional whitespace is spaces and horizontal tabs
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def content_codings(content_encoding: str | None) -> list[str]:
    """The codings of a ``Content-Encoding`` value in the order applied, ``identity`` dropped.

    Names are lower-cased as ASCII only (HTTP tokens are ASCII; ``str.lower`` would also fold
    a Kelvin sign into ``k``).
    """
    codings = (c.strip(_OWS).translate(_ASCII_LOWER) for c in (content_encoding or "").split(","))
    return [c for c in codings if c and c != "identity"]


def is_rewritable_content_type(content_type: str | None) -> bool:
    """True for ``text/html`` and ``application/xhtml+xml`` (any parameters)."""
    return _media_type(content_type) in _HTML_TYPES


def is_rewritable(
    content_type: str | None, content_encoding: str | None = None, *, allow_decoding: bool = False
) -> bool:
    """True when the body is HTML and not compressed (``identity`` counts as uncompressed).

    With ``allow_decoding=True`` a list of up to :data:`MAX_CODINGS` codings, each ``gzip``,
    ``x-gzip`` or ``deflate``, is accepted too: the caller then runs the body through
    :class:`StreamingDecoder` first (and drops the ``Content-Encoding`` and ``Content-Length``
    headers). Any other coding (``br``, ``zstd``, an unknown name) makes the body opaque.
    """
    if not is_rewritable_content_type(content_type):
        return False
    codings = content_codings(content_encoding)
    if not codings:
        return True
    return allow_decoding and len(codings) <= MAX_CODINGS and all(c in _DECODABLE for c in codings)


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The (comma-joined) value of an ASGI-style header list entry, or None."""
    wanted = name.lower()
    values = [v.decode("latin-1") for k, v in headers if k.lower() == wanted]
    return ", ".join(values) if values else None


class StreamingDecoder:
    """Undo a ``Content-Encoding`` list of gzip/deflate codings chunk by chunk, last applied
    first, with a cap on each layer's output size.

    ``deflate`` is accepted both zlib-wrapped (what the RFC says) and raw (what some servers
    send); ``gzip`` may hold several members (RFC 1952 §2.2), decoded one after the other.
    Raises ``ValueError`` for an unsupported coding (at construction), for output beyond
    ``max_output`` (a decompression bomb guard), for corrupt data and, at :meth:`close`, for a
    stream that stopped before its end (a truncated body must not look complete).
    """

    def __init__(self, content_encoding: str, *, max_output: int = 64 << 20) -> None:
        codings = content_codings(content_encoding)
        unsupported = [c for c in codings if c not in _DECODABLE]
        if unsupported:
            raise ValueError(f"unsupported content-encoding {unsupported[0]!r}")
        if len(codings) > MAX_CODINGS:
            raise ValueError(f"more than {MAX_CODINGS} content codings: {content_encoding!r}")
        # The last coding listed was applied last, so it comes off first.
        self._layers = [_Layer(coding, max_output) for coding in reversed(codings)]

    def feed(self, chunk: bytes) -> bytes:
        for layer in self._layers:
            chunk = layer.feed(chunk)
        return chunk

    def close(self) -> bytes:
        data = b""
        for layer in self._layers:
            data = layer.feed(data) + layer.close()
        return data


class _Layer:
    """One coding: gzip (any number of members) or deflate (zlib-wrapped or raw)."""

    def __init__(self, coding: str, max_output: int) -> None:
        self._coding = coding
        self._gzip = coding != "deflate"
        self._max_output = max_output
        self._produced = 0
        self._decoder: zlib._Decompress | None = self._new_gzip() if self._gzip else None
        self._sniffed = b""
        self._done = False  # a deflate stream has ended; what follows is ignored

    @staticmethod
    def _new_gzip() -> zlib._Decompress:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> bytes:
        if self._done or not chunk:
            return b""
        if self._decoder is None:
            # Decide zlib-wrapped vs raw deflate from the first two bytes (a zlib header).
            self._sniffed += chunk
            if len(self._sniffed) < 2:
                return b""
            chunk, self._sniffed = self._sniffed, b""
            wrapped = (chunk[0] & 0x0F) == 8 and int.from_bytes(chunk[:2], "big") % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        out: list[bytes] = []
        decoder = self._decoder
        while chunk:
            try:
                # One byte over the cap is enough to know it is exceeded.
                data = decoder.decompress(chunk, self._max_output - self._produced + 1)
            except zlib.error as exc:
                raise ValueError(f"corrupt {self._coding} stream: {exc}") from None
            out.append(self._limit(data))
            # Within the cap nothing is left unconsumed; past it _limit has raised.
            if not decoder.eof:
                break
            chunk = decoder.unused_data
            if not self._gzip:
                self._done = True  # bytes after a deflate stream mean nothing: dropped
                break
            if chunk.strip(b"\x00"):
                decoder = self._decoder = self._new_gzip()  # the next gzip member
            else:
                break  # zero padding after the last member, as gzip(1) tolerates
        return b"".join(out)

    def close(self) -> bytes:
        if self._done:
            return b""
        if self._decoder is None:
            if not self._sniffed:
                raise ValueError(f"empty {self._coding} stream")
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            chunk, self._sniffed = self._sniffed, b""
            out = self.feed(chunk)
        else:
            out = b""
        decoder = self._decoder
        if not decoder.eof:
            raise ValueError(f"truncated {self._coding} stream: the body ended before it did")
        return out + self._limit(decoder.flush())

    def _limit(self, data: bytes) -> bytes:
        self._produced += len(data)
        if self._produced > self._max_output:
            raise ValueError(f"decompressed body exceeds {self._max_output} bytes")
        return data
