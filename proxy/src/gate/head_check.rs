//! Checks on the request head that Pingora's parser lets through: size
//! limits (431) and ambiguous framing (400). Pingora drops Content-Length
//! when Transfer-Encoding is present, so that case is found in the raw head.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use pingora_http::RequestHeader;

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is larger than this gateway accepts")]
    TooLarge,
    #[error("the request has more header lines than this gateway accepts")]
    TooManyHeaders,
    #[error("the request has both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("the request has conflicting Content-Length values")]
    ConflictingLength,
    #[error("the request has more than one Host header")]
    DuplicateHost,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => "headers_too_large",
            _ => "bad_request",
        }
    }
}

/// Limits from `[proxy]`.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_bytes: usize,
    pub max_headers: usize,
}

/// Checks one head. `raw` is the head as received, when available (HTTP/1).
pub fn check(req: &RequestHeader, raw: Option<&[u8]>, limits: HeadLimits) -> Result<(), HeadError> {
    if let Some(raw) = raw {
        if raw.len() > limits.max_bytes {
            return Err(HeadError::TooLarge);
        }
    }
    if req.headers.len() > limits.max_headers {
        return Err(HeadError::TooManyHeaders);
    }
    let mut lengths = req.headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.any(|v| v != first) || first.as_bytes().contains(&b',') {
            return Err(HeadError::ConflictingLength);
        }
    }
    if req.headers.contains_key(TRANSFER_ENCODING) && raw.is_some_and(has_content_length_line) {
        return Err(HeadError::LengthAndChunked);
    }
    if req.headers.get_all(HOST).iter().nth(1).is_some() {
        return Err(HeadError::DuplicateHost);
    }
    Ok(())
}

fn has_content_length_line(raw: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length";
    raw.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.len() > NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/sms/send", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }
    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 200,
        max_headers: 3,
    };

    #[test]
    fn limits_give_431() {
        let r = req(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        assert_eq!(check(&r, None, LIMITS), Err(HeadError::TooManyHeaders));
        assert_eq!(
            check(&req(&[]), Some(&[b'x'; 201]), LIMITS),
            Err(HeadError::TooLarge)
        );
        assert_eq!(HeadError::TooLarge.status(), 431);
    }

    #[test]
    fn ambiguous_framing_gives_400() {
        let r = req(&[("content-length", "5"), ("content-length", "6")]);
        assert_eq!(check(&r, None, LIMITS), Err(HeadError::ConflictingLength));
        let r = req(&[("content-length", "5, 6")]);
        assert_eq!(check(&r, None, LIMITS), Err(HeadError::ConflictingLength));
        // Pingora has already removed Content-Length from the parsed head here.
        let r = req(&[("transfer-encoding", "chunked")]);
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            check(&r, Some(raw), LIMITS),
            Err(HeadError::LengthAndChunked)
        );
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(check(&r, Some(raw), LIMITS), Ok(()));
        let r = req(&[("host", "a"), ("host", "b")]);
        assert_eq!(check(&r, None, LIMITS), Err(HeadError::DuplicateHost));
    }

    #[test]
    fn identical_lengths_are_fine() {
        let r = req(&[("content-length", "5"), ("content-length", "5")]);
        assert_eq!(check(&r, None, LIMITS), Ok(()));
    }
}
