//! `ipgate demo` end to end, over HTTP only: it starts, prints its walk,
//! and the walk works: denied, log in, request, confirm from the dev
//! mailbox, allowed. Ctrl-C stops it cleanly.

use crate::common::browser::{csrf, totp_code, Browser};
use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("`{label}` not printed:\n{text}"))
}

#[test]
fn the_printed_walk_works() {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let at = |p: u16| format!("127.0.0.1:{p}");
    let mut child = Command::new(bin())
        .arg("demo")
        .env("IPGATE_PROXY__LISTEN", at(ports[0]))
        .env("IPGATE_CONTROL__LISTEN", at(ports[1]))
        .env(
            "IPGATE_CONTROL__PUBLIC_URL",
            format!("http://{}", at(ports[1])),
        )
        .env("IPGATE_CONTROL__ADMIN_LISTEN", at(ports[2]))
        .env("IPGATE_METRICS__LISTEN", at(ports[3]))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
    while !out.contains("Ctrl-C stops the demo") {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("demo ended early:\n{out}");
        }
        out.push_str(&line);
    }
    let password = after(&out, "password").to_string();
    let secret = after(&out, "TOTP secret").to_string();
    let curl = out
        .lines()
        .find(|l| l.starts_with("curl -s -u acme:any-password"))
        .unwrap_or_else(|| panic!("no curl line:\n{out}"))
        .to_string();
    let url = curl.rsplit(' ').next().unwrap_or_default().to_string();
    assert!(url.contains(&at(ports[0])), "{curl}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(at(ports[0])).is_err()
        || std::net::TcpStream::connect(at(ports[1])).is_err()
    {
        assert!(Instant::now() < deadline, "demo did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let call = || {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .and_then(|c| c.get(&url).basic_auth("acme", Some("any-password")).send())
            .map(|r| r.status().as_u16())
            .unwrap()
    };
    assert_eq!(call(), 403, "step 1: denied");
    // The WhatsApp lines: acme's token on acme's number, on globex's, and
    // globex's own call.
    let bearer_calls: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("curl -s -H 'Authorization: Bearer "))
        .filter_map(|l| l.split_once("' "))
        .map(|(token, url)| (token.to_string(), url.to_string()))
        .collect();
    assert_eq!(bearer_calls.len(), 3, "{out}");
    let bearer = |i: usize| {
        let (token, url) = &bearer_calls[i];
        let resp = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .and_then(|c| c.get(url).bearer_auth(token).send())
            .unwrap();
        let status = resp.status().as_u16();
        (status, code(&resp.text().unwrap_or_default()))
    };
    assert_eq!(bearer(0).0, 403, "acme's token: acme's list decides");
    assert_eq!(bearer(1), (401, "ambiguous_account".to_string()));
    assert_eq!(bearer(2).0, 200, "globex is report-only");

    // Step 2: log in and request this machine's address.
    let mut b = Browser::new(&format!("http://{}", at(ports[1])));
    let page = b.get("/login");
    let r = b.post(
        "/login",
        &[
            ("csrf", &csrf(&page.body)),
            ("username", "alice"),
            ("password", &password),
            ("code", &totp_code(&secret, 0)),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.get("/portal");
    assert!(page.body.contains("id=\"your-ip\">127.0.0.1<"));
    let r = b.post(
        "/portal/requests",
        &[
            ("csrf", &csrf(&page.body)),
            ("ip1", "127.0.0.1"),
            ("remark", "demo"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);

    // Step 3: the dev mailbox has the links; approve from one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let link = loop {
        let mbox = b.get("/dev/mailbox").body;
        assert!(mbox.contains("Current TOTP code for <b>alice</b>"));
        if let Some(l) = mbox
            .split("<a href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .find(|l| l.contains("/confirm/"))
        {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no mail in the dev mailbox");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut reader = Browser::new("");
    let review = reader.get(&link);
    assert_eq!(review.status, 200, "{}", review.body);
    let done = reader.post(
        &link,
        &[
            ("csrf", &csrf(&review.body)),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.body);

    // Step 4: allowed.
    assert_eq!(call(), 200, "step 4: allowed");
    assert_eq!(
        bearer(0).0,
        200,
        "acme's WhatsApp call from the approved address"
    );
    assert_eq!(bearer(1), (401, "ambiguous_account".to_string()));

    // Ctrl-C stops it cleanly.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "demo exit: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not stop on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
