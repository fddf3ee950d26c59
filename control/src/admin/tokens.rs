//! Admin routes for a user's customer API tokens: issue (the token is in
//! that answer only), list (ids, scopes, expiry, fingerprints) and revoke.

use super::error::{ApiError, ApiJson};
use super::AdminState;
use crate::model::unix_now;
use crate::publish::Touched;
use crate::seclog::Actor;
use crate::tokens::{self, ApiToken, ApiTokenView, Scope};
use crate::users;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

type ApiResult<T> = Result<T, ApiError>;

/// `POST /admin/v1/users/{username}/tokens`; every field optional, and so
/// is the body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// `read`, `request`; default both.
    scopes: Option<Vec<String>>,
    /// A duration string (`"90d"`); default [`tokens::DEFAULT_LIFETIME`].
    expires_in: Option<Value>,
}

fn check_user(s: &AdminState, username: &str) -> ApiResult<()> {
    match s.publisher.store.user(username)? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(
            "username",
            format!("user `{username}` does not exist"),
        )),
    }
}

pub async fn issue_token(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(username): Path<String>,
    body: Option<ApiJson<NewToken>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
        unix_now(),
        lifetime,
    );
    let actor = Actor::admin(Some(peer.ip()));
    let issued = s
        .publisher
        .change(Touched::Nothing, |st| async move {
            st.issue_token(record, &hash, &actor).await
        })
        .await?;
    tracing::info!(user = %username, token = %issued.id, fingerprint = %issued.fingerprint, scopes = ?issued.scopes, "admin: API token issued");
    let view = ApiTokenView::of(&issued, unix_now());
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": view.id,
            "token": token,
            "username": view.username,
            "scopes": view.scopes,
            "fingerprint": view.fingerprint,
            "created_at": view.created_at,
            "expires_at": view.expires_at,
        })),
    ))
}

pub async fn list_tokens(
    State(s): State<AdminState>,
    Path(username): Path<String>,
) -> ApiResult<Json<Vec<ApiTokenView>>> {
    check_user(&s, &username)?;
    let now = unix_now();
    let list = s.publisher.store.tokens_of(&username)?;
    Ok(Json(
        list.iter().map(|t| ApiTokenView::of(t, now)).collect(),
    ))
}

pub async fn revoke_token(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((username, id)): Path<(String, String)>,
) -> ApiResult<Json<ApiTokenView>> {
    check_user(&s, &username)?;
    let actor = Actor::admin(Some(peer.ip()));
    let name = username.clone();
    let revoked = s
        .publisher
        .change(Touched::Nothing, |st| async move {
            st.revoke_token(&name, &id, &actor).await
        })
        .await?;
    tracing::info!(user = %username, token = %revoked.id, fingerprint = %revoked.fingerprint, "admin: API token revoked");
    Ok(Json(ApiTokenView::of(&revoked, unix_now())))
}
