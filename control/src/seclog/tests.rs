use super::*;
use serde_json::json;
use sled::transaction::TransactionError;

fn key(fill: u8) -> LogKey {
    LogKey::new(&[fill; 32]).unwrap()
}

fn tree() -> sled::Tree {
    let db = sled::Config::new().temporary(true).open().unwrap();
    db.open_tree("seclog").unwrap()
}

fn add(log: &sled::Tree, key: &LogKey, what: &str) {
    let event = Event {
        event: what,
        account: Some("acme"),
        details: json!({"n": what}),
    };
    let r: Result<String, TransactionError<CorruptHead>> =
        log.transaction(|tx| append(tx, key, &Actor::system(), &event));
    r.unwrap_or_else(|e| panic!("{e:?}"));
}

/// A record as ipgate wrote them before log keys: plain SHA-256.
fn add_unkeyed(log: &sled::Tree, seq: u64, prev: &str) -> String {
    let mut rec = SecRecord {
        seq,
        at: "2024-01-01T00:00:00Z".into(),
        event: "account.created".into(),
        account: Some("acme".into()),
        actor: "admin".into(),
        ip: None,
        details: json!({}),
        key_id: None,
        prev: prev.into(),
        hash: String::new(),
    };
    rec.hash = rec.compute_hash(&key(0));
    put(log, &rec);
    rec.hash
}

fn put(log: &sled::Tree, rec: &SecRecord) {
    log.insert(rec.seq.to_be_bytes(), encode(rec)).unwrap();
    let head = Head {
        seq: rec.seq,
        hash: rec.hash.clone(),
    };
    log.insert(HEAD_KEY, encode(&head)).unwrap();
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn record(log: &sled::Tree, seq: u64) -> SecRecord {
    let raw = log
        .get(seq.to_be_bytes())
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no record {seq}"));
    serde_json::from_slice(&raw).unwrap()
}

fn check(log: &sled::Tree, key: &LogKey) -> Verification {
    verify(log, key).unwrap()
}

#[test]
fn a_keyed_chain_verifies_only_with_its_key() {
    let log = tree();
    for e in ["a", "b", "c"] {
        add(&log, &key(1), e);
    }
    let v = check(&log, &key(1));
    assert!(v.ok, "{v:?}");
    assert_eq!((v.records, v.keyed_from), (3, Some(1)));
    assert_eq!(record(&log, 2).key_id.as_deref(), Some(key(1).id()));

    let v = check(&log, &key(2));
    assert_eq!((v.ok, v.broken_at), (false, Some(1)), "{v:?}");
    let why = v.reason.unwrap_or_default();
    assert!(
        why.contains(key(1).id()) && why.contains(key(2).id()),
        "{why}"
    );
}

#[test]
fn rehashing_an_edit_without_the_key_is_found() {
    // Keeping the key id: the plain SHA-256 is not the HMAC.
    let log = tree();
    for e in ["a", "b", "c"] {
        add(&log, &key(1), e);
    }
    let mut prev = record(&log, 1).hash;
    for seq in 2..=3 {
        let mut rec = record(&log, seq);
        rec.details = json!({"n": "forged"});
        rec.prev = prev;
        rec.hash = String::new();
        rec.key_id = None;
        let plain = rec.compute_hash(&key(9));
        rec.key_id = Some(key(1).id().to_string());
        rec.hash = plain;
        prev = rec.hash.clone();
        put(&log, &rec);
    }
    let v = check(&log, &key(1));
    assert_eq!((v.ok, v.broken_at), (false, Some(2)), "{v:?}");
    assert!(v.reason.unwrap_or_default().contains("HMAC"));

    // Dropping the key id: an unkeyed record after a keyed one.
    let log = tree();
    for e in ["a", "b"] {
        add(&log, &key(1), e);
    }
    let mut rec = record(&log, 2);
    rec.details = json!({"n": "forged"});
    rec.key_id = None;
    rec.hash = rec.compute_hash(&key(9));
    put(&log, &rec);
    let v = check(&log, &key(1));
    assert_eq!((v.ok, v.broken_at), (false, Some(2)), "{v:?}");
    assert!(v.reason.unwrap_or_default().contains("not keyed"));
}

#[test]
fn records_from_before_keys_verify_before_the_keyed_ones() {
    let log = tree();
    let h1 = add_unkeyed(&log, 1, GENESIS);
    add_unkeyed(&log, 2, &h1);
    let v = check(&log, &key(1));
    assert!(v.ok, "{v:?}");
    assert_eq!(v.keyed_from, None);
    add(&log, &key(1), "keyed");
    let v = check(&log, &key(1));
    assert!(v.ok, "{v:?}");
    assert_eq!((v.records, v.keyed_from), (3, Some(3)));

    // Record 3's HMAC covers record 2's hash: editing record 2 and
    // rehashing it breaks the chain at 3.
    let mut two = record(&log, 2);
    two.actor = "someone else".into();
    two.hash = two.compute_hash(&key(1));
    log.insert(2u64.to_be_bytes(), encode(&two)).unwrap();
    let v = check(&log, &key(1));
    assert_eq!((v.ok, v.broken_at), (false, Some(3)), "{v:?}");
}

#[test]
fn the_head_record_is_read() {
    let log = tree();
    assert_eq!(head_record(&log).ok().flatten(), None);
    add(&log, &key(1), "a");
    add(&log, &key(1), "b");
    let head = head_record(&log).ok().flatten();
    assert_eq!(head.map(|r| r.seq), Some(2));
}
