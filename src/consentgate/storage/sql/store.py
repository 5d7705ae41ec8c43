"""The :class:`~consentgate.storage.ports.Storage` methods of the SQL backends, once.

Each method is a job of statements (see :mod:`consentgate.storage.sql.driver`) over the
queries of :mod:`consentgate.storage.sql.queries`; the driver below decides how they reach
the database. ``SQLiteStorage`` and ``PostgresStorage`` are this class with their driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from consentgate.storage.base import (
    DuplicateUserError,
    SchemaTooNewError,
    SchemaTooOldError,
    StorageError,
    check_counts,
    meter_outcome,
)
from consentgate.storage.breaker import CircuitBreaker
from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    MeterOutcome,
    OutboxItem,
    OutgoingMail,
    SessionRecord,
    SubscriptionRecord,
    User,
    email_key,
)
from consentgate.storage.sql.batching import GroupCommit
from consentgate.storage.sql.driver import Driver, Job, Result, Row, Statement, statement
from consentgate.storage.sql.queries import ACCEPTANCE_TIME_COLUMN, CONSENT_TIME_COLUMN, Queries

if TYPE_CHECKING:
    from consentgate.storage.ports import Storage


def _aware(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment


def _new(rec: ConsentRecord | AcceptanceRecord | SubscriptionRecord, kind: str) -> None:
    if rec.id is not None:
        raise ValueError(f"{kind} record already stored with id {rec.id}")


class SQLStorage:
    """Storage on a SQL database through ``driver``; pages of ``batch_size`` rows."""

    def __init__(self, driver: Driver, *, batch_size: int = 500) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._driver = driver
        self._q = Queries(driver.dialect)
        self._batch_size = batch_size
        self._schema_checked = False
        # Decisions that arrive together are committed together (one fsync for many),
        # where the dialect says so.
        self._consents: GroupCommit[tuple[Any, ...], int] | None = (
            GroupCommit(self._insert_consents) if driver.dialect.group_commit else None
        )

    @property
    def driver(self) -> Driver:
        return self._driver

    @property
    def breaker(self) -> CircuitBreaker:
        return self._driver.breaker

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _one(self, sql: str, *params: Any) -> Row | None:
        result = await self._driver.run(lambda: statement(sql, *params))
        return result.one()

    async def _all(self, sql: str, *params: Any) -> list[Row]:
        result = await self._driver.run(lambda: statement(sql, *params))
        return result.rows

    async def _count(self, sql: str, *params: Any) -> int:
        result = await self._driver.run(lambda: statement(sql, *params))
        return result.rowcount

    # -- schema and connections ------------------------------------------------------
    async def open(self) -> None:
        await self._driver.connect()
        if self._schema_checked:
            return
        try:
            await self._driver.run(self._check_schema, transaction=True)
        except BaseException:
            await self.close()
            raise
        self._schema_checked = True

    async def close(self) -> None:
        self._schema_checked = False
        await self._driver.close()

    def _version(self) -> Job[int]:
        exists = yield Statement(self._driver.dialect.schema_table_exists, ())
        if not exists.scalar():
            return 0
        found = yield Statement(self._q.schema_version, ())
        return int(found.scalar() or 0)

    def _migrate(self, target: int) -> Job[list[int]]:
        """Inside a write transaction: the prelude, then the schema up to ``target``."""
        for sql in self._driver.dialect.migration_prelude:
            yield Statement(sql)
        return (yield from self._apply_migrations(target))

    def _apply_migrations(self, target: int) -> Job[list[int]]:
        """After the prelude: bring the schema up to ``target``."""
        dialect = self._driver.dialect
        yield Statement(dialect.schema_table)
        current = yield from self._version()
        if current > dialect.schema_version:
            raise SchemaTooNewError(current, dialect.schema_version)
        applied = list(range(current + 1, target + 1))
        for version in applied:
            for sql in dialect.migrations[version]:
                yield Statement(sql)
            now = dialect.time(datetime.now(UTC))
            yield Statement(self._q.record_version, (version, now))
        return applied

    def _check_schema(self) -> Job[None]:
        """Create the latest schema in an empty database; refuse any other version.

        In the migration's transaction and lock, so two processes starting on an empty
        database do not both create it."""
        dialect = self._driver.dialect
        for sql in dialect.migration_prelude:
            yield Statement(sql)
        current = yield from self._version()
        if current == 0:
            yield from self._apply_migrations(dialect.schema_version)
        elif current < dialect.schema_version:
            raise SchemaTooOldError(current, dialect.schema_version)
        elif current > dialect.schema_version:
            raise SchemaTooNewError(current, dialect.schema_version)

    async def schema_version(self) -> int:
        await self._driver.connect()
        return await self._driver.run(self._version)

    async def migrate(self, target: int | None = None) -> list[int]:
        """See :meth:`Storage.migrate`; ``target`` (tests) stops at an older version."""
        latest = self._driver.dialect.schema_version
        target = latest if target is None else target
        if not 0 <= target <= latest:
            raise ValueError(f"target must be between 0 and {latest}")
        await self._driver.connect()
        # Unbounded: an operator's migration may build indexes on a large ledger.
        return await self._driver.run(
            lambda: self._migrate(target), transaction=True, bounded=False
        )

    async def ping(self) -> None:
        await self._one(self._q.ping)

    # -- consent ledger ----------------------------------------------------------------
    async def record_consent(self, rec: ConsentRecord) -> ConsentRecord:
        _new(rec, "consent")
        params = self._q.consent_params(rec)
        if self._consents is None:
            (row_id,) = await self._insert_consents([params])
        else:
            row_id = await self._consents.submit(params)
        return replace(rec, id=row_id)

    async def _insert_consents(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Insert consent rows in one transaction (one commit); their ids, in order."""
        many = self._q.insert_consents(len(rows))
        if many is not None:
            return await self._driver.run(lambda: self._insert_in_one_statement(many, rows))

        def insert() -> Job[list[int]]:
            ids = []
            for params in rows:
                inserted = yield Statement(self._q.insert_consent, params)
                row_id = inserted.scalar()
                if row_id is None:
                    raise StorageError("the database did not return the id of a consent record")
                ids.append(int(row_id))
            return ids

        return await self._driver.run(insert, transaction=len(rows) > 1)

    def _insert_in_one_statement(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> Job[list[int]]:
        """One multi-row INSERT (atomic by itself: no transaction around it)."""
        params = [value for row in rows for value in row]
        inserted = yield Statement(sql, params, numbered=True)
        # Which id is whose: the identity column's nextval runs once per row, in the
        # order the rows come out of the VALUES list, which is the order written; a
        # sequence gives one session increasing numbers (other sessions may take some
        # in between, so they need not be consecutive). RETURNING promises no order,
        # so the ids are sorted rather than read in the order they came back.
        ids = sorted(int(row[0]) for row in inserted.rows)
        if len(ids) != len(rows):
            raise StorageError("the database did not return the id of every consent record")
        return ids

    async def consent_history(self, consent_id: str) -> list[ConsentRecord]:
        rows = await self._all(self._q.consent_history, consent_id)
        return [self._q.consent_from_row(row) for row in rows]

    async def latest_consent(self, consent_id: str) -> ConsentRecord | None:
        row = await self._one(self._q.latest_consent, consent_id)
        return self._q.consent_from_row(row) if row is not None else None

    async def count_consents(self) -> int:
        row = await self._one(self._q.count_consents)
        return int(row[0]) if row is not None else 0

    async def consents_for_user(self, user_id: str) -> list[ConsentRecord]:
        rows = await self._all(self._q.consents_for_user, user_id)
        return [self._q.consent_from_row(row) for row in rows]

    async def iter_consents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        pages = self._pages(self._q.consent_page, CONSENT_TIME_COLUMN, since, until)
        async for row in pages:
            yield self._q.consent_from_row(row)

    async def _pages(
        self, page_sql: str, time_column: int, since: datetime | None, until: datetime | None
    ) -> AsyncIterator[Row]:
        """Keyset pages on (recorded_at, id); column 0 of every row is the id."""
        dialect = self._driver.dialect
        # ids start at 1, so (since, 0) is just below every row recorded at `since`.
        low = dialect.time(_aware(since, "since")) if since is not None else dialect.time_low
        high = dialect.time(_aware(until, "until")) if until is not None else dialect.time_high
        after: tuple[Any, int] = (low, 0)
        while True:
            rows = await self._all(page_sql, *after, high, self._batch_size)
            for row in rows:
                yield row
            if len(rows) < self._batch_size:
                return
            after = (rows[-1][time_column], rows[-1][0])

    async def redact_user_records(self, user_id: str) -> int:
        if not user_id:
            raise ValueError("redact_user_records needs a user id")

        def redact() -> Job[int]:
            consents = yield Statement(self._q.redact_consents, (user_id,))
            acceptances = yield Statement(self._q.redact_acceptances, (user_id,))
            subscriptions = yield Statement(self._q.redact_subscriptions, (user_id,))
            return consents.rowcount + acceptances.rowcount + subscriptions.rowcount

        return await self._driver.run(redact, transaction=True)

    # -- accounts ------------------------------------------------------------------------
    async def forget_mail(self, recipient: str) -> int:
        return await self._count(self._q.forget_mail, email_key(recipient))

    # -- accounts ------------------------------------------------------------------------
    async def create_user(
        self,
        user: User,
        acceptances: Sequence[AcceptanceRecord] = (),
        mail: Sequence[OutgoingMail] = (),
    ) -> User:
        for rec in acceptances:
            _new(rec, "acceptance")
        now = self._driver.dialect.time(datetime.now(UTC))

        def insert() -> Job[None]:
            # One transaction: the user, its acceptances and the mail its registration
            # sends are stored together or not at all.
            yield Statement(self._q.insert_user, self._q.user_params(user))
            for rec in acceptances:
                yield Statement(self._q.insert_acceptance, self._q.acceptance_params(rec))
            for message in mail:
                yield Statement(self._q.insert_mail, self._q.mail_params(message, now))

        try:
            await self._driver.run(insert, transaction=True)
        except StorageError as exc:
            if self._driver.is_duplicate_email(exc.__cause__):
                message = "this e-mail address is already registered"
                raise DuplicateUserError(message) from exc.__cause__
            raise
        return user

    async def user_by_email(self, email: str) -> User | None:
        row = await self._one(self._q.user_by_email_key, email_key(email))
        return self._q.user_from_row(row) if row is not None else None

    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._one(self._q.user_by_id, user_id)
        return self._q.user_from_row(row) if row is not None else None

    async def mark_email_verified(self, user_id: str, at: datetime) -> bool:
        moment = self._driver.dialect.time(_aware(at, "at"))
        return await self._count(self._q.mark_email_verified, moment, user_id) > 0

    async def change_email(self, user_id: str, new_email: str, at: datetime) -> None:
        moment = self._driver.dialect.time(_aware(at, "at"))
        try:
            changed = await self._count(
                self._q.change_email, new_email, email_key(new_email), moment, user_id
            )
        except StorageError as exc:
            if self._driver.is_duplicate_email(exc.__cause__):
                message = "this e-mail address is already registered"
                raise DuplicateUserError(message) from exc.__cause__
            raise
        if changed != 1:
            raise StorageError("no user with this id; e-mail address not changed")

    async def update_password_hash(self, user_id: str, new_hash: str) -> None:
        if await self._count(self._q.update_password_hash, new_hash, user_id) != 1:
            raise StorageError("no user with this id; password hash not updated")

    async def delete_user(self, user_id: str) -> bool:
        def delete() -> Job[bool]:
            # With its sessions, in one transaction: an erased reader is signed out at once.
            yield Statement(self._q.delete_reader_sessions, (user_id,))
            deleted = yield Statement(self._q.delete_user, (user_id,))
            return deleted.rowcount > 0

        return await self._driver.run(delete, transaction=True)

    async def record_acceptance(self, rec: AcceptanceRecord) -> AcceptanceRecord:
        _new(rec, "acceptance")
        row = await self._one(self._q.insert_acceptance, *self._q.acceptance_params(rec))
        if row is None:
            raise StorageError("the database did not return the id of the new acceptance record")
        return replace(rec, id=int(row[0]))

    async def latest_acceptance(self, user_id: str, purpose: str) -> AcceptanceRecord | None:
        row = await self._one(self._q.latest_acceptance, user_id, purpose)
        return self._q.acceptance_from_row(row) if row is not None else None

    async def acceptances_for(self, user_id: str) -> list[AcceptanceRecord]:
        rows = await self._all(self._q.acceptances_for, user_id)
        return [self._q.acceptance_from_row(row) for row in rows]

    async def iter_acceptances(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AcceptanceRecord]:
        pages = self._pages(self._q.acceptance_page, ACCEPTANCE_TIME_COLUMN, since, until)
        async for row in pages:
            yield self._q.acceptance_from_row(row)

    # -- the outbox ----------------------------------------------------------------------
    async def enqueue_mail(self, mail: OutgoingMail, at: datetime) -> int:
        moment = self._driver.dialect.time(_aware(at, "at"))
        row = await self._one(self._q.insert_mail, *self._q.mail_params(mail, moment))
        if row is None:
            raise StorageError("the database did not return the id of the new message")
        return int(row[0])

    async def claim_mail(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxItem]:
        if limit < 1:
            raise ValueError("claim_mail needs a limit of at least 1")
        if lease <= timedelta(0):
            raise ValueError("claim_mail needs a positive lease")
        d = self._driver.dialect
        moment = _aware(now, "now")

        def claim() -> Job[list[Row]]:
            claimed = yield Statement(
                self._q.claim_mail, (d.time(moment + lease), d.time(moment), limit)
            )
            return claimed.rows

        rows = await self._driver.run(claim, transaction=True)
        # RETURNING gives no order; the sender wants the oldest first.
        return sorted((self._q.outbox_item_from_row(row) for row in rows), key=lambda i: i.id)

    async def mark_mail_sent(self, item_id: int, at: datetime) -> None:
        moment = self._driver.dialect.time(_aware(at, "at"))
        await self._count(self._q.mark_mail_sent, moment, item_id)

    async def mark_mail_failed(self, item_id: int, error: str, retry_at: datetime | None) -> None:
        reason = error[:500]
        if retry_at is None:
            await self._count(self._q.kill_mail, reason, item_id)
            return
        moment = self._driver.dialect.time(_aware(retry_at, "retry_at"))
        await self._count(self._q.retry_mail, reason, moment, item_id)

    async def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "retrying": 0, "sent": 0, "dead": 0}
        for status, retried, count in await self._all(self._q.outbox_counts):
            counts[status] += int(count)
            if status == "pending" and retried:
                counts["retrying"] += int(count)
        return counts

    async def oldest_pending(self) -> datetime | None:
        row = await self._one(self._q.oldest_pending)
        if row is None or row[0] is None:
            return None
        return self._driver.dialect.read_time(row[0])

    async def prune_mail(self, before: datetime) -> int:
        moment = self._driver.dialect.time(_aware(before, "before"))
        return await self._count(self._q.prune_mail, moment)

    # -- single-use links ------------------------------------------------------------------
    async def claim_link(self, link_id: str, expires_at: datetime) -> bool:
        if not link_id:
            raise ValueError("claim_link needs a link id")
        moment = self._driver.dialect.time(_aware(expires_at, "expires_at"))
        return await self._count(self._q.claim_link, link_id, moment) == 1

    async def link_claimed(self, link_id: str) -> bool:
        return await self._one(self._q.link_claimed, link_id) is not None

    async def prune_links(self, before: datetime) -> int:
        moment = self._driver.dialect.time(_aware(before, "before"))
        return await self._count(self._q.prune_links, moment)

    # -- the newsletter ledger -------------------------------------------------------------
    async def record_subscription(
        self, rec: SubscriptionRecord, mail: Sequence[OutgoingMail] = ()
    ) -> SubscriptionRecord:
        _new(rec, "subscription")
        now = self._driver.dialect.time(datetime.now(UTC))

        def insert() -> Job[int]:
            # The row and its double opt-in message, together or not at all.
            inserted = yield Statement(
                self._q.insert_subscription, self._q.subscription_params(rec)
            )
            row = inserted.one()
            if row is None:
                raise StorageError("the database did not return the id of the new row")
            for message in mail:
                yield Statement(self._q.insert_mail, self._q.mail_params(message, now))
            return int(row[0])

        return replace(rec, id=await self._driver.run(insert, transaction=True))

    async def subscriptions_for(self, user_id: str) -> list[SubscriptionRecord]:
        rows = await self._all(self._q.subscriptions_for, user_id)
        return [self._q.subscription_from_row(row) for row in rows]

    async def iter_subscribers(self, list_id: str) -> AsyncIterator[tuple[str, str, datetime]]:
        after = ""
        read_time = self._driver.dialect.read_time
        while True:
            rows = await self._all(self._q.subscriber_page, list_id, after, self._batch_size)
            for user_id, email, confirmed_at in rows:
                yield str(user_id), str(email), read_time(confirmed_at)
            if len(rows) < self._batch_size:
                return
            after = str(rows[-1][0])

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, rec: SessionRecord) -> None:
        await self._count(self._q.insert_session, *self._q.session_params(rec))

    async def session_by_hash(self, id_hash: str) -> SessionRecord | None:
        row = await self._one(self._q.session_by_hash, id_hash)
        return self._q.session_from_row(row) if row is not None else None

    async def sessions_for(self, kind: str, subject: str) -> list[SessionRecord]:
        rows = await self._all(self._q.sessions_for, kind, subject)
        return [self._q.session_from_row(row) for row in rows]

    async def delete_session(self, id_hash: str) -> bool:
        return await self._count(self._q.delete_session, id_hash) > 0

    async def delete_sessions(self, kind: str, subject: str, *, keep: str | None = None) -> int:
        return await self._count(self._q.delete_sessions, kind, subject, keep)

    async def prune_sessions(self, before: datetime) -> int:
        moment = self._driver.dialect.time(_aware(before, "before"))
        return await self._count(self._q.prune_sessions, moment)

    # -- the server-side meter -----------------------------------------------------------
    async def record_read(self, key: str, article: str, at: datetime) -> None:
        if not key or not article:
            raise ValueError("record_read needs a reader key and an article")
        moment = self._driver.dialect.time(_aware(at, "at"))
        await self._count(self._q.upsert_read, key, article, moment)

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        moment = self._driver.dialect.time(_aware(since, "since"))
        rows = await self._all(self._q.reads_since, key, moment)
        return frozenset(str(row[0]) for row in rows)

    async def meter_read(
        self,
        reader_key: str,
        network_key: str | None,
        article: str,
        at: datetime,
        since: datetime,
        reader_limit: int,
        network_limit: int,
    ) -> MeterOutcome:
        if not reader_key or not article:
            raise ValueError("meter_read needs a reader key and an article")
        dialect = self._driver.dialect
        at_value = dialect.time(_aware(at, "at"))
        since_value = dialect.time(_aware(since, "since"))
        keys = [reader_key] if network_key is None else [reader_key, network_key]

        def reads(key: str) -> Job[frozenset[str]]:
            found = yield Statement(self._q.reads_since, (key, since_value))
            return frozenset(str(row[0]) for row in found.rows)

        def step() -> Job[MeterOutcome]:
            # The write transaction (SQLite: BEGIN IMMEDIATE) or one lock per key taken
            # in sorted order (PostgreSQL; no deadlocks) makes every other meter step of
            # this reader or network, on any worker or host, wait until this one has
            # committed: a burst of requests cannot overshoot the limit.
            if dialect.meter_lock is not None:
                for key in sorted(keys):
                    yield Statement(dialect.meter_lock, (key,))
            reader_seen = yield from reads(reader_key)
            network_seen = None if network_key is None else (yield from reads(network_key))
            outcome = meter_outcome(reader_seen, network_seen, article, reader_limit, network_limit)
            if outcome.recorded:
                rows = [(key, article, at_value) for key in keys]
                yield Statement(self._q.upsert_read, rows, many=True)
            return outcome

        return await self._driver.run(step, transaction=True)

    async def prune_reads(self, before: datetime) -> int:
        moment = self._driver.dialect.time(_aware(before, "before"))
        return await self._count(self._q.prune_reads, moment)

    # -- counters and the dashboard's rollups ----------------------------------------------
    async def add_counts(self, day: date, counts: Mapping[str, int]) -> None:
        checked = check_counts(counts)
        if not checked:
            return
        # Sorted: two workers adding the same names lock the rows in the same order.
        day_value = self._driver.dialect.day(day)
        rows = [(day_value, name, checked[name]) for name in sorted(checked)]

        def add() -> Job[None]:
            yield Statement(self._q.upsert_count, rows, many=True)

        await self._driver.run(add, transaction=True)

    def _days(self, since: date | None, until: date | None) -> tuple[Any, Any]:
        dialect = self._driver.dialect
        low = dialect.day(since) if since is not None else dialect.day_low
        high = dialect.day(until) if until is not None else dialect.day_high
        return low, high

    async def counts(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, int]]:
        rows = await self._all(self._q.counts, *self._days(since, until))
        read_day = self._driver.dialect.read_day
        return [(read_day(row[0]), str(row[1]), int(row[2])) for row in rows]

    async def consent_daily(
        self, since: date | None = None, until: date | None = None
    ) -> list[tuple[date, str, str, int]]:
        rows = await self._all(self._q.consent_daily, *self._days(since, until))
        read_day = self._driver.dialect.read_day
        return [(read_day(row[0]), str(row[1]), str(row[2]), int(row[3])) for row in rows]

    async def latest_decisions(
        self, since: datetime
    ) -> tuple[list[tuple[tuple[str, ...], int]], int]:
        dialect = self._driver.dialect
        low = dialect.time(_aware(since, "since"))

        def read() -> Job[tuple[list[tuple[tuple[str, ...], int]], int]]:
            sets: Result = yield Statement(self._q.latest_sets, (low,))
            gpc: Result = yield Statement(self._q.latest_gpc, (low,))
            counted = [(dialect.read_categories(row[0]), int(row[1])) for row in sets.rows]
            return counted, int(gpc.scalar() or 0)

        return await self._driver.run(read)


if TYPE_CHECKING:

    def _implements_storage(storage: SQLStorage) -> Storage:
        return storage  # mypy proves the SQL backends implement the whole protocol
