//! The sled store, the embedded default: typed methods over its trees.
//! Every change is one multi-tree transaction, flushed to disk before the
//! method returns, so a caller that answers after it never answers for a
//! change a crash can lose.

use super::{AccountStore, Journal, LogStore, MetaStore, StoreError, Touch};
use crate::domain::model::Account;
use crate::seclog::{self, Actor, Event, LogKey, SecRecord, Verification};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, Tree};
use std::path::Path;
use std::sync::Arc;

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(crate) fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

pub(crate) fn flatten<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs to JSON cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn entry_key(account: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(account.len() + 9);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn account_prefix(account: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k
}

/// sled's page cache unless `store.cache_mb` says otherwise (sled's own
/// default is 1 GiB).
pub const DEFAULT_CACHE_MB: u64 = 64;

/// How long [`SledStore::open`] waits for another holder to let go of the lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// sled reports a held lock as an `Other` I/O error with this wording.
fn is_lock_refusal(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// The opened store.
#[derive(Clone)]
pub struct SledStore {
    db: Db,
    accounts: Tree,
    entries: Tree,
    nets: Tree,
    /// Time-bound entries by end time (`ending`).
    ending: Tree,
    blocklist: Tree,
    seclog: Tree,
    users: Tree,
    tokens: Tree,
    requests: Tree,
    links: Tree,
    pending: Tree,
    outbox: Tree,
    meta: Tree,
    sessions: Tree,
    identities: Tree,
    keys: Tree,
    names: Tree,
    key_hashes: Tree,
    /// Blocked calls by `account \0 address`.
    blocked_calls: Tree,
    /// Keys the security log's chain; kept outside the store.
    log_key: Arc<LogKey>,
    /// What committed changes touched of the proxy's table, until the
    /// publisher takes it.
    journal: Journal,
}

impl SledStore {
    /// Opens (or creates) the store at `path`, its security log keyed with
    /// `log_key` (a store whose log is keyed with another key is refused:
    /// [`StoreError::LogKeyMismatch`]).
    ///
    /// sled locks its file for one process. A store dropped a moment ago in
    /// this process can still hold that lock while sled's background writers
    /// finish, so a lock refusal is retried for up to [`LOCK_WAIT`] before
    /// it is reported as [`StoreError::Locked`].
    pub fn open(path: &Path, log_key: LogKey) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(path, DEFAULT_CACHE_MB, log_key)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_mb` MiB
    /// (`store.cache_mb`).
    pub fn open_with_cache(
        path: &Path,
        cache_mb: u64,
        log_key: LogKey,
    ) -> Result<SledStore, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024));
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if is_lock_refusal(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.display().to_string(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        };
        let store = SledStore {
            accounts: db.open_tree("accounts")?,
            entries: db.open_tree("entries")?,
            nets: db.open_tree("nets")?,
            ending: db.open_tree("ending")?,
            blocklist: db.open_tree("blocklist")?,
            seclog: db.open_tree("seclog")?,
            users: db.open_tree("users")?,
            tokens: db.open_tree("tokens")?,
            requests: db.open_tree("requests")?,
            links: db.open_tree("links")?,
            pending: db.open_tree("pending")?,
            outbox: db.open_tree("outbox")?,
            meta: db.open_tree("meta")?,
            sessions: db.open_tree("sessions")?,
            identities: db.open_tree("identities")?,
            keys: db.open_tree("keys")?,
            names: db.open_tree("names")?,
            key_hashes: db.open_tree("key_hashes")?,
            blocked_calls: db.open_tree("blocked_calls")?,
            log_key: Arc::new(log_key),
            journal: Journal::default(),
            db,
        };
        store.ensure_log_key()?;
        store.ensure_net_index()?;
        store.ensure_ending_index()?;
        store.ensure_name_index()?;
        store.ensure_token_records()?;
        store.settle()?;
        Ok(store)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    fn touched(&self, touch: Touch) {
        self.journal.note(touch);
    }

    pub(crate) fn read_account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.accounts.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub(crate) fn read_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts.iter().values().map(|v| decode(&v?)).collect()
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Whether any key or value of any tree holds `needle`, once every
    /// change is on disk.
    #[cfg(test)]
    pub(crate) async fn holds_bytes(&self, needle: &[u8]) -> Result<bool, StoreError> {
        self.flush().await?;
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                if [&k[..], &v[..]]
                    .iter()
                    .any(|b| b.windows(needle.len()).any(|w| w == needle))
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl MetaStore for SledStore {
    /// A 32-byte server secret (for CSRF values), made on first use.
    async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let fresh: [u8; 32] = rand::random();
        let key = format!("secret:{name}");
        let _ =
            self.meta
                .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(&fresh[..]))?;
        let stored = self.meta.get(key.as_bytes())?.unwrap_or_default();
        let mut out = [0u8; 32];
        if stored.len() != 32 {
            return Err(StoreError::Corrupt(format!("secret {name}")));
        }
        out.copy_from_slice(&stored);
        self.meta.flush()?;
        Ok(out)
    }

    /// What the changes committed since the last call touched of the
    /// proxy's table, each once, in order.
    fn take_touched(&self) -> crate::store::Noted {
        self.journal.take()
    }

    fn untake_touched(&self, touches: Vec<Touch>) {
        for t in touches {
            self.journal.note(t);
        }
    }

    async fn watch_changes(&self) -> Result<bool, StoreError> {
        std::future::pending().await
    }

    async fn next_generation(&self) -> Result<u64, StoreError> {
        self.bump_generation()
    }
}

#[async_trait]
impl AccountStore for SledStore {
    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.read_account(id)
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read_accounts()
    }

    /// Creates an account; refuses an id that an account or identity
    /// already holds, ASCII case ignored.
    async fn create_account(&self, account: Account, actor: &Actor) -> Result<Account, StoreError> {
        let key = account.id.as_str();
        let value = encode(&account);
        let event = Event {
            event: "account.created",
            account: Some(key),
            details: json!({"name": account.name, "emails": account.emails, "whitelist": account.whitelist}),
        };
        let trees = (&self.accounts, &self.seclog, &self.nets, &self.names);
        flatten(trees.transaction(
            |(tx, log, nets, names): &(
                TransactionalTree,
                TransactionalTree,
                TransactionalTree,
                TransactionalTree,
            )| {
                if tx.get(key.as_bytes())?.is_some() {
                    return abort(StoreError::AccountExists(key.to_string()));
                }
                identities::claim_account_id(names, key)?;
                tx.insert(key.as_bytes(), value.as_slice())?;
                netindex::create(nets, key, account.whitelist)?;
                seclog::append(log, &self.log_key, actor, &event)?;
                Ok(())
            },
        ))?;
        self.flush().await?;
        self.touched(Touch::Account(key.to_string()));
        Ok(account)
    }

    /// Replaces an existing account with `f(old)`.
    async fn update_account(
        &self,
        id: &str,
        actor: &Actor,
        f: &(dyn Fn(Account) -> Account + Send + Sync),
    ) -> Result<Account, StoreError> {
        let updated = flatten((&self.accounts, &self.seclog, &self.nets).transaction(
            |(tx, log, nets): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                let Some(old) = tx.get(id.as_bytes())? else {
                    return abort(StoreError::NoAccount(id.to_string()));
                };
                let old: Account = match decode(&old) {
                    Ok(a) => a,
                    Err(e) => return abort(e),
                };
                let new = f(old.clone());
                tx.insert(id.as_bytes(), encode(&new))?;
                netindex::set_mode(nets, id, new.whitelist)?;
                let event = super::events::account_changed(id, &old, &new);
                seclog::append(log, &self.log_key, actor, &event)?;
                Ok(new)
            },
        ))?;
        self.flush().await?;
        self.touched(Touch::Account(id.to_string()));
        Ok(updated)
    }
}

#[async_trait]
impl LogStore for SledStore {
    /// Appends security-log records that go with no other change (a link
    /// opened, a refused login) in one transaction, flushed before
    /// returning.
    async fn record_all(&self, records: &[(Actor, Event<'_>)]) -> Result<(), StoreError> {
        flatten(self.seclog.transaction(|log: &TransactionalTree| {
            for (actor, event) in records {
                seclog::append(log, &self.log_key, actor, event)?;
            }
            Ok(())
        }))?;
        self.flush().await
    }

    /// Security-log records, oldest first.
    async fn security_log(&self, account: Option<&str>) -> Result<Vec<SecRecord>, StoreError> {
        Ok(seclog::records(&self.seclog, account)?)
    }

    /// The stored head; an unreadable one is corrupt, not a fresh chain.
    async fn security_log_head(&self) -> Result<seclog::Head, StoreError> {
        match self.seclog.get(b"head")? {
            Some(v) => decode(&v),
            None => Ok(seclog::genesis()),
        }
    }

    /// Walks the security log's hash chain, keyed records with the log key.
    async fn verify_security_log(&self) -> Result<Verification, StoreError> {
        Ok(seclog::verify(&self.seclog, &self.log_key)?)
    }

    /// The id of the key the security log is keyed with.
    fn log_key_id(&self) -> &str {
        self.log_key.id()
    }
}

mod blocked_calls;
mod blocklist;
mod disown;
mod ending;
mod entries;
mod export;
mod flow_trees;
mod generation;
mod idempotency;
mod identities;
pub use identities::parse_sha256;
mod keying;
mod mail_jobs;
mod netindex;
mod outbox;
mod requests;
mod sessions;
mod settle;
mod tokens;
mod users;
pub use outbox::{LinkToSend, Prepared};
pub use requests::{IpRequest, LinkRecord, LinkView, NewRequest, Verdict};
pub use sessions::Session;

#[cfg(test)]
mod tests;
