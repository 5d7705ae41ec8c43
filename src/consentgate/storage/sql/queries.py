"""Every query of the SQL backends and the codecs of their rows, written once.

The text uses ``?`` placeholders and names the few spellings that differ
(``{greatest}``, ``{is_distinct_from}``); :class:`Queries` renders it for one
:class:`~consentgate.storage.sql.dialect.Dialect` when a backend is built, so nothing is
formatted per call. Table and column names are constants here, never input.
"""

from __future__ import annotations

import json
from typing import Any

from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    OutboxItem,
    OutgoingMail,
    SessionRecord,
    SubscriptionRecord,
    User,
    email_key,
)
from consentgate.storage.sql.dialect import Dialect

Row = tuple[Any, ...]

_CONSENT_COLUMNS = """id, consent_id, user_id, action, granted, denied, policy_version,
    banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at"""
_ACCEPTANCE_COLUMNS = """id, user_id, purpose, policy_version, policy_sha256, granted,
    method, ip_hmac, user_agent, recorded_at"""
_USER_COLUMNS = "id, email, password_hash, created_at, email_verified_at"
_OUTBOX_COLUMNS = """id, recipient, subject, body_text, body_html, kind, language, headers,
    created_at, attempts, next_attempt_at, status, last_error, sent_at"""
_SUBSCRIPTION_COLUMNS = """id, user_id, list_id, action, method, text_shown, ip_hmac,
    user_agent, recorded_at"""
_INSERT_CONSENTS = """INSERT INTO consent_ledger (
        consent_id, user_id, action, granted, denied, policy_version, banner_text_sha256,
        language, region_mode, method, ip_hmac, user_agent, recorded_at
    )"""
#: Parameters of one consent row (``Queries.consent_params``).
CONSENT_WIDTH = 13
#: The column of ``recorded_at`` in the rows above, for keyset paging.
CONSENT_TIME_COLUMN = 13
ACCEPTANCE_TIME_COLUMN = 9

_TEXT = {
    "insert_consent": f"""{_INSERT_CONSENTS}
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
    "consent_history": f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
        WHERE consent_id = ? ORDER BY recorded_at, id""",
    "latest_consent": f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
        WHERE consent_id = ? ORDER BY recorded_at DESC, id DESC LIMIT 1""",
    "consents_for_user": f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
        WHERE user_id = ? ORDER BY recorded_at, id""",
    "count_consents": "SELECT COUNT(*) FROM consent_ledger",
    # Keyset pages on (recorded_at, id), each its own call: no OFFSET scans, constant
    # memory, no duplicates or gaps when rows are appended while an export runs, and a
    # slow consumer holds neither a connection nor a transaction open.
    "consent_page": f"""SELECT {_CONSENT_COLUMNS} FROM consent_ledger
        WHERE (recorded_at, id) > (?, ?) AND recorded_at < ?
        ORDER BY recorded_at, id LIMIT ?""",
    "acceptance_page": f"""SELECT {_ACCEPTANCE_COLUMNS} FROM acceptances
        WHERE (recorded_at, id) > (?, ?) AND recorded_at < ?
        ORDER BY recorded_at, id LIMIT ?""",
    "user_by_email_key": f"SELECT {_USER_COLUMNS} FROM users WHERE email_key = ?",
    "user_by_id": f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?",
    "insert_user": """INSERT INTO users (
        id, email, email_key, password_hash, created_at, email_verified_at
    ) VALUES (?, ?, ?, ?, ?, ?)""",
    # The first proof stands: a second click on an old link changes nothing.
    "mark_email_verified": """UPDATE users
        SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?""",
    "change_email": """UPDATE users SET email = ?, email_key = ?, email_verified_at = ?
        WHERE id = ?""",
    "update_password_hash": "UPDATE users SET password_hash = ? WHERE id = ?",
    "delete_reader_sessions": "DELETE FROM sessions WHERE kind = 'reader' AND subject = ?",
    "delete_user": "DELETE FROM users WHERE id = ?",
    "insert_acceptance": """INSERT INTO acceptances (
        user_id, purpose, policy_version, policy_sha256, granted, method, ip_hmac,
        user_agent, recorded_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
    "latest_acceptance": f"""SELECT {_ACCEPTANCE_COLUMNS} FROM acceptances
        WHERE user_id = ? AND purpose = ? ORDER BY recorded_at DESC, id DESC LIMIT 1""",
    "acceptances_for": f"""SELECT {_ACCEPTANCE_COLUMNS} FROM acceptances
        WHERE user_id = ? ORDER BY recorded_at, id""",
    # Keeps the newest time when reads arrive out of order (two workers, one reader).
    "upsert_read": """INSERT INTO meter_reads (reader_key, article, read_at) VALUES (?, ?, ?)
        ON CONFLICT (reader_key, article)
        DO UPDATE SET read_at = {greatest}(meter_reads.read_at, excluded.read_at)""",
    "reads_since": "SELECT article FROM meter_reads WHERE reader_key = ? AND read_at >= ?",
    "prune_reads": "DELETE FROM meter_reads WHERE read_at < ?",
    "upsert_count": """INSERT INTO counters (day, name, value) VALUES (?, ?, ?)
        ON CONFLICT (day, name) DO UPDATE SET value = counters.value + excluded.value""",
    "counts": """SELECT day, name, value FROM counters
        WHERE day >= ? AND day < ? ORDER BY day, name""",
    # Only rows that still hold something to erase: a second request changes nothing.
    "redact_consents": """UPDATE consent_ledger SET ip_hmac = NULL, user_agent = NULL
        WHERE user_id = ? AND (ip_hmac IS NOT NULL OR user_agent IS NOT NULL)""",
    "redact_acceptances": """UPDATE acceptances SET ip_hmac = NULL, user_agent = NULL
        WHERE user_id = ? AND (ip_hmac IS NOT NULL OR user_agent IS NOT NULL)""",
    "insert_session": """INSERT INTO sessions (id_hash, kind, subject, created_at, expires_at)
        VALUES (?, ?, ?, ?, ?)""",
    "session_by_hash": """SELECT id_hash, kind, subject, created_at, expires_at
        FROM sessions WHERE id_hash = ?""",
    "sessions_for": """SELECT id_hash, kind, subject, created_at, expires_at
        FROM sessions WHERE kind = ? AND subject = ? ORDER BY created_at, id_hash""",
    "delete_session": "DELETE FROM sessions WHERE id_hash = ?",
    "delete_sessions": """DELETE FROM sessions
        WHERE kind = ? AND subject = ? AND id_hash {is_distinct_from} ?""",
    "prune_sessions": "DELETE FROM sessions WHERE expires_at < ?",
    # Summed: PostgreSQL spreads a day's rows over shards (see its schema, version 4).
    "consent_daily": """SELECT day, action, method, SUM(decisions) FROM consent_daily
        WHERE day >= ? AND day < ? GROUP BY day, action, method ORDER BY day, action, method""",
    "latest_sets": """SELECT granted, COUNT(*) FROM consent_latest
        WHERE last_at >= ? GROUP BY granted""",
    "latest_gpc": "SELECT COUNT(*) FROM consent_latest WHERE gpc_at >= ?",
    # -- the outbox ------------------------------------------------------------------
    "insert_mail": """INSERT INTO outbox (
        recipient, recipient_key, subject, body_text, body_html, kind, language, headers,
        created_at, attempts, next_attempt_at, status
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'pending') RETURNING id""",
    # Claiming moves the due time past a lease: a sender that dies mid-send leaves the
    # message to be retried when the lease ends, and no other sender takes it meanwhile.
    "claim_mail": f"""UPDATE outbox SET next_attempt_at = ?
        WHERE id IN (
            SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?
            ORDER BY next_attempt_at, id LIMIT ? {{skip_locked}}
        ) RETURNING {_OUTBOX_COLUMNS}""",
    # Delivered: the bodies go (their links are secrets), the row stays for the stats.
    "mark_mail_sent": """UPDATE outbox SET status = 'sent', sent_at = ?, body_text = '',
        body_html = '' WHERE id = ? AND status = 'pending'""",
    "retry_mail": """UPDATE outbox SET attempts = attempts + 1, last_error = ?,
        next_attempt_at = ? WHERE id = ? AND status = 'pending'""",
    "kill_mail": """UPDATE outbox SET attempts = attempts + 1, last_error = ?,
        status = 'dead', body_text = '', body_html = '' WHERE id = ? AND status = 'pending'""",
    "outbox_counts": """SELECT status, attempts > 0, COUNT(*) FROM outbox
        GROUP BY status, attempts > 0""",
    "oldest_pending": "SELECT MIN(created_at) FROM outbox WHERE status = 'pending'",
    "prune_mail": "DELETE FROM outbox WHERE status <> 'pending' AND created_at < ?",
    "forget_mail": "DELETE FROM outbox WHERE recipient_key = ?",
    # -- single-use links --------------------------------------------------------------
    "claim_link": """INSERT INTO used_links (link_id, expires_at) VALUES (?, ?)
        ON CONFLICT (link_id) DO NOTHING""",
    "link_claimed": "SELECT 1 FROM used_links WHERE link_id = ?",
    "prune_links": "DELETE FROM used_links WHERE expires_at < ?",
    # -- the newsletter ledger ---------------------------------------------------------
    "insert_subscription": """INSERT INTO subscriptions (
        user_id, list_id, action, method, text_shown, ip_hmac, user_agent, recorded_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
    "subscriptions_for": f"""SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions
        WHERE user_id = ? ORDER BY recorded_at, id""",
    # A reader's state on a list is their newest row for it (by id: the order of
    # writing, which clock skew between workers cannot reorder). Keyset pages by user.
    "subscriber_page": """SELECT s.user_id, u.email, s.recorded_at
        FROM subscriptions s JOIN users u ON u.id = s.user_id
        WHERE s.list_id = ? AND s.user_id > ? AND s.action = 'confirmed'
            AND s.id = (SELECT MAX(s2.id) FROM subscriptions s2
                WHERE s2.user_id = s.user_id AND s2.list_id = s.list_id)
        ORDER BY s.user_id LIMIT ?""",
    "redact_subscriptions": """UPDATE subscriptions SET ip_hmac = NULL, user_agent = NULL
        WHERE user_id = ? AND (ip_hmac IS NOT NULL OR user_agent IS NOT NULL)""",
    "ping": "SELECT 1",
    "schema_version": "SELECT MAX(version) FROM schema_version",
    "record_version": "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
}


class Queries:
    """The statements and row codecs of one dialect, rendered once."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        spellings = {
            "greatest": dialect.greatest,
            "is_distinct_from": dialect.is_distinct_from,
            "skip_locked": dialect.skip_locked,
        }
        for name, text in _TEXT.items():
            setattr(self, name, dialect.sql(text.format(**spellings)))
        self._insert_consents: dict[int, str | None] = {}

    def insert_consents(self, rows: int) -> str | None:
        """One statement inserting ``rows`` consent rows and returning their ids (its
        placeholders numbered), or None where the dialect inserts a row per statement."""
        text = self._insert_consents.get(rows)
        if text is None and rows not in self._insert_consents:
            values = self.dialect.values_rows(rows, CONSENT_WIDTH)
            text = None if values is None else f"{_INSERT_CONSENTS} VALUES {values} RETURNING id"
            self._insert_consents[rows] = text
        return text

    # Filled in by __init__ from _TEXT; declared for the type checker.
    insert_consent: str
    consent_history: str
    latest_consent: str
    consents_for_user: str
    count_consents: str
    consent_page: str
    acceptance_page: str
    user_by_email_key: str
    user_by_id: str
    insert_user: str
    mark_email_verified: str
    change_email: str
    update_password_hash: str
    delete_reader_sessions: str
    delete_user: str
    insert_acceptance: str
    latest_acceptance: str
    acceptances_for: str
    upsert_read: str
    reads_since: str
    prune_reads: str
    upsert_count: str
    counts: str
    redact_consents: str
    redact_acceptances: str
    insert_session: str
    session_by_hash: str
    sessions_for: str
    delete_session: str
    delete_sessions: str
    prune_sessions: str
    consent_daily: str
    latest_sets: str
    latest_gpc: str
    insert_mail: str
    claim_mail: str
    mark_mail_sent: str
    retry_mail: str
    kill_mail: str
    outbox_counts: str
    oldest_pending: str
    prune_mail: str
    forget_mail: str
    claim_link: str
    link_claimed: str
    prune_links: str
    insert_subscription: str
    subscriptions_for: str
    subscriber_page: str
    redact_subscriptions: str
    ping: str
    schema_version: str
    record_version: str

    # -- rows ---------------------------------------------------------------------------
    def consent_params(self, rec: ConsentRecord) -> tuple[Any, ...]:
        d = self.dialect
        return (
            rec.consent_id,
            rec.user_id,
            rec.action,
            d.categories(rec.granted),
            d.categories(rec.denied),
            rec.policy_version,
            rec.banner_text_sha256,
            rec.language,
            rec.region_mode,
            rec.method,
            rec.ip_hmac,
            rec.user_agent,
            d.time(rec.recorded_at),
        )

    def consent_from_row(self, row: Row) -> ConsentRecord:
        d = self.dialect
        return ConsentRecord(
            id=row[0],
            consent_id=row[1],
            user_id=row[2],
            action=row[3],
            granted=d.read_categories(row[4]),
            denied=d.read_categories(row[5]),
            policy_version=row[6],
            banner_text_sha256=row[7],
            language=row[8],
            region_mode=row[9],
            method=row[10],
            ip_hmac=row[11],
            user_agent=row[12],
            recorded_at=d.read_time(row[13]),
        )

    def acceptance_params(self, rec: AcceptanceRecord) -> tuple[Any, ...]:
        d = self.dialect
        return (
            rec.user_id,
            rec.purpose,
            rec.policy_version,
            rec.policy_sha256,
            d.flag(rec.granted),
            rec.method,
            rec.ip_hmac,
            rec.user_agent,
            d.time(rec.recorded_at),
        )

    def acceptance_from_row(self, row: Row) -> AcceptanceRecord:
        d = self.dialect
        return AcceptanceRecord(
            id=row[0],
            user_id=row[1],
            purpose=row[2],
            policy_version=row[3],
            policy_sha256=row[4],
            granted=d.read_flag(row[5]),
            method=row[6],
            ip_hmac=row[7],
            user_agent=row[8],
            recorded_at=d.read_time(row[9]),
        )

    def user_params(self, user: User) -> tuple[Any, ...]:
        d = self.dialect
        verified = user.email_verified_at
        return (
            user.id,
            user.email,
            email_key(user.email),
            user.password_hash,
            d.time(user.created_at),
            d.time(verified) if verified is not None else None,
        )

    def user_from_row(self, row: Row) -> User:
        d = self.dialect
        return User(
            id=row[0],
            email=row[1],
            password_hash=row[2],
            created_at=d.read_time(row[3]),
            email_verified_at=d.read_time(row[4]) if row[4] is not None else None,
        )

    def mail_params(self, mail: OutgoingMail, at: Any) -> tuple[Any, ...]:
        return (
            mail.recipient,
            email_key(mail.recipient),
            mail.subject,
            mail.text,
            mail.html,
            mail.kind,
            mail.language,
            json.dumps([list(pair) for pair in mail.headers]),
            at,
            at,
        )

    def outbox_item_from_row(self, row: Row) -> OutboxItem:
        d = self.dialect
        mail = OutgoingMail(
            recipient=row[1],
            subject=row[2],
            text=row[3],
            html=row[4],
            kind=row[5],
            language=row[6],
            headers=tuple((str(name), str(value)) for name, value in json.loads(row[7])),
        )
        return OutboxItem(
            id=int(row[0]),
            mail=mail,
            created_at=d.read_time(row[8]),
            attempts=int(row[9]),
            next_attempt_at=d.read_time(row[10]),
            status=row[11],
            last_error=row[12],
            sent_at=d.read_time(row[13]) if row[13] is not None else None,
        )

    def subscription_params(self, rec: SubscriptionRecord) -> tuple[Any, ...]:
        return (
            rec.user_id,
            rec.list_id,
            rec.action,
            rec.method,
            rec.text_shown,
            rec.ip_hmac,
            rec.user_agent,
            self.dialect.time(rec.recorded_at),
        )

    def subscription_from_row(self, row: Row) -> SubscriptionRecord:
        return SubscriptionRecord(
            id=int(row[0]),
            user_id=row[1],
            list_id=row[2],
            action=row[3],
            method=row[4],
            text_shown=row[5],
            ip_hmac=row[6],
            user_agent=row[7],
            recorded_at=self.dialect.read_time(row[8]),
        )

    def session_params(self, rec: SessionRecord) -> tuple[Any, ...]:
        d = self.dialect
        return (rec.id_hash, rec.kind, rec.subject, d.time(rec.created_at), d.time(rec.expires_at))

    def session_from_row(self, row: Row) -> SessionRecord:
        d = self.dialect
        return SessionRecord(
            id_hash=row[0],
            kind=row[1],
            subject=row[2],
            created_at=d.read_time(row[3]),
            expires_at=d.read_time(row[4]),
        )
