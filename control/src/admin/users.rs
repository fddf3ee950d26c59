//! Admin routes for portal users: create, enrol TOTP (API tokens: `tokens.rs`).
//! Secrets are shown once in the answer and never logged.

use super::error::{ApiError, ApiJson};
use super::AdminState;
use crate::model::now;
use crate::publish::Touched;
use crate::seclog::Actor;
use crate::users::{self, Role, User, UserView};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use ipgate_policy::account::valid_account_id;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: Role,
}

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
        account,
        role: body.role,
        password_hash: hash,
        totp_secret: None,
        totp_last_step: None,
        created_at: now(),
        updated_at: now(),
    };
    let actor = Actor::admin(Some(peer.ip()));
    let created = s
        .publisher
        .change(Touched::Nothing, |st| async move {
            st.create_user(user, &actor).await
        })
        .await?;
    tracing::info!(user = %created.username, account = %created.account, role = ?created.role, "admin: user created");
    Ok((StatusCode::CREATED, Json(UserView::from(&created))))
}

pub async fn get_user(
    State(s): State<AdminState>,
    Path(username): Path<String>,
) -> ApiResult<Json<UserView>> {
    s.publisher
        .store
        .user(&username)?
        .map(|u| Json(UserView::from(&u)))
        .ok_or_else(|| ApiError::not_found("username", format!("user `{username}` does not exist")))
}

pub async fn enrol_totp(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(username): Path<String>,
) -> ApiResult<Json<Value>> {
    let secret = users::new_totp_secret();
    let stored = secret.clone();
    let actor = Actor::admin(Some(peer.ip()));
    let name = username.clone();
    s.publisher
        .change(Touched::Nothing, |st| async move {
            st.update_user(
                &name,
                &actor,
                "user.totp_enrolled",
                json!({"username": name}),
                |mut u| {
                    u.totp_secret = Some(stored.clone());
                    u.totp_last_step = None;
                    u.updated_at = now();
                    u
                },
            )
            .await
        })
        .await?;
    tracing::info!(user = %username, "admin: TOTP enrolled");
    Ok(Json(json!({
        "secret": users::base32(&secret),
        "otpauth_uri": users::otpauth_uri("ipgate", &username, &secret),
    })))
}
