//! Pingora's `RequestHeader` as a [`Head`], the request head the decision
//! reads (the raw HTTP/1 path has its own, [`crate::raw_path::request::Parsed`]).
//! The trait lives in `ipgate-policy`, which knows nothing of Pingora, so
//! the header is wrapped in a local type to implement it.

use ipgate_policy::head::Head;
use pingora_http::RequestHeader;

/// A Pingora request header read as a [`Head`].
#[derive(Clone, Copy)]
pub struct PingoraHead<'r>(pub &'r RequestHeader);

impl<'r> Head for PingoraHead<'r> {
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.uri.query()
    }
    fn uri_host(&self) -> Option<&str> {
        self.0.uri.host()
    }
    fn values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n, 'r> {
        self.0.headers.get_all(name).iter().map(|v| v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw_path::request::{self, Read};

    /// Both paths' heads answer alike for the same request.
    #[test]
    fn answers_as_the_raw_path_does() {
        let raw = b"POST /sms/send?username=acme HTTP/1.1\r\nHost: api.example.com\r\nX-Account-Id: a\r\nx-account-id: b\r\nContent-Length: 0\r\n\r\n";
        let mut headers = request::headers();
        let Read::Ready(parsed) = request::read(raw, &mut headers, 8192, 64) else {
            panic!("the raw path reads this head");
        };
        let mut req = RequestHeader::build("POST", b"/sms/send?username=acme", None).unwrap();
        for (name, value) in [
            ("Host", "api.example.com"),
            ("X-Account-Id", "a"),
            ("x-account-id", "b"),
            ("Content-Length", "0"),
        ] {
            req.append_header(name, value).unwrap();
        }
        let pingora = PingoraHead(&req);
        assert_eq!(pingora.path(), parsed.path());
        assert_eq!(pingora.query(), parsed.query());
        assert_eq!(pingora.uri_host(), parsed.uri_host());
        for name in ["x-account-id", "X-ACCOUNT-ID", "host", "authorization"] {
            let a: Vec<&[u8]> = pingora.values(name).collect();
            let b: Vec<&[u8]> = parsed.values(name).collect();
            assert_eq!(a, b, "{name}");
            let a: Vec<&[u8]> = pingora.values(name).rev().collect();
            let b: Vec<&[u8]> = parsed.values(name).rev().collect();
            assert_eq!(a, b, "{name}, from the right");
        }
    }
}
