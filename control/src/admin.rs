//! The admin API (docs/admin-api.md) on the admin listener: accounts, direct
//! whitelist entries (IPv4/IPv6, addresses and CIDRs), account identities
//! and secret keys, the global blocklist, users and their API tokens.
//! Bearer admin token, JSON in and out. Handlers are thin: parse and check
//! input, one store change through the publisher, answer.

mod auth;
pub mod error;
mod handlers;
mod identities;
mod tokens;
mod users;

use crate::publish::Publisher;
pub use auth::{bearer, AdminToken};
use axum::routing::{delete, get, post};
use axum::Router;
use error::ApiError;
use std::sync::Arc;

#[derive(Clone)]
pub struct AdminState {
    pub publisher: Arc<Publisher>,
    pub token: Arc<AdminToken>,
}

/// The admin router, Bearer-guarded.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/admin/v1/accounts",
            post(handlers::create_account).get(handlers::list_accounts),
        )
        .route(
            "/admin/v1/accounts/{id}",
            get(handlers::get_account).patch(handlers::patch_account),
        )
        .route(
            "/admin/v1/accounts/{id}/whitelist",
            get(handlers::list_entries).post(handlers::add_entry),
        )
        .route(
            "/admin/v1/accounts/{id}/whitelist/{entry_id}",
            delete(handlers::remove_entry),
        )
        .route(
            "/admin/v1/accounts/{id}/identities",
            get(identities::list_identities).post(identities::add_identity),
        )
        .route(
            "/admin/v1/accounts/{id}/identities/{identity_id}",
            delete(identities::remove_identity),
        )
        .route(
            "/admin/v1/accounts/{id}/keys",
            get(identities::list_keys).post(identities::add_key),
        )
        .route(
            "/admin/v1/accounts/{id}/keys/{key_id}",
            delete(identities::remove_key),
        )
        .route(
            "/admin/v1/blocklist",
            get(handlers::list_blocks).post(handlers::add_block),
        )
        .route("/admin/v1/blocklist/{id}", delete(handlers::remove_block))
        .route("/admin/v1/accounts/{id}/users", post(users::create_user))
        .route("/admin/v1/users/{username}", get(users::get_user))
        .route("/admin/v1/users/{username}/totp", post(users::enrol_totp))
        .route(
            "/admin/v1/users/{username}/tokens",
            post(tokens::issue_token).get(tokens::list_tokens),
        )
        .route(
            "/admin/v1/users/{username}/tokens/{id}",
            delete(tokens::revoke_token),
        )
        .route("/admin/v1/security-log", get(handlers::security_log))
        .route(
            "/admin/v1/security-log/verify",
            get(handlers::verify_security_log),
        )
        .fallback(|| async {
            ApiError::not_found("path", "no such admin route; see docs/admin-api.md")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.token.clone(),
            auth::require_admin,
        ))
        .with_state(state)
}
