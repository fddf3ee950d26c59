//! The two store backends side by side, in one run, in process:
//!   - approvals: one request after another submitted, its link mail
//!     readied, and approved through the publisher as the link page does;
//!     approvals per second over the whole cycle, and each approval's time
//!     from the Approve call until the proxy's table allows the new IP
//!     (median, p99, worst), on a sled store and on a PostgreSQL store;
//!   - the table loaded at start from a PostgreSQL store of a million
//!     entries over 100,000 accounts (target: under 2 s).
//!
//! `cargo bench --bench backends` measures at full size: 1,000 approvals
//! and the million entries (the PostgreSQL store is filled once, through
//! `ipgate store copy`'s import, into database `ipgate_bench_million`, and
//! kept). `cargo test --benches` runs the same steps at 50 approvals and
//! 1,000 accounts. PostgreSQL is the server `DATABASE_URL` names; without
//! it the PostgreSQL half is skipped (unless `IPGATE_REQUIRE_POSTGRES` is
//! set). `IPGATE_BENCH_APPROVALS=N` and `IPGATE_BENCH_ACCOUNTS=N` change
//! the sizes.

// A bench may unwrap: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipgate_control::domain::model::{Account, Source, WhitelistEntry, WhitelistMode};
use ipgate_control::domain::Timestamp;
use ipgate_control::seclog::{Actor, LogKey};
use ipgate_control::service::publish::{load_table, Publisher};
use ipgate_control::store::dump::Dump;
use ipgate_control::store::postgres::{PgOptions, PgStore};
use ipgate_control::store::Store;
use ipgate_policy::LiveTable;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/approval.rs"]
mod approval;
use approval::approval;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS_FOR_APPROVALS: u32 = 100;

fn key() -> LogKey {
    LogKey::new(b"ipgate-bench-log-key-0123456789abcdef").unwrap()
}

fn account(i: u32) -> Account {
    let id = format!("acct-{i}");
    Account {
        emails: vec![format!("ops@{id}.test")],
        name: id.clone(),
        id: id.parse().unwrap(),
        whitelist: WhitelistMode::Enforce,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        approvals_required: 1,
        frozen: false,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `n` approvals on `store`, one after another: what the line says.
async fn approvals(name: &str, store: Store, n: usize) {
    for i in 0..ACCOUNTS_FOR_APPROVALS {
        store
            .create_account(account(i), &Actor::system())
            .await
            .unwrap();
    }
    let live = Arc::new(LiveTable::new(load_table(&store).await.unwrap()));
    let publisher = Publisher::new(store, live);
    let started = Instant::now();
    let mut times = Vec::with_capacity(n);
    for k in 0..n {
        let acct = format!("acct-{}", k as u32 % ACCOUNTS_FOR_APPROVALS);
        let ip = Ipv4Addr::new(203, 0, (k / 250) as u8, (k % 250) as u8 + 1);
        times.push(approval(&publisher, &acct, ip).await);
    }
    let total = started.elapsed();
    times.sort();
    let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)];
    println!(
        "  {name:<10} {:>7.0} approvals/s (whole cycle)   live after Approve: median {:.2} ms, p99 {:.2} ms, worst {:.2} ms of {n}",
        n as f64 / total.as_secs_f64(),
        ms(at(50)),
        ms(at(99)),
        ms(times[times.len() - 1]),
    );
}

#[path = "../tests/blackbox/common/pg.rs"]
mod pg;

/// Database `name` on the `DATABASE_URL` server (made new when `fresh`,
/// else when missing), as store options.
async fn database(name: &str, fresh: bool) -> Option<PgOptions> {
    let (url, password) = pg::database(name, fresh).await?;
    Some(PgOptions::new(&url, password))
}

/// The bench's accounts: 8 IPv4 hosts, one IPv4 /28 and one IPv6 /64 each.
fn filled(accounts: u32) -> Dump {
    let mut d = Dump::default();
    let mut id = 0u64;
    for i in 0..accounts {
        let a = account(i);
        let aid = a.id.to_string();
        let mut cidrs: Vec<String> = (0..8)
            .map(|k| Ipv4Addr::from(0x0b00_0000 + i * 16 + k).to_string())
            .collect();
        cidrs.push(format!("{}/28", Ipv4Addr::from(0x6400_0000 + i * 16)));
        cidrs.push(format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff));
        for c in cidrs {
            id += 1;
            let e = WhitelistEntry {
                id: id.to_string(),
                account: a.id.clone(),
                cidr: c.parse().unwrap(),
                remark: "bench".into(),
                tags: vec![],
                source: Source::Admin,
                created_at: Timestamp::now(),
                updated_at: Timestamp::now(),
                expires_at: None,
                reminded: 0,
            };
            d.entries.push((aid.clone(), e));
        }
        d.accounts.push(a);
    }
    d.max_id = id;
    d
}

async fn million(accounts: u32) {
    let name = format!("ipgate_bench_million_{accounts}");
    let Some(options) = database(&name, false).await else {
        return;
    };
    let store = PgStore::open(&options, key()).await.unwrap();
    if store.export().await.map(|d| d.accounts.len()).unwrap_or(0) != accounts as usize {
        drop(store);
        let options = database(&name, true).await.unwrap();
        let store = PgStore::open(&options, key()).await.unwrap();
        let started = Instant::now();
        store
            .import(&filled(accounts), &mut |_, _, _| {})
            .await
            .unwrap();
        eprintln!(
            "  filled {name} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let store = Store::open_postgres(&options, key()).await.unwrap();
    let started = Instant::now();
    let table = load_table(&store).await.unwrap();
    let took = started.elapsed();
    assert_eq!(table.accounts(), accounts as usize);
    println!(
        "  PostgreSQL: table of {} accounts / {} entries loaded in {:.2} s (target < 2 s)",
        table.accounts(),
        table.entries(),
        took.as_secs_f64()
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = |var: &str, full_size: usize, small: usize| -> usize {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if full { full_size } else { small })
    };
    let n = size("IPGATE_BENCH_APPROVALS", 1_000, 50).clamp(1, 60_000);
    let accounts = size("IPGATE_BENCH_ACCOUNTS", 100_000, 1_000) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("approvals, one after another ({ACCOUNTS_FOR_APPROVALS} accounts):");
        let dir = tempfile::tempdir().unwrap();
        approvals("sled", Store::open(dir.path(), key()).unwrap(), n).await;
        if let Some(options) = database("ipgate_bench_approvals", true).await {
            approvals(
                "PostgreSQL",
                Store::open_postgres(&options, key()).await.unwrap(),
                n,
            )
            .await;
        }
        million(accounts).await;
    });
}
