//! The security log, black-box: admin changes are recorded with who and
//! from where, the chain verifies, an edit made behind the server's back
//! is found after a restart, and a login flood adds a few records only.

mod common;
use common::browser::{csrf, Browser};
use common::*;
use serde_json::{json, Value};

#[test]
fn admin_changes_are_logged_and_the_chain_verifies() {
    let up = Upstream::start();
    let gate = Gate::start(&up, GateOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(json!({"cidr": "192.0.2.1", "remark": "abuse"})),
    );
    gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "bad"})),
    );

    let (s, log) = gate.admin("GET", "/admin/v1/security-log", None);
    assert_eq!(s, 200);
    let events = events(&log);
    assert_eq!(
        events,
        vec!["account.created", "whitelist.added", "blocklist.added"],
        "the refused call left no record"
    );
    assert_eq!(log[1]["actor"], "admin");
    assert_eq!(log[1]["ip"], "127.0.0.1");
    assert_eq!(log[1]["details"]["cidr"], "203.0.113.10/32");
    let (_, only) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    assert_eq!(only.as_array().map(Vec::len), Some(2));

    let (s, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 3);
    assert_eq!(v["head"], log[2]["hash"]);

    let out = gate.admin_cli(&["log", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_edit_behind_the_servers_back_is_found() {
    let up = Upstream::start();
    let mut gate = Gate::start(&up, GateOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    gate.kill();
    {
        let db = sled::open(gate.dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let log = db.open_tree("seclog").unwrap_or_else(|e| panic!("{e}"));
        let key = 2u64.to_be_bytes();
        let raw = log
            .get(key)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("record 2 missing"));
        let forged = String::from_utf8_lossy(&raw).replace("203.0.113.10/32", "0.0.0.0/0");
        log.insert(key, forged.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        db.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    gate.kill_and_restart();
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["broken_at"], 2);
    let out = gate.admin_cli(&["log", "verify"]);
    assert!(
        !out.status.success(),
        "verify exits non-zero on a broken chain"
    );
}

/// `n` wrong logins for alice from one browser.
fn refused_logins(gate: &Gate, n: usize) {
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    let token = csrf(&b.get("/login").body);
    for i in 0..n {
        let r = b.post(
            "/login",
            &[
                ("csrf", &token),
                ("username", "alice"),
                ("password", "guess guess guess"),
                ("code", "123456"),
            ],
        );
        assert!(matches!(r.status, 401 | 429), "{i}: {}", r.status);
    }
}

/// acme's records of refused logins: one by one, and summaries.
fn refusal_records(gate: &Gate) -> (Vec<Value>, Vec<Value>) {
    let (s, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    assert_eq!(s, 200, "{log}");
    let all = log.as_array().cloned().unwrap_or_default();
    let of = |event: &str| -> Vec<Value> {
        all.iter()
            .filter(|r| r["event"] == event)
            .cloned()
            .collect()
    };
    (of("login.failed"), of("login.failed_summary"))
}

fn suppressed(summaries: &[Value]) -> u64 {
    summaries
        .iter()
        .map(|r| r["details"]["suppressed"].as_u64().unwrap_or(0))
        .sum()
}

fn login_gate() -> (Upstream, Gate) {
    let up = Upstream::start();
    let gate = Gate::start(&up, GateOpts::default());
    gate.account("acme", "enforce", &[]);
    user(&gate, "acme", "alice", "main", true);
    (up, gate)
}

#[test]
fn a_login_flood_adds_a_few_records_and_one_summary() {
    let (_up, gate) = login_gate();
    refused_logins(&gate, 200);
    let (failed, _) = refusal_records(&gate);
    // 5 a window; the flood may straddle two windows.
    assert!(
        (5..=10).contains(&failed.len()),
        "{} login.failed records for 200 refusals",
        failed.len()
    );
    let mut summaries = Vec::new();
    gate.wait_until("the summary of the suppressed refusals", 90, || {
        let (failed, s) = refusal_records(&gate);
        summaries = s;
        failed.len() as u64 + suppressed(&summaries) == 200
    });
    assert!((1..=2).contains(&summaries.len()), "{summaries:?}");
    let s = &summaries[0];
    assert_eq!(s["actor"], "system");
    assert_eq!(s["ip"], "127.0.0.1");
    assert_eq!(s["details"]["source"], "127.0.0.1");
    assert_eq!(s["details"]["usernames"], json!(["alice"]));
    assert_eq!(s["details"]["window_secs"], 60);
    let by_reason: u64 = s["details"]["reasons"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert_eq!(by_reason, s["details"]["suppressed"].as_u64().unwrap_or(0));
    assert!(
        s["details"]["reasons"]["rate limited"].as_u64() > Some(0),
        "{s}"
    );
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn suppressed_refusals_are_summarised_at_shutdown() {
    let (_up, mut gate) = login_gate();
    refused_logins(&gate, 20);
    assert!(gate.stop().success());
    gate.restart();
    let (failed, summaries) = refusal_records(&gate);
    assert_eq!(failed.len(), 5);
    assert_eq!(suppressed(&summaries), 15, "{summaries:?}");
}
