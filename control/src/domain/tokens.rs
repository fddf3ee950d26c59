//! Customer API tokens: 256 random bits shown once, stored as a record
//! under the token's SHA-256 with an id, its user, its scopes and when it
//! expires. `read` lets a token call the customer API's GET routes,
//! `request` its POST routes (submit, cancel).

use crate::domain::model::fingerprint;
use crate::domain::{unix_seconds_opt, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// What a token may do: `read` (the customer API's GET routes), `request`
/// (its POST routes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The customer API's GET routes: who am I, whitelist, requests.
    Read,
    /// The customer API's POST routes: submit and cancel requests.
    Request,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Request];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Request => "request",
        }
    }

    /// The scope a call with this method needs: reading for GET and HEAD,
    /// `request` for anything that can change something.
    pub fn for_method(method: &http::Method) -> Scope {
        if method == http::Method::GET || method == http::Method::HEAD {
            Scope::Read
        } else {
            Scope::Request
        }
    }
}

/// A token's lifetime when the operator does not give one.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// The longest lifetime a token may be given.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// A stored token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub username: String,
    pub scopes: Vec<Scope>,
    /// `sha256:` and the first 12 hex digits of the token's hash.
    pub fingerprint: String,
    /// None for a token issued before tokens had records.
    pub created_at: Option<Timestamp>,
    /// None for a token issued before tokens expired: it never does.
    /// Stored as Unix seconds under `expires_unix`, as it always was.
    #[serde(rename = "expires_unix", with = "unix_seconds_opt", default)]
    pub expires_at: Option<Timestamp>,
}

impl ApiToken {
    /// A record for a token hashing to `sha256`, issued at `now`.
    pub fn new(
        username: &str,
        sha256: &[u8; 32],
        scopes: Vec<Scope>,
        now: Timestamp,
        lifetime: Duration,
    ) -> ApiToken {
        ApiToken {
            id: String::new(),
            username: username.to_string(),
            scopes,
            fingerprint: fingerprint(sha256),
            created_at: Some(now),
            expires_at: Some(now + lifetime),
        }
    }

    /// A token made before records: full scope, no expiry.
    pub fn legacy(username: &str, sha256: &[u8; 32]) -> ApiToken {
        ApiToken {
            id: String::new(),
            username: username.to_string(),
            scopes: Scope::ALL.to_vec(),
            fingerprint: fingerprint(sha256),
            created_at: None,
            expires_at: None,
        }
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn scope_names(&self) -> Vec<&'static str> {
        self.scopes.iter().map(|s| s.name()).collect()
    }
}

/// A token as the admin API lists it: no token, no hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiTokenView {
    pub id: String,
    pub username: String,
    pub scopes: Vec<Scope>,
    pub fingerprint: String,
    #[schema(value_type = Option<String>, required = true)]
    pub created_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, required = true)]
    pub expires_at: Option<Timestamp>,
    pub expired: bool,
}

impl ApiTokenView {
    pub fn of(t: &ApiToken, now: Timestamp) -> ApiTokenView {
        ApiTokenView {
            id: t.id.clone(),
            username: t.username.clone(),
            scopes: t.scopes.clone(),
            fingerprint: t.fingerprint.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            expired: t.expired(now),
        }
    }
}

/// Why an issue request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenInputError {
    #[error("give at least one scope: `read`, `request`")]
    NoScope,
    #[error(
        "unknown scope `{0}`: the scopes are `read` (GET routes) and `request` (submit and cancel)"
    )]
    UnknownScope(String),
    #[error("a lifetime is a duration such as \"90d\", \"12h\" or \"30m\", from 1s to 366d")]
    Lifetime,
}

/// Scopes by name, sorted, each once; every name must be known.
pub fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, TokenInputError> {
    let mut out = Vec::new();
    for n in names {
        let s = match n.as_str() {
            "read" => Scope::Read,
            "request" => Scope::Request,
            other => {
                return Err(TokenInputError::UnknownScope(
                    other.chars().take(40).collect(),
                ))
            }
        };
        out.push(s);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(TokenInputError::NoScope);
    }
    Ok(out)
}

/// A lifetime given as a duration string (`"90d"`): positive, at most
/// [`MAX_LIFETIME`], whole seconds.
pub fn parse_lifetime(v: &Value) -> Result<Duration, TokenInputError> {
    let text = v.as_str().ok_or(TokenInputError::Lifetime)?;
    let d = humantime::parse_duration(text.trim()).map_err(|_| TokenInputError::Lifetime)?;
    if d.as_secs() == 0 || d > MAX_LIFETIME || d.subsec_nanos() != 0 {
        return Err(TokenInputError::Lifetime);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_are_checked_sorted_and_deduplicated() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scopes(&names(&["request", "read", "read"])),
            Ok(vec![Scope::Read, Scope::Request])
        );
        assert_eq!(parse_scopes(&[]), Err(TokenInputError::NoScope));
        assert_eq!(
            parse_scopes(&names(&["read", "write"])),
            Err(TokenInputError::UnknownScope("write".into()))
        );
    }

    #[test]
    fn lifetimes_are_positive_bounded_durations() {
        assert_eq!(
            parse_lifetime(&json!("90d")),
            Ok(Duration::from_secs(90 * 86400))
        );
        assert_eq!(parse_lifetime(&json!("2s")), Ok(Duration::from_secs(2)));
        for bad in [
            json!("0s"),
            json!("-1d"),
            json!("367d"),
            json!("soon"),
            json!(90),
            json!("1500ms"),
        ] {
            assert_eq!(
                parse_lifetime(&bad),
                Err(TokenInputError::Lifetime),
                "{bad}"
            );
        }
    }

    #[test]
    fn expiry_and_scope() {
        let hash = [7u8; 32];
        let at = Timestamp::from_unix;
        let t = ApiToken::new(
            "alice",
            &hash,
            vec![Scope::Read],
            at(1_000),
            Duration::from_secs(60),
        );
        assert!(!t.expired(at(1_059)));
        assert!(t.expired(at(1_060)));
        assert!(t.allows(Scope::Read) && !t.allows(Scope::Request));
        let old = ApiToken::legacy("alice", &hash);
        assert!(!old.expired(Timestamp::MAX) && old.allows(Scope::Request));
        assert_eq!(Scope::for_method(&http::Method::GET), Scope::Read);
        assert_eq!(Scope::for_method(&http::Method::POST), Scope::Request);
        assert_eq!(Scope::for_method(&http::Method::DELETE), Scope::Request);
    }

    /// Records as the code before `Timestamp` wrote them (one issued with
    /// an expiry, one converted from before records) read as they were,
    /// and are written back in the same shape.
    #[test]
    fn stored_records_keep_their_shape() {
        let issued = r#"{"id":"12","username":"alice","scopes":["read","request"],"fingerprint":"sha256:0123456789ab","created_at":"2026-01-01T00:00:00Z","expires_unix":1774742400}"#;
        let t: ApiToken = serde_json::from_str(issued).unwrap();
        assert_eq!(t.created_at, Some(Timestamp::from_unix(1_767_225_600)));
        assert_eq!(t.expires_at, Some(Timestamp::from_unix(1_774_742_400)));
        assert_eq!(serde_json::to_string(&t).unwrap(), issued);
        let legacy = r#"{"id":"3","username":"bob","scopes":["read","request"],"fingerprint":"sha256:0123456789ab","created_at":null,"expires_unix":null}"#;
        let t: ApiToken = serde_json::from_str(legacy).unwrap();
        assert_eq!((t.created_at, t.expires_at), (None, None));
        assert!(!t.expired(Timestamp::MAX));
        assert_eq!(serde_json::to_string(&t).unwrap(), legacy);
    }
}
