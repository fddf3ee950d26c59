//! The customer API (docs/api.md) on the control listener: Bearer token
//! of a main user, JSON, errors as `{"errors":[{"field","message"}]}`. It
//! creates, lists and cancels requests; only an emailed link approves. It
//! shows the account's own security log (`customer_log`). A
//! token must be live (not expired or revoked) and carry the scope the
//! call's method needs: `read` for GET, `request` for POST.

use crate::api_error::{ApiError, ApiJson, ErrorBody};
use crate::domain::flow::Status;
use crate::domain::model::{Source, WhitelistEntry, WhitelistMode};
use crate::domain::tokens::Scope;
use crate::domain::users::Role;
use crate::domain::{AccountId, Cidr, Timestamp};
use crate::http::blocked_calls as blocked;
use crate::http::customer_log::api as log;
use crate::http::extract::Caller;
use crate::http::openapi::ApiRouter;
use crate::http::state::CustomerState;
use crate::service::requests::{self, why_cannot_request};
use crate::store::IpRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

// The answers' fields are in alphabetical order: that is the JSON these
// routes gave when their answers were built as `serde_json::Value`s (whose
// keys are sorted), and a test keeps it so.

/// A request as the API shows it (without the internal expiry seconds).
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestView {
    #[schema(value_type = String)]
    pub account: AccountId,
    /// The approvals counted so far, when more than one is needed.
    pub approvals: Vec<ApprovalView>,
    /// How many different account emails must approve it.
    pub approvals_required: u8,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, required = true)]
    pub decided_at: Option<Timestamp>,
    /// The address whose emailed link approved or rejected it.
    #[schema(required = true)]
    pub decided_by: Option<String>,
    #[schema(required = true)]
    pub decided_from: Option<String>,
    /// When a pending request expires unless decided.
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
    pub id: String,
    pub ips: Vec<String>,
    /// The caller's own id for the request, as submitted; null: none.
    #[schema(required = true)]
    pub reference: Option<String>,
    pub remark: String,
    pub requested_by: String,
    pub requested_from: String,
    pub status: Status,
    pub user_agent: String,
    /// How long the IPs stay whitelisted once approved, in seconds; null:
    /// until removed.
    #[schema(required = true)]
    pub valid_for_secs: Option<u64>,
}

/// One approval of a request that needs several.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    #[schema(value_type = String)]
    pub at: Timestamp,
    pub email: String,
    pub from: String,
}

/// A request as the API shows it.
pub fn view(r: &IpRequest) -> RequestView {
    RequestView {
        account: r.account.clone(),
        approvals: r
            .approvals
            .iter()
            .map(|a| ApprovalView {
                at: a.at,
                email: a.email.clone(),
                from: a.from.clone(),
            })
            .collect(),
        approvals_required: r.approvals_required,
        created_at: r.created_at,
        decided_at: r.decided_at,
        decided_by: r.decided_by.clone(),
        decided_from: r.decided_from.clone(),
        expires_at: r.expires_at,
        id: r.id.clone(),
        ips: r.ips.clone(),
        reference: r.reference.clone(),
        remark: r.remark.clone(),
        requested_by: r.requested_by.clone(),
        requested_from: r.requested_from.clone(),
        status: r.status,
        user_agent: r.user_agent.clone(),
        valid_for_secs: r.valid_for_secs,
    }
}

/// The customer API's operations, each routed at the method and path of
/// its `#[utoipa::path]` (docs/openapi.json); operations on one path in
/// the order of a 405's `Allow` header.
pub fn operations() -> ApiRouter<CustomerState> {
    ApiRouter::new()
        .operation(__path_me, me)
        .operation(__path_list_whitelist, list_whitelist)
        .operation(__path_submit, submit)
        .operation(__path_list_requests, list_requests)
        .operation(__path_get_request, get_request)
        .operation(__path_cancel, cancel)
        .operation(__path_get_entry, get_entry)
        .operation(log::__path_account_security_log, log::account_security_log)
        .operation(blocked::__path_blocked_calls, blocked::blocked_calls)
}

/// The customer API's routes (merged with the others in `http::router`).
pub fn routes() -> Router<CustomerState> {
    operations().into_router()
}

/// Who the caller is and whether they may request IPs now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub account: MeAccount,
    pub can_request: bool,
    /// The token the call came with.
    #[schema(required = true)]
    pub token: Option<MeToken>,
    /// Two-factor authentication is enrolled.
    pub two_factor: bool,
    pub user: MeUser,
    /// Why `can_request` is false, and what to do.
    #[schema(required = true)]
    pub why_not: Option<&'static str>,
    /// The caller's address as ipgate sees it.
    pub your_ip: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeAccount {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub name: String,
    pub whitelist: WhitelistMode,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub role: Role,
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeToken {
    /// None for a token that never expires.
    #[schema(value_type = Option<String>, required = true)]
    pub expires_at: Option<Timestamp>,
    pub fingerprint: String,
    pub id: String,
    pub scopes: Vec<Scope>,
}

/// Who am I
///
/// The account, the user, the token, and whether they may request IPs now.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "customer",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
async fn me(c: Caller) -> Json<Me> {
    let why_not = why_cannot_request(&c.user, &c.account).or_else(|| {
        c.token
            .as_ref()
            .filter(|t| !t.allows(Scope::Request))
            .map(|_| "This API token is read-only: ask us for a token with the `request` scope.")
    });
    let token = c.token.as_ref().map(|t| MeToken {
        expires_at: t.expires_at,
        fingerprint: t.fingerprint.clone(),
        id: t.id.clone(),
        scopes: t.scopes.clone(),
    });
    Json(Me {
        account: MeAccount {
            id: c.account.id.clone(),
            name: c.account.name.clone(),
            whitelist: c.account.whitelist,
        },
        can_request: why_not.is_none(),
        token,
        two_factor: c.user.totp_secret.is_some(),
        user: MeUser {
            role: c.user.role,
            username: c.user.username.clone(),
        },
        why_not,
        your_ip: c.ip.to_string(),
    })
}

/// A whitelist entry as the customer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerEntry {
    #[schema(value_type = String)]
    pub cidr: Cidr,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// When the entry leaves the whitelist by itself; null: it stays
    /// until the operator removes it.
    #[schema(value_type = Option<String>, required = true)]
    pub expires_at: Option<Timestamp>,
    pub id: String,
    pub remark: String,
    pub source: Source,
    pub status: EntryStatus,
}

/// An entry's status: listed entries are always `active` (an ended one
/// is no longer listed).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    Active,
}

fn entry_view(e: &WhitelistEntry) -> CustomerEntry {
    CustomerEntry {
        cidr: e.cidr,
        created_at: e.created_at,
        expires_at: e.expires_at,
        id: e.id.clone(),
        remark: e.remark.clone(),
        source: e.source,
        status: EntryStatus::Active,
    }
}

/// The account's whitelist entries
#[utoipa::path(
    get,
    path = "/api/v1/whitelist",
    tag = "customer",
    responses(
        (status = 200, description = "The account's whitelist entries", body = [CustomerEntry]),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
async fn list_whitelist(
    State(s): State<CustomerState>,
    c: Caller,
) -> ApiResult<Json<Vec<CustomerEntry>>> {
    let entries = s.publisher.store.entries(c.account.id.as_str()).await?;
    let now = Timestamp::now();
    Ok(Json(
        entries
            .iter()
            .filter(|e| !e.ended(now))
            .map(entry_view)
            .collect(),
    ))
}

/// One whitelist entry
#[utoipa::path(
    get,
    path = "/api/v1/whitelist/{id}",
    tag = "customer",
    params(("id" = String, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The entry", body = CustomerEntry),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 404, description = "The account has no such entry", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
async fn get_entry(
    State(s): State<CustomerState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerEntry>> {
    let entries = s.publisher.store.entries(c.account.id.as_str()).await?;
    let now = Timestamp::now();
    entries
        .iter()
        .find(|e| e.id == id && !e.ended(now))
        .map(|e| Json(entry_view(e)))
        .ok_or_else(|| ApiError::not_found("id", format!("whitelist entry `{id}` does not exist")))
}

/// IPs to whitelist, confirmed through a link mailed to the account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Submission {
    /// IPv4 addresses, each once, not already whitelisted, not in a
    /// special-purpose range (unless the operator allows private IPs).
    ips: Vec<String>,
    /// At most 100 characters on one line.
    #[serde(default)]
    remark: String,
    /// How long the IPs stay whitelisted once approved, as a duration
    /// (`"7d"`, `"12h"`; 1s to 366d); absent or null: until removed.
    #[serde(default)]
    valid_for: Option<String>,
    /// Your own id for the request (1 to 64 characters on one line),
    /// shown with it wherever it is shown; absent or null: none.
    #[serde(default)]
    reference: Option<String>,
}

/// Request IPs for the whitelist
///
/// Pending until a link mailed to the account approves or rejects it.
/// With an `Idempotency-Key`, sending the same submission again within
/// 24 hours answers with the request first created and creates nothing.
#[utoipa::path(
    post,
    path = "/api/v1/whitelist/requests",
    tag = "customer",
    request_body = Submission,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Your key for this submission, 1 to 255 printable ASCII characters, per account: within 24 hours of the request it created, the same key with the same body answers 202 with that request as first created and creates nothing; with another body it is refused (422). A refused submission does not keep its key."),
    ),
    responses(
        (status = 202, description = "Pending: a link is mailed to each account email (or, for a repeated `Idempotency-Key`, the request it first created, as then)", body = RequestView),
        (status = 400, description = "Per field: an IP that cannot be requested (`ips[0]`), none or too many (`ips`), a bad remark, a bad `valid_for` or `reference`, a bad `Idempotency-Key` header, an account without email, or a body that is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `request` scope; or the user is not the main user, has no two-factor authentication, or the account's whitelist feature is off", body = ErrorBody),
        (status = 409, description = "The account already has a pending request", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used in the last 24 hours with a different body", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["request"])),
)]
async fn submit(
    State(s): State<CustomerState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Submission>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let submission = requests::Submission {
        ips: &body.ips,
        remark: &body.remark,
        valid_for: body.valid_for.as_deref(),
        reference: body.reference.as_deref(),
    };
    let header = crate::store::idempotency::HEADER;
    if headers.get_all(header).iter().count() > 1 {
        return Err(ApiError::bad(
            header,
            "Send one Idempotency-Key header, not several.",
        ));
    }
    let key = headers.get(header).map(|v| v.as_bytes());
    let req = s
        .requests()
        .submit(&c.requester(), &submission, key)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view(&req))))
}

/// The account's IP requests
#[utoipa::path(
    get,
    path = "/api/v1/whitelist/requests",
    tag = "customer",
    responses(
        (status = 200, description = "The account's requests", body = [RequestView]),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
async fn list_requests(
    State(s): State<CustomerState>,
    c: Caller,
) -> ApiResult<Json<Vec<RequestView>>> {
    let reqs = s.publisher.store.requests(c.account.id.as_str()).await?;
    Ok(Json(reqs.iter().map(view).collect()))
}

/// One IP request
#[utoipa::path(
    get,
    path = "/api/v1/whitelist/requests/{id}",
    tag = "customer",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request", body = RequestView),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 404, description = "The account has no such request", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
async fn get_request(
    State(s): State<CustomerState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(view(
        &s.publisher
            .store
            .request(c.account.id.as_str(), &id)
            .await?,
    )))
}

/// Cancel a pending request
#[utoipa::path(
    post,
    path = "/api/v1/whitelist/requests/{id}/cancel",
    tag = "customer",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request, now cancelled", body = RequestView),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `request` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 404, description = "The account has no such request", body = ErrorBody),
        (status = 409, description = "The request is not pending (decided, expired or cancelled)", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["request"])),
)]
async fn cancel(
    State(s): State<CustomerState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(view(&s.requests().cancel(&c.requester(), id).await?)))
}
