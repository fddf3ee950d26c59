//! Credentials carried in headers: `Authorization: Basic` and `Bearer`, and
//! single-valued headers. A header given twice is refused, whatever its
//! values, because upstreams differ in which one they read.

use super::AccountError;
use crate::head::{visible_text, Head};
use base64::Engine;

/// The one value of header `name` as trimmed text. `Ok(None)`: absent.
pub fn single_header<'r, H: Head>(req: &'r H, name: &str) -> Result<Option<&'r str>, AccountError> {
    let mut values = req.values(name);
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AccountError::Repeated);
    }
    visible_text(v)
        .map(|s| Some(s.trim()))
        .ok_or(AccountError::BadAccountId)
}

/// The Authorization header's value after `scheme ` (any case), if that is
/// its scheme.
fn credentials<'r, H: Head>(req: &'r H, scheme: &str) -> Result<Option<&'r [u8]>, AccountError> {
    let mut values = req.values("authorization");
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AccountError::Repeated);
    }
    let n = scheme.len();
    match (v.get(..n), v.get(n)) {
        (Some(s), Some(b' ')) if s.eq_ignore_ascii_case(scheme.as_bytes()) => {
            Ok(Some(v[n + 1..].trim_ascii()))
        }
        _ => Ok(None),
    }
}

/// Longest decoded Basic credentials read.
const MAX_BASIC: usize = 1024;

/// Calls `f(user, password)` with decoded Basic credentials. `None`: the
/// call carries no Basic credentials.
pub fn with_basic<H: Head, R>(
    req: &H,
    f: impl FnOnce(&str, &str) -> Result<R, AccountError>,
) -> Option<Result<R, AccountError>> {
    let b64 = match credentials(req, "basic") {
        Ok(None) => return None,
        Ok(Some(b)) => b,
        Err(e) => return Some(Err(e)),
    };
    let mut buf = [0u8; MAX_BASIC];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode_slice(b64, &mut buf)
        .ok()
        .and_then(|n| std::str::from_utf8(&buf[..n]).ok())
        .and_then(|s| s.split_once(':'));
    Some(match decoded {
        Some((user, password)) => f(user, password),
        None => Err(AccountError::BadBasicAuth),
    })
}

/// The token of `Authorization: Bearer TOKEN`. `Ok(None)`: no Bearer token.
pub fn bearer<H: Head>(req: &H) -> Result<Option<&[u8]>, AccountError> {
    match credentials(req, "bearer")? {
        Some([]) => Err(AccountError::BadKey),
        other => Ok(other),
    }
}
