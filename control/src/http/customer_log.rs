//! The customer's own security log, as the customer API
//! (`GET /api/v1/security-log`, in `api`) and the portal's Security log tab
//! show it: the records whose `account` is the caller's account, and no
//! other (the store selects them; they are checked again here), newest
//! first, one bounded page at a time, with the head of the whole chain, so
//! a customer can compare with a copy kept elsewhere. Records are shown as
//! stored, the admin API's view of them, in JSON or in spreadsheet-safe CSV.

pub(crate) mod api;

use crate::seclog::{Head, SecRecord};
use crate::store::{Store, StoreError};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Records per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The most records one answer holds.
pub const MAX_LIMIT: usize = 1000;

/// Which records to show: those older than `before` (all when none), the
/// newest `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Page {
    pub before: Option<u64>,
    pub limit: usize,
}

/// Why a page cannot be shown: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be from 1 to {MAX_LIMIT}")]
    Limit,
    #[error("before must be a record's seq, from 1")]
    Before,
}

impl PageError {
    /// The query parameter at fault.
    pub fn field(&self) -> &'static str {
        match self {
            PageError::Limit => "limit",
            PageError::Before => "before",
        }
    }
}

impl Page {
    /// The page `before` and `limit` ask for (`DEFAULT_LIMIT` when none).
    pub fn new(before: Option<u64>, limit: Option<usize>) -> Result<Page, PageError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(PageError::Limit);
        }
        if before == Some(0) {
            return Err(PageError::Before);
        }
        Ok(Page { before, limit })
    }
}

/// The head of the whole chain (every account's records and the rest).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChainHead {
    /// The hash of the chain's newest record (the `head` that
    /// `/admin/v1/security-log/verify` reports); 64 zeros for an empty log.
    pub head: String,
    /// How many records the whole chain holds: the newest record's `seq`.
    pub records: u64,
}

/// One page of an account's security log.
// Fields in alphabetical order, as the other customer answers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AccountLog {
    /// The caller's account: every record's `account` is this.
    pub account: String,
    /// The chain's head when the page was read; no record on the page is
    /// newer.
    pub chain: ChainHead,
    /// The `before` of the next (older) page; none when this page holds
    /// the account's oldest record.
    #[schema(required = true)]
    pub next_before: Option<u64>,
    /// The records, newest first, at most `limit`.
    pub records: Vec<SecRecord>,
}

/// The page of `account`'s records out of `records` (oldest first, as the
/// store gives them), read with the chain at `head`: only records of that
/// account, none newer than the head, newest first.
pub fn select(head: Head, mut records: Vec<SecRecord>, account: &str, page: Page) -> AccountLog {
    records.retain(|r| {
        r.account.as_deref() == Some(account)
            && r.seq <= head.seq
            && page.before.is_none_or(|b| r.seq < b)
    });
    let more = records.len() > page.limit;
    let mut shown = records.split_off(records.len().saturating_sub(page.limit));
    shown.reverse();
    AccountLog {
        account: account.to_string(),
        chain: ChainHead {
            head: head.hash,
            records: head.seq,
        },
        next_before: if more {
            shown.last().map(|r| r.seq)
        } else {
            None
        },
        records: shown,
    }
}

/// The page of `account`'s log, read from the store. The head is read
/// first, so it is at least as new as every record shown.
pub async fn fetch(store: &Store, account: &str, page: Page) -> Result<AccountLog, StoreError> {
    let head = store.security_log_head().await?;
    let records = store.security_log(Some(account)).await?;
    Ok(select(head, records, account, page))
}

/// The CSV columns: the record's fields, in the order they are stored.
pub const CSV_COLUMNS: [&str; 10] = [
    "seq", "at", "event", "account", "actor", "ip", "details", "key_id", "prev", "hash",
];

/// The page as CSV (`crate::csv`): a header row, then one row per record,
/// newest first; `details` as compact JSON, absent values empty.
pub fn to_csv(log: &AccountLog) -> String {
    let mut out = crate::csv::row(&CSV_COLUMNS);
    for r in &log.records {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        out.push_str(&crate::csv::row(&[
            r.seq.to_string(),
            r.at.clone(),
            r.event.clone(),
            opt(&r.account),
            r.actor.clone(),
            opt(&r.ip),
            r.details.to_string(),
            opt(&r.key_id),
            r.prev.clone(),
            r.hash.clone(),
        ]));
    }
    out
}

/// The response headers with the chain's head and the next page, on a
/// CSV download (whose body has only the records).
pub const HEAD_HEADER: &str = "ipgate-chain-head";
pub const RECORDS_HEADER: &str = "ipgate-chain-records";
pub const NEXT_HEADER: &str = "ipgate-next-before";

/// The page as a CSV download: `text/csv`, an attachment named after the
/// account, never cached, the chain's head and the next page in headers.
pub fn csv_response(log: &AccountLog) -> Response {
    let mut r = (StatusCode::OK, to_csv(log)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Account ids are 1-128 of `A-Z a-z 0-9 . _ - @ +`: safe in the name.
    let name = format!(
        "attachment; filename=\"ipgate-security-log-{}.csv\"",
        log.account
    );
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(k), v);
        }
    };
    set("content-disposition", name);
    set(HEAD_HEADER, log.chain.head.clone());
    set(RECORDS_HEADER, log.chain.records.to_string());
    if let Some(next) = log.next_before {
        set(NEXT_HEADER, next.to_string());
    }
    r
}

#[cfg(test)]
mod tests;
