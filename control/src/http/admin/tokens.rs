//! Admin routes for a user's customer API tokens: issue (the token is in
//! that answer only), list (ids, scopes, expiry, fingerprints) and revoke.

use super::AdminState;
use crate::api_error::{ApiError, ApiJson, ErrorBody};
use crate::domain::tokens::{self, ApiToken, ApiTokenView, Scope};
use crate::domain::users;
use crate::domain::Timestamp;
use crate::seclog::Actor;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

/// `POST /admin/v1/users/{username}/tokens`; every field optional, and so
/// is the body.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// `read`, `request`; default both.
    #[schema(value_type = Option<Vec<Scope>>)]
    scopes: Option<Vec<String>>,
    /// A duration string (`"90d"`, `"12h"`, `"30m"`), whole seconds from
    /// 1s to 366d; default 90 days.
    #[schema(value_type = Option<String>)]
    expires_in: Option<Value>,
}

/// A newly issued token: the one answer that shows the token itself.
/// Fields in alphabetical order: the JSON is as it was when built with
/// `json!`.
#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    #[schema(value_type = Option<String>, required = true)]
    pub created_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, required = true)]
    pub expires_at: Option<Timestamp>,
    /// `sha256:` and the first 12 hex digits of the token's hash.
    pub fingerprint: String,
    pub id: String,
    pub scopes: Vec<Scope>,
    /// The token, for `Authorization: Bearer TOKEN`: shown only here.
    pub token: String,
    pub username: String,
}

async fn check_user(s: &AdminState, username: &str) -> ApiResult<()> {
    match s.publisher.store.user(username).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(
            "username",
            format!("user `{username}` does not exist"),
        )),
    }
}

/// Issue an API token for a user
#[utoipa::path(
    post,
    path = "/admin/v1/users/{username}/tokens",
    tag = "admin",
    params(("username" = String, Path, description = "The user's username")),
    request_body(
        content = ref("#/components/schemas/NewToken"),
        description = "Optional, and so is each of its fields: no body at all is both scopes for 90 days",
    ),
    responses(
        (status = 201, description = "Issued; the token is in this answer only", body = IssuedToken),
        (status = 400, description = "An unknown scope, no scope, a bad lifetime, or a body that is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn issue_token(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(username): Path<String>,
    body: Option<ApiJson<NewToken>>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let scopes = match &body.scopes {
        Some(names) => {
            tokens::parse_scopes(names).map_err(|e| ApiError::bad("scopes", e.to_string()))?
        }
        None => Scope::ALL.to_vec(),
    };
    let lifetime = match &body.expires_in {
        Some(v) => {
            tokens::parse_lifetime(v).map_err(|e| ApiError::bad("expires_in", e.to_string()))?
        }
        None => tokens::DEFAULT_LIFETIME,
    };
    let (token, hash) = users::new_api_token();
    let record = ApiToken::new(
        &username,
        &users::token_digest(&token),
        scopes,
        Timestamp::now(),
        lifetime,
    );
    let actor = Actor::admin(Some(peer.ip()));
    let issued = s
        .publisher
        .change(|st| async move { st.issue_token(record, &hash, &actor).await })
        .await?;
    tracing::info!(user = %username, token = %issued.id, fingerprint = %issued.fingerprint, scopes = ?issued.scopes, "admin: API token issued");
    let view = ApiTokenView::of(&issued, Timestamp::now());
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            created_at: view.created_at,
            expires_at: view.expires_at,
            fingerprint: view.fingerprint,
            id: view.id,
            scopes: view.scopes,
            token,
            username: view.username,
        }),
    ))
}

/// A user's API tokens
///
/// Expired tokens stay listed until revoked.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{username}/tokens",
    tag = "admin",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 200, description = "The user's tokens (no token, no hash)", body = [ApiTokenView]),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_tokens(
    State(s): State<AdminState>,
    Path(username): Path<String>,
) -> ApiResult<Json<Vec<ApiTokenView>>> {
    check_user(&s, &username).await?;
    let now = Timestamp::now();
    let list = s.publisher.store.tokens_of(&username).await?;
    Ok(Json(
        list.iter().map(|t| ApiTokenView::of(t, now)).collect(),
    ))
}

/// Revoke an API token
///
/// Refused from the next call on.
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{username}/tokens/{id}",
    tag = "admin",
    params(("username" = String, Path, description = "The user's username"), ("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "What was revoked", body = ApiTokenView),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such user, or no such token of theirs", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn revoke_token(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((username, id)): Path<(String, String)>,
) -> ApiResult<Json<ApiTokenView>> {
    check_user(&s, &username).await?;
    let actor = Actor::admin(Some(peer.ip()));
    let name = username.clone();
    let revoked = s
        .publisher
        .change(|st| async move { st.revoke_token(&name, &id, &actor).await })
        .await?;
    tracing::info!(user = %username, token = %revoked.id, fingerprint = %revoked.fingerprint, "admin: API token revoked");
    Ok(Json(ApiTokenView::of(&revoked, Timestamp::now())))
}
