//! From store to proxy: builds the whole table at start and republishes one
//! account (or the blocklist, an identity, a key hash) after each change,
//! before the change is answered. Writers hold one async mutex, so the table's versions follow
//! the store's order of changes.

use crate::domain::model::{Account, SecretKey, WhitelistEntry};
use crate::domain::{Cidr, Timestamp};
use crate::store::{parse_sha256, Noted, Store, StoreError, Touch};
use ipgate_policy::snapshot::{unix_seconds, Contents, Snapshot, SnapshotAccount};
use ipgate_policy::{AccountPolicy, LiveTable, Table};
use ipnet::IpNet;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

fn nets(cidrs: impl Iterator<Item = Cidr>) -> Vec<IpNet> {
    cidrs.map(Cidr::net).collect()
}

/// The proxy's view of one account, as of now: an entry that has ended
/// is left out, and one that ends carries its time.
pub fn policy(account: &Account, entries: &[WhitelistEntry]) -> AccountPolicy {
    let ending: Vec<(IpNet, u64)> = entries
        .iter()
        .filter_map(|e| Some((e.cidr.net(), e.expires_at?.unix())))
        .collect();
    AccountPolicy::ending(
        account.whitelist.into(),
        &nets(entries.iter().map(|e| e.cidr)),
        &ending,
        Timestamp::now().unix(),
    )
}

/// Builds the whole table from the store's network index, at start
/// (`cargo bench --bench million`). Built directly rather than through
/// [`snapshot`]: the snapshot holds a second copy of every network, which
/// at a million entries cost 25 MB more RSS and 0.04 s more (before/after
/// in docs/performance.md). `service/publish/snapshot_tests.rs` checks that both
/// answer alike.
pub async fn load_table(store: &Store) -> Result<Table, StoreError> {
    let mut accounts = Vec::new();
    let now = Timestamp::now().unix();
    store
        .for_each_account_policy(&mut |a| {
            let policy = AccountPolicy::ending(a.mode.into(), a.nets, a.ending, now);
            accounts.push((a.id.to_string(), policy));
        })
        .await?;
    let blocked = nets(store.blocklist().await?.iter().map(|b| b.cidr));
    let identities = store
        .all_identities()
        .await?
        .into_iter()
        .map(|i| (i.value, String::from(i.account)));
    let keys: Vec<([u8; 32], String)> = store
        .all_keys()
        .await?
        .into_iter()
        .filter_map(|k| Some((stored_hash(&k)?, String::from(k.account))))
        .collect();
    Ok(Table::build(1, accounts, &blocked).with_identities(identities, keys))
}

/// The whole table's data from the store, as the proxies are sent it: at
/// `version`, made now. An alias
/// or key hash whose account is gone is left out, as it would resolve to
/// nothing; anything else a snapshot refuses can only be in a damaged
/// store, and is an error.
pub async fn snapshot(store: &Store, version: u64) -> Result<Snapshot, StoreError> {
    let mut accounts = Vec::new();
    store
        .for_each_account_policy(&mut |a| {
            accounts.push(SnapshotAccount {
                id: a.id.to_string(),
                mode: a.mode.into(),
                nets: a.nets.to_vec(),
                ending: a.ending.iter().map(|&(n, at)| (n, at)).collect(),
            });
        })
        .await?;
    let known: HashSet<String> = accounts.iter().map(|a| a.id.to_ascii_lowercase()).collect();
    let owned = |what: &str, account: &str| {
        let ok = known.contains(&account.to_ascii_lowercase());
        if !ok {
            tracing::error!(%account, "skipping a stored {what} of an unknown account");
        }
        ok
    };
    let identities = store
        .all_identities()
        .await?
        .into_iter()
        .filter(|i| owned("identity", i.account.as_str()))
        .map(|i| (i.value, String::from(i.account)))
        .collect();
    let keys = store
        .all_keys()
        .await?
        .into_iter()
        .filter(|k| owned("key", k.account.as_str()))
        .filter_map(|k| Some((stored_hash(&k)?, String::from(k.account))))
        .collect();
    let contents = Contents {
        version,
        made: unix_seconds(SystemTime::now()),
        accounts,
        blocklist: nets(store.blocklist().await?.iter().map(|b| b.cidr)),
        identities,
        keys,
    };
    Snapshot::new(contents)
        .map_err(|e| StoreError::Corrupt(format!("the store's data makes no valid table: {e}")))
}

/// A stored key hash as bytes. Hashes are only ever written parsed, so
/// this fails only for a damaged store; leaving the key out can only deny.
fn stored_hash(key: &SecretKey) -> Option<[u8; 32]> {
    let h = parse_sha256(&key.sha256);
    if h.is_none() {
        tracing::error!(account = %key.account, key = %key.id, "skipping an unparsable stored key hash");
    }
    h
}

/// The store and the live table, changed together.
pub struct Publisher {
    pub store: Store,
    pub table: Arc<LiveTable>,
    writer: tokio::sync::Mutex<()>,
    /// The table's version after each change, for those waiting on one
    /// (the sync feed's long polls).
    changed: tokio::sync::watch::Sender<u64>,
    /// A shared store's version the table holds (every change up to it is
    /// in); `None` for a store of this control plane alone.
    store_version: std::sync::Mutex<Option<u64>>,
}

impl Publisher {
    pub fn new(store: Store, table: Arc<LiveTable>) -> Publisher {
        let version = table.load().version();
        // The table was built from the store as it is now, which holds at
        // least every change up to the version noted before it was read.
        let noted = store.take_touched();
        Publisher {
            store,
            table,
            writer: tokio::sync::Mutex::new(()),
            changed: tokio::sync::watch::Sender::new(version),
            store_version: std::sync::Mutex::new(noted.version),
        }
    }

    /// A shared store's version the table holds now; `None` for a store of
    /// this control plane alone. Read it under [`Publisher::read_at_rest`]
    /// to have the version of what is read.
    pub fn store_version(&self) -> Option<u64> {
        *self
            .store_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Republishes what other control planes sharing the store changed
    /// (noted by [`crate::store::MetaStore::watch_changes`]).
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let noted = self.store.take_touched();
        self.republish(noted).await
    }

    /// Sees the table's version after every change.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Runs `read` with no change under way, with the table's version:
    /// what it reads of the store is exactly that version's data.
    pub async fn read_at_rest<T, F, Fut>(&self, read: F) -> T
    where
        F: FnOnce(Store, u64) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let _writer = self.writer.lock().await;
        read(self.store.clone(), self.table.load().version()).await
    }

    /// Runs one store change and then republishes what it touched, as the
    /// store noted it while writing (so no caller names it, or forgets to).
    /// The change is on disk and live in the proxy when this returns `Ok`.
    pub async fn change<T, F, Fut>(&self, change: F) -> Result<T, StoreError>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let _writer = self.writer.lock().await;
        let stray = self.store.take_touched();
        if !stray.touches.is_empty() && stray.version.is_none() {
            // A write outside `change`: published now rather than never.
            tracing::error!(touched = ?stray.touches, "store changes made outside the publisher; republishing them");
        }
        let out = change(self.store.clone()).await;
        let mut noted = self.store.take_touched();
        noted.touches = [stray.touches, noted.touches].concat();
        noted.version = noted.version.max(stray.version);
        // A change that failed after committing a part is republished too,
        // so the table never differs from the store.
        self.republish(noted).await?;
        out
    }

    /// Republishes `noted`; on a store failure what was not republished is
    /// put back for the next time.
    async fn republish(&self, noted: Noted) -> Result<(), StoreError> {
        let Noted { touches, version } = noted;
        for (i, touch) in touches.iter().enumerate() {
            if let Err(e) = self.republish_one(touch).await {
                self.store.untake_touched(touches[i..].to_vec());
                return Err(e);
            }
        }
        if let Some(v) = version {
            let mut held = self
                .store_version
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *held = Some(held.map_or(v, |h| h.max(v)));
        }
        if !touches.is_empty() {
            self.changed.send_replace(self.table.load().version());
        }
        Ok(())
    }

    async fn republish_one(&self, touch: &Touch) -> Result<(), StoreError> {
        match touch {
            Touch::Account(id) => {
                let next = match self.store.account(id).await? {
                    Some(a) => Some(policy(&a, &self.store.entries(id).await?)),
                    None => None,
                };
                self.table.update(|t| t.with_account(id, next));
            }
            Touch::Name(value) => {
                let owner = self.store.identity_owner(value).await?;
                self.table.update(|t| t.with_name(value, owner.as_deref()));
            }
            Touch::Key(sha256) => {
                let owner = self.store.key_owner(sha256).await?;
                self.table.update(|t| t.with_key(*sha256, owner.as_deref()));
            }
            Touch::Blocklist => {
                let blocked = nets(self.store.blocklist().await?.iter().map(|b| b.cidr));
                self.table.update(|t| t.with_blocklist(&blocked));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod snapshot_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::WhitelistMode;
    use crate::domain::Timestamp;
    use crate::seclog::Actor;
    use crate::store::tests::entry_of;
    use ipgate_policy::ranges::RangeSet;
    use ipgate_policy::Mode;

    fn account(id: &str, whitelist: WhitelistMode) -> Account {
        Account {
            id: id.parse().unwrap(),
            name: id.into(),
            emails: vec![format!("ops@{id}.test")],
            whitelist,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            approvals_required: 1,
            frozen: false,
        }
    }

    /// What the proxy would hold if built from the accounts and entries
    /// themselves, account by account, as a change republishes it.
    async fn from_records(store: &Store) -> Vec<(String, Mode, RangeSet)> {
        let mut out = Vec::new();
        for a in store.accounts().await.unwrap_or_default() {
            let p = policy(&a, &store.entries(a.id.as_str()).await.unwrap_or_default());
            out.push((a.id.into(), p.mode, p.allowed));
        }
        out
    }

    async fn from_start(store: &Store, ids: &[String]) -> Vec<(String, Mode, RangeSet)> {
        let table = load_table(store).await.unwrap();
        ids.iter()
            .filter_map(|id| {
                let v = table.account(id)?;
                Some((id.clone(), v.mode, v.allowed.clone()))
            })
            .collect()
    }

    #[tokio::test]
    async fn the_table_built_at_start_matches_the_accounts_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        let op = Actor::system();
        let ids: Vec<String>;
        {
            let raw = crate::store::tests::open_sled(&dir);
            let s = Store::from(raw.clone());
            for (id, mode) in [
                ("acme", WhitelistMode::Enforce),
                ("acme-2", WhitelistMode::Report),
                ("bare", WhitelistMode::Enforce),
                ("zeta", WhitelistMode::Off),
            ] {
                let made = s.create_account(account(id, mode), &op).await;
                assert!(made.is_ok(), "{made:?}");
            }
            for (id, cidrs) in [
                (
                    "acme",
                    vec!["203.0.113.10/32", "203.0.113.11/32", "2001:db8::/64"],
                ),
                ("acme-2", vec!["198.51.100.0/24"]),
                ("zeta", vec!["192.0.2.1/32"]),
            ] {
                let entries = cidrs.into_iter().map(|c| entry_of(id, c)).collect();
                let added = s.add_entries(id, entries, &op).await;
                assert!(added.is_ok(), "{added:?}");
            }
            // A removal, a second batch and mode changes.
            let first = s.entries("acme").await.unwrap_or_default().remove(0);
            let removed = s.remove_entry("acme", &first.id, &op).await;
            assert!(removed.is_ok(), "{removed:?}");
            let again = s
                .add_entries("acme", vec![entry_of("acme", "10.0.0.0/8")], &op)
                .await;
            assert!(again.is_ok(), "{again:?}");
            for (id, mode) in [
                ("zeta", WhitelistMode::Enforce),
                ("acme-2", WhitelistMode::Off),
            ] {
                let changed = s
                    .update_account(id, &op, &|mut a: Account| {
                        a.whitelist = mode;
                        a
                    })
                    .await;
                assert!(changed.is_ok(), "{changed:?}");
            }
            let expected = from_records(&s).await;
            ids = expected.iter().map(|e| e.0.clone()).collect();
            assert_eq!(ids.len(), 4);
            assert_eq!(from_start(&s, &ids).await, expected);
            assert!(!expected[0].2.contains([203, 0, 113, 10].into()), "removed");
            assert!(expected[0].2.contains([10, 1, 2, 3].into()), "added later");

            // A store written before the index existed.
            raw.forget_net_index().unwrap();
            assert!(from_start(&s, &ids).await.is_empty());
        }
        let s = Store::open(dir.path(), crate::store::tests::test_key()).unwrap();
        assert_eq!(
            from_start(&s, &ids).await,
            from_records(&s).await,
            "rebuilt at open"
        );
    }

    /// What a table resolves each name and key hash to.
    fn resolved(t: &Table, names: &[&str], keys: &[[u8; 32]]) -> Vec<Option<String>> {
        let by_name = names
            .iter()
            .map(|n| t.resolve_name(n).map(|a| a.id().to_string()));
        let by_key = keys
            .iter()
            .map(|k| t.resolve_key(k).map(|a| a.id().to_string()));
        by_name.chain(by_key).collect()
    }

    #[tokio::test]
    async fn identities_and_keys_resolve_the_same_at_start_as_live() {
        use crate::domain::model::{fingerprint, Identity, SecretKey};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::tests::test_key()).unwrap();
        let live = Arc::new(LiveTable::new(load_table(&store).await.unwrap()));
        let p = Publisher::new(store.clone(), live.clone());
        let op = Actor::system();
        for id in ["acme", "Globex"] {
            let made = p
                .change(|st| async move {
                    st.create_account(account(id, WhitelistMode::Enforce), &Actor::system())
                        .await
                })
                .await;
            assert!(made.is_ok(), "{made:?}");
        }
        let add_name = |account: &'static str, value: &'static str| {
            let identity = Identity {
                id: String::new(),
                account: account.parse().unwrap(),
                value: value.into(),
                remark: String::new(),
                created_at: Timestamp::now(),
            };
            let (p, op) = (&p, op.clone());
            async move {
                p.change(|st| async move { st.add_identity(identity, &op).await })
                    .await
                    .unwrap()
            }
        };
        let add_key = |account: &'static str, hash: [u8; 32]| {
            let key = SecretKey {
                id: String::new(),
                account: account.parse().unwrap(),
                sha256: crate::hex::encode(&hash),
                fingerprint: fingerprint(&hash),
                remark: String::new(),
                created_at: Timestamp::now(),
            };
            let (p, op) = (&p, op.clone());
            async move {
                p.change(|st| async move { st.add_key(key, hash, &op).await })
                    .await
                    .unwrap()
            }
        };
        add_name("acme", "Sender-1").await;
        let moved = add_name("Globex", "phone-1").await;
        add_key("acme", [1; 32]).await;
        let gone = add_key("Globex", [2; 32]).await;
        add_key("Globex", [3; 32]).await;
        let removed = p
            .change(|st| async move {
                st.remove_identity("Globex", &moved.id, &Actor::system())
                    .await
            })
            .await;
        assert!(removed.is_ok(), "{removed:?}");
        let removed = p
            .change(|st| async move { st.remove_key("Globex", &gone.id, &Actor::system()).await })
            .await;
        assert!(removed.is_ok(), "{removed:?}");
        add_name("acme", "PHONE-1").await;

        let names = [
            "sender-1", "SENDER-1", "phone-1", "ACME", "globex", "nobody",
        ];
        let keys = [[1; 32], [2; 32], [3; 32], [4; 32]];
        let now_live = resolved(&live.load(), &names, &keys);
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            now_live,
            vec![
                some("acme"),
                some("acme"),
                some("acme"),
                some("acme"),
                some("Globex"),
                None,
                some("acme"),
                None,
                some("Globex"),
                None
            ]
        );
        let start = load_table(&store).await.unwrap();
        assert_eq!(resolved(&start, &names, &keys), now_live);
        assert_eq!((start.identities(), start.keys()), (2, 2));
        assert_eq!((live.load().identities(), live.load().keys()), (2, 2));
    }

    fn allows(live: &LiveTable, account: &str, ip: &str) -> bool {
        let ip = ip.parse().unwrap();
        live.load()
            .account(account)
            .is_some_and(|v| v.allowed.contains(ip))
    }

    #[tokio::test]
    async fn what_a_change_wrote_is_live_without_being_named() {
        use crate::domain::model::BlockEntry;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::tests::test_key()).unwrap();
        let live = Arc::new(LiveTable::new(load_table(&store).await.unwrap()));
        let p = Publisher::new(store.clone(), live.clone());
        let mut versions = p.watch();
        let before = live.load().version();
        // One change, three writes of three kinds: all of them go live.
        let done = p
            .change(|st| async move {
                let op = Actor::system();
                for id in ["acme", "globex"] {
                    st.create_account(account(id, WhitelistMode::Enforce), &op)
                        .await?;
                }
                st.add_entries("acme", vec![entry_of("acme", "192.0.2.7/32")], &op)
                    .await?;
                st.add_entries("globex", vec![entry_of("globex", "198.51.100.0/24")], &op)
                    .await?;
                let block = BlockEntry {
                    id: String::new(),
                    cidr: "203.0.113.0/24".parse().unwrap(),
                    remark: String::new(),
                    created_at: Timestamp::now(),
                };
                st.add_block(block, &op).await
            })
            .await;
        assert!(done.is_ok(), "{done:?}");
        assert!(allows(&live, "acme", "192.0.2.7"));
        assert!(allows(&live, "globex", "198.51.100.9"));
        assert!(!allows(&live, "acme", "198.51.100.9"));
        assert!(live.load().is_blocked("203.0.113.5".parse().unwrap()));
        assert!(live.load().version() > before);
        assert_eq!(*versions.borrow_and_update(), live.load().version());

        // A change that writes nothing the proxy sees leaves the version.
        let at = live.load().version();
        let nothing = p.change(|st| async move { st.expire_due().await }).await;
        assert!(nothing.is_ok(), "{nothing:?}");
        assert_eq!(live.load().version(), at);
        assert!(!versions.has_changed().unwrap());
    }

    #[tokio::test]
    async fn a_write_that_bypassed_the_publisher_goes_live_with_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::tests::test_key()).unwrap();
        let op = Actor::system();
        let made = store
            .create_account(account("acme", WhitelistMode::Enforce), &op)
            .await;
        assert!(made.is_ok(), "{made:?}");
        // Built after that write: it is in the table already.
        let live = Arc::new(LiveTable::new(load_table(&store).await.unwrap()));
        let p = Publisher::new(store.clone(), live.clone());
        let at = live.load().version();
        let nothing = p.change(|st| async move { st.expire_due().await }).await;
        assert!(nothing.is_ok(), "{nothing:?}");
        assert_eq!(live.load().version(), at, "nothing was republished twice");

        let stray = store
            .add_entries("acme", vec![entry_of("acme", "192.0.2.7/32")], &op)
            .await;
        assert!(stray.is_ok(), "{stray:?}");
        assert!(!allows(&live, "acme", "192.0.2.7"));
        let next = p.change(|st| async move { st.expire_due().await }).await;
        assert!(next.is_ok(), "{next:?}");
        assert!(allows(&live, "acme", "192.0.2.7"));
    }

    #[tokio::test]
    async fn a_change_failing_after_a_first_write_still_publishes_that_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::tests::test_key()).unwrap();
        let live = Arc::new(LiveTable::new(load_table(&store).await.unwrap()));
        let p = Publisher::new(store.clone(), live.clone());
        let failed = p
            .change(|st| async move {
                let op = Actor::system();
                st.create_account(account("acme", WhitelistMode::Enforce), &op)
                    .await?;
                st.add_entries("acme", vec![entry_of("acme", "192.0.2.7/32")], &op)
                    .await?;
                // A duplicate: refused, after the two writes above committed.
                st.add_entries("acme", vec![entry_of("acme", "192.0.2.7/32")], &op)
                    .await
            })
            .await;
        assert!(
            matches!(failed, Err(StoreError::Duplicate(_))),
            "{failed:?}"
        );
        assert!(allows(&live, "acme", "192.0.2.7"));
    }
}
