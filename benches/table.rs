//! Table benchmarks (criterion): one whole decision (snapshot load, account
//! lookup, IP match) at 100k accounts / 1M entries / 100k aliases / 100k
//! keys, hit and miss, IPv4 and IPv6, by account id, alias or key; publishing one account's change into that table; and decisions
//! while a writer publishes non-stop (readers must not slow down).
//!
//! `cargo bench --bench table` measures; `cargo test --benches` runs each once.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use ipgate_config::UnknownAccount;
use ipgate_policy::account::Caller;
use ipgate_policy::{decide, AccountPolicy, Decision, LiveTable, Mode, Policy, Table};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ACCOUNTS: u32 = 100_000;
const PER_ACCOUNT: u32 = 10;
const QUERIES: usize = 4096;
const POLICY: Policy = Policy {
    unknown_account: UnknownAccount::Deny,
    deny_unidentified: true,
};

/// Account i owns 8 IPv4 hosts, one IPv4 /28 and one IPv6 /64, all distinct.
fn nets_of(i: u32) -> Vec<IpNet> {
    let mut v = Vec::with_capacity(PER_ACCOUNT as usize);
    for k in 0..8 {
        let a = 0x0b00_0000 + i * 16 + k; // 11.x.y.z hosts
        v.push(IpNet::from(IpAddr::V4(Ipv4Addr::from(a))));
    }
    let net = Ipv4Addr::from(0x6400_0000 + i * 16); // 100.x.y.z/28
    v.push(IpNet::new(IpAddr::V4(net), 28).unwrap_or_default());
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0);
    v.push(IpNet::new(IpAddr::V6(v6), 64).unwrap_or_default());
    v
}

fn build() -> Table {
    let accounts = (0..ACCOUNTS).map(|i| {
        (
            format!("acct-{i}"),
            AccountPolicy::new(Mode::Enforce, &nets_of(i)),
        )
    });
    let t = Table::build(1, accounts, &["192.0.2.0/24".parse().unwrap_or_default()]);
    if std::env::var_os("IPGATE_BENCH_NO_IDENTITIES").is_some() {
        return t;
    }
    t.with_identities(
        (0..ACCOUNTS).map(|i| (format!("Sender-{i}"), format!("acct-{i}"))),
        (0..ACCOUNTS).map(|i| (sha(&key_of(i)), format!("acct-{i}"))),
    )
}

/// Account i's secret key (each account has one registered, and one alias).
fn key_of(i: u32) -> String {
    format!("sk_live_{i:08}_0123456789abcdef0123456789abcdef")
}

fn sha(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The whole decision for an identifier: resolve it (id or alias), decide.
#[inline]
fn judge_name(table: &Table, name: &str, ip: IpAddr) -> Decision {
    let caller = table
        .resolve_name(name)
        .map_or(Caller::Unknown, Caller::Account);
    decide(table, POLICY, ip, true, caller)
}

/// Deterministic pseudo-random account numbers (no RNG cost in the loop).
fn picks() -> Vec<u32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..QUERIES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(ACCOUNTS)) as u32
        })
        .collect()
}

fn queries(kind: &str) -> Vec<(String, IpAddr)> {
    picks()
        .into_iter()
        .map(|i| {
            let ip = match kind {
                "hit_v4" => IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i * 16 + 3)),
                "hit_v4_cidr" => IpAddr::V4(Ipv4Addr::from(0x6400_0000 + i * 16 + 9)),
                "miss_v4" => IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i * 16 + 12)),
                "hit_v6" => IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    (i >> 16) as u16,
                    i as u16,
                    1,
                    2,
                    3,
                    4,
                )),
                _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb9, 0, 0, 0, 0, 0, 1)),
            };
            (format!("acct-{i}"), ip)
        })
        .collect()
}

fn decisions(c: &mut Criterion) {
    let live = LiveTable::new(build());
    let mut g = c.benchmark_group("decision_100k_accounts_1m_entries");
    for kind in ["hit_v4", "hit_v4_cidr", "miss_v4", "hit_v6", "miss_v6"] {
        let qs = queries(kind);
        let mut n = 0usize;
        g.bench_function(kind, |b| {
            b.iter(|| {
                let (acct, ip) = &qs[n % QUERIES];
                n += 1;
                let table = live.load();
                black_box(judge_name(&table, acct, black_box(*ip)))
            })
        });
    }
    // The same hit with the snapshot already loaded: the arc-swap load's share.
    let qs = queries("hit_v4");
    let held = live.load_full();
    let mut n = 0usize;
    g.bench_function("hit_v4_snapshot_held", |b| {
        b.iter(|| {
            let (acct, ip) = &qs[n % QUERIES];
            n += 1;
            black_box(judge_name(&held, acct, black_box(*ip)))
        })
    });
    // Through an alias (100k registered), in another letter case.
    let aliases: Vec<(String, IpAddr)> = queries("hit_v4")
        .into_iter()
        .map(|(a, ip)| (a.replace("acct-", "SENDER-"), ip))
        .collect();
    let mut n = 0usize;
    g.bench_function("alias_hit_v4", |b| {
        b.iter(|| {
            let (name, ip) = &aliases[n % QUERIES];
            n += 1;
            let table = live.load();
            black_box(judge_name(&table, name, black_box(*ip)))
        })
    });
    // Through a secret key (100k registered): SHA-256 of the key, then the lookup.
    let keys: Vec<(String, IpAddr)> = picks()
        .into_iter()
        .zip(queries("hit_v4"))
        .map(|(i, (_, ip))| (key_of(i), ip))
        .collect();
    let mut n = 0usize;
    g.bench_function("key_hit_v4", |b| {
        b.iter(|| {
            let (key, ip) = &keys[n % QUERIES];
            n += 1;
            let table = live.load();
            let digest = sha(black_box(key));
            let caller = table
                .resolve_key(&digest)
                .map_or(Caller::Unknown, Caller::Account);
            black_box(decide(&table, POLICY, black_box(*ip), true, caller))
        })
    });
    let unknown: Vec<String> = (0..QUERIES).map(|i| format!("ghost-{i}")).collect();
    let mut n = 0usize;
    g.bench_function("unknown_account", |b| {
        b.iter(|| {
            n += 1;
            let table = live.load();
            black_box(judge_name(
                &table,
                &unknown[n % QUERIES],
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ))
        })
    });
    g.finish();
}

fn publish(c: &mut Criterion) {
    let live = LiveTable::new(build());
    let mut g = c.benchmark_group("publish_into_100k_accounts");
    let mut i = 0u32;
    g.bench_function("one_account", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % ACCOUNTS;
                let mut nets = nets_of(i);
                nets.push("198.51.100.7/32".parse().unwrap_or_default());
                (
                    format!("acct-{i}"),
                    AccountPolicy::new(Mode::Enforce, &nets),
                )
            },
            |(id, policy)| live.update(|t| t.with_account(&id, Some(policy))),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn decisions_while_publishing(c: &mut Criterion) {
    let live = Arc::new(LiveTable::new(build()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (live, stop) = (live.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i = (i + 1) % ACCOUNTS;
                let p = AccountPolicy::new(Mode::Enforce, &nets_of(i));
                live.update(|t| t.with_account(&format!("acct-{i}"), Some(p)));
            }
        })
    };
    let qs = queries("hit_v4");
    let mut n = 0usize;
    c.bench_function("decision_hit_v4_while_a_writer_publishes", |b| {
        b.iter(|| {
            let (acct, ip) = &qs[n % QUERIES];
            n += 1;
            let table = live.load();
            black_box(judge_name(&table, acct, black_box(*ip)))
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
}

criterion_group!(benches, decisions, publish, decisions_while_publishing);
criterion_main!(benches);
