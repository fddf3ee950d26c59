//! The security log, black-box: admin changes are recorded with who and
//! from where, the chain verifies, an edit made behind the server's back
//! is found after a restart, and a login flood adds a few records only.

use crate::common::browser::{csrf, Browser};
use crate::common::*;
use serde_json::{json, Value};

#[test]
fn admin_changes_are_logged_and_the_chain_verifies() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
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
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    gate.kill();
    {
        let db = sled::open(gate.dir.path().join("store")).unwrap();
        let log = db.open_tree("seclog").unwrap();
        let key = 2u64.to_be_bytes();
        let raw = log
            .get(key)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("record 2 missing"));
        let forged = String::from_utf8_lossy(&raw).replace("203.0.113.10/32", "0.0.0.0/0");
        log.insert(key, forged.as_bytes()).unwrap();
        db.flush().unwrap();
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

/// A security-log record as stored (field order matters: it is hashed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Rec {
    seq: u64,
    at: String,
    event: String,
    account: Option<String>,
    actor: String,
    ip: Option<String>,
    details: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    prev: String,
    hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What someone with write access to the store, but not the log key, can
/// do while ipgate is stopped: rewrite records `from..=to` (`edit` changes
/// each), rechain them with plain SHA-256 as ipgate did before log keys
/// (dropping `key_id` unless `keep_key_id`), fix the next record's `prev`
/// and the head. Returns the number of records.
fn rewrite_plain(
    store: &std::path::Path,
    from: u64,
    to: Option<u64>,
    keep_key_id: bool,
    edit: impl Fn(&mut Rec),
) -> u64 {
    let db = sled::open(store).unwrap();
    let log = db.open_tree("seclog").unwrap();
    let read = |seq: u64| -> Option<Rec> {
        log.get(seq.to_be_bytes())
            .ok()
            .flatten()
            .map(|raw| serde_json::from_slice(&raw).unwrap())
    };
    let mut prev = match from {
        1 => GENESIS.to_string(),
        n => read(n - 1).map(|r| r.hash).unwrap_or_default(),
    };
    let mut seq = from;
    while let Some(mut rec) = read(seq) {
        if to.is_some_and(|t| seq > t) {
            // The first record not rewritten only gets its `prev` fixed.
            rec.prev = prev.clone();
            log.insert(
                seq.to_be_bytes(),
                serde_json::to_vec(&rec).unwrap_or_default(),
            )
            .unwrap();
            break;
        }
        edit(&mut rec);
        if !keep_key_id {
            rec.key_id = None;
        }
        rec.prev = prev;
        rec.hash = String::new();
        let body = serde_json::to_vec(&rec).unwrap_or_default();
        rec.hash = sha256_hex(&[rec.prev.as_bytes(), b"\n", &body].concat());
        prev = rec.hash.clone();
        log.insert(
            seq.to_be_bytes(),
            serde_json::to_vec(&rec).unwrap_or_default(),
        )
        .unwrap();
        seq += 1;
    }
    let last = log
        .iter()
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| k.len() == 8)
        .count() as u64;
    if to.is_none() {
        let head = json!({"seq": last, "hash": prev});
        log.insert("head", serde_json::to_vec(&head).unwrap_or_default())
            .unwrap();
    }
    db.flush().unwrap();
    last
}

fn verify(gate: &Server) -> serde_json::Value {
    let (s, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(s, 200, "{v}");
    v
}

/// Records keyed with the log key cannot be rewritten and rechained with
/// plain SHA-256 unseen, whether the forger drops the key id or keeps it.
#[test]
fn a_rewrite_rechained_with_plain_sha256_is_found_with_the_key() {
    for keep_key_id in [false, true] {
        let up = Upstream::start();
        let mut gate = Server::start(&up, ServerOpts::default());
        gate.account("acme", "enforce", &["203.0.113.10", "198.51.100.7"]);
        assert_eq!(verify(&gate)["ok"], true);
        gate.kill();
        let store = gate.dir.path().join("store");
        rewrite_plain(&store, 2, None, keep_key_id, |r| {
            if r.seq == 2 {
                r.details["cidr"] = json!("0.0.0.0/0");
            }
        });
        gate.restart();
        let v = verify(&gate);
        assert_eq!(
            (v["ok"].clone(), v["broken_at"].clone()),
            (json!(false), json!(2)),
            "keep_key_id {keep_key_id}: {v}"
        );
        let out = gate.admin_cli(&["log", "verify"]);
        assert!(!out.status.success(), "verify exits non-zero");
    }
}

/// A store whose log is keyed with one key does not start with another
/// key or with none, and is unchanged by the attempt.
#[test]
fn a_store_keyed_with_one_key_does_not_start_with_another_or_none() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    let before = verify(&gate);
    let key_id = before["key_id"].as_str().unwrap_or_default().to_string();
    gate.stop();

    gate.log_key = Some("another-log-key-0123456789abcdef-0123456789".into());
    let err = gate
        .try_restart()
        .err()
        .unwrap_or_else(|| panic!("started with another log key"));
    assert!(
        err.contains("keyed with log key") && err.contains(&key_id),
        "{err}"
    );
    gate.log_key = None;
    let err = gate
        .try_restart()
        .err()
        .unwrap_or_else(|| panic!("started without a log key"));
    assert!(err.contains("IPGATE_LOG_KEY"), "{err}");

    gate.log_key = Some(LOG_KEY.into());
    gate.restart();
    assert_eq!(verify(&gate), before, "the refused starts changed nothing");
    assert_eq!(key_id.len(), 16, "{before}");
    assert_eq!(before["keyed_from"], 1, "{before}");
}

/// A log written before log keys (plain SHA-256, no key ids) still
/// verifies; the first keyed start pins it with a `log.keyed` record, after
/// which rewriting the old records is found too.
#[test]
fn a_log_from_before_log_keys_is_kept_and_pinned_at_start() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    gate.kill();
    let store = gate.dir.path().join("store");
    // Every record as an older ipgate wrote it.
    let n = rewrite_plain(&store, 1, None, false, |_| {});
    assert_eq!(n, 2);
    gate.restart();
    let v = verify(&gate);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        (v["records"].clone(), v["keyed_from"].clone()),
        (json!(3), json!(3)),
        "{v}"
    );
    let (_, log) = gate.admin("GET", "/admin/v1/security-log", None);
    assert_eq!(
        events(&log),
        vec!["account.created", "whitelist.added", "log.keyed"]
    );
    assert_eq!(log[2]["details"]["unkeyed_records"], 2);
    assert!(
        gate.log().contains("written before log keys"),
        "{}",
        gate.log()
    );
    gate.account("beta", "enforce", &[]);
    assert_eq!(verify(&gate)["ok"], true);

    // Now the old records are pinned: rewriting them (and fixing the next
    // record's `prev`) breaks the chain at the first keyed record.
    gate.kill();
    rewrite_plain(&store, 1, Some(2), false, |r| {
        if r.seq == 2 {
            r.details["cidr"] = json!("0.0.0.0/0");
        }
    });
    gate.restart();
    let v = verify(&gate);
    assert_eq!(
        (v["ok"].clone(), v["broken_at"].clone()),
        (json!(false), json!(3)),
        "{v}"
    );
}

/// `n` wrong logins for alice from one browser.
fn refused_logins(gate: &Server, n: usize) {
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
fn refusal_records(gate: &Server) -> (Vec<Value>, Vec<Value>) {
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

fn login_gate() -> (Upstream, Server) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
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
