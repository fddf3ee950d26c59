//! CSRF values for forms without a session (link pages, the login form):
//! an HMAC under a server key kept in the store, compared in constant time.
//! Portal sessions carry a random value of their own, compared the same way.

use crate::hex;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The CSRF value for `purpose` (a link page, the login form) bound to
/// `bound_to` (the link's hash, the pre-login cookie): an HMAC under the
/// server's key, so it needs no storage.
pub fn csrf_value(key: &[u8; 32], purpose: &str, bound_to: &str) -> String {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; unreachable, and empty fails closed.
        Err(_) => return String::new(),
    };
    mac.update(purpose.as_bytes());
    mac.update(b"\n");
    mac.update(bound_to.as_bytes());
    hex::encode(&mac.finalize().into_bytes())
}

/// Constant-time comparison of a presented CSRF value with the expected one.
pub fn csrf_ok(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_values_are_bound_to_key_purpose_and_link() {
        let a = csrf_value(&[1; 32], "confirm", "h1");
        assert_eq!(a.len(), 64);
        assert!(csrf_ok(&a, &a));
        assert!(!csrf_ok(&a, &csrf_value(&[2; 32], "confirm", "h1")));
        assert!(!csrf_ok(&a, &csrf_value(&[1; 32], "login", "h1")));
        assert!(!csrf_ok(&a, &csrf_value(&[1; 32], "confirm", "h2")));
        assert!(!csrf_ok(&a, ""));
    }
}
