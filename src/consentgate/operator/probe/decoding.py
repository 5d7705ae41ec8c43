"""Undoing an answer's content codings, and reading it as text.

One small class per coding (as httpx has them), each built for one body with the cap
on what it may produce: every decoder stops at the same ``limit`` and says so the same
way (:class:`Undecodable`, "decodes to more than N bytes"), so a small compressed bomb
costs the probe at most about ``limit`` bytes whichever coding the site picked.
"""

from __future__ import annotations

import codecs
import zlib
from importlib import import_module
from typing import Any, ClassVar

from consentgate.operator.probe.client import Answer
from consentgate.operator.probe.errors import Undecodable


class Decoder:
    """Undoes one content coding of one body, producing at most ``limit`` bytes."""

    coding: ClassVar[str]

    def __init__(self, limit: int, name: str | None = None) -> None:
        self.limit = limit
        self.name = name or self.coding  # as the answer spelled it (x-gzip)
        self.out = bytearray()

    @property
    def room(self) -> int:
        """How much more may come out: one byte past the cap, to tell "at the cap" from
        "over it"."""
        return self.limit + 1 - len(self.out)

    def take(self, chunk: bytes) -> None:
        self.out += chunk
        if len(self.out) > self.limit:
            raise Undecodable(f"decodes to more than {self.limit} bytes")

    def decode(self, data: bytes) -> bytes:
        raise NotImplementedError

    def bad(self, exc: BaseException | str) -> Undecodable:
        return Undecodable(f"bad {self.name} data ({exc})")


class GzipDecoder(Decoder):
    """Every member of the body (RFC 1952 allows several; ``gzip -c a b`` writes one per
    file), all of them together under the cap."""

    coding = "gzip"
    MAGIC = b"\x1f\x8b"

    def decode(self, data: bytes) -> bytes:
        rest = data
        try:
            while True:
                member = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.take(member.decompress(rest, self.room))
                # A member cut short gives what it has, as one always did; bytes after
                # a member that are no member (padding, junk) are left, as before.
                rest = member.unused_data
                if not member.eof or not rest.startswith(self.MAGIC):
                    break
        except zlib.error as exc:
            raise self.bad(exc) from None
        return bytes(self.out)


class DeflateDecoder(Decoder):
    coding = "deflate"

    def decode(self, data: bytes) -> bytes:
        try:
            # zlib-wrapped as the RFC says, raw as some servers send
            try:
                return self._inflate(data, zlib.MAX_WBITS)
            except zlib.error:
                return self._inflate(data, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise self.bad(exc) from None

    def _inflate(self, data: bytes, wbits: int) -> bytes:
        self.out = bytearray()
        self.take(zlib.decompressobj(wbits).decompress(data, self.room))
        return bytes(self.out)


class BrotliDecoder(Decoder):
    """``br`` through the ``brotli`` package (optional: the probe needs no dependency).

    Its streaming decompressor takes an output limit (brotli 1.2 and later): the output
    comes in pieces of at most about that size, input only once the pending output is
    out. An older build has no limit: it is fed the body in small slices, and the cap
    is checked after each, so the overshoot is what one slice expands to.
    """

    coding = "br"
    SLICE = 1024

    def decode(self, data: bytes) -> bytes:
        module = _optional("brotli")
        if module is None:
            raise Undecodable("br: install the brotli package to read it")
        if not hasattr(module, "Decompressor"):
            raise Undecodable("br: this brotli build cannot decode in pieces; upgrade it")
        try:
            decompressor = module.Decompressor()
            if hasattr(decompressor, "can_accept_more_data"):
                self._limited(decompressor, data)
            else:
                self._sliced(decompressor, data)
        except Undecodable:
            raise
        except Exception as exc:  # brotli's own error type varies by build
            raise self.bad(exc) from None
        return bytes(self.out)

    def _limited(self, decompressor: Any, data: bytes) -> None:
        self.take(decompressor.process(data, output_buffer_limit=self.room))
        while not decompressor.is_finished():
            if decompressor.can_accept_more_data():
                raise self.bad("the stream ends early")
            chunk = decompressor.process(b"", output_buffer_limit=self.room)
            if not chunk:  # output pending yet none given: never loop on it
                raise self.bad("the decoder gives nothing more")
            self.take(chunk)

    def _sliced(self, decompressor: Any, data: bytes) -> None:
        process = getattr(decompressor, "process", None) or decompressor.decompress
        for start in range(0, len(data), self.SLICE):
            self.take(process(data[start : start + self.SLICE]))
        if hasattr(decompressor, "is_finished") and not decompressor.is_finished():
            raise self.bad("the stream ends early")


class ZstdDecoder(Decoder):
    """``zstd`` through the standard library's ``compression.zstd`` (Python 3.14) or the
    ``zstandard`` package, each asked for at most the room left; every frame is read
    (a body may hold several, as ``zstd -c a b`` writes)."""

    coding = "zstd"

    def decode(self, data: bytes) -> bytes:
        stdlib = _optional("compression.zstd")
        package = None if stdlib is not None else _optional("zstandard")
        if stdlib is None and package is None:
            raise Undecodable("zstd: no zstd decoder in this Python")
        try:
            if stdlib is not None:
                self._stdlib(stdlib, data)
            else:
                self._package(package, data)
        except Undecodable:
            raise
        except Exception as exc:
            raise self.bad(exc) from None
        return bytes(self.out)

    def _stdlib(self, module: Any, data: bytes) -> None:
        rest = data
        while rest:
            decompressor = module.ZstdDecompressor()
            self.take(decompressor.decompress(rest, self.room))
            while not decompressor.eof and not decompressor.needs_input:
                self.take(decompressor.decompress(b"", self.room))
            if not decompressor.eof:
                raise self.bad("the stream ends early")
            rest = decompressor.unused_data

    def _package(self, module: Any, data: bytes) -> None:
        reader = module.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        with reader:
            while chunk := reader.read(min(self.room, 64 * 1024)):
                self.take(chunk)


DECODERS: dict[str, type[Decoder]] = {
    "gzip": GzipDecoder,
    "x-gzip": GzipDecoder,
    "deflate": DeflateDecoder,
    "br": BrotliDecoder,
    "zstd": ZstdDecoder,
}


def _decode_one(coding: str, data: bytes, limit: int) -> bytes:
    decoder = DECODERS.get(coding)
    if decoder is None:
        raise Undecodable(f"unknown content coding {coding!r}")
    return decoder(limit, coding).decode(data)


def _optional(name: str) -> Any:
    try:
        return import_module(name)
    except ImportError:
        return None


def decode_body(answer: Answer, limit: int) -> bytes:
    """The body with its content codings undone, last applied first (RFC 9110 8.4)."""
    codings = [c.strip().lower() for c in (answer.header("content-encoding") or "").split(",")]
    data = answer.body
    for coding in reversed([c for c in codings if c and c != "identity"]):
        data = _decode_one(coding, data, limit)
    return data


def _charset(content_type: str | None) -> str:
    for parameter in (content_type or "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def answer_text(answer: Answer, limit: int) -> str:
    data = decode_body(answer, limit)
    return data.decode(_charset(answer.header("content-type")), errors="replace")


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


def decoded_or_raw(answer: Answer, limit: int) -> bytes:
    try:
        return decode_body(answer, limit)
    except Undecodable:
        return answer.body
