//! The admin API (docs/api.md) on the admin listener: accounts, direct
//! whitelist entries (IPv4/IPv6, addresses and CIDRs), account identities
//! and secret keys, the global blocklist, users and their API tokens, the proxies that follow
//! the sync feed.
//! Bearer admin token, JSON in and out. Handlers are thin: parse and check
//! input, one store change through the publisher, answer.

mod auth;
pub(crate) mod handlers;
pub(crate) mod identities;
pub(crate) mod proxies;
pub(crate) mod tokens;
pub(crate) mod users;

use crate::api_error::ApiError;
use crate::http::openapi::ApiRouter;
use crate::service::publish::Publisher;
pub use auth::{bearer, AdminToken, MIN_TOKEN_LEN};
use axum::Router;
use std::sync::Arc;

#[derive(Clone)]
pub struct AdminState {
    pub publisher: Arc<Publisher>,
    pub token: Arc<AdminToken>,
    /// The sync feed, for the proxies it has seen.
    pub feed: Arc<crate::http::sync::SyncFeed>,
}

/// The admin API's operations, each routed at the method and path of its
/// `#[utoipa::path]` (docs/openapi.json). Every admin route is one of these:
/// [`app`] adds only the fallback and the token check. Operations on one
/// path share it in the order given here, which is the order of a 405's
/// `Allow` header.
pub fn operations() -> ApiRouter<AdminState> {
    use handlers as h;
    use identities as i;
    use proxies as p;
    use tokens as t;
    use users as u;
    ApiRouter::new()
        .operation(h::__path_create_account, h::create_account)
        .operation(h::__path_list_accounts, h::list_accounts)
        .operation(h::__path_get_account, h::get_account)
        .operation(h::__path_patch_account, h::patch_account)
        .operation(h::__path_list_entries, h::list_entries)
        .operation(h::__path_add_entry, h::add_entry)
        .operation(h::__path_remove_entry, h::remove_entry)
        .operation(i::__path_list_identities, i::list_identities)
        .operation(i::__path_add_identity, i::add_identity)
        .operation(i::__path_remove_identity, i::remove_identity)
        .operation(i::__path_list_keys, i::list_keys)
        .operation(i::__path_add_key, i::add_key)
        .operation(i::__path_remove_key, i::remove_key)
        .operation(h::__path_list_blocks, h::list_blocks)
        .operation(h::__path_add_block, h::add_block)
        .operation(h::__path_remove_block, h::remove_block)
        .operation(u::__path_create_user, u::create_user)
        .operation(u::__path_get_user, u::get_user)
        .operation(u::__path_enrol_totp, u::enrol_totp)
        .operation(t::__path_issue_token, t::issue_token)
        .operation(t::__path_list_tokens, t::list_tokens)
        .operation(t::__path_revoke_token, t::revoke_token)
        .operation(h::__path_security_log, h::security_log)
        .operation(h::__path_verify_security_log, h::verify_security_log)
        .operation(p::__path_list_proxies, p::list_proxies)
}

/// The admin routes before their state: [`operations`], a JSON 404 for
/// anything else, all behind the admin token.
pub(crate) fn app(token: Arc<AdminToken>) -> Router<AdminState> {
    operations()
        .into_router()
        .fallback(|| async { ApiError::not_found("path", "no such admin route; see docs/api.md") })
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_admin,
        ))
}

/// The admin router, Bearer-guarded.
pub fn router(state: AdminState) -> Router {
    app(state.token.clone()).with_state(state)
}
