"""What differs between the SQL databases we store in, and nothing else.

The queries (:mod:`consentgate.storage.sql.queries`) and the storage methods
(:mod:`consentgate.storage.sql.store`) are written once; a dialect says how one database
spells a placeholder, the larger of two values and "is distinct from", how it stores
times, dates, category lists and flags, and which statements its migrations and its
meter need around them. No database library is imported here: PostgreSQL's values are
the ones psycopg adapts natively, SQLite's are text and integers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from consentgate.storage.sql import schema_postgres, schema_sqlite


def format_timestamp(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text ending in 'Z', so text order is time order."""
    if moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None)
    return naive_utc.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class Dialect:
    """One database's spelling. Subclasses set the class attributes and the codecs."""

    name: str
    #: The larger of two values (SQLite's scalar MAX, PostgreSQL's GREATEST).
    greatest: str
    #: A comparison that treats NULL as a value (SQLite before 3.39 lacks the long form).
    is_distinct_from: str
    #: After a SELECT whose rows the transaction is about to change, so that concurrent
    #: transactions take other rows instead of waiting ("" where one writer at a time
    #: is the rule anyway).
    skip_locked: str = ""
    #: The schema version this code reads and writes, and the statements of each step.
    schema_version: int
    migrations: Mapping[int, Sequence[str]]
    #: One row, one column: 1 when the ``schema_version`` table exists, else 0.
    schema_table_exists: str
    schema_table: str
    #: Run first in the migration's transaction (time limits, the cross-process lock).
    migration_prelude: tuple[str, ...] = ()
    #: A statement taking a transaction-scoped lock on one meter key (parameter: the
    #: key), or None when the write transaction itself already serialises meter steps.
    meter_lock: str | None = None
    #: Whether consent rows arriving together are committed in one transaction
    #: (storage/sql/batching.py).
    group_commit: bool
    #: Values below and above every stored time and day, for open ranges.
    time_low: Any
    time_high: Any
    day_low: Any
    day_high: Any

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders, in this database's parameter style."""
        return text

    def values_rows(self, rows: int, width: int) -> str | None:
        """The VALUES list of one statement inserting ``rows`` rows of ``width`` columns,
        in the database's own numbered placeholders (``Statement(numbered=True)``), or
        None where each row is inserted by a statement of its own."""
        return None

    def time(self, moment: datetime) -> Any:
        return moment

    def read_time(self, value: Any) -> datetime:
        return value  # type: ignore[no-any-return]

    def day(self, value: date) -> Any:
        return value

    def read_day(self, value: Any) -> date:
        return value  # type: ignore[no-any-return]

    def categories(self, names: Sequence[str]) -> Any:
        return list(names)

    def read_categories(self, value: Any) -> tuple[str, ...]:
        return tuple(str(name) for name in value)

    def flag(self, value: bool) -> Any:
        return value

    def read_flag(self, value: Any) -> bool:
        return bool(value)


class SQLiteDialect(Dialect):
    # Times are fixed-width UTC text (text order is time order), category lists JSON,
    # flags 0/1: SQLite has no time, array or boolean types.
    name = "sqlite"
    # One writer, and every commit synced: committing the rows that arrive together in
    # one transaction is what lets one worker record thousands of decisions a second.
    group_commit = True
    greatest = "MAX"
    is_distinct_from = "IS NOT"
    schema_version = schema_sqlite.SCHEMA_VERSION
    migrations = schema_sqlite.MIGRATIONS
    schema_table_exists = (
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    schema_table = (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    # "" sorts before every timestamp and ISO date, "~" after them.
    time_low = ""
    time_high = "~"
    day_low = ""
    day_high = "~"

    def time(self, moment: datetime) -> Any:
        return format_timestamp(moment)

    def read_time(self, value: Any) -> datetime:
        return parse_timestamp(value)

    def day(self, value: date) -> Any:
        return value.isoformat()

    def read_day(self, value: Any) -> date:
        return date.fromisoformat(value)

    def categories(self, names: Sequence[str]) -> Any:
        return json.dumps(list(names))

    def read_categories(self, value: Any) -> tuple[str, ...]:
        return tuple(str(name) for name in json.loads(value))

    def flag(self, value: bool) -> Any:
        return int(value)


class PostgresDialect(Dialect):
    # psycopg adapts datetimes (TIMESTAMPTZ), dates, lists (TEXT[]) and booleans.
    name = "postgresql"
    # One multi-row INSERT per batch (values_rows): the rollup trigger runs once per
    # statement (schema v6) and takes its locks in one global order, so two workers'
    # batches cannot deadlock (v4's per-row trigger, with a batch of single-row
    # inserts, did: 2 workers fell from ~800 to 42 decisions/s). What a batch saves
    # is per-decision work: round trips, a trigger call and a commit for each row.
    group_commit = True
    greatest = "GREATEST"
    is_distinct_from = "IS DISTINCT FROM"
    skip_locked = "FOR UPDATE SKIP LOCKED"
    schema_version = schema_postgres.SCHEMA_VERSION
    migrations = schema_postgres.MIGRATIONS
    schema_table_exists = "SELECT (to_regclass('schema_version') IS NOT NULL)::int"
    schema_table = (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    migration_prelude = (
        # Building an index on a large ledger may take longer than the per-request limit.
        "SET LOCAL statement_timeout = 0",
        # One lock per schema, so tests (and tenants) in other schemas do not wait on
        # each other; a second process waits here, then finds nothing left to do.
        "SELECT pg_advisory_xact_lock("
        "hashtextextended('consentgate.migrate:' || coalesce(current_schema(), ''), 0))",
    )
    # Namespaced by schema like the migration lock; a hash collision only makes two
    # keys wait for each other.
    meter_lock = (
        "SELECT pg_advisory_xact_lock(hashtextextended("
        "'consentgate.meter:' || coalesce(current_schema(), '') || ':' || %s, 0))"
    )
    time_low = datetime(1, 1, 1, tzinfo=UTC)
    time_high = datetime.max.replace(tzinfo=UTC)
    day_low = date.min
    day_high = date.max

    def sql(self, text: str) -> str:
        # Our statements hold no "?" inside literals; a literal "%" must be doubled.
        return text.replace("%", "%%").replace("?", "%s")

    def values_rows(self, rows: int, width: int) -> str | None:
        return _numbered_values(rows, width)


@lru_cache(maxsize=256)
def _numbered_values(rows: int, width: int) -> str:
    # $1..$n, sent as they are: psycopg caches its %s -> $n conversion only for
    # statements of at most 50 parameters, and a batch of 64 rows has 832, which it
    # would otherwise scan again for every batch.
    return ", ".join(
        "(" + ", ".join(f"${row * width + column + 1}" for column in range(width)) + ")"
        for row in range(rows)
    )


SQLITE = SQLiteDialect()
POSTGRES = PostgresDialect()
