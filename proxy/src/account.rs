//! Finding the calling account in a request: the route's `account_from`
//! sources in order, first hit wins. Values are checked against the same
//! account-id rule the admin API uses, so a header can never name an
//! account that could not exist.

use crate::head::{visible_text, Head};
use base64::Engine;
use ipgate_config::AccountSource;
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// Longest account id accepted anywhere.
pub const MAX_ACCOUNT_ID: usize = 128;

/// Whether `id` is a well-formed account id: 1 to 128 of `A-Z a-z 0-9 . _ - @ +`.
pub fn valid_account_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ACCOUNT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'))
}

/// Why no account could be taken from a request that tried to name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the Authorization header is not valid Basic credentials")]
    BadBasicAuth,
    #[error("the account id in the request is malformed (1-128 of A-Z a-z 0-9 . _ - @ +)")]
    BadAccountId,
}

/// The account named by the first source that has one. `rest` is the path
/// after the route prefix, for `path_segment:N`. `Ok(None)`: no source
/// named an account. `Err`: none did, and one tried with a malformed value.
pub fn extract<'a, H: Head>(
    sources: &[AccountSource],
    req: &'a H,
    rest: &'a str,
) -> Result<Option<Cow<'a, str>>, AccountError> {
    let mut problem = None;
    for source in sources {
        let found = match source {
            AccountSource::BasicUser => basic_user(req),
            AccountSource::Header(name) => header(req, name),
            AccountSource::Query(name) => query(req.query(), name),
            AccountSource::PathSegment(n) => Ok(rest
                .split('/')
                .filter(|s| !s.is_empty())
                .nth(*n)
                .map(Cow::Borrowed)),
        };
        match found {
            Ok(Some(id)) if valid_account_id(&id) => return Ok(Some(id)),
            Ok(Some(_)) => problem = problem.or(Some(AccountError::BadAccountId)),
            Ok(None) => {}
            Err(e) => problem = problem.or(Some(e)),
        }
    }
    match problem {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

fn header<'a, H: Head>(req: &'a H, name: &str) -> Result<Option<Cow<'a, str>>, AccountError> {
    let mut values = req.values(name);
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Two values for one account header: ambiguous, never guess.
        return Err(AccountError::BadAccountId);
    }
    visible_text(v)
        .map(|s| Some(Cow::Borrowed(s.trim())))
        .ok_or(AccountError::BadAccountId)
}

fn basic_user<H: Head>(req: &H) -> Result<Option<Cow<'_, str>>, AccountError> {
    let mut values = req.values("authorization");
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AccountError::BadBasicAuth);
    }
    let Some(scheme) = v.get(..6) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return Ok(None); // a Bearer token or similar: not ours to read
    }
    let b64 = v[6..].trim_ascii();
    let mut buf = [0u8; 3 * MAX_ACCOUNT_ID];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(b64, &mut buf)
        .map_err(|_| AccountError::BadBasicAuth)?;
    let decoded = std::str::from_utf8(&buf[..n]).map_err(|_| AccountError::BadBasicAuth)?;
    let (user, _password) = decoded.split_once(':').ok_or(AccountError::BadBasicAuth)?;
    Ok(Some(Cow::Owned(user.to_string())))
}

fn query<'a>(q: Option<&'a str>, name: &str) -> Result<Option<Cow<'a, str>>, AccountError> {
    let Some(q) = q else { return Ok(None) };
    let mut found = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(AccountError::BadAccountId);
            }
            found = Some(v);
        }
    }
    match found {
        None => Ok(None),
        Some(v) => percent_decode_str(v)
            .decode_utf8()
            .map(Some)
            .map_err(|_| AccountError::BadAccountId),
    }
}

#[cfg(test)]
mod tests;
