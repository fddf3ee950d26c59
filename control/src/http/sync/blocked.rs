//! `POST /sync/v1/blocked-calls`: a following proxy's report of the calls
//! it denied, `{"calls":[{account, address, calls, first_seen, last_seen,
//! route}]}`, with the sync token. Validated whole before anything is
//! written: a bad report is refused with 400 and changes nothing.

use super::feed::SyncFeed;
use crate::api_error::ApiError;
use crate::domain::Timestamp;
use crate::store::blocked::BlockedReport;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// The largest report body taken.
pub const MAX_BODY: usize = 1024 * 1024;
/// The most lines in one report.
pub const MAX_LINES: usize = 5000;
const MAX_NAME: usize = 128;
/// How far in the future a time may be (clocks differ a little).
const SKEW: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    calls: Vec<BlockedReport>,
}

/// What is wrong with a report's line, if anything.
fn check(r: &BlockedReport, now: u64) -> Result<(), &'static str> {
    let c = &r.call;
    if r.account.is_empty() || r.account.len() > MAX_NAME {
        return Err("`account` must be 1 to 128 bytes");
    }
    if c.route.is_empty() || c.route.len() > MAX_NAME {
        return Err("`route` must be 1 to 128 bytes");
    }
    if c.calls == 0 {
        return Err("`calls` must be at least 1");
    }
    if c.first_seen > c.last_seen || c.last_seen > now + SKEW {
        return Err("`first_seen` must not be after `last_seen`, nor `last_seen` in the future");
    }
    Ok(())
}

pub async fn report(
    State(feed): State<Arc<SyncFeed>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = feed.check_token(&headers, peer) {
        return refused;
    }
    let report: Report = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad("calls", format!("not a blocked-calls report: {e}"))
                .into_response()
        }
    };
    if report.calls.len() > MAX_LINES {
        return ApiError::bad("calls", format!("at most {MAX_LINES} lines per report"))
            .into_response();
    }
    let now = Timestamp::now().unix();
    for (i, line) in report.calls.iter().enumerate() {
        if let Err(why) = check(line, now) {
            return ApiError::bad("calls", format!("line {i}: {why}")).into_response();
        }
    }
    match feed.store().add_blocked_calls(&report.calls).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blocked::BlockedCall;

    fn line(account: &str, calls: u64, first: u64, last: u64) -> BlockedReport {
        BlockedReport {
            account: account.into(),
            call: BlockedCall {
                address: "192.0.2.1".parse().unwrap(),
                calls,
                first_seen: first,
                last_seen: last,
                route: "sms".into(),
            },
        }
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(check(&line("acme", 1, 5, 10), 100).is_ok());
        assert!(check(&line("", 1, 5, 10), 100).is_err());
        assert!(check(&line("acme", 0, 5, 10), 100).is_err());
        assert!(check(&line("acme", 1, 11, 10), 100).is_err());
        assert!(check(&line("acme", 1, 5, 100 + SKEW + 1), 100).is_err());
        assert!(serde_json::from_str::<Report>(r#"{"calls":[{"account":"a","address":"x","calls":1,"first_seen":1,"last_seen":1,"route":"r"}]}"#).is_err());
    }
}
