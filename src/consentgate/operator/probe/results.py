"""What the probe finds: the verdicts, the readers' states, the table's rows, the
report, and the registered reader's reference copy."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from consentgate.operator.probe.client import Answer


class Verdict(enum.StrEnum):
    OK = "ok"
    LEAK = "LEAK"
    NOT_WALLED = "NOT WALLED"  # the exhausted reader got the whole article on a GET
    FREE_READ = "free read"  # a reader without a meter got a metered article: allowed
    UNCHECKED = "UNCHECKED"  # an answer the probe could not read (encoding, size)
    ERROR = "ERROR"  # no answer (timeout, connection), or the request cap was reached

    @property
    def fails(self) -> bool:
        return self in (Verdict.LEAK, Verdict.NOT_WALLED)

    @property
    def incomplete(self) -> bool:
        return self in (Verdict.UNCHECKED, Verdict.ERROR)


class State(enum.StrEnum):
    """Which anonymous reader asks."""

    EXHAUSTED = "exhausted"  # read the other articles first; must be cut
    TAMPERED = "tampered"  # a meter cookie whose signature does not verify; must be cut
    DROPPED = "dropped"  # the exhausted reader's cookies, without the meter
    FRESH = "fresh"  # no cookies at all

    @property
    def must_be_cut(self) -> bool:
        return self in (State.EXHAUSTED, State.TAMPERED)


@dataclass(frozen=True, slots=True)
class Row:
    path: str
    state: str
    channel: str
    status: int | None
    size: int | None  # body bytes as received
    verdict: Verdict
    note: str = ""


@dataclass(slots=True)
class ProbeReport:
    rows: list[Row] = field(default_factory=list)
    requests: int = 0
    # path -> (text blocks of the registered reader's copy, how many the cut hides)
    articles: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def leaks(self) -> list[Row]:
        return [row for row in self.rows if row.verdict.fails]

    @property
    def incomplete(self) -> list[Row]:
        return [row for row in self.rows if row.verdict.incomplete]

    @property
    def exit_status(self) -> int:
        if self.leaks:
            return 1
        return 2 if self.incomplete else 0


@dataclass(frozen=True, slots=True)
class Reference:
    """What the registered reader got, and what of it the exhausted reader must not."""

    answer: Answer
    secrets: list[str]
    hidden_blocks: list[str]
    hidden_bytes: int
