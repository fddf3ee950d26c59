//! The customer API (docs/admin-api.md) on the control listener: Bearer token
//! of a main user, JSON, errors as `{"errors":[{"field","message"}]}`. It
//! creates, lists and cancels requests; only an emailed link approves. A
//! token must be live (not expired or revoked) and carry the scope the
//! call's method needs: `read` for GET, `request` for POST.

use crate::admin::error::{ApiError, ApiJson};
use crate::flow::{self, AccountState, Limits, Status};
use crate::login_limit::LoginLimit;
use crate::metrics::FlowMetrics;
use crate::model::{unix_now, Account};
use crate::publish::{Publisher, Touched};
use crate::ratelimit::RateLimit;
use crate::refusals::Refusals;
use crate::seclog::Actor;
use crate::store::{IpRequest, NewRequest};
use crate::tokens::{ApiToken, Scope};
use crate::users::{self, Role, User};
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ipgate_config::net::parse_cidr;
use ipgate_policy::client_ip::TrustedProxies;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Everything the portal listener's handlers share (customer API, link
/// pages, portal pages).
#[derive(Clone)]
pub struct CustomerState {
    pub publisher: Arc<Publisher>,
    pub limits: Limits,
    pub link_ttl: Duration,
    pub trusted: TrustedProxies,
    pub metrics: FlowMetrics,
    /// Wakes the mail sender after a change queued mail.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// Key of the CSRF values on link pages and portal forms.
    pub csrf_key: Arc<[u8; 32]>,
    /// Visits to emailed links, per client IP.
    pub link_limit: Arc<RateLimit>,
    /// Login attempts, per client, and per username from one client.
    pub login_limit: Arc<LoginLimit>,
    /// Which refused logins are recorded one by one, and their summaries.
    pub login_refusals: Arc<Refusals>,
    /// Cookies get `Secure` (public_url is https).
    pub secure_cookies: bool,
}

type ApiResult<T> = Result<T, ApiError>;

/// The caller's address: the peer, or the forwarded client when the peer
/// is a trusted proxy (the same rule as the proxy's).
pub fn caller_ip(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    let xff = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes());
    Some(trusted.client_ip(peer, xff))
}

/// Who is calling: address (trusted-proxy rule) and browser.
pub struct Visitor {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl FromRequestParts<CustomerState> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CustomerState,
    ) -> Result<Visitor, ApiError> {
        let ip = caller_ip(parts, &state.trusted).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "client",
                "the caller's address is unknown",
            )
        })?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        Ok(Visitor { ip, user_agent })
    }
}

/// An authenticated main user of an account.
pub struct Caller {
    pub user: User,
    pub account: Account,
    pub ip: IpAddr,
    pub user_agent: String,
    /// The API token the call came with (none for a portal session, which
    /// may do everything its user may).
    pub token: Option<ApiToken>,
}

/// Why a token may not make this call: the scope its method needs
/// ([`Scope::for_method`]) is not among the token's.
fn missing_scope(token: &ApiToken, method: &axum::http::Method) -> Option<ApiError> {
    let needed = Scope::for_method(method);
    if token.allows(needed) {
        return None;
    }
    let message = match needed {
        Scope::Request => "This API token is read-only: it cannot submit or cancel requests. Ask us for a token with the `request` scope.",
        Scope::Read => "This API token cannot read: it has only the `request` scope. Ask us for a token with the `read` scope.",
    };
    Some(ApiError::new(
        StatusCode::FORBIDDEN,
        "authorization",
        message,
    ))
}

impl FromRequestParts<CustomerState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CustomerState,
    ) -> Result<Caller, ApiError> {
        let unauthorized = |m: String| ApiError::new(StatusCode::UNAUTHORIZED, "authorization", m);
        let token = crate::admin::bearer(&parts.headers).ok_or_else(|| {
            unauthorized("send your API token as `Authorization: Bearer TOKEN`".into())
        })?;
        let store = &state.publisher.store;
        let record = store
            .token(&users::token_hash(token))?
            .ok_or_else(|| unauthorized("this API token is not valid".into()))?;
        if record.expired(unix_now()) {
            return Err(unauthorized(format!(
                "this API token expired at {}: ask us for a new one",
                record.expires_at().unwrap_or_default()
            )));
        }
        let user = store
            .user(&record.username)?
            .ok_or_else(|| unauthorized("this token's user no longer exists".into()))?;
        if user.role != Role::Main {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "authorization",
                "Only your account's main user can manage the IP whitelist; ask them, or contact us.",
            ));
        }
        if let Some(refusal) = missing_scope(&record, &parts.method) {
            return Err(refusal);
        }
        let account = store
            .account(&user.account)?
            .ok_or_else(|| unauthorized("this token's account no longer exists".into()))?;
        let Visitor { ip, user_agent } = Visitor::from_request_parts(parts, state).await?;
        Ok(Caller {
            user,
            account,
            ip,
            user_agent,
            token: Some(record),
        })
    }
}

/// Why this user may not submit a request, if so.
pub fn why_cannot_request(user: &User, account: &Account) -> Option<&'static str> {
    if user.role != Role::Main {
        return Some(
            "Only your account's main user can request whitelist changes: ask them, or contact us.",
        );
    }
    if user.totp_secret.is_none() {
        return Some("Two-factor authentication is off for your account: contact us to enrol your authenticator app, then try again.");
    }
    if account.whitelist == crate::model::WhitelistMode::Off {
        return Some("The IP whitelist feature is off for your account: contact us to turn it on.");
    }
    None
}

/// A request as the API shows it (without the internal expiry seconds).
pub fn view(r: &IpRequest) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("expires_unix");
    }
    v
}

pub fn router(state: CustomerState) -> Router {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/whitelist", get(list_whitelist))
        .route(
            "/api/v1/whitelist/requests",
            post(submit).get(list_requests),
        )
        .route("/api/v1/whitelist/requests/{id}", get(get_request))
        .route("/api/v1/whitelist/requests/{id}/cancel", post(cancel))
        .route("/api/v1/whitelist/{id}", get(get_entry))
        .merge(crate::confirm::routes())
        .merge(crate::portal::routes())
        .fallback(|| async { ApiError::not_found("path", "no such API route") })
        .with_state(state)
}

async fn me(c: Caller) -> Json<Value> {
    let why_not = why_cannot_request(&c.user, &c.account).or_else(|| {
        c.token
            .as_ref()
            .filter(|t| !t.allows(Scope::Request))
            .map(|_| "This API token is read-only: ask us for a token with the `request` scope.")
    });
    let token = c.token.as_ref().map(|t| {
        json!({"id": t.id, "scopes": t.scopes, "expires_at": t.expires_at(), "fingerprint": t.fingerprint})
    });
    Json(json!({
        "account": {"id": c.account.id, "name": c.account.name, "whitelist": c.account.whitelist},
        "user": {"username": c.user.username, "role": c.user.role},
        "two_factor": c.user.totp_secret.is_some(),
        "can_request": why_not.is_none(),
        "why_not": why_not,
        "your_ip": c.ip.to_string(),
        "token": token,
    }))
}

fn entry_view(e: &crate::model::WhitelistEntry) -> Value {
    json!({"id": e.id, "cidr": e.cidr, "remark": e.remark, "source": e.source, "status": "active", "created_at": e.created_at})
}

async fn list_whitelist(State(s): State<CustomerState>, c: Caller) -> ApiResult<Json<Value>> {
    let entries = s.publisher.store.entries(&c.account.id)?;
    Ok(Json(Value::Array(entries.iter().map(entry_view).collect())))
}

async fn get_entry(
    State(s): State<CustomerState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let entries = s.publisher.store.entries(&c.account.id)?;
    entries
        .iter()
        .find(|e| e.id == id)
        .map(|e| Json(entry_view(e)))
        .ok_or_else(|| ApiError::not_found("id", format!("whitelist entry `{id}` does not exist")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    ips: Vec<String>,
    #[serde(default)]
    remark: String,
}

fn refusals(status: StatusCode, r: Vec<flow::Refusal>) -> ApiError {
    ApiError {
        status,
        errors: r
            .into_iter()
            .map(|r| crate::admin::error::FieldError {
                field: r.field,
                message: r.message,
            })
            .collect(),
    }
}

async fn submit(
    State(s): State<CustomerState>,
    c: Caller,
    ApiJson(body): ApiJson<Submission>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = submit_request(&s, &c, &body.ips, &body.remark).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&req))))
}

/// Checks a submission (each rule its own message) and
/// saves it as pending with one link mail queued per account email. The
/// customer API and the portal form both come here.
pub async fn submit_request(
    s: &CustomerState,
    c: &Caller,
    ips: &[String],
    remark: &str,
) -> ApiResult<IpRequest> {
    if let Some(why) = why_cannot_request(&c.user, &c.account) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "account", why));
    }
    let ips = flow::check_submission(ips, remark, &s.limits)
        .map_err(|r| refusals(StatusCode::BAD_REQUEST, r))?;
    let store = &s.publisher.store;
    let entries = store.entries(&c.account.id)?;
    let nets: Vec<ipnet::IpNet> = entries
        .iter()
        .filter_map(|e| parse_cidr(&e.cidr).ok())
        .collect();
    let pending = store
        .requests(&c.account.id)?
        .iter()
        .any(|r| r.status == Status::Pending);
    let state = AccountState {
        whitelisted: &nets,
        entries: entries.len(),
        pending,
    };
    flow::check_against(&ips, &state, &s.limits).map_err(|r| {
        let status = if pending {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        refusals(status, r)
    })?;
    if c.account.emails.is_empty() {
        return Err(ApiError::bad(
            "account",
            "Your account has no email address to confirm the request: contact us.",
        ));
    }
    let new = NewRequest {
        account: c.account.id.clone(),
        ips: ips.iter().map(|ip| ip.to_string()).collect(),
        remark: remark.trim().to_string(),
        requested_by: c.user.username.clone(),
        requested_from: c.ip.to_string(),
        user_agent: c.user_agent.clone(),
        ttl_secs: s.link_ttl.as_secs(),
        emails: c.account.emails.clone(),
    };
    let actor = Actor {
        who: c.user.username.clone(),
        ip: Some(c.ip),
    };
    let req = s
        .publisher
        .change(Touched::Nothing, |st| async move {
            st.create_request(new, &actor).await
        })
        .await?;
    s.metrics.count(Status::Pending, 1);
    s.mail_wake.notify_one();
    tracing::info!(account = %req.account, request = %req.id, ips = ?req.ips, "request submitted");
    Ok(req)
}

async fn list_requests(State(s): State<CustomerState>, c: Caller) -> ApiResult<Json<Value>> {
    let reqs = s.publisher.store.requests(&c.account.id)?;
    Ok(Json(Value::Array(reqs.iter().map(view).collect())))
}

async fn get_request(
    State(s): State<CustomerState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&s.publisher.store.request(&c.account.id, &id)?)))
}

async fn cancel(
    State(s): State<CustomerState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&cancel_request(&s, &c, id).await?)))
}

/// The requester's side of cancelling a pending request (API and portal).
pub async fn cancel_request(s: &CustomerState, c: &Caller, id: String) -> ApiResult<IpRequest> {
    let actor = Actor {
        who: c.user.username.clone(),
        ip: Some(c.ip),
    };
    let account = c.account.id.clone();
    let req = s
        .publisher
        .change(Touched::Nothing, |st| async move {
            st.cancel_request(&account, &id, &actor).await
        })
        .await?;
    s.metrics.count(Status::Cancelled, 1);
    tracing::info!(account = %req.account, request = %req.id, "request cancelled");
    Ok(req)
}
