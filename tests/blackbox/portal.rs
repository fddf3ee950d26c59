//! The portal over HTTP: login with password and TOTP (once per code),
//! cookie flags, session renewal, CSRF on every POST, the whitelist page,
//! submitting and cancelling, who may request, and login rate limits.

use crate::common::browser::{csrf, totp_code, Answer, Browser};
use crate::common::*;

const PASSWORD: &str = "a long enough passphrase";

fn portal_gate() -> (Upstream, Server, String) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    gate.account("acme", "enforce", &["192.0.2.0/28"]);
    let (_, secret) = user(&gate, "acme", "alice", "main", true);
    (up, gate, secret.unwrap_or_default())
}

fn log_in(b: &mut Browser, username: &str, code: &str) -> Answer {
    let page = b.get("/login");
    assert_eq!(page.status, 200);
    b.post(
        "/login",
        &[
            ("csrf", &csrf(&page.body)),
            ("username", username),
            ("password", PASSWORD),
            ("code", code),
        ],
    )
}

#[test]
fn login_needs_the_password_and_a_fresh_code() {
    let (_up, gate, secret) = portal_gate();
    let base = format!("http://{}", gate.portal);

    // Not logged in: the portal sends you to the login page.
    let mut b = Browser::new(&base);
    let r = b.get("/portal");
    assert_eq!((r.status, r.location.as_str()), (303, "/login"));

    // A wrong code, and a wrong password, are refused with the same words.
    let r = log_in(&mut b, "alice", "000000");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("Wrong username, password or code."));
    let page = b.get("/login");
    let r = b.post(
        "/login",
        &[
            ("csrf", &csrf(&page.body)),
            ("username", "alice"),
            ("password", "not the password"),
            ("code", &totp_code(&secret, 0)),
        ],
    );
    assert_eq!(r.status, 401);
    assert!(!b.cookies.contains_key("ipgate_session"));

    // The right code logs in; the cookie is HttpOnly and SameSite=Strict.
    let code = totp_code(&secret, 0);
    let r = log_in(&mut b, "alice", &code);
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/portal"),
        "{}",
        r.body
    );
    let set = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with("ipgate_session="))
        .cloned()
        .unwrap_or_default();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "no Secure flag on a plain-HTTP portal: {set}"
    );
    let first_session = b.cookies.get("ipgate_session").cloned().unwrap_or_default();
    let page = b.get("/portal");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("IP whitelist: acme"));

    // The same code does not work twice.
    let mut other = Browser::new(&base);
    let r = log_in(&mut other, "alice", &code);
    assert_eq!(r.status, 401, "a replayed code is refused");

    // A new login renews the session id, and the old session ends.
    let r = log_in(&mut b, "alice", &totp_code(&secret, 1));
    assert_eq!(r.status, 303, "{}", r.body);
    let second_session = b.cookies.get("ipgate_session").cloned().unwrap_or_default();
    assert_ne!(first_session, second_session, "session id renewed at login");
    let mut stale = Browser::new(&base);
    stale.cookies.insert("ipgate_session".into(), first_session);
    assert_eq!(stale.get("/portal").status, 303, "the old session is gone");

    // A session id planted before login is never adopted.
    let mut planted = Browser::new(&base);
    planted
        .cookies
        .insert("ipgate_session".into(), "attacker-chosen".into());
    assert_eq!(planted.get("/portal").status, 303);

    // Log out needs the CSRF value too.
    let page = b.get("/portal");
    assert_eq!(b.post("/logout", &[("csrf", "forged")]).status, 403);
    let r = b.post("/logout", &[("csrf", &csrf(&page.body))]);
    assert_eq!((r.status, r.location.as_str()), (303, "/login"));
    assert_eq!(b.get("/portal").status, 303);

    let ev = gate.security_events("acme");
    assert!(
        ev.iter().filter(|e| *e == "login.failed").count() >= 3,
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| e == "login.succeeded"), "{ev:?}");
    assert!(ev.iter().any(|e| e == "logout"), "{ev:?}");
}

#[test]
fn the_whitelist_page_submits_and_cancels_with_csrf() {
    let (_up, gate, secret) = portal_gate();
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    assert_eq!(log_in(&mut b, "alice", &totp_code(&secret, 0)).status, 303);
    let page = b.get("/portal");
    for want in [
        "Two-factor authentication: <b>on</b>",
        "IP whitelist: <b>on (enforced)</b>",
        "id=\"your-ip\">127.0.0.1<",
        "192.0.2.0/28",
        "whitelisted IPs active now",
        "link validity",
        "24 hours",
        "Request whitelisting",
    ] {
        assert!(page.body.contains(want), "{want} missing from the page");
    }
    let token = csrf(&page.body);

    // A forged POST (no or wrong CSRF value) changes nothing.
    for form in [
        vec![("ip1", "127.0.0.81")],
        vec![("csrf", "nope"), ("ip1", "127.0.0.81")],
    ] {
        let r = b.post("/portal/requests", &form);
        assert_eq!(r.status, 403, "{}", r.body);
    }
    // A POST from a browser without the session cookie goes to the login page.
    let mut stranger = Browser::new(&b.base.clone());
    let r = stranger.post(
        "/portal/requests",
        &[("csrf", &token), ("ip1", "127.0.0.81")],
    );
    assert_eq!(r.status, 303);
    assert!(!b.get("/portal").body.contains("127.0.0.81"));

    // Each rule has its own message on the page.
    let r = b.post(
        "/portal/requests",
        &[("csrf", &token), ("ip1", "10.0.0.1/24")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("CIDR"), "{}", r.body);
    let r = b.post(
        "/portal/requests",
        &[
            ("csrf", &token),
            ("ip1", "127.0.0.81"),
            ("ip2", "127.0.0.81"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.to_lowercase().contains("twice"), "{}", r.body);

    // A good one is saved as pending and shown in the history.
    let r = b.post(
        "/portal/requests",
        &[
            ("csrf", &token),
            ("ip1", "127.0.0.81"),
            ("ip2", ""),
            ("remark", "<i>web</i>"),
        ],
    );
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/portal?done=submitted"),
        "{}",
        r.body
    );
    let page = b.get("/portal?done=submitted");
    assert!(page.body.contains("Request saved"));
    assert!(page.body.contains("&lt;i&gt;web&lt;/i&gt;") && !page.body.contains("<i>web"));
    assert!(page.body.contains("<td class=\"status\">pending</td>"));
    assert_eq!(
        gate.mail
            .wait_for(1, std::time::Duration::from_secs(20))
            .len(),
        1
    );

    // The search narrows both tables.
    let found = b.get("/portal?q=127.0.0.81");
    assert!(found.body.contains("127.0.0.81") && !found.body.contains("192.0.2.0/28"));

    // Cancel from the history (CSRF checked here too).
    let id = page
        .body
        .split("id=\"request-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        b.post(&format!("/portal/requests/{id}/cancel"), &[("csrf", "x")])
            .status,
        403
    );
    let r = b.post(
        &format!("/portal/requests/{id}/cancel"),
        &[("csrf", &token)],
    );
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/portal?done=cancelled")
    );
    assert!(b
        .get("/portal")
        .body
        .contains("<td class=\"status\">cancelled</td>"));
}

#[test]
fn who_may_not_request_is_told_why_and_logins_are_rate_limited() {
    let (_up, gate, _) = portal_gate();
    let (_, _) = user(&gate, "acme", "bob", "sub", false);
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    let r = log_in(&mut b, "bob", "");
    assert_eq!(
        r.status, 303,
        "a sub user without 2FA may log in and look: {}",
        r.body
    );
    let page = b.get("/portal");
    assert!(
        page.body
            .contains("main user can request whitelist changes"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("id=\"ip1\""),
        "no request form for a sub user"
    );
    let r = b.post(
        "/portal/requests",
        &[("csrf", &csrf(&page.body)), ("ip1", "127.0.0.91")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Once bob has 2FA, his password-only session ends: he logs in with a code.
    let (st, _) = gate.admin("POST", "/admin/v1/users/bob/totp", None);
    assert_eq!(st, 200);
    assert_eq!(b.get("/portal").status, 303);

    // Guessing: after 5 failures for one user from one address, that
    // address must wait before trying the user again, and after 10
    // attempts a minute it is refused whatever the user.
    let mut g = Browser::new(&b.base.clone());
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let page = g.get("/login");
        let r = g.post(
            "/login",
            &[
                ("csrf", &csrf(&page.body)),
                ("username", "alice"),
                ("password", "guess guess guess"),
                ("code", "123456"),
            ],
        );
        statuses.push(r.status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = log_in(&mut g, "bob", "");
    assert_eq!(r.status, 429, "the guesser's address is limited too");
    // The first refusals are recorded one by one; the rest go into one
    // summary when the minute is over (tests/security_log.rs).
    let (s, v) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    assert_eq!(s, 200);
    assert!(v.to_string().contains("wrong password"), "{v}");
}

#[test]
fn a_stranger_guessing_cannot_lock_the_user_out() {
    let (_up, gate, secret) = portal_gate();
    let base = format!("http://{}", gate.portal);
    // A stranger on another address guesses alice's password, many times.
    let mut stranger = Browser::from_address(&base, "127.0.0.2");
    let token = csrf(&stranger.get("/login").body);
    let statuses: Vec<u16> = (0..30)
        .map(|_| {
            stranger
                .post(
                    "/login",
                    &[
                        ("csrf", &token),
                        ("username", "alice"),
                        ("password", "guess guess guess"),
                        ("code", "123456"),
                    ],
                )
                .status
        })
        .collect();
    let code = totp_code(&secret, 0);
    let from_stranger = log_in(&mut stranger, "alice", &code);

    // Alice, from her own address, logs in at once.
    let mut alice = Browser::from_address(&base, "127.0.0.1");
    let r = log_in(&mut alice, "alice", &code);
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/portal"),
        "the stranger's guesses lock alice out: {}",
        r.body
    );

    // The stranger got 5 tries, then had to wait: even the right password
    // and code are not checked from there for now.
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(from_stranger.status, 429, "{}", from_stranger.body);
    let wait: u64 = from_stranger
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
}

/// A gate that believes `X-Forwarded-For` from the test (standing in for
/// a proxy), with alice (2FA) in acme and carol (password only) in globex.
fn forwarded_gate() -> (Upstream, Server) {
    let up = Upstream::start();
    let gate = Server::start(
        &up,
        ServerOpts {
            trusted_proxies: vec!["127.0.0.1/32".into()],
            ..ServerOpts::self_service("")
        },
    );
    gate.account("acme", "enforce", &[]);
    gate.account("globex", "enforce", &[]);
    user(&gate, "acme", "alice", "main", true);
    user(&gate, "globex", "carol", "main", false);
    (up, gate)
}

/// A browser whose requests come from `client` (as the proxy says).
fn browser_at(gate: &Server, client: &str) -> Browser {
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    b.set_header("X-Forwarded-For", client);
    b
}

#[test]
fn a_flood_from_one_ipv6_48_does_not_lock_others_out_of_login() {
    let (_up, gate) = forwarded_gate();
    let mut flood = browser_at(&gate, "2001:db8:1::1");
    let token = csrf(&flood.get("/login").body);
    // More /64s than the limiter keeps keys for, all in one /48.
    for n in 0..10_050u32 {
        flood.set_header("X-Forwarded-For", &format!("2001:db8:1:{n:x}::1"));
        let r = flood.post(
            "/login",
            &[
                ("csrf", &token),
                ("username", "alice"),
                ("password", "guess guess guess"),
                ("code", "123456"),
            ],
        );
        assert!(matches!(r.status, 401 | 429), "{n}: {}", r.status);
    }
    let r = log_in(&mut browser_at(&gate, "198.51.100.7"), "carol", "");
    assert_eq!(r.status, 303, "a fresh client logs in: {}", r.body);
    let r = log_in(&mut browser_at(&gate, "2001:db8:2::1"), "carol", "");
    assert_eq!(r.status, 303, "so does another /48: {}", r.body);
}

#[test]
fn no_page_redirects_off_site() {
    let (_up, gate, secret) = portal_gate();
    let base = format!("http://{}", gate.portal);
    let tricks = "?next=https://evil.test/&redirect=//evil.test&return_to=%2F%2Fevil.test&url=javascript:alert(1)";
    let mut b = Browser::new(&base);
    let mut seen = Vec::new();
    for path in ["/", "/portal", "/portal/requests", "/login", "/logout"] {
        seen.push(b.get(&format!("{path}{tricks}")));
    }
    seen.push(log_in(&mut b, "alice", &totp_code(&secret, 0)));
    for path in ["/", "/portal", "/login"] {
        seen.push(b.get(&format!("{path}{tricks}")));
    }
    let page = b.get("/portal");
    let token = csrf(&page.body);
    seen.push(b.post(
        &format!("/portal/requests{tricks}"),
        &[("csrf", &token), ("ip1", "192.0.2.99"), ("remark", "x")],
    ));
    seen.push(b.post(&format!("/logout{tricks}"), &[("csrf", &token)]));
    let redirects: Vec<&Answer> = seen
        .iter()
        .filter(|a| (300..400).contains(&a.status))
        .collect();
    assert!(redirects.len() >= 4, "the walk includes redirects");
    for a in redirects {
        assert!(
            a.location.starts_with('/')
                && !a.location.starts_with("//")
                && !a.location.contains("evil"),
            "redirect to {:?}",
            a.location
        );
    }
}
