use super::*;
use crate::domain::model::{BlockEntry, Source, WhitelistEntry, WhitelistMode};
use crate::domain::Timestamp;
use crate::seclog::LogKey;

pub(crate) fn account(id: &str) -> Account {
    Account {
        id: id.parse().unwrap(),
        name: "Acme".into(),
        emails: vec!["ops@acme.test".into()],
        whitelist: WhitelistMode::Enforce,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

fn entry(cidr: &str) -> WhitelistEntry {
    entry_of("acme", cidr)
}

/// An admin-made entry of `account` for `cidr`.
pub(crate) fn entry_of(account: &str, cidr: &str) -> WhitelistEntry {
    WhitelistEntry {
        id: String::new(),
        account: account.parse().unwrap(),
        cidr: cidr.parse().unwrap(),
        remark: String::new(),
        tags: vec![],
        source: Source::Admin,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

/// The log key unit tests open stores with.
pub(crate) fn test_key() -> LogKey {
    LogKey::new(b"unit-test-log-key-0123456789abcdef").unwrap()
}

/// The sled store itself, for the tests that reach into its trees.
pub(crate) fn open_sled(dir: &tempfile::TempDir) -> sled::SledStore {
    sled::SledStore::open(dir.path(), test_key()).unwrap()
}

pub(crate) fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path(), test_key()).unwrap()
}

pub(crate) fn op() -> Actor {
    Actor::admin(Some(std::net::IpAddr::from([127, 0, 0, 1])))
}

#[tokio::test]
async fn changes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(&dir);
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
    let s = open(&dir);
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
    let v = open(&dir).verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records, 3);
}

#[tokio::test]
async fn refusals_change_nothing_and_log_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
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

#[tokio::test]
async fn entries_of_one_account_do_not_leak_into_another_with_a_longer_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_account(account("acme"), &op()).await.unwrap();
    s.create_account(account("acme2"), &op()).await.unwrap();
    s.add_entries("acme2", vec![entry("203.0.113.10/32")], &op())
        .await
        .unwrap();
    assert!(s.entries("acme").await.unwrap_or_default().is_empty());
}

async fn logged_store(dir: &tempfile::TempDir) -> Store {
    let s = open(dir);
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

#[tokio::test]
async fn an_intact_log_verifies_and_exports_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let s = logged_store(&dir).await;
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

#[test]
fn a_store_held_open_elsewhere_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let held = open(&dir);
    match Store::open(dir.path(), test_key()) {
        Err(e @ StoreError::Locked { .. }) => {
            assert!(e.to_string().contains("in use by another process"), "{e}")
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open of a held store succeeded"),
    }
    drop(held);
    // Once the holder is gone, the store opens again (waiting out sled's
    // background writers if needed).
    let _ = open(&dir);
}

#[tokio::test]
async fn a_store_keyed_with_another_log_key_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let s = open(&dir);
        s.create_account(account("acme"), &op()).await.unwrap();
        s.verify_security_log().await.map(|v| v.head).ok()
    };
    let other = LogKey::new(&[b'x'; 40]).unwrap();
    match Store::open(dir.path(), other.clone()) {
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
    let s = open(&dir);
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((Some(v.head), v.records), (head, 1), "nothing was appended");
}
