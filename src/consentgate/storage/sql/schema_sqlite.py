"""The SQLite schema, as the statements of each migration.

Kept per dialect on purpose: types, triggers and rollups are where the two databases
differ most, and a migration, once released, never changes. The queries that read and
write these tables are written once, in :mod:`consentgate.storage.sql.queries`.
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMA_VERSION = 6

_SCHEMA_V1 = (
    """
    CREATE TABLE consent_ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        consent_id TEXT NOT NULL,
        user_id TEXT,
        action TEXT NOT NULL
            CHECK (action IN ('grant', 'reject', 'update', 'withdraw', 'gpc')),
        granted TEXT NOT NULL,
        denied TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        banner_text_sha256 TEXT NOT NULL,
        language TEXT NOT NULL,
        region_mode TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('form', 'js', 'api', 'gpc')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX consent_ledger_by_consent_id ON consent_ledger (consent_id, recorded_at)",
    "CREATE INDEX consent_ledger_by_recorded_at ON consent_ledger (recorded_at)",
    # The ledger is evidence of consent: rows are never changed or removed by the app.
    """
    CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
    BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END
    """,
    """
    CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
    BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END
    """,
)

# Version 2: accounts, their acceptances, and the server-side meter. Only new tables,
# so the migration from version 1 leaves every consent row as it was.
_SCHEMA_V2 = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX users_by_email_key ON users (email_key)",
    # No foreign key to users: sites with their own accounts record acceptances for
    # user ids we have never seen.
    """
    CREATE TABLE acceptances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        purpose TEXT NOT NULL CHECK (purpose IN ('privacy_policy', 'newsletter')),
        policy_version TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        granted INTEGER NOT NULL CHECK (granted IN (0, 1)),
        method TEXT NOT NULL
            CHECK (method IN ('registration', 're-acceptance', 'external', 'withdrawal')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX acceptances_by_user ON acceptances (user_id, purpose, recorded_at)",
    "CREATE INDEX acceptances_by_recorded_at ON acceptances (recorded_at)",
    # Acceptances are evidence (GDPR Art. 7(1)), like the consent ledger.
    """
    CREATE TRIGGER acceptances_no_update BEFORE UPDATE ON acceptances
    BEGIN SELECT RAISE(ABORT, 'acceptances is append-only'); END
    """,
    """
    CREATE TRIGGER acceptances_no_delete BEFORE DELETE ON acceptances
    BEGIN SELECT RAISE(ABORT, 'acceptances is append-only'); END
    """,
    """
    CREATE TABLE meter_reads (
        reader_key TEXT NOT NULL,
        article TEXT NOT NULL,
        read_at TEXT NOT NULL,
        PRIMARY KEY (reader_key, article)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX meter_reads_by_read_at ON meter_reads (read_at)",
)

_LEDGER_COLUMNS = (
    "id", "consent_id", "user_id", "action", "granted", "denied", "policy_version",
    "banner_text_sha256", "language", "region_mode", "method", "recorded_at",
)  # fmt: skip
_ACCEPTANCE_COLUMNS = (
    "id", "user_id", "purpose", "policy_version", "policy_sha256", "granted", "method",
    "recorded_at",
)  # fmt: skip


def _redaction_only_trigger(table: str, kept_columns: Sequence[str]) -> str:
    """An UPDATE trigger refusing everything but nulling ``ip_hmac`` and ``user_agent``.

    ``kept_columns`` must list every other column: a column added later and missing
    here could be changed freely, so migrations adding columns must recreate this.
    """
    unchanged = " AND ".join(f"NEW.{column} IS OLD.{column}" for column in kept_columns)
    return f"""
    CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
    WHEN NOT (NEW.ip_hmac IS NULL AND NEW.user_agent IS NULL AND {unchanged})
    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
    """


# Version 3: daily counters for the dashboard, and redaction (erasure requests) as the
# one change the append-only tables accept.
_SCHEMA_V3 = (
    """
    CREATE TABLE counters (
        day TEXT NOT NULL,
        name TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (day, name)
    ) WITHOUT ROWID
    """,
    # Erasure and subject-access requests look rows up by user.
    """
    CREATE INDEX consent_ledger_by_user ON consent_ledger (user_id, recorded_at)
    WHERE user_id IS NOT NULL
    """,
    "DROP TRIGGER consent_ledger_no_update",
    _redaction_only_trigger("consent_ledger", _LEDGER_COLUMNS),
    "DROP TRIGGER acceptances_no_update",
    _redaction_only_trigger("acceptances", _ACCEPTANCE_COLUMNS),
)

# Version 4: server-side sessions (readers and the dashboard), and rollups that the
# database keeps on every ledger insert, so the dashboard never scans the ledger:
# decisions per day, action and method, and each consent id's latest decision.
_SCHEMA_V4 = (
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('reader', 'admin')),
        subject TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX sessions_by_subject ON sessions (kind, subject)",
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    """
    CREATE TABLE consent_daily (
        day TEXT NOT NULL,
        action TEXT NOT NULL,
        method TEXT NOT NULL,
        decisions INTEGER NOT NULL,
        PRIMARY KEY (day, action, method)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE consent_latest (
        consent_id TEXT PRIMARY KEY,
        last_at TEXT NOT NULL,
        granted TEXT NOT NULL,
        gpc_at TEXT
    ) WITHOUT ROWID
    """,
    # Covering: the dashboard's rates read the index only.
    "CREATE INDEX consent_latest_by_last_at ON consent_latest (last_at, granted)",
    "CREATE INDEX consent_latest_by_gpc_at ON consent_latest (gpc_at) WHERE gpc_at IS NOT NULL",
    # The rows already in the ledger, once, at migration.
    """
    INSERT INTO consent_daily (day, action, method, decisions)
    SELECT substr(recorded_at, 1, 10), action, method, COUNT(*)
    FROM consent_ledger GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO consent_latest (consent_id, last_at, granted, gpc_at)
    SELECT consent_id, recorded_at, granted, gpc_at FROM (
        SELECT consent_id, recorded_at, granted,
            MAX(CASE WHEN action = 'gpc' THEN recorded_at END)
                OVER (PARTITION BY consent_id) AS gpc_at,
            ROW_NUMBER() OVER (PARTITION BY consent_id ORDER BY recorded_at DESC, id DESC) AS rn
        FROM consent_ledger
    ) WHERE rn = 1
    """,
    # In the inserting transaction: a row and its rollups are written together.
    # A row older than the id's latest (two workers, clock skew) leaves the latest be.
    """
    CREATE TRIGGER consent_ledger_rollups AFTER INSERT ON consent_ledger
    BEGIN
        INSERT INTO consent_daily (day, action, method, decisions)
        VALUES (substr(NEW.recorded_at, 1, 10), NEW.action, NEW.method, 1)
        ON CONFLICT (day, action, method) DO UPDATE SET decisions = decisions + 1;
        INSERT INTO consent_latest (consent_id, last_at, granted, gpc_at)
        VALUES (NEW.consent_id, NEW.recorded_at, NEW.granted,
            CASE WHEN NEW.action = 'gpc' THEN NEW.recorded_at END)
        ON CONFLICT (consent_id) DO UPDATE SET
            granted = CASE WHEN excluded.last_at >= last_at THEN excluded.granted
                ELSE granted END,
            last_at = MAX(last_at, excluded.last_at),
            gpc_at = CASE WHEN excluded.gpc_at IS NULL THEN gpc_at
                WHEN gpc_at IS NULL THEN excluded.gpc_at
                ELSE MAX(gpc_at, excluded.gpc_at) END;
    END
    """,
)

_SUBSCRIPTION_COLUMNS = (
    "id", "user_id", "list_id", "action", "method", "text_shown", "recorded_at",
)  # fmt: skip

# Version 5: readers' accounts in full. Whether an address is verified; the outbox
# (a message is written in the transaction of its cause and sent by a background task,
# so an SMTP outage loses nothing); the ids of used single-use links; and the
# newsletter ledger, append-only like the other evidence.
_SCHEMA_V5 = (
    "ALTER TABLE users ADD COLUMN email_verified_at TEXT",
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        recipient_key TEXT NOT NULL,
        subject TEXT NOT NULL,
        body_text TEXT NOT NULL,
        body_html TEXT NOT NULL,
        kind TEXT NOT NULL,
        language TEXT NOT NULL,
        headers TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
        last_error TEXT,
        sent_at TEXT
    )
    """,
    # The sender's one query: what is due. Only pending rows are in it.
    "CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending'",
    "CREATE INDEX outbox_by_recipient ON outbox (recipient_key)",
    "CREATE INDEX outbox_by_status ON outbox (status, created_at)",
    """
    CREATE TABLE used_links (
        link_id TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX used_links_by_expiry ON used_links (expires_at)",
    """
    CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        list_id TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('requested', 'confirmed', 'unsubscribed')),
        method TEXT NOT NULL CHECK (method IN (
            'registration', 'account', 'email_link', 'one_click', 'operator', 'erasure')),
        text_shown TEXT NOT NULL,
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX subscriptions_by_user ON subscriptions (user_id, list_id, id)",
    "CREATE INDEX subscriptions_by_list ON subscriptions (list_id, user_id, id)",
    _redaction_only_trigger("subscriptions", _SUBSCRIPTION_COLUMNS),
    """
    CREATE TRIGGER subscriptions_no_delete BEFORE DELETE ON subscriptions
    BEGIN SELECT RAISE(ABORT, 'subscriptions is append-only'); END
    """,
)

# Version 6: nothing here. PostgreSQL's version 6 keeps its rollups per statement
# instead of per row; the number moves on both so that `schema_version()` means the
# same schema on both backends.
_SCHEMA_V6: Sequence[str] = ()

# version -> statements that bring the schema from version - 1 to version.
MIGRATIONS: dict[int, Sequence[str]] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
    5: _SCHEMA_V5,
    6: _SCHEMA_V6,
}
