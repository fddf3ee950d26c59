//! Tests of the sled store itself: damage done to its trees is found or
//! refused.

use crate::domain::model::BlockEntry;
use crate::domain::Timestamp;
use crate::store::tests::{account, entry_of, op, open, open_sled, test_key};
use crate::store::*;

async fn logged_store(dir: &tempfile::TempDir) -> sled::SledStore {
    let s = open_sled(dir);
    s.create_account(account("acme"), &op()).await.unwrap();
    s.add_entries("acme", vec![entry_of("acme", "203.0.113.10/32")], &op())
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
async fn an_edited_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = logged_store(&dir).await;
    let key = 2u64.to_be_bytes();
    let raw = s
        .seclog
        .get(key)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no record 2"));
    let edited = String::from_utf8_lossy(&raw).replace("203.0.113.10/32", "0.0.0.0/0");
    s.seclog.insert(key, edited.as_bytes()).unwrap();
    let v = s.verify_security_log().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.broken_at, Some(2));
}

#[tokio::test]
async fn a_dropped_or_truncated_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = logged_store(&dir).await;
    s.seclog.remove(2u64.to_be_bytes()).unwrap();
    let v = s.verify_security_log().await.unwrap();
    assert_eq!((v.ok, v.broken_at), (false, Some(2)));

    let dir = tempfile::tempdir().unwrap();
    let s = logged_store(&dir).await;
    s.seclog.remove(3u64.to_be_bytes()).unwrap();
    let v = s.verify_security_log().await.unwrap();
    assert!(
        !v.ok,
        "dropping the newest record while the head names it: {v:?}"
    );
}

#[tokio::test]
async fn an_unreadable_log_head_refuses_the_change_instead_of_restarting_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_sled(&dir);
    let made = s.create_account(account("acme"), &op()).await;
    assert!(made.is_ok(), "{made:?}");
    let first = s.seclog.get(1u64.to_be_bytes()).ok().flatten();
    assert!(first.is_some());

    for damage in [Some(&b"not json"[..]), None] {
        match damage {
            Some(bytes) => s.seclog.insert(b"head", bytes).map(drop),
            None => s.seclog.remove(b"head").map(drop),
        }
        .unwrap();
        let changed = s.create_account(account("beta"), &op()).await;
        assert!(
            matches!(changed, Err(StoreError::LogHead(_))),
            "{damage:?}: {changed:?}"
        );
        assert_eq!(
            s.seclog.get(1u64.to_be_bytes()).ok().flatten(),
            first,
            "record 1 kept"
        );
        assert!(
            s.account("beta").await.ok().flatten().is_none(),
            "nothing else changed"
        );
    }
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
