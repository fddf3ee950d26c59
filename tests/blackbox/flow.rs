//! The self-service flow end to end against the real binary and a real SMTP
//! server: submit through the customer API, read the mails, follow the
//! links, decide, and check the proxy, the notices and the security log.

use crate::common::browser::{csrf, Answer, Browser};
use crate::common::*;
use ipgate_devmail::{Mail, Mode};
use serde_json::json;
use std::time::Duration;

const ALICE_IPS: [&str; 2] = ["127.0.0.21", "127.0.0.22"];

/// A gate whose account `acme` (enforcing, two emails) has a main user with
/// 2FA; loopback addresses may be requested so the proxy can be called
/// from them. Returns the gate and alice's API token.
fn flow_gate(control_extra: &str) -> (Upstream, Server, String) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(control_extra));
    acme_two_emails(&gate, json!({}));
    let (alice, _) = user(&gate, "acme", "alice", "main", true);
    (up, gate, alice)
}

fn submit(gate: &Server, token: &str, ips: &[&str]) -> String {
    let (s, req) = submit_request(
        gate,
        token,
        json!({"ips": ips, "remark": "prod <b>senders</b>"}),
    );
    assert_eq!(s, 202, "{req}");
    req["id"].as_str().unwrap_or_default().to_string()
}

fn wait_mails(gate: &Server, n: usize, secs: u64) -> Vec<Mail> {
    let mails = gate.mail.wait_for(n, Duration::from_secs(secs));
    assert!(
        mails.len() >= n,
        "expected {n} mails, got {}: {:?}\n{}",
        mails.len(),
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>(),
        gate.log()
    );
    mails
}

/// The review link of each link mail, by recipient.
fn links(mails: &[Mail]) -> Vec<(String, String)> {
    mails
        .iter()
        .filter(|m| m.subject.starts_with("Confirm"))
        .map(|m| {
            let link = m
                .links()
                .into_iter()
                .find(|l| l.contains("/confirm/"))
                .unwrap_or_else(|| panic!("no link in {:?}", m.text));
            (m.to.join(","), link)
        })
        .collect()
}

/// A link opened by a mail reader: no cookies, no redirects followed.
fn open(link: &str) -> Answer {
    Browser::new("").get(link)
}

fn post(link: &str, form: &[(&str, &str)]) -> Answer {
    Browser::new("").post(link, form)
}

fn decide(link: &str, decision: &str) -> Answer {
    let token = csrf(&open(link).body);
    post(
        link,
        &[("csrf", &token), ("confirm", "yes"), ("decision", decision)],
    )
}

fn calls_from(gate: &Server, ip: &str) -> u16 {
    gate.get(ip, "/sms/send?username=acme", &[]).0
}

#[test]
fn approving_from_an_emailed_link_puts_the_ips_live_and_tells_everyone() {
    let (up, mut gate, alice) = flow_gate("");
    let id = submit(&gate, &alice, &ALICE_IPS);
    let mails = wait_mails(&gate, 2, 20);

    // One mail per account address, each with its own link built from public_url.
    let links = links(&mails);
    let mut to: Vec<&str> = links.iter().map(|(t, _)| t.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, ["cto@acme.test", "ops@acme.test"]);
    assert_ne!(links[0].1, links[1].1, "each address gets its own link");
    let prefix = format!("http://{}/confirm/", gate.portal);
    for (_, l) in &links {
        assert!(l.starts_with(&prefix), "{l}");
    }
    let m = &mails[0];
    assert!(
        m.html.is_some() && m.text.is_some(),
        "multipart text + HTML"
    );
    let text = m.text.clone().unwrap_or_default();
    for want in [
        "127.0.0.21",
        "127.0.0.22",
        "prod <b>senders</b>",
        "alice",
        "127.0.0.1",
        "Link expires",
        "add security@ipgate.test to your address book",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    let html = m.html.clone().unwrap_or_default();
    assert!(
        html.contains("prod &lt;b&gt;senders&lt;/b&gt;") && !html.contains("<b>senders"),
        "the remark is escaped in HTML: {html}"
    );
    // No token is stored anywhere in the clear (checked once the outbox is
    // empty: a kill before a sent mail is marked sent would send it again).
    gate.wait_until("an empty outbox", 20, || {
        gate.metrics_text().contains("ipgate_mail_outbox_depth 0")
    });
    assert!(gate
        .metrics_text()
        .contains(r#"ipgate_mail_total{kind="link",result="sent"} 2"#));
    let token = links[0]
        .1
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    gate.kill();
    let mut found = false;
    for entry in walk(&gate.dir.path().join("store")) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        found |= bytes.windows(token.len()).any(|w| w == token.as_bytes());
    }
    assert!(!found, "a link token is in the store in plain text");
    gate.kill_and_restart();

    // Opening (GET and HEAD) changes nothing; the page is not cached and sends no referrer.
    let (ops, ops_link) = links
        .iter()
        .find(|(t, _)| t == "ops@acme.test")
        .cloned()
        .unwrap_or_default();
    let page = open(&ops_link);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.headers["cache-control"], "no-store");
    for want in [
        "127.0.0.21",
        "Acme",
        "alice",
        "ipgate-test/1.0",
        "Approve &amp; whitelist now",
        "Reject request",
    ] {
        assert!(
            page.body.contains(want),
            "{want} missing from the review page"
        );
    }
    let head = Browser::new("").head(&ops_link);
    assert_eq!(head.status, 200);
    assert_eq!(request(&gate, &alice, &id)["status"], "pending");
    assert_eq!(
        calls_from(&gate, "127.0.0.21"),
        403,
        "not live before approval"
    );

    // Approve: live before the page is answered.
    let done = post(
        &ops_link,
        &[
            ("csrf", &csrf(&page.body)),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("live now"), "{}", done.body);
    assert_eq!(calls_from(&gate, "127.0.0.21"), 200);
    assert_eq!(calls_from(&gate, "127.0.0.22"), 200);
    assert_eq!(
        calls_from(&gate, "127.0.0.23"),
        403,
        "only the approved IPs"
    );
    assert!(up.hits() >= 2);
    let r = request(&gate, &alice, &id);
    assert_eq!(
        (&r["status"], &r["decided_by"], &r["decided_from"]),
        (&json!("approved"), &json!(ops), &json!("127.0.0.1"))
    );
    let (_, wl) = api(&gate, "GET", "/api/v1/whitelist", &alice, None);
    assert_eq!(wl.as_array().map(Vec::len), Some(2), "{wl}");

    // Every link is spent now, and says why.
    let again = open(&ops_link);
    assert_eq!(again.status, 410);
    assert!(
        again.body.contains("You already approved"),
        "{}",
        again.body
    );
    let (_, cto_link) = links
        .iter()
        .find(|(t, _)| t == "cto@acme.test")
        .cloned()
        .unwrap_or_default();
    let other = open(&cto_link);
    assert_eq!(other.status, 410);
    assert!(
        other
            .body
            .contains("already approved by ops@acme.test from 127.0.0.1"),
        "{}",
        other.body
    );
    let late = post(
        &ops_link,
        &[
            ("csrf", &csrf(&page.body)),
            ("confirm", "yes"),
            ("decision", "reject"),
        ],
    );
    assert_eq!(
        late.status, 409,
        "a used link decides nothing: {}",
        late.body
    );
    assert_eq!(request(&gate, &alice, &id)["status"], "approved");

    // Both addresses get the outcome notice: who, from where, when.
    let mails = wait_mails(&gate, 4, 20);
    let notices: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject.contains("was approved"))
        .collect();
    assert_eq!(
        notices.len(),
        2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let decided_at = r["decided_at"].as_str().unwrap_or_default();
    for n in notices {
        let t = n.text.clone().unwrap_or_default();
        assert!(
            t.contains(&format!(
                "approved by ops@acme.test from 127.0.0.1 at {decided_at}"
            )),
            "{t}"
        );
    }

    // Every step is in the security log, and the chain verifies.
    let ev = gate.security_events("acme");
    for want in [
        "request.submitted",
        "mail.sent",
        "link.opened",
        "whitelist.added",
        "link.approved",
        "request.approved",
    ] {
        assert!(ev.iter().any(|e| e == want), "{want} missing: {ev:?}");
    }
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
    gate.wait_until("an empty outbox", 20, || {
        gate.metrics_text().contains("ipgate_mail_outbox_depth 0")
    });
    gate.assert_metrics(&[
        r#"ipgate_mail_total{kind="notice",result="sent"} 2"#,
        r#"ipgate_flow_requests_total{outcome="approved"} 1"#,
    ]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn rejecting_changes_nothing_and_forged_posts_are_refused() {
    let (_up, gate, alice) = flow_gate("");
    let id = submit(&gate, &alice, &["127.0.0.31"]);
    let links = links(&wait_mails(&gate, 2, 20));
    let link = &links[0].1;
    let page = open(link);
    let good = csrf(&page.body);

    for (form, what) in [
        (
            vec![("confirm", "yes"), ("decision", "approve")],
            "no CSRF value",
        ),
        (
            vec![
                ("csrf", "0000"),
                ("confirm", "yes"),
                ("decision", "approve"),
            ],
            "a wrong CSRF value",
        ),
        (
            vec![
                ("csrf", good.as_str()),
                ("confirm", "yes"),
                ("decision", "maybe"),
            ],
            "an unknown decision",
        ),
    ] {
        let p = post(link, &form);
        assert_eq!(p.status, 403, "{what}: {}", p.body);
        assert!(p.body.contains("Nothing was changed"), "{what}");
    }
    // The CSRF value of one link does not work for another.
    let other_csrf = csrf(&open(&links[1].1).body);
    assert_eq!(
        post(
            link,
            &[
                ("csrf", &other_csrf),
                ("confirm", "yes"),
                ("decision", "approve")
            ]
        )
        .status,
        403
    );
    assert_eq!(request(&gate, &alice, &id)["status"], "pending");
    assert_eq!(calls_from(&gate, "127.0.0.31"), 403);

    let p = post(
        link,
        &[("csrf", &good), ("confirm", "yes"), ("decision", "reject")],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body.contains("rejected; nothing was changed"),
        "{}",
        p.body
    );
    assert_eq!(request(&gate, &alice, &id)["status"], "rejected");
    assert_eq!(calls_from(&gate, "127.0.0.31"), 403);
    assert_eq!(
        api(&gate, "GET", "/api/v1/whitelist", &alice, None).1,
        json!([])
    );
    let mails = wait_mails(&gate, 4, 20);
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.subject.contains("was rejected"))
            .count(),
        2
    );
    assert!(gate
        .security_events("acme")
        .iter()
        .any(|e| e == "link.rejected"));
}

#[test]
fn racing_decisions_one_wins() {
    let (_up, gate, alice) = flow_gate("");
    for round in 0..3 {
        let ip = format!("127.0.0.{}", 41 + round);
        let id = submit(&gate, &alice, &[ip.as_str()]);
        let mails = wait_mails(&gate, 2 * (round + 1) + 2 * round, 20);
        let fresh: Vec<(String, String)> = links(&mails).into_iter().skip(2 * round).collect();
        assert_eq!(fresh.len(), 2);
        let forms: Vec<(String, String)> = fresh
            .iter()
            .map(|(_, l)| (l.clone(), csrf(&open(l).body)))
            .collect();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = forms
            .into_iter()
            .zip(["approve", "reject"])
            .map(|((link, token), decision)| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    (
                        decision,
                        post(
                            &link,
                            &[("csrf", &token), ("confirm", "yes"), ("decision", decision)],
                        )
                        .status,
                    )
                })
            })
            .collect();
        let results: Vec<(&str, u16)> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("thread")))
            .collect();
        let winners: Vec<&str> = results.iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "exactly one decision wins: {results:?}");
        assert!(
            results.iter().any(|r| r.1 == 409),
            "the other is told it was already decided: {results:?}"
        );
        let status = request(&gate, &alice, &id)["status"].clone();
        let expected = if winners[0] == "approve" {
            "approved"
        } else {
            "rejected"
        };
        assert_eq!(status, expected);
        let live = calls_from(&gate, &ip) == 200;
        assert_eq!(live, winners[0] == "approve");
        // Wait for both notices of this round before the next one.
        wait_mails(&gate, 4 * (round + 1), 20);
    }
}

#[test]
fn dead_links_say_what_happened() {
    let (_up, gate, alice) = flow_gate("link_ttl = \"3s\"");
    // Mangled and unknown tokens.
    let base = format!("http://{}/confirm/", gate.portal);
    for bad in ["x", "%00%ff", &"A".repeat(43), &"A".repeat(500)] {
        let p = open(&format!("{base}{bad}"));
        assert_eq!(p.status, 404, "{bad}");
        assert!(p.body.contains("This link is not valid"), "{}", p.body);
    }
    // Cancelled.
    let id = submit(&gate, &alice, &["127.0.0.51"]);
    let first = links(&wait_mails(&gate, 2, 20));
    let early_csrf = csrf(&open(&first[1].1).body);
    let (s, _) = api(
        &gate,
        "POST",
        &format!("/api/v1/whitelist/requests/{id}/cancel"),
        &alice,
        None,
    );
    assert_eq!(s, 200);
    let p = open(&first[0].1);
    assert_eq!(p.status, 410);
    assert!(
        p.body.contains("alice cancelled this request"),
        "{}",
        p.body
    );
    let late = post(
        &first[1].1,
        &[
            ("csrf", &early_csrf),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(late.status, 409, "{}", late.body);
    assert!(late.body.contains("cancelled"), "{}", late.body);
    assert_eq!(calls_from(&gate, "127.0.0.51"), 403);
    // Expired.
    let id = submit(&gate, &alice, &["127.0.0.52"]);
    let second: Vec<_> = links(&wait_mails(&gate, 4, 20))
        .into_iter()
        .skip(2)
        .collect();
    gate.wait_until("expiry", 15, || {
        request(&gate, &alice, &id)["status"] == "expired"
    });
    let p = open(&second[0].1);
    assert_eq!(p.status, 410);
    assert!(p.body.contains("This request expired"), "{}", p.body);
    assert_eq!(calls_from(&gate, "127.0.0.52"), 403);
    gate.assert_metrics(&[
        r#"ipgate_confirm_links_total{result="invalid"} 4"#,
        r#"ipgate_confirm_links_total{result="expired"}"#,
    ]);
}

#[test]
fn smtp_down_then_up_loses_no_mail() {
    let (_up, gate, alice) = flow_gate("");
    gate.mail.set_mode(Mode::Down);
    let id = submit(&gate, &alice, &["127.0.0.61"]);
    assert_eq!(
        request(&gate, &alice, &id)["status"],
        "pending",
        "saved although mail is down"
    );
    gate.wait_until("a failed attempt in the log", 20, || {
        gate.security_events("acme")
            .iter()
            .any(|e| e == "mail.failed")
    });
    assert!(gate
        .metrics_text()
        .contains(r#"ipgate_mail_total{kind="link",result="failed"}"#));
    gate.mail.set_mode(Mode::TempFail);
    std::thread::sleep(Duration::from_secs(2));
    assert!(gate.mail.mails().is_empty());
    gate.mail.set_mode(Mode::Accept);
    let mails = wait_mails(&gate, 2, 40);
    assert_eq!(links(&mails).len(), 2);
    assert_eq!(decide(&links(&mails)[0].1, "approve").status, 200);
    assert_eq!(calls_from(&gate, "127.0.0.61"), 200);
}

#[test]
fn kill_9_around_the_mail_loses_nothing() {
    let (_up, mut gate, alice) = flow_gate("");
    // Between submit and mail.
    gate.mail.set_mode(Mode::Down);
    let id = submit(&gate, &alice, &["127.0.0.71"]);
    gate.kill();
    gate.mail.set_mode(Mode::Accept);
    gate.kill_and_restart();
    let mails = wait_mails(&gate, 2, 30);
    let links = links(&mails);
    assert_eq!(links.len(), 2);
    // Between approval and notice.
    gate.mail.set_mode(Mode::Down);
    assert_eq!(decide(&links[0].1, "approve").status, 200);
    gate.kill();
    gate.mail.set_mode(Mode::Accept);
    gate.kill_and_restart();
    assert_eq!(
        calls_from(&gate, "127.0.0.71"),
        200,
        "the approval survived"
    );
    assert_eq!(request(&gate, &alice, &id)["status"], "approved");
    let mails = wait_mails(&gate, 4, 30);
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.subject.contains("was approved"))
            .count(),
        2
    );
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn guessing_links_is_rate_limited() {
    let (_up, gate, _alice) = flow_gate("");
    let base = format!("http://{}/confirm/", gate.portal);
    let statuses: Vec<u16> = (0..32)
        .map(|i| open(&format!("{base}{i:0>43}")).status)
        .collect();
    assert_eq!(&statuses[..30], &[404; 30][..], "{statuses:?}");
    assert_eq!(&statuses[30..], &[429, 429], "{statuses:?}");
}

/// The n-th of many distinct IPv4 client addresses (10.0.0.0/8).
fn flood_address(n: u32) -> String {
    std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string()
}

#[test]
fn a_flood_from_many_addresses_does_not_lock_others_out_of_links() {
    let up = Upstream::start();
    let gate = Server::start(
        &up,
        ServerOpts {
            // The test stands in for a proxy: it names the client.
            trusted_proxies: vec!["127.0.0.1/32".into()],
            ..ServerOpts::self_service("")
        },
    );
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    let guess = format!("/confirm/{}", "x".repeat(43));
    // More distinct clients than the limiter keeps keys for, each inside
    // its window.
    for n in 0..10_050 {
        b.set_header("X-Forwarded-For", &flood_address(n));
        let r = b.get(&guess);
        assert_eq!(r.status, 404, "flood client {n}: {}", r.body);
    }
    b.set_header("X-Forwarded-For", "198.51.100.7");
    let r = b.get(&guess);
    assert_eq!(r.status, 404, "a fresh client is served: {}", r.body);
    // The flood's own clients keep their limits.
    b.set_header("X-Forwarded-For", &flood_address(10_049));
    let statuses: Vec<u16> = (0..30).map(|_| b.get(&guess).status).collect();
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[test]
fn mail_refused_for_good_is_dropped_and_recorded() {
    let (_up, gate, alice) = flow_gate("");
    gate.mail.set_mode(Mode::Reject);
    let id = submit(&gate, &alice, &["127.0.0.111"]);
    gate.wait_until("both link mails dropped", 20, || {
        gate.security_events("acme")
            .iter()
            .filter(|e| *e == "mail.dropped")
            .count()
            == 2
    });
    gate.assert_metrics(&[
        "ipgate_mail_outbox_depth 0",
        r#"ipgate_mail_total{kind="link",result="failed"} 2"#,
    ]);
    assert!(gate.mail.mails().is_empty());
    assert_eq!(request(&gate, &alice, &id)["status"], "pending");
    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    assert!(log.to_string().contains("refused for good"), "{log}");
}

/// What a mail scanner that "clicks" a page's first form sends: every
/// field with its default value (hidden fields, checkboxes as they are,
/// the first submit button's name and value).
pub(crate) fn first_form_as_it_stands(page: &str) -> Vec<(String, String)> {
    let form = page
        .split("<form")
        .nth(1)
        .and_then(|f| f.split("</form>").next())
        .unwrap_or_else(|| panic!("no form in {page}"));
    let attr = |tag: &str, name: &str| -> Option<String> {
        tag.split(&format!("{name}=\""))
            .nth(1)?
            .split('"')
            .next()
            .map(str::to_string)
    };
    let mut fields = Vec::new();
    for input in form.split("<input").skip(1) {
        let tag = input.split('>').next().unwrap_or_default();
        let checkbox = attr(tag, "type").as_deref() == Some("checkbox");
        if checkbox && !tag.contains(" checked") {
            continue; // an unticked box is not sent
        }
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v));
        }
    }
    if let Some(button) = form.split("<button").nth(1) {
        let tag = button.split('>').next().unwrap_or_default();
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v));
        }
    }
    fields
}

#[test]
fn a_scanner_sending_the_review_form_as_it_stands_decides_nothing() {
    let (_up, gate, alice) = flow_gate("");
    let id = submit(&gate, &alice, &["127.0.0.41"]);
    let links = links(&wait_mails(&gate, 2, 20));
    let link = &links[0].1;
    let page = open(link);
    assert_eq!(page.status, 200, "{}", page.body);
    let fields = first_form_as_it_stands(&page.body);
    assert!(
        fields
            .iter()
            .any(|(n, v)| n == "decision" && v == "approve"),
        "the scanner's form carries the first button: {fields:?}"
    );
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let p = post(link, &form);
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(p.body.contains("Nothing was changed"), "{}", p.body);
    assert_eq!(request(&gate, &alice, &id)["status"], "pending");
    assert_eq!(calls_from(&gate, "127.0.0.41"), 403, "not live");
    // Reject without the box changes nothing either.
    let csrf_value = csrf(&page.body);
    let p = post(link, &[("csrf", &csrf_value), ("decision", "reject")]);
    assert_eq!(p.status, 422, "{}", p.body);
    assert_eq!(request(&gate, &alice, &id)["status"], "pending");
    // A person ticks the box: the same link decides.
    let p = post(
        link,
        &[
            ("csrf", &csrf_value),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(calls_from(&gate, "127.0.0.41"), 200, "live");
}

#[test]
fn a_link_stops_working_once_its_address_leaves_the_account() {
    let (_up, gate, alice) = flow_gate("");
    let id = submit(&gate, &alice, &["127.0.0.42"]);
    let links = links(&wait_mails(&gate, 2, 20));
    let link_of = |to: &str| {
        links
            .iter()
            .find(|(t, _)| t == to)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| panic!("no link for {to}"))
    };
    let (gone, kept) = (link_of("cto@acme.test"), link_of("ops@acme.test"));
    let gone_csrf = csrf(&open(&gone).body);
    let (s, b) = gate.admin(
        "PATCH",
        "/admin/v1/accounts/acme",
        Some(json!({"emails": ["ops@acme.test"]})),
    );
    assert_eq!(s, 200, "{b}");

    let page = open(&gone);
    assert_eq!(page.status, 410, "{}", page.body);
    assert!(page.body.contains("no longer"), "{}", page.body);
    let p = post(
        &gone,
        &[
            ("csrf", &gone_csrf),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(p.status, 410, "{}", p.body);
    assert!(p.body.contains("Nothing was changed"), "{}", p.body);
    assert_eq!(request(&gate, &alice, &id)["status"], "pending");
    assert_eq!(calls_from(&gate, "127.0.0.42"), 403, "not live");

    // The address still on the account decides.
    assert_eq!(decide(&kept, "approve").status, 200);
    assert_eq!(calls_from(&gate, "127.0.0.42"), 200);
}
