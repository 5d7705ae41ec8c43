"""The probe's content decoders (``consentgate.operator.probe.decoding``): every coding
stops at the same cap and says so the same way, and a body is read whole.

brotli and zstd are optional; the venv may have neither. Stand-ins (over zlib) speak
their streaming APIs and record how much they produced, so the cap is checked on the
code path the real modules take; with the real modules installed, the tests marked
"real" run too.
"""

from __future__ import annotations

import sys
import types
import zlib
from typing import Any

import pytest

from consentgate.operator.probe import Answer, Prober, ProbeSettings, Reference, Verdict
from consentgate.operator.probe.decoding import decode_body
from consentgate.operator.probe.errors import Undecodable

LIMIT = 64 * 1024
BOMB_PLAIN = b"\0" * (LIMIT * 40)  # 2.5 MiB of zeros, a few KiB compressed
# What a decoder may produce past the cap before it stops (brotli hands out its output
# in pieces of about 32 KiB whatever limit it is given).
SLACK = 64 * 1024


class _Produced:
    """How much a stand-in decoder gave out in all."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, chunk: bytes) -> bytes:
        self.total += len(chunk)
        return chunk


class _FakeBrotliDecompressor:
    """brotli 1.2's ``Decompressor``: ``process(data, output_buffer_limit)``, new input
    only once ``can_accept_more_data()``."""

    def __init__(self, produced: _Produced) -> None:
        self._inflater = zlib.decompressobj()
        self._pending = b""
        self._produced = produced

    def process(self, data: bytes, output_buffer_limit: int = 0) -> bytes:
        if data and self._pending:
            raise RuntimeError("input given while output is pending")
        out = self._inflater.decompress(self._pending + data, output_buffer_limit)
        self._pending = self._inflater.unconsumed_tail
        return self._produced.add(out)

    def can_accept_more_data(self) -> bool:
        return not self._pending

    def is_finished(self) -> bool:
        return self._inflater.eof and not self._pending


def _fake_brotli(produced: _Produced) -> types.ModuleType:
    module = types.ModuleType("brotli")
    # The one-shot call, unbounded: what a bomb is made for.
    module.decompress = lambda data: produced.add(zlib.decompress(data))  # type: ignore[attr-defined]
    module.Decompressor = lambda: _FakeBrotliDecompressor(produced)  # type: ignore[attr-defined]
    module.error = zlib.error  # type: ignore[attr-defined]
    return module


class _FakeZstdReader:
    def __init__(self, data: bytes, produced: _Produced) -> None:
        self._inflater = zlib.decompressobj()
        self._rest = data
        self._produced = produced

    def __enter__(self) -> _FakeZstdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, size: int) -> bytes:
        out = b""
        while len(out) < size and (self._rest or not self._inflater.eof):
            if self._inflater.eof:  # the next frame
                self._inflater = zlib.decompressobj()
            chunk = self._inflater.decompress(self._rest, size - len(out))
            self._rest = self._inflater.unconsumed_tail or self._inflater.unused_data
            if not chunk and not self._rest:
                break
            out += chunk
        return self._produced.add(out)


def _fake_zstandard(produced: _Produced) -> types.ModuleType:
    module = types.ModuleType("zstandard")

    class ZstdDecompressor:
        def stream_reader(self, data: bytes, read_across_frames: bool = False) -> Any:
            assert read_across_frames
            return _FakeZstdReader(data, produced)

    module.ZstdDecompressor = ZstdDecompressor  # type: ignore[attr-defined]
    module.decompress = lambda data: produced.add(zlib.decompress(data))  # type: ignore[attr-defined]
    return module


class _FakeStdlibZstdDecompressor:
    """``compression.zstd.ZstdDecompressor`` (Python 3.14): one frame, ``max_length``."""

    def __init__(self, produced: _Produced) -> None:
        self._inflater = zlib.decompressobj()
        self._produced = produced
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def unused_data(self) -> bytes:
        return self._inflater.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        tail = self._inflater.unconsumed_tail
        out = self._inflater.decompress(tail + data, max(0, max_length))
        self.needs_input = not self._inflater.unconsumed_tail
        return self._produced.add(out)


def _fake_stdlib_zstd(produced: _Produced) -> types.ModuleType:
    module = types.ModuleType("compression.zstd")
    module.ZstdDecompressor = lambda: _FakeStdlibZstdDecompressor(produced)  # type: ignore[attr-defined]
    module.decompress = lambda data: produced.add(zlib.decompress(data))  # type: ignore[attr-defined]
    return module


@pytest.fixture
def produced() -> _Produced:
    return _Produced()


def _install(monkeypatch: pytest.MonkeyPatch, produced: _Produced, coding: str, api: str) -> None:
    if coding == "br":
        monkeypatch.setitem(sys.modules, "brotli", _fake_brotli(produced))
    elif api == "stdlib":
        monkeypatch.setitem(sys.modules, "compression.zstd", _fake_stdlib_zstd(produced))
    else:
        # None in sys.modules: "import compression.zstd" fails, as before Python 3.14.
        monkeypatch.setitem(sys.modules, "compression.zstd", None)
        monkeypatch.setitem(sys.modules, "zstandard", _fake_zstandard(produced))


def _gzip_cap_message() -> str:
    bomb = zlib.compress(BOMB_PLAIN, wbits=16 + zlib.MAX_WBITS)
    with pytest.raises(Undecodable) as caught:
        decode_body(Answer(200, [("content-encoding", "gzip")], bomb), LIMIT)
    return str(caught.value)


CODINGS = [("br", "brotli"), ("zstd", "stdlib"), ("zstd", "zstandard")]


@pytest.mark.parametrize(("coding", "api"), CODINGS)
def test_probe_decoding_bomb_stops_at_the_gzip_cap(
    coding: str, api: str, monkeypatch: pytest.MonkeyPatch, produced: _Produced
) -> None:
    _install(monkeypatch, produced, coding, api)
    bomb = zlib.compress(BOMB_PLAIN, 9)
    with pytest.raises(Undecodable) as caught:
        decode_body(Answer(200, [("content-encoding", coding)], bomb), LIMIT)
    assert str(caught.value) == _gzip_cap_message() == f"decodes to more than {LIMIT} bytes"
    assert produced.total <= LIMIT + SLACK  # it stopped, not decoded it all and then looked


@pytest.mark.parametrize(("coding", "api"), CODINGS)
def test_probe_decoding_under_the_cap_reads_the_whole_body(
    coding: str, api: str, monkeypatch: pytest.MonkeyPatch, produced: _Produced
) -> None:
    _install(monkeypatch, produced, coding, api)
    plain = bytes(range(256)) * 200  # 51200 bytes: more than one piece, under the cap
    body = zlib.compress(plain)
    assert decode_body(Answer(200, [("content-encoding", coding)], body), LIMIT) == plain
    exact = b"x" * LIMIT  # exactly the cap: allowed
    body = zlib.compress(exact)
    assert decode_body(Answer(200, [("content-encoding", coding)], body), LIMIT) == exact


@pytest.mark.parametrize(("coding", "api"), CODINGS)
def test_probe_judge_bomb_is_unchecked_not_decoded(
    coding: str, api: str, monkeypatch: pytest.MonkeyPatch, produced: _Produced
) -> None:
    _install(monkeypatch, produced, coding, api)
    settings = ProbeSettings("http://127.0.0.1:9", ("/a",), session_cookie="x", max_bytes=LIMIT)
    prober = Prober(settings)
    registered = Answer(200, [("content-type", "text/html")], b"<p>" + b"s" * 64 + b"</p>")
    ref = Reference(registered, ["s" * 32], ["s" * 64], 64)
    bomb = Answer(200, [("content-encoding", coding)], zlib.compress(BOMB_PLAIN, 9))
    verdict, note = prober.judge(bomb, ref, None, None)
    assert (verdict, note) == (Verdict.UNCHECKED, f"decodes to more than {LIMIT} bytes")
    assert produced.total <= LIMIT + SLACK


def test_probe_decoding_real_brotli_bomb_stops_at_the_cap() -> None:
    brotli = pytest.importorskip("brotli")
    bomb = brotli.compress(BOMB_PLAIN)
    with pytest.raises(Undecodable, match=f"decodes to more than {LIMIT} bytes"):
        decode_body(Answer(200, [("content-encoding", "br")], bomb), LIMIT)
    plain = b"walled text " * 4000
    body = brotli.compress(plain)
    assert decode_body(Answer(200, [("content-encoding", "br")], body), LIMIT) == plain
    with pytest.raises(Undecodable, match="bad br data"):
        decode_body(Answer(200, [("content-encoding", "br")], body[: len(body) // 2]), LIMIT)


def test_probe_decoding_real_zstd_bomb_stops_at_the_cap() -> None:
    try:
        from compression import zstd as module  # type: ignore[import-not-found]
    except ImportError:
        module = pytest.importorskip("zstandard")
    compress = module.compress if hasattr(module, "compress") else None
    assert compress is not None
    bomb = compress(BOMB_PLAIN)
    with pytest.raises(Undecodable, match=f"decodes to more than {LIMIT} bytes"):
        decode_body(Answer(200, [("content-encoding", "zstd")], bomb), LIMIT)
    two_frames = compress(b"first frame, ") + compress(b"second frame")
    answer = Answer(200, [("content-encoding", "zstd")], two_frames)
    assert decode_body(answer, LIMIT) == b"first frame, second frame"


class _OldBrotliDecompressor:
    """brotli before 1.2: ``process(data)`` with no output limit."""

    def __init__(self, produced: _Produced) -> None:
        self._inflater = zlib.decompressobj()
        self._produced = produced

    def process(self, data: bytes) -> bytes:
        return self._produced.add(self._inflater.decompress(data))

    def is_finished(self) -> bool:
        return self._inflater.eof


def test_probe_decoding_old_brotli_is_fed_in_slices_and_stops_near_the_cap(
    monkeypatch: pytest.MonkeyPatch, produced: _Produced
) -> None:
    module = _fake_brotli(produced)
    module.Decompressor = lambda: _OldBrotliDecompressor(produced)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "brotli", module)
    bomb = zlib.compress(BOMB_PLAIN, 9)
    with pytest.raises(Undecodable, match=f"^decodes to more than {LIMIT} bytes$"):
        decode_body(Answer(200, [("content-encoding", "br")], bomb), LIMIT)
    # One slice of the body (1 KiB; zlib expands at most ~1032 times) past the cap.
    assert produced.total <= LIMIT + 1032 * 1024 < len(BOMB_PLAIN)
    plain = b"walled text " * 4000
    body = zlib.compress(plain)
    assert decode_body(Answer(200, [("content-encoding", "br")], body), LIMIT) == plain


def _gzip(data: bytes) -> bytes:
    return zlib.compress(data, wbits=16 + zlib.MAX_WBITS)


def test_probe_decoding_gzip_reads_every_member() -> None:
    # RFC 1952 allows several members; `gzip -c a b` writes one per file.
    body = _gzip(b"<p>first member, </p>") + _gzip(b"") + _gzip(b"<p>second member</p>")
    for coding in ("gzip", "x-gzip"):
        answer = Answer(200, [("content-encoding", coding)], body)
        assert decode_body(answer, LIMIT) == b"<p>first member, </p><p>second member</p>"


def test_probe_decoding_gzip_members_together_over_the_cap_stop_at_it() -> None:
    member = _gzip(b"\0" * (LIMIT // 2 + 1))  # each under the cap, two of them over
    with pytest.raises(Undecodable, match=f"^decodes to more than {LIMIT} bytes$"):
        decode_body(Answer(200, [("content-encoding", "gzip")], member * 2), LIMIT)
    exact = _gzip(b"\0" * (LIMIT // 2)) * 2
    assert len(decode_body(Answer(200, [("content-encoding", "gzip")], exact), LIMIT)) == LIMIT


def test_probe_decoding_gzip_many_empty_members_stay_bounded() -> None:
    # Many members that decode to nothing: the loop ends with the body.
    body = _gzip(b"") * 5000 + _gzip(b"end")
    assert decode_body(Answer(200, [("content-encoding", "gzip")], body), LIMIT) == b"end"


def test_probe_decoding_gzip_trailing_bytes_after_a_member_are_ignored_as_before() -> None:
    body = _gzip(b"text") + b"\0\0\0\0 not a member"
    assert decode_body(Answer(200, [("content-encoding", "gzip")], body), LIMIT) == b"text"


def test_probe_judge_hidden_text_in_a_later_gzip_member_is_a_leak() -> None:
    prober = Prober(ProbeSettings("http://127.0.0.1:9", ("/a",), session_cookie="x"))
    hidden = "The harbour master kept the second ledger in the lighthouse cellar."
    registered = Answer(200, [("content-type", "text/html")], f"<p>{hidden}</p>".encode())
    ref = Reference(registered, [hidden[8:40]], [hidden], len(hidden))
    body = _gzip(b"<html><body><p>The cut lead.</p>") + _gzip(f"<p>{hidden}</p>".encode())
    answer = Answer(200, [("content-encoding", "gzip"), ("content-type", "text/html")], body)
    assert prober.judge(answer, ref, None, None)[0] is Verdict.LEAK
