//! The live whitelist table: every account's mode and networks, plus the
//! global blocklist, as one immutable versioned snapshot behind `ArcSwap`.
//! Readers load the current snapshot without locks or allocation; a writer
//! builds the next snapshot and swaps it in whole, so a request sees the old
//! table or the new one, never a mix. Knows nothing of Pingora or HTTP.

use crate::ranges::RangeSet;
use arc_swap::{ArcSwap, Guard};
use ipnet::IpNet;
use std::collections::HashMap;
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
}

impl AccountPolicy {
    pub fn new<'a>(mode: Mode, nets: impl IntoIterator<Item = &'a IpNet>) -> AccountPolicy {
        let nets: Vec<&IpNet> = nets.into_iter().collect();
        AccountPolicy { mode, entries: nets.len(), allowed: RangeSet::from_nets(nets) }
    }
}

type Shard = HashMap<Arc<str>, Arc<AccountPolicy>, ahash::RandomState>;

/// One immutable version of the table.
#[derive(Debug, Clone)]
pub struct Table {
    version: u64,
    updated: SystemTime,
    hasher: ahash::RandomState,
    shards: Box<[Arc<Shard>]>,
    blocklist: Arc<RangeSet>,
    blocklist_entries: usize,
    accounts: usize,
    entries: usize,
}

impl Table {
    /// An empty table at version 0.
    pub fn empty() -> Table {
        let hasher = ahash::RandomState::new();
        let shard = Arc::new(Shard::with_hasher(hasher.clone()));
        Table {
            version: 0,
            updated: SystemTime::now(),
            shards: (0..SHARDS).map(|_| shard.clone()).collect(),
            hasher,
            blocklist: Arc::new(RangeSet::default()),
            blocklist_entries: 0,
            accounts: 0,
            entries: 0,
        }
    }

    /// Builds a whole table at `version`, e.g. from the store at start.
    pub fn build(
        version: u64,
        accounts: impl IntoIterator<Item = (String, AccountPolicy)>,
        blocklist: &[IpNet],
    ) -> Table {
        let mut t = Table::empty();
        let mut shards: Vec<Shard> = (0..SHARDS).map(|_| Shard::with_hasher(t.hasher.clone())).collect();
        for (id, policy) in accounts {
            let idx = t.shard_of(&id);
            t.accounts += 1;
            t.entries += policy.entries;
            if let Some(old) = shards[idx].insert(Arc::from(id), Arc::new(policy)) {
                t.accounts -= 1;
                t.entries -= old.entries;
            }
        }
        t.shards = shards.into_iter().map(Arc::new).collect();
        t.blocklist = Arc::new(RangeSet::from_nets(blocklist));
        t.blocklist_entries = blocklist.len();
        t.version = version;
        t
    }

    #[inline]
    fn shard_of(&self, account: &str) -> usize {
        (self.hasher.hash_one(account) >> 56) as usize % SHARDS
    }

    /// The account's policy, if ipgate knows the account.
    #[inline]
    pub fn account(&self, id: &str) -> Option<&AccountPolicy> {
        self.shards[self.shard_of(id)].get(id).map(|p| p.as_ref())
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
    pub fn with_account(&self, id: &str, policy: Option<AccountPolicy>) -> Table {
        let mut next = self.clone();
        let idx = self.shard_of(id);
        let mut shard: Shard = (*self.shards[idx]).clone();
        let old = match policy {
            Some(p) => {
                next.entries += p.entries;
                shard.insert(Arc::from(id), Arc::new(p))
            }
            None => shard.remove(id),
        };
        match old {
            Some(old) => next.entries -= old.entries,
            None if shard.contains_key(id) => next.accounts += 1,
            None => {}
        }
        if !shard.contains_key(id) && self.account(id).is_some() {
            next.accounts -= 1;
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

    fn bump(&mut self) {
        self.version += 1;
        self.updated = SystemTime::now();
    }
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
        LiveTable { current: ArcSwap::from_pointee(table), writer: Mutex::new(()) }
    }

    /// The current snapshot: lock-free, no allocation.
    #[inline]
    pub fn load(&self) -> Guard<Arc<Table>> {
        self.current.load()
    }

    /// Builds the next version from the current one and publishes it;
    /// returns the new version number.
    pub fn update(&self, next: impl FnOnce(&Table) -> Table) -> u64 {
        let _guard = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let table = next(&self.current.load());
        let version = table.version();
        self.current.store(Arc::new(table));
        version
    }

    /// Replaces the whole table (a full rebuild or a sync snapshot).
    pub fn replace(&self, table: Table) {
        let _guard = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.current.store(Arc::new(table));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn publish_one_account_keeps_the_others_and_counts() {
        let a = nets(&["203.0.113.10/32"]);
        let t = Table::build(7, vec![("acme".to_string(), AccountPolicy::new(Mode::Enforce, &a))], &[]);
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
    fn blocklist_swaps_whole() {
        let t = Table::empty().with_blocklist(&nets(&["192.0.2.0/24"]));
        assert!(t.is_blocked("192.0.2.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert_eq!(t.blocklist_entries(), 1);
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
}
