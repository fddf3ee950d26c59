//! The control plane's HTTP surface in process: the admin API, the customer
//! API, the portal forms and the emailed-link pages, with a real sled store
//! in a temp dir. Inputs pick a known route and mutate the rest of the path,
//! method, content type, credentials and body (`CSRF` in a body becomes the
//! session's real CSRF value, so form parsing is reached). Never a panic,
//! never a 500, and the security log always verifies.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use ipgate_control::app::{ControlPlane, ControlSecrets};
use ipgate_control::http::admin::AdminToken;
use ipgate_control::limits::backoff::{Backoff, Rule};
use ipgate_control::limits::login_limit::LoginLimit;
use ipgate_control::limits::ratelimit::RateLimit;
use ipgate_control::store::Store;
use ipgate_policy::table::{LiveTable, Table};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789";
const PASSWORD: &str = "a fuzzing passphrase 7Qx!";

const ROUTES: &[&str] = &[
    "/admin/v1/accounts",
    "/admin/v1/accounts/acme",
    "/admin/v1/accounts/acme/whitelist",
    "/admin/v1/accounts/acme/whitelist/1",
    "/admin/v1/accounts/acme/users",
    "/admin/v1/users/alice",
    "/admin/v1/users/bob/totp",
    "/admin/v1/users/bob/tokens",
    "/admin/v1/blocklist",
    "/admin/v1/blocklist/1",
    "/admin/v1/security-log",
    "/admin/v1/security-log/verify",
    "/api/v1/me",
    "/api/v1/whitelist",
    "/api/v1/whitelist/1",
    "/api/v1/whitelist/requests",
    "/api/v1/whitelist/requests/1",
    "/api/v1/whitelist/requests/1/cancel",
    "/",
    "/login",
    "/logout",
    "/portal",
    "/portal/requests",
    "/portal/requests/1/cancel",
    "/confirm/",
];
const METHODS: &[&str] = &["GET", "POST", "PATCH", "DELETE", "HEAD", "PUT"];
const TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "",
];

#[derive(Arbitrary, Debug)]
struct Input {
    route: u8,
    suffix: String,
    method: u8,
    content_type: u8,
    /// 0: none, 1: the right credentials, 2: garbage.
    auth: u8,
    body: Vec<u8>,
}

struct World {
    rt: tokio::runtime::Runtime,
    admin: Router,
    customer: Router,
    store: Store,
    api_token: String,
    session_cookie: String,
    csrf: String,
    _dir: tempfile::TempDir,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Vec<String>, String) {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40000))));
    let resp = match app.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    let cookies = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_string())
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    (status, cookies, body)
}

fn must(cond: bool, what: &str) {
    if !cond {
        panic!("fuzz setup failed: {what}");
    }
}

fn json_req(method: &str, path: &str, body: serde_json::Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn hidden_csrf(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string()
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log_key = ipgate_control::seclog::LogKey::new(b"fuzz-log-key-0123456789abcdef-0123")
            .unwrap_or_else(|e| panic!("{e}"));
        let store =
            Store::open(&dir.path().join("store"), log_key).unwrap_or_else(|e| panic!("{e}"));
        let table = Arc::new(LiveTable::new(Table::empty()));
        let config = ipgate_config::Config::parse("", Vec::<(String, String)>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut control = rt.block_on(ControlPlane::build(
            &config,
            store.clone(),
            table,
            &prometheus::Registry::new(),
            ControlSecrets {
                admin_token: AdminToken::new(ADMIN_TOKEN).unwrap_or_else(|| panic!("token")),
                smtp_password: None,
                sync_token: None,
            },
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        // Limits high enough that inputs reach the handlers.
        control.portal.link_limit = Arc::new(RateLimit::new(u32::MAX, Duration::from_secs(60)));
        control.portal.login_limit = Arc::new(LoginLimit::new(
            RateLimit::new(u32::MAX, Duration::from_secs(60)),
            Backoff::new(
                Rule {
                    free: u32::MAX,
                    first: Duration::ZERO,
                    cap: Duration::ZERO,
                    forget: Duration::ZERO,
                },
                16,
            ),
        ));
        let admin = control.admin_router();
        let customer = control.portal_router();
        let (api_token, session_cookie, csrf) = rt.block_on(async {
            let (s, _, b) = call(
                &admin,
                json_req(
                    "POST",
                    "/admin/v1/accounts",
                    serde_json::json!({"id":"acme","name":"Acme","emails":["ops@acme.test"],"whitelist":"enforce"}),
                ),
            )
            .await;
            must(s == StatusCode::CREATED, &b);
            for user in ["alice", "bob"] {
                let (s, _, b) = call(
                    &admin,
                    json_req(
                        "POST",
                        "/admin/v1/accounts/acme/users",
                        serde_json::json!({"username":user,"password":PASSWORD,"role":"main"}),
                    ),
                )
                .await;
                must(s == StatusCode::CREATED, &b);
            }
            let (_, _, b) = call(
                &admin,
                json_req("POST", "/admin/v1/users/alice/totp", serde_json::json!({})),
            )
            .await;
            let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
            let secret = totp_rs::Secret::Encoded(v["secret"].as_str().unwrap_or("").to_string())
                .to_bytes()
                .unwrap_or_else(|e| panic!("{e:?}"));
            let (_, _, b) = call(
                &admin,
                json_req("POST", "/admin/v1/users/alice/tokens", serde_json::json!({})),
            )
            .await;
            let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
            let api_token = v["token"].as_str().unwrap_or("").to_string();
            must(!api_token.is_empty(), "api token");

            let get = Request::builder().uri("/login").body(Body::empty());
            let (_, cookies, page) = call(&customer, get.unwrap_or_else(|e| panic!("{e}"))).await;
            let pre = cookies.join("; ");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let code = ipgate_control::domain::users::totp_now(&secret, now);
            let form = format!(
                "csrf={}&username=alice&password={}&code={code}",
                hidden_csrf(&page),
                PASSWORD.replace(' ', "+").replace('!', "%21")
            );
            let post = Request::builder()
                .method("POST")
                .uri("/login")
                .header(header::COOKIE, pre)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form));
            let (s, cookies, b) = call(&customer, post.unwrap_or_else(|e| panic!("{e}"))).await;
            let session = cookies
                .into_iter()
                .find(|c| c.starts_with("ipgate_session="))
                .unwrap_or_else(|| panic!("no session after login ({s}): {b}"));
            let get = Request::builder()
                .uri("/portal")
                .header(header::COOKIE, &session)
                .body(Body::empty());
            let (_, _, page) = call(&customer, get.unwrap_or_else(|e| panic!("{e}"))).await;
            let csrf = hidden_csrf(&page);
            must(!csrf.is_empty(), "portal csrf");
            (api_token, session, csrf)
        });
        World {
            rt,
            admin,
            customer,
            store,
            api_token,
            session_cookie,
            csrf,
            _dir: dir,
        }
    })
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let w = world();
    let base = ROUTES[input.route as usize % ROUTES.len()];
    let path = format!("{base}{}", input.suffix);
    let Ok(uri) = path.parse::<http::Uri>() else {
        return;
    };
    let method = METHODS[input.method as usize % METHODS.len()];
    let admin = base.starts_with("/admin/");
    let mut req = Request::builder().method(method).uri(uri);
    let ct = TYPES[input.content_type as usize % TYPES.len()];
    if !ct.is_empty() {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    match (input.auth % 3, admin) {
        (1, true) => req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}")),
        (1, false) => {
            req = req
                .header(header::AUTHORIZATION, format!("Bearer {}", w.api_token))
                .header(header::COOKIE, &w.session_cookie)
        }
        (2, _) => {
            req = req
                .header(header::AUTHORIZATION, "Bearer x")
                .header(header::COOKIE, "ipgate_session=AAAA")
        }
        _ => {}
    }
    let body = replace_all(&input.body, b"CSRF", w.csrf.as_bytes());
    let Ok(req) = req.body(Body::from(body)) else {
        return;
    };
    let app = if admin { &w.admin } else { &w.customer };
    let (status, _, text) = w.rt.block_on(call(app, req));
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "500 for {method} {path}: {text}"
    );
    if RUNS.fetch_add(1, Ordering::Relaxed) % 500 == 0 {
        match w.rt.block_on(w.store.verify_security_log()) {
            Ok(v) => assert!(v.broken_at.is_none(), "security log broken: {:?}", v.reason),
            Err(e) => panic!("verify failed: {e}"),
        }
    }
});
