//! The live whitelist table: every account's mode and networks, plus the
//! global blocklist, as one immutable versioned snapshot behind `ArcSwap`.
//! Readers load the current snapshot without locks or allocation; a writer
//! builds the next snapshot and swaps it in whole, so a request sees the old
//! table or the new one, never a mix. Knows nothing of Pingora or HTTP.

mod directory;
mod ending;
mod shard;

use crate::ranges::RangeSet;
use arc_swap::{ArcSwap, Guard};
pub use directory::MAX_NAME;
use directory::{folded, Directory, NameKey, Owner};
pub use ending::Ending;
use ending::Endings;
use ipnet::IpNet;
pub use shard::AccountView;
use shard::Shard;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Accounts are spread over this many shards so that publishing one
/// account copies one small shard, not the whole map.
const SHARDS: usize = 256;

/// An account's whitelist feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Whitelisting is off: every IP is allowed.
    Off,
    /// Only whitelisted IPs are allowed.
    Enforce,
    /// Everything is allowed, but what `Enforce` would deny is counted.
    Report,
}

/// What the proxy knows of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    pub mode: Mode,
    pub allowed: RangeSet,
    /// Number of whitelist entries (before merging), for the metrics.
    pub entries: usize,
    /// The networks that end, when some do: the table keeps them beside
    /// the account and drops each at its time ([`Table::without_expired`]).
    pub ending: Option<Ending>,
}

impl AccountPolicy {
    pub fn new<'a>(mode: Mode, nets: impl IntoIterator<Item = &'a IpNet>) -> AccountPolicy {
        let nets: Vec<&IpNet> = nets.into_iter().collect();
        AccountPolicy {
            mode,
            entries: nets.len(),
            allowed: RangeSet::from_nets(nets),
            ending: None,
        }
    }

    /// An account whose networks `nets` include some that end: `ends`,
    /// each with its time (Unix seconds). What ended by `now` is left out.
    pub fn ending(mode: Mode, nets: &[IpNet], ends: &[(IpNet, u64)], now: u64) -> AccountPolicy {
        if ends.is_empty() {
            return AccountPolicy::new(mode, nets);
        }
        let (live, ending) = Ending::split(nets, ends, now);
        AccountPolicy {
            ending,
            ..AccountPolicy::new(mode, &live)
        }
    }
}

/// Why a table refuses every call instead of judging it: a proxy that
/// follows a control plane has no table yet, or holds one too old to trust
/// (`sync.max_stale`). Never an allow-all: [`crate::decide`] checks this
/// before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No table has been received or loaded yet.
    NoTable,
    /// The table's last successful sync is older than `sync.max_stale`.
    Stale,
}

/// One immutable version of the table.
#[derive(Debug, Clone)]
pub struct Table {
    version: u64,
    /// Set: every call is refused with this reason.
    refusal: Option<Refusal>,
    updated: SystemTime,
    hasher: ahash::RandomState,
    shards: Box<[Arc<Shard>]>,
    blocklist: Arc<RangeSet>,
    blocklist_entries: usize,
    accounts: usize,
    entries: usize,
    /// Aliases (folded to lower case) -> account id.
    names: Directory<NameKey>,
    /// SHA-256 of a secret key -> account id.
    keys: Directory<[u8; 32]>,
    /// The accounts with networks that end, and when the next one does.
    endings: Endings,
}

/// An account's registered alias, for [`Table::with_identities`].
pub type Identity = (String, String);
/// A key's SHA-256 and its account, for [`Table::with_identities`].
pub type KeyHash = ([u8; 32], String);

impl Table {
    /// An empty table at version 0.
    pub fn empty() -> Table {
        let shard = Arc::new(Shard::empty());
        Table {
            version: 0,
            refusal: None,
            updated: SystemTime::now(),
            shards: (0..SHARDS).map(|_| shard.clone()).collect(),
            hasher: ahash::RandomState::new(),
            blocklist: Arc::new(RangeSet::default()),
            blocklist_entries: 0,
            accounts: 0,
            entries: 0,
            names: Directory::new(),
            keys: Directory::new(),
            endings: Endings::default(),
        }
    }

    /// An empty table at version 0 that refuses every call with `why`:
    /// what a following proxy serves until its first table arrives.
    pub fn refusing(why: Refusal) -> Table {
        Table::empty().with_refusal(Some(why))
    }

    /// The same table, refusing every call with `why` (or judging again,
    /// with `None`); the version and contents are unchanged.
    pub fn with_refusal(mut self, why: Option<Refusal>) -> Table {
        self.refusal = why;
        self
    }

    /// Why this table refuses every call, if it does.
    #[inline(always)]
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
    }

    /// Builds a whole table at `version`, e.g. from the store at start.
    /// A later duplicate id replaces an earlier one.
    pub fn build(
        version: u64,
        accounts: impl IntoIterator<Item = (String, AccountPolicy)>,
        blocklist: &[IpNet],
    ) -> Table {
        let mut t = Table::empty();
        let mut all: Vec<(u64, String, AccountPolicy)> = accounts
            .into_iter()
            .map(|(id, policy)| (t.hash(&id), id, policy))
            .collect();
        // Sorted by shard, then id; the sort is stable, so of one id's
        // copies the last given is last, and `dedup_by` keeps it.
        all.sort_by(|a, b| (shard_index(a.0), &a.1).cmp(&(shard_index(b.0), &b.1)));
        all.dedup_by(|later, kept| {
            let same = later.1 == kept.1;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        let mut counts = [0usize; SHARDS];
        let mut ending = Vec::new();
        for (h, id, policy) in &mut all {
            if let Some(e) = policy.ending.take() {
                ending.push((id.clone(), e));
            }
            counts[shard_index(*h)] += 1;
            t.entries += policy.entries;
        }
        t.endings = Endings::from_accounts(ending);
        t.accounts = all.len();
        let mut rest = all.into_iter();
        t.shards = counts
            .iter()
            .map(|&n| Arc::new(Shard::from_accounts(rest.by_ref().take(n))))
            .collect();
        t.blocklist = Arc::new(RangeSet::from_nets(blocklist));
        t.blocklist_entries = blocklist.len();
        t.version = version;
        t
    }

    /// The same table with its identities and key hashes filled in (at
    /// start); the version is unchanged.
    pub fn with_identities(
        mut self,
        identities: impl IntoIterator<Item = Identity>,
        keys: impl IntoIterator<Item = KeyHash>,
    ) -> Table {
        let owner = |a: String| Owner::from_slice(a.as_bytes());
        self.names.extend(
            identities
                .into_iter()
                .map(|(n, a)| (name_key(&n), owner(a))),
        );
        self.keys
            .extend(keys.into_iter().map(|(k, a)| (k, owner(a))));
        self
    }

    /// The same table marked as made at `at` (a snapshot's time, when the
    /// table is rebuilt from one); the version is unchanged.
    pub fn made_at(mut self, at: SystemTime) -> Table {
        self.updated = at;
        self
    }

    /// Hashes an account id folded to lower case, so that lookups ignore
    /// ASCII case.
    #[inline(always)]
    fn hash(&self, account: &str) -> u64 {
        if !account.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.hasher.hash_one(account);
        }
        let mut buf = [0u8; MAX_NAME];
        match folded(account.as_bytes(), &mut buf).map(std::str::from_utf8) {
            Some(Ok(f)) => self.hasher.hash_one(f),
            _ => self.hasher.hash_one(account),
        }
    }

    /// The account with id `id` (ASCII case ignored), if ipgate knows it.
    #[inline(always)]
    pub fn account(&self, id: &str) -> Option<AccountView<'_>> {
        let h = self.hash(id);
        self.shards[shard_index(h)].get(h, id)
    }

    /// The account an identifier names: its id, or one of its registered
    /// aliases, ASCII case ignored. No allocation.
    #[inline]
    pub fn resolve_name(&self, name: &str) -> Option<AccountView<'_>> {
        if let Some(a) = self.account(name) {
            return Some(a);
        }
        if self.names.is_empty() {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        let key = folded(name.as_bytes(), &mut buf)?;
        self.account(self.names.get(key)?)
    }

    /// The account whose registered key hashes to `sha256`.
    #[inline]
    pub fn resolve_key(&self, sha256: &[u8; 32]) -> Option<AccountView<'_>> {
        self.account(self.keys.get(sha256)?)
    }

    /// The next version with alias `name` given to `account`, or removed.
    pub fn with_name(&self, name: &str, account: Option<&str>) -> Table {
        let mut next = self.clone();
        let owner = account.map(|a| Owner::from_slice(a.as_bytes()));
        next.names = self.names.with(name_key(name), owner);
        next.bump();
        next
    }

    /// The next version with the key hashing to `sha256` given to
    /// `account`, or removed.
    pub fn with_key(&self, sha256: [u8; 32], account: Option<&str>) -> Table {
        let mut next = self.clone();
        let owner = account.map(|a| Owner::from_slice(a.as_bytes()));
        next.keys = self.keys.with(sha256, owner);
        next.bump();
        next
    }

    /// Registered aliases over all accounts (account ids not counted).
    pub fn identities(&self) -> usize {
        self.names.len()
    }
    /// Registered key hashes over all accounts.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Whether `ip` is on the global blocklist.
    #[inline]
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocklist.contains(ip)
    }

    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn updated(&self) -> SystemTime {
        self.updated
    }
    pub fn accounts(&self) -> usize {
        self.accounts
    }
    /// Whitelist entries over all accounts.
    pub fn entries(&self) -> usize {
        self.entries
    }
    pub fn blocklist_entries(&self) -> usize {
        self.blocklist_entries
    }

    /// The next version with one account replaced (`Some`) or removed (`None`).
    /// Copies only that account's shard.
    pub fn with_account(&self, id: &str, mut policy: Option<AccountPolicy>) -> Table {
        let mut next = self.clone();
        let h = self.hash(id);
        let idx = shard_index(h);
        next.endings
            .set(id, policy.as_mut().and_then(|p| p.ending.take()));
        if let Some(p) = &policy {
            next.accounts += 1;
            next.entries += p.entries;
        }
        let (shard, old) = self.shards[idx].with(h, id, policy);
        if let Some(old_entries) = old {
            next.accounts -= 1;
            next.entries -= old_entries;
        }
        next.shards[idx] = Arc::new(shard);
        next.bump();
        next
    }

    /// The next version with a new blocklist.
    pub fn with_blocklist(&self, blocklist: &[IpNet]) -> Table {
        let mut next = self.clone();
        next.blocklist = Arc::new(RangeSet::from_nets(blocklist));
        next.blocklist_entries = blocklist.len();
        next.bump();
        next
    }

    /// When the next time-bound network of any account ends (Unix
    /// seconds), if any does.
    pub fn next_expiry(&self) -> Option<u64> {
        self.endings.next()
    }

    /// Time-bound networks over all accounts, not yet ended.
    pub fn expiring_entries(&self) -> usize {
        self.endings.count()
    }

    /// What of account `id` (any case) ends, if anything does.
    pub fn ending_of(&self, id: &str) -> Option<&Ending> {
        self.endings.of(id)
    }

    /// The same table without the networks that ended by `now` (Unix
    /// seconds), or `None` when none has. The version stays: this is the
    /// table its control plane sent, as it reads at `now`, and the proxy
    /// drops an ended network by itself, whether or not that control
    /// plane is reachable.
    pub fn without_expired(&self, now: u64) -> Option<Table> {
        if self.endings.next()? > now {
            return None;
        }
        let mut next = self.clone();
        for (key, ending) in self.endings.due(now) {
            let (live, rest) = ending.at(now);
            next.endings.set(&key, rest);
            let Some(view) = self.account(&key) else {
                continue;
            };
            let id = view.id().to_string();
            let policy = AccountPolicy::new(view.mode, &live);
            let h = self.hash(&id);
            let idx = shard_index(h);
            next.entries += policy.entries;
            let (shard, old) = next.shards[idx].with(h, &id, Some(policy));
            next.entries -= old.unwrap_or(0);
            next.shards[idx] = Arc::new(shard);
        }
        Some(next)
    }

    fn bump(&mut self) {
        self.version += 1;
        self.updated = SystemTime::now();
    }
}

/// How the names directory keys a name: folded to lower case.
fn name_key(name: &str) -> NameKey {
    NameKey::from_slice(name.to_ascii_lowercase().as_bytes())
}

/// Shards by the hash's top bits; slots within a shard use the low bits.
#[inline]
fn shard_index(hash: u64) -> usize {
    (hash >> 56) as usize % SHARDS
}

/// The shared handle: readers `load`, writers `update`. Writers are
/// serialised among themselves by a mutex that readers never touch.
#[derive(Debug)]
pub struct LiveTable {
    current: ArcSwap<Table>,
    writer: Mutex<()>,
}

impl LiveTable {
    pub fn new(table: Table) -> LiveTable {
        LiveTable {
            current: ArcSwap::from_pointee(table),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot: lock-free, no allocation.
    #[inline]
    pub fn load(&self) -> Guard<Arc<Table>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc` (for holders that keep it).
    pub fn load_full(&self) -> Arc<Table> {
        self.current.load_full()
    }

    /// Publishes `table` whole, in place of whatever is current (a table
    /// received from a control plane, or a refusing one).
    pub fn replace(&self, table: Arc<Table>) {
        let _guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.current.store(table);
    }

    /// Drops the networks that ended by `now` (Unix seconds) from the
    /// current table, keeping its version; whether any had.
    pub fn drop_expired(&self, now: u64) -> bool {
        let _guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.current.load().without_expired(now) {
            Some(table) => {
                self.current.store(Arc::new(table));
                true
            }
            None => false,
        }
    }

    /// Builds the next version from the current one and publishes it;
    /// returns the new version number.
    pub fn update(&self, next: impl FnOnce(&Table) -> Table) -> u64 {
        let _guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let table = next(&self.current.load());
        let version = table.version();
        self.current.store(Arc::new(table));
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn publish_one_account_keeps_the_others_and_counts() {
        let a = nets(&["203.0.113.10/32"]);
        let t = Table::build(
            7,
            vec![("acme".to_string(), AccountPolicy::new(Mode::Enforce, &a))],
            &[],
        );
        assert_eq!((t.version(), t.accounts(), t.entries()), (7, 1, 1));
        let b = nets(&["198.51.100.0/24", "2001:db8::/64"]);
        let t2 = t.with_account("beta", Some(AccountPolicy::new(Mode::Report, &b)));
        assert_eq!((t2.version(), t2.accounts(), t2.entries()), (8, 2, 3));
        assert!(t2.account("acme").is_some_and(|p| p.mode == Mode::Enforce));
        assert!(t.account("beta").is_none(), "the old snapshot is unchanged");
        let t3 = t2.with_account("acme", Some(AccountPolicy::new(Mode::Enforce, &[])));
        assert_eq!((t3.accounts(), t3.entries()), (2, 2));
        let t4 = t3.with_account("acme", None);
        assert_eq!((t4.accounts(), t4.entries()), (1, 2));
        let t5 = t4.with_account("ghost", None);
        assert_eq!((t5.accounts(), t5.entries()), (1, 2));
    }

    #[test]
    fn identities_and_keys_resolve_to_their_account_ignoring_case() {
        let t = Table::build(
            1,
            vec![
                ("Acme".to_string(), AccountPolicy::new(Mode::Enforce, &[])),
                ("globex".to_string(), AccountPolicy::new(Mode::Report, &[])),
            ],
            &[],
        )
        .with_identities(
            vec![("Sender-1".to_string(), "Acme".to_string())],
            vec![([7u8; 32], "globex".to_string())],
        );
        assert_eq!(t.account("ACME").map(|a| a.id()), Some("Acme"));
        assert_eq!(t.resolve_name("acme").map(|a| a.id()), Some("Acme"));
        assert_eq!(t.resolve_name("SENDER-1").map(|a| a.id()), Some("Acme"));
        assert_eq!(t.resolve_name("sender-2").map(|a| a.id()), None);
        assert_eq!(t.resolve_key(&[7u8; 32]).map(|a| a.id()), Some("globex"));
        assert_eq!(t.resolve_key(&[8u8; 32]).map(|a| a.id()), None);
        assert_eq!((t.identities(), t.keys()), (1, 1));

        let t2 = t
            .with_name("sender-1", None)
            .with_key([8u8; 32], Some("acme"));
        assert_eq!(t2.version(), 3);
        assert!(t2.resolve_name("Sender-1").is_none());
        assert_eq!(t2.resolve_key(&[8u8; 32]).map(|a| a.id()), Some("Acme"));
        assert!(
            t.resolve_name("Sender-1").is_some(),
            "the old snapshot is unchanged"
        );
        // A name whose account is gone resolves to nothing.
        let t3 = t.with_account("acme", None);
        assert!(t3.resolve_name("sender-1").is_none());
    }

    #[test]
    fn blocklist_swaps_whole() {
        let t = Table::empty().with_blocklist(&nets(&["192.0.2.0/24"]));
        assert!(t.is_blocked("192.0.2.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert_eq!(t.blocklist_entries(), 1);
    }

    /// The table holds what `naive` says: its counts, and at each probe
    /// (account a<n>, IP 10.0.0.<m>) whether the account is known and
    /// allows the IP.
    fn agrees(
        t: &Table,
        naive: &HashMap<String, Vec<IpNet>>,
        probes: &[(u16, u32)],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        proptest::prop_assert_eq!(t.accounts(), naive.len());
        proptest::prop_assert_eq!(t.entries(), naive.values().map(Vec::len).sum::<usize>());
        for (acct, a) in probes {
            let id = format!("a{acct}");
            let ip = IpAddr::from((0x0a00_0000u32 + a).to_be_bytes());
            let got = t.account(&id).map(|p| p.allowed.contains(ip));
            let want = naive.get(&id).map(|l| l.iter().any(|n| n.contains(&ip)));
            proptest::prop_assert_eq!(got, want, "{} {}", id, ip);
        }
        Ok(())
    }

    proptest::proptest! {
        /// Random publishes and removals, then every lookup agrees with a
        /// plain map of account -> list of networks.
        #[test]
        fn agrees_with_a_naive_map(ops in proptest::collection::vec(
            (0u8..40, proptest::option::of(proptest::collection::vec((0u32..64, 28u8..=32), 0..5))), 1..120),
            probes in proptest::collection::vec((0u16..45, 0u32..80), 1..80)) {
            let mut naive: HashMap<String, Vec<IpNet>> = Default::default();
            let mut t = Table::empty();
            for (acct, nets) in ops {
                let id = format!("a{acct}");
                match nets {
                    Some(list) => {
                        let list: Vec<IpNet> = list.iter()
                            .filter_map(|(a, p)| IpNet::new(IpAddr::from((0x0a00_0000u32 + a).to_be_bytes()), *p).ok().map(|n| n.trunc()))
                            .collect();
                        t = t.with_account(&id, Some(AccountPolicy::new(Mode::Enforce, &list)));
                        naive.insert(id, list);
                    }
                    None => {
                        t = t.with_account(&id, None);
                        naive.remove(&id);
                    }
                }
            }
            agrees(&t, &naive, &probes)?;
        }
    }

    proptest::proptest! {
        /// A whole table built from a list with repeated ids holds the
        /// last policy given for each id.
        #[test]
        fn a_built_table_keeps_the_last_of_each_id(given in proptest::collection::vec(
            (0u16..600, proptest::collection::vec(0u32..64, 0..4)), 0..900),
            probes in proptest::collection::vec((0u16..620, 0u32..80), 1..80)) {
            let mut naive: HashMap<String, Vec<IpNet>> = Default::default();
            let mut list = Vec::new();
            for (acct, hosts) in given {
                let id = format!("a{acct}");
                let nets: Vec<IpNet> = hosts.iter()
                    .map(|h| IpNet::from(IpAddr::from((0x0a00_0000u32 + h).to_be_bytes())))
                    .collect();
                list.push((id.clone(), AccountPolicy::new(Mode::Enforce, &nets)));
                naive.insert(id, nets);
            }
            let t = Table::build(1, list, &[]);
            agrees(&t, &naive, &probes)?;
        }
    }

    #[test]
    fn live_table_publishes_atomically() {
        let live = LiveTable::new(Table::empty());
        let before = live.load();
        let v = live.update(|t| t.with_account("acme", Some(AccountPolicy::new(Mode::Off, &[]))));
        assert_eq!(v, 1);
        assert!(before.account("acme").is_none());
        assert!(live.load().account("acme").is_some());
    }

    #[test]
    fn a_refusing_table_says_why_and_keeps_its_contents() {
        let t = Table::refusing(Refusal::NoTable);
        assert_eq!(
            (t.refusal(), t.version(), t.accounts()),
            (Some(Refusal::NoTable), 0, 0)
        );
        let real = Table::build(
            5,
            vec![("acme".to_string(), AccountPolicy::new(Mode::Off, &[]))],
            &[],
        );
        let stale = real.clone().with_refusal(Some(Refusal::Stale));
        assert_eq!(
            (stale.refusal(), stale.version(), stale.accounts()),
            (Some(Refusal::Stale), 5, 1)
        );
        assert_eq!(stale.with_refusal(None).refusal(), None);
        let live = LiveTable::new(Table::refusing(Refusal::NoTable));
        live.replace(Arc::new(real));
        assert_eq!((live.load().refusal(), live.load().version()), (None, 5));
    }
}
