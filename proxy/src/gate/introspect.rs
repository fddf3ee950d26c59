//! Key introspection (RFC 7662 style) for secret keys that are not
//! registered with ipgate: `POST introspect_url` with the form body
//! `token=KEY`, answered `{"active":true,"username":"..."}`. The answer's
//! `username` (else `sub`) names the account through its identities. Answers
//! are cached by the key's SHA-256 for `introspect_ttl`, unknown keys too;
//! the key itself is never stored or logged. When the endpoint is down, slow
//! or answers nonsense, the call is refused (503), never let through.

use ipgate_policy::account::{KeyAnswers, PendingKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most answers kept; past it, expired ones are dropped, then the oldest.
const MAX_CACHED: usize = 100_000;

/// Why a key could not be introspected.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    #[error("the introspection endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the introspection endpoint did not answer in time")]
    Timeout,
    #[error("the introspection endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the introspection endpoint's answer is not an RFC 7662 answer: {0}")]
    BadAnswer(String),
    #[error("the introspection client cannot be built: {0}")]
    Client(String),
}

/// A cached answer: when it came, and the identity it named.
type Answer = (Instant, Option<Arc<str>>);

/// The client and its cache, shared by both HTTP/1 paths.
pub struct Introspector {
    url: String,
    token: Option<String>,
    ttl: Duration,
    timeout: Duration,
    client: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Answer>>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// `token`: sent as `Authorization: Bearer` to the endpoint, if given.
    pub fn new(
        url: &str,
        token: Option<String>,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Introspector, IntrospectError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IntrospectError::Client(e.to_string()))?;
        Ok(Introspector {
            url: url.to_string(),
            token,
            ttl,
            timeout,
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Asks the endpoint about `key` and caches the answer.
    pub async fn introspect(&self, key: &PendingKey) -> Result<(), IntrospectError> {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(format!("token={}", form_encode(&key.key)));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let answer = tokio::time::timeout(self.timeout, async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        })
        .await;
        let (status, bytes) = match answer {
            Err(_) => return Err(IntrospectError::Timeout),
            Ok(Err(e)) if e.is_timeout() => return Err(IntrospectError::Timeout),
            Ok(Err(e)) => return Err(IntrospectError::Unreachable(without_url(&e))),
            Ok(Ok(a)) => a,
        };
        if status != 200 {
            return Err(IntrospectError::Status(status));
        }
        let name = parse_answer(&bytes)?;
        self.remember(key.sha256, name);
        Ok(())
    }

    fn remember(&self, sha256: [u8; 32], name: Option<Arc<str>>) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if cache.len() >= MAX_CACHED {
                if let Some(oldest) = cache.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| *k) {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(sha256, (now, name));
    }
}

impl KeyAnswers for Introspector {
    fn cached(&self, sha256: &[u8; 32]) -> Option<Option<Arc<str>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (at, name) = cache.get(sha256)?;
        (at.elapsed() < self.ttl).then(|| name.clone())
    }
}

/// The account an RFC 7662 answer names: `None` for an inactive key.
fn parse_answer(bytes: &[u8]) -> Result<Option<Arc<str>>, IntrospectError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| IntrospectError::BadAnswer(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(IntrospectError::BadAnswer("not a JSON object".into()));
    };
    match obj.get("active") {
        Some(serde_json::Value::Bool(false)) => return Ok(None),
        Some(serde_json::Value::Bool(true)) => {}
        _ => {
            return Err(IntrospectError::BadAnswer(
                "`active` is not true or false".into(),
            ))
        }
    }
    let name = ["username", "sub"]
        .iter()
        .find_map(|k| obj.get(*k))
        .ok_or_else(|| {
            IntrospectError::BadAnswer("an active key without `username` or `sub`".into())
        })?;
    match name.as_str() {
        Some(s) if ipgate_policy::account::valid_account_id(s) => Ok(Some(Arc::from(s))),
        _ => Err(IntrospectError::BadAnswer(
            "`username` is not an account identity (1-128 of A-Z a-z 0-9 . _ - @ +)".into(),
        )),
    }
}

/// A reqwest error's text without its URL (which holds no key, but keep
/// error texts short and alike).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "introspect_url");
    }
    s
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const FORM_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn form_encode(key: &[u8]) -> String {
    percent_encoding::percent_encode(key, FORM_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        let ok = |s: &str| parse_answer(s.as_bytes()).map(|o| o.map(|a| a.to_string()));
        assert_eq!(
            ok(r#"{"active":true,"username":"acme"}"#).ok(),
            Some(Some("acme".into()))
        );
        assert_eq!(
            ok(r#"{"active":true,"sub":"acme-user"}"#).ok(),
            Some(Some("acme-user".into()))
        );
        assert_eq!(ok(r#"{"active":false}"#).ok(), Some(None));
        for bad in [
            r#"{"active":"yes","username":"acme"}"#,
            r#"{"active":true}"#,
            r#"{"active":true,"username":"a b"}"#,
            r#"[true]"#,
            "not json",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cached_answers_expire_and_unknown_keys_are_cached_too() {
        let i = Introspector::new(
            "http://127.0.0.1:1/",
            None,
            Duration::from_millis(50),
            Duration::from_secs(1),
        );
        let Ok(i) = i else { panic!("client") };
        i.remember([1; 32], Some(Arc::from("acme")));
        i.remember([2; 32], None);
        assert_eq!(i.cached(&[1; 32]), Some(Some(Arc::from("acme"))));
        assert_eq!(i.cached(&[2; 32]), Some(None));
        assert_eq!(i.cached(&[3; 32]), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(i.cached(&[1; 32]), None);
        assert!(!format!("{i:?}").contains("token\": Some"));
    }
}
