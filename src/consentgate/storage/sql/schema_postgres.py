"""The PostgreSQL schema, as the statements of each migration.

Numbered like the SQLite schema, so that ``schema_version()`` means the same on both
backends; the queries over these tables are written once, in
:mod:`consentgate.storage.sql.queries`.
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMA_VERSION = 6

# Version 1: the consent ledger. Numbered like the SQLite schema so that
# `schema_version()` means the same on both backends.
_SCHEMA_V1 = (
    """
    CREATE TABLE consent_ledger (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        consent_id TEXT NOT NULL,
        user_id TEXT,
        action TEXT NOT NULL
            CHECK (action IN ('grant', 'reject', 'update', 'withdraw', 'gpc')),
        granted TEXT[] NOT NULL,
        denied TEXT[] NOT NULL,
        policy_version TEXT NOT NULL,
        banner_text_sha256 TEXT NOT NULL,
        language TEXT NOT NULL,
        region_mode TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('form', 'js', 'api', 'gpc')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX consent_ledger_by_consent_id ON consent_ledger (consent_id, recorded_at, id)",
    "CREATE INDEX consent_ledger_by_recorded_at ON consent_ledger (recorded_at, id)",
    # The ledger is evidence of consent: rows are never changed or removed, not even by
    # a TRUNCATE (which row triggers would not see).
    """
    CREATE FUNCTION consentgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER consent_ledger_append_only BEFORE UPDATE OR DELETE ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TRIGGER consent_ledger_no_truncate BEFORE TRUNCATE ON consent_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION consentgate_append_only()
    """,
)

# Version 2: accounts, their acceptances (append-only too), the server-side meter.
_SCHEMA_V2 = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX users_by_email_key ON users (email_key)",
    # No foreign key to users: sites with their own accounts record acceptances for
    # user ids we have never seen.
    """
    CREATE TABLE acceptances (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id TEXT NOT NULL,
        purpose TEXT NOT NULL CHECK (purpose IN ('privacy_policy', 'newsletter')),
        policy_version TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        granted BOOLEAN NOT NULL,
        method TEXT NOT NULL
            CHECK (method IN ('registration', 're-acceptance', 'external', 'withdrawal')),
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX acceptances_by_user ON acceptances (user_id, purpose, recorded_at, id)",
    "CREATE INDEX acceptances_by_recorded_at ON acceptances (recorded_at, id)",
    """
    CREATE TRIGGER acceptances_append_only BEFORE UPDATE OR DELETE ON acceptances
    FOR EACH ROW EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TRIGGER acceptances_no_truncate BEFORE TRUNCATE ON acceptances
    FOR EACH STATEMENT EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TABLE meter_reads (
        reader_key TEXT NOT NULL,
        article TEXT NOT NULL,
        read_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (reader_key, article)
    )
    """,
    "CREATE INDEX meter_reads_by_read_at ON meter_reads (read_at)",
)

# Version 3: daily counters, and redaction as the one change the append-only tables
# accept. Comparing the rows as JSON without the two columns covers every other
# column, including any added later.
_SCHEMA_V3 = (
    """
    CREATE TABLE counters (
        day DATE NOT NULL,
        name TEXT NOT NULL,
        value BIGINT NOT NULL,
        PRIMARY KEY (day, name)
    )
    """,
    """
    CREATE INDEX consent_ledger_by_user ON consent_ledger (user_id, recorded_at, id)
    WHERE user_id IS NOT NULL
    """,
    """
    CREATE OR REPLACE FUNCTION consentgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
            AND NEW.ip_hmac IS NULL AND NEW.user_agent IS NULL
            AND to_jsonb(NEW) - 'ip_hmac' - 'user_agent'
                = to_jsonb(OLD) - 'ip_hmac' - 'user_agent'
        THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
)

# Version 4: server-side sessions (readers and the dashboard), and rollups kept by the
# database on every ledger insert, so the dashboard never scans the ledger. The daily
# rows are spread over 8 shards (by row id): concurrent inserts of one day, action and
# method would otherwise all wait for one row's lock. Locks are always taken in the
# same order (consent_latest, then consent_daily), so inserts cannot deadlock.
_SCHEMA_V4 = (
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('reader', 'admin')),
        subject TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX sessions_by_subject ON sessions (kind, subject)",
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    """
    CREATE TABLE consent_daily (
        day DATE NOT NULL,
        action TEXT NOT NULL,
        method TEXT NOT NULL,
        shard SMALLINT NOT NULL,
        decisions BIGINT NOT NULL,
        PRIMARY KEY (day, action, method, shard)
    )
    """,
    """
    CREATE TABLE consent_latest (
        consent_id TEXT PRIMARY KEY,
        last_at TIMESTAMPTZ NOT NULL,
        granted TEXT[] NOT NULL,
        gpc_at TIMESTAMPTZ
    )
    """,
    "CREATE INDEX consent_latest_by_last_at ON consent_latest (last_at) INCLUDE (granted)",
    "CREATE INDEX consent_latest_by_gpc_at ON consent_latest (gpc_at) WHERE gpc_at IS NOT NULL",
    """
    INSERT INTO consent_daily (day, action, method, shard, decisions)
    SELECT (recorded_at AT TIME ZONE 'UTC')::date, action, method, 0, count(*)
    FROM consent_ledger GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO consent_latest (consent_id, last_at, granted, gpc_at)
    SELECT DISTINCT ON (consent_id) consent_id, recorded_at, granted,
        max(recorded_at) FILTER (WHERE action = 'gpc') OVER (PARTITION BY consent_id)
    FROM consent_ledger ORDER BY consent_id, recorded_at DESC, id DESC
    """,
    """
    CREATE FUNCTION consentgate_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- A row older than the id's latest (two workers, clock skew) leaves it be;
        -- GREATEST ignores NULLs.
        INSERT INTO consent_latest AS l (consent_id, last_at, granted, gpc_at)
        VALUES (NEW.consent_id, NEW.recorded_at, NEW.granted,
            CASE WHEN NEW.action = 'gpc' THEN NEW.recorded_at END)
        ON CONFLICT (consent_id) DO UPDATE SET
            granted = CASE WHEN excluded.last_at >= l.last_at THEN excluded.granted
                ELSE l.granted END,
            last_at = GREATEST(l.last_at, excluded.last_at),
            gpc_at = GREATEST(l.gpc_at, excluded.gpc_at);
        INSERT INTO consent_daily AS d (day, action, method, shard, decisions)
        VALUES ((NEW.recorded_at AT TIME ZONE 'UTC')::date, NEW.action, NEW.method,
            NEW.id % 8, 1)
        ON CONFLICT (day, action, method, shard) DO UPDATE SET decisions = d.decisions + 1;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER consent_ledger_rollups AFTER INSERT ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consentgate_rollups()
    """,
)

# Version 5: readers' accounts in full: verified addresses, the outbox (written in the
# transaction of its cause, sent by a background task; FOR UPDATE SKIP LOCKED lets
# several workers send without taking the same message), the ids of used single-use
# links, and the newsletter ledger, append-only (redaction only) like the others.
_SCHEMA_V5 = (
    "ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ",
    """
    CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient TEXT NOT NULL,
        recipient_key TEXT NOT NULL,
        subject TEXT NOT NULL,
        body_text TEXT NOT NULL,
        body_html TEXT NOT NULL,
        kind TEXT NOT NULL,
        language TEXT NOT NULL,
        headers TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
        last_error TEXT,
        sent_at TIMESTAMPTZ
    )
    """,
    "CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending'",
    "CREATE INDEX outbox_by_recipient ON outbox (recipient_key)",
    "CREATE INDEX outbox_by_status ON outbox (status, created_at)",
    """
    CREATE TABLE used_links (
        link_id TEXT PRIMARY KEY,
        expires_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX used_links_by_expiry ON used_links (expires_at)",
    """
    CREATE TABLE subscriptions (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id TEXT NOT NULL,
        list_id TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('requested', 'confirmed', 'unsubscribed')),
        method TEXT NOT NULL CHECK (method IN (
            'registration', 'account', 'email_link', 'one_click', 'operator', 'erasure')),
        text_shown TEXT NOT NULL,
        ip_hmac TEXT,
        user_agent TEXT,
        recorded_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX subscriptions_by_user ON subscriptions (user_id, list_id, id)",
    "CREATE INDEX subscriptions_by_list ON subscriptions (list_id, user_id, id)",
    """
    CREATE TRIGGER subscriptions_append_only BEFORE UPDATE OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION consentgate_append_only()
    """,
    """
    CREATE TRIGGER subscriptions_no_truncate BEFORE TRUNCATE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION consentgate_append_only()
    """,
)

# Version 6: the rollups once per INSERT statement instead of once per row, over the
# statement's rows (a transition table), so that a group commit's one multi-row insert
# takes each rollup row's lock once. Deadlock-free across workers: every transaction
# locks consent_latest rows in consent_id order, then consent_daily rows in (day,
# action, method) order, and no transaction inserts into the ledger twice (a batch is
# one statement). Each transaction adds to one shard of the day's row, chosen by its
# transaction id, so two workers' transactions rarely wait on the same row. The same
# figures as version 4's per-row trigger: a row older than the id's latest (two
# workers, clock skew) leaves it be; of one id's rows in a statement the latest counts
# (ties: the higher id, the one a per-row trigger would have applied last).
_SCHEMA_V6 = (
    "DROP TRIGGER consent_ledger_rollups ON consent_ledger",
    "DROP FUNCTION consentgate_rollups()",
    """
    CREATE FUNCTION consentgate_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO consent_latest AS l (consent_id, last_at, granted, gpc_at)
        SELECT consent_id, recorded_at, granted, gpc_at FROM (
            SELECT DISTINCT ON (consent_id) consent_id, recorded_at, granted,
                max(recorded_at) FILTER (WHERE action = 'gpc')
                    OVER (PARTITION BY consent_id) AS gpc_at
            FROM new_rows ORDER BY consent_id, recorded_at DESC, id DESC
        ) AS latest
        ORDER BY consent_id
        -- GREATEST ignores NULLs.
        ON CONFLICT (consent_id) DO UPDATE SET
            granted = CASE WHEN excluded.last_at >= l.last_at THEN excluded.granted
                ELSE l.granted END,
            last_at = GREATEST(l.last_at, excluded.last_at),
            gpc_at = GREATEST(l.gpc_at, excluded.gpc_at);
        INSERT INTO consent_daily AS d (day, action, method, shard, decisions)
        SELECT (recorded_at AT TIME ZONE 'UTC')::date, action, method,
            txid_current() % 8, count(*)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (day, action, method, shard) DO UPDATE
            SET decisions = d.decisions + excluded.decisions;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER consent_ledger_rollups AFTER INSERT ON consent_ledger
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION consentgate_rollups()
    """,
)

MIGRATIONS: dict[int, Sequence[str]] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
    5: _SCHEMA_V5,
    6: _SCHEMA_V6,
}
