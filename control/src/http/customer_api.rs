//! The customer API (docs/admin-api.md) on the control listener: Bearer token
//! of a main user, JSON, errors as `{"errors":[{"field","message"}]}`. It
//! creates, lists and cancels requests; only an emailed link approves. A
//! token must be live (not expired or revoked) and carry the scope the
//! call's method needs: `read` for GET, `request` for POST.

use crate::admin::error::{ApiError, ApiJson};
use crate::http::extract::Caller;
use crate::http::state::CustomerState;
use crate::service::requests::why_cannot_request;
use crate::store::IpRequest;
use crate::tokens::Scope;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult<T> = Result<T, ApiError>;

/// A request as the API shows it (without the internal expiry seconds).
pub fn view(r: &IpRequest) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("expires_unix");
    }
    v
}

/// The customer API's routes (merged with the others in `http::router`).
pub fn routes() -> Router<CustomerState> {
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

async fn submit(
    State(s): State<CustomerState>,
    c: Caller,
    ApiJson(body): ApiJson<Submission>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = s
        .requests()
        .submit(&c.requester(), &body.ips, &body.remark)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view(&req))))
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
    Ok(Json(view(&s.requests().cancel(&c.requester(), id).await?)))
}
