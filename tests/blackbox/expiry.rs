//! Time-bound whitelist entries through the real binaries and SMTP: an
//! entry given an end by the operator, or requested "for 7 days" by a
//! customer, is live until its time and refused from it on; every account
//! email is reminded before (`control.expiry_reminders`, short here); a
//! fleet proxy drops the entry at its time by itself, with its control
//! plane gone; and the portal shows "expires in" (in headless Chromium,
//! with a screenshot kept under `target/screenshots/`).

use crate::common::fleet::*;
use crate::common::webdriver::Chrome;
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn calls_from(gate: &Server, ip: &str) -> u16 {
    gate.get(ip, "/sms/send?username=acme", &[]).0
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Unix seconds of an RFC 3339 UTC time as ipgate writes them.
fn unix_of(v: &Value) -> u64 {
    let t = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let out = std::process::Command::new("date")
        .args(["-u", "-d", t, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn acme(gate: &Server) {
    acme_two_emails(gate, json!({}));
}

fn add(gate: &Server, body: Value) -> (u16, Value) {
    gate.admin("POST", "/admin/v1/accounts/acme/whitelist", Some(body))
}

#[test]
fn an_entry_with_an_end_is_live_until_then_reminded_before_and_refused_after() {
    let up = Upstream::start();
    let gate = Server::start(
        &up,
        ServerOpts::self_service("expiry_reminders = [\"6s\", \"3s\"]"),
    );
    acme(&gate);

    // Bad ends are refused, each naming its field, and add nothing.
    let past = "2020-01-01T00:00:00Z";
    for (body, field) in [
        (
            json!({"cidr": "127.0.0.31", "expires_in": "0s"}),
            "expires_in",
        ),
        (
            json!({"cidr": "127.0.0.31", "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"cidr": "127.0.0.31", "expires_in": "400d"}),
            "expires_in",
        ),
        (
            json!({"cidr": "127.0.0.31", "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"cidr": "127.0.0.31", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"cidr": "127.0.0.31", "expires_at": "2099-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"cidr": "127.0.0.31", "expires_in": "1d", "expires_at": past}),
            "expires_at",
        ),
    ] {
        let (s, b) = add(&gate, body.clone());
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["errors"][0]["field"], field, "{body}: {b}");
    }
    let (_, listed) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    let (s, permanent) = add(&gate, json!({"cidr": "127.0.0.32"}));
    assert_eq!(s, 201, "{permanent}");
    assert!(permanent.get("expires_at").is_none(), "{permanent}");
    let (s, timed) = add(
        &gate,
        json!({"cidr": "127.0.0.31", "remark": "migration", "expires_in": "9s"}),
    );
    assert_eq!(s, 201, "{timed}");
    let end = unix_of(&timed["expires_at"]);
    assert!(end.abs_diff(unix_now() + 9) <= 1, "{timed}");

    assert_eq!(calls_from(&gate, "127.0.0.31"), 200);
    assert_eq!(calls_from(&gate, "127.0.0.32"), 200);
    gate.assert_metrics(&["ipgate_table_entries 2", "ipgate_table_entries_expiring 1"]);

    // Two reminders, each to both emails: 6 s and 3 s before the end.
    let mails = gate.mail.wait_for(4, Duration::from_secs(12));
    assert_eq!(mails.len(), 4, "{:?}\n{}", mails, gate.log());
    for m in &mails {
        assert!(
            m.subject
                .starts_with("127.0.0.31/32 leaves the API IP whitelist of Acme Ltd in "),
            "{}",
            m.subject
        );
        let text = m.text.clone().unwrap_or_default();
        assert!(text.contains("migration"), "{text}");
        let html = m.html.clone().unwrap_or_default();
        assert!(html.contains("127.0.0.31/32"), "HTML part too: {html}");
    }
    let mut to: Vec<String> = mails.iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "cto@acme.test",
            "cto@acme.test",
            "ops@acme.test",
            "ops@acme.test"
        ]
    );
    let first = mails[0]
        .received_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        first + 5 <= end,
        "the first reminder came about 6 s before the end, not at {first} for {end}"
    );

    // Live until its second, refused from it on; the permanent one stays.
    while unix_now() + 1 < end {
        assert_eq!(calls_from(&gate, "127.0.0.31"), 200, "still before its end");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls_from(&gate, "127.0.0.31") == 200 {
        assert!(Instant::now() < deadline, "the entry outlived its end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused_at = unix_now();
    assert!(
        refused_at >= end,
        "refused at {refused_at}, before its end {end}"
    );
    assert!(refused_at <= end + 1, "refused at {refused_at}, end {end}");
    let (_, body) = gate.get("127.0.0.31", "/sms/send?username=acme", &[]);
    assert_eq!(code(&body), "ip_not_whitelisted");
    assert_eq!(calls_from(&gate, "127.0.0.32"), 200);

    // The store lets it go too, with its record; the gauge follows.
    gate.wait_until("the ended entry removed from the store", 5, || {
        let (_, l) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
        l.as_array().map(Vec::len) == Some(1)
    });
    gate.assert_metrics(&["ipgate_table_entries 1", "ipgate_table_entries_expiring 0"]);
    let events = gate.security_events("acme");
    let count = |e: &str| events.iter().filter(|x| x.as_str() == e).count();
    assert_eq!(count("whitelist.expired"), 1, "{events:?}");
    assert_eq!(count("whitelist.expiry_reminder"), 2, "{events:?}");
    let (_, verify) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn a_fleet_proxy_drops_an_ended_entry_by_itself_with_its_control_plane_gone() {
    let up = Upstream::start();
    let mut control = Server::start(&up, ServerOpts::control_plane());
    control.account("acme", "enforce", &["127.0.0.1/32"]);
    let url = format!("http://{}", control.admin);
    let proxy = FleetProxy::start(&up, FleetOpts::following(std::slice::from_ref(&url)));
    let acme = |from: &str| proxy.get(from, "/sms/send", &[("X-Account-Id", "acme")]).0;
    proxy.wait_until("the first table", 15, || acme("127.0.0.1") == 200);

    let (s, timed) = control.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(json!({"cidr": "127.0.0.2", "expires_in": "5s"})),
    );
    assert_eq!(s, 201, "{timed}");
    let end = unix_of(&timed["expires_at"]);
    proxy.wait_until("the timed entry live", 5, || acme("127.0.0.2") == 200);
    assert!(proxy
        .metrics_text()
        .contains("ipgate_table_entries_expiring 1"));

    // The control plane goes away; the proxy serves its table on, and the
    // entry leaves it at its time all the same.
    control.kill();
    assert!(unix_now() < end, "the test was too slow to prove anything");
    assert_eq!(acme("127.0.0.2"), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while acme("127.0.0.2") == 200 {
        assert!(Instant::now() < deadline, "the entry outlived its end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused_at = unix_now();
    assert!(
        (end..=end + 1).contains(&refused_at),
        "refused at {refused_at}, end {end}"
    );
    assert_eq!(acme("127.0.0.1"), 200, "the permanent entry stays");
    let m = proxy.metrics_text();
    assert!(m.contains("ipgate_table_entries_expiring 0"), "{m}");
    assert!(m.contains("ipgate_sync_connected 0"), "{m}");
    assert!(proxy.log().contains("left the table"), "{}", proxy.log());
}

fn main_user(gate: &Server) -> (String, String) {
    let (token, secret) = user(gate, "acme", "alice", "main", true);
    (token, secret.unwrap_or_default())
}

#[test]
fn a_request_for_seven_days_adds_entries_that_end_seven_days_after_approval() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    acme(&gate);
    let (token, _) = main_user(&gate);

    for bad in [json!("forever"), json!("0s"), json!("367d"), json!(7)] {
        let (s, b) = submit_request(
            &gate,
            &token,
            json!({"ips": ["127.0.0.41"], "valid_for": bad}),
        );
        assert_eq!(s, 400, "{bad}: {b}");
        if bad.is_string() {
            assert_eq!(b["errors"][0]["field"], "valid_for", "{b}");
        }
    }
    let (s, req) = submit_request(
        &gate,
        &token,
        json!({"ips": ["127.0.0.41"], "remark": "trial", "valid_for": "7d"}),
    );
    assert_eq!(s, 202, "{req}");
    assert_eq!(req["valid_for_secs"], 604_800, "{req}");

    let mails = gate.mail.wait_for(2, Duration::from_secs(20));
    let mail = &mails[0];
    let text = mail.text.clone().unwrap_or_default();
    assert!(
        text.contains("Whitelisted for   7 days from approval"),
        "{text}"
    );
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/confirm/"))
        .unwrap();
    let mut b = crate::common::browser::Browser::new("");
    let page = b.get(&link);
    assert!(page.body.contains("7 days from approval"), "{}", page.body);
    let csrf = crate::common::browser::csrf(&page.body);
    let r = b.post(
        &link,
        &[("csrf", &csrf), ("confirm", "yes"), ("decision", "approve")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(calls_from(&gate, "127.0.0.41"), 200);

    let decided = request(&gate, &token, req["id"].as_str().unwrap());
    let approved_at = unix_of(&decided["decided_at"]);
    let (s, list) = api(&gate, "GET", "/api/v1/whitelist", &token, None);
    assert_eq!(s, 200, "{list}");
    let end = unix_of(&list[0]["expires_at"]);
    assert!(
        end.abs_diff(approved_at + 604_800) <= 1,
        "ends 7 days after approval: {list} / {decided}"
    );
    gate.assert_metrics(&["ipgate_table_entries_expiring 1"]);
    let (_, admin_list) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    assert_eq!(admin_list[0]["expires_at"], list[0]["expires_at"]);
}

#[test]
fn the_portal_requests_for_a_time_and_shows_when_each_entry_expires() {
    let Some(chrome) = Chrome::start() else {
        return;
    };
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    acme(&gate);
    let (_, secret) = main_user(&gate);
    let (s, b) = add(
        &gate,
        json!({"cidr": "127.0.0.52", "remark": "office", "expires_in": "30d"}),
    );
    assert_eq!(s, 201, "{b}");
    add(&gate, json!({"cidr": "127.0.0.53", "remark": "prod"}));
    let portal = format!("http://{}", gate.portal);

    chrome.goto(&format!("{portal}/portal"));
    chrome.log_in_alice(&secret);
    let text = chrome.text();
    // Rounded down: "in 30 days" within its first second, then 29.
    assert!(
        text.contains("in 29 days (") || text.contains("in 30 days ("),
        "{text}"
    );
    assert!(text.contains("never"), "{text}");

    chrome.type_into("#ip1", "127.0.0.51");
    chrome.click_in_place("#valid_for option[value='7d']");
    chrome.click("#submit");
    assert!(
        chrome.text().contains("7 days from approval"),
        "{}",
        chrome.text()
    );
    chrome.click("#send");
    let text = chrome.text();
    assert!(text.contains("Request saved"), "{text}");
    assert!(text.contains("127.0.0.51 for 7 days"), "{text}");

    let mails = gate.mail.wait_for(1, Duration::from_secs(20));
    let link = mails
        .first()
        .and_then(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
        .unwrap_or_else(|| panic!("no link mail: {mails:?}"));
    chrome.goto(&link);
    assert!(chrome.text().contains("7 days from approval"));
    chrome.click_in_place("#confirm");
    chrome.click("#approve");
    assert!(chrome.text().contains("Approved"), "{}", chrome.text());
    assert_eq!(calls_from(&gate, "127.0.0.51"), 200);

    chrome.resize(1200, 1400);
    chrome.goto(&format!("{portal}/portal"));
    let text = chrome.text();
    assert!(
        text.contains("in 6 days (") || text.contains("in 7 days ("),
        "{text}"
    );
    let shot = chrome.screenshot("portal-expires-in");
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000,
        "{}",
        shot.display()
    );
}

#[test]
fn the_cli_adds_an_entry_with_an_end_and_sets_quorum_and_freeze() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    let out = gate.admin_cli(&[
        "account",
        "create",
        "acme",
        "--name",
        "Acme",
        "--email",
        "ops@acme.test",
        "--email",
        "cto@acme.test",
        "--whitelist",
        "enforce",
        "--approvals-required",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gate.admin_cli(&[
        "whitelist",
        "add",
        "acme",
        "127.0.0.95",
        "--expires-in",
        "7d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        unix_of(&added["expires_at"]).abs_diff(unix_now() + 7 * 86_400) <= 2,
        "{added}"
    );
    let out = gate.admin_cli(&[
        "whitelist",
        "add",
        "acme",
        "127.0.0.96",
        "--expires-in",
        "never",
    ]);
    assert!(!out.status.success(), "a bad duration is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expires_in"));
    let out = gate.admin_cli(&[
        "account",
        "set",
        "acme",
        "--frozen",
        "true",
        "--approvals-required",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, a) = gate.admin("GET", "/admin/v1/accounts/acme", None);
    assert_eq!(a["frozen"], true, "{a}");
    assert!(a.get("approvals_required").is_none(), "{a}");
    let out = gate.admin_cli(&["account", "set", "acme", "--frozen", "false"]);
    assert!(out.status.success());
    let (_, a) = gate.admin("GET", "/admin/v1/accounts/acme", None);
    assert!(a.get("frozen").is_none(), "{a}");
}
