//! The enforcing proxy, black-box: the real binary, a real upstream.

use crate::common::*;

#[test]
fn whitelisted_ip_reaches_upstream_and_others_never_do() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);

    let (status, body) = gate.get(
        "127.0.0.1",
        "/sms/v1/send?to=1",
        &[("Authorization", &basic("acme"))],
    );
    assert_eq!((status, body.as_str()), (200, "upstream says hello"));
    let seen = up.last();
    assert_eq!(
        seen.path, "/v1/send",
        "strip_prefix forwards without the prefix"
    );
    assert_eq!(seen.query.as_deref(), Some("to=1"));
    assert_eq!(seen.xff, "127.0.0.1", "the client IP is sent upstream");
    assert_eq!(seen.host, up.addr.to_string());

    let hits = up.hits();
    let (status, body) = gate.get(
        "127.0.0.2",
        "/sms/v1/send",
        &[("Authorization", &basic("acme"))],
    );
    assert_eq!(status, 403);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(v["error"]["code"], "ip_not_whitelisted");
    assert_eq!(v["error"]["client_ip"], "127.0.0.2");
    assert_eq!(v["error"]["request_id"].as_str().map(str::len), Some(24));
    assert_eq!(up.hits(), hits, "a denied call never reaches the upstream");
}

#[test]
fn each_deny_reason_has_its_status_and_code() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.0/29"]);
    let (s, b) = gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(serde_json::json!({"cidr": "127.0.0.3", "remark": "abuse"})),
    );
    assert_eq!(s, 201, "{b}");

    let auth = basic("acme");
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "127.0.0.3",
            "/sms/x",
            vec![("Authorization", auth.as_str())],
            403,
            "ip_blocked",
        ),
        ("127.0.0.3", "/nowhere", vec![], 403, "ip_blocked"),
        (
            "127.0.0.1",
            "/nowhere",
            vec![("Authorization", auth.as_str())],
            404,
            "no_route",
        ),
        ("127.0.0.1", "/sms/x", vec![], 401, "unidentified"),
        (
            "127.0.0.1",
            "/sms/x",
            vec![("X-Account-Id", "ghost")],
            403,
            "unknown_account",
        ),
        (
            "127.0.0.9",
            "/sms/x",
            vec![("Authorization", auth.as_str())],
            403,
            "ip_not_whitelisted",
        ),
    ];
    for (from, path, headers, status, want) in cases {
        let (s, b) = gate.get(from, path, &headers);
        assert_eq!((s, code(&b)), (status, want.to_string()), "{from} {path}");
    }
    assert_eq!(up.hits(), 0, "none of these reached the upstream");
    let (s, _) = gate.get("127.0.0.2", "/sms/x", &[("Authorization", &auth)]);
    assert_eq!(s, 200, "a CIDR entry covers its whole range");
}

#[test]
fn account_is_found_in_each_configured_source() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    for (path, headers) in [
        ("/sms/x", vec![("Authorization", basic("acme"))]),
        ("/sms/x?username=acme", vec![]),
        ("/sms/x", vec![("X-Account-Id", "acme".to_string())]),
        ("/waba/acme/messages", vec![]),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(gate.get("127.0.0.1", path, &h).0, 200, "{path} {headers:?}");
        assert_eq!(gate.get("127.0.0.2", path, &h).0, 403, "{path} {headers:?}");
    }
}

#[test]
fn forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let up = Upstream::start();
    let gate = Server::start(
        &up,
        ServerOpts {
            trusted_proxies: vec!["127.0.0.5/32".into()],
            ..ServerOpts::default()
        },
    );
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let auth = basic("acme");

    let (s, b) = gate.get(
        "127.0.0.2",
        "/sms/x",
        &[("Authorization", &auth), ("X-Forwarded-For", "127.0.0.1")],
    );
    assert_eq!((s, code(&b)), (403, "ip_not_whitelisted".to_string()));
    assert!(b.contains("127.0.0.2"), "the decision used the peer: {b}");

    // The same header from the trusted load balancer is believed...
    let (s, _) = gate.get(
        "127.0.0.5",
        "/sms/x",
        &[("Authorization", &auth), ("X-Forwarded-For", "127.0.0.1")],
    );
    assert_eq!(s, 200);
    assert_eq!(
        up.last().xff,
        "127.0.0.1, 127.0.0.5",
        "the chain is kept and the hop appended"
    );

    // The other client-address headers: dropped from an untrusted peer, on
    // both HTTP/1 paths (HTTP/1.0 goes to Pingora's), kept from the trusted one.
    let forged = [
        ("X-Real-IP", "203.0.113.10"),
        ("Forwarded", "for=203.0.113.10"),
        ("True-Client-IP", "203.0.113.10"),
        ("CF-Connecting-IP", "203.0.113.10"),
    ];
    for version in ["1.1", "1.0"] {
        let mut req = format!(
            "GET /sms/x HTTP/{version}\r\nHost: gw\r\nConnection: close\r\nAuthorization: {auth}\r\n"
        );
        for (k, v) in forged {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let answer = raw(gate.proxy, req.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let seen = up.last();
        for (k, _) in forged {
            let name = k.to_ascii_lowercase();
            assert_eq!(
                seen.header(&name),
                None,
                "HTTP/{version}: {k} reached the upstream"
            );
        }
    }
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("X-Forwarded-For", "127.0.0.1"),
    ];
    headers.extend(forged);
    let (s, _) = gate.get("127.0.0.5", "/sms/x", &headers);
    assert_eq!(s, 200);
    assert_eq!(
        up.last().header("x-real-ip"),
        Some("203.0.113.10"),
        "kept from the trusted proxy"
    );
    // ...but only its untrusted right-most entry: a client cannot prepend one.
    let (s, _) = gate.get(
        "127.0.0.5",
        "/sms/x",
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "127.0.0.1, 127.0.0.2"),
        ],
    );
    assert_eq!(s, 403);
    // Garbage in the header from the trusted peer: the peer itself is the client.
    let (s, b) = gate.get(
        "127.0.0.5",
        "/sms/x",
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "127.0.0.1, bogus"),
        ],
    );
    assert_eq!((s, code(&b)), (403, "ip_not_whitelisted".to_string()));
    assert!(b.contains("127.0.0.5"), "{b}");

    // From an untrusted peer, the forged header is not passed upstream either.
    gate.account("open", "off", &[]);
    let (s, _) = gate.get(
        "127.0.0.2",
        "/sms/x",
        &[("X-Account-Id", "open"), ("X-Forwarded-For", "6.6.6.6")],
    );
    assert_eq!(s, 200);
    assert_eq!(up.last().xff, "127.0.0.2");
}

#[test]
fn report_mode_lets_calls_through_and_counts_them() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("globex", "report", &["127.0.0.1"]);
    gate.account("free", "off", &[]);
    assert_eq!(
        gate.get("127.0.0.2", "/sms/x", &[("X-Account-Id", "globex")])
            .0,
        200
    );
    assert_eq!(
        gate.get("127.0.0.1", "/sms/x", &[("X-Account-Id", "globex")])
            .0,
        200
    );
    assert_eq!(
        gate.get("127.0.0.2", "/sms/x", &[("X-Account-Id", "free")])
            .0,
        200
    );
    assert_eq!(up.hits(), 3);
    let m = gate.metrics_text();
    assert!(m.contains(r#"ipgate_proxy_requests_total{decision="report",reason="ip_not_whitelisted",route="sms"} 1"#), "{m}");
    assert!(
        m.contains(
            r#"ipgate_proxy_requests_total{decision="allow",reason="whitelisted",route="sms"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"ipgate_proxy_requests_total{decision="allow",reason="feature_off",route="sms"} 1"#
        ),
        "{m}"
    );
    assert!(!m.contains("globex"), "no account labels unless turned on");
}

#[test]
fn admin_changes_are_live_before_the_answer() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    let h = [("X-Account-Id", "acme")];
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &h).0, 403);
    let (s, entry) = gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(serde_json::json!({"cidr": "127.0.0.1", "remark": "prod"})),
    );
    assert_eq!(s, 201);
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &h).0, 200, "live at once");
    let id = entry["id"].as_str().unwrap_or_default();
    let (s, _) = gate.admin(
        "DELETE",
        &format!("/admin/v1/accounts/acme/whitelist/{id}"),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        gate.get("127.0.0.1", "/sms/x", &h).0,
        403,
        "removed at once"
    );
    // Turning the feature off and back on.
    let (s, _) = gate.admin(
        "PATCH",
        "/admin/v1/accounts/acme",
        Some(serde_json::json!({"whitelist": "off"})),
    );
    assert_eq!(s, 200);
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &h).0, 200);
    let (s, _) = gate.admin(
        "PATCH",
        "/admin/v1/accounts/acme",
        Some(serde_json::json!({"whitelist": "enforce"})),
    );
    assert_eq!(s, 200);
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &h).0, 403);
    // Blocklist beats an active whitelist entry, and its removal is live too.
    gate.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(serde_json::json!({"cidr": "127.0.0.0/24"})),
    );
    let (_, block) = gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(serde_json::json!({"cidr": "127.0.0.1/32"})),
    );
    assert_eq!(code(&gate.get("127.0.0.1", "/sms/x", &h).1), "ip_blocked");
    let bid = block["id"].as_str().unwrap_or_default();
    assert_eq!(
        gate.admin("DELETE", &format!("/admin/v1/blocklist/{bid}"), None)
            .0,
        200
    );
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &h).0, 200);
}

#[test]
fn the_table_survives_kill_9() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1", "2001:db8::/64"]);
    gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(serde_json::json!({"cidr": "127.0.0.3"})),
    );
    gate.kill_and_restart();
    let h = [("X-Account-Id", "acme")];
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &h).0, 200, "{}", gate.log());
    assert_eq!(gate.get("127.0.0.2", "/sms/x", &h).0, 403);
    assert_eq!(code(&gate.get("127.0.0.3", "/sms/x", &h).1), "ip_blocked");
    let m = gate.metrics_text();
    assert!(m.contains("ipgate_table_entries 2"), "{m}");
    assert!(m.contains("ipgate_table_accounts 1"), "{m}");
}

#[test]
fn upstream_connections_are_kept_alive() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("free", "off", &[]);
    for _ in 0..20 {
        assert_eq!(
            gate.get("127.0.0.1", "/sms/x", &[("X-Account-Id", "free")])
                .0,
            200
        );
    }
    assert_eq!(up.hits(), 20);
    assert!(
        up.connections() <= 2,
        "20 calls used {} upstream connections",
        up.connections()
    );
}

#[test]
fn tls_listener_serves_the_same_decisions() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::tls());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let pem = std::fs::read(gate.dir.path().join("certs/server.crt")).unwrap_or_default();
    let cert = reqwest::Certificate::from_pem(&pem).unwrap();
    let tls = gate.tls.unwrap_or_else(|| panic!("no tls port"));
    let call = |from: &str| {
        let c = reqwest::blocking::Client::builder()
            .no_proxy()
            .add_root_certificate(cert.clone())
            .local_address(ip(from))
            .build()
            .unwrap();
        let r = c
            .get(format!("https://localhost:{}/sms/x", tls.port()))
            .header("X-Account-Id", "acme")
            .send()
            .unwrap_or_else(|e| panic!("TLS call failed: {e}"));
        r.status().as_u16()
    };
    assert_eq!(call("127.0.0.1"), 200);
    assert_eq!(call("127.0.0.2"), 403);
}

#[test]
fn metrics_use_the_contract_names_and_pass_promtool() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    gate.get("127.0.0.1", "/sms/x", &[("X-Account-Id", "acme")]);
    gate.get("127.0.0.2", "/sms/x", &[("X-Account-Id", "acme")]);
    let m = gate.metrics_text();
    for name in [
        "ipgate_proxy_requests_total",
        "ipgate_proxy_upstream_seconds_bucket",
        "ipgate_table_entries",
        "ipgate_table_accounts",
        "ipgate_table_version",
        "ipgate_table_updated_timestamp_seconds",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }
    if let Some(out) = promtool(&["check", "metrics"], &m) {
        assert!(
            out.status.success(),
            "promtool refused the metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
