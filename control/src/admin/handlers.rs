//! Admin API handlers. Each checks its input fully before any change, so a
//! refused call changes nothing.

use super::error::{ApiError, ApiJson};
use super::AdminState;
use crate::model::{now, Account, BlockEntry, Source, WhitelistEntry, WhitelistMode};
use crate::publish::Touched;
use crate::seclog::{Actor, SecRecord, Verification};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use ipgate_config::net::parse_cidr;
use ipgate_policy::account::valid_account_id;
use serde::Deserialize;
use std::net::SocketAddr;

type ApiResult<T> = Result<T, ApiError>;

const MAX_REMARK: usize = 200;
const MAX_EMAILS: usize = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    id: String,
    name: String,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default = "default_mode")]
    whitelist: WhitelistMode,
}

fn default_mode() -> WhitelistMode {
    WhitelistMode::Off
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    name: Option<String>,
    emails: Option<Vec<String>>,
    whitelist: Option<WhitelistMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    cidr: String,
    #[serde(default)]
    remark: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    cidr: String,
    #[serde(default)]
    remark: String,
}

fn check_account_id(id: &str) -> ApiResult<()> {
    if valid_account_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "id",
            "an account id is 1-128 of A-Z a-z 0-9 . _ - @ +",
        ))
    }
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

fn cidr(input: &str) -> ApiResult<String> {
    parse_cidr(input)
        .map(|n| n.to_string())
        .map_err(|e| ApiError::bad("cidr", e.to_string()))
}

pub async fn create_account(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<NewAccount>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    check_account_id(&body.id)?;
    check_name(&body.name)?;
    check_emails(&body.emails)?;
    let account = Account {
        id: body.id.clone(),
        name: body.name.trim().to_string(),
        emails: body.emails,
        whitelist: body.whitelist,
        created_at: now(),
        updated_at: now(),
    };
    let created = s
        .publisher
        .change(Touched::Account(&body.id), |st| async move {
            st.create_account(account, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %created.id, mode = ?created.whitelist, "admin: account created");
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_accounts(State(s): State<AdminState>) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(s.publisher.store.accounts()?))
}

pub async fn get_account(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Account>> {
    s.publisher
        .store
        .account(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("account", format!("account `{id}` does not exist")))
}

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
    let account = id.clone();
    let updated = s
        .publisher
        .change(Touched::Account(&id), |st| async move {
            st.update_account(
                &account,
                &Actor::admin(Some(peer.ip())),
                |mut a: Account| {
                    if let Some(n) = &patch.name {
                        a.name = n.trim().to_string();
                    }
                    if let Some(e) = &patch.emails {
                        a.emails = e.clone();
                    }
                    if let Some(m) = patch.whitelist {
                        a.whitelist = m;
                    }
                    a.updated_at = now();
                    a
                },
            )
            .await
        })
        .await?;
    tracing::info!(account = %updated.id, mode = ?updated.whitelist, "admin: account changed");
    Ok(Json(updated))
}

pub async fn list_entries(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<WhitelistEntry>>> {
    if s.publisher.store.account(&id)?.is_none() {
        return Err(ApiError::not_found(
            "account",
            format!("account `{id}` does not exist"),
        ));
    }
    Ok(Json(s.publisher.store.entries(&id)?))
}

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
    let entry = WhitelistEntry {
        id: String::new(),
        account: id.clone(),
        cidr,
        remark: body.remark,
        tags: body.tags,
        source: Source::Admin,
        created_at: now(),
        updated_at: now(),
    };
    let account = id.clone();
    let mut added = s
        .publisher
        .change(Touched::Account(&id), |st| async move {
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

pub async fn remove_entry(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, entry_id)): Path<(String, String)>,
) -> ApiResult<Json<WhitelistEntry>> {
    let account = id.clone();
    let removed = s
        .publisher
        .change(Touched::Account(&id), |st| async move {
            st.remove_entry(&account, &entry_id, &Actor::admin(Some(peer.ip())))
                .await
        })
        .await?;
    tracing::info!(account = %id, cidr = %removed.cidr, entry = %removed.id, "admin: whitelist entry removed");
    Ok(Json(removed))
}

pub async fn list_blocks(State(s): State<AdminState>) -> ApiResult<Json<Vec<BlockEntry>>> {
    Ok(Json(s.publisher.store.blocklist()?))
}

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
        created_at: now(),
    };
    let added = s
        .publisher
        .change(Touched::Blocklist, |st| async move {
            st.add_block(entry, &Actor::admin(Some(peer.ip()))).await
        })
        .await?;
    tracing::info!(cidr = %added.cidr, entry = %added.id, "admin: blocklist entry added");
    Ok((StatusCode::CREATED, Json(added)))
}

pub async fn remove_block(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> ApiResult<Json<BlockEntry>> {
    let removed = s
        .publisher
        .change(Touched::Blocklist, |st| async move {
            st.remove_block(&id, &Actor::admin(Some(peer.ip()))).await
        })
        .await?;
    tracing::info!(cidr = %removed.cidr, entry = %removed.id, "admin: blocklist entry removed");
    Ok(Json(removed))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    account: Option<String>,
}

pub async fn security_log(
    State(s): State<AdminState>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<Vec<SecRecord>>> {
    Ok(Json(s.publisher.store.security_log(q.account.as_deref())?))
}

pub async fn verify_security_log(State(s): State<AdminState>) -> ApiResult<Json<Verification>> {
    let v = s.publisher.store.verify_security_log()?;
    if v.ok {
        tracing::info!(records = v.records, head = %v.head, "security log verified");
    } else {
        tracing::error!(broken_at = ?v.broken_at, reason = ?v.reason, "security log verification FAILED");
    }
    Ok(Json(v))
}
