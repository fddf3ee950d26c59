//! The portal in a real headless Chromium: log in with password and TOTP,
//! submit an IP, follow the emailed link, approve, and see the IP in the
//! whitelisted table and live in the proxy; open the Security log tab and
//! see the account's records (screenshot in target/screenshots/).

use crate::common::webdriver::Chrome;
use crate::common::*;
use std::time::Duration;

#[test]
fn a_customer_requests_and_approves_in_a_real_browser() {
    let Some(chrome) = Chrome::start() else {
        return;
    };
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    gate.account("acme", "enforce", &[]);
    let (_, secret) = user(&gate, "acme", "alice", "main", true);
    let portal = format!("http://{}", gate.portal);

    chrome.goto(&format!("{portal}/portal"));
    assert!(chrome.url().ends_with("/login"), "{}", chrome.url());
    chrome.log_in_alice(&secret.unwrap_or_default());
    assert!(
        chrome.url().ends_with("/portal"),
        "{}: {}",
        chrome.url(),
        chrome.text()
    );
    let text = chrome.text();
    assert!(text.contains("Two-factor authentication: on"), "{text}");
    assert!(
        text.contains("Your current IP address: 127.0.0.1"),
        "{text}"
    );

    chrome.type_into("#ip1", "127.0.0.101");
    chrome.type_into("#remark", "browser test");
    chrome.click("#submit");
    // A confirmation page first: nothing saved, the sender to add.
    let text = chrome.text();
    assert!(text.contains("Send confirmation email"), "{text}");
    assert!(text.contains("Nothing is saved yet"), "{text}");
    assert!(text.contains("security@ipgate.test"), "{text}");
    assert!(text.contains("ops@acme.test"), "{text}");
    chrome.resize(1100, 900);
    chrome.screenshot("confirm-request");
    assert!(
        gate.mail.wait_for(1, Duration::from_millis(300)).is_empty(),
        "no mail before Send"
    );
    chrome.click("#send");
    let text = chrome.text();
    assert!(text.contains("Request saved"), "{text}");
    assert!(text.contains("127.0.0.101"), "{text}");
    assert_eq!(gate.get("127.0.0.101", "/sms/x?username=acme", &[]).0, 403);

    let mails = gate.mail.wait_for(1, Duration::from_secs(20));
    let link = mails
        .first()
        .and_then(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
        .unwrap_or_else(|| panic!("no link mail: {mails:?}"));
    chrome.goto(&link);
    let text = chrome.text();
    assert!(text.contains("Review IP whitelist request"), "{text}");
    assert!(text.contains("127.0.0.101"), "{text}");
    assert_eq!(
        gate.get("127.0.0.101", "/sms/x?username=acme", &[]).0,
        403,
        "opening the link changed nothing"
    );
    // The box must be ticked first: the browser does not send the form.
    chrome.click_in_place("#approve");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        chrome.text().contains("Review IP whitelist request"),
        "an unticked form was sent"
    );
    chrome.click_in_place("#confirm");
    chrome.click("#approve");
    let text = chrome.text();
    assert!(text.contains("Approved"), "{text}");
    assert!(text.contains("live now"), "{text}");
    assert_eq!(gate.get("127.0.0.101", "/sms/x?username=acme", &[]).0, 200);

    chrome.goto(&format!("{portal}/portal"));
    let source = chrome.source();
    let whitelist = source
        .split("id=\"whitelist\"")
        .nth(1)
        .and_then(|s| s.split("</table>").next())
        .unwrap_or_default();
    assert!(whitelist.contains("127.0.0.101"), "{whitelist}");
    assert!(
        source.contains("<td class=\"status\">approved</td>"),
        "{source}"
    );
    assert!(source.contains("ops@acme.test at"), "the approver is shown");
}

#[test]
fn the_security_log_tab_lists_the_accounts_records() {
    let Some(chrome) = Chrome::start() else {
        return;
    };
    let (_up, gate, _alice, secret, _gina) = crate::customer_log::two_accounts();
    let portal = format!("http://{}", gate.portal);
    chrome.resize(1280, 1600);
    chrome.goto(&format!("{portal}/login"));
    chrome.log_in_alice(&secret);
    assert!(chrome.url().ends_with("/portal"), "{}", chrome.url());

    chrome.click("#tab-security-log");
    assert!(
        chrome.url().ends_with("/portal/security-log"),
        "{}",
        chrome.url()
    );
    let text = chrome.text();
    for want in [
        "Security log: acme",
        "request.submitted",
        "request.approved",
        "whitelist.added",
        "login.succeeded",
        "Download CSV",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    for other in ["globex", "gina", "127.0.0.41"] {
        assert!(!text.contains(other), "{other} leaked:\n{text}");
    }
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    let head = v["head"].as_str().unwrap_or_default();
    assert!(text.contains(head), "the chain head {head}:\n{text}");
    let records = format!("It holds {} records", v["records"]);
    assert!(text.contains(&records), "{records}:\n{text}");
    let shot = chrome.screenshot("security-log");
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000);

    chrome.click("#tab-whitelist");
    assert!(chrome.text().contains("Whitelisted IPs"));
}
