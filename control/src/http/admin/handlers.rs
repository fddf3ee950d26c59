//! Admin API handlers. Each checks its input fully before any change, so a
//! refused call changes nothing.

use super::AdminState;
use crate::api_error::{ApiError, ApiJson, ErrorBody};
use crate::domain::model::{Account, BlockEntry, Source, WhitelistEntry, WhitelistMode};
use crate::domain::{AccountId, Cidr, Timestamp};
use crate::seclog::{Actor, SecRecord, Verification};
use crate::store::StoreError;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::net::SocketAddr;
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

const MAX_REMARK: usize = 200;
const MAX_EMAILS: usize = 20;

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// 1-128 of `A-Z a-z 0-9 . _ - @ +`, not taken by another account's
    /// id or identity (ASCII case ignored).
    id: String,
    /// 1-200 printable characters.
    name: String,
    /// Where the request links go: at most 20 addresses; default none.
    #[serde(default)]
    emails: Vec<String>,
    /// Default `off`.
    #[serde(default = "default_mode")]
    whitelist: WhitelistMode,
    /// How many different emails must approve a request: 1 (default) to
    /// the number of emails.
    #[serde(default)]
    approvals_required: Option<u8>,
}

/// `n` approvals can be given by an account with `emails` addresses.
fn check_quorum(n: u8, emails: usize) -> ApiResult<()> {
    if n == 0 || usize::from(n) > emails.max(1) {
        return Err(ApiError::bad(
            "approvals_required",
            format!("from 1 to the number of the account's emails ({emails})"),
        ));
    }
    Ok(())
}

fn default_mode() -> WhitelistMode {
    WhitelistMode::Off
}

/// What to change in an account; a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// 1-200 printable characters.
    name: Option<String>,
    /// The new list, replacing the old: at most 20 addresses.
    emails: Option<Vec<String>>,
    whitelist: Option<WhitelistMode>,
    /// 1 to the number of emails (after this change).
    approvals_required: Option<u8>,
    /// `false` lifts a freeze of self-service requests ("this wasn't
    /// me"); `true` freezes them.
    frozen: Option<bool>,
}

/// A new whitelist entry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// An IPv4 or IPv6 address or CIDR (`203.0.113.10`, `2001:db8::/64`).
    cidr: String,
    /// At most 200 printable characters.
    #[serde(default)]
    remark: String,
    /// At most 20 tags of 1-50 printable characters.
    #[serde(default)]
    tags: Vec<String>,
    /// When the entry leaves the whitelist by itself (RFC 3339, in the
    /// future, within 366 days); give this or `expires_in`, or neither
    /// for an entry that stays until removed.
    #[serde(default)]
    expires_at: Option<String>,
    /// How long from now the entry stays (`"7d"`, `"12h"`; 1s to 366d).
    #[serde(default)]
    expires_in: Option<String>,
}

/// When a new entry ends, from its `expires_at` or `expires_in`.
fn entry_end(body: &NewEntry, now: Timestamp) -> ApiResult<Option<Timestamp>> {
    let max = crate::domain::tokens::MAX_LIFETIME.as_secs();
    match (&body.expires_at, &body.expires_in) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::bad(
            "expires_at",
            "give `expires_at` or `expires_in`, not both",
        )),
        (Some(at), None) => {
            let at = Timestamp::parse(at.trim()).map_err(|_| {
                ApiError::bad(
                    "expires_at",
                    "an RFC 3339 time such as 2026-12-31T00:00:00Z",
                )
            })?;
            if at <= now || at > now.plus_secs(max) {
                return Err(ApiError::bad(
                    "expires_at",
                    "must be in the future and at most 366 days away",
                ));
            }
            Ok(Some(at))
        }
        (None, Some(d)) => {
            let d = crate::domain::tokens::parse_lifetime(&serde_json::Value::from(d.as_str()))
                .map_err(|e| ApiError::bad("expires_in", e.to_string()))?;
            Ok(Some(now.plus_secs(d.as_secs())))
        }
    }
}

/// A new blocklist entry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// An IPv4 or IPv6 address or CIDR.
    cidr: String,
    /// At most 200 printable characters.
    #[serde(default)]
    remark: String,
}

/// A new account's id: the rule's words if it breaks it.
fn check_account_id(id: &str) -> ApiResult<AccountId> {
    AccountId::parse(id).map_err(|e| ApiError::bad("id", e.to_string()))
}

/// The account a path names, for a record that belongs to it. An id that
/// breaks the rule names no account, so it is answered as the store
/// answers one that does not exist (404), at the point the store would.
pub(super) fn path_account(id: &str) -> ApiResult<AccountId> {
    AccountId::parse(id).map_err(|_| StoreError::NoAccount(id.to_string()).into())
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "name",
            "a name is 1-200 printable characters",
        ));
    }
    Ok(())
}

fn check_emails(emails: &[String]) -> ApiResult<()> {
    if emails.len() > MAX_EMAILS {
        return Err(ApiError::bad(
            "emails",
            format!("at most {MAX_EMAILS} emails"),
        ));
    }
    for (i, e) in emails.iter().enumerate() {
        let ok = e.len() <= 254
            && e.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            })
            && !e.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
            });
        if !ok {
            return Err(ApiError::bad(
                &format!("emails[{i}]"),
                format!("`{e}` is not an email address"),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_remark(remark: &str) -> ApiResult<()> {
    if remark.chars().count() > MAX_REMARK || remark.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "remark",
            format!("a remark is at most {MAX_REMARK} printable characters"),
        ));
    }
    Ok(())
}

fn cidr(input: &str) -> ApiResult<Cidr> {
    Cidr::parse(input).map_err(|e| ApiError::bad("cidr", e.to_string()))
}

/// Create an account
#[utoipa::path(
    post,
    path = "/admin/v1/accounts",
    tag = "admin",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Created", body = Account),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 409, description = "The id is taken by an account or an identity", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn create_account(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<NewAccount>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    let id = check_account_id(&body.id)?;
    check_name(&body.name)?;
    check_emails(&body.emails)?;
    let approvals_required = body.approvals_required.unwrap_or(1);
    check_quorum(approvals_required, body.emails.len())?;
    let account = Account {
        id: id.clone(),
        name: body.name.trim().to_string(),
        emails: body.emails,
        whitelist: body.whitelist,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        approvals_required,
        frozen: false,
    };
    let created = s
        .publisher
        .change(|st| async move {
            st.create_account(account, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %created.id, mode = ?created.whitelist, "admin: account created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// All accounts
#[utoipa::path(
    get,
    path = "/admin/v1/accounts",
    tag = "admin",
    responses(
        (status = 200, description = "Every account", body = [Account]),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_accounts(State(s): State<AdminState>) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(s.publisher.store.accounts().await?))
}

/// One account
#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn get_account(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Account>> {
    s.publisher
        .store
        .account(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("account", format!("account `{id}` does not exist")))
}

/// Change an account
#[utoipa::path(
    patch,
    path = "/admin/v1/accounts/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    request_body = AccountPatch,
    responses(
        (status = 200, description = "The account as changed", body = Account),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn patch_account(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AccountPatch>,
) -> ApiResult<Json<Account>> {
    if let Some(n) = &patch.name {
        check_name(n)?;
    }
    if let Some(e) = &patch.emails {
        check_emails(e)?;
    }
    if patch.approvals_required.is_some() || patch.emails.is_some() {
        let current = s
            .publisher
            .store
            .account(&id)
            .await?
            .ok_or_else(|| StoreError::NoAccount(id.clone()))?;
        let emails = patch.emails.as_ref().map_or(current.emails.len(), Vec::len);
        check_quorum(
            patch
                .approvals_required
                .unwrap_or(current.approvals_required),
            emails,
        )?;
    }
    let account = id.clone();
    let updated = s
        .publisher
        .change(|st| async move {
            st.update_account(
                &account,
                &Actor::admin(Some(peer.ip())),
                &|mut a: Account| {
                    if let Some(n) = &patch.name {
                        a.name = n.trim().to_string();
                    }
                    if let Some(e) = &patch.emails {
                        a.emails = e.clone();
                    }
                    if let Some(m) = patch.whitelist {
                        a.whitelist = m;
                    }
                    if let Some(n) = patch.approvals_required {
                        a.approvals_required = n;
                    }
                    if let Some(f) = patch.frozen {
                        a.frozen = f;
                    }
                    a.updated_at = Timestamp::now();
                    a
                },
            )
            .await
        })
        .await?;
    tracing::info!(account = %updated.id, mode = ?updated.whitelist, "admin: account changed");
    Ok(Json(updated))
}

/// An account's whitelist entries
#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}/whitelist",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account's entries", body = [WhitelistEntry]),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_entries(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<WhitelistEntry>>> {
    if s.publisher.store.account(&id).await?.is_none() {
        return Err(ApiError::not_found(
            "account",
            format!("account `{id}` does not exist"),
        ));
    }
    Ok(Json(s.publisher.store.entries(&id).await?))
}

/// Add a whitelist entry
///
/// Live in the proxy before it is answered.
#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/whitelist",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id")),
    request_body = NewEntry,
    responses(
        (status = 201, description = "Added", body = WhitelistEntry),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The account already has this CIDR", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 500, description = "The store added nothing", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn add_entry(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewEntry>,
) -> ApiResult<(StatusCode, Json<WhitelistEntry>)> {
    let cidr = cidr(&body.cidr)?;
    check_remark(&body.remark)?;
    if body.tags.len() > 20
        || body
            .tags
            .iter()
            .any(|t| t.is_empty() || t.len() > 50 || t.chars().any(char::is_control))
    {
        return Err(ApiError::bad(
            "tags",
            "at most 20 tags of 1-50 printable characters",
        ));
    }
    let now = Timestamp::now();
    let expires_at = entry_end(&body, now)?;
    let entry = WhitelistEntry {
        id: String::new(),
        account: path_account(&id)?,
        cidr,
        remark: body.remark,
        tags: body.tags,
        source: Source::Admin,
        created_at: now,
        updated_at: now,
        expires_at,
        reminded: 0,
    };
    let account = id.clone();
    let mut added = s
        .publisher
        .change(|st| async move {
            st.add_entries(&account, vec![entry], &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    let added = added.pop().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            "nothing was added",
        )
    })?;
    tracing::info!(account = %id, cidr = %added.cidr, entry = %added.id, "admin: whitelist entry added");
    Ok((StatusCode::CREATED, Json(added)))
}

/// Remove a whitelist entry
#[utoipa::path(
    delete,
    path = "/admin/v1/accounts/{id}/whitelist/{entry_id}",
    tag = "admin",
    params(("id" = String, Path, description = "The account's id"), ("entry_id" = String, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "What was removed", body = WhitelistEntry),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such entry on this account", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn remove_entry(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, entry_id)): Path<(String, String)>,
) -> ApiResult<Json<WhitelistEntry>> {
    let account = id.clone();
    let removed = s
        .publisher
        .change(|st| async move {
            st.remove_entry(&account, &entry_id, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %id, cidr = %removed.cidr, entry = %removed.id, "admin: whitelist entry removed");
    Ok(Json(removed))
}

/// The global blocklist
#[utoipa::path(
    get,
    path = "/admin/v1/blocklist",
    tag = "admin",
    responses(
        (status = 200, description = "Every blocklist entry", body = [BlockEntry]),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_blocks(State(s): State<AdminState>) -> ApiResult<Json<Vec<BlockEntry>>> {
    Ok(Json(s.publisher.store.blocklist().await?))
}

/// Add a blocklist entry
#[utoipa::path(
    post,
    path = "/admin/v1/blocklist",
    tag = "admin",
    request_body = NewBlock,
    responses(
        (status = 201, description = "Added", body = BlockEntry),
        (status = 400, description = "A field is invalid, or the body is not a JSON object of these fields", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 409, description = "The blocklist already has this CIDR", body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn add_block(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<NewBlock>,
) -> ApiResult<(StatusCode, Json<BlockEntry>)> {
    let cidr = cidr(&body.cidr)?;
    check_remark(&body.remark)?;
    let entry = BlockEntry {
        id: String::new(),
        cidr,
        remark: body.remark,
        created_at: Timestamp::now(),
    };
    let added = s
        .publisher
        .change(|st| async move { st.add_block(entry, &Actor::admin(Some(peer.ip()))).await })
        .await?;
    tracing::info!(cidr = %added.cidr, entry = %added.id, "admin: blocklist entry added");
    Ok((StatusCode::CREATED, Json(added)))
}

/// Remove a blocklist entry
#[utoipa::path(
    delete,
    path = "/admin/v1/blocklist/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "What was removed", body = BlockEntry),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn remove_block(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> ApiResult<Json<BlockEntry>> {
    let removed = s
        .publisher
        .change(|st| async move { st.remove_block(&id, &Actor::admin(Some(peer.ip()))).await })
        .await?;
    tracing::info!(cidr = %removed.cidr, entry = %removed.id, "admin: blocklist entry removed");
    Ok(Json(removed))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    account: Option<String>,
}

/// The security log, oldest first
#[utoipa::path(
    get,
    path = "/admin/v1/security-log",
    tag = "admin",
    params(("account" = Option<String>, Query, description = "Only the records of this account")),
    responses(
        (status = 200, description = "The records", body = [SecRecord]),
        (status = 400, description = "A query parameter other than one `account` (plain text from the query parser)", body = String, content_type = "text/plain"),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn security_log(
    State(s): State<AdminState>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<Vec<SecRecord>>> {
    Ok(Json(
        s.publisher.store.security_log(q.account.as_deref()).await?,
    ))
}

/// Verify the security log's hash chain
#[utoipa::path(
    get,
    path = "/admin/v1/security-log/verify",
    tag = "admin",
    responses(
        (status = 200, description = "The outcome: `ok` false and where and why the chain breaks, if it does", body = Verification),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn verify_security_log(State(s): State<AdminState>) -> ApiResult<Json<Verification>> {
    let v = s.publisher.store.verify_security_log().await?;
    if v.ok {
        tracing::info!(records = v.records, head = %v.head, "security log verified");
    } else {
        tracing::error!(broken_at = ?v.broken_at, reason = ?v.reason, "security log verification FAILED");
    }
    Ok(Json(v))
}
