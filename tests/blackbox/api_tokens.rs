//! Customer API tokens, black-box: scopes, expiry, listing and revocation
//! through the admin API and `ipgate admin token`, and what the customer
//! API then accepts.

use crate::common::*;
use serde_json::{json, Value};

fn field(v: &Value) -> &str {
    v["errors"][0]["field"].as_str().unwrap_or("")
}
fn message(v: &Value) -> &str {
    v["errors"][0]["message"].as_str().unwrap_or("")
}

fn issue(gate: &Server, username: &str, body: Value) -> Value {
    let (s, v) = gate.admin(
        "POST",
        &format!("/admin/v1/users/{username}/tokens"),
        Some(body),
    );
    assert_eq!(s, 201, "{v}");
    v
}

fn list(gate: &Server, username: &str) -> Value {
    let (s, v) = gate.admin("GET", &format!("/admin/v1/users/{username}/tokens"), None);
    assert_eq!(s, 200, "{v}");
    v
}

fn secret(v: &Value) -> String {
    v["token"].as_str().unwrap_or_default().to_string()
}

#[test]
fn scoped_tokens_are_listed_refused_where_out_of_scope_and_revoked() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    // Issued with no body: both scopes and the default lifetime.
    let (full, _) = user(&gate, "acme", "alice", "main", true);

    let ro = issue(
        &gate,
        "alice",
        json!({"scopes": ["read"], "expires_in": "30d"}),
    );
    let read_only = secret(&ro);
    assert!(read_only.len() >= 43, "{ro}");
    assert_eq!(ro["scopes"], json!(["read"]));
    assert!(ro["fingerprint"]
        .as_str()
        .unwrap_or("")
        .starts_with("sha256:"));
    let ro_id = ro["id"].as_str().unwrap_or_default().to_string();

    let listed = list(&gate, "alice");
    let rows = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(rows[0]["scopes"], json!(["read", "request"]), "{listed}");
    assert_eq!(rows[1]["id"], json!(ro_id));
    for row in &rows {
        assert!(
            row["expires_at"].is_string(),
            "every new token expires: {row}"
        );
        assert_eq!(row["expired"], false);
        assert!(row.get("token").is_none(), "{row}");
    }
    let text = listed.to_string();
    for t in [&full, &read_only] {
        let hash = sha256_hex(t);
        assert!(
            !text.contains(t.as_str()) && !text.contains(&hash),
            "a list shows neither the token nor its hash: {text}"
        );
    }

    // Read-only: GET works, POST is 403 and changes nothing.
    assert_eq!(
        api(&gate, "GET", "/api/v1/whitelist", &read_only, None).0,
        200
    );
    let (s, me) = api(&gate, "GET", "/api/v1/me", &read_only, None);
    assert_eq!((s, me["can_request"].clone()), (200, json!(false)), "{me}");
    assert_eq!(me["token"]["scopes"], json!(["read"]));
    let (s, v) = submit_request(&gate, &read_only, json!({"ips": ["203.0.113.10"]}));
    assert_eq!(s, 403, "{v}");
    assert!(message(&v).contains("read-only"), "{v}");
    let (_, reqs) = api(&gate, "GET", "/api/v1/whitelist/requests", &read_only, None);
    assert_eq!(reqs, json!([]), "the refused submission made nothing");

    let (s, req) = submit_request(&gate, &full, json!({"ips": ["203.0.113.10"]}));
    assert_eq!(s, 202, "{req}");
    let cancel = format!(
        "/api/v1/whitelist/requests/{}/cancel",
        req["id"].as_str().unwrap_or_default()
    );
    assert_eq!(api(&gate, "POST", &cancel, &read_only, None).0, 403);
    assert_eq!(api(&gate, "POST", &cancel, &full, None).0, 200);

    // The request's link mail is recorded as sent in its own time: wait for
    // it, so the revoke below is the log's last record.
    gate.wait_until("the link mail recorded as sent", 20, || {
        let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
        let sent = events(&log).contains(&"mail.sent");
        sent
    });

    // Revoked: 401 at once, gone from the list, a second revoke is 404.
    let (s, gone) = gate.admin(
        "DELETE",
        &format!("/admin/v1/users/alice/tokens/{ro_id}"),
        None,
    );
    assert_eq!((s, gone["id"].clone()), (200, json!(ro_id)), "{gone}");
    let (s, v) = api(&gate, "GET", "/api/v1/whitelist", &read_only, None);
    assert_eq!((s, field(&v)), (401, "authorization"), "{v}");
    assert_eq!(list(&gate, "alice").as_array().map(Vec::len), Some(1));
    for path in [
        format!("/admin/v1/users/alice/tokens/{ro_id}"),
        "/admin/v1/users/ghost/tokens/1".to_string(),
    ] {
        assert_eq!(gate.admin("DELETE", &path, None).0, 404, "{path}");
    }
    assert_eq!(
        gate.admin("GET", "/admin/v1/users/ghost/tokens", None).0,
        404
    );
    assert_eq!(api(&gate, "GET", "/api/v1/whitelist", &full, None).0, 200);

    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    let ev = events(&log);
    assert_eq!(
        ev.iter().filter(|e| **e == "user.token_issued").count(),
        2,
        "{ev:?}"
    );
    assert_eq!(ev.last(), Some(&"user.token_revoked"), "{ev:?}");
    let text = log.to_string();
    assert!(!text.contains(&read_only) && !text.contains(&full));
}

#[test]
fn bad_token_requests_are_400_and_change_nothing() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    user(&gate, "acme", "alice", "main", false);
    let before = gate.security_events("acme");
    let bad = [
        (json!({"scopes": ["read", "write"]}), "scopes", "write"),
        (json!({"scopes": []}), "scopes", "at least one"),
        (json!({"expires_in": "0s"}), "expires_in", "duration"),
        (json!({"expires_in": "-3d"}), "expires_in", "duration"),
        (json!({"expires_in": 90}), "expires_in", "duration"),
        (json!({"expires_in": "400d"}), "expires_in", "366d"),
        (json!({"expires": "1d"}), "body", "unknown field"),
        (json!(["read"]), "body", "object"),
    ];
    for (body, want_field, want_text) in bad {
        let (s, v) = gate.admin("POST", "/admin/v1/users/alice/tokens", Some(body.clone()));
        assert_eq!((s, field(&v)), (400, want_field), "{body}: {v}");
        assert!(message(&v).contains(want_text), "{body}: {v}");
    }
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/users/ghost/tokens",
        Some(json!({"scopes": ["read"]})),
    );
    assert_eq!((s, field(&v)), (404, "username"), "{v}");
    assert_eq!(list(&gate, "alice").as_array().map(Vec::len), Some(1));
    assert_eq!(gate.security_events("acme"), before, "nothing logged");
}

#[test]
fn an_expired_token_is_refused() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    user(&gate, "acme", "alice", "main", true);
    let short = issue(&gate, "alice", json!({"expires_in": "2s"}));
    let token = secret(&short);
    assert_eq!(api(&gate, "GET", "/api/v1/me", &token, None).0, 200);
    gate.wait_until("the token to expire", 10, || {
        api(&gate, "GET", "/api/v1/me", &token, None).0 == 401
    });
    let (_, v) = api(&gate, "GET", "/api/v1/whitelist", &token, None);
    assert!(message(&v).contains("expired"), "{v}");
    let (s, v) = submit_request(&gate, &token, json!({"ips": ["203.0.113.10"]}));
    assert_eq!(s, 401, "{v}");
    let rows = list(&gate, "alice");
    assert_eq!(rows[1]["expired"], true, "{rows}");
}

/// A store written before tokens had records (hash -> username) keeps its
/// tokens working as they did (both scopes, no expiry), listed and
/// revocable.
#[test]
fn tokens_from_an_older_store_keep_working_and_can_be_revoked() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    user(&gate, "acme", "alice", "main", true);
    let old = "an-old-token-made-before-token-records-0123456789";
    gate.kill();
    {
        let db = sled::open(gate.dir.path().join("store")).unwrap();
        let tokens = db.open_tree("tokens").unwrap();
        tokens
            .insert(sha256_hex(old).as_bytes(), b"alice".as_slice())
            .unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.remove("token-records").unwrap();
        db.flush().unwrap();
    }
    gate.restart();
    let (s, me) = api(&gate, "GET", "/api/v1/me", old, None);
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["token"]["scopes"], json!(["read", "request"]));
    let (s, v) = submit_request(&gate, old, json!({"ips": ["203.0.113.10"]}));
    assert_eq!(s, 202, "{v}");
    let rows = list(&gate, "alice");
    let legacy = rows
        .as_array()
        .and_then(|r| r.iter().find(|t| t["expires_at"].is_null()))
        .cloned()
        .unwrap_or_else(|| panic!("no token without expiry in {rows}"));
    let path = format!(
        "/admin/v1/users/alice/tokens/{}",
        legacy["id"].as_str().unwrap_or_default()
    );
    assert_eq!(gate.admin("DELETE", &path, None).0, 200);
    assert_eq!(api(&gate, "GET", "/api/v1/me", old, None).0, 401);
}

#[test]
fn the_admin_cli_issues_lists_and_revokes_tokens() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    user(&gate, "acme", "alice", "main", true);
    let run = |args: &[&str]| -> Value {
        let out = gate.admin_cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let issued = run(&[
        "token",
        "issue",
        "alice",
        "--scope",
        "read",
        "--expires-in",
        "7d",
    ]);
    let token = secret(&issued);
    let id = issued["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(issued["scopes"], json!(["read"]), "{issued}");
    assert_eq!(api(&gate, "GET", "/api/v1/whitelist", &token, None).0, 200);
    assert_eq!(
        submit_request(&gate, &token, json!({"ips": ["203.0.113.10"]})).0,
        403
    );

    let listed = run(&["token", "list", "alice"]);
    assert!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == json!(id))),
        "{listed}"
    );
    assert!(!listed.to_string().contains(&token));

    run(&["token", "revoke", "alice", &id]);
    assert_eq!(api(&gate, "GET", "/api/v1/whitelist", &token, None).0, 401);
    let out = gate.admin_cli(&["token", "revoke", "alice", &id]);
    assert!(!out.status.success(), "revoking twice is refused");
    let out = gate.admin_cli(&["token", "issue", "alice", "--scope", "admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));
}

fn sha256_hex(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
