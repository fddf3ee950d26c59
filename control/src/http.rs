//! The portal listener: the customer API (`customer_api`, and the
//! account's own security log in `customer_log`), the emailed
//! link pages (`links`, and "this wasn't me" in `disown_page`) and the customer portal (`portal`), over one shared
//! state (`state`) and one set of extractors (`extract`). This is the one
//! place their routes are merged.

pub mod admin;
pub mod blocked_calls;
pub mod csrf;
pub mod customer_api;
pub mod customer_log;
pub mod disown_page;
pub mod extract;
pub mod links;
pub mod openapi;
pub mod portal;
pub mod state;
pub mod sync;

use crate::api_error::ApiError;
use axum::Router;
use state::CustomerState;

/// The whole portal listener: customer API, link pages, portal pages, and
/// a JSON 404 for anything else.
pub fn router(state: CustomerState) -> Router {
    app().with_state(state)
}

/// The portal listener's routes before their state.
pub(crate) fn app() -> Router<CustomerState> {
    Router::new()
        .merge(customer_api::routes())
        .merge(links::routes())
        .merge(disown_page::routes())
        .merge(portal::routes())
        .fallback(|| async { ApiError::not_found("path", "no such API route") })
}
