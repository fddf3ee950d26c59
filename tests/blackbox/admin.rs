//! The admin API and `ipgate admin`: bad input gets a clear error in the
//! API's shape and changes nothing.

use crate::common::*;
use serde_json::json;

fn first_error(v: &serde_json::Value) -> (String, String) {
    let e = &v["errors"][0];
    (
        e["field"].as_str().unwrap_or("").to_string(),
        e["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    let version_before = gate
        .metrics_text()
        .lines()
        .find(|l| l.starts_with("ipgate_table_version"))
        .map(str::to_string);

    let bad_cidrs = [
        "203.0.113.0/33",
        "not-an-ip",
        "010.1.1.1",
        "203.0.113.5/24",
        "",
        "1.2.3.4/",
        "::ffff:1.2.3.4/95",
    ];
    for cidr in bad_cidrs {
        let (s, v) = gate.admin(
            "POST",
            "/admin/v1/accounts/acme/whitelist",
            Some(json!({"cidr": cidr})),
        );
        assert_eq!(s, 400, "{cidr}: {v}");
        assert_eq!(first_error(&v).0, "cidr", "{cidr}: {v}");
    }
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "203.0.113.10"})),
    );
    assert_eq!(
        (s, first_error(&v).0),
        (409, "cidr".to_string()),
        "duplicate: {v}"
    );
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "198.51.100.1", "typo": 1})),
    );
    assert_eq!(s, 400, "unknown fields are refused: {v}");
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"remark": "no cidr"})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/ghost/whitelist",
        Some(json!({"cidr": "198.51.100.1"})),
    );
    assert_eq!((s, first_error(&v).0), (404, "account".to_string()));
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "bad id", "name": "x"})),
    );
    assert_eq!((s, first_error(&v).0), (400, "id".to_string()));
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "ok", "name": "x", "emails": ["nope"]})),
    );
    assert_eq!((s, first_error(&v).0), (400, "emails[0]".to_string()));
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "ok", "name": "x", "whitelist": "sometimes"})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = gate.admin(
        "PATCH",
        "/admin/v1/accounts/acme",
        Some(json!({"whitelist": "bogus"})),
    );
    assert_eq!(s, 400);
    let (s, _) = gate.admin("DELETE", "/admin/v1/accounts/acme/whitelist/999999", None);
    assert_eq!(s, 404);
    let (s, _) = gate.admin("DELETE", "/admin/v1/blocklist/abc", None);
    assert_eq!(s, 404);
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(json!({"cidr": "1.2.3.0/8"})),
    );
    assert_eq!((s, first_error(&v).0), (400, "cidr".to_string()));

    let (_, entries) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    let cidrs: Vec<&str> = entries
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["cidr"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(cidrs, vec!["203.0.113.10/32"]);
    let (_, blocks) = gate.admin("GET", "/admin/v1/blocklist", None);
    assert_eq!(blocks, json!([]));
    let (s, _) = gate.admin("GET", "/admin/v1/accounts/ok", None);
    assert_eq!(s, 404, "no half-created account");
    let version_after = gate
        .metrics_text()
        .lines()
        .find(|l| l.starts_with("ipgate_table_version"))
        .map(str::to_string);
    assert_eq!(
        version_before, version_after,
        "the live table was not touched"
    );
}

#[test]
fn ipv6_and_cidr_entries_are_stored_canonically() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    for (input, stored) in [
        ("2001:DB8::/64", "2001:db8::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7/32"),
        ("198.51.100.0/24", "198.51.100.0/24"),
    ] {
        let (s, v) = gate.admin(
            "POST",
            "/admin/v1/accounts/acme/whitelist",
            Some(json!({"cidr": input, "remark": "r", "tags": ["prod"]})),
        );
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["cidr"], stored);
        assert_eq!(v["source"], "admin");
        assert_eq!(v["tags"], json!(["prod"]));
        assert!(
            v["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
    }
}

#[test]
fn the_admin_token_is_required() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    let (s, v) = gate.admin_with_token(
        "GET",
        "/admin/v1/blocklist",
        None,
        "wrong-token-wrong-token",
    );
    assert_eq!((s, first_error(&v).0), (401, "authorization".to_string()));
    let (s, _) = gate.admin_with_token(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "x", "name": "x"})),
        "",
    );
    assert_eq!(s, 401);
    let (s, _) = gate.admin("GET", "/admin/v1/accounts/x", None);
    assert_eq!(s, 404, "nothing was created by the refused call");
}

#[test]
fn the_admin_cli_wraps_the_routes() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    let cli = |args: &[&str]| gate.admin_cli(args);
    let out = cli(&[
        "account",
        "create",
        "acme",
        "--name",
        "Acme",
        "--email",
        "ops@acme.test",
        "--whitelist",
        "enforce",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&[
        "whitelist",
        "add",
        "acme",
        "127.0.0.1",
        "--remark",
        "laptop",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        gate.get("127.0.0.1", "/sms/x", &[("X-Account-Id", "acme")])
            .0,
        200
    );
    let out = cli(&["whitelist", "add", "acme", "127.0.0.300"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cidr"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["blocklist", "add", "127.0.0.1", "--remark", "test"]);
    assert!(out.status.success());
    assert_eq!(
        code(
            &gate
                .get("127.0.0.1", "/sms/x", &[("X-Account-Id", "acme")])
                .1
        ),
        "ip_blocked"
    );
    let out = cli(&["whitelist", "list", "acme"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1/32"));
}

/// `ipgate admin` talks to the admin URL directly: the token never goes to
/// a proxy named by `http_proxy`, which reqwest would otherwise use.
#[test]
fn the_admin_cli_never_sends_the_token_through_http_proxy() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let proxy = format!("http://{}", trap.local_addr().unwrap());
    let out = std::process::Command::new(bin())
        .args(["admin", "--url", &format!("http://{}", gate.admin)])
        .args(["account", "list"])
        .env("IPGATE_ADMIN_TOKEN", TOKEN)
        .env("http_proxy", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env("all_proxy", &proxy)
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        trap.accept().is_err(),
        "the admin CLI connected to http_proxy"
    );
}

/// serde reads a struct from a JSON array (fields by position): every
/// body that must be an object refuses an array, and nothing is created.
#[test]
fn an_array_for_an_object_body_is_refused_and_creates_nothing() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!(["203.0.113.20/32", "x"])),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(json!(["198.51.100.0/24", "x"])),
    );
    assert_eq!(s, 400, "{v}");
    let (_, list) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    assert_eq!(list, json!([]), "nothing was created");
    let (_, blocks) = gate.admin("GET", "/admin/v1/blocklist", None);
    assert_eq!(blocks, json!([]));
}
