//! Portal users: password hashing (Argon2id, OWASP parameters, off the async
//! threads), TOTP per RFC 6238 (SHA-1, 6 digits, 30 s, one step of skew,
//! each code accepted once) and API tokens (shown once, only SHA-256 kept).

use crate::domain::{AccountId, Timestamp};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// A user's role in an account: only `main` users may request IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Main,
    Sub,
}

/// A stored user. Secrets are hashes, except the TOTP seed which the
/// server needs to compute codes.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub account: AccountId,
    pub role: Role,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    /// The last TOTP time step accepted, so a code works once.
    pub totp_last_step: Option<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("account", &self.account)
            .field("role", &self.role)
            .field("password_hash", &"[redacted]")
            .field(
                "totp_secret",
                &self.totp_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// What the admin API shows of a user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub username: String,
    #[schema(value_type = String)]
    pub account: AccountId,
    pub role: Role,
    pub totp_enrolled: bool,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            username: u.username.clone(),
            account: u.account.clone(),
            role: u.role,
            totp_enrolled: u.totp_secret.is_some(),
            created_at: u.created_at,
        }
    }
}

pub const MIN_PASSWORD: usize = 12;
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")]
    Length,
    #[error("password hashing failed")]
    Hash,
}

/// Hashes a password with Argon2id (m=19456 KiB, t=2, p=1). CPU-heavy:
/// call from `spawn_blocking`.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Checks a password against its stored hash. CPU-heavy: `spawn_blocking`.
pub fn check_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    if password.len() > 4 * MAX_PASSWORD {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A fresh 160-bit TOTP seed.
pub fn new_totp_secret() -> Vec<u8> {
    rand::random::<[u8; 20]>().to_vec()
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, username: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(username),
        base32(secret),
        enc(issuer)
    )
}

fn totp(secret: &[u8]) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret.to_vec())
}

/// The code for `unix_time` (the demo's mailbox shows it).
pub fn totp_now(secret: &[u8], unix_time: u64) -> String {
    totp(secret).generate(unix_time)
}

/// Checks a 6-digit code at `unix_time` with one step of skew. Returns the
/// matching time step, which must be later than `last_step` (a code is
/// accepted once).
pub fn check_totp(
    secret: &[u8],
    code: &str,
    unix_time: u64,
    last_step: Option<u64>,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret);
    let now_step = unix_time / 30;
    let mut matched = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = t.generate(step * 30);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
            && last_step.is_none_or(|l| step > l)
        {
            matched = Some(step);
        }
    }
    matched
}

/// A new API token and the hash to store.
pub fn new_api_token() -> (String, String) {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of an API token (hex SHA-256); tokens are looked up by it.
pub fn token_hash(token: &str) -> String {
    crate::hex::encode(&token_digest(token))
}

/// A token's SHA-256.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_vectors_with_six_digits() {
        // RFC 6238 appendix B (SHA-1): 94287082 at T=59, 07081804 at T=1111111109.
        assert_eq!(totp(RFC_SECRET).generate(59), "287082");
        assert_eq!(totp(RFC_SECRET).generate(1111111109), "081804");
    }

    #[test]
    fn a_code_is_accepted_once_and_only_near_its_time() {
        let code = totp(RFC_SECRET).generate(1111111109);
        let step = check_totp(RFC_SECRET, &code, 1111111109, None);
        assert_eq!(step, Some(1111111109 / 30));
        assert_eq!(
            check_totp(RFC_SECRET, &code, 1111111109, step),
            None,
            "replay refused"
        );
        assert!(
            check_totp(RFC_SECRET, &code, 1111111109 + 30, None).is_some(),
            "one step of skew"
        );
        assert_eq!(check_totp(RFC_SECRET, &code, 1111111109 + 120, None), None);
        assert_eq!(check_totp(RFC_SECRET, "12345", 59, None), None);
        assert_eq!(check_totp(RFC_SECRET, "abcdef", 59, None), None);
    }

    #[test]
    fn passwords_hash_and_check() {
        assert!(matches!(hash_password("short"), Err(PasswordError::Length)));
        let h = hash_password("correct horse battery").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(check_password("correct horse battery", &h));
        assert!(!check_password("correct horse battery!", &h));
        assert!(!check_password("x", "not a hash"));
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let uri = otpauth_uri("ipgate", "alice@acme", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/ipgate:alice%40acme?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ipgate&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn tokens_are_random_and_only_hashed() {
        let (a, ha) = new_api_token();
        let (b, _) = new_api_token();
        assert_ne!(a, b);
        assert!(a.len() >= 43, "256 bits");
        assert_eq!(token_hash(&a), ha);
        assert_eq!(ha.len(), 64);
    }

    #[test]
    fn a_stored_user_reads_and_writes_as_before() {
        let stored = r#"{"username":"alice","account":"acme","role":"main","password_hash":"$argon2id$x","totp_secret":[1,2,3],"totp_last_step":57000000,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"}"#;
        let u: User = serde_json::from_str(stored).unwrap();
        assert_eq!(u.account, "acme");
        assert_eq!(u.updated_at.to_string(), "2026-01-02T00:00:00Z");
        assert_eq!(serde_json::to_string(&u).unwrap(), stored);
    }
}
