//! Reading one parameter from a query string or a form body
//! (`application/x-www-form-urlencoded`), strictly: a name given twice, or a
//! key that only names the parameter after percent-decoding or in another
//! letter case, is refused, because upstreams differ in how they read those
//! and a caller could then name one account to ipgate and another upstream.

use super::AccountError;
use percent_encoding::percent_decode;
use std::borrow::Cow;

/// The value of parameter `name` in `pairs` (`a=1&b=2`), decoded (`+` is a
/// space, then percent-decoding, then UTF-8). `Ok(None)`: not given.
pub fn find<'a>(pairs: &'a [u8], name: &str) -> Result<Option<Cow<'a, str>>, AccountError> {
    let mut found = None;
    for pair in pairs.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if k == name.as_bytes() {
            if found.is_some() {
                return Err(AccountError::Repeated);
            }
            found = Some(v);
        } else if disguises(k, name) {
            return Err(AccountError::DisguisedName);
        }
    }
    found.map(decode).transpose()
}

/// Whether key `k`, not byte-equal to `name`, reads as `name` once decoded
/// or with letter case ignored.
fn disguises(k: &[u8], name: &str) -> bool {
    if k.len() < name.len() {
        return false;
    }
    let mut decoded = percent_decode(k);
    let mut want = name.bytes();
    loop {
        match (decoded.next(), want.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
}

/// A form-encoded value as text.
pub fn decode(v: &[u8]) -> Result<Cow<'_, str>, AccountError> {
    if !v.iter().any(|&b| b == b'+' || b == b'%') {
        return std::str::from_utf8(v)
            .map(Cow::Borrowed)
            .map_err(|_| AccountError::BadEncoding);
    }
    let spaced: Vec<u8> = v
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| AccountError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(q: &str) -> Result<Option<String>, AccountError> {
        find(q.as_bytes(), "username").map(|o| o.map(Cow::into_owned))
    }

    #[test]
    fn a_plain_parameter_is_read_and_decoded() {
        assert_eq!(get("a=1&username=acme"), Ok(Some("acme".into())));
        assert_eq!(get("username=acme%2Bprod&b"), Ok(Some("acme+prod".into())));
        assert_eq!(get("username=a+b"), Ok(Some("a b".into())));
        assert_eq!(get("user=acme&&x"), Ok(None));
        assert_eq!(get(""), Ok(None));
        assert_eq!(get("username"), Ok(Some(String::new())));
    }

    #[test]
    fn ambiguous_names_are_refused() {
        assert_eq!(get("username=a&username=b"), Err(AccountError::Repeated));
        assert_eq!(get("username=a&username=a"), Err(AccountError::Repeated));
        assert_eq!(get("user%6Eame=acme"), Err(AccountError::DisguisedName));
        assert_eq!(
            get("username=globex&user%6eame=acme"),
            Err(AccountError::DisguisedName)
        );
        assert_eq!(get("UserName=acme"), Err(AccountError::DisguisedName));
        assert_eq!(get("%75sername=acme"), Err(AccountError::DisguisedName));
        assert_eq!(get("username=%ff"), Err(AccountError::BadEncoding));
        // Longer or other names are simply other parameters.
        assert_eq!(get("usernames=a&user=b&username2=c"), Ok(None));
    }
}
