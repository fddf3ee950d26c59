//! The customer's own security log, black-box: `GET /api/v1/security-log`
//! and the portal's Security log tab show the caller's account's records
//! and none of another account's, with the chain's head as verify reports
//! it, in pages; the CSV parses to the same records; a token needs `read`.

use crate::common::browser::{csrf, totp_code, Browser};
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long enough passphrase";
const COLUMNS: [&str; 10] = [
    "seq", "at", "event", "account", "actor", "ip", "details", "key_id", "prev", "hash",
];

/// Two accounts with a main user each (2FA): acme's alice had a request
/// approved from the emailed link, globex's gina has one pending and an
/// entry the operator added. Returns the gate, alice's token and TOTP
/// secret, and gina's token.
pub(crate) fn two_accounts() -> (Upstream, Server, String, String, String) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::self_service(""));
    gate.account("acme", "enforce", &[]);
    gate.account("globex", "enforce", &["198.51.100.99"]);
    let (alice, secret) = user(&gate, "acme", "alice", "main", true);
    let (gina, _) = user(&gate, "globex", "gina", "main", true);

    let (s, v) = submit_request(
        &gate,
        &alice,
        json!({"ips": ["127.0.0.31"], "remark": "acme prod"}),
    );
    assert_eq!(s, 202, "{v}");
    let mails = gate.mail.wait_for(1, Duration::from_secs(20));
    let link = mails
        .iter()
        .find(|m| m.to.iter().any(|t| t == "ops@acme.test"))
        .and_then(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
        .unwrap_or_else(|| panic!("no link mail for acme: {mails:?}"));
    let page = Browser::new("").get(&link);
    let r = Browser::new("").post(
        &link,
        &[
            ("csrf", &csrf(&page.body)),
            ("confirm", "yes"),
            ("decision", "approve"),
        ],
    );
    assert!(r.body.contains("Approved"), "{}", r.body);

    let (s, v) = submit_request(
        &gate,
        &gina,
        json!({"ips": ["127.0.0.41"], "remark": "globex secret"}),
    );
    assert_eq!(s, 202, "{v}");
    settle(&gate);
    (up, gate, alice, secret.unwrap_or_default(), gina)
}

/// Waits until the mail sender has written its records: the log's count
/// holds still for a second.
pub(crate) fn settle(gate: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = verify(gate)["records"].clone();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = verify(gate)["records"].clone();
        if now == last {
            return;
        }
        assert!(Instant::now() < deadline, "the log never settled");
        last = now;
    }
}

fn verify(gate: &Server) -> Value {
    let (s, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!((s, &v["ok"]), (200, &json!(true)), "{v}");
    v
}

/// A raw GET on the portal listener, with a Bearer token if given.
fn get(
    gate: &Server,
    path: &str,
    token: Option<&str>,
    accept: Option<&str>,
) -> reqwest::blocking::Response {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let mut req = client.get(format!("http://{}{path}", gate.portal));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().unwrap()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The rows of a CSV text (header first), read by the `csv` crate.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Each CSV row checked against the JSON record at its place.
fn assert_csv_is(rows: &[Vec<String>], records: &[Value]) {
    assert_eq!(
        rows.first().map(Vec::as_slice),
        Some(&COLUMNS.map(String::from)[..])
    );
    assert_eq!(rows.len(), records.len() + 1, "{rows:?}");
    for (row, rec) in rows[1..].iter().zip(records) {
        let text = |k: &str| match &rec[k] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        for (i, col) in COLUMNS.iter().enumerate() {
            if *col == "details" {
                let details: Value = serde_json::from_str(&row[i]).unwrap();
                assert_eq!(details, rec["details"], "details of {}", rec["seq"]);
            } else {
                assert_eq!(row[i], text(col), "{col} of {}", rec["seq"]);
            }
        }
    }
}

fn api_log(gate: &Server, query: &str, token: &str) -> Value {
    let (s, v) = api(
        gate,
        "GET",
        &format!("/api/v1/security-log{query}"),
        token,
        None,
    );
    assert_eq!(s, 200, "{v}");
    v
}

#[test]
fn the_api_shows_only_the_callers_records_with_the_chain_head() {
    let (_up, gate, alice, _, gina) = two_accounts();
    let v = api_log(&gate, "", &alice);
    let check = verify(&gate);
    assert_eq!(v["account"], "acme");
    assert_eq!(v["chain"]["head"], check["head"], "the head verify reports");
    assert_eq!(v["chain"]["records"], check["records"]);
    assert_eq!(v["next_before"], Value::Null, "{v}");

    let records = v["records"].as_array().unwrap().clone();
    assert!(records.iter().all(|r| r["account"] == "acme"), "{v}");
    let events: Vec<&str> = records.iter().filter_map(|r| r["event"].as_str()).collect();
    for want in [
        "account.created",
        "user.created",
        "request.submitted",
        "link.opened",
        "request.approved",
        "whitelist.added",
    ] {
        assert!(events.contains(&want), "{want} missing: {events:?}");
    }
    let text = v.to_string();
    for other in ["globex", "gina", "127.0.0.41", "198.51.100.99"] {
        assert!(!text.contains(other), "{other} leaked: {text}");
    }
    // Newest first, and exactly the operator's view of the account.
    let (_, mut admin) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    let admin = admin.as_array_mut().unwrap();
    admin.reverse();
    assert_eq!(&records, admin);

    // The other account sees its own records only.
    let g = api_log(&gate, "", &gina);
    let g_records = g["records"].as_array().unwrap();
    assert!(!g_records.is_empty());
    assert!(g_records.iter().all(|r| r["account"] == "globex"), "{g}");
    assert!(!g.to_string().contains("alice") && !g.to_string().contains("127.0.0.31"));
    assert_eq!(g["chain"], v["chain"], "one chain for all");

    // Pages: newest first, `next_before` to the older ones.
    let p1 = api_log(&gate, "?limit=2", &alice);
    assert_eq!(p1["records"].as_array().unwrap()[..], records[..2]);
    assert_eq!(p1["next_before"], records[1]["seq"]);
    let p2 = api_log(
        &gate,
        &format!("?limit=2&before={}", p1["next_before"]),
        &alice,
    );
    assert_eq!(p2["records"].as_array().unwrap()[..], records[2..4]);
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=many", "query"),
        ("?before=0", "before"),
        ("?format=xml", "query"),
        ("?account=globex", "query"),
    ] {
        let (s, e) = api(
            &gate,
            "GET",
            &format!("/api/v1/security-log{query}"),
            &alice,
            None,
        );
        assert_eq!(
            (s, e["errors"][0]["field"].as_str()),
            (400, Some(field)),
            "{query}: {e}"
        );
    }
}

#[test]
fn the_csv_has_the_same_records() {
    let (_up, gate, alice, _, _) = two_accounts();
    let json = api_log(&gate, "", &alice);
    let records = json["records"].as_array().unwrap().clone();

    for (query, accept) in [("?format=csv", None), ("", Some("text/csv"))] {
        let r = get(
            &gate,
            &format!("/api/v1/security-log{query}"),
            Some(&alice),
            accept,
        );
        assert_eq!(r.status(), 200);
        assert!(
            header(&r, "content-type").starts_with("text/csv"),
            "{query}"
        );
        assert_eq!(
            header(&r, "content-disposition"),
            "attachment; filename=\"ipgate-security-log-acme.csv\""
        );
        assert_eq!(
            header(&r, "ipgate-chain-head"),
            json["chain"]["head"].as_str().unwrap()
        );
        assert_eq!(
            header(&r, "ipgate-chain-records"),
            json["chain"]["records"].to_string()
        );
        assert_eq!(header(&r, "ipgate-next-before"), "");
        let text = r.text().unwrap();
        assert!(text.ends_with("\r\n") && !text.contains("globex"), "{text}");
        assert_csv_is(&parse_csv(&text), &records);
    }
    // `format=json` wins over the Accept header; a CSV page is bounded too.
    let r = get(
        &gate,
        "/api/v1/security-log?format=json",
        Some(&alice),
        Some("text/csv"),
    );
    assert!(header(&r, "content-type").starts_with("application/json"));
    let r = get(
        &gate,
        "/api/v1/security-log?format=csv&limit=3",
        Some(&alice),
        None,
    );
    assert_eq!(
        header(&r, "ipgate-next-before"),
        records[2]["seq"].to_string()
    );
    assert_csv_is(&parse_csv(&r.text().unwrap()), &records[..3]);
}

#[test]
fn the_security_log_needs_a_main_users_token_with_read() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &[]);
    let (_, _) = user(&gate, "acme", "alice", "main", true);
    let (bob, _) = user(&gate, "acme", "bob", "sub", true);
    let token = |scopes: Value| {
        let (s, v) = gate.admin(
            "POST",
            "/admin/v1/users/alice/tokens",
            Some(json!({ "scopes": scopes })),
        );
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    };

    let r = get(&gate, "/api/v1/security-log", None, None);
    assert_eq!(r.status(), 401);
    let e: Value = r.json().unwrap();
    assert_eq!(e["errors"][0]["field"], "authorization", "{e}");
    let r = get(
        &gate,
        "/api/v1/security-log?format=csv",
        Some("not-a-token"),
        None,
    );
    assert_eq!(r.status(), 401);

    let (s, e) = api(
        &gate,
        "GET",
        "/api/v1/security-log",
        &token(json!(["request"])),
        None,
    );
    assert_eq!(s, 403, "{e}");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`read`"),
        "{e}"
    );
    let (s, e) = api(&gate, "GET", "/api/v1/security-log", &bob, None);
    assert_eq!(s, 403, "a sub user: {e}");

    let v = api_log(&gate, "", &token(json!(["read"])));
    assert!(!v["records"].as_array().unwrap().is_empty(), "{v}");

    // The portal's tab and download need a session.
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    for path in ["/portal/security-log", "/portal/security-log.csv"] {
        let r = b.get(path);
        assert_eq!((r.status, r.location.as_str()), (303, "/login"), "{path}");
    }
}

fn log_in(b: &mut Browser, username: &str, secret: &str) {
    let page = b.get("/login");
    let r = b.post(
        "/login",
        &[
            ("csrf", &csrf(&page.body)),
            ("username", username),
            ("password", PASSWORD),
            ("code", &totp_code(secret, 0)),
        ],
    );
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/portal"),
        "{}",
        r.body
    );
}

#[test]
fn the_portal_tab_and_download_show_the_accounts_records() {
    let (_up, gate, alice, secret, _) = two_accounts();
    let mut b = Browser::new(&format!("http://{}", gate.portal));
    log_in(&mut b, "alice", &secret);
    let json = api_log(&gate, "", &alice);
    assert_eq!(json["records"][0]["event"], "login.succeeded");
    assert_eq!(json["chain"]["head"], verify(&gate)["head"]);

    let page = b.get("/portal");
    assert!(
        page.body.contains("href=\"/portal/security-log\""),
        "the tab is there"
    );
    let page = b.get("/portal/security-log");
    assert_eq!(page.status, 200, "{}", page.body);
    let head = json["chain"]["head"].as_str().unwrap();
    assert!(page
        .body
        .contains(&format!("<code id=\"chain-head\">{head}</code>")));
    for r in json["records"].as_array().unwrap() {
        assert!(
            page.body.contains(&format!("id=\"log-{}\"", r["seq"])),
            "{r}"
        );
    }
    assert!(page.body.contains("request.approved"));
    assert!(!page.body.contains("globex") && !page.body.contains("127.0.0.41"));

    let r = b.get("/portal/security-log.csv?limit=1000");
    assert_eq!(r.status, 200);
    let ct = r.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert!(ct.unwrap_or_default().starts_with("text/csv"), "{ct:?}");
    assert_csv_is(&parse_csv(&r.body), json["records"].as_array().unwrap());

    let r = b.get("/portal/security-log?limit=2");
    assert!(r.body.contains("id=\"older\""), "a link to older records");
    assert_eq!(b.get("/portal/security-log?limit=5000").status, 400);

    // A sub user of the account is not shown the log.
    let (_, bob_secret) = user(&gate, "acme", "bob", "sub", true);
    let mut sub = Browser::new(&format!("http://{}", gate.portal));
    log_in(&mut sub, "bob", &bob_secret.unwrap_or_default());
    assert_eq!(sub.get("/portal/security-log").status, 403);
    assert_eq!(sub.get("/portal/security-log.csv").status, 403);
}
