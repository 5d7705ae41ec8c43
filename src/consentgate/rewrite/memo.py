"""Whole bodies rewritten once: the same page, with the same operations, is not parsed
again.

A news site serves one article's bytes to thousands of readers, and the rewriter's
output depends on nothing but its input: the operations (which the gate builds once per
consent class, language, banner and wall reason, and keeps), the content type, the
limits and the body. So a body that comes back byte for byte with equal operations gets
the output of an earlier time, at the cost of a lookup and one comparison of the bodies,
instead of a parse.

The lookup key holds the operations by identity (the gate builds each set once and
keeps it; an entry holds its operations, so no id in a key can be reused meanwhile), the
length and a sample of the body (its first and last bytes); a found entry counts only if
its whole body is equal to this one, so a wrong answer would need equal bytes, not a
likely hash. Equal operations built anew miss: correct, only slower. A page whose bytes
change with every response (a token, a time) pays a lookup on top of the rewrite (its
sample differs, or its entry is found stale after one comparison). Only complete bodies
of at most ``max_body`` bytes are kept, in at most ``max_bytes`` (input and output
together), least recently used first out. Failures are not kept: the next response runs
the rewriter and fails the same way.

A body is kept from the second time its key comes (a key seen once is remembered by its
hash alone, a few bytes, in a bounded set): a page whose bytes change with every
response (a nonce, a time) would otherwise be stored each time for nothing, costing
the copy's memory and pushing out the pages that do come back. A found entry whose
body differs (the same sample, other bytes) is dropped, not replaced: that page
changes. A page read again is rewritten twice before the memo answers it, once more
than it would be otherwise; a collision of hashes only keeps a body early.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

from .operations import Operation
from .rewriter import Rewriter

__all__ = ["DEFAULT_MEMO_BYTES", "RewriteMemo"]

DEFAULT_MEMO_BYTES = 32 << 20
DEFAULT_MAX_BODY = 1 << 20
_Entry = tuple[tuple[Operation, ...], bytes, bytes, int]
# Enough to tell most pages of one site apart by the sample alone (the <head> with its
# title, the end of the page), little enough that taking it costs next to nothing.
_SAMPLE = 1024
# Keys seen once and not kept yet, by hash: a few bytes each, all forgotten when full.
_SEEN_KEYS = 1 << 14


class RewriteMemo:
    """Rewritten outputs of whole bodies, bounded by size."""

    def __init__(self, *, max_bytes: int = DEFAULT_MEMO_BYTES, max_body: int = DEFAULT_MAX_BODY):
        if max_bytes < 0 or max_body < 0:
            raise ValueError("memo limits must not be negative")
        self.max_bytes = max_bytes
        self.max_body = min(max_body, max_bytes)
        # key -> (operations, body, output, short containers)
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._size = 0
        self._seen: dict[int, bool] = {}
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Bytes held (bodies and outputs)."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def rewrite(
        self,
        operations: Sequence[Operation],
        body: bytes,
        *,
        content_type: str | None,
        max_token_bytes: int,
    ) -> tuple[bytes, int]:
        """The output of ``Rewriter(operations, …).feed(body) + close()``, and the report's
        ``short_containers``; raises what the rewriter raises."""
        ops = tuple(operations)
        key = self._key(ops, body, content_type, max_token_bytes)
        admit = False
        if key is not None:
            entry = self._entries.get(key)
            if entry is not None:
                if entry[1] == body:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[2], entry[3]
                self._drop(key)  # the page changed (or changes each time)
            else:
                admit = self._seen_before(key)
        self.misses += 1
        rewriter = Rewriter(ops, content_type=content_type, max_token_bytes=max_token_bytes)
        output = rewriter.feed(body) + rewriter.close()
        short = rewriter.report.short_containers
        if admit and key is not None:
            self._keep(key, (ops, body, output, short))
        return output, short

    def _seen_before(self, key: Hashable) -> bool:
        """Whether this key came before (then it is forgotten here: it gets an entry);
        else it is remembered (all are forgotten when the set is full)."""
        seen = self._seen
        digest = hash(key)
        if seen.pop(digest, False):
            return True
        if len(seen) >= _SEEN_KEYS:
            seen.clear()  # start again: no iteration another thread could upset
        seen[digest] = True
        return False

    def _drop(self, key: Hashable) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old[1]) + len(old[2])

    def _key(
        self,
        operations: tuple[Operation, ...],
        body: bytes,
        content_type: str | None,
        max_token_bytes: int,
    ) -> Hashable | None:
        if not self.max_body or len(body) > self.max_body:
            return None
        # By identity: hashing every field of every operation on each response would cost
        # more than the rest of the lookup.
        ids = tuple(map(id, operations))
        return (ids, content_type, max_token_bytes, len(body), body[:_SAMPLE], body[-_SAMPLE:])

    def _keep(self, key: Hashable, entry: _Entry) -> None:
        cost = len(entry[1]) + len(entry[2])
        if cost > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old[1]) + len(old[2])
        while self._entries and self._size + cost > self.max_bytes:
            _, (_ops, old_body, old_output, _short) = self._entries.popitem(last=False)
            self._size -= len(old_body) + len(old_output)
        self._entries[key] = entry
        self._size += cost
