//! Who is calling the portal listener: the caller's address (the
//! trusted-proxy rule), the [`Visitor`] of any page, and the [`Caller`] of
//! the customer API, an authenticated main user with a live token carrying
//! the scope the call's method needs.

use crate::api_error::ApiError;
use crate::domain::model::Account;
use crate::domain::tokens::{ApiToken, Scope};
use crate::domain::users::{self, Role, User};
use crate::domain::Timestamp;
use crate::http::state::CustomerState;
use crate::service::requests::Requester;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use ipgate_policy::client_ip::TrustedProxies;
use std::net::{IpAddr, SocketAddr};

/// The caller's address: the peer, or the forwarded client when the peer
/// is a trusted proxy (the same rule as the proxy's).
pub fn caller_ip(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    let xff = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes());
    Some(trusted.client_ip(peer, xff))
}

/// Who is calling: address (trusted-proxy rule) and browser.
pub struct Visitor {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl FromRequestParts<CustomerState> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CustomerState,
    ) -> Result<Visitor, ApiError> {
        let ip = caller_ip(parts, &state.trusted).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "client",
                "the caller's address is unknown",
            )
        })?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        Ok(Visitor { ip, user_agent })
    }
}

/// An authenticated main user of an account.
pub struct Caller {
    pub user: User,
    pub account: Account,
    pub ip: IpAddr,
    pub user_agent: String,
    /// The API token the call came with (none for a portal session, which
    /// may do everything its user may).
    pub token: Option<ApiToken>,
}

impl Caller {
    /// The caller as the request use cases see them.
    pub fn requester(&self) -> Requester<'_> {
        Requester {
            user: &self.user,
            account: &self.account,
            ip: self.ip,
            user_agent: &self.user_agent,
        }
    }
}

/// Why a token may not make this call: the scope its method needs
/// ([`Scope::for_method`]) is not among the token's.
fn missing_scope(token: &ApiToken, method: &axum::http::Method) -> Option<ApiError> {
    let needed = Scope::for_method(method);
    if token.allows(needed) {
        return None;
    }
    let message = match needed {
        Scope::Request => "This API token is read-only: it cannot submit or cancel requests. Ask us for a token with the `request` scope.",
        Scope::Read => "This API token cannot read: it has only the `request` scope. Ask us for a token with the `read` scope.",
    };
    Some(ApiError::new(
        StatusCode::FORBIDDEN,
        "authorization",
        message,
    ))
}

impl FromRequestParts<CustomerState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CustomerState,
    ) -> Result<Caller, ApiError> {
        let unauthorized = |m: String| ApiError::new(StatusCode::UNAUTHORIZED, "authorization", m);
        let token = crate::http::admin::bearer(&parts.headers).ok_or_else(|| {
            unauthorized("send your API token as `Authorization: Bearer TOKEN`".into())
        })?;
        let store = &state.publisher.store;
        let record = store
            .token(&users::token_hash(token))
            .await?
            .ok_or_else(|| unauthorized("this API token is not valid".into()))?;
        if record.expired(Timestamp::now()) {
            return Err(unauthorized(format!(
                "this API token expired at {}: ask us for a new one",
                record.expires_at.map(|t| t.to_string()).unwrap_or_default()
            )));
        }
        let user = store
            .user(&record.username)
            .await?
            .ok_or_else(|| unauthorized("this token's user no longer exists".into()))?;
        if user.role != Role::Main {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "authorization",
                "Only your account's main user can manage the IP whitelist; ask them, or contact us.",
            ));
        }
        if let Some(refusal) = missing_scope(&record, &parts.method) {
            return Err(refusal);
        }
        let account = store
            .account(user.account.as_str())
            .await?
            .ok_or_else(|| unauthorized("this token's account no longer exists".into()))?;
        let Visitor { ip, user_agent } = Visitor::from_request_parts(parts, state).await?;
        Ok(Caller {
            user,
            account,
            ip,
            user_agent,
            token: Some(record),
        })
    }
}
