//! Mails as people expect them, read from what the SMTP server received:
//! multipart/alternative with the same words as text and HTML, a "Review &
//! approve request" button that is the link of the text part, and nothing
//! loaded from anywhere (no image, no remote style). And the portal's send
//! step: a confirmation page (what goes to whom, the sender to add to the
//! address book) before anything is saved.

use crate::common::browser::{csrf, totp_code, Browser};
use crate::common::*;
use ipgate_devmail::Mail;
use serde_json::json;
use std::time::Duration;

fn gate() -> (Upstream, Server, String, String) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    acme_two_emails(&gate, json!({}));
    let (token, secret) = user(&gate, "acme", "alice", "main", true);
    (up, gate, token, secret.unwrap_or_default())
}

/// Every `href="..."` and `src="..."` value of an HTML part.
fn urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push(rest[..end].replace("&amp;", "&"));
        }
    }
    out
}

fn assert_self_contained(m: &Mail, portal: &str) {
    let raw = m.raw.to_ascii_lowercase();
    assert!(raw.contains("multipart/alternative"), "{}", m.raw);
    let html = m
        .html
        .clone()
        .unwrap_or_else(|| panic!("no HTML part: {}", m.raw));
    assert!(m.text.is_some(), "no text part: {}", m.raw);
    let lower = html.to_ascii_lowercase();
    for banned in ["<img", "<link", "<script", "url(", "@import", "src="] {
        assert!(!lower.contains(banned), "{banned} in the HTML part: {html}");
    }
    for u in urls(&html) {
        assert!(u.starts_with(portal), "a link off ipgate's own pages: {u}");
    }
}

#[test]
fn the_review_mail_has_a_button_that_is_its_link_and_loads_nothing() {
    let (_up, gate, token, _) = gate();
    let (s, r) = submit_request(
        &gate,
        &token,
        json!({"ips": ["127.0.0.91"], "remark": "prod"}),
    );
    assert_eq!(s, 202, "{r}");
    let mails = gate.mail.wait_for(2, Duration::from_secs(20));
    let portal = format!("http://{}/", gate.portal);
    for m in &mails {
        assert_self_contained(m, &portal);
        let html = m.html.clone().unwrap_or_default();
        let text = m.text.clone().unwrap_or_default();
        let button = html
            .find("id=\"review\"")
            .map(|i| &html[html[..i].rfind("<a").unwrap_or(0)..])
            .unwrap_or_else(|| panic!("no button: {html}"));
        assert!(button.contains("Review &amp; approve request"), "{button}");
        let href = urls(button).into_iter().next().unwrap_or_default();
        assert!(href.contains("/confirm/"), "{href}");
        assert!(
            text.contains(&href),
            "the text part carries the same link: {text}"
        );
        // The same words in both parts.
        for want in [
            "127.0.0.91",
            "prod",
            "alice",
            "Link expires",
            "security@ipgate.test",
        ] {
            assert!(text.contains(want) && html.contains(want), "{want}");
        }
    }

    // The notices too, with their "this wasn't me" link.
    let link = mails[0]
        .links()
        .into_iter()
        .find(|l| l.contains("/confirm/"))
        .unwrap();
    let page = Browser::new("").get(&link);
    let r = Browser::new("").post(
        &link,
        &[
            ("csrf", &csrf(&page.body)),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(r.status, 200);
    let mails = gate.mail.wait_for(4, Duration::from_secs(20));
    for m in &mails[2..] {
        assert_self_contained(m, &portal);
    }
}

#[test]
fn the_portal_confirms_what_it_sends_before_saving_anything() {
    let (_up, gate, token, secret) = gate();
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    let page = b.get("/login");
    let r = b.post(
        "/login",
        &[
            ("csrf", &csrf(&page.body)),
            ("username", "alice"),
            ("password", "a long enough passphrase"),
            ("code", &totp_code(&secret, 0)),
        ],
    );
    assert_eq!(r.status, 303);
    let page = b.get("/portal");
    assert!(page.body.contains("id=\"steps\""), "the process is shown");
    assert!(page.body.contains("action=\"/portal/requests/confirm\""));
    let session = csrf(&page.body);

    // A refused address is said at the confirmation step, nothing saved.
    let r = b.post(
        "/portal/requests/confirm",
        &[("csrf", &session), ("ip1", "10.0.0.1.5"), ("valid_for", "")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("id=\"errors\""), "{}", r.body);
    // No CSRF value: refused.
    let r = b.post(
        "/portal/requests/confirm",
        &[("csrf", "x"), ("ip1", "127.0.0.92")],
    );
    assert_eq!(r.status, 403);

    let r = b.post(
        "/portal/requests/confirm",
        &[
            ("csrf", &session),
            ("ip1", "127.0.0.92"),
            ("remark", "new box"),
            ("valid_for", "30d"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for want in [
        "Send confirmation email",
        "Nothing is saved yet",
        "127.0.0.92",
        "new box",
        "30 days from approval",
        "ops@acme.test, cto@acme.test",
        "Security &lt;security@ipgate.test&gt;",
    ] {
        assert!(r.body.contains(want), "{want} missing: {}", r.body);
    }
    let (_, list) = api(&gate, "GET", "/api/v1/whitelist/requests", &token, None);
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing saved: {list}"
    );
    assert!(gate.mail.wait_for(1, Duration::from_millis(500)).is_empty());

    // Its button sends what it showed.
    let fields = crate::flow::first_form_as_it_stands(&r.body);
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saved = b.post("/portal/requests", &form);
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, list) = api(&gate, "GET", "/api/v1/whitelist/requests", &token, None);
    assert_eq!(list[0]["ips"], json!(["127.0.0.92"]), "{list}");
    assert_eq!(list[0]["remark"], "new box");
    assert_eq!(list[0]["valid_for_secs"], 30 * 86_400);
    assert_eq!(gate.mail.wait_for(2, Duration::from_secs(20)).len(), 2);
}
