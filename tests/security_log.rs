//! The security log, black-box: admin changes are recorded with who and
//! from where, the chain verifies, and an edit made behind the server's
//! back is found after a restart.

mod common;
use common::*;
use serde_json::json;

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
