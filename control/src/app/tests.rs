//! The control plane's routers in-process (`tower::ServiceExt::oneshot`):
//! a real sled store in a temporary directory, the live table the proxy
//! would judge with, no listener and no process.

use super::*;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use ipgate_policy::account::Caller;
use ipgate_policy::decision::{decide, Decision};
use ipgate_policy::Policy;
use serde_json::{json, Value};
use std::net::IpAddr;
use tower::ServiceExt;

pub(crate) const ADMIN: &str = "in-process-admin-token-0123456789";

pub(crate) struct Plane {
    pub control: ControlPlane,
    pub table: Arc<LiveTable>,
    pub dir: tempfile::TempDir,
}

async fn plane() -> Plane {
    plane_in(tempfile::tempdir().unwrap(), "", None).await
}

/// A control plane on a store in `dir`, with config `toml` and the sync
/// feed on when `sync_token` is given; the table is loaded from the store
/// as at a real start.
pub(crate) async fn plane_in(
    dir: tempfile::TempDir,
    toml: &str,
    sync_token: Option<&str>,
) -> Plane {
    let config = Config::parse(toml, Vec::<(String, String)>::new()).unwrap();
    let key = crate::seclog::LogKey::new(b"in-process-log-key-0123456789abcdef").unwrap();
    let store = Store::open(dir.path(), key).unwrap();
    let table = Arc::new(LiveTable::new(
        crate::service::publish::load_table(&store).await.unwrap(),
    ));
    let control = ControlPlane::build(
        &config,
        store,
        table.clone(),
        &Registry::new(),
        ControlSecrets {
            admin_token: AdminToken::new(ADMIN).unwrap(),
            smtp_password: None,
            sync_token: sync_token.map(str::to_owned),
        },
    )
    .await
    .unwrap();
    Plane {
        control,
        table,
        dir,
    }
}

pub(crate) struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub(crate) async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(from_client(req)).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The request as it arrives from a client at 198.51.100.20 (the
/// listener adds the peer address).
pub(crate) fn from_client(mut req: Request<Body>) -> Request<Body> {
    let peer: std::net::SocketAddr = "198.51.100.20:40000".parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    req
}

/// What the proxy would decide for a call from `ip` judged as `account`.
fn verdict(table: &LiveTable, account: &str, ip: &str) -> Decision {
    let t = table.load();
    let ip: IpAddr = ip.parse().unwrap();
    let caller = match t.account(account) {
        Some(a) => Caller::Account(a),
        None => Caller::Unknown,
    };
    let policy = Policy {
        unknown_account: ipgate_config::UnknownAccount::Deny,
        deny_unidentified: true,
    };
    decide(&t, policy, ip, true, caller)
}

pub(crate) async fn create_acme(p: &Plane) {
    let a = call(
        &p.control.admin_router(),
        Method::POST,
        "/admin/v1/accounts",
        Some(ADMIN),
        Some(json!({"id": "acme", "name": "Acme", "emails": ["ops@acme.test", "cto@acme.test"], "whitelist": "enforce"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

#[tokio::test]
async fn the_admin_api_refuses_a_missing_or_wrong_token_and_changes_nothing() {
    let p = plane().await;
    let admin = p.control.admin_router();
    let body =
        json!({"id": "acme", "name": "Acme", "emails": ["ops@acme.test"], "whitelist": "enforce"});
    for token in [None, Some("wrong-token-0123456789abcdef")] {
        let a = call(
            &admin,
            Method::POST,
            "/admin/v1/accounts",
            token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    }
    let list = call(&admin, Method::GET, "/admin/v1/accounts", Some(ADMIN), None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json(), json!([]));
    assert!(p.table.load().account("acme").is_none());
}

#[tokio::test]
async fn an_entry_added_by_the_admin_api_is_live_when_the_call_is_answered() {
    let p = plane().await;
    create_acme(&p).await;
    assert!(matches!(
        verdict(&p.table, "acme", "203.0.113.7"),
        Decision::Deny(_)
    ));
    let a = call(
        &p.control.admin_router(),
        Method::POST,
        "/admin/v1/accounts/acme/whitelist",
        Some(ADMIN),
        Some(json!({"cidr": "203.0.113.7", "remark": "prod"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.json()["cidr"], "203.0.113.7/32");
    assert!(matches!(
        verdict(&p.table, "acme", "203.0.113.7"),
        Decision::Allow(_)
    ));
    assert!(matches!(
        verdict(&p.table, "acme", "203.0.113.8"),
        Decision::Deny(_)
    ));
}

#[tokio::test]
async fn bad_admin_input_is_400_per_field_and_changes_nothing() {
    let p = plane().await;
    create_acme(&p).await;
    let admin = p.control.admin_router();
    let a = call(
        &admin,
        Method::POST,
        "/admin/v1/accounts/acme/whitelist",
        Some(ADMIN),
        Some(json!({"cidr": "203.0.113.300"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json()["errors"][0]["field"], "cidr");
    let list = call(
        &admin,
        Method::GET,
        "/admin/v1/accounts/acme/whitelist",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(list.json(), json!([]));
}

#[tokio::test]
async fn the_customer_api_refuses_a_call_without_a_token() {
    let p = plane().await;
    let a = call(
        &p.control.portal_router(),
        Method::GET,
        "/api/v1/me",
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(
        a.content_type.starts_with("application/json"),
        "{}",
        a.content_type
    );
    let a = call(
        &p.control.portal_router(),
        Method::GET,
        "/api/v1/nothing-here",
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
}

#[tokio::test]
async fn a_request_queues_one_mail_per_account_email_and_puts_nothing_live() {
    let p = plane().await;
    create_acme(&p).await;
    let admin = p.control.admin_router();
    let user = json!({"username": "alice", "password": "a long passphrase here", "role": "main"});
    let a = call(
        &admin,
        Method::POST,
        "/admin/v1/accounts/acme/users",
        Some(ADMIN),
        Some(user),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = call(
        &admin,
        Method::POST,
        "/admin/v1/users/alice/totp",
        Some(ADMIN),
        None,
    )
    .await;
    assert!(a.status.is_success(), "{}", a.body);
    let a = call(
        &admin,
        Method::POST,
        "/admin/v1/users/alice/tokens",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let token = a.json()["token"].as_str().unwrap().to_owned();

    let portal = p.control.portal_router();
    let a = call(
        &portal,
        Method::POST,
        "/api/v1/whitelist/requests",
        Some(&token),
        Some(json!({"ips": ["203.0.113.10"], "remark": "prod"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.json()["status"], "pending");
    let due = p.control.publisher.store.due_mail().await.unwrap();
    assert_eq!(due.len(), 2, "one link per account email");
    assert!(matches!(
        verdict(&p.table, "acme", "203.0.113.10"),
        Decision::Deny(_)
    ));

    // A second one while the first is pending: 409, nothing queued.
    let a = call(
        &portal,
        Method::POST,
        "/api/v1/whitelist/requests",
        Some(&token),
        Some(json!({"ips": ["203.0.113.11"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(p.control.publisher.store.due_mail().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_login_without_its_csrf_value_is_refused() {
    let p = plane().await;
    let portal = p.control.portal_router();
    let page = call(&portal, Method::GET, "/login", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.body.contains("name=\"csrf\""), "{}", page.body);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "username=alice&password=x&code=123456&csrf=forged",
        ))
        .unwrap();
    let resp = portal.clone().oneshot(from_client(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_mangled_link_changes_nothing() {
    let p = plane().await;
    let portal = p.control.portal_router();
    for method in [Method::GET, Method::POST] {
        let a = call(&portal, method, "/confirm/not-a-real-token", None, None).await;
        assert!(a.status.is_client_error(), "{} {}", a.status, a.body);
    }
    assert_eq!(p.control.publisher.store.due_mail().await.unwrap().len(), 0);
}
