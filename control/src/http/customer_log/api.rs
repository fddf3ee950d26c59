//! `GET /api/v1/security-log`: the caller's account's page of the security
//! log, JSON by default, CSV with `?format=csv` or `Accept: text/csv`.

use super::{csv_response, fetch, AccountLog, Page};
use crate::api_error::{ApiError, ErrorBody};
use crate::http::extract::Caller;
use crate::http::state::CustomerState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

/// What the answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    before: Option<u64>,
    limit: Option<usize>,
    format: Option<Format>,
}

/// Whether the caller asked for CSV: `format` when given, else an `Accept`
/// that names `text/csv`.
pub fn wants_csv(format: Option<Format>, headers: &HeaderMap) -> bool {
    match format {
        Some(f) => f == Format::Csv,
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| {
                let media = range.split(';').next().unwrap_or_default().trim();
                media.eq_ignore_ascii_case("text/csv")
            }),
    }
}

/// The account's security log
///
/// The records whose `account` is the caller's account, newest first, at
/// most `limit`, with the head of the whole chain. JSON, or CSV with
/// `?format=csv` or `Accept: text/csv` (docs/api.md).
#[utoipa::path(
    get,
    path = "/api/v1/security-log",
    tag = "customer",
    params(
        ("before" = Option<u64>, Query, description = "Only records older than this `seq` (the `next_before` of the page before); default: from the newest"),
        ("limit" = Option<usize>, Query, description = "At most this many records, 1 to 1000; default 100"),
        ("format" = Option<String>, Query, description = "`json` or `csv`; default: CSV when `Accept` names `text/csv`, else JSON"),
    ),
    responses(
        (status = 200, description = "The page. As CSV: a header row (seq, at, event, account, actor, ip, details, key_id, prev, hash), one row per record, every cell quoted, formula-like cells prefixed with `'`; the chain's head in `Ipgate-Chain-Head` and `Ipgate-Chain-Records`, the next page in `Ipgate-Next-Before`",
            content((AccountLog = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad `before`, `limit` or `format`, or another query parameter (`query`)", body = ErrorBody),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
pub async fn account_security_log(
    State(s): State<CustomerState>,
    c: Caller,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let page = Page::new(q.before, q.limit).map_err(|e| ApiError::bad(e.field(), e.to_string()))?;
    let log = fetch(&s.publisher.store, c.account.id.as_str(), page).await?;
    let mut r = if wants_csv(q.format, &headers) {
        csv_response(&log)
    } else {
        Json(log).into_response()
    };
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn csv_is_asked_for_by_format_or_accept() {
        assert!(!wants_csv(None, &HeaderMap::new()));
        assert!(!wants_csv(None, &accept("application/json, */*")));
        assert!(wants_csv(None, &accept("text/csv")));
        assert!(wants_csv(
            None,
            &accept("application/json;q=0.5, Text/CSV;q=1")
        ));
        assert!(wants_csv(Some(Format::Csv), &HeaderMap::new()));
        assert!(!wants_csv(Some(Format::Json), &accept("text/csv")));
        assert!(!wants_csv(None, &accept("text/csvx")));
    }
}
