"""The seam between the storage methods, written once, and each database driver.

A storage method is a *job*: a plain generator that yields the :class:`Statement` s it
needs and receives each one's :class:`Result`, without doing any I/O itself (the
sans-I/O style). A driver only runs jobs: the SQLite driver steps the generator on its
worker thread, so a whole transaction is one hop to that thread; the PostgreSQL driver
steps it on a pooled connection. Connections, transactions, pools, time bounds and the
circuit breaker stay in the drivers; what the statements are stays out of them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from consentgate.storage.breaker import CircuitBreaker
from consentgate.storage.sql.dialect import Dialect

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    #: None runs the text as it is (migrations: PostgreSQL would read "%" as a
    #: placeholder otherwise); ``many`` takes a sequence of parameter rows.
    params: Sequence[Any] | None = None
    many: bool = False
    #: The text already has the database's own numbered placeholders (``$1``, …, see
    #: ``Dialect.values_rows``) and goes to it unconverted.
    numbered: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    rows: list[Row]
    rowcount: int

    def one(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        row = self.one()
        return None if row is None else row[0]


Job = Generator[Statement, Result, T]


def statement(sql: str, *params: Any) -> Job[Result]:
    """A job of one statement (``yield from statement(...)`` inside a bigger job)."""
    return (yield Statement(sql, params))


class Driver(Protocol):
    """Runs jobs on one database. ``transaction`` makes the job atomic and, on SQLite,
    takes the write lock first (the meter and migrations rely on that)."""

    dialect: Dialect

    @property
    def breaker(self) -> CircuitBreaker: ...

    async def connect(self) -> None:
        """Connect (idempotent) without looking at the schema."""

    async def close(self) -> None: ...

    async def run(
        self, job: Callable[[], Job[T]], *, transaction: bool = False, bounded: bool = True
    ) -> T:
        """Run a fresh ``job()`` under the call bound and the breaker (``bounded=False``:
        neither, for migrations). Database errors become ``StorageError`` with the
        driver's exception as ``__cause__``."""

    def is_duplicate_email(self, error: BaseException | None) -> bool:
        """Whether a ``StorageError``'s cause is the users' unique e-mail key."""
