//! The customer API: a main user with 2FA creates, lists and cancels
//! requests; nothing goes live from the API; refusals say what to do.

use crate::common::*;
use serde_json::json;

fn field(v: &serde_json::Value) -> String {
    v["errors"][0]["field"].as_str().unwrap_or("").to_string()
}
fn message(v: &serde_json::Value) -> String {
    v["errors"][0]["message"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_main_user_with_2fa_requests_and_cancels() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    let (alice, _) = user(&gate, "acme", "alice", "main", true);

    let (s, me) = api(&gate, "GET", "/api/v1/me", &alice, None);
    assert_eq!(s, 200, "{me}");
    assert_eq!(
        (
            me["two_factor"].clone(),
            me["can_request"].clone(),
            me["your_ip"].clone()
        ),
        (json!(true), json!(true), json!("127.0.0.1"))
    );

    let body = json!({"ips": ["203.0.113.10", "198.51.100.7"], "remark": "prod servers"});
    let (s, req) = submit_request(&gate, &alice, body.clone());
    assert_eq!(s, 202, "{req}");
    assert_eq!(req["status"], "pending");
    assert_eq!(req["ips"], json!(["203.0.113.10", "198.51.100.7"]));
    assert_eq!(
        (
            req["requested_by"].as_str(),
            req["requested_from"].as_str(),
            req["user_agent"].as_str()
        ),
        (Some("alice"), Some("127.0.0.1"), Some("ipgate-test/1.0"))
    );
    assert!(
        req.get("link_hashes").is_none(),
        "link hashes are not shown"
    );
    let id = req["id"].as_str().unwrap_or_default().to_string();

    // Nothing is whitelisted by a request.
    assert_eq!(
        api(&gate, "GET", "/api/v1/whitelist", &alice, None).1,
        json!([])
    );
    assert!(gate.metrics_text().contains("ipgate_table_entries 0"));

    let (s, v) = submit_request(&gate, &alice, json!({"ips": ["8.8.8.8"]}));
    assert_eq!(s, 409, "one pending request per account: {v}");
    assert!(message(&v).contains("pending"));

    let (s, list) = api(&gate, "GET", "/api/v1/whitelist/requests", &alice, None);
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(request(&gate, &alice, &id)["id"], json!(id));
    assert_eq!(
        api(
            &gate,
            "GET",
            "/api/v1/whitelist/requests/999999",
            &alice,
            None
        )
        .0,
        404
    );

    let (s, c) = api(
        &gate,
        "POST",
        &format!("/api/v1/whitelist/requests/{id}/cancel"),
        &alice,
        None,
    );
    assert_eq!((s, c["status"].as_str()), (200, Some("cancelled")), "{c}");
    assert_eq!(
        api(
            &gate,
            "POST",
            &format!("/api/v1/whitelist/requests/{id}/cancel"),
            &alice,
            None
        )
        .0,
        409
    );
    let (s, _) = submit_request(&gate, &alice, json!({"ips": ["8.8.8.8"]}));
    assert_eq!(s, 202, "a new request is possible after cancelling");

    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    // Mail events interleave with the sender's pace; the request steps keep their order.
    let events: Vec<&str> = events(&log)
        .into_iter()
        .filter(|e| !e.starts_with("mail."))
        .collect();
    assert!(
        events.ends_with(&[
            "request.submitted",
            "request.cancelled",
            "request.submitted"
        ]),
        "{events:?}"
    );
    gate.assert_metrics(&[
        r#"ipgate_flow_requests_total{outcome="submitted"} 2"#,
        r#"ipgate_flow_requests_total{outcome="cancelled"} 1"#,
    ]);
}

#[test]
fn submissions_are_checked_rule_by_rule() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["203.0.113.10"]);
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    let cases = [
        (json!({"ips": ["10.0.0.1"]}), "ips[0]", "private"),
        (json!({"ips": ["2001:db8::1"]}), "ips[0]", "contact us"),
        (json!({"ips": ["203.0.113.0/24"]}), "ips[0]", "CIDR"),
        (
            json!({"ips": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]}),
            "ips",
            "At most 2",
        ),
        (json!({"ips": ["8.8.8.8", "8.8.8.8"]}), "ips[1]", "twice"),
        (
            json!({"ips": ["203.0.113.10"]}),
            "ips[0]",
            "already whitelisted",
        ),
        (
            json!({"ips": ["8.8.8.8"], "remark": "x".repeat(101)}),
            "remark",
            "100",
        ),
        (json!({"ips": []}), "ips", "at least one"),
        (json!({"ips": ["8.8.8.8"], "extra": 1}), "body", "extra"),
        (json!({"ip": "8.8.8.8"}), "body", "ips"),
    ];
    for (body, want_field, needle) in cases {
        let (s, v) = submit_request(&gate, &alice, body.clone());
        assert!((400..500).contains(&s), "{body}: {s} {v}");
        assert_eq!(field(&v), want_field, "{body}: {v}");
        assert!(message(&v).contains(needle), "{body}: {v}");
    }
    assert_eq!(
        api(&gate, "GET", "/api/v1/whitelist/requests", &alice, None).1,
        json!([]),
        "nothing was saved"
    );
}

#[test]
fn who_may_request_is_enforced_with_a_reason() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    gate.account("offco", "off", &[]);
    let (bob, _) = user(&gate, "acme", "bob", "sub", true);
    let (nofa, _) = user(&gate, "acme", "carol", "main", false);
    let (off, _) = user(&gate, "offco", "dave", "main", true);
    let body = json!({"ips": ["8.8.8.8"]});
    let (s, v) = submit_request(&gate, &bob, body.clone());
    assert_eq!(s, 403);
    assert!(message(&v).contains("main user"), "{v}");
    let (s, v) = submit_request(&gate, &nofa, body.clone());
    assert_eq!(s, 403);
    assert!(message(&v).contains("Two-factor"), "{v}");
    assert_eq!(
        api(&gate, "GET", "/api/v1/me", &nofa, None).1["can_request"],
        false
    );
    let (s, v) = submit_request(&gate, &off, body.clone());
    assert_eq!(s, 403);
    assert!(message(&v).contains("feature is off"), "{v}");
    let (s, v) = api(&gate, "GET", "/api/v1/me", "not-a-token", None);
    assert_eq!((s, field(&v)), (401, "authorization".to_string()));
}

#[test]
fn a_pending_request_expires_by_itself() {
    let up = Upstream::start();
    let opts = ServerOpts {
        control_extra: "link_ttl = \"2s\"".into(),
        ..ServerOpts::default()
    };
    let gate = Server::start(&up, opts);
    gate.account("acme", "enforce", &[]);
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    let (s, req) = submit_request(&gate, &alice, json!({"ips": ["8.8.8.8"]}));
    assert_eq!(s, 202);
    let id = req["id"].as_str().unwrap_or_default().to_string();
    gate.wait_until("the request to expire", 10, || {
        gate.metrics_text()
            .contains(r#"ipgate_flow_requests_total{outcome="expired"} 1"#)
    });
    assert_eq!(request(&gate, &alice, &id)["status"], "expired");
    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    assert!(log.to_string().contains("request.expired"));
    let (s, _) = submit_request(&gate, &alice, json!({"ips": ["8.8.8.8"]}));
    assert_eq!(s, 202, "an expired request does not block a new one");
}
