//! The portal's Security log tab (`/portal/security-log`) and its CSV
//! download (`/portal/security-log.csv`): the account's records as the
//! customer API's `GET /api/v1/security-log` shows them (`customer_log`),
//! paged with the same `before` and `limit`, for the account's main user
//! only, as the API.

use super::log_page::{security_log, LogView};
use super::Portal;
use crate::domain::users::Role;
use crate::html::{message, respond, unavailable};
use crate::http::customer_log::{csv_response, fetch, AccountLog, Page};
use crate::http::state::CustomerState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Paging {
    before: Option<u64>,
    limit: Option<usize>,
}

/// The page the query asks for, read, or the page saying why not.
async fn load(
    s: &CustomerState,
    p: &Portal,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<(AccountLog, Option<u64>), Response> {
    if p.caller.user.role != Role::Main {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Security log",
            "warn",
            "Only your account's main user can see its security log; ask them, or contact us.",
        ));
    }
    let bad = |text: &str| message(StatusCode::BAD_REQUEST, "Security log", "bad", text);
    let Ok(Query(q)) = query else {
        return Err(bad(
            "This address asks for something the security log does not have: open the Security log tab again.",
        ));
    };
    let page = Page::new(q.before, q.limit).map_err(|e| bad(&e.to_string()))?;
    match fetch(&s.publisher.store, p.caller.account.id.as_str(), page).await {
        Ok(log) => Ok((log, page.before)),
        Err(e) => Err(unavailable(&e)),
    }
}

pub(super) async fn page(
    State(s): State<CustomerState>,
    p: Portal,
    query: Result<Query<Paging>, QueryRejection>,
) -> Response {
    match load(&s, &p, query).await {
        Ok((log, before)) => respond(
            StatusCode::OK,
            security_log(&LogView {
                caller: &p.caller,
                csrf: &p.session.csrf,
                log: &log,
                before,
            }),
        ),
        Err(r) => r,
    }
}

pub(super) async fn download(
    State(s): State<CustomerState>,
    p: Portal,
    query: Result<Query<Paging>, QueryRejection>,
) -> Response {
    match load(&s, &p, query).await {
        Ok((log, _)) => csv_response(&log),
        Err(r) => r,
    }
}
