//! `GET /api/v1/blocked-calls`: the addresses whose calls the proxies
//! denied for the caller's account in the last 7 days (not whitelisted),
//! most calls first.

use crate::api_error::{ApiError, ErrorBody};
use crate::domain::Timestamp;
use crate::http::extract::Caller;
use crate::http::state::CustomerState;
use crate::store::blocked::{BlockedCall, KEEP_SECS};
use crate::store::{Store, StoreError};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// At most this many addresses are listed.
pub const LISTED: usize = 50;

/// One address's denied calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedCallView {
    pub address: String,
    pub calls: u64,
    #[schema(value_type = String)]
    pub first_seen: Timestamp,
    #[schema(value_type = String)]
    pub last_seen: Timestamp,
    /// The route of the last denied call.
    pub route: String,
}

/// The answer: the addresses, most calls first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedCalls {
    pub addresses: Vec<BlockedCallView>,
    /// Over how many days (7).
    pub days: u64,
}

pub fn view(c: &BlockedCall) -> BlockedCallView {
    BlockedCallView {
        address: c.address.to_string(),
        calls: c.calls,
        first_seen: Timestamp::from_unix(c.first_seen),
        last_seen: Timestamp::from_unix(c.last_seen),
        route: c.route.clone(),
    }
}

/// The account's blocked calls of the last 7 days, most calls first.
pub async fn recent(store: &Store, account: &str) -> Result<Vec<BlockedCall>, StoreError> {
    let since = Timestamp::now().unix().saturating_sub(KEEP_SECS);
    store.blocked_calls(account, since, LISTED).await
}

/// Blocked calls
///
/// The addresses (at most 50) whose calls to the API were denied in the
/// last 7 days because they are not on the account's whitelist, with how
/// many calls, when first and last seen, and the route of the last one.
/// The proxies report every 10 s, so the newest calls can take that long
/// to show.
#[utoipa::path(
    get,
    path = "/api/v1/blocked-calls",
    tag = "customer",
    responses(
        (status = 200, description = "The addresses, most calls first", body = BlockedCalls),
        (status = 401, description = "No API token, or one that is unknown, revoked or expired, or whose user or account is gone", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope, or its user is not the account's main user", body = ErrorBody),
        (status = 503, description = "The store cannot take changes right now; nothing was saved", body = ErrorBody),
    ),
    security(("api_token" = ["read"])),
)]
pub async fn blocked_calls(
    State(s): State<CustomerState>,
    c: Caller,
) -> Result<Json<BlockedCalls>, ApiError> {
    let calls = recent(&s.publisher.store, c.account.id.as_str()).await?;
    Ok(Json(BlockedCalls {
        addresses: calls.iter().map(view).collect(),
        days: KEEP_SECS / 86_400,
    }))
}
