//! The admin Bearer token check: constant-time, on a hash of both sides so
//! neither the length nor the content of the token leaks through timing.

use crate::api_error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The operator's token, kept only as its SHA-256.
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

impl AdminToken {
    /// Refuses tokens shorter than [`MIN_TOKEN_LEN`].
    pub fn new(token: &str) -> Option<AdminToken> {
        (token.len() >= MIN_TOKEN_LEN).then(|| AdminToken(Sha256::digest(token.as_bytes()).into()))
    }

    pub fn matches(&self, presented: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&h).into()
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

pub async fn require_admin(
    State(token): State<Arc<AdminToken>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match bearer(req.headers()) {
        Some(p) if token.matches(p) => Ok(next.run(req).await),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "the admin token is wrong",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "send the admin token as `Authorization: Bearer TOKEN`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_checks() {
        assert!(AdminToken::new("short").is_none());
        let t = AdminToken::new("0123456789abcdef-long-enough");
        assert!(t
            .as_ref()
            .is_some_and(|t| t.matches("0123456789abcdef-long-enough")));
        assert!(t
            .as_ref()
            .is_some_and(|t| !t.matches("0123456789abcdef-long-enougH")));
        assert!(t.as_ref().is_some_and(|t| !t.matches("")));
        assert_eq!(format!("{:?}", t), "Some(AdminToken([redacted]))");
    }
}
