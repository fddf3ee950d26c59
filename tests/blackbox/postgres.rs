//! Control planes on one PostgreSQL database, as real processes: what one
//! changes is live on every plane's proxy, and two decisions of one
//! request made on two planes at once: exactly one wins. Needs the server
//! `DATABASE_URL` names (`scripts/test` starts a throw-away one); without
//! it these tests are skipped, unless `IPGATE_REQUIRE_POSTGRES` is set.

use crate::common::browser::{csrf, Browser};
use crate::common::fleet::{FleetOpts, FleetProxy};
use crate::common::*;
use ipgate_devmail::Mail;
use serde_json::json;
use std::time::{Duration, Instant};

/// The tests here take turns: one of them stops the server itself.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A new database on the `DATABASE_URL` server, as the environment that
/// points ipgate at it: `IPGATE_STORE__URL` (no password in it) and
/// `IPGATE_STORE_PASSWORD`.
pub fn database() -> Option<Vec<(String, String)>> {
    let name = format!("ipgate_bb_{:016x}", rand_u64());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (url, password) = rt.block_on(crate::common::pg::database(&name, true))?;
    Some(vec![
        ("IPGATE_STORE__URL".into(), url),
        ("IPGATE_STORE_PASSWORD".into(), password.unwrap_or_default()),
    ])
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Two `ipgate serve` processes (each a control plane with its own proxy)
/// on one database.
fn two_planes(db: &[(String, String)]) -> (Upstream, Server, Server) {
    let up = Upstream::start();
    let opts = || ServerOpts {
        env: db.to_vec(),
        ..ServerOpts::self_service("")
    };
    let a = Server::start(&up, opts());
    let b = Server::start(&up, opts());
    (up, a, b)
}

fn calls_from(gate: &Server, ip: &str) -> u16 {
    gate.get(ip, "/sms/send?username=acme", &[]).0
}

/// The link mails both planes' senders sent so far (each job goes out
/// from one of them).
fn all_mail(a: &Server, b: &Server) -> Vec<Mail> {
    [a.mail.mails(), b.mail.mails()].concat()
}

/// The review links of the link mails not yet in `seen`, once `n` are there.
fn new_links(a: &Server, b: &Server, seen: &mut Vec<String>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh: Vec<String> = all_mail(a, b)
            .iter()
            .filter(|m| m.subject.starts_with("Confirm"))
            .filter_map(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
            .filter(|l| !seen.contains(l))
            .collect();
        if fresh.len() >= n {
            seen.extend(fresh.iter().cloned());
            return fresh;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} new link mails, got {}\n{}\n{}",
            fresh.len(),
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `link` as served by `gate`'s portal (any plane serves every link).
fn on(gate: &Server, link: &str) -> String {
    let path = link
        .split_once("/confirm/")
        .map(|(_, t)| t)
        .unwrap_or_default();
    format!("http://{}/confirm/{path}", gate.portal)
}

#[test]
fn changes_on_either_control_plane_are_live_on_both_proxies() {
    let _turn = turn();
    let Some(db) = database() else { return };
    let (_up, a, b) = two_planes(&db);
    let (s, v) = a.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "acme", "name": "Acme", "emails": ["ops@acme.test"], "whitelist": "enforce"})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = b.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.31"})),
    );
    assert_eq!(s, 201, "{v}");
    for gate in [&a, &b] {
        gate.wait_until("the entry is live", 10, || {
            calls_from(gate, "127.0.0.31") == 200
        });
        assert_eq!(calls_from(gate, "127.0.0.32"), 403);
    }
    // Two `ipgate proxy` processes, each following both planes (in turn,
    // each starting with another).
    let (ua, ub) = (format!("http://{}", a.admin), format!("http://{}", b.admin));
    let proxies = [
        FleetProxy::start(&_up, FleetOpts::following(&[ua.clone(), ub.clone()])),
        FleetProxy::start(&_up, FleetOpts::following(&[ub, ua])),
    ];
    for p in &proxies {
        p.wait_until("the fleet proxy allows the entry", 15, || {
            p.get("127.0.0.31", "/sms/send?username=acme", &[]).0 == 200
        });
        assert_eq!(p.get("127.0.0.32", "/sms/send?username=acme", &[]).0, 403);
    }
    let (s, v) = a.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.32"})),
    );
    assert_eq!(s, 201, "{v}");
    for p in &proxies {
        p.wait_until("the next change reaches every proxy", 15, || {
            p.get("127.0.0.32", "/sms/send?username=acme", &[]).0 == 200
        });
    }
    // Both feeds stand at one version for the same changes.
    let version = |gate: &Server| {
        let answer = reqwest::blocking::Client::new()
            .get(format!("http://{}/sync/v1/snapshot", gate.admin))
            .bearer_auth(SYNC_TOKEN)
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200);
        let v = answer.headers().get("x-ipgate-version").cloned();
        v.and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    };
    a.wait_until("one version on both planes", 10, || {
        version(&a) == version(&b)
    });
    let (s, v) = a.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"], 3, "{v}");
}

/// Two decisions of one request, one on each control plane, at once:
/// exactly one wins every round of 100, and both planes' proxies then
/// agree.
#[test]
fn two_decisions_on_two_control_planes_exactly_one_wins() {
    let _turn = turn();
    let Some(db) = database() else { return };
    let (_up, a, b) = two_planes(&db);
    // 100 rounds over 10 accounts: each plane counts 2 link visits a round
    // for the account, 20 per account, under its 30 a minute.
    let mut tokens = Vec::new();
    for n in 0..10 {
        let (s, v) = a.admin(
            "POST",
            "/admin/v1/accounts",
            Some(json!({"id": format!("acme{n}"), "name": "Acme", "emails": ["ops@acme.test", "cto@acme.test"], "whitelist": "enforce"})),
        );
        assert_eq!(s, 201, "{v}");
        tokens.push(user(&a, &format!("acme{n}"), &format!("alice{n}"), "main", true).0);
    }
    let mut seen = Vec::new();
    for round in 0..100u8 {
        let n = usize::from(round % 10);
        let alice = &tokens[n];
        let ip = format!("127.0.1.{}", round + 1);
        let (s, req) = submit_request(
            if round % 2 == 0 { &a } else { &b },
            alice,
            json!({"ips": [ip]}),
        );
        assert_eq!(s, 202, "{req}");
        let links = new_links(&a, &b, &mut seen, 2);
        // Each round's reviewers from their own address: the link pages
        // limit visits per address.
        let reviewer = format!("127.0.2.{}", round + 1);
        let forms: Vec<(String, String)> = [on(&a, &links[0]), on(&b, &links[1])]
            .into_iter()
            .map(|l| {
                let token = csrf(&Browser::from_address("", &reviewer).get(&l).body);
                (l, token)
            })
            .collect();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racing: Vec<_> = forms
            .into_iter()
            .zip(["approve", "reject"])
            .map(|((link, token), decision)| {
                let barrier = barrier.clone();
                let reviewer = reviewer.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let form = [
                        ("csrf", token.as_str()),
                        ("confirm", "yes"),
                        ("decision", decision),
                    ];
                    let page = Browser::from_address("", &reviewer).post(&link, &form);
                    (decision, page.status)
                })
            })
            .collect();
        let results: Vec<(&str, u16)> = racing.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<&str> = results.iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results.iter().any(|r| r.1 == 409),
            "round {round}: {results:?}"
        );
        let id = req["id"].as_str().unwrap_or_default();
        let want = if winners[0] == "approve" {
            "approved"
        } else {
            "rejected"
        };
        assert_eq!(request(&b, alice, id)["status"], want, "round {round}");
        let live = if winners[0] == "approve" { 200 } else { 403 };
        let account = format!("/sms/send?username=acme{n}");
        for gate in [&a, &b] {
            gate.wait_until("both proxies agree", 10, || {
                gate.get(&ip, &account, &[]).0 == live
            });
        }
    }
    let (_, v) = b.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}

/// Runs `pg_ctl` on the throw-away cluster `scripts/test` started (as its
/// owner, nobody, when we are root).
fn pg_ctl(args: &[&str]) {
    let bin = std::env::var("IPGATE_PG_BIN").unwrap_or_default();
    let data = std::env::var("IPGATE_PG_DATA").unwrap_or_default();
    let pg_ctl = format!("{bin}/pg_ctl");
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nobody", "--", &pg_ctl]);
        c
    } else {
        std::process::Command::new(&pg_ctl)
    };
    let out = cmd
        .args(["-D", &data, "-w", "-t", "300"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The database stops (as at a crash) for two seconds while an operator
/// keeps adding entries: every change tried meanwhile is refused with a
/// clear 503, the proxy keeps judging calls with the table it has and
/// the sync feed serves its last snapshot, the
/// changes resume once the server is back, and every change answered 201
/// is in the store, the log chain whole.
#[test]
fn a_database_down_refuses_changes_clearly_and_they_resume() {
    let _turn = turn();
    let Some(db) = database() else { return };
    if std::env::var_os("IPGATE_PG_DATA").is_none() {
        eprintln!(
            "skipped: not the throw-away cluster (IPGATE_PG_DATA unset), which this test stops"
        );
        return;
    }
    let up = Upstream::start();
    let gate = Server::start(
        &up,
        ServerOpts {
            env: db,
            ..ServerOpts::default()
        },
    );
    gate.account("acme", "enforce", &["127.0.0.51"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = gate.admin;
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut answers = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let cidr = format!("10.{}.{}.0/24", i / 256, i % 256);
                let r = client
                    .post(format!("http://{admin}/admin/v1/accounts/acme/whitelist"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"cidr": cidr}))
                    .send()
                    .unwrap();
                let status = r.status().as_u16();
                answers.push((cidr, status, r.text().unwrap_or_default()));
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            answers
        })
    };
    let feed = |gate: &Server| {
        reqwest::blocking::Client::new()
            .get(format!("http://{}/sync/v1/snapshot", gate.admin))
            .bearer_auth(SYNC_TOKEN)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(feed(&gate), 200);
    pg_ctl(&["-m", "immediate", "stop"]);
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            calls_from(&gate, "127.0.0.51"),
            200,
            "the proxy keeps its table"
        );
        assert_eq!(calls_from(&gate, "127.0.0.52"), 403);
        assert_eq!(feed(&gate), 200, "the feed serves the last snapshot");
        std::thread::sleep(Duration::from_millis(100));
    }
    pg_ctl(&[
        "-l",
        &format!(
            "{}/server.log",
            std::env::var("IPGATE_PG_DATA").unwrap_or_default()
        ),
        "start",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = writer.join().unwrap();
    let refused: Vec<&(String, u16, String)> = answers.iter().filter(|a| a.1 != 201).collect();
    assert!(
        !refused.is_empty(),
        "some changes were tried while the database was down"
    );
    for (cidr, status, body) in &refused {
        assert_eq!(*status, 503, "{cidr}: {body}");
        assert!(body.contains("nothing was saved"), "{cidr}: {body}");
    }
    let tail = &answers[answers.len().saturating_sub(5)..];
    assert!(
        tail.iter().all(|a| a.1 == 201),
        "changes resumed: {tail:?}\n{}",
        gate.log()
    );
    let (s, v) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    assert_eq!(s, 200, "{v}");
    let stored: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["cidr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (cidr, status, _) in &answers {
        if *status == 201 {
            assert!(
                stored.contains(cidr),
                "{cidr} was answered 201 but is not stored"
            );
        }
    }
    // What is stored is live in the proxy too.
    assert_eq!(calls_from(&gate, "127.0.0.51"), 200);
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}

/// One control plane is killed (`kill -9`) and restarted over and over
/// while the other takes changes and requests: the other answers every
/// change, nothing it answered is lost, every link mail arrives (a mail
/// the killed plane held goes out once its lease runs out), and the log
/// chain verifies.
#[test]
fn kill_9_of_one_control_plane_loses_nothing() {
    let _turn = turn();
    let Some(db) = database() else { return };
    let (_up, mut a, b) = two_planes(&db);
    let rounds = 5;
    let mut tokens = Vec::new();
    for n in 0..rounds {
        let (s, v) = b.admin(
            "POST",
            "/admin/v1/accounts",
            Some(json!({"id": format!("acme{n}"), "name": "Acme", "emails": ["ops@acme.test", "cto@acme.test"], "whitelist": "enforce"})),
        );
        assert_eq!(s, 201, "{v}");
        tokens.push(user(&b, &format!("acme{n}"), &format!("alice{n}"), "main", true).0);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = b.admin;
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut answers = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let cidr = format!("10.{}.{}.0/24", i / 256, i % 256);
                let r = client
                    .post(format!("http://{admin}/admin/v1/accounts/acme0/whitelist"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"cidr": cidr}))
                    .send()
                    .unwrap();
                answers.push((cidr, r.status().as_u16()));
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            answers
        })
    };
    for (round, token) in tokens.iter().enumerate() {
        let (s, req) = submit_request(
            &b,
            token,
            json!({"ips": [format!("127.0.3.{}", round + 1)]}),
        );
        assert_eq!(s, 202, "{req}");
        std::thread::sleep(Duration::from_millis(100));
        a.kill_and_restart();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = writer.join().unwrap();
    assert!(answers.len() > 20);
    let refused: Vec<_> = answers.iter().filter(|a| a.1 != 201).collect();
    assert!(
        refused.is_empty(),
        "the surviving plane refused: {refused:?}\n{}",
        b.log()
    );
    let (s, v) = a.admin("GET", "/admin/v1/accounts/acme0/whitelist", None);
    assert_eq!(s, 200, "{v}");
    let stored = v.as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(stored, answers.len(), "every answered change is stored");
    // Both link mails of every request arrive, from one plane or the other
    // (at least once: a mail may come twice).
    let arrived = || {
        let mails = all_mail(&a, &b);
        (0..rounds).all(|n| {
            ["ops@acme.test", "cto@acme.test"].iter().all(|to| {
                mails.iter().any(|m| {
                    m.subject.starts_with("Confirm")
                        && m.to.iter().any(|t| t == to)
                        && m.text
                            .as_deref()
                            .is_some_and(|t| t.contains(&format!("127.0.3.{}", n + 1)))
                })
            })
        })
    };
    a.wait_until("every link mail", 150, arrived);
    let (_, v) = a.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}

/// A sled store with accounts, entries, a user, a token and a pending
/// request is copied into a new PostgreSQL database: a control plane on
/// the copy serves it all (the proxy allows what it did, the token works,
/// the request's link still decides), the log verifies to the same head,
/// and a second copy into the same database is refused unchanged. Then
/// the PostgreSQL store is copied back into a new sled store, which a
/// gate serves with the approval made on PostgreSQL, and goes on.
#[test]
fn a_store_copied_to_postgresql_and_back_serves_the_same() {
    let _turn = turn();
    let Some(db) = database() else { return };
    let up = Upstream::start();
    let mut old = Server::start(&up, ServerOpts::self_service(""));
    let (s, v) = old.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "acme", "name": "Acme", "emails": ["ops@acme.test"], "whitelist": "enforce"})),
    );
    assert_eq!(s, 201, "{v}");
    for cidr in ["127.0.0.61", "10.9.0.0/16"] {
        let (s, v) = old.admin(
            "POST",
            "/admin/v1/accounts/acme/whitelist",
            Some(json!({"cidr": cidr})),
        );
        assert_eq!(s, 201, "{v}");
    }
    // A time-bound entry keeps its end through both copies.
    let (s, v) = old.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.64", "expires_in": "30d"})),
    );
    assert_eq!(s, 201, "{v}");
    let timed_end = v["expires_at"].clone();
    let (alice, _) = user(&old, "acme", "alice", "main", true);
    let (s, req) = submit_request(&old, &alice, json!({"ips": ["127.0.0.62"]}));
    assert_eq!(s, 202, "{req}");
    let mails = old.mail.wait_for(1, Duration::from_secs(20));
    let link = mails
        .iter()
        .find_map(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
        .expect("a link mail");
    // The SMTP server has the mail a moment before its `mail.sent` record
    // is written: wait for that record, so the head read is the last.
    old.wait_until("the link mail recorded as sent", 20, || {
        old.metrics_text().contains("ipgate_mail_outbox_depth 0")
    });
    let (_, before) = old.admin("GET", "/admin/v1/security-log/verify", None);
    old.stop();

    let env: Vec<(String, String)> = db.clone();
    let url = env[0].1.clone();
    let copy = |url: &str| {
        std::process::Command::new(bin())
            .args(["store", "copy", "--from"])
            .arg(format!("sled:{}", old.dir.path().join("store").display()))
            .args(["--to", url])
            .env("IPGATE_LOG_KEY", LOG_KEY)
            .envs(env.iter().skip(1).map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let out = copy(&url);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("copied 3/3 entries"), "progress: {said}");
    assert!(
        said.contains(before["head"].as_str().unwrap_or("?")),
        "{said}"
    );

    let new = Server::start(
        &up,
        ServerOpts {
            env: db.clone(),
            ..ServerOpts::self_service("")
        },
    );
    let (_, after) = new.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(after["head"], before["head"]);
    assert_eq!(calls_from(&new, "127.0.0.61"), 200);
    assert_eq!(calls_from(&new, "127.0.0.62"), 403);
    assert_eq!(calls_from(&new, "127.0.0.64"), 200);
    new.assert_metrics(&["ipgate_table_entries_expiring 1"]);
    assert_eq!(
        request(&new, &alice, req["id"].as_str().unwrap_or_default())["status"],
        "pending"
    );
    let page = Browser::new("").get(&on(&new, &link));
    let token = csrf(&page.body);
    let decided = Browser::new("").post(
        &on(&new, &link),
        &[
            ("csrf", &token),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(decided.status, 200, "{}", decided.body);
    new.wait_until("the approved IP is live", 10, || {
        calls_from(&new, "127.0.0.62") == 200
    });

    // No store where the source should be: refused, and none is made.
    let missing = old.dir.path().join("no-store-here");
    let out = std::process::Command::new(bin())
        .args(["store", "copy", "--from"])
        .arg(format!("sled:{}", missing.display()))
        .args(["--to", &url])
        .env("IPGATE_LOG_KEY", LOG_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sled store"));
    assert!(!missing.exists());

    let again = copy(&url);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("not empty"), "{said}");

    // And back: the PostgreSQL store, approval and all, into a new sled
    // store that a gate then serves.
    let (_, on_pg) = new.admin("GET", "/admin/v1/security-log/verify", None);
    let mut back = Server::start(&up, ServerOpts::self_service(""));
    back.stop();
    let store = back.dir.path().join("store");
    std::fs::remove_dir_all(&store).unwrap();
    let out = std::process::Command::new(bin())
        .args(["store", "copy", "--from", &url, "--to"])
        .arg(format!("sled:{}", store.display()))
        .env("IPGATE_LOG_KEY", LOG_KEY)
        .envs(env.iter().skip(1).map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    back.restart();
    let (_, v) = back.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["head"], on_pg["head"]);
    for ip in ["127.0.0.61", "127.0.0.62", "127.0.0.64"] {
        assert_eq!(calls_from(&back, ip), 200, "{ip}");
    }
    back.assert_metrics(&["ipgate_table_entries_expiring 1"]);
    let (_, listed) = back.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    let timed: Vec<&serde_json::Value> = listed
        .as_array()
        .map(|l| l.iter().filter(|e| e.get("expires_at").is_some()).collect())
        .unwrap_or_default();
    assert_eq!(timed.len(), 1, "{listed}");
    assert_eq!(timed[0]["expires_at"], timed_end);
    assert_eq!(
        request(&back, &alice, req["id"].as_str().unwrap_or_default())["status"],
        "approved"
    );
    // The copied store goes on: a change, logged on the same chain.
    let (s, v) = back.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.63"})),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(calls_from(&back, "127.0.0.63"), 200);
    let (_, v) = back.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}
