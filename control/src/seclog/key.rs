//! The security log's key: HMAC-SHA256 over each record, with a key kept
//! outside the store (`IPGATE_LOG_KEY` or `store.log_key_file`), so whoever
//! can write the store but not read the key cannot rebuild the chain.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted, in bytes (`openssl rand -hex 32` gives 64).
pub const MIN_KEY_LEN: usize = 32;

/// Hex digits of a key's id.
const ID_HEX: usize = 16;

/// The key records are authenticated with. Its id, an HMAC of a fixed
/// label under the key, names it in records and answers without telling
/// anything about it.
#[derive(Clone)]
pub struct LogKey {
    mac: HmacSha256,
    id: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogKey({}, [redacted])", self.id)
    }
}

/// Why a log key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogKeyError {
    #[error("the security log key is too short: use at least {MIN_KEY_LEN} characters (e.g. `openssl rand -hex 32`)")]
    TooShort,
}

impl LogKey {
    /// A key from its secret bytes, at least [`MIN_KEY_LEN`] of them.
    pub fn new(secret: &[u8]) -> Result<LogKey, LogKeyError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(LogKeyError::TooShort);
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| LogKeyError::TooShort)?;
        let mut key = LogKey {
            mac,
            id: String::new(),
        };
        let full = crate::hex::encode(&key.tag(&[b"ipgate security log key id"]));
        key.id = full[..ID_HEX].to_string();
        Ok(key)
    }

    /// Names the key (16 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of the parts, in order.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Two hashes (hex) compared in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_named_and_redacted() {
        assert_eq!(LogKey::new(b"short").err(), Some(LogKeyError::TooShort));
        let a = LogKey::new(&[b'a'; 32]).unwrap();
        let b = LogKey::new(&[b'b'; 32]).unwrap();
        assert_eq!(a.id().len(), 16);
        assert_ne!(a.id(), b.id());
        assert_ne!(a.tag(&[b"x"]), b.tag(&[b"x"]));
        assert_eq!(a.tag(&[b"x", b"y"]), a.tag(&[b"xy"]));
        assert!(!format!("{a:?}").contains("aaaa"));
        assert!(same("ab", "ab") && !same("ab", "ac") && !same("ab", "abc"));
    }
}
