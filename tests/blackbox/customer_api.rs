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

/// `POST /api/v1/whitelist/requests` with an `Idempotency-Key`.
fn submit_keyed(
    gate: &Server,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/api/v1/whitelist/requests", gate.portal))
        .bearer_auth(token)
        .header("User-Agent", "ipgate-test/1.0")
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(serde_json::Value::Null))
}

/// A gate whose account `acme` has two emails and a main user with 2FA.
fn mail_gate() -> (Upstream, Server, String) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    acme_two_emails(&gate, json!({}));
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    (up, gate, alice)
}

#[test]
fn a_repeated_idempotency_key_answers_the_first_request_and_mails_once() {
    let (_up, gate, alice) = mail_gate();
    let body = json!({"ips": ["203.0.113.10"], "remark": "prod", "reference": "PO-17"});
    let (s, first) = submit_keyed(&gate, &alice, "order-17", &body);
    assert_eq!(s, 202, "{first}");
    assert_eq!(first["reference"], "PO-17");
    let (s, again) = submit_keyed(&gate, &alice, "order-17", &body);
    assert_eq!((s, &again), (202, &first), "the first answer, again");

    // The same key with another body is refused, naming the header.
    let other = json!({"ips": ["203.0.113.11"], "remark": "prod", "reference": "PO-17"});
    let (s, v) = submit_keyed(&gate, &alice, "order-17", &other);
    assert_eq!((s, field(&v)), (422, "Idempotency-Key".to_string()), "{v}");
    // A bad key (too long) is a 400 naming the header.
    let (s, v) = submit_keyed(&gate, &alice, &"k".repeat(256), &body);
    assert_eq!((s, field(&v)), (400, "Idempotency-Key".to_string()), "{v}");

    let (_, list) = api(&gate, "GET", "/api/v1/whitelist/requests", &alice, None);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["reference"], "PO-17");
    let id = first["id"].as_str().unwrap();
    assert_eq!(request(&gate, &alice, id)["reference"], "PO-17");

    // One link mail per address, once.
    assert_eq!(
        gate.mail
            .wait_for(2, std::time::Duration::from_secs(20))
            .len(),
        2
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(gate.mail.mails().len(), 2, "no second set of link mails");
    let submitted = gate
        .security_events("acme")
        .iter()
        .filter(|e| *e == "request.submitted")
        .count();
    assert_eq!(submitted, 1);

    // A bad reference is refused by its field.
    let (s, v) = submit_request(
        &gate,
        &alice,
        json!({"ips": ["203.0.113.12"], "reference": "x".repeat(65)}),
    );
    assert_eq!((s, field(&v)), (400, "reference".to_string()), "{v}");
}

#[test]
fn two_submissions_racing_with_one_key_create_one_request() {
    let (_up, gate, alice) = mail_gate();
    let body = json!({"ips": ["203.0.113.10"]});
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| submit_keyed(&gate, &alice, "race", &body)))
            .collect();
        racers.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(answers[0].0, 202, "{answers:?}");
    assert_eq!(answers[0], answers[1], "both answered with the one request");
    let (_, list) = api(&gate, "GET", "/api/v1/whitelist/requests", &alice, None);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}
