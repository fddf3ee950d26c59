//! Identities and secret keys, alike on both backends.

use super::*;
use crate::domain::model::{fingerprint, Identity, SecretKey};
use crate::hex;
use sha2::{Digest, Sha256};

on_both!(
    identities_are_unique_over_all_identities_and_account_ids_ignoring_case,
    a_key_is_kept_only_as_its_hash_and_belongs_to_one_account,
    each_change_is_one_logged_transaction_that_survives_reopening,
    lists_are_by_account_then_oldest_first_and_lookups_stay_in_their_account,
    ids_that_name_nothing_are_not_found_and_log_nothing,
    changes_note_the_names_and_hashes_they_touched,
);

async fn store_with<B: Backing>(b: &B, ids: &[&str]) -> B::S {
    let s = b.open().await;
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

async fn events<S: Written>(s: &S) -> Vec<String> {
    let log = s.security_log(None).await.unwrap_or_default();
    log.into_iter().map(|r| r.event).collect()
}

async fn identities_are_unique_over_all_identities_and_account_ids_ignoring_case<B: Backing>(b: B) {
    let s = store_with(&b, &["acme", "globex"]).await;
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

async fn a_key_is_kept_only_as_its_hash_and_belongs_to_one_account<B: Backing>(b: B) {
    let s = store_with(&b, &["acme", "globex"]).await;
    let secret = "live_sk_4f1d2c3b-very-secret";
    let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let added = s.add_key(key_of("acme", &hash), hash, &op()).await;
    let added = added.unwrap();
    assert_eq!(added.sha256, hex::encode(&hash));
    assert_eq!(s.key_owner(&hash).await.ok(), Some(Some("acme".into())));
    match s.add_key(key_of("globex", &hash), hash, &op()).await {
        Err(e @ StoreError::KeyTaken { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&added.fingerprint), "{text}");
            assert!(text.contains("account `acme`"), "{text}");
        }
        other => panic!("a second registration: {other:?}"),
    }
    assert!(matches!(
        s.add_key(key_of("ghost", &[1; 32]), [1; 32], &op()).await,
        Err(StoreError::NoAccount(_))
    ));

    assert!(
        !b.holds(&s, secret).await,
        "something in the store holds the key itself"
    );
    assert!(
        b.holds(&s, &added.fingerprint).await,
        "the scan finds what the store does hold"
    );
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

async fn each_change_is_one_logged_transaction_that_survives_reopening<B: Backing>(b: B) {
    let hash = [7u8; 32];
    {
        let s = store_with(&b, &["acme"]).await;
        let i = s.add_identity(identity("acme", "phone-1234"), &op()).await;
        let i = i.unwrap();
        s.add_key(key_of("acme", &hash), hash, &op()).await.unwrap();
        s.remove_identity("acme", &i.id, &op()).await.unwrap();
        s.add_identity(identity("acme", "phone-5678"), &op())
            .await
            .unwrap();
    }
    let s = b.open().await;
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
    assert_eq!(
        log[1].details,
        serde_json::json!({"identity": log[1].details["identity"], "value": "phone-1234", "remark": "sender"})
    );
    assert_eq!(
        log[2].details,
        serde_json::json!({"key_id": log[2].details["key_id"], "fingerprint": fingerprint(&hash), "remark": ""})
    );
    assert_eq!(
        log[3].details,
        serde_json::json!({"identity": log[1].details["identity"], "value": "phone-1234"})
    );
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok && v.records == 5, "{v:?}");
    assert_eq!(s.all_identities().await.map(|i| i.len()).ok(), Some(1));
    assert_eq!(s.key_owner(&hash).await.ok(), Some(Some("acme".into())));
    assert_eq!(
        s.identity_owner("PHONE-5678").await.ok(),
        Some(Some("acme".into()))
    );
}

async fn lists_are_by_account_then_oldest_first_and_lookups_stay_in_their_account<B: Backing>(
    b: B,
) {
    // Created out of order, and one id a prefix of another: the lists are
    // by account id bytewise ("B" before "a"), then by age.
    let s = store_with(&b, &["acme2", "acme", "Beta"]).await;
    let mut made = Vec::new();
    for (n, acct) in ["acme2", "acme", "Beta", "acme", "acme2", "Beta"]
        .iter()
        .enumerate()
    {
        let i = s
            .add_identity(identity(acct, &format!("value-{n}")), &op())
            .await
            .unwrap();
        let hash = [u8::try_from(n).unwrap(); 32];
        let k = s.add_key(key_of(acct, &hash), hash, &op()).await.unwrap();
        made.push((i, k));
    }
    let values: Vec<String> = s
        .all_identities()
        .await
        .unwrap()
        .into_iter()
        .map(|i| format!("{}:{}", i.account, i.value))
        .collect();
    assert_eq!(
        values,
        vec![
            "Beta:value-2",
            "Beta:value-5",
            "acme:value-1",
            "acme:value-3",
            "acme2:value-0",
            "acme2:value-4"
        ]
    );
    let keys: Vec<String> = s
        .all_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| format!("{}:{}", k.account, &k.sha256[..2]))
        .collect();
    assert_eq!(
        keys,
        vec!["Beta:02", "Beta:05", "acme:01", "acme:03", "acme2:00", "acme2:04"]
    );
    let acme: Vec<String> = s
        .identities("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.value)
        .collect();
    assert_eq!(acme, vec!["value-1", "value-3"]);
    assert_eq!(
        s.keys("acme").await.unwrap().len(),
        2,
        "acme2's keys are not acme's"
    );
    let (i, k) = &made[1];
    assert_eq!(
        s.identity("acme", &i.id).await.unwrap().map(|x| x.value),
        Some("value-1".to_string())
    );
    assert_eq!(
        s.key("acme", &k.id).await.unwrap().map(|x| x.sha256),
        Some(k.sha256.clone())
    );
    for account in ["acme2", "ACME", "ghost"] {
        assert!(s.identity(account, &i.id).await.unwrap().is_none());
        assert!(s.key(account, &k.id).await.unwrap().is_none());
        assert!(matches!(
            s.remove_identity(account, &i.id, &op()).await,
            Err(StoreError::NoIdentity(_))
        ));
        assert!(matches!(
            s.remove_key(account, &k.id, &op()).await,
            Err(StoreError::NoKey(_))
        ));
    }
    // Every record has its own id, as given back when it was added.
    let mut ids: Vec<&str> = made
        .iter()
        .flat_map(|(i, k)| [i.id.as_str(), k.id.as_str()])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12);
}

async fn ids_that_name_nothing_are_not_found_and_log_nothing<B: Backing>(b: B) {
    let s = store_with(&b, &["acme"]).await;
    s.add_identity(identity("acme", "sender-1"), &op())
        .await
        .unwrap();
    s.add_key(key_of("acme", &[3; 32]), [3; 32], &op())
        .await
        .unwrap();
    let before = events(&s).await.len();
    for id in [
        "",
        "x",
        "-1",
        "1.0",
        "999999",
        "18446744073709551615",
        "99999999999999999999999",
    ] {
        assert!(s.identity("acme", id).await.unwrap().is_none(), "{id}");
        assert!(s.key("acme", id).await.unwrap().is_none(), "{id}");
        match s.remove_identity("acme", id, &op()).await {
            Err(StoreError::NoIdentity(named)) => assert_eq!(named, id),
            other => panic!("removing identity {id:?}: {other:?}"),
        }
        match s.remove_key("acme", id, &op()).await {
            Err(StoreError::NoKey(named)) => assert_eq!(named, id),
            other => panic!("removing key {id:?}: {other:?}"),
        }
    }
    assert_eq!(events(&s).await.len(), before);
    assert_eq!(s.identity_owner("nobody").await.ok(), Some(None));
    assert_eq!(s.key_owner(&[4; 32]).await.ok(), Some(None));
}

async fn changes_note_the_names_and_hashes_they_touched<B: Backing>(b: B) {
    let s = store_with(&b, &["acme"]).await;
    let _ = s.take_touched();
    let i = s
        .add_identity(identity("acme", "Sender-1"), &op())
        .await
        .unwrap();
    let k = s
        .add_key(key_of("acme", &[9; 32]), [9; 32], &op())
        .await
        .unwrap();
    assert_eq!(
        s.take_touched().touches,
        vec![Touch::Name("Sender-1".into()), Touch::Key([9; 32])]
    );
    // Refusals touch nothing.
    let _ = s.add_identity(identity("acme", "sender-1"), &op()).await;
    let _ = s.add_key(key_of("acme", &[9; 32]), [9; 32], &op()).await;
    let _ = s.remove_identity("acme", "x", &op()).await;
    let _ = s.remove_key("acme", "999999", &op()).await;
    assert_eq!(s.take_touched().touches, vec![]);
    s.remove_key("acme", &k.id, &op()).await.unwrap();
    s.remove_identity("acme", &i.id, &op()).await.unwrap();
    assert_eq!(
        s.take_touched().touches,
        vec![Touch::Key([9; 32]), Touch::Name("Sender-1".into())]
    );
}
