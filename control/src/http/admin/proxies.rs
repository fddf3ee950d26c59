//! `GET /admin/v1/proxies`: the proxies that follow this control plane's
//! sync feed, with the version each holds and how long ago it polled.

use super::AdminState;
use crate::api_error::ErrorBody;
use crate::http::sync::proxies::ProxyView;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The feed's version now and every proxy seen since this control plane
/// started.
#[derive(Debug, Serialize, ToSchema)]
pub struct Proxies {
    /// The table version the feed serves now.
    pub version: u64,
    pub proxies: Vec<ProxyView>,
}

/// The proxies following the sync feed
#[utoipa::path(
    get,
    path = "/admin/v1/proxies",
    tag = "admin",
    responses(
        (status = 200, description = "The feed's version and each proxy's last poll (kept in memory since this control plane started)", body = Proxies),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list_proxies(State(s): State<AdminState>) -> Json<Proxies> {
    let version = s.feed.current();
    Json(Proxies {
        version,
        proxies: s.feed.proxies.list(version),
    })
}
