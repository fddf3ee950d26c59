use super::*;
use crate::account::Caller;
use crate::decision::{decide, Decision, Policy};
use crate::table::Mode;
use ipgate_config::UnknownAccount;
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::IpAddr;

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn account(id: &str, mode: Mode, nets: &[&str]) -> SnapshotAccount {
    SnapshotAccount {
        id: id.into(),
        mode,
        nets: nets.iter().map(|s| net(s)).collect(),
        ending: Vec::new(),
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.into(), b.into())
}

/// A small snapshot with a bit of everything, given out of order.
fn sample_contents() -> Contents {
    Contents {
        version: 42,
        made: 1_700_000_000,
        accounts: vec![
            account("zeta", Mode::Off, &[]),
            account(
                "Acme",
                Mode::Enforce,
                &["2001:db8::/64", "203.0.113.10/32", "10.0.0.0/8"],
            ),
            account("globex", Mode::Report, &["198.51.100.0/24"]),
        ],
        blocklist: vec![net("192.0.2.0/24"), net("100.64.0.0/10")],
        identities: vec![pair("sender-1", "Acme"), pair("Phone-7", "globex")],
        keys: vec![([9; 32], "globex".into()), ([1; 32], "acme".into())],
    }
}

fn sample() -> Snapshot {
    Snapshot::new(sample_contents()).unwrap()
}

/// A header made for `payload`, with the right length and checksum.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// The sample's payload as JSON, to damage in one place and re-frame.
fn sample_json() -> serde_json::Value {
    let bytes = sample().encode();
    serde_json::from_slice(&bytes[HEADER_LEN..]).unwrap()
}

fn decode_json(v: &serde_json::Value) -> Result<Snapshot, SnapshotError> {
    Snapshot::decode(&frame(v.to_string().as_bytes()))
}

#[test]
fn the_header_is_laid_out_as_documented() {
    let bytes = sample().encode();
    assert_eq!(HEADER_LEN, 57);
    assert_eq!(&bytes[..15], b"IPGATE-SNAPSHOT");
    assert_eq!(&bytes[15..17], &[0, 1]);
    let len = u64::from_be_bytes(bytes[17..25].try_into().unwrap_or_default());
    assert_eq!(len as usize, bytes.len() - HEADER_LEN);
    assert_eq!(&bytes[25..57], Sha256::digest(&bytes[57..]).as_slice());
    assert!(serde_json::from_slice::<serde_json::Value>(&bytes[57..]).is_ok());
    let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap_or([0; HEADER_LEN]);
    assert_eq!(Snapshot::check_header(&header).ok(), Some(len));
}

#[test]
fn a_snapshot_comes_back_the_same_and_in_canonical_order() {
    let s = sample();
    assert_eq!(Snapshot::decode(&s.encode()).ok(), Some(s.clone()));
    let c = s.contents();
    let ids: Vec<&str> = c.accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["Acme", "globex", "zeta"]);
    assert_eq!(c.accounts[0].nets[0], net("10.0.0.0/8"));
    assert_eq!(c.blocklist[0], net("100.64.0.0/10"));
    assert_eq!(c.keys[0].0, [1; 32]);
    // The same data given in another order encodes to the same bytes.
    let mut other = sample_contents();
    other.accounts.reverse();
    other.identities.reverse();
    other.keys.reverse();
    other.blocklist.reverse();
    let other = Snapshot::new(other).unwrap();
    assert_eq!(other.encode(), s.encode());
    assert_eq!(s.made(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
}

#[test]
fn the_table_answers_as_one_built_directly() {
    let s = sample();
    let t = s.to_table();
    assert_eq!((t.version(), t.accounts(), t.entries()), (42, 3, 4));
    assert_eq!((t.identities(), t.keys(), t.blocklist_entries()), (2, 2, 2));
    assert_eq!(t.updated(), s.made());
    assert_eq!(t.resolve_name("SENDER-1").map(|a| a.id()), Some("Acme"));
    assert_eq!(t.resolve_key(&[1; 32]).map(|a| a.id()), Some("Acme"));
    assert!(t.is_blocked([192, 0, 2, 1].into()));
    assert!(t
        .account("acme")
        .is_some_and(|a| a.mode == Mode::Enforce && a.allowed.contains([10, 9, 9, 9].into())));
    assert!(Snapshot::new(Contents::default())
        .map(|e| e.to_table().accounts() == 0)
        .unwrap_or(false));
}

/// The error's kind, to compare without the payloads.
fn kind(r: &Result<Snapshot, SnapshotError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(SnapshotError::NotASnapshot) => "magic",
        Err(SnapshotError::UnknownFormat(_)) => "format",
        Err(SnapshotError::TooLarge(_)) => "too large",
        Err(SnapshotError::Truncated { .. }) => "truncated",
        Err(SnapshotError::TrailingBytes(_)) => "trailing",
        Err(SnapshotError::Checksum) => "checksum",
        Err(SnapshotError::Parse(_)) => "parse",
        Err(SnapshotError::Invalid(_)) => "invalid",
    }
}

#[test]
fn the_frame_errors_say_what_is_wrong() {
    let good = sample().encode();
    let decode = |b: &[u8]| kind(&Snapshot::decode(b));
    assert_eq!(decode(&[]), "truncated");
    assert_eq!(decode(b"IPGATE"), "truncated");
    assert_eq!(decode(b"PK\x03\x04"), "magic");
    assert_eq!(decode(b"{\"version\":1}"), "magic");
    let mut foreign = good.clone();
    foreign[..15].copy_from_slice(b"IPGATE-SNAPSHOX");
    assert_eq!(decode(&foreign), "magic");
    let mut v2 = good.clone();
    v2[16] = 2;
    assert!(matches!(
        Snapshot::decode(&v2),
        Err(SnapshotError::UnknownFormat(2))
    ));
    let mut huge = good.clone();
    huge[17..25].copy_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
    assert!(matches!(
        Snapshot::decode(&huge),
        Err(SnapshotError::TooLarge(n)) if n == MAX_PAYLOAD + 1
    ));
    let mut at_limit = good.clone();
    at_limit[17..25].copy_from_slice(&MAX_PAYLOAD.to_be_bytes());
    assert_eq!(decode(&at_limit), "truncated");
    assert_eq!(decode(&good[..good.len() - 1]), "truncated");
    let mut long = good.clone();
    long.push(b'\n');
    assert!(matches!(
        Snapshot::decode(&long),
        Err(SnapshotError::TrailingBytes(1))
    ));
    let mut damaged = good.clone();
    damaged[HEADER_LEN + 3] ^= 0x20;
    assert_eq!(decode(&damaged), "checksum");
    assert_eq!(decode(&frame(b"{not json")), "parse");
    assert_eq!(decode(&frame(b"")), "parse");
    let mut extra = sample_json();
    extra["allow_all"] = true.into();
    assert_eq!(kind(&decode_json(&extra)), "parse", "unknown field");
    let mut mode = sample_json();
    mode["accounts"][0]["mode"] = "open".into();
    assert_eq!(kind(&decode_json(&mode)), "parse", "unknown mode");
    let mut cidr = sample_json();
    cidr["blocklist"][0] = "192.0.2.0/33".into();
    assert_eq!(kind(&decode_json(&cidr)), "parse", "bad network");
    let mut missing = sample_json();
    missing
        .as_object_mut()
        .map(|o| o.remove("blocklist"))
        .unwrap_or_default();
    assert_eq!(kind(&decode_json(&missing)), "parse", "missing field");
}

/// The sample's JSON with `change` applied, decoded: its content error.
fn invalid(change: impl FnOnce(&mut serde_json::Value)) -> Option<Invalid> {
    let mut v = sample_json();
    change(&mut v);
    match decode_json(&v) {
        Err(SnapshotError::Invalid(e)) => Some(e),
        other => panic!("not a content error: {other:?}"),
    }
}

#[test]
fn each_content_error_is_refused_with_its_kind() {
    use serde_json::json;
    let acme = json!({"id": "ACME", "mode": "off", "nets": []});
    let hash = "01".repeat(32);
    let cases: Vec<(Option<Invalid>, &str)> = vec![
        (
            invalid(|v| v["accounts"][0]["id"] = "has space".into()),
            "AccountId",
        ),
        (invalid(|v| v["accounts"][0]["id"] = "".into()), "AccountId"),
        (
            invalid(|v| v["accounts"][0]["id"] = "a".repeat(129).into()),
            "AccountId",
        ),
        (
            invalid(|v| {
                if let Some(a) = v["accounts"].as_array_mut() {
                    a.push(acme)
                }
            }),
            "DuplicateAccount",
        ),
        (
            invalid(|v| v["identities"][0]["name"] = "bad/name".into()),
            "IdentityName",
        ),
        (
            invalid(|v| v["identities"][0]["name"] = "SENDER-1".into()),
            "DuplicateIdentity",
        ),
        (
            invalid(|v| v["identities"][0]["name"] = "Globex".into()),
            "IdentityIsAccount",
        ),
        (
            invalid(|v| v["identities"][0]["account"] = "nobody".into()),
            "IdentityOwner",
        ),
        (
            invalid(|v| v["keys"][0]["sha256"] = "01".repeat(31).into()),
            "KeyHash",
        ),
        (
            invalid(|v| v["keys"][0]["sha256"] = "01".repeat(33).into()),
            "KeyHash",
        ),
        (
            invalid(|v| v["keys"][0]["sha256"] = "0G".repeat(32).into()),
            "KeyHash",
        ),
        (
            invalid(|v| v["keys"][1]["sha256"] = hash.clone().into()),
            "DuplicateKey",
        ),
        (
            invalid(|v| v["keys"][0]["account"] = "nobody".into()),
            "KeyOwner",
        ),
        (invalid(|v| v["made"] = u64::MAX.into()), "Made"),
    ];
    for (got, want) in cases {
        let got = format!("{got:?}");
        assert!(
            got.starts_with(&format!("Some({want}")),
            "{got} is not {want}"
        );
    }
    // `new` refuses the same, so no invalid snapshot can be encoded.
    let mut c = sample_contents();
    c.identities.push(pair("x", "nobody"));
    assert!(matches!(
        Snapshot::new(c),
        Err(Invalid::IdentityOwner { .. })
    ));
}

#[test]
fn every_single_byte_change_cut_or_addition_is_refused() {
    let good = sample().encode();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let got = Snapshot::decode(&bad);
            let want = match i {
                0..15 => "magic",
                15..17 => "format",
                17..25 => match &got {
                    Err(SnapshotError::TooLarge(_)) => "too large",
                    Err(SnapshotError::TrailingBytes(_)) => "trailing",
                    _ => "truncated",
                },
                _ => "checksum",
            };
            assert_eq!(kind(&got), want, "byte {i} ^ {flip:#x}");
        }
    }
    for cut in 0..good.len() {
        assert_eq!(kind(&Snapshot::decode(&good[..cut])), "truncated", "{cut}");
    }
    for extra in [&[0u8][..], b"\n", &good[..]] {
        let mut long = good.clone();
        long.extend_from_slice(extra);
        assert_eq!(kind(&Snapshot::decode(&long)), "trailing");
    }
}

/// Random valid contents: accounts a<n> (in random case), aliases n<k>
/// and key hashes owned by some of them.
fn contents() -> impl Strategy<Value = Contents> {
    let nets = prop::collection::vec((any::<u32>(), 8u8..=32), 0..4);
    let accounts = prop::collection::btree_map(0u16..300, (0u8..3, any::<bool>(), nets), 0..12);
    let owners = prop::collection::btree_map(0u16..200, any::<prop::sample::Index>(), 0..8);
    let keys = prop::collection::btree_map(any::<[u8; 32]>(), any::<prop::sample::Index>(), 0..6);
    let blocklist = prop::collection::vec((any::<u32>(), 16u8..=32), 0..4);
    (
        any::<u64>(),
        0u64..1 << 40,
        accounts,
        owners,
        keys,
        blocklist,
    )
        .prop_map(|(version, made, accounts, owners, keys, blocklist)| {
            let v4 = |(a, p): (u32, u8)| IpNet::new(IpAddr::from(a.to_be_bytes()), p).ok();
            let accounts: Vec<SnapshotAccount> = accounts
                .into_iter()
                .map(|(n, (mode, upper, nets))| {
                    let nets: Vec<IpNet> = nets.into_iter().filter_map(v4).collect();
                    SnapshotAccount {
                        id: if upper {
                            format!("A{n}")
                        } else {
                            format!("a{n}")
                        },
                        mode: [Mode::Off, Mode::Enforce, Mode::Report][mode as usize % 3],
                        // Every other account has its first network end.
                        ending: nets
                            .first()
                            .filter(|_| n % 2 == 1)
                            .map(|net| (*net, 4_000_000_000 + n as u64))
                            .into_iter()
                            .collect(),
                        nets,
                    }
                })
                .collect();
            let owner = |i: prop::sample::Index| {
                (!accounts.is_empty()).then(|| accounts[i.index(accounts.len())].id.clone())
            };
            let identities = owners
                .into_iter()
                .filter_map(|(k, i)| Some((format!("n{k}"), owner(i)?)))
                .collect();
            let keys = keys
                .into_iter()
                .filter_map(|(h, i)| Some((h, owner(i)?)))
                .collect();
            Contents {
                version,
                made,
                blocklist: blocklist.into_iter().filter_map(v4).collect(),
                identities,
                keys,
                accounts,
            }
        })
}

/// What `t` decides for a call from `ip` naming `name` (or sending a key
/// hashing to `key`), under both unknown-account policies.
fn decisions(t: &Table, name: &str, key: &[u8; 32], ip: IpAddr) -> Vec<Decision> {
    let callers = [t.resolve_name(name), t.resolve_key(key)];
    let mut out = Vec::new();
    for unknown_account in [UnknownAccount::Allow, UnknownAccount::Deny] {
        let policy = Policy {
            unknown_account,
            deny_unidentified: true,
        };
        for c in &callers {
            let caller = match c {
                Some(a) => Caller::Account(*a),
                None => Caller::Unknown,
            };
            out.push(decide(t, policy, ip, true, caller));
        }
    }
    out
}

proptest! {
    #[test]
    fn random_snapshots_round_trip_and_decide_alike(
        c in contents(),
        probes in prop::collection::vec((0u16..320, any::<u32>(), any::<[u8; 32]>()), 1..40),
    ) {
        let s = Snapshot::new(c.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bytes = s.encode();
        let back = Snapshot::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.encode(), bytes);
        // As `load_table` builds it: straight from the data.
        let direct = Table::build(
            c.version,
            c.accounts.iter().map(|a| (a.id.clone(), AccountPolicy::new(a.mode, &a.nets))),
            &c.blocklist,
        )
        .with_identities(c.identities.clone(), c.keys.clone());
        let decoded = back.to_table();
        prop_assert_eq!(
            (direct.version(), direct.accounts(), direct.entries(), direct.identities(), direct.keys()),
            (decoded.version(), decoded.accounts(), decoded.entries(), decoded.identities(), decoded.keys())
        );
        let known_keys: Vec<[u8; 32]> = c.keys.iter().map(|k| k.0).collect();
        for (i, (n, a, k)) in probes.into_iter().enumerate() {
            let ip = IpAddr::from(a.to_be_bytes());
            // Probe known accounts' networks as well as random addresses.
            let ip = c.accounts.get(i % (c.accounts.len() + 1))
                .and_then(|acc| acc.nets.first())
                .filter(|_| i % 2 == 0)
                .map_or(ip, |n| n.addr());
            let key = known_keys.get(i % (known_keys.len() + 1)).copied().unwrap_or(k);
            for name in [format!("a{n}"), format!("A{n}"), format!("n{n}")] {
                prop_assert_eq!(
                    decisions(&direct, &name, &key, ip),
                    decisions(&decoded, &name, &key, ip),
                    "{} {}", name, ip
                );
            }
        }
    }

    #[test]
    fn any_bytes_decode_without_panic_and_re_encode_alike(
        data in prop::collection::vec(any::<u8>(), 0..200),
        keep in 0usize..200,
    ) {
        let _ = Snapshot::decode(&data);
        // A good header on random bytes, and a good file cut anywhere.
        let _ = Snapshot::decode(&frame(&data));
        let good = sample().encode();
        let _ = Snapshot::decode(&good[..keep.min(good.len())]);
        if let Ok(s) = Snapshot::decode(&data) {
            prop_assert_eq!(Snapshot::decode(&s.encode()).ok(), Some(s));
        }
    }
}

#[test]
fn ending_entries_travel_with_their_time_and_end_in_the_table() {
    let mut c = sample_contents();
    let ends = net("203.0.113.10/32");
    c.accounts[1].ending = vec![(ends, 1_800_000_000)];
    let s = Snapshot::new(c).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&s.encode()[HEADER_LEN..]).unwrap();
    let acme = &json["accounts"][0];
    assert_eq!(acme["id"], "Acme");
    assert_eq!(
        acme["ending"],
        serde_json::json!([{"net": "203.0.113.10/32", "at": 1_800_000_000u64}])
    );
    assert!(
        json["accounts"][1].get("ending").is_none(),
        "an account with nothing ending encodes as before"
    );
    let back = Snapshot::decode(&s.encode()).unwrap();
    assert_eq!(back, s);

    let ip: IpAddr = "203.0.113.10".parse().unwrap();
    let before = back.to_table_at(1_799_999_999);
    assert!(before.account("acme").unwrap().allowed.contains(ip));
    assert_eq!(
        (before.expiring_entries(), before.next_expiry()),
        (1, Some(1_800_000_000))
    );
    let after = back.to_table_at(1_800_000_000);
    assert!(!after.account("acme").unwrap().allowed.contains(ip));
    assert!(after
        .account("acme")
        .unwrap()
        .allowed
        .contains("10.1.2.3".parse().unwrap()));
    assert_eq!(after.expiring_entries(), 0);
}

#[test]
fn an_ending_entry_not_among_the_accounts_networks_is_refused() {
    let mut c = sample_contents();
    c.accounts[1].ending = vec![(net("192.0.2.1/32"), 1_800_000_000)];
    assert!(matches!(Snapshot::new(c), Err(Invalid::EndingNet { .. })));
    let mut c = sample_contents();
    let n = net("10.0.0.0/8");
    c.accounts[1].ending = vec![(n, 1), (n, 2)];
    assert!(matches!(Snapshot::new(c), Err(Invalid::EndingNet { .. })));
    let mut v = sample_json();
    v["accounts"][0]["ending"] = serde_json::json!([{"net": "10.0.0.0/8", "at": 5, "extra": 1}]);
    assert!(matches!(decode_json(&v), Err(SnapshotError::Parse(_))));
}
