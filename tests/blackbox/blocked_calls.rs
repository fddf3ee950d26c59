//! Blocked calls, one click away: calls the proxy denies for an account
//! (its address not whitelisted) reach `GET /api/v1/blocked-calls` with
//! their counts and route, in one process and from a following proxy;
//! allowed calls and other accounts' calls are not shown; the portal lists
//! them, and "Request this IP" fills the request form (in headless
//! Chromium, screenshot `target/screenshots/blocked-calls.png`).

use crate::common::fleet::*;
use crate::common::webdriver::Chrome;
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The account's blocked calls once `want` addresses show (reports go
/// every 10 s), as (address, calls, route).
fn blocked(gate: &Server, token: &str, want: usize) -> Vec<(String, u64, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = api(gate, "GET", "/api/v1/blocked-calls", token, None);
        assert_eq!(s, 200, "{v}");
        let rows: Vec<(String, u64, String)> = v["addresses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r: &Value| {
                assert!(
                    r["first_seen"].as_str().is_some() && r["last_seen"].as_str().is_some(),
                    "{r}"
                );
                (
                    r["address"].as_str().unwrap_or_default().to_string(),
                    r["calls"].as_u64().unwrap_or_default(),
                    r["route"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if rows.len() >= want || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn denied_calls_show_per_address_and_only_to_their_account() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.10/32"]);
    gate.account("other", "enforce", &[]);
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    let (olga, _) = user(&gate, "other", "olga", "main", true);
    let acme = [("X-Account-Id", "acme")];
    for _ in 0..3 {
        assert_eq!(gate.get("127.0.0.77", "/sms/send", &acme).0, 403);
    }
    assert_eq!(gate.get("127.0.0.78", "/waba/acme/x", &[]).0, 403);
    // Allowed: not counted.
    assert_eq!(gate.get("127.0.0.10", "/sms/send", &acme).0, 200);
    assert_eq!(
        gate.get("127.0.0.79", "/sms/send", &[("X-Account-Id", "other")])
            .0,
        403
    );

    let rows = blocked(&gate, &alice, 2);
    assert_eq!(
        rows,
        vec![
            ("127.0.0.77".to_string(), 3, "sms".to_string()),
            ("127.0.0.78".to_string(), 1, "waba".to_string()),
        ]
    );
    let theirs = blocked(&gate, &olga, 1);
    assert_eq!(
        theirs,
        vec![("127.0.0.79".to_string(), 1, "sms".to_string())]
    );
    let m = gate.metrics_text();
    assert!(m.contains("ipgate_blocked_calls_dropped_total 0"), "{m}");
}

#[test]
fn a_following_proxy_reports_its_denied_calls_to_the_control_plane() {
    let up = Upstream::start();
    let control = Server::start(&up, ServerOpts::control_plane());
    control.account("acme", "enforce", &["127.0.0.10/32"]);
    let (alice, _) = user(&control, "acme", "alice", "main", true);
    let proxy = FleetProxy::start(
        &up,
        FleetOpts::following(&[format!("http://{}", control.admin)]),
    );
    let acme = [("X-Account-Id", "acme")];
    proxy.wait_until("the table arrives", 20, || {
        proxy.get("127.0.0.10", "/sms/send", &acme).0 == 200
    });
    for _ in 0..2 {
        assert_eq!(proxy.get("127.0.0.91", "/sms/send", &acme).0, 403);
    }
    let rows = blocked(&control, &alice, 1);
    assert_eq!(rows, vec![("127.0.0.91".to_string(), 2, "sms".to_string())]);

    // A bad report is refused and changes nothing; no token, no report.
    let url = format!("http://{}/sync/v1/blocked-calls", control.admin);
    let http = reqwest::blocking::Client::new();
    let bad = json!({"calls": [{"account": "acme", "address": "127.0.0.92", "calls": 0,
        "first_seen": 1, "last_seen": 1, "route": "sms"}]});
    let r = http.post(&url).json(&bad).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(&url)
        .bearer_auth(SYNC_TOKEN)
        .json(&bad)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(blocked(&control, &alice, 1).len(), 1);
}

#[test]
fn the_portal_lists_blocked_calls_and_request_this_ip_fills_the_form() {
    let Some(chrome) = Chrome::start() else {
        return;
    };
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    acme_two_emails(&gate, json!({}));
    let (alice, secret) = user(&gate, "acme", "alice", "main", true);
    let acme = [("X-Account-Id", "acme")];
    for _ in 0..4 {
        assert_eq!(gate.get("127.0.0.66", "/sms/send", &acme).0, 403);
    }
    assert_eq!(gate.get("127.0.0.67", "/sms/send", &acme).0, 403);
    assert_eq!(blocked(&gate, &alice, 2).len(), 2);

    let portal = format!("http://{}", gate.portal);
    chrome.resize(1200, 1600);
    chrome.goto(&format!("{portal}/portal"));
    chrome.log_in_alice(&secret.unwrap_or_default());
    let text = chrome.text();
    assert!(text.contains("Blocked calls (last 7 days)"), "{text}");
    let source = chrome.source();
    let table = source
        .split("id=\"blocked-calls\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no blocked-calls table: {source}"));
    // Most calls first.
    let (first, second) = (table.find("127.0.0.66"), table.find("127.0.0.67"));
    assert!(first.is_some() && first < second, "{table}");
    assert!(table.contains(">4<"), "{table}");
    assert_eq!(chrome.value("#ip1"), "");
    let shot = chrome.screenshot("blocked-calls");
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000,
        "{}",
        shot.display()
    );

    chrome.click("#blocked-calls tr.blocked a.request-ip");
    assert_eq!(chrome.value("#ip1"), "127.0.0.66");
    // Filling the form requests nothing: the address is still refused.
    assert_eq!(gate.get("127.0.0.66", "/sms/send", &acme).0, 403);
    let (_, v) = api(&gate, "GET", "/api/v1/whitelist/requests", &alice, None);
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");

    chrome.click("#submit");
    assert!(chrome.text().contains("127.0.0.66"), "{}", chrome.text());
    chrome.click("#send");
    assert!(chrome.text().contains("Request saved"), "{}", chrome.text());
    let mails = gate.mail.wait_for(2, Duration::from_secs(20));
    let link = mails
        .first()
        .and_then(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
        .unwrap_or_else(|| panic!("no link mail: {mails:?}"));
    chrome.goto(&link);
    chrome.click_in_place("#confirm");
    chrome.click("#approve");
    assert_eq!(gate.get("127.0.0.66", "/sms/send", &acme).0, 200);

    // Anything but an IPv4 address in the link fills nothing.
    for bad in ["2001:db8::1", "127.0.0.066", "%3Cscript%3E", "1.2.3.4/24"] {
        chrome.goto(&format!("{portal}/portal?ip1={bad}"));
        assert_eq!(chrome.value("#ip1"), "", "{bad}");
    }
}
