//! Approval quorum through the real binary and SMTP: an account that needs
//! two approvals goes live on the second different address, each approval
//! with its own notice and record; an address counts once; one Reject ends
//! the request; two approvals racing both count and the IPs go live once;
//! the operator's settings are checked; and the review page says "1 of 2
//! approvals" in headless Chromium (screenshot `target/screenshots/`).

use crate::common::browser::{csrf, Answer, Browser};
use crate::common::webdriver::Chrome;
use crate::common::*;
use ipgate_devmail::Mail;
use serde_json::json;
use std::time::Duration;

fn quorum_gate() -> (Upstream, Server, String) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    let b = acme_two_emails(&gate, json!({"approvals_required": 2}));
    assert_eq!(b["approvals_required"], 2, "{b}");
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    (up, gate, alice)
}

fn calls_from(gate: &Server, ip: &str) -> u16 {
    gate.get(ip, "/sms/send?username=acme", &[]).0
}

fn link_of(m: &Mail) -> String {
    m.links()
        .into_iter()
        .find(|l| l.contains("/confirm/"))
        .unwrap_or_else(|| panic!("no link in {:?}", m.text))
}

fn decide(link: &str, decision: &str) -> Answer {
    let page = Browser::new("").get(link);
    Browser::new("").post(
        link,
        &[
            ("csrf", &csrf(&page.body)),
            ("confirm", "yes"),
            ("decision", decision),
        ],
    )
}

/// Submits for `ip` and returns the two review links (ops, cto).
fn submit_and_links(gate: &Server, token: &str, ip: &str, seen: usize) -> Vec<(String, String)> {
    let (s, r) = submit_request(gate, token, json!({"ips": [ip]}));
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["approvals_required"], 2, "{r}");
    let mails = gate.mail.wait_for(seen + 2, Duration::from_secs(20));
    let mut links: Vec<(String, String)> = mails[seen..]
        .iter()
        .filter(|m| m.subject.starts_with("Confirm"))
        .map(|m| (m.to.join(","), link_of(m)))
        .collect();
    links.sort();
    assert_eq!(
        links.len(),
        2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    links
}

#[test]
fn two_addresses_must_approve_and_each_approval_is_told() {
    let (_up, gate, alice) = quorum_gate();
    let links = submit_and_links(&gate, &alice, "127.0.0.61", 0);
    let (cto, ops) = (&links[0].1, &links[1].1);
    let page = Browser::new("").get(ops);
    assert!(page.body.contains("0 of 2 approvals"), "{}", page.body);
    assert!(page.body.contains("Approve (more approvals needed)"));

    let r = decide(ops, "approve");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Approval counted: 1 of 2"), "{}", r.body);
    assert_eq!(
        calls_from(&gate, "127.0.0.61"),
        403,
        "not live on one approval"
    );
    let notices = gate.mail.wait_for(4, Duration::from_secs(20));
    let counted: Vec<&Mail> = notices[2..].iter().collect();
    for m in &counted {
        assert!(m.subject.ends_with("approval 1 of 2"), "{}", m.subject);
        let text = m.text.clone().unwrap_or_default();
        assert!(text.contains("ops@acme.test approved request"), "{text}");
        assert!(text.contains("Nothing is whitelisted yet"), "{text}");
    }

    // The same address again: counted once.
    let again = Browser::new("").get(ops);
    assert!(
        again.body.contains("You already approved"),
        "{}",
        again.body
    );
    let page = Browser::new("").get(cto);
    assert!(page.body.contains("1 of 2 approvals"), "{}", page.body);
    assert!(
        page.body.contains("ops@acme.test approved from"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Approve &amp; whitelist now"),
        "{}",
        page.body
    );

    let r = decide(cto, "approve");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("live now"), "{}", r.body);
    assert_eq!(calls_from(&gate, "127.0.0.61"), 200);
    let mails = gate.mail.wait_for(6, Duration::from_secs(20));
    assert!(mails[4..]
        .iter()
        .all(|m| m.subject.ends_with("was approved")));
    let events = gate.security_events("acme");
    assert_eq!(
        events.iter().filter(|e| *e == "link.approved").count(),
        2,
        "{events:?}"
    );
    let (_, req) = api(&gate, "GET", "/api/v1/whitelist/requests", &alice, None);
    assert_eq!(
        req[0]["approvals"].as_array().map(Vec::len),
        Some(2),
        "{req}"
    );
}

#[test]
fn one_reject_ends_it_and_racing_approvals_go_live_once() {
    let (_up, gate, alice) = quorum_gate();
    let links = submit_and_links(&gate, &alice, "127.0.0.62", 0);
    assert_eq!(decide(&links[1].1, "approve").status, 200);
    let r = decide(&links[0].1, "reject");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("rejected"), "{}", r.body);
    assert_eq!(calls_from(&gate, "127.0.0.62"), 403);

    let mut seen = gate.mail.wait_for(6, Duration::from_secs(20)).len();
    for round in 0..5 {
        let ip = format!("127.0.0.{}", 70 + round);
        let links = submit_and_links(&gate, &alice, &ip, seen);
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let racers: Vec<_> = links
                .iter()
                .map(|(_, l)| s.spawn(move || decide(l, "approve")))
                .collect();
            racers.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut titles: Vec<bool> = answers
            .iter()
            .map(|a| a.body.contains("live now"))
            .collect();
        titles.sort();
        assert_eq!(
            titles,
            [false, true],
            "round {round}: one counted, one made it live"
        );
        assert!(answers.iter().all(|a| a.status == 200));
        assert_eq!(calls_from(&gate, &ip), 200, "round {round}");
        // 2 links, 2 notices of approval 1, 2 outcome notices.
        seen = gate.mail.wait_for(seen + 6, Duration::from_secs(20)).len();
    }
    let (_, entries) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    assert_eq!(entries.as_array().map(Vec::len), Some(5), "{entries}");
}

#[test]
fn the_operator_sets_a_quorum_the_emails_can_give() {
    let (_up, gate, _) = quorum_gate();
    for (body, why) in [
        (json!({"approvals_required": 3}), "more than the emails"),
        (json!({"approvals_required": 0}), "zero"),
        (
            json!({"emails": ["ops@acme.test"]}),
            "fewer emails than the quorum",
        ),
    ] {
        let (s, b) = gate.admin("PATCH", "/admin/v1/accounts/acme", Some(body));
        assert_eq!(s, 400, "{why}: {b}");
        assert_eq!(b["errors"][0]["field"], "approvals_required", "{why}: {b}");
    }
    let (s, b) = gate.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "globex", "name": "G", "emails": ["a@g.test"], "approvals_required": 2})),
    );
    assert_eq!(s, 400, "{b}");
    let (s, b) = gate.admin(
        "PATCH",
        "/admin/v1/accounts/acme",
        Some(json!({"approvals_required": 1})),
    );
    assert_eq!(s, 200, "{b}");
    assert!(
        b.get("approvals_required").is_none(),
        "1 is the default: {b}"
    );
    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    let changed = log
        .as_array()
        .and_then(|l| l.iter().rev().find(|r| r["event"] == "account.changed"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        changed["details"]["before"]["approvals_required"], 2,
        "{changed}"
    );
    assert_eq!(
        changed["details"]["after"]["approvals_required"], 1,
        "{changed}"
    );
}

#[test]
fn the_review_page_shows_the_approvals_so_far_in_a_browser() {
    let Some(chrome) = Chrome::start() else {
        return;
    };
    let (_up, gate, alice) = quorum_gate();
    let links = submit_and_links(&gate, &alice, "127.0.0.63", 0);
    assert_eq!(decide(&links[1].1, "approve").status, 200);
    chrome.resize(1100, 1000);
    chrome.goto(&links[0].1);
    let text = chrome.text();
    assert!(text.contains("1 of 2 approvals so far"), "{text}");
    assert!(
        text.contains("Approvals 1 of 2 needed: ops@acme.test"),
        "{text}"
    );
    chrome.screenshot("review-quorum");
    chrome.click_in_place("#confirm");
    chrome.click("#approve");
    assert!(chrome.text().contains("live now"), "{}", chrome.text());
    assert_eq!(calls_from(&gate, "127.0.0.63"), 200);
}
