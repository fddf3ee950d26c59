//! The store interface: what the control plane's use cases need of their
//! state (accounts, the whitelist and blocklist, identities and keys,
//! requests and links, the mail outbox, users, sessions and tokens, the
//! security log), grouped by use case, one trait per group. Every change is
//! durable before its method returns, with its security-log record in the
//! same atomic step, so a caller that answers after it never answers for a
//! change a crash can lose.
//!
//! [`Store`] is the handle the rest of the control plane holds. Its
//! implementation is [`sled::SledStore`], the embedded default.

use crate::domain::model::{
    Account, BlockEntry, Identity, SecretKey, WhitelistEntry, WhitelistMode,
};
use crate::domain::tokens::ApiToken;
use crate::domain::users::User;
use crate::domain::Timestamp;
use crate::limits::refusals::Summary;
use crate::seclog::{Actor, Event, Head, SecRecord, Verification};
use async_trait::async_trait;
use ipnet::IpNet;
use std::path::Path;
use std::sync::Arc;

pub mod blocked;
pub mod disown;
pub mod dump;
pub(crate) mod events;
pub mod idempotency;
pub(crate) mod mail_job;
pub mod postgres;
pub mod quorum;
pub mod sled;
mod touched;
pub use self::sled::{
    parse_sha256, IpRequest, LinkRecord, LinkToSend, LinkView, NewRequest, Prepared, Session,
    Verdict, DEFAULT_CACHE_MB, LOCK_WAIT,
};
pub use mail_job::{MailJob, MailKind};
pub(crate) use touched::Journal;
pub use touched::{Noted, Touch};

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} cannot be opened: {source}")]
    Open { path: String, source: ::sled::Error },
    #[error("the store at {path} is in use by another process (is another ipgate running with this store.path?)")]
    Locked { path: String },
    #[error("the store failed: {0}")]
    Sled(#[from] ::sled::Error),
    #[error("the PostgreSQL store cannot be reached: {0}")]
    Unavailable(String),
    #[error("a PostgreSQL statement failed: {0}")]
    Postgres(String),
    #[error("the change lost a race with another and was not made: {0}")]
    Conflict(String),
    #[error("{0}")]
    PgConfig(String),
    #[error("the PostgreSQL store is at schema version {found}, newer than this ipgate knows ({known}): run the newer ipgate, or restore a backup (nothing was changed)")]
    SchemaTooNew { found: usize, known: usize },
    #[error("the store to copy into is not empty (it has accounts, users or log records): copy only into a new one; nothing was changed")]
    NotEmpty,
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    LogHead(#[from] crate::seclog::CorruptHead),
    #[error("the store's security log is keyed with log key `{stored}`, not with the configured key `{configured}`: start with the key this store was written with (nothing was changed)")]
    LogKeyMismatch { stored: String, configured: String },
    #[error("account `{0}` does not exist")]
    NoAccount(String),
    #[error("account `{0}` already exists")]
    AccountExists(String),
    #[error("`{id}` is already {owner} (ids and identities are compared ignoring case)")]
    IdTaken { id: String, owner: String },
    #[error("`{value}` is already {owner} (ids and identities are compared ignoring case)")]
    NameTaken { value: String, owner: String },
    #[error("identity `{0}` does not exist")]
    NoIdentity(String),
    #[error("key `{0}` does not exist")]
    NoKey(String),
    #[error("this key ({fingerprint}) is already registered to account `{account}`")]
    KeyTaken {
        fingerprint: String,
        account: String,
    },
    #[error("entry `{0}` does not exist")]
    NoEntry(String),
    #[error("{0} is already on this list")]
    Duplicate(String),
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("user `{0}` does not exist")]
    NoUser(String),
    #[error("token `{0}` does not exist")]
    NoToken(String),
    #[error("this account already has a pending request")]
    PendingExists,
    #[error("this Idempotency-Key was already used for a request in the last 24 hours")]
    KeyUsed,
    #[error("request `{0}` does not exist")]
    NoRequest(String),
    #[error("this code was already used; wait for the next one")]
    CodeUsed,
    #[error("this link is not valid")]
    NoLink,
    #[error("the address this link was sent to is no longer one of the account's")]
    LinkAddressRemoved,
    #[error("this address already approved request `{id}` ({have} of {need} approvals): it goes live once another account address approves")]
    AlreadyApproved { id: String, have: usize, need: u8 },
    #[error("self-service requests are frozen for this account: contact us")]
    Frozen,
    #[error("{0} already reported this approval as not theirs")]
    AlreadyDisowned(String),
    #[error("request `{id}` is {status:?}, not pending")]
    NotPending {
        id: String,
        status: crate::domain::flow::Status,
    },
}

/// Accounts: their ids, names, emails and whitelist mode.
#[async_trait]
pub trait AccountStore {
    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError>;
    async fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Creates an account; refuses an id that an account or identity
    /// already holds, ASCII case ignored.
    async fn create_account(&self, account: Account, actor: &Actor) -> Result<Account, StoreError>;
    /// Replaces an existing account with `f(old)`.
    async fn update_account(
        &self,
        id: &str,
        actor: &Actor,
        f: &(dyn Fn(Account) -> Account + Send + Sync),
    ) -> Result<Account, StoreError>;
}

/// The security log (`crate::seclog`): one hash chain.
#[async_trait]
pub trait LogStore {
    /// Appends records that go with no other change (a link opened, a
    /// refused login), in one atomic step.
    async fn record_all(&self, records: &[(Actor, Event<'_>)]) -> Result<(), StoreError>;
    /// Appends one such record.
    async fn record(&self, actor: &Actor, event: &Event<'_>) -> Result<(), StoreError> {
        self.record_all(&[(actor.clone(), event.clone())]).await
    }
    /// Records, oldest first, optionally only one account's.
    async fn security_log(&self, account: Option<&str>) -> Result<Vec<SecRecord>, StoreError>;
    /// The chain's head as stored: the newest record's seq (the number of
    /// records, as they count from 1) and hash; `GENESIS` at seq 0 for an
    /// empty log. Read without walking the chain.
    async fn security_log_head(&self) -> Result<Head, StoreError>;
    /// Walks the chain, keyed records with the log key.
    async fn verify_security_log(&self) -> Result<Verification, StoreError>;
    /// The id of the key the security log is keyed with.
    fn log_key_id(&self) -> &str;
}

/// Server secrets, the table's generation and what changes touched.
#[async_trait]
pub trait MetaStore {
    /// A 32-byte server secret (for CSRF values), made on first use.
    async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError>;
    /// The next table generation, durable before it is returned.
    async fn next_generation(&self) -> Result<u64, StoreError>;
    /// What the changes committed since the last call touched of the
    /// proxy's table, each once, in order (with, for a shared store, the
    /// changes other control planes made, and the version they reach).
    fn take_touched(&self) -> Noted;
    /// Puts back touches taken but not republished (the store failed
    /// while the publisher read it), so the next republish has them.
    fn untake_touched(&self, touches: Vec<Touch>);
    /// Waits until other control planes sharing the store have changed
    /// the table, and notes what they touched; true when anything was
    /// noted. A store of one control plane never returns.
    async fn watch_changes(&self) -> Result<bool, StoreError>;
}

/// Whitelist entries, and the table's view of every account.
#[async_trait]
pub trait EntryStore {
    /// One account's entries, oldest first.
    async fn entries(&self, account: &str) -> Result<Vec<WhitelistEntry>, StoreError>;
    async fn add_entries(
        &self,
        account: &str,
        new: Vec<WhitelistEntry>,
        actor: &Actor,
    ) -> Result<Vec<WhitelistEntry>, StoreError>;
    async fn remove_entry(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<WhitelistEntry, StoreError>;
    /// Every account's mode and networks, for building the proxy's table.
    async fn for_each_account_policy(
        &self,
        f: &mut (dyn for<'a> FnMut(AccountNets<'a>) + Send),
    ) -> Result<(), StoreError>;
    /// The time-bound entries ending at or before `until`, soonest first.
    async fn entries_ending_by(&self, until: Timestamp) -> Result<Vec<WhitelistEntry>, StoreError>;
    /// Removes entry `id` of `account` if it has ended by `now`, with a
    /// `whitelist.expired` record; `None` when it is gone or has not ended
    /// (so two control planes racing expire it once).
    async fn expire_entry(
        &self,
        account: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<WhitelistEntry>, StoreError>;
    /// Marks entry `id` of `account` reminded up to `stage` (1 for the
    /// first of `control.expiry_reminders`) and, with `mail`, queues a
    /// reminder for each of the account's emails, with a
    /// `whitelist.expiry_reminder` record; false (nothing changed) when
    /// the entry is gone or already reminded that far.
    async fn remind_entry(
        &self,
        account: &str,
        id: &str,
        stage: u8,
        mail: bool,
    ) -> Result<bool, StoreError>;
}

/// One account as the proxy's table needs it: id, mode, networks, and
/// those of the networks that end, each with its time (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct AccountNets<'a> {
    pub id: &'a str,
    pub mode: WhitelistMode,
    pub nets: &'a [IpNet],
    pub ending: &'a [(IpNet, u64)],
}

/// The blocklist.
#[async_trait]
pub trait BlockStore {
    async fn blocklist(&self) -> Result<Vec<BlockEntry>, StoreError>;
    async fn add_block(&self, entry: BlockEntry, actor: &Actor) -> Result<BlockEntry, StoreError>;
    async fn remove_block(&self, id: &str, actor: &Actor) -> Result<BlockEntry, StoreError>;
}

/// The identities and key hashes that name accounts to the proxy.
#[async_trait]
pub trait IdentityStore {
    async fn identities(&self, account: &str) -> Result<Vec<Identity>, StoreError>;
    async fn all_identities(&self) -> Result<Vec<Identity>, StoreError>;
    async fn identity(&self, account: &str, id: &str) -> Result<Option<Identity>, StoreError>;
    /// The account an identity value names, ASCII case ignored.
    async fn identity_owner(&self, value: &str) -> Result<Option<String>, StoreError>;
    async fn keys(&self, account: &str) -> Result<Vec<SecretKey>, StoreError>;
    async fn all_keys(&self) -> Result<Vec<SecretKey>, StoreError>;
    async fn key(&self, account: &str, id: &str) -> Result<Option<SecretKey>, StoreError>;
    async fn key_owner(&self, sha256: &[u8; 32]) -> Result<Option<String>, StoreError>;
    async fn add_identity(&self, identity: Identity, actor: &Actor)
        -> Result<Identity, StoreError>;
    async fn remove_identity(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<Identity, StoreError>;
    async fn add_key(
        &self,
        key: SecretKey,
        hash: [u8; 32],
        actor: &Actor,
    ) -> Result<SecretKey, StoreError>;
    async fn remove_key(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<SecretKey, StoreError>;
}

/// Self-service requests and their emailed links.
#[async_trait]
pub trait RequestStore: LogStore + Sync {
    /// Saves a new pending request with one link mail per account email.
    /// Refuses when one is already pending.
    async fn create_request(&self, new: NewRequest, actor: &Actor)
        -> Result<IpRequest, StoreError>;
    /// One account's requests, newest first, statuses as of now.
    async fn requests(&self, account: &str) -> Result<Vec<IpRequest>, StoreError>;
    async fn request(&self, account: &str, id: &str) -> Result<IpRequest, StoreError>;
    /// Cancels a pending request; its links stop working at once.
    async fn cancel_request(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError>;
    /// Marks every pending request past its expiry as expired; how many.
    async fn expire_due(&self) -> Result<usize, StoreError>;
    /// A link (by its token's hash) and its request.
    async fn link(&self, hash: &str) -> Result<Option<LinkView>, StoreError>;
    /// Decides a pending request from one of its links, in one atomic
    /// step: of two racing decisions exactly one wins.
    async fn decide(
        &self,
        hash: &str,
        verdict: Verdict,
        actor_ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError>;
    /// Records that a link page was opened (the only thing a GET changes).
    async fn link_opened(
        &self,
        view: &LinkView,
        result: &str,
        ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(), StoreError> {
        let actor = Actor {
            who: view.link.email.clone(),
            ip: Some(ip),
        };
        self.record(&actor, &events::link_opened(view, result, user_agent))
            .await
    }
}

/// "This wasn't me" links (`store::disown`).
#[async_trait]
pub trait DisownStore {
    /// A "this wasn't me" link (by its token's hash) and its request;
    /// `None` when unknown or used.
    async fn disown_link(&self, hash: &str) -> Result<Option<(LinkRecord, IpRequest)>, StoreError>;
    /// Uses the link, in one atomic step: removes the entries its
    /// request's approval added that are still there (or cancels the
    /// request, when still pending), freezes the account's self-service
    /// requests, records it and queues a notice to every account email.
    /// Returns the request and the entries removed.
    async fn disown(
        &self,
        hash: &str,
        ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError>;
}

/// The `Idempotency-Key`s of submissions (`idempotency`), per account:
/// each is saved by `create_request`, with its request.
#[async_trait]
pub trait IdempotencyStore {
    /// The record of key `hash` of `account`, if it is still live.
    async fn idempotency_key(
        &self,
        account: &str,
        hash: &str,
    ) -> Result<Option<idempotency::KeyRecord>, StoreError>;
    /// Removes the records past their 24 hours; how many.
    async fn sweep_idempotency_keys(&self) -> Result<usize, StoreError>;
}

/// The durable mail outbox.
#[async_trait]
pub trait OutboxStore {
    /// How many mails are queued.
    async fn outbox_depth(&self) -> Result<usize, StoreError>;
    /// Readies a due job for sending (a link mail gets a fresh token).
    async fn prepare_mail(&self, id: u64) -> Result<Prepared, StoreError>;
    async fn mail_sent(&self, job: &MailJob) -> Result<(), StoreError>;
    async fn mail_dropped(&self, job: &MailJob, reason: &str) -> Result<(), StoreError>;
    async fn mail_failed(&self, job: &MailJob, error: &str) -> Result<MailJob, StoreError>;
    /// The ids of the jobs due now.
    async fn due_mail(&self) -> Result<Vec<u64>, StoreError>;
}

/// Portal users.
#[async_trait]
pub trait UserStore {
    async fn user(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn create_user(&self, user: User, actor: &Actor) -> Result<User, StoreError>;
    async fn update_user(
        &self,
        username: &str,
        actor: &Actor,
        event: &str,
        details: serde_json::Value,
        f: &(dyn Fn(User) -> User + Send + Sync),
    ) -> Result<User, StoreError>;
}

/// Portal sessions and logins.
#[async_trait]
pub trait SessionStore: LogStore + Sync {
    async fn login(
        &self,
        user: &User,
        step: Option<u64>,
        session_hash: &str,
        session: &Session,
        actor: &Actor,
    ) -> Result<(), StoreError>;
    /// Records a refused login (no secrets: the reason only).
    async fn login_failed(
        &self,
        username: &str,
        account: Option<&str>,
        reason: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.record(actor, &events::login_failed(username, account, reason))
            .await
    }
    /// Records the refused logins that were counted instead of recorded
    /// one by one (see `refusals`): one `login.failed_summary` each, in
    /// one atomic step.
    async fn login_failed_summaries(&self, summaries: &[Summary]) -> Result<(), StoreError> {
        if summaries.is_empty() {
            return Ok(());
        }
        let records: Vec<(Actor, Event<'_>)> =
            summaries.iter().map(events::login_failed_summary).collect();
        self.record_all(&records).await
    }
    async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError>;
    async fn end_session(&self, hash: &str, actor: &Actor) -> Result<(), StoreError>;
    /// Removes expired sessions; how many.
    async fn sweep_sessions(&self) -> Result<usize, StoreError>;
}

/// Customer API tokens.
#[async_trait]
pub trait TokenStore {
    async fn issue_token(
        &self,
        token: ApiToken,
        token_hash: &str,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
    async fn token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;
    async fn tokens_of(&self, username: &str) -> Result<Vec<ApiToken>, StoreError>;
    async fn revoke_token(
        &self,
        username: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
}

/// Blocked calls the proxies report, per (account, address)
/// ([`blocked`]). Not in the security log: they are counts, not changes.
#[async_trait]
pub trait BlockedCallStore {
    /// Merges reported calls into what is kept.
    async fn add_blocked_calls(&self, reports: &[blocked::BlockedReport])
        -> Result<(), StoreError>;
    /// An account's addresses last seen at `since` or later, most calls
    /// first, at most `limit`.
    async fn blocked_calls(
        &self,
        account: &str,
        since: u64,
        limit: usize,
    ) -> Result<Vec<blocked::BlockedCall>, StoreError>;
    /// Forgets addresses last seen before `before`; how many.
    async fn sweep_blocked_calls(&self, before: u64) -> Result<usize, StoreError>;
}

/// Every use case's store: what a backend implements.
pub trait Backend:
    AccountStore
    + LogStore
    + MetaStore
    + EntryStore
    + BlockStore
    + IdentityStore
    + RequestStore
    + DisownStore
    + IdempotencyStore
    + OutboxStore
    + UserStore
    + SessionStore
    + TokenStore
    + BlockedCallStore
    + Send
    + Sync
{
}

impl<T> Backend for T where
    T: AccountStore
        + LogStore
        + MetaStore
        + EntryStore
        + BlockStore
        + IdentityStore
        + RequestStore
        + DisownStore
        + IdempotencyStore
        + OutboxStore
        + UserStore
        + SessionStore
        + TokenStore
        + BlockedCallStore
        + Send
        + Sync
{
}

/// The store handle: cheap to clone, one backend behind it; its methods
/// are the traits above.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// Opens (or creates) the sled store at `path` (see [`SledStore::open`]).
    pub fn open(path: &Path, log_key: crate::seclog::LogKey) -> Result<Store, StoreError> {
        Ok(Store::from(sled::SledStore::open(path, log_key)?))
    }

    /// [`Store::open`] with sled's page cache bounded to `cache_mb` MiB.
    pub fn open_with_cache(
        path: &Path,
        cache_mb: u64,
        log_key: crate::seclog::LogKey,
    ) -> Result<Store, StoreError> {
        Ok(Store::from(sled::SledStore::open_with_cache(
            path, cache_mb, log_key,
        )?))
    }
}

impl Store {
    /// Opens the PostgreSQL store `options` name (see [`PgStore::open`]).
    pub async fn open_postgres(
        options: &postgres::PgOptions,
        log_key: crate::seclog::LogKey,
    ) -> Result<Store, StoreError> {
        Ok(Store::from(
            postgres::PgStore::open(options, log_key).await?,
        ))
    }
}

impl<B: Backend + 'static> From<B> for Store {
    fn from(backend: B) -> Store {
        Store(Arc::new(backend))
    }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
pub(crate) mod tests;
