//! The PostgreSQL store (`store.url`): the same use cases as the sled
//! store, for control planes that share one database. Several `ipgate
//! control` processes may run on it at once.
//!
//! Every change is one transaction that first takes the security log's
//! head row (`SELECT ... FOR UPDATE`): the log stays one chain, changes
//! are serialised across every process in the order their records take,
//! and two decisions of one request racing on two processes cannot both
//! win (the second finds the request decided). A transaction that fails
//! with a serialisation failure or a deadlock is run again; one whose
//! commit may or may not have happened (the connection died) is not, and
//! answers with [`StoreError::Unavailable`].

use super::{Journal, StoreError, Touch};
use crate::seclog::{self, Actor, Event, Head, LogKey};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;

mod accounts;
mod blocked_calls;
mod blocklist;
mod changes;
mod disown;
mod entries;
mod export;
mod idempotency;
mod identities;
mod import;
mod log;
mod outbox;
mod requests;
mod schema;
mod sessions;
mod tokens;
mod users;

/// Where the database is and how to reach it.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user@host:port/db` (no password in it: see `password`).
    pub url: String,
    /// From `IPGATE_STORE_PASSWORD` or `store.password_file`.
    pub password: Option<String>,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// Bounds connecting, waiting for a free connection, and each statement.
    pub timeout: Duration,
}

impl PgOptions {
    /// The URL parsed, refusing one that carries a password (it would show
    /// wherever the URL does).
    pub fn parsed_url(&self) -> Result<tokio_postgres::Config, StoreError> {
        let config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError::PgConfig(format!("store.url is not a PostgreSQL URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(StoreError::PgConfig(
                "store.url carries a password: give it in IPGATE_STORE_PASSWORD or store.password_file instead (it would show wherever the URL does)".into(),
            ));
        }
        Ok(config)
    }

    pub fn new(url: &str, password: Option<String>) -> PgOptions {
        PgOptions {
            url: url.to_string(),
            password,
            pool_size: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

/// How often a transaction that lost a serialisation race is run again.
const RETRIES: u32 = 8;

/// The opened PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    log_key: Arc<LogKey>,
    journal: Journal,
    /// To open the connection that listens for other control planes'
    /// changes.
    config: tokio_postgres::Config,
    listener: Arc<tokio::sync::Mutex<Option<changes::Listener>>>,
    /// This store's mark on the mail it leases; alive while its listening
    /// connection holds the advisory lock of the same number.
    holder: i32,
}

/// A failed statement as a store error: the server unreachable (or the
/// connection lost) is [`StoreError::Unavailable`], a lost serialisation
/// race [`StoreError::Conflict`], anything else [`StoreError::Postgres`].
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let why = describe(&e);
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Conflict(why)
        }
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::QUERY_CANCELED
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreError::Unavailable(why)
        }
        Some(_) => StoreError::Postgres(why),
        None => StoreError::Unavailable(why),
    }
}

/// The server's own words for a failure (its message, code and detail),
/// or the client's with its causes.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            out.push_str(": ");
            out.push_str(d);
        }
        return out;
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A record as its `doc` column holds it.
pub(crate) fn doc<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Reads column `i` of `row` as a record.
pub(crate) fn read<T: DeserializeOwned>(
    row: &tokio_postgres::Row,
    i: usize,
) -> Result<T, StoreError> {
    let v: serde_json::Value = row.try_get(i).map_err(pg_error)?;
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An id made by the store as the sled store makes them (from 1, as text
/// in records).
pub(crate) fn as_id(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A stored id parsed from a caller's text; `None` for anything that
/// cannot be one (it names nothing).
pub(crate) fn parse_id(id: &str) -> Option<i64> {
    id.parse::<u64>().ok().and_then(|n| i64::try_from(n).ok())
}

impl PgStore {
    /// Connects, runs the schema's migrations and checks the security
    /// log's key: a store whose log is keyed with another key is refused
    /// ([`StoreError::LogKeyMismatch`]).
    pub async fn open(options: &PgOptions, log_key: LogKey) -> Result<PgStore, StoreError> {
        let mut config = options.parsed_url()?;
        if let Some(p) = &options.password {
            config.password(p.as_bytes());
        }
        config
            .application_name("ipgate")
            .connect_timeout(options.timeout)
            .keepalives_idle(Duration::from_secs(30))
            .options(format!(
                "-c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}",
                ms = options.timeout.as_millis()
            ));
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| StoreError::PgConfig(e.to_string()))?;
        let mut store = PgStore {
            pool,
            log_key: Arc::new(log_key),
            journal: Journal::default(),
            config,
            listener: Arc::default(),
            holder: rand::random::<i32>() & i32::MAX,
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        drop(client);
        store.check_log_key().await?;
        // The table about to be loaded holds at least every change so far.
        store.journal = Journal::shared(store.newest_change().await?);
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `body` (one change: [`Change`] begun, written, committed) again
    /// while it loses serialisation races, up to [`RETRIES`] times.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut body: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut tries = 0;
        loop {
            match body().await {
                Err(StoreError::Conflict(why)) if tries < RETRIES => {
                    tries += 1;
                    tracing::debug!(tries, %why, "store transaction lost a race; running it again");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                }
                other => return other,
            }
        }
    }

    /// Runs `job` unless another control plane runs the job `key` now
    /// (`pg_try_advisory_lock`, held on one connection while it runs);
    /// `None` when another does.
    pub(crate) async fn alone<T, F, Fut>(&self, key: i64, job: F) -> Result<Option<T>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let holder = self.client().await?;
        let row = holder
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(pg_error)?;
        if !row.try_get::<_, bool>(0).map_err(pg_error)? {
            return Ok(None);
        }
        let out = job().await;
        // Released with the session if this fails.
        let _ = holder
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await;
        out.map(Some)
    }

    /// Begins a change on `client`: a transaction holding the security
    /// log's head row.
    pub(crate) async fn begin<'c>(&self, client: &'c mut Object) -> Result<Change<'c>, StoreError> {
        let tx = client.transaction().await.map_err(pg_error)?;
        let row = tx
            .query_opt("SELECT seq, hash FROM ipgate_seclog_head FOR UPDATE", &[])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| seclog::CorruptHead("the head row is missing".into()))?;
        let seq: i64 = row.try_get(0).map_err(pg_error)?;
        let hash: String = row.try_get(1).map_err(pg_error)?;
        let head = Head {
            seq: u64::try_from(seq)
                .map_err(|_| seclog::CorruptHead(format!("the head names record {seq}")))?,
            hash,
        };
        Ok(Change {
            tx,
            head,
            moved: false,
            key: self.log_key.clone(),
            touches: Vec::new(),
            journal: self.journal.clone(),
        })
    }

    /// Whether any row of any `ipgate_*` table holds `needle` in its text
    /// (byte strings as their hex, as PostgreSQL writes them).
    #[cfg(test)]
    pub(crate) async fn holds_text(&self, needle: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let tables = c
            .query(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'ipgate\\_%'",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let hex = crate::hex::encode(needle.as_bytes());
        for t in &tables {
            let table: String = t.try_get(0).map_err(pg_error)?;
            let row = c
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {table} t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0)"
                    ),
                    &[&needle, &hex],
                )
                .await
                .map_err(pg_error)?;
            if row.try_get(0).map_err(pg_error)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A fresh id for a record (entries, requests, mails...).
    pub(crate) async fn next_id(tx: &Change<'_>) -> Result<u64, StoreError> {
        let row = tx
            .tx
            .query_one("SELECT nextval('ipgate_ids')", &[])
            .await
            .map_err(pg_error)?;
        Ok(as_id(row.try_get(0).map_err(pg_error)?))
    }
}

/// One change under way: its transaction, the log's head as it moves,
/// and what it touches of the proxy's table.
pub(crate) struct Change<'c> {
    pub tx: deadpool_postgres::Transaction<'c>,
    head: Head,
    moved: bool,
    key: Arc<LogKey>,
    touches: Vec<Touch>,
    journal: Journal,
}

impl Change<'_> {
    /// Appends one security-log record to the change.
    pub async fn log(&mut self, actor: &Actor, event: &Event<'_>) -> Result<(), StoreError> {
        let rec = seclog::next_record(&self.head, &self.key, actor, event);
        let text = serde_json::to_string(&rec).unwrap_or_default();
        let seq = i64::try_from(rec.seq)
            .map_err(|_| StoreError::Corrupt("the security log is full".into()))?;
        self.tx
            .execute(
                "INSERT INTO ipgate_seclog (seq, account, record) VALUES ($1, $2, $3)",
                &[&seq, &rec.account, &text],
            )
            .await
            .map_err(pg_error)?;
        self.head = Head {
            seq: rec.seq,
            hash: rec.hash,
        };
        self.moved = true;
        Ok(())
    }

    /// Notes that the change alters `touch` of the proxy's table.
    pub fn touch(&mut self, touch: Touch) {
        if !self.touches.contains(&touch) {
            self.touches.push(touch);
        }
    }

    /// Moves the head and commits. A change that touches the table is
    /// recorded in the change feed at its last record's place (and
    /// announced to the other control planes); the changes others made
    /// before it are read first, so once it is noted here the journal
    /// holds every change up to it. A commit the connection died under
    /// may have happened: that is [`StoreError::Unavailable`], never
    /// retried.
    pub async fn commit(self) -> Result<(), StoreError> {
        let mut noted = Vec::new();
        let touched = !self.touches.is_empty() && self.moved;
        if touched {
            noted = changes::since(&*self.tx, self.journal.version()).await?.1;
            changes::record(&*self.tx, self.head.seq, &self.touches).await?;
        }
        if self.moved {
            let seq = i64::try_from(self.head.seq).unwrap_or(i64::MAX);
            self.tx
                .execute(
                    "UPDATE ipgate_seclog_head SET seq = $1, hash = $2",
                    &[&seq, &self.head.hash],
                )
                .await
                .map_err(pg_error)?;
        }
        self.tx.commit().await.map_err(|e| match pg_error(e) {
            StoreError::Conflict(why) => StoreError::Conflict(why),
            other => StoreError::Unavailable(format!(
                "the commit's outcome is unknown ({other}); check before repeating the change"
            )),
        })?;
        if touched {
            noted.extend(self.touches);
            self.journal.note_up_to(noted, self.head.seq);
        } else {
            for t in self.touches {
                self.journal.note(t);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
