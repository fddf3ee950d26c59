//! Path normalisation before routing: percent-decoding, `.` and `..`
//! resolved, then re-encoded for the upstream. A path that would climb above
//! the root, carries bad escapes or control bytes is refused, so a request
//! can never step out of its route's prefix.
//!
//! So are paths that an upstream could read as another path than the one
//! judged (as Envoy's path options refuse them): a backslash, raw or
//! escaped, which some servers take for `/`; a dot segment with `;`
//! parameters (`..;`), which servlet containers resolve as `..`; and a path
//! whose second decoding (`%252e` -> `%2e` -> `.`) would make a dot
//! segment, a `/` or a `\`.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Bytes re-encoded in each segment sent upstream: everything but RFC 3986
/// unreserved characters, sub-delims, `:` and `@`.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with /")]
    NotAbsolute,
    #[error("the request path has an invalid percent escape")]
    BadEscape,
    #[error("the request path has control characters or is not UTF-8")]
    BadByte,
    #[error("the request path climbs above the root with ..")]
    AboveRoot,
    #[error("the request path has a backslash (raw or %5C)")]
    Backslash,
    #[error("the request path has a dot segment with parameters (such as ..;)")]
    DotParameters,
    #[error("the request path is encoded twice into a dot segment or separator")]
    DoubleEncoded,
}

/// [`normalize`], without allocating when the path is already canonical
/// (the usual case: no escapes, no `.`/`..`, no empty or re-encoded
/// segments). The proxy calls this once per request.
pub fn normalize_cow(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if is_canonical(raw) {
        Ok(Cow::Borrowed(raw))
    } else {
        normalize(raw).map(Cow::Owned)
    }
}

/// True when [`normalize`] would return `raw` unchanged.
fn is_canonical(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || is_dot(seg) || is_dot(until_params(seg)) {
            return false;
        }
        // Re-encoding must leave the segment as it is: its first chunk is
        // the whole segment itself. `%` is in SEGMENT, so an escape (which
        // decoding would change) fails this; so do control bytes.
        if let Some(chunk) = utf8_percent_encode(seg, SEGMENT).next() {
            if chunk.as_ptr() != seg.as_ptr() || chunk.len() != seg.len() {
                return false;
            }
        }
    }
    true
}

/// Normalises a request path (without query). Returns the canonical,
/// re-encoded path, which starts with `/`.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if !valid_escapes(raw) {
        return Err(PathError::BadEscape);
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::BadByte)?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(PathError::BadByte);
    }
    if decoded.contains('\\') {
        return Err(PathError::Backslash);
    }
    if decoded.split('/').any(dot_with_params) {
        return Err(PathError::DotParameters);
    }
    if decoded.contains('%') && changes_under_second_decode(&decoded) {
        return Err(PathError::DoubleEncoded);
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split('/').skip(1) {
        trailing_slash = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for seg in &stack {
        out.push('/');
        out.extend(utf8_percent_encode(seg, SEGMENT));
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

fn is_dot(seg: &str) -> bool {
    seg == "." || seg == ".."
}

/// A segment up to its first `;` (a servlet container's path parameters).
fn until_params(seg: &str) -> &str {
    seg.split(';').next().unwrap_or(seg)
}

fn dot_with_params(seg: &str) -> bool {
    seg.contains(';') && is_dot(until_params(seg))
}

/// Decoding `decoded` once more would make a `/`, a `\` or a dot segment.
fn changes_under_second_decode(decoded: &str) -> bool {
    let twice = percent_decode_str(decoded).decode_utf8_lossy();
    twice.matches('/').count() != decoded.matches('/').count()
        || twice.contains('\\')
        || twice
            .split('/')
            .any(|seg| is_dot(seg) || dot_with_params(seg))
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_and_escapes_are_resolved() {
        assert_eq!(normalize("/sms/send"), Ok("/sms/send".into()));
        assert_eq!(normalize("/sms/./send/"), Ok("/sms/send/".into()));
        assert_eq!(normalize("/sms/../waba/x"), Ok("/waba/x".into()));
        assert_eq!(normalize("/sms/%2e%2e/waba/x"), Ok("/waba/x".into()));
        assert_eq!(normalize("//sms///send"), Ok("/sms/send".into()));
        assert_eq!(normalize("/"), Ok("/".into()));
        assert_eq!(normalize("/sms/a%20b"), Ok("/sms/a%20b".into()));
        assert_eq!(normalize("/sms/%41"), Ok("/sms/A".into()));
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_one() {
        let cases = [
            "/",
            "/sms/send",
            "/sms/send/",
            "//sms",
            "/sms//send",
            "/sms/.",
            "/sms/..",
            "/./x",
            "/a%20b",
            "/a b",
            "/é",
            "/a:b@c!$&'()*+,;=",
            "/a?b",
            "/a#b",
            "/%2e",
            "sms",
            "",
            "/.hidden",
            "/..x",
            "/x/...",
            "/a\u{1}b",
            "/a\\b",
            "/..;/x",
            "/a/.;b",
            "/a;b",
        ];
        for raw in cases {
            let fast = normalize_cow(raw).map(|c| c.into_owned());
            assert_eq!(fast, normalize(raw), "{raw:?}");
        }
        assert!(matches!(normalize_cow("/sms/send"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize_cow("/sms/./send"), Ok(Cow::Owned(_))));
    }

    proptest::proptest! {
        #[test]
        fn fast_and_full_paths_agree_on_anything(raw in "(/|[a-z]|\\.|%|2|e|[ -~]|é){0,24}") {
            let fast = normalize_cow(&raw).map(|c| c.into_owned());
            proptest::prop_assert_eq!(fast, normalize(&raw));
        }
    }

    #[test]
    fn double_encoding_stays_literal_unless_it_hides_a_path() {
        assert_eq!(normalize("/sms/a%2520b"), Ok("/sms/a%2520b".into()));
        assert_eq!(normalize("/sms/x%252ejson"), Ok("/sms/x%252ejson".into()));
        for hidden in [
            "/sms/%252e%252e/waba",
            "/sms/%252E/x",
            "/sms/a%252fb",
            "/sms/a%255Cb",
            "/sms/%252e%252e%253b/x",
        ] {
            assert_eq!(normalize(hidden), Err(PathError::DoubleEncoded), "{hidden}");
        }
    }

    #[test]
    fn backslashes_and_dot_parameters_are_refused() {
        for p in ["/sms/a\\b", "/sms/a%5cb", "/sms/..%5C"] {
            assert_eq!(normalize(p), Err(PathError::Backslash), "{p}");
        }
        for p in [
            "/sms/..;/x",
            "/sms/.;a/x",
            "/sms/%2e%2e;a=b/x",
            "/sms/x/..;",
        ] {
            assert_eq!(normalize(p), Err(PathError::DotParameters), "{p}");
            assert_eq!(
                normalize_cow(p).map(|c| c.into_owned()),
                normalize(p),
                "{p}"
            );
        }
        assert_eq!(normalize("/sms/a;b/..x;y"), Ok("/sms/a;b/..x;y".into()));
    }

    #[test]
    fn refusals() {
        assert_eq!(normalize("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("/sms/../../etc"), Err(PathError::AboveRoot));
        assert_eq!(normalize("/sms/%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/sms/%"), Err(PathError::BadEscape));
        assert_eq!(normalize("/sms/%00"), Err(PathError::BadByte));
        assert_eq!(normalize("/sms/%ff"), Err(PathError::BadByte));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
    }
}
