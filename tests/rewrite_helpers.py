"""Shared helpers for the rewriter tests: chunkings, running a rewriter, corpus locations."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from consentgate.rewrite import Operation, Rewriter

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"

OpsFactory = Callable[[], Sequence[Operation]]


def corpus_dir(name: str) -> Path:
    """The corpus folder, or skip (fail when CONSENTGATE_REQUIRE_CORPORA=1) if it is absent."""
    path = CORPORA / name
    if not path.is_dir():
        message = f"corpus {path} is absent (a fresh clone without ../shared/corpora)"
        if os.environ.get("CONSENTGATE_REQUIRE_CORPORA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def random_chunks(data: bytes, seed: int, max_size: int = 64) -> Iterator[bytes]:
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.randint(1, max_size)
        yield data[pos : pos + size]
        pos += size


def run(
    ops: Sequence[Operation], chunks: Iterator[bytes] | Sequence[bytes], **kwargs: object
) -> tuple[bytes, Rewriter]:
    rewriter = Rewriter(ops, encoding="utf-8", **kwargs)  # type: ignore[arg-type]
    out = [rewriter.feed(chunk) for chunk in chunks]
    out.append(rewriter.close())
    return b"".join(out), rewriter


def run_all_chunkings(make_ops: OpsFactory, data: bytes, seeds: Sequence[int] = (1, 2, 3)) -> bytes:
    """Rewrite ``data`` whole, byte by byte and in seeded random chunks; assert equal output."""
    expected, _ = run(make_ops(), whole(data))
    one_byte, _ = run(make_ops(), bytewise(data))
    assert one_byte == expected, "1-byte chunking differs from whole input"
    for seed in seeds:
        chunked, _ = run(make_ops(), random_chunks(data, seed))
        assert chunked == expected, f"random chunking (seed {seed}) differs from whole input"
    return expected
