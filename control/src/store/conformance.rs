//! The conformance suite: what every store backend must do alike. Each
//! test is written once against [`Backing`] and runs on a sled store in a
//! temporary directory and on a PostgreSQL database made for it on the
//! server `DATABASE_URL` names (`scripts/test` starts a throw-away one).
//! Without `DATABASE_URL` the PostgreSQL runs are skipped, unless
//! `IPGATE_REQUIRE_POSTGRES` is set: then they fail.
//!
//! The tests of idempotency keys and references are in `idempotency`,
//! of identities and keys in `identities`, of users,
//! sessions and tokens in `users`, of time-bound entries in `ending`, each
//! with its own `on_both!` list.

use super::postgres::{PgOptions, PgStore};
use super::sled::SledStore;
use super::tests::{account, entry_of, op, test_key};
use super::*;
use crate::domain::model::{BlockEntry, WhitelistEntry};
use crate::domain::Timestamp;
use crate::seclog::LogKey;

/// Every use case of a store: what both backends are tested for.
pub(crate) trait Written: Backend + 'static {}
impl<T: Backend + 'static> Written for T {}

/// Where a test's store lives; each `open` opens the same store again.
#[async_trait]
pub(crate) trait Backing: Send + Sync {
    type S: Written;
    async fn open_with(&self, key: LogKey) -> Result<Self::S, StoreError>;
    async fn open(&self) -> Self::S {
        match self.open_with(test_key()).await {
            Ok(s) => s,
            Err(e) => panic!("opening the test store: {e}"),
        }
    }
    /// Whether anything the store keeps (any record, index or log, in any
    /// form) holds `needle`.
    async fn holds(&self, s: &Self::S, needle: &str) -> bool;
}

pub(crate) struct SledBacking(tempfile::TempDir);

#[async_trait]
impl Backing for SledBacking {
    type S = SledStore;
    async fn open_with(&self, key: LogKey) -> Result<SledStore, StoreError> {
        SledStore::open(self.0.path(), key)
    }
    async fn holds(&self, s: &SledStore, needle: &str) -> bool {
        s.holds_bytes(needle.as_bytes()).await.unwrap()
    }
}

pub(crate) struct PgBacking(PgOptions);

#[async_trait]
impl Backing for PgBacking {
    type S = PgStore;
    async fn open_with(&self, key: LogKey) -> Result<PgStore, StoreError> {
        PgStore::open(&self.0, key).await
    }
    async fn holds(&self, s: &PgStore, needle: &str) -> bool {
        s.holds_text(needle).await.unwrap()
    }
}

#[path = "../../../tests/blackbox/common/pg.rs"]
mod pg;

/// A new, empty database on the `DATABASE_URL` server, as the store
/// options to reach it. None (the test is skipped) without `DATABASE_URL`.
pub(crate) async fn fresh_pg() -> Option<PgOptions> {
    let name = format!("ipgate_t_{:016x}", rand::random::<u64>());
    let (url, password) = pg::database(&name, true).await?;
    Some(PgOptions::new(&url, password))
}

/// Runs each named test on both backends.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sled {
            $(
                #[tokio::test]
                async fn $name() {
                    let b = $crate::store::conformance::SledBacking(tempfile::tempdir().unwrap());
                    super::$name(b).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(options) = $crate::store::conformance::fresh_pg().await {
                        super::$name($crate::store::conformance::PgBacking(options)).await;
                    }
                }
            )*
        }
    };
}

mod blocked_calls;
mod disown;
mod ending;
mod idempotency;
mod identities;
mod quorum;
mod requests;
mod users;

on_both!(
    the_tables_view_holds_every_account_with_its_networks,
    changes_survive_reopening,
    refusals_change_nothing_and_log_nothing,
    entries_of_one_account_do_not_leak_into_another_with_a_longer_name,
    an_intact_log_verifies_and_exports_its_head,
    the_stored_head_is_the_verified_head,
    a_store_keyed_with_another_log_key_is_refused_unchanged,
);

fn entry(cidr: &str) -> WhitelistEntry {
    entry_of("acme", cidr)
}

async fn changes_survive_reopening<B: Backing>(b: B) {
    {
        let s = b.open().await;
        s.create_account(account("acme"), &op()).await.unwrap();
        let added = s
            .add_entries(
                "acme",
                vec![entry("203.0.113.10/32"), entry("2001:db8::/64")],
                &op(),
            )
            .await;
        assert_eq!(added.map(|v| v.len()).ok(), Some(2));
    }
    let s = b.open().await;
    let cidrs: Vec<String> = s
        .entries("acme")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.cidr.to_string())
        .collect();
    assert_eq!(
        cidrs,
        vec!["203.0.113.10/32".to_string(), "2001:db8::/64".to_string()]
    );
    let events: Vec<String> = s
        .security_log(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(
        events,
        vec!["account.created", "whitelist.added", "whitelist.added"]
    );
    // Opening writes to settle sled's log; a second reopen must still find
    // the same chained log and nothing added to it.
    drop(s);
    let v = b.open().await.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records, 3);
}

async fn refusals_change_nothing_and_log_nothing<B: Backing>(b: B) {
    let s = b.open().await;
    assert!(matches!(
        s.add_entries("ghost", vec![entry("203.0.113.10/32")], &op())
            .await,
        Err(StoreError::NoAccount(_))
    ));
    s.create_account(account("acme"), &op()).await.unwrap();
    assert!(matches!(
        s.create_account(account("acme"), &op()).await,
        Err(StoreError::AccountExists(_))
    ));
    s.add_entries("acme", vec![entry("203.0.113.10/32")], &op())
        .await
        .unwrap();
    let dup = s
        .add_entries(
            "acme",
            vec![entry("198.51.100.1/32"), entry("203.0.113.10/32")],
            &op(),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))));
    assert_eq!(
        s.entries("acme").await.unwrap_or_default().len(),
        1,
        "a refused batch adds nothing"
    );
    assert!(matches!(
        s.remove_entry("acme", "999", &op()).await,
        Err(StoreError::NoEntry(_))
    ));
    assert!(matches!(
        s.remove_entry("acme", "x", &op()).await,
        Err(StoreError::NoEntry(_))
    ));
    assert_eq!(
        s.security_log(None).await.unwrap_or_default().len(),
        2,
        "only the two changes were logged"
    );
}

async fn entries_of_one_account_do_not_leak_into_another_with_a_longer_name<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(account("acme"), &op()).await.unwrap();
    s.create_account(account("acme2"), &op()).await.unwrap();
    s.add_entries("acme2", vec![entry("203.0.113.10/32")], &op())
        .await
        .unwrap();
    assert!(s.entries("acme").await.unwrap_or_default().is_empty());
}

async fn logged_store<B: Backing>(b: &B) -> B::S {
    let s = b.open().await;
    s.create_account(account("acme"), &op()).await.unwrap();
    s.add_entries("acme", vec![entry("203.0.113.10/32")], &op())
        .await
        .unwrap();
    let b = BlockEntry {
        id: String::new(),
        cidr: "192.0.2.0/24".parse().unwrap(),
        remark: String::new(),
        created_at: Timestamp::now(),
    };
    s.add_block(b, &op()).await.unwrap();
    s
}

async fn an_intact_log_verifies_and_exports_its_head<B: Backing>(b: B) {
    let s = logged_store(&b).await;
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records, 3);
    let last = s
        .security_log(None)
        .await
        .unwrap_or_default()
        .pop()
        .map(|r| r.hash);
    assert_eq!(Some(v.head), last);
    assert_eq!(
        s.security_log(Some("acme")).await.unwrap_or_default().len(),
        2
    );
}

async fn the_stored_head_is_the_verified_head<B: Backing>(b: B) {
    let empty = b.open().await.security_log_head().await.unwrap();
    assert_eq!(
        (empty.seq, empty.hash.as_str()),
        (0, crate::seclog::GENESIS)
    );
    let s = logged_store(&b).await;
    let head = s.security_log_head().await.unwrap();
    let v = s.verify_security_log().await.unwrap();
    assert_eq!((head.seq, head.hash), (v.records, v.head));
}

async fn a_store_keyed_with_another_log_key_is_refused_unchanged<B: Backing>(b: B) {
    let head = {
        let s = b.open().await;
        s.create_account(account("acme"), &op()).await.unwrap();
        s.verify_security_log().await.map(|v| v.head).ok()
    };
    let other = LogKey::new(&[b'x'; 40]).unwrap();
    match b.open_with(other.clone()).await {
        Err(e @ StoreError::LogKeyMismatch { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(test_key().id()) && text.contains(other.id()),
                "{text}"
            );
        }
        Err(e) => panic!("expected LogKeyMismatch, got {e}"),
        Ok(_) => panic!("opened with another log key"),
    }
    let s = b.open().await;
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((Some(v.head), v.records), (head, 1), "nothing was appended");
}

async fn the_tables_view_holds_every_account_with_its_networks<B: Backing>(b: B) {
    let s = b.open().await;
    // Accounts without entries before, between and after those with them.
    for id in ["a0", "b1", "c2", "d3", "e4"] {
        s.create_account(account(id), &op()).await.unwrap();
    }
    for (id, cidr) in [
        ("b1", "203.0.113.0/24"),
        ("b1", "2001:db8::/64"),
        ("d3", "198.51.100.7/32"),
    ] {
        s.add_entries(id, vec![entry_of(id, cidr)], &op())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut visit = |a: AccountNets<'_>| {
        seen.push((
            a.id.to_string(),
            a.nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        ));
    };
    s.for_each_account_policy(&mut visit).await.unwrap();
    let want: Vec<(String, Vec<String>)> = vec![
        ("a0".into(), vec![]),
        (
            "b1".into(),
            vec!["203.0.113.0/24".into(), "2001:db8::/64".into()],
        ),
        ("c2".into(), vec![]),
        ("d3".into(), vec!["198.51.100.7/32".into()]),
        ("e4".into(), vec![]),
    ];
    assert_eq!(seen, want);
}
