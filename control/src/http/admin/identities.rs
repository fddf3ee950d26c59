//! Admin routes for an account's identities (names the upstream knows it
//! by) and secret keys (kept as SHA-256 only; answers show a fingerprint).
//! Each change is live in the proxy table before it is answered.

use super::handlers::{check_remark, path_account};
use super::AdminState;
use crate::api_error::{ApiError, ApiJson, ErrorBody};
use crate::domain::model::{fingerprint, Identity, SecretKey, SecretKeyView};
use crate::domain::Timestamp;
use crate::hex;
use crate::seclog::Actor;
use crate::store::parse_sha256;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use ipgate_policy::account::valid_account_id;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

use ipgate_policy::account::{valid_key, MAX_KEY};

/// A new identity: a name the upstream knows the account by.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIdentity {
    /// 1-128 of `A-Z a-z 0-9 . _ - @ +` (the account-id rule), unique over
    /// every account's ids and identities, ASCII case ignored.
    value: String,
    /// At most 200 printable characters.
    #[serde(default)]
    remark: String,
}

/// A new secret key: exactly one of `key` and `sha256`. Only the key's
/// SHA-256 is stored.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The key itself: 1-4096 bytes of visible ASCII without spaces.
    key: Option<String>,
    /// The key's SHA-256: 64 hex digits, either case.
    sha256: Option<String>,
    /// At most 200 printable characters.
    #[serde(default)]
    remark: String,
}

fn no_account(id: &str) -> ApiError {
    ApiError::not_found("account", format!("account `{id}` does not exist"))
}

async fn check_account(s: &AdminState, id: &str) -> ApiResult<()> {
    match s.publisher.store.account(id).await? {
        Some(_) => Ok(()),
        None => Err(no_account(id)),
    }
}

/// The hash to register: of the key, or as given, exactly one of them.
fn key_hash(body: &NewKey) -> ApiResult<[u8; 32]> {
    match (&body.key, &body.sha256) {
        (Some(key), None) => {
            if !valid_key(key.as_bytes()) {
                return Err(ApiError::bad(
                    "key",
                    format!("a key is 1-{MAX_KEY} bytes of visible ASCII without spaces"),
                ));
            }
            Ok(Sha256::digest(key.as_bytes()).into())
        }
        (None, Some(h)) => parse_sha256(h)
            .ok_or_else(|| ApiError::bad("sha256", "a key hash is 64 hex digits (SHA-256)")),
        _ => Err(ApiError::bad(
            "key",
            "send exactly one of `key` (the key itself, stored only as its SHA-256) or `sha256` (its hash in hex)",
        )),
    }
}

/// An account's identities
#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}/identities",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account's identities", body = [Identity]),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_identities(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Identity>>> {
    check_account(&s, &id).await?;
    Ok(Json(s.publisher.store.identities(&id).await?))
}

/// Add an identity
///
/// Live in the proxy before it is answered.
#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/identities",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    request_body = NewIdentity,
    responses(
        (status = 201, description = "Added", body = Identity),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The value is taken by an account id or an identity", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn add_identity(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewIdentity>,
) -> ApiResult<(StatusCode, Json<Identity>)> {
    if !valid_account_id(&body.value) {
        return Err(ApiError::bad(
            "value",
            "an identity is 1-128 of A-Z a-z 0-9 . _ - @ + (the account-id rule)",
        ));
    }
    check_remark(&body.remark)?;
    let identity = Identity {
        id: String::new(),
        account: path_account(&id)?,
        value: body.value.clone(),
        remark: body.remark,
        created_at: Timestamp::now(),
    };
    let added = s
        .publisher
        .change(|st| async move {
            st.add_identity(identity, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %added.account, value = %added.value, identity = %added.id, "admin: identity added");
    Ok((StatusCode::CREATED, Json(added)))
}

/// Remove an identity
#[utoipa::path(
    delete,
    path = "/admin/v1/accounts/{id}/identities/{identity_id}",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id"), ("identity_id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "What was removed", body = Identity),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account, or no such identity on it", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn remove_identity(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, identity_id)): Path<(String, String)>,
) -> ApiResult<Json<Identity>> {
    check_account(&s, &id).await?;
    if s.publisher
        .store
        .identity(&id, &identity_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(
            "id",
            format!("identity `{identity_id}` does not exist"),
        ));
    };
    let removed = s
        .publisher
        .change(|st| async move {
            st.remove_identity(&id, &identity_id, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %removed.account, value = %removed.value, identity = %removed.id, "admin: identity removed");
    Ok(Json(removed))
}

/// An account's secret keys (fingerprints only)
#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}/keys",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account's keys", body = [SecretKeyView]),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_keys(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SecretKeyView>>> {
    check_account(&s, &id).await?;
    let keys = s.publisher.store.keys(&id).await?;
    Ok(Json(keys.iter().map(SecretKeyView::from).collect()))
}

/// Add a secret key
///
/// Live in the proxy before it is answered.
#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/keys",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    request_body = NewKey,
    responses(
        (status = 201, description = "Added; shown by its fingerprint", body = SecretKeyView),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "This key belongs to an account already", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn add_key(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<SecretKeyView>)> {
    let hash = key_hash(&body)?;
    check_remark(&body.remark)?;
    let key = SecretKey {
        id: String::new(),
        account: path_account(&id)?,
        sha256: hex::encode(&hash),
        fingerprint: fingerprint(&hash),
        remark: body.remark,
        created_at: Timestamp::now(),
    };
    let added = s
        .publisher
        .change(|st| async move { st.add_key(key, hash, &Actor::admin(Some(peer.ip()))).await })
        .await?;
    tracing::info!(account = %added.account, fingerprint = %added.fingerprint, key = %added.id, "admin: key added");
    Ok((StatusCode::CREATED, Json(SecretKeyView::from(&added))))
}

/// Remove a secret key
#[utoipa::path(
    delete,
    path = "/admin/v1/accounts/{id}/keys/{key_id}",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id"), ("key_id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "What was removed", body = SecretKeyView),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account, or no such key on it", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn remove_key(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<SecretKeyView>> {
    check_account(&s, &id).await?;
    let known = s.publisher.store.key(&id, &key_id).await?;
    if known.and_then(|k| parse_sha256(&k.sha256)).is_none() {
        return Err(ApiError::not_found(
            "id",
            format!("key `{key_id}` does not exist"),
        ));
    };
    let removed = s
        .publisher
        .change(|st| async move {
            st.remove_key(&id, &key_id, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %removed.account, fingerprint = %removed.fingerprint, key = %removed.id, "admin: key removed");
    Ok(Json(SecretKeyView::from(&removed)))
}
