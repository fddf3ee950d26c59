//! The JSON bodies the proxy answers with itself: denials, refused heads,
//! upstream failures. `{"error":{"code","message","client_ip","request_id"}}`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A request id: a per-process random prefix and a counter, 24 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

static NEXT: AtomicU64 = AtomicU64::new(0);
static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

impl RequestId {
    pub fn next() -> RequestId {
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = PREFIX.get_or_init(rand::random::<u32>);
        write!(f, "{prefix:08x}{:016x}", self.0)
    }
}

/// Renders an error body. `client_ip` is `None` when it is not known.
pub fn error_body(code: &str, message: &str, client_ip: Option<IpAddr>, id: RequestId) -> String {
    let ip = client_ip.map(|ip| ip.to_string());
    serde_json::json!({
        "error": {
            "code": code,
            "message": message,
            "client_ip": ip,
            "request_id": id.to_string(),
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let body = error_body(
            "ip_not_whitelisted",
            "no \"quotes\" break it",
            Some(IpAddr::from([203, 0, 113, 9])),
            RequestId(5),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "ip_not_whitelisted");
        assert_eq!(v["error"]["client_ip"], "203.0.113.9");
        assert_eq!(v["error"]["message"], "no \"quotes\" break it");
        assert_eq!(v["error"]["request_id"].as_str().map(|s| s.len()), Some(24));
    }
}
