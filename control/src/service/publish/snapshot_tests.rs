//! The snapshot of a real store makes the table `load_table` makes, and
//! one built straight from the store's data, before and after a round trip
//! through its bytes.

use super::*;
use crate::domain::model::{fingerprint, BlockEntry, Identity, WhitelistMode};
use crate::domain::Timestamp;
use crate::seclog::Actor;
use crate::store::tests::{entry_of, open};
use crate::store::AccountNets;
use ipgate_config::UnknownAccount;
use ipgate_policy::account::Caller;
use ipgate_policy::{decide, Decision, Policy};
use std::net::IpAddr;

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

/// The table straight from the store's data, written out here so the test
/// does not lean on `load_table`, which does the same.
async fn direct(store: &Store) -> Table {
    let mut accounts = Vec::new();
    let now = Timestamp::now().unix();
    let mut visit = |a: AccountNets<'_>| {
        let p = AccountPolicy::ending(a.mode.into(), a.nets, a.ending, now);
        accounts.push((a.id.to_string(), p));
    };
    let found = store.for_each_account_policy(&mut visit).await;
    assert!(found.is_ok(), "{found:?}");
    let blocked = nets(
        store
            .blocklist()
            .await
            .unwrap_or_default()
            .iter()
            .map(|b| b.cidr),
    );
    let identities = store
        .all_identities()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.value, String::from(i.account)));
    let keys: Vec<([u8; 32], String)> = store
        .all_keys()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| Some((stored_hash(&k)?, String::from(k.account))))
        .collect();
    Table::build(1, accounts, &blocked).with_identities(identities, keys)
}

/// Each decision `t` makes for a caller naming each of `names` (or sending
/// a key hashing to each of `keys`) from each of `ips`.
fn answers(t: &Table, names: &[&str], keys: &[[u8; 32]], ips: &[IpAddr]) -> Vec<Decision> {
    let policy = Policy {
        unknown_account: UnknownAccount::Deny,
        deny_unidentified: true,
    };
    let callers: Vec<Caller<'_>> = names
        .iter()
        .map(|n| t.resolve_name(n))
        .chain(keys.iter().map(|k| t.resolve_key(k)))
        .map(|a| a.map_or(Caller::Unknown, Caller::Account))
        .collect();
    let mut out = Vec::new();
    for ip in ips {
        for c in &callers {
            out.push(decide(t, policy, *ip, true, *c));
        }
    }
    out
}

#[tokio::test]
async fn the_snapshot_table_answers_as_load_table_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let op = Actor::system();
    let whitelists = [
        (
            "acme",
            WhitelistMode::Enforce,
            vec!["203.0.113.10/32", "10.0.0.0/8", "2001:db8::/64"],
        ),
        ("Globex", WhitelistMode::Report, vec!["198.51.100.0/24"]),
        ("bare", WhitelistMode::Enforce, vec![]),
        ("zeta", WhitelistMode::Off, vec!["192.0.2.1/32"]),
    ];
    for (id, mode, cidrs) in &whitelists {
        let made = s.create_account(account(id, *mode), &op).await;
        assert!(made.is_ok(), "{made:?}");
        if !cidrs.is_empty() {
            let entries = cidrs.iter().map(|c| entry_of(id, c)).collect();
            let added = s.add_entries(id, entries, &op).await;
            assert!(added.is_ok(), "{added:?}");
        }
    }
    let block = BlockEntry {
        id: String::new(),
        cidr: "10.66.0.0/16".parse().unwrap(),
        remark: String::new(),
        created_at: Timestamp::now(),
    };
    let blocked = s.add_block(block, &op).await;
    assert!(blocked.is_ok(), "{blocked:?}");
    for (owner, value) in [("acme", "Sender-1"), ("Globex", "phone-9")] {
        let identity = Identity {
            id: String::new(),
            account: owner.parse().unwrap(),
            value: value.into(),
            remark: String::new(),
            created_at: Timestamp::now(),
        };
        let added = s.add_identity(identity, &op).await;
        assert!(added.is_ok(), "{added:?}");
    }
    for (owner, hash) in [("acme", [1u8; 32]), ("Globex", [2; 32])] {
        let key = SecretKey {
            id: String::new(),
            account: owner.parse().unwrap(),
            sha256: crate::hex::encode(&hash),
            fingerprint: fingerprint(&hash),
            remark: String::new(),
            created_at: Timestamp::now(),
        };
        let added = s.add_key(key, hash, &op).await;
        assert!(added.is_ok(), "{added:?}");
    }

    let snap = snapshot(&s, 1).await.unwrap();
    let c = snap.contents();
    assert_eq!(
        (
            c.accounts.len(),
            c.blocklist.len(),
            c.identities.len(),
            c.keys.len()
        ),
        (4, 1, 2, 2)
    );
    let decoded = Snapshot::decode(&snap.encode()).unwrap();
    assert_eq!(decoded, snap);

    // The store's addresses (each network's first and last), and some
    // outside every network.
    let mut ips: Vec<IpAddr> = whitelists
        .iter()
        .flat_map(|w| w.2.iter())
        .chain(["10.66.0.0/16"].iter())
        .filter_map(|c| c.parse::<IpNet>().ok())
        .flat_map(|n| [n.network(), n.broadcast()])
        .collect();
    ips.extend(
        [
            "8.8.8.8",
            "203.0.113.11",
            "11.0.0.0",
            "2001:db8:0:1::1",
            "::1",
            "192.0.2.2",
        ]
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok()),
    );
    assert_eq!(ips.len(), 18);
    let names = [
        "acme", "ACME", "globex", "bare", "zeta", "sender-1", "PHONE-9", "nobody",
    ];
    let keys = [[1; 32], [2; 32], [3; 32]];
    let want = answers(&direct(&s).await, &names, &keys, &ips);
    let loaded = load_table(&s).await.unwrap();
    assert_eq!(answers(&loaded, &names, &keys, &ips), want);
    assert_eq!(answers(&snap.to_table(), &names, &keys, &ips), want);
    assert_eq!(answers(&decoded.to_table(), &names, &keys, &ips), want);
    assert!(want.iter().any(|d| matches!(d, Decision::Allow(_))));
    assert!(want.iter().any(|d| matches!(d, Decision::Deny(_))));
    let t = decoded.to_table();
    assert_eq!(
        (t.accounts(), t.entries(), t.identities(), t.keys()),
        (
            loaded.accounts(),
            loaded.entries(),
            loaded.identities(),
            loaded.keys()
        )
    );
}
