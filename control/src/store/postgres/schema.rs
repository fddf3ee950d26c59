//! The PostgreSQL schema, as numbered migrations embedded in the binary.
//! Every start runs the missing ones, in order, each in its own
//! transaction, under an advisory lock so that control planes starting
//! together do not race (the second waits, then finds nothing to do).
//!
//! Tables hold each record whole as `doc` (the same JSON the sled store
//! keeps, so a store copies between backends unchanged) beside the columns
//! the queries look up, lock or constrain by. The security log keeps each
//! record's exact text: its hash covers those bytes.

use super::{pg_error, StoreError};

/// The advisory lock key the migrations run under ("ipgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x6970_6761_7465;

/// The migrations, in order; a store at version `n` has run the first `n`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE ipgate_meta (
    key text PRIMARY KEY,
    value bytea NOT NULL
);
CREATE SEQUENCE ipgate_ids;
CREATE SEQUENCE ipgate_table_generation;

CREATE TABLE ipgate_seclog_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO ipgate_seclog_head (seq, hash)
    VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE ipgate_seclog (
    seq bigint PRIMARY KEY,
    account text,
    record text NOT NULL
);
CREATE INDEX ipgate_seclog_account ON ipgate_seclog (account, seq);

CREATE TABLE ipgate_accounts (
    id text PRIMARY KEY,
    doc jsonb NOT NULL
);
-- Every account id and identity value, in lower case, and who holds it.
CREATE TABLE ipgate_names (
    folded text PRIMARY KEY,
    account text NOT NULL,
    identity text
);
CREATE TABLE ipgate_entries (
    id bigint PRIMARY KEY,
    account text NOT NULL,
    cidr text NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX ipgate_entries_account ON ipgate_entries (account, id);
CREATE TABLE ipgate_blocklist (
    id bigint PRIMARY KEY,
    cidr text NOT NULL,
    doc jsonb NOT NULL
);
CREATE TABLE ipgate_identities (
    account text NOT NULL,
    id bigint NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE TABLE ipgate_keys (
    account text NOT NULL,
    id bigint NOT NULL,
    sha256 bytea NOT NULL UNIQUE,
    doc jsonb NOT NULL,
    PRIMARY KEY (account, id)
);

CREATE TABLE ipgate_users (
    username text PRIMARY KEY,
    doc jsonb NOT NULL
);
CREATE TABLE ipgate_tokens (
    hash text PRIMARY KEY,
    username text NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX ipgate_tokens_username ON ipgate_tokens (username);
CREATE TABLE ipgate_sessions (
    hash text PRIMARY KEY,
    expires_unix bigint NOT NULL,
    doc jsonb NOT NULL
);

CREATE TABLE ipgate_requests (
    id bigint PRIMARY KEY,
    account text NOT NULL,
    status text NOT NULL,
    expires_unix bigint NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX ipgate_requests_account ON ipgate_requests (account, id);
-- At most one pending request per account.
CREATE UNIQUE INDEX ipgate_requests_one_pending ON ipgate_requests (account)
    WHERE status = 'pending';
CREATE TABLE ipgate_links (
    hash text PRIMARY KEY,
    request bigint NOT NULL,
    doc jsonb NOT NULL
);
CREATE TABLE ipgate_outbox (
    id bigint PRIMARY KEY,
    due_unix bigint NOT NULL,
    lease_until_unix bigint NOT NULL DEFAULT 0,
    doc jsonb NOT NULL
);
CREATE INDEX ipgate_outbox_due ON ipgate_outbox (due_unix, id);
"#,
    r#"
-- What each change touched of the proxy's table, at its last security-log
-- record's place: how every control plane learns what the others changed.
CREATE TABLE ipgate_changes (
    seq bigint PRIMARY KEY,
    touches jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
"#,
    r#"
-- Who leased a mail: a control plane's mark, alive while that plane holds
-- the advisory lock (outbox holders, mark).
ALTER TABLE ipgate_outbox ADD COLUMN lease_holder integer NOT NULL DEFAULT 0;
"#,
    r#"
-- When a time-bound entry ends (Unix seconds); NULL for one that stays.
ALTER TABLE ipgate_entries ADD COLUMN expires_unix bigint;
CREATE INDEX ipgate_entries_ending ON ipgate_entries (expires_unix)
    WHERE expires_unix IS NOT NULL;
"#,
    r#"
-- Submissions' Idempotency-Keys (their SHA-256), per account, each with
-- the request it answers for 24 hours from created_unix; swept after.
CREATE TABLE ipgate_idempotency (
    account text NOT NULL,
    key_hash text NOT NULL,
    created_unix bigint NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (account, key_hash)
);
CREATE INDEX ipgate_idempotency_created ON ipgate_idempotency (created_unix);
"#,
    r#"
-- Denied calls the proxies report, per (account, address); kept 7 days
-- after the last one (times in Unix seconds).
CREATE TABLE ipgate_blocked_calls (
    account text NOT NULL,
    address text NOT NULL,
    calls bigint NOT NULL,
    first_seen bigint NOT NULL,
    last_seen bigint NOT NULL,
    route text NOT NULL,
    PRIMARY KEY (account, address)
);
CREATE INDEX ipgate_blocked_calls_last_seen ON ipgate_blocked_calls (last_seen);
"#,
];

/// Runs the missing migrations under the advisory lock; the version the
/// store is at afterwards. A store from a newer ipgate (more migrations
/// than this binary has) is refused unchanged.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<usize, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    let result = run_missing(client).await;
    // The lock also ends with the session; an unlock that fails is
    // harmless beside the result.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn run_missing(client: &mut tokio_postgres::Client) -> Result<usize, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ipgate_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM ipgate_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let at: i32 = row.try_get(0).map_err(pg_error)?;
    let at = usize::try_from(at).unwrap_or(0);
    if at > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: at,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(at) {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO ipgate_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        tracing::info!(version, "store schema migrated");
    }
    Ok(MIGRATIONS.len())
}
