//! "This wasn't me" through the real binary and SMTP: every approval
//! notice carries its own link; opening it changes nothing; its POST needs
//! the page's CSRF value and the ticked box; then the approved IP is
//! refused at once, the account's requests are frozen (until the operator
//! lifts it), every email is told, the page says how to reach the
//! operator, and the link works once. Driven in headless Chromium too.

use crate::common::browser::{csrf, Browser};
use crate::common::webdriver::Chrome;
use crate::common::*;
use ipgate_devmail::Mail;
use serde_json::json;
use std::time::Duration;

const CONTACT: &str = "Call the Acme desk on +1 555 0100.";

fn gate() -> (Upstream, Server, String) {
    let up = Upstream::start();
    let gate = Server::start(
        &up,
        ServerOpts::self_service(&format!("contact = \"{CONTACT}\"")),
    );
    acme_two_emails(&gate, json!({}));
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    (up, gate, alice)
}

fn calls_from(gate: &Server, ip: &str) -> u16 {
    gate.get(ip, "/sms/send?username=acme", &[]).0
}

fn link_in(m: &Mail, part: &str) -> String {
    m.links()
        .into_iter()
        .find(|l| l.contains(part))
        .unwrap_or_else(|| panic!("no {part} link in {:?}", m.text))
}

/// Submits for `ip`, approves from the first link, and returns the
/// approval notices (one per email).
fn approved(gate: &Server, token: &str, ip: &str) -> Vec<Mail> {
    let (s, r) = submit_request(gate, token, json!({"ips": [ip]}));
    assert_eq!(s, 202, "{r}");
    let mails = gate.mail.wait_for(2, Duration::from_secs(20));
    let link = link_in(&mails[0], "/confirm/");
    let page = Browser::new("").get(&link);
    let r = Browser::new("").post(
        &link,
        &[
            ("csrf", &csrf(&page.body)),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(calls_from(gate, ip), 200);
    let mails = gate.mail.wait_for(4, Duration::from_secs(20));
    mails[2..].to_vec()
}

#[test]
fn this_wasnt_me_undoes_the_approval_freezes_and_tells_everyone() {
    let (_up, gate, alice) = gate();
    let notices = approved(&gate, &alice, "127.0.0.81");
    let links: Vec<String> = notices.iter().map(|m| link_in(m, "/not-me/")).collect();
    assert_ne!(links[0], links[1], "each notice its own link");
    let html = notices[0].html.clone().unwrap_or_default();
    assert!(html.contains("This wasn't me"), "{html}");

    // Opening changes nothing; a forged or unticked POST changes nothing.
    let page = Browser::new("").get(&links[0]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("127.0.0.81"), "{}", page.body);
    assert_eq!(calls_from(&gate, "127.0.0.81"), 200);
    let r = Browser::new("").post(&links[0], &[("csrf", "forged"), ("confirm", "yes")]);
    assert_eq!(r.status, 403);
    let r = Browser::new("").post(&links[0], &[("csrf", &csrf(&page.body))]);
    assert_eq!(r.status, 422);
    assert_eq!(calls_from(&gate, "127.0.0.81"), 200, "still live");

    let r = Browser::new("").post(
        &links[0],
        &[("csrf", &csrf(&page.body)), ("confirm", "yes")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("127.0.0.81/32"), "{}", r.body);
    assert!(r.body.contains(CONTACT), "the operator's text: {}", r.body);
    assert_eq!(calls_from(&gate, "127.0.0.81"), 403, "refused at once");

    // Every email told, with the operator's text.
    let mails = gate.mail.wait_for(6, Duration::from_secs(20));
    let told: Vec<&Mail> = mails[4..].iter().collect();
    assert_eq!(told.len(), 2);
    for m in &told {
        assert!(
            m.subject.starts_with("Security: an approval"),
            "{}",
            m.subject
        );
        let text = m.text.clone().unwrap_or_default();
        assert!(text.contains(CONTACT), "{text}");
        assert!(text.contains("frozen"), "{text}");
    }

    // Once only; the other email's link says it was reported.
    let again = Browser::new("").get(&links[0]);
    assert_eq!(again.status, 404);
    let other = Browser::new("").get(&links[1]);
    assert_eq!(other.status, 409, "{}", other.body);
    assert!(other.body.contains("already reported"), "{}", other.body);

    // Frozen until the operator lifts it.
    let (s, b) = submit_request(&gate, &alice, json!({"ips": ["127.0.0.82"]}));
    assert_eq!(s, 403, "{b}");
    assert!(b.to_string().contains("frozen"), "{b}");
    let (s, acct) = gate.admin(
        "PATCH",
        "/admin/v1/accounts/acme",
        Some(json!({"frozen": false})),
    );
    assert_eq!(s, 200, "{acct}");
    assert!(acct.get("frozen").is_none(), "{acct}");
    let (s, b) = submit_request(&gate, &alice, json!({"ips": ["127.0.0.82"]}));
    assert_eq!(s, 202, "{b}");
    let events = gate.security_events("acme");
    for want in ["request.disowned", "whitelist.removed", "account.changed"] {
        assert!(events.iter().any(|e| e == want), "{want}: {events:?}");
    }
}

#[test]
fn this_wasnt_me_in_a_real_browser() {
    let Some(chrome) = Chrome::start() else {
        return;
    };
    let (_up, gate, alice) = gate();
    let notices = approved(&gate, &alice, "127.0.0.83");
    chrome.resize(1100, 1000);
    chrome.goto(&link_in(&notices[1], "/not-me/"));
    let text = chrome.text();
    assert!(text.contains("Was this approval not you?"), "{text}");
    chrome.screenshot("not-me");
    chrome.click_in_place("#confirm");
    chrome.click("#not-me");
    let text = chrome.text();
    assert!(text.contains("the approval is undone"), "{text}");
    assert!(text.contains(CONTACT), "{text}");
    assert_eq!(calls_from(&gate, "127.0.0.83"), 403);
    chrome.screenshot("not-me-done");
}
