//! The live table at 1,000,000 entries over 100,000 accounts, from a real
//! sled store, in process:
//!   - open: sled's recovery and the store's settling writes (reported);
//!   - load: build the whole table from the opened store, as `ipgate
//!     serve` does at start (target: under 2 s);
//!   - memory: RSS growth from loading it (target: under 100 MB);
//!   - approval: from calling the link's Approve (the same store
//!     transaction, flush and one-account publish the confirm page runs)
//!     until the proxy's next lookup allows the new IP (target: 5 ms);
//!     then a table built again from the store holds every approval;
//!   - the sync feed: the snapshot built from the store, its size plain
//!     and gzipped, and on a proxy the time to check it and build the
//!     table from it.
//!
//! `cargo bench --bench million` measures at full size. The store is built
//! once (through the store's own API, on /dev/shm when there is one, else
//! in `target/bench-stores/`) and kept for later runs; each run works on a
//! copy. `cargo test --benches` runs the same steps at 1,000 accounts in a
//! temporary directory, to check they still work.
//! `IPGATE_BENCH_ACCOUNTS=N` sets the size, `IPGATE_BENCH_CACHE_MB=N` sled's
//! page cache (default: `store.cache_mb`'s default), `IPGATE_BENCH_APPROVALS=N`
//! the number of approvals (default 50; 1,000 shows the rare slow one).
//! Like `ipgate serve`, the bench turns transparent huge pages off first
//! (`src/huge_pages.rs`); `IPGATE_BENCH_THP=on` leaves them on, to compare.

// A bench may unwrap: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipgate_control::domain::model::{Account, Source, WhitelistEntry, WhitelistMode};
use ipgate_control::domain::Timestamp;
use ipgate_control::http::sync::feed::wire_forms;
use ipgate_control::seclog::{Actor, LogKey};
use ipgate_control::service::publish::{load_table, snapshot, Publisher};
use ipgate_control::store::Store;
use ipgate_policy::snapshot::Snapshot;
use ipgate_policy::LiveTable;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/approval.rs"]
mod approval;
use approval::{allowed, approval};

#[path = "../tests/blackbox/common/fs.rs"]
mod fs;
use fs::copy_dir;

/// The allocator `ipgate` itself runs with, so RSS is measured alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PER_ACCOUNT: u32 = 10;
const APPROVALS: usize = 50;
/// Each approval gets its own IP in 203.0.0.0/16.
const MAX_APPROVALS: usize = 10_000;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Account i: 8 IPv4 hosts, one IPv4 /28, one IPv6 /64, all distinct.
fn cidrs_of(i: u32) -> Vec<String> {
    let mut v: Vec<String> = (0..8)
        .map(|k| Ipv4Addr::from(0x0b00_0000 + i * 16 + k).to_string())
        .collect();
    v.push(format!("{}/28", Ipv4Addr::from(0x6400_0000 + i * 16)));
    v.push(format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff));
    v
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

fn entry(account: &str, cidr: String) -> WhitelistEntry {
    WhitelistEntry {
        id: String::new(),
        account: account.parse().unwrap(),
        cidr: cidr.parse().unwrap(),
        remark: "bench".into(),
        tags: vec![],
        source: Source::Admin,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        expires_at: None,
        reminded: 0,
    }
}

fn store_dir(accounts: u32) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm/ipgate-bench-stores")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-stores")
    };
    // The name changes whenever what a filled store holds changes, so an
    // older cache is never mistaken for this one.
    base.join(format!("million-v3-{accounts}"))
}

/// The bench stores' security log key (they are rebuilt at will).
fn bench_log_key() -> LogKey {
    LogKey::new(b"ipgate-bench-log-key-0123456789abcdef").unwrap()
}

/// Fills a store through its own API (one transaction per account and per
/// account's entries, each flushed), once; later runs reuse it.
async fn populate(dir: &Path, accounts: u32) {
    let done = dir.join("complete");
    if done.exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir, bench_log_key()).unwrap();
    let actor = Actor::system();
    let started = Instant::now();
    for i in 0..accounts {
        let a = account(i);
        let id = a.id.to_string();
        store.create_account(a, &actor).await.unwrap();
        let entries = cidrs_of(i).into_iter().map(|c| entry(&id, c)).collect();
        store.add_entries(&id, entries, &actor).await.unwrap();
        if i > 0 && i % 10_000 == 0 {
            eprintln!(
                "  populating: {i} accounts, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(store);
    let _ = std::fs::write(done, b"");
    eprintln!(
        "  populated {accounts} accounts / {} entries in {:.0} s",
        accounts * PER_ACCOUNT,
        started.elapsed().as_secs_f64()
    );
}

/// What the sync feed costs at this size: the snapshot built from the
/// store (as the feed does, once per version), its wire forms, and on a
/// proxy the checks and the table built from it.
fn sync_feed(rt: &tokio::runtime::Runtime, publisher: &Publisher) {
    let started = Instant::now();
    let snap = rt.block_on(snapshot(&publisher.store, 1)).unwrap();
    let build = started.elapsed();
    let started = Instant::now();
    let (plain, gzip) = wire_forms(&snap).unwrap();
    let encode = started.elapsed();
    drop(snap);
    let started = Instant::now();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzip[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    let gunzip = started.elapsed();
    let started = Instant::now();
    let decoded = Snapshot::decode(&unzipped).unwrap();
    let decode = started.elapsed();
    let started = Instant::now();
    let table = decoded.to_table();
    let apply = started.elapsed();
    assert_eq!(table.entries(), publisher.table.load().entries());
    println!(
        "  sync feed: snapshot from the store {:.2} s, encoded and gzipped {:.2} s: {:.1} MB, {:.1} MB on the wire",
        build.as_secs_f64(),
        encode.as_secs_f64(),
        plain.len() as f64 / 1e6,
        gzip.len() as f64 / 1e6,
    );
    println!(
        "  on a proxy: gunzip {:.2} s, checksum and checks {:.2} s, table built {:.2} s",
        gunzip.as_secs_f64(),
        decode.as_secs_f64(),
        apply.as_secs_f64(),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let accounts: u32 = std::env::var("IPGATE_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 1_000 });
    if std::env::var("IPGATE_BENCH_THP").as_deref() != Ok("on") {
        // As `ipgate serve` does before it opens the store (src/huge_pages.rs).
        rustix::thread::disable_transparent_huge_pages(true)
            .unwrap_or_else(|e| panic!("turning transparent huge pages off: {e}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = if full {
        store_dir(accounts)
    } else {
        scratch.path().join("filled")
    };
    if !dir.join("complete").exists() {
        rt.block_on(populate(&dir, accounts));
    }
    if full && std::env::var_os("IPGATE_BENCH_FRESH").is_none() {
        // Measure in a fresh process: the memory the fill freed would
        // otherwise be reused and hide the table's growth.
        let status = std::process::Command::new(std::env::current_exe().unwrap_or_default())
            .args(std::env::args().skip(1))
            .env("IPGATE_BENCH_FRESH", "1")
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }

    // Approvals change the store: each run works on a fresh copy.
    let run_dir = dir.with_extension("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    copy_dir(&dir, &run_dir);

    // From the store, as `ipgate serve` does at start.
    let before_open = rss_mb();
    let cache_mb = std::env::var("IPGATE_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ipgate_control::store::DEFAULT_CACHE_MB);
    let opening = Instant::now();
    let store = Store::open_with_cache(&run_dir, cache_mb, bench_log_key()).unwrap();
    let open = opening.elapsed();
    let before_load = rss_mb();
    let started = Instant::now();
    let table = rt.block_on(load_table(&store)).unwrap();
    let load = started.elapsed();
    let live = Arc::new(LiveTable::new(table));
    let after_load = rss_mb();
    let loaded = live.load();
    assert_eq!(loaded.accounts(), accounts as usize);
    let entries = loaded.entries();
    assert_eq!(entries, (accounts * PER_ACCOUNT) as usize);
    drop(loaded);

    let publisher = Publisher::new(store, live);
    let approvals: usize = std::env::var("IPGATE_BENCH_APPROVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(APPROVALS)
        .clamp(1, MAX_APPROVALS);
    let approved: Vec<(String, Ipv4Addr)> = (0..approvals)
        .map(|k| {
            let acct = format!("acct-{}", (k as u32 * 7919) % accounts);
            (
                acct,
                Ipv4Addr::new(203, 0, (k / 250) as u8, (k % 250) as u8 + 1),
            )
        })
        .collect();
    let mut times: Vec<Duration> = approved
        .iter()
        .map(|(acct, ip)| rt.block_on(approval(&publisher, acct, *ip)))
        .collect();
    let first = times[0];
    times.sort();
    // Once the approvals have run: mimalloc returns freed pages to the
    // system lazily, so right after the load RSS still holds its garbage.
    std::thread::sleep(Duration::from_millis(500));
    let settled = rss_mb();
    // A restart builds the table from the store's network index: the
    // approvals must be in it too.
    let restarted = LiveTable::new(rt.block_on(load_table(&publisher.store)).unwrap());
    for (acct, ip) in &approved {
        assert!(
            allowed(&restarted, acct, IpAddr::V4(*ip)),
            "{ip} for {acct} after a restart"
        );
    }
    let median = times[times.len() / 2];
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    let worst = times[times.len() - 1];
    let over = times
        .iter()
        .filter(|t| **t > Duration::from_millis(5))
        .count();

    println!(
        "table of {accounts} accounts / {entries} entries, from a sled store at {}",
        dir.display()
    );
    println!(
        "  open the store:                  {:.2} s   (sled's recovery, then settling its log)",
        open.as_secs_f64()
    );
    println!(
        "  load from store (open excluded): {:.2} s   (target < 2 s)",
        load.as_secs_f64()
    );
    println!(
        "  RSS growth from the load:        {:.1} MB right after it, {:.1} MB settled  (target < 100 MB)",
        after_load - before_load,
        settled - before_load,
    );
    println!(
        "  RSS of opening the store:        {:.1} MB  (sled, store.cache_mb = {cache_mb})",
        before_load - before_open
    );
    println!(
        "  approval live in the proxy:      median {:.2} ms, p99 {:.2} ms, worst {:.2} ms of {approvals}, the first after start {:.2} ms  (target 5 ms)",
        ms(median),
        ms(p99),
        ms(worst),
        ms(first)
    );
    println!("  approvals over 5 ms:             {over} of {approvals}");
    sync_feed(&rt, &publisher);
    drop(publisher);
    let _ = std::fs::remove_dir_all(&run_dir);
}
