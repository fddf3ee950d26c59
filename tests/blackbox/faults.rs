//! Faults around the gate: a full disk under the store, upstreams that are
//! down, slow or reset connections, an SMTP server that is slow or drops
//! the connection. Each must end in a clear answer, never a hang, and
//! change nothing it should not.

use crate::common::fs::copy_dir;
use crate::common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A small tmpfs mounted over a directory; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None (and a note) when this user may not mount, unless
    /// `IPGATE_REQUIRE_MOUNT` is set, which makes that a failure.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            other => {
                assert!(
                    std::env::var_os("IPGATE_REQUIRE_MOUNT").is_none(),
                    "cannot mount a tmpfs: {other:?}"
                );
                eprintln!("cannot mount a tmpfs here (needs root); skipped the disk-full test");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file until the file system is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let mut small = [0u8; 512];
    while f.write_all(&small[..]).is_ok() {
        small[0] = small[0].wrapping_add(1);
    }
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_refuses_changes_clearly_and_the_proxy_keeps_enforcing() {
    let up = Upstream::start();
    let mut gate = Server::start(
        &up,
        ServerOpts::self_service("max_entries_per_account = 100000"),
    );
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    // Move the store onto a small tmpfs.
    gate.stop();
    let store = gate.dir.path().join("store");
    let saved = gate.dir.path().join("store-saved");
    std::fs::rename(&store, &saved).unwrap();
    let Some(_mount) = Tmpfs::mount(&store, "64m") else {
        return;
    };
    copy_dir(&saved, &store);
    gate.restart();
    let (s, b) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.2"})),
    );
    assert_eq!(s, 201, "writes work before the disk fills: {b}");

    let filler = fill(&store);
    let auth = [("X-Account-Id", "acme")];
    let mut refused = 0;
    let mut refused_ips = Vec::new();
    // sled writes into log segments it has already allocated: keep adding
    // (long remarks) until a write needs space the disk does not have.
    let remark = "x".repeat(100);
    let mut added = 0;
    for i in 0..20_000 {
        let ip = format!("127.3.{}.{}", i / 250, i % 250 + 1);
        let (s, b) = gate.admin(
            "POST",
            "/admin/v1/accounts/acme/whitelist",
            Some(json!({"cidr": ip, "remark": remark})),
        );
        if s == 201 {
            added += 1;
            continue;
        }
        assert_eq!(s, 503, "{b}");
        assert_eq!(b["errors"][0]["field"], "store", "{b}");
        assert!(
            b["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot take changes"),
            "{b}"
        );
        assert_eq!(
            gate.get(&ip, "/sms/x", &auth).0,
            403,
            "a refused entry is not live"
        );
        refused += 1;
        refused_ips.push(ip);
        if refused == 3 {
            break;
        }
    }
    assert_eq!(
        refused,
        3,
        "the full disk was never noticed ({added} added):\n{}",
        gate.log()
    );
    eprintln!("disk full noticed after {added} more entries");
    // The proxy keeps enforcing the last table.
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &auth).0, 200);
    assert_eq!(gate.get("127.0.0.2", "/sms/x", &auth).0, 200);
    assert_eq!(gate.get("127.0.0.200", "/sms/x", &auth).0, 403);
    // The customer side refuses too, with the same clear error.
    let (s, b) = submit_request(&gate, &alice, json!({"ips": ["127.0.0.201"]}));
    assert_eq!(s, 503, "{b}");

    // Free the space and restart: what was refused is not there, the rest is.
    std::fs::remove_file(&filler).unwrap();
    // sled stays read-only after a failed write until it is opened again.
    let (s, b) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.98"})),
    );
    assert_eq!(s, 503, "{b}");
    gate.kill_and_restart();
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &auth).0, 200);
    assert_eq!(gate.get("127.0.0.2", "/sms/x", &auth).0, 200);
    let (_, list) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    let listed: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["cidr"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed.len(), 2 + added, "everything answered 201 is there");
    for ip in &refused_ips {
        assert!(
            !listed.contains(&format!("{ip}/32").as_str()),
            "{ip} was refused with 503 and is stored after all"
        );
    }
    for e in &listed {
        let ip = e.trim_end_matches("/32");
        assert_eq!(gate.get(ip, "/sms/x", &auth).0, 200, "{ip} listed and live");
    }
    let (s, b) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.99"})),
    );
    assert_eq!(s, 201, "writes work again after the restart: {b}");
    gate.stop();
}

/// Upstreams that misbehave: one that accepts and never answers, one that
/// resets each connection as soon as the request arrives.
fn bad_upstreams() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let reset = TcpListener::bind("127.0.0.1:0").unwrap();
    let reset_addr = reset.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in reset.incoming().flatten() {
            // Closing with unread bytes in the buffer sends RST, not FIN.
            let mut first = [0u8; 1];
            let _ = s.read(&mut first);
            std::thread::sleep(Duration::from_millis(20));
            drop(s);
        }
    });
    (silent_addr, reset_addr)
}

#[test]
fn upstreams_that_are_down_slow_or_resetting_get_a_json_error_not_a_hang() {
    let up = Upstream::start();
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let (silent, reset) = bad_upstreams();
    let route = |name: &str, addr: std::net::SocketAddr| {
        format!(
            "\n[[proxy.route]]\nname = \"{name}\"\npath_prefix = \"/{name}/\"\nupstream = \"http://{addr}\"\nconnect_timeout = \"1s\"\nread_timeout = \"1s\"\n"
        )
    };
    let gate = Server::start(
        &up,
        ServerOpts {
            extra: [
                route("down", dead),
                route("slow", silent),
                route("reset", reset),
            ]
            .concat(),
            ..ServerOpts::default()
        },
    );
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let auth = basic("acme");
    let auth = [("Authorization", auth.as_str())];
    for (path, status, code_want, within) in [
        (
            "/down/send",
            502,
            "upstream_unavailable",
            Duration::from_secs(5),
        ),
        (
            "/slow/send",
            504,
            "upstream_timeout",
            Duration::from_secs(10),
        ),
        (
            "/reset/send",
            502,
            "upstream_unavailable",
            Duration::from_secs(5),
        ),
    ] {
        let started = Instant::now();
        let (got, body) = gate.get("127.0.0.1", path, &auth);
        let took = started.elapsed();
        assert_eq!(
            (got, code(&body).as_str()),
            (status, code_want),
            "{path}: {body}"
        );
        assert!(took < within, "{path} took {took:?}");
        if path == "/slow/send" {
            assert!(
                took >= Duration::from_millis(900),
                "read_timeout is 1s, not {took:?}"
            );
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert!(
            v["error"]["request_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{body}"
        );
    }
    // A denied call never reaches even a broken upstream, and the gate is fine.
    let (got, body) = gate.get("127.0.0.2", "/slow/send", &auth);
    assert_eq!((got, code(&body).as_str()), (403, "ip_not_whitelisted"));
    assert_eq!(gate.get("127.0.0.1", "/sms/send", &auth).0, 200);
    gate.assert_metrics(&[
        r#"ipgate_proxy_requests_total{decision="allow",reason="whitelisted",route="down"} 1"#,
    ]);
}

#[test]
fn a_slow_or_hanging_up_smtp_server_delays_mail_but_loses_none() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    let mut tokens = Vec::new();
    for id in ["acme", "globex"] {
        let (s, b) = gate.admin(
            "POST",
            "/admin/v1/accounts",
            Some(json!({"id": id, "name": id, "emails": [format!("ops@{id}.test")], "whitelist": "enforce"})),
        );
        assert_eq!(s, 201, "{b}");
        tokens.push(user(&gate, id, &format!("{id}-main"), "main", true).0);
    }

    // Hangs up after the message: not delivered, so it goes again.
    gate.mail.set_mode(ipgate_devmail::Mode::Hangup);
    let (s, b) = submit_request(&gate, &tokens[0], json!({"ips": ["127.0.0.31"]}));
    assert_eq!(s, 202, "{b}");
    gate.wait_until("a failed attempt", 20, || {
        gate.security_events("acme")
            .iter()
            .any(|e| e == "mail.failed")
    });
    assert!(gate.mail.mails().is_empty());

    // So slow that the sender's 20 s limit per mail runs out: a failure,
    // then a retry.
    let failures = || {
        ["acme", "globex"]
            .iter()
            .map(|a| {
                gate.security_events(a)
                    .iter()
                    .filter(|e| *e == "mail.failed")
                    .count()
            })
            .sum::<usize>()
    };
    let before = failures();
    gate.mail
        .set_mode(ipgate_devmail::Mode::Slow(Duration::from_secs(12)));
    let started = Instant::now();
    let (s, b) = submit_request(&gate, &tokens[1], json!({"ips": ["127.0.0.32"]}));
    assert_eq!(s, 202, "{b}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a request never waits for SMTP"
    );
    gate.wait_until("a timed-out attempt", 40, || failures() > before);
    let (_, log) = gate.admin("GET", "/admin/v1/security-log", None);
    assert!(
        log.to_string().contains("did not finish within 20s"),
        "{log}"
    );
    // Slow but within the timeout: delivered.
    gate.mail
        .set_mode(ipgate_devmail::Mode::Slow(Duration::from_millis(100)));
    let mails = gate.mail.wait_for(2, Duration::from_secs(60));
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["ops@acme.test", "ops@globex.test"], "{}", gate.log());
    gate.wait_until("an empty outbox", 20, || {
        gate.metrics_text().contains("ipgate_mail_outbox_depth 0")
    });
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}
