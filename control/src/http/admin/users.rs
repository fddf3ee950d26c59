//! Admin routes for portal users: create, enrol TOTP (API tokens: `tokens.rs`).
//! Secrets are shown once in the answer and never logged.

use super::handlers::path_account;
use super::AdminState;
use crate::api_error::{ApiError, ApiJson, ErrorBody};
use crate::domain::users::{self, Role, User, UserView};
use crate::domain::Timestamp;
use crate::seclog::Actor;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use ipgate_policy::account::valid_account_id;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

/// A new portal user of the account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1-128 of `A-Z a-z 0-9 . _ - @ +`.
    username: String,
    /// 12 to 1024 characters; stored as an Argon2 hash.
    password: String,
    /// Only `main` users may request IPs and hold API tokens that work.
    role: Role,
}

/// A user's new TOTP secret, shown this once. Fields in alphabetical
/// order: the JSON is as it was when built with `json!`.
#[derive(serde::Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret as an `otpauth://totp/...` URI, for a QR code.
    pub otpauth_uri: String,
    /// The secret in base32.
    pub secret: String,
}

/// Create a user of the account
#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/users",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 500, description = "The password could not be hashed", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn create_user(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(account): Path<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    if !valid_account_id(&body.username) {
        return Err(ApiError::bad(
            "username",
            "a username is 1-128 of A-Z a-z 0-9 . _ - @ +",
        ));
    }
    let password = body.password;
    let hash = tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "password",
                "hashing failed",
            )
        })?
        .map_err(|e| match e {
            users::PasswordError::Length => ApiError::bad("password", e.to_string()),
            users::PasswordError::Hash => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "password", e.to_string())
            }
        })?;
    let user = User {
        username: body.username,
        account: path_account(&account)?,
        role: body.role,
        password_hash: hash,
        totp_secret: None,
        totp_last_step: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    let actor = Actor::admin(Some(peer.ip()));
    let created = s
        .publisher
        .change(|st| async move { st.create_user(user, &actor).await })
        .await?;
    tracing::info!(user = %created.username, account = %created.account, role = ?created.role, "admin: user created");
    Ok((StatusCode::CREATED, Json(UserView::from(&created))))
}

/// One user
#[utoipa::path(
    get,
    path = "/admin/v1/users/{username}",
    tag = "admin",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 200, description = "The user (no secrets)", body = UserView),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn get_user(
    State(s): State<AdminState>,
    Path(username): Path<String>,
) -> ApiResult<Json<UserView>> {
    s.publisher
        .store
        .user(&username)
        .await?
        .map(|u| Json(UserView::from(&u)))
        .ok_or_else(|| ApiError::not_found("username", format!("user `{username}` does not exist")))
}

/// Enrol a new TOTP secret for a user
///
/// Replaces any secret the user had. The secret is in this answer only.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{username}/totp",
    tag = "admin",
    params(("username" = String, Path, description = "The user's username")),
    responses(
        (status = 200, description = "The new secret, shown once", body = TotpEnrolment),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn enrol_totp(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(username): Path<String>,
) -> ApiResult<Json<TotpEnrolment>> {
    let secret = users::new_totp_secret();
    let stored = secret.clone();
    let actor = Actor::admin(Some(peer.ip()));
    let name = username.clone();
    s.publisher
        .change(|st| async move {
            st.update_user(
                &name,
                &actor,
                "user.totp_enrolled",
                json!({"username": name}),
                &|mut u: User| {
                    u.totp_secret = Some(stored.clone());
                    u.totp_last_step = None;
                    u.updated_at = Timestamp::now();
                    u
                },
            )
            .await
        })
        .await?;
    tracing::info!(user = %username, "admin: TOTP enrolled");
    Ok(Json(TotpEnrolment {
        otpauth_uri: users::otpauth_uri("ipgate", &username, &secret),
        secret: users::base32(&secret),
    }))
}
