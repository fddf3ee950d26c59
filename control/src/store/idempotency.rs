//! Idempotency keys of request submissions (`Idempotency-Key`, docs/api.md),
//! what both backends share: the key's rules, its stored form and its
//! lifetime.
//!
//! Keys are per account: the same key from two accounts names two
//! submissions, from two tokens of one account one. A key is stored only
//! as its SHA-256 (callers may put something of their own in it), with a
//! fingerprint of the submission it came with and the request as first
//! created, in the same atomic step as that request. Only a submission
//! that created a request is remembered: a refused one is not, so a retry
//! after fixing the cause goes through. A record lives for
//! [`KEY_LIFETIME_SECS`]; after that its key is like new, and the timed
//! jobs remove it (`sweep_idempotency_keys`), so the records kept are the
//! submissions of the last day. `ipgate store copy` does not carry them:
//! they are a day's cache of answers, not records.

use crate::domain::Timestamp;
use crate::store::IpRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The header's name, as refusals name it.
pub const HEADER: &str = "Idempotency-Key";

/// How long a key answers with its first request: 24 hours.
pub const KEY_LIFETIME_SECS: u64 = 24 * 3600;

/// The longest key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// Why an `Idempotency-Key` header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    #[error("The Idempotency-Key header is empty: send 1 to 255 printable ASCII characters, or leave the header out.")]
    Empty,
    #[error("The Idempotency-Key header is {0} characters long: at most 255.")]
    TooLong(usize),
    #[error("The Idempotency-Key header may hold only printable ASCII characters (space to `~`).")]
    NotPrintable,
}

/// A submission's key as the store keeps it: the key's hash and the
/// fingerprint of the submission it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key's SHA-256, lower-case hex.
    pub hash: String,
    /// The SHA-256 (hex) of the submission's fields as sent.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// The key the header value `raw` names (1 to [`MAX_KEY_LEN`] printable
    /// ASCII characters), for a submission of fingerprint `fingerprint`.
    pub fn parse(raw: &[u8], fingerprint: String) -> Result<IdempotencyKey, BadKey> {
        if raw.is_empty() {
            return Err(BadKey::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(BadKey::TooLong(raw.len()));
        }
        if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(BadKey::NotPrintable);
        }
        Ok(IdempotencyKey {
            hash: crate::hex::encode(&Sha256::digest(raw)),
            fingerprint,
        })
    }
}

/// The fingerprint of a submission: the SHA-256 (hex) of its fields as
/// JSON, so the same key with another body is told apart.
pub fn fingerprint<T: Serialize>(fields: &T) -> String {
    // Serialising plain fields to JSON cannot fail.
    let bytes = serde_json::to_vec(fields).unwrap_or_default();
    crate::hex::encode(&Sha256::digest(&bytes))
}

/// A stored key: what it answers, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The fingerprint of the submission that created the request.
    pub fingerprint: String,
    /// When the key was first used.
    pub created_at: Timestamp,
    /// The request as first created: the answer a repeat gets.
    pub request: IpRequest,
}

impl KeyRecord {
    /// The record of `key` for `request`, created at `now`.
    pub fn new(key: &IdempotencyKey, request: &IpRequest, now: Timestamp) -> KeyRecord {
        KeyRecord {
            fingerprint: key.fingerprint.clone(),
            created_at: now,
            request: request.clone(),
        }
    }

    /// Whether the key still answers at `now` (within its 24 hours).
    pub fn live(&self, now: Timestamp) -> bool {
        now < self.created_at.plus_secs(KEY_LIFETIME_SECS)
    }
}

/// The Unix second at or before which a record made then has expired at `now`.
pub fn expired_before(now: Timestamp) -> u64 {
    now.unix().saturating_sub(KEY_LIFETIME_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_to_255_printable_ascii_characters() {
        let ok = IdempotencyKey::parse(b"order-42 ~!", "f".into()).unwrap();
        assert_eq!(ok.hash.len(), 64);
        assert_ne!(ok.hash, crate::hex::encode(b"order-42 ~!"));
        assert!(IdempotencyKey::parse(&[b'k'; 255], String::new()).is_ok());
        assert_eq!(
            IdempotencyKey::parse(b"", String::new()),
            Err(BadKey::Empty)
        );
        assert_eq!(
            IdempotencyKey::parse(&[b'k'; 256], String::new()),
            Err(BadKey::TooLong(256))
        );
        for bad in [&b"tab\there"[..], b"nl\n", "caf\u{e9}".as_bytes(), b"\x7f"] {
            assert_eq!(
                IdempotencyKey::parse(bad, String::new()),
                Err(BadKey::NotPrintable),
                "{bad:?}"
            );
        }
    }

    fn request(at: Timestamp) -> IpRequest {
        let new = crate::store::tests::new_request(&["203.0.113.1"], &[]);
        IpRequest::new("1".into(), &new, at)
    }

    #[test]
    fn a_record_lives_for_24_hours() {
        let at = Timestamp::from_unix(1_767_225_600);
        let r = KeyRecord {
            fingerprint: "f".into(),
            created_at: at,
            request: request(at),
        };
        assert!(r.live(at));
        assert!(r.live(at.plus_secs(KEY_LIFETIME_SECS - 1)));
        assert!(!r.live(at.plus_secs(KEY_LIFETIME_SECS)));
        assert_eq!(expired_before(at.plus_secs(KEY_LIFETIME_SECS)), at.unix());
    }

    #[test]
    fn fingerprints_differ_with_any_field() {
        let a = fingerprint(&(["203.0.113.1"], "prod", None::<&str>));
        assert_eq!(a, fingerprint(&(["203.0.113.1"], "prod", None::<&str>)));
        assert_ne!(a, fingerprint(&(["203.0.113.2"], "prod", None::<&str>)));
        assert_ne!(a, fingerprint(&(["203.0.113.1"], "prod", Some("7d"))));
    }
}
