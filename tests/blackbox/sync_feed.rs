//! The control plane's sync feed through the real binary: what a proxy
//! following it sees (checksummed snapshots, long polls ended by a change,
//! 304, versions that grow across a restart), the token rules, and
//! `ipgate admin proxies`.

use crate::common::*;
use ipgate_policy::snapshot::Snapshot;
use std::time::{Duration, Instant};

struct Polled {
    status: u16,
    version: Option<u64>,
    snapshot: Option<Snapshot>,
}

fn poll(server: &Server, query: &str, token: &str) -> Polled {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://{}/sync/v1/snapshot{query}", server.admin))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let version = resp
        .headers()
        .get("x-ipgate-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = resp.bytes().unwrap();
    let snapshot = (status == 200).then(|| Snapshot::decode(&body).unwrap());
    Polled {
        status,
        version,
        snapshot,
    }
}

fn nets_of(s: &Snapshot, account: &str) -> Vec<String> {
    s.contents()
        .accounts
        .iter()
        .find(|a| a.id == account)
        .map(|a| a.nets.iter().map(|n| n.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_proxy_following_the_feed_gets_each_change_as_it_is_made() {
    let up = Upstream::start();
    let mut server = Server::start(&up, ServerOpts::default());
    server.account("acme", "enforce", &["203.0.113.7"]);

    // Only the sync token opens the feed; the admin token does not.
    assert_eq!(poll(&server, "", TOKEN).status, 401);
    assert_eq!(
        poll(&server, "", "wrong-token-0123456789abcdef").status,
        401
    );
    let (s, _) = server.admin_with_token("GET", "/admin/v1/accounts", None, SYNC_TOKEN);
    assert_eq!(s, 401, "the sync token opens nothing else");

    let first = poll(&server, "?proxy=edge-1", SYNC_TOKEN);
    assert_eq!(first.status, 200);
    let v1 = first.version.unwrap();
    let snap = first.snapshot.unwrap();
    assert_eq!(snap.contents().version, v1);
    assert_eq!(nets_of(&snap, "acme"), ["203.0.113.7/32"]);

    // A poll at the current version waits; a change ends it at once.
    let waiting = {
        let admin = server.admin;
        std::thread::spawn(move || {
            let started = Instant::now();
            let client = reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let resp = client
                .get(format!(
                    "http://{admin}/sync/v1/snapshot?after={v1}&proxy=edge-1"
                ))
                .bearer_auth(SYNC_TOKEN)
                .send()
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.bytes().unwrap();
            (
                status,
                Snapshot::decode(&body).ok(),
                Instant::now(),
                started,
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (s, b) = server.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(serde_json::json!({"cidr": "198.51.100.0/24"})),
    );
    assert_eq!(s, 201, "{b}");
    let answered_after_change = Instant::now();
    let (status, snap, at, started) = waiting.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        at.duration_since(started) >= Duration::from_millis(250),
        "it waited"
    );
    assert!(
        at.saturating_duration_since(answered_after_change) < Duration::from_secs(1),
        "the change reached the poll within 1 s"
    );
    let snap = snap.unwrap();
    assert!(snap.contents().version > v1);
    assert_eq!(
        nets_of(&snap, "acme"),
        ["198.51.100.0/24", "203.0.113.7/32"]
    );

    // `ipgate admin proxies` lists the poller.
    let out = server.admin_cli(&["proxies"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "edge-1" && p["version"] == v1),
        "{listed}"
    );

    // After a restart the same table comes under a higher version.
    let before = snap.contents().version;
    assert!(server.stop().success());
    server.restart();
    let again = poll(&server, &format!("?after={before}"), SYNC_TOKEN);
    assert_eq!(
        again.status, 200,
        "a restarted control plane's version is higher"
    );
    assert!(again.version.unwrap() > before);
    assert_eq!(
        nets_of(&again.snapshot.unwrap(), "acme"),
        ["198.51.100.0/24", "203.0.113.7/32"]
    );
}

#[test]
fn a_stopping_control_plane_ends_the_polls_it_holds() {
    let up = Upstream::start();
    let mut server = Server::start(&up, ServerOpts::default());
    let v = poll(&server, "", SYNC_TOKEN).version.unwrap();
    let admin = server.admin;
    let waiting = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        client
            .get(format!("http://{admin}/sync/v1/snapshot?after={v}"))
            .bearer_auth(SYNC_TOKEN)
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a held poll must not hold the stop for the poll's 25 s: {:?}",
        started.elapsed()
    );
    // Answered (304, so the proxy asks another control plane), not cut off.
    assert_eq!(waiting.join().unwrap().ok(), Some(304));
}
