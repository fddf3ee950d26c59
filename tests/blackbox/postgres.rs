//! Control planes on one PostgreSQL database, as real processes: what one
//! changes is live on every plane's proxy, and two decisions of one
//! request made on two planes at once: exactly one wins. Needs the server
//! `DATABASE_URL` names (`scripts/test` starts a throw-away one); without
//! it these tests are skipped, unless `IPGATE_REQUIRE_POSTGRES` is set.

use crate::common::browser::{csrf, Browser};
use crate::common::*;
use ipgate_devmail::Mail;
use serde_json::json;
use std::time::{Duration, Instant};

/// A new database on the `DATABASE_URL` server, as the environment that
/// points ipgate at it: `IPGATE_STORE__URL` (no password in it) and
/// `IPGATE_STORE_PASSWORD`.
pub fn database() -> Option<Vec<(String, String)>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var_os("IPGATE_REQUIRE_POSTGRES").is_none(),
            "IPGATE_REQUIRE_POSTGRES is set but DATABASE_URL is not"
        );
        eprintln!("skipped: no DATABASE_URL");
        return None;
    };
    let config: tokio_postgres::Config = url.parse().expect("DATABASE_URL");
    let name = format!("ipgate_bb_{:016x}", rand_u64());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    Some(vec![
        (
            "IPGATE_STORE__URL".into(),
            format!("postgres://{user}@{host}:{port}/{name}"),
        ),
        ("IPGATE_STORE_PASSWORD".into(), password),
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
        Some(json!({"cidrs": ["127.0.0.31"]})),
    );
    assert_eq!(s, 201, "{v}");
    for gate in [&a, &b] {
        gate.wait_until("the entry is live", 10, || {
            calls_from(gate, "127.0.0.31") == 200
        });
        assert_eq!(calls_from(gate, "127.0.0.32"), 403);
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
    assert_eq!(v["records"], 2, "{v}");
}

/// Two decisions of one request, one on each control plane, at once:
/// exactly one wins every round, and both proxies then agree.
#[test]
fn two_decisions_on_two_control_planes_exactly_one_wins() {
    let Some(db) = database() else { return };
    let (_up, a, b) = two_planes(&db);
    let (s, v) = a.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "acme", "name": "Acme", "emails": ["ops@acme.test", "cto@acme.test"], "whitelist": "enforce"})),
    );
    assert_eq!(s, 201, "{v}");
    let (alice, _) = user(&a, "acme", "alice", "main", true);
    let mut seen = Vec::new();
    for round in 0..20u8 {
        let ip = format!("127.0.1.{}", round + 1);
        let (s, req) = submit_request(
            if round % 2 == 0 { &a } else { &b },
            &alice,
            json!({"ips": [ip]}),
        );
        assert_eq!(s, 202, "{req}");
        let links = new_links(&a, &b, &mut seen, 2);
        let forms: Vec<(String, String)> = [on(&a, &links[0]), on(&b, &links[1])]
            .into_iter()
            .map(|l| {
                let token = csrf(&Browser::new("").get(&l).body);
                (l, token)
            })
            .collect();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racing: Vec<_> = forms
            .into_iter()
            .zip(["approve", "reject"])
            .map(|((link, token), decision)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let form = [
                        ("csrf", token.as_str()),
                        ("confirm", "yes"),
                        ("decision", decision),
                    ];
                    (decision, Browser::new("").post(&link, &form).status)
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
        assert_eq!(request(&b, &alice, id)["status"], want, "round {round}");
        let live = if winners[0] == "approve" { 200 } else { 403 };
        for gate in [&a, &b] {
            gate.wait_until("both proxies agree", 10, || calls_from(gate, &ip) == live);
        }
    }
    let (_, v) = b.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}
