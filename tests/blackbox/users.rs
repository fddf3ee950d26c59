//! Users, 2FA enrolment and API tokens through the admin API: checked
//! input, secrets shown once, only hashes stored, every step logged
//! without its secret.

use crate::common::*;
use serde_json::json;

fn store_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            all.extend(store_bytes(&p));
        } else {
            all.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn users_totp_and_tokens() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    let password = "a long enough passphrase";

    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/users",
        Some(json!({"username": "alice", "password": password, "role": "main"})),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v,
        json!({"username": "alice", "account": "acme", "role": "main", "totp_enrolled": false, "created_at": v["created_at"]})
    );
    let refusals = [
        (
            "/admin/v1/accounts/acme/users",
            json!({"username": "alice", "password": password, "role": "main"}),
            409,
            "username",
        ),
        (
            "/admin/v1/accounts/acme/users",
            json!({"username": "bob", "password": "short", "role": "main"}),
            400,
            "password",
        ),
        (
            "/admin/v1/accounts/acme/users",
            json!({"username": "b b", "password": password, "role": "main"}),
            400,
            "username",
        ),
        (
            "/admin/v1/accounts/ghost/users",
            json!({"username": "bob", "password": password, "role": "sub"}),
            404,
            "account",
        ),
    ];
    for (path, body, status, field) in refusals {
        let (s, v) = gate.admin("POST", path, Some(body.clone()));
        assert_eq!(
            (s, v["errors"][0]["field"].as_str()),
            (status, Some(field)),
            "{body}: {v}"
        );
    }
    let (s, _) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/users",
        Some(json!({"username": "bob", "password": password, "role": "owner"})),
    );
    assert_eq!(s, 400);

    let (s, totp) = gate.admin("POST", "/admin/v1/users/alice/totp", None);
    assert_eq!(s, 200, "{totp}");
    let secret = totp["secret"].as_str().unwrap_or_default().to_string();
    assert_eq!(secret.len(), 32, "160-bit base32 secret");
    let uri = totp["otpauth_uri"].as_str().unwrap_or_default();
    assert!(
        uri.starts_with("otpauth://totp/ipgate:alice?secret=")
            && uri.contains(&secret)
            && uri.contains("digits=6&period=30"),
        "{uri}"
    );
    assert_eq!(
        gate.admin("GET", "/admin/v1/users/alice", None).1["totp_enrolled"],
        true
    );
    assert_eq!(
        gate.admin("POST", "/admin/v1/users/ghost/totp", None).0,
        404
    );

    let (s, tok) = gate.admin("POST", "/admin/v1/users/alice/tokens", None);
    assert_eq!(s, 201);
    let token = tok["token"].as_str().unwrap_or_default().to_string();
    assert!(token.len() >= 43, "{token}");

    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    let events = events(&log);
    assert_eq!(
        events,
        vec![
            "account.created",
            "user.created",
            "user.totp_enrolled",
            "user.token_issued"
        ]
    );
    let text = log.to_string();
    assert!(
        !text.contains(&secret) && !text.contains(&token) && !text.contains(password),
        "no secret in the log"
    );

    gate.kill();
    let stored = store_bytes(&gate.dir.path().join("store"));
    assert!(!contains(&stored, &token), "the token itself is not stored");
    assert!(
        !contains(&stored, password),
        "the password itself is not stored"
    );
    assert!(
        contains(&stored, "$argon2id$"),
        "the password is stored as an Argon2id hash"
    );
}

#[test]
fn the_admin_cli_creates_users_from_stdin() {
    use std::io::Write;
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    let url = format!("http://{}", gate.admin);
    let mut child = std::process::Command::new(bin())
        .args([
            "admin", "--url", &url, "user", "create", "acme", "carol", "--role", "sub",
        ])
        .env("IPGATE_ADMIN_TOKEN", TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"another long passphrase\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        gate.admin("GET", "/admin/v1/users/carol", None).1["role"],
        "sub"
    );
}
