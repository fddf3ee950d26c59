//! The sled store's own identity tests: those that reach into its trees
//! (what both backends do alike is in `store::conformance::identities`).

use super::*;
use crate::domain::Timestamp;
use crate::store::tests::{account, op, open};
use crate::store::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A sled store with `ids` made, for reaching into its trees.
async fn sled_with(dir: &tempfile::TempDir, ids: &[&str]) -> SledStore {
    let s = crate::store::tests::open_sled(dir);
    for id in ids {
        s.create_account(account(id), &op()).await.unwrap();
    }
    s
}

fn identity(account: &str, value: &str) -> Identity {
    Identity {
        id: String::new(),
        account: account.parse().unwrap(),
        value: value.into(),
        remark: "sender".into(),
        created_at: Timestamp::now(),
    }
}

#[tokio::test]
async fn an_older_store_gets_its_account_ids_indexed_when_opened() {
    let dir = tempdir();
    {
        let s = sled_with(&dir, &["acme"]).await;
        s.add_identity(identity("acme", "sender-1"), &op())
            .await
            .unwrap();
        s.forget_name_index().unwrap();
    }
    let s = open(&dir);
    for id in ["ACME", "Sender-1"] {
        assert!(
            matches!(
                s.create_account(account(id), &op()).await,
                Err(StoreError::IdTaken { .. })
            ),
            "{id}"
        );
    }
    assert_eq!(
        s.identity_owner("SENDER-1").await.ok(),
        Some(Some("acme".into()))
    );
}

#[test]
fn hashes_parse_from_hex_of_either_case_only() {
    let lower = "ab".repeat(32);
    assert_eq!(parse_sha256(&lower), Some([0xab; 32]));
    assert_eq!(parse_sha256(&lower.to_uppercase()), Some([0xab; 32]));
    let plus = format!("+f{}", "ab".repeat(31));
    let letters = format!("zz{}", "ab".repeat(31));
    for bad in ["", "ab", &"ab".repeat(33), &plus, &letters] {
        assert_eq!(parse_sha256(bad), None, "{bad}");
    }
}
