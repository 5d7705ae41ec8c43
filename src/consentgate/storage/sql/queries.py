"""Every query of the SQL backends and the codecs of their rows, written once.

The text uses ``?`` placeholders and names the few spellings that differ
(``{greatest}``, ``{is_distinct_from}``); :class:`Queries` renders it for one
:class:`~consentgate.storage.sql.dialect.Dialect` when a backend is built, so nothing is
formatted per call. Table and column names are constants here, never input.
"""

from __future__ import annotations

from typing import Any

from consentgate.storage.records import (
    AcceptanceRecord,
    ConsentRecord,
    SessionRecord,
    User,
    email_key,
)
from consentgate.storage.sql.dialect import Dialect

Row = tuple[Any, ...]

_CONSENT_COLUMNS = """id, consent_id, user_id, action, granted, denied, policy_version,
    banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at"""
_ACCEPTANCE_COLUMNS = """id, user_id, purpose, policy_version, policy_sha256, granted,
    method, ip_hmac, user_agent, recorded_at"""
#: The column of ``recorded_at`` in the rows above, for keyset paging.
CONSENT_TIME_COLUMN = 13
ACCEPTANCE_TIME_COLUMN = 9

_TEXT = {
    "insert_consent": """INSERT INTO consent_ledger (
        consent_id, user_id, action, granted, denied, policy_version, banner_text_sha256,
        language, region_mode, method, ip_hmac, user_agent, recorded_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
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
    "user_by_email_key": (
        "SELECT id, email, password_hash, created_at FROM users WHERE email_key = ?"
    ),
    "user_by_id": "SELECT id, email, password_hash, created_at FROM users WHERE id = ?",
    "insert_user": (
        "INSERT INTO users (id, email, email_key, password_hash, created_at) VALUES (?, ?, ?, ?, ?)"
    ),
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
    "ping": "SELECT 1",
    "schema_version": "SELECT MAX(version) FROM schema_version",
    "record_version": "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
}


class Queries:
    """The statements and row codecs of one dialect, rendered once."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        spellings = {"greatest": dialect.greatest, "is_distinct_from": dialect.is_distinct_from}
        for name, text in _TEXT.items():
            setattr(self, name, dialect.sql(text.format(**spellings)))

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
    delete_session: str
    delete_sessions: str
    prune_sessions: str
    consent_daily: str
    latest_sets: str
    latest_gpc: str
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
        return (
            user.id,
            user.email,
            email_key(user.email),
            user.password_hash,
            self.dialect.time(user.created_at),
        )

    def user_from_row(self, row: Row) -> User:
        return User(
            id=row[0],
            email=row[1],
            password_hash=row[2],
            created_at=self.dialect.read_time(row[3]),
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
