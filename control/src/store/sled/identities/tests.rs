use super::*;
use crate::domain::model::fingerprint;
use crate::domain::Timestamp;
use crate::hex;
use crate::store::tests::{account, op, open};
use crate::store::*;
use sha2::{Digest, Sha256};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// [`store_with`] as the sled store itself, for reaching into its trees.
async fn sled_with(dir: &tempfile::TempDir, ids: &[&str]) -> SledStore {
    let s = crate::store::tests::open_sled(dir);
    for id in ids {
        s.create_account(account(id), &op()).await.unwrap();
    }
    s
}

async fn store_with(dir: &tempfile::TempDir, ids: &[&str]) -> Store {
    let s = open(dir);
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

fn key_of(account: &str, hash: &[u8; 32]) -> SecretKey {
    SecretKey {
        id: String::new(),
        account: account.parse().unwrap(),
        sha256: hex::encode(hash),
        fingerprint: fingerprint(hash),
        remark: String::new(),
        created_at: Timestamp::now(),
    }
}

async fn events(s: &Store) -> Vec<String> {
    let log = s.security_log(None).await.unwrap_or_default();
    log.into_iter().map(|r| r.event).collect()
}

#[tokio::test]
async fn identities_are_unique_over_all_identities_and_account_ids_ignoring_case() {
    let dir = tempdir();
    let s = store_with(&dir, &["acme", "globex"]).await;
    let first = s.add_identity(identity("acme", "Sender-1"), &op()).await;
    let first = first.unwrap();
    assert_eq!(
        s.identity_owner("SENDER-1").await.ok(),
        Some(Some("acme".into()))
    );
    for (account, value, owner) in [
        ("globex", "sender-1", "an identity of account `acme`"),
        ("acme", "SENDER-1", "an identity of account `acme`"),
        ("acme", "GLOBEX", "the id of account `globex`"),
        ("globex", "Globex", "the id of account `globex`"),
    ] {
        match s.add_identity(identity(account, value), &op()).await {
            Err(e @ StoreError::NameTaken { .. }) => {
                assert!(e.to_string().contains(owner), "{value}: {e}")
            }
            other => panic!("{value} on {account}: {other:?}"),
        }
    }
    assert!(matches!(
        s.add_identity(identity("ghost", "sender-9"), &op()).await,
        Err(StoreError::NoAccount(_))
    ));
    for id in ["SENDER-1", "Globex"] {
        assert!(
            matches!(
                s.create_account(account(id), &op()).await,
                Err(StoreError::IdTaken { .. })
            ),
            "{id}"
        );
    }
    assert_eq!(
        s.identity_owner("globex").await.ok(),
        Some(None),
        "an id, not an identity"
    );
    assert_eq!(events(&s).await.len(), 3, "refusals log nothing");

    // Once removed, the value is free for another account, and only then.
    let gone = s.remove_identity("acme", &first.id, &op()).await;
    assert_eq!(gone.map(|i| i.value).ok(), Some("Sender-1".into()));
    assert!(matches!(
        s.remove_identity("acme", &first.id, &op()).await,
        Err(StoreError::NoIdentity(_))
    ));
    assert_eq!(s.identity_owner("sender-1").await.ok(), Some(None));
    let moved = s.add_identity(identity("globex", "SENDER-1"), &op()).await;
    assert!(moved.is_ok(), "{moved:?}");
    assert_eq!(
        s.identities("globex")
            .await
            .unwrap_or_default()
            .iter()
            .map(|i| i.value.as_str())
            .collect::<Vec<_>>(),
        vec!["SENDER-1"]
    );
    assert!(s.identities("acme").await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn a_key_is_kept_only_as_its_hash_and_belongs_to_one_account() {
    let dir = tempdir();
    let s = sled_with(&dir, &["acme", "globex"]).await;
    let secret = "live_sk_4f1d2c3b-very-secret";
    let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let added = s.add_key(key_of("acme", &hash), hash, &op()).await;
    let added = added.unwrap();
    assert_eq!(added.sha256, hex::encode(&hash));
    assert_eq!(s.key_owner(&hash).await.ok(), Some(Some("acme".into())));
    match s.add_key(key_of("globex", &hash), hash, &op()).await {
        Err(e @ StoreError::KeyTaken { .. }) => {
            assert!(e.to_string().contains(&added.fingerprint), "{e}")
        }
        other => panic!("a second registration: {other:?}"),
    }
    assert!(matches!(
        s.add_key(key_of("ghost", &[1; 32]), [1; 32], &op()).await,
        Err(StoreError::NoAccount(_))
    ));

    // Nothing anywhere in the store holds the key itself.
    s.flush().await.unwrap();
    for name in s.db.tree_names() {
        let tree = s.db.open_tree(&name).unwrap();
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            for bytes in [&k[..], &v[..]] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "tree {} holds the key",
                    String::from_utf8_lossy(&name)
                );
            }
        }
    }
    let log =
        serde_json::to_string(&s.security_log(None).await.unwrap_or_default()).unwrap_or_default();
    assert!(
        !log.contains(&hex::encode(&hash)),
        "the log holds the full hash: {log}"
    );
    assert!(log.contains(&added.fingerprint));

    let removed = s.remove_key("acme", &added.id, &op()).await;
    assert!(removed.is_ok(), "{removed:?}");
    assert_eq!(s.key_owner(&hash).await.ok(), Some(None));
    assert!(matches!(
        s.remove_key("acme", &added.id, &op()).await,
        Err(StoreError::NoKey(_))
    ));
    assert!(matches!(
        s.remove_key("acme", "not-a-number", &op()).await,
        Err(StoreError::NoKey(_))
    ));
    let again = s.add_key(key_of("globex", &hash), hash, &op()).await;
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(s.keys("globex").await.map(|k| k.len()).ok(), Some(1));
}

#[tokio::test]
async fn each_change_is_one_logged_transaction_that_survives_reopening() {
    let dir = tempdir();
    let hash = [7u8; 32];
    {
        let s = store_with(&dir, &["acme"]).await;
        let i = s.add_identity(identity("acme", "phone-1234"), &op()).await;
        let i = i.unwrap();
        s.add_key(key_of("acme", &hash), hash, &op()).await.unwrap();
        s.remove_identity("acme", &i.id, &op()).await.unwrap();
        s.add_identity(identity("acme", "phone-5678"), &op())
            .await
            .unwrap();
    }
    let s = open(&dir);
    assert_eq!(
        events(&s).await,
        vec![
            "account.created",
            "identity.added",
            "key.added",
            "identity.removed",
            "identity.added"
        ]
    );
    let log = s.security_log(Some("acme")).await.unwrap_or_default();
    assert_eq!(log[1].details["value"], "phone-1234");
    assert_eq!(log[2].details["fingerprint"], fingerprint(&hash));
    assert_eq!(log[3].details["value"], "phone-1234");
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok && v.records == 5, "{v:?}");
    assert_eq!(s.all_identities().await.map(|i| i.len()).ok(), Some(1));
    assert_eq!(s.key_owner(&hash).await.ok(), Some(Some("acme".into())));
    assert_eq!(
        s.identity_owner("PHONE-5678").await.ok(),
        Some(Some("acme".into()))
    );
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
