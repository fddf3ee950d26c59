//! A request head read by the raw HTTP/1 path: parsed in place with
//! httparse, and taken only when it is plainly framed. Anything else goes
//! to Pingora's path, which answers it exactly as before.

use super::handoff::Handoff;
use ipgate_policy::client_ip::CLIENT_ADDRESS_HEADERS;
use ipgate_policy::head::Head;
use std::mem::MaybeUninit;

/// Header lines parsed on the stack; a head with more goes to Pingora.
pub const MAX_HEADERS: usize = 64;

/// The largest request body this path reads before forwarding (so a
/// request it sends on a stale pooled connection can be sent again).
/// Larger bodies go to Pingora's path, which streams them.
pub const MAX_BODY: usize = 64 * 1024;

/// Request headers that concern one hop only: never forwarded.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Room for the header lines, left uninitialised (initialising 64 entries
/// per request cost more than parsing them).
pub type Headers<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Room for a head's header lines.
pub fn headers<'b>() -> Headers<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// A head this path serves, borrowed from the bytes received.
pub struct Parsed<'b> {
    pub method: &'b str,
    /// The request target as sent (path and query).
    pub target: &'b str,
    path: &'b str,
    query: Option<&'b str>,
    pub headers: &'b [httparse::Header<'b>],
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// The body's length from Content-Length (0 without one).
    pub body_len: usize,
    /// The client asked to close after this request.
    pub close: bool,
}

/// What reading the start of the buffer gave.
pub enum Read<'b> {
    /// More bytes are needed.
    Partial,
    /// Not for this path: Pingora's path takes the connection from here.
    Other(Handoff),
    Ready(Parsed<'b>),
}

/// Parses the head at the start of `buf`. `max_bytes` and `max_headers`
/// are `[proxy]`'s limits: a head past them goes to Pingora's path, which
/// answers 431, as does every refusal its checks make.
pub fn read<'b>(
    buf: &'b [u8],
    headers: &'b mut Headers<'b>,
    max_bytes: usize,
    max_headers: usize,
) -> Read<'b> {
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= max_bytes => return Read::Partial,
        Ok(httparse::Status::Partial) => return Read::Other(Handoff::HeadTooLarge),
        Err(httparse::Error::TooManyHeaders) => return Read::Other(Handoff::HeadTooLarge),
        Err(_) => return Read::Other(Handoff::Unparsed),
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Read::Other(Handoff::Unparsed);
    };
    let headers: &'b [httparse::Header<'b>] = req.headers;
    if head_len > max_bytes || headers.len() > max_headers {
        return Read::Other(Handoff::HeadTooLarge);
    }
    if method == "CONNECT" || !target.starts_with('/') || !plain_target(target) {
        return Read::Other(Handoff::Target);
    }
    let mut body_len = None;
    let mut hosts = 0;
    let mut close = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            if body_len.is_some() {
                return Read::Other(Handoff::BodyLength);
            }
            match decimal(h.value) {
                Some(n) if n <= MAX_BODY => body_len = Some(n),
                _ => return Read::Other(Handoff::BodyLength),
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            // Only the two plain options; a header named here (to be
            // dropped) is Pingora's path's work.
            for token in h.value.split(|&b| b == b',') {
                match token.trim_ascii() {
                    t if t.eq_ignore_ascii_case(b"close") => close = true,
                    t if t.eq_ignore_ascii_case(b"keep-alive") => {}
                    _ => return Read::Other(Handoff::ConnectionOption),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Read::Other(Handoff::TransferEncoding);
        } else if name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("http2-settings")
        {
            return Read::Other(Handoff::Upgrade);
        }
    }
    if hosts > 1 {
        return Read::Other(Handoff::DuplicateHost);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Read::Ready(Parsed {
        method,
        target,
        path,
        query,
        headers,
        head_len,
        body_len: body_len.unwrap_or(0),
        close,
    })
}

/// True when every byte of `target` is one every URI parser accepts alike:
/// unreserved, sub-delims, `:@/?%`. Anything else goes to Pingora's path.
pub fn plain_target(target: &str) -> bool {
    target.bytes().all(plain_target_byte)
}

fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

/// A Content-Length value: digits only, no sign, no list, no overflow.
pub fn decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')),
    )
}

impl<'b> Head for Parsed<'b> {
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn uri_host(&self) -> Option<&str> {
        None // origin-form only
    }
    fn values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n, 'b> {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

impl Parsed<'_> {
    /// Writes the head sent upstream: the request line with `target` (and
    /// `query`), the client's headers in order and case except hop-by-hop
    /// ones, Host and X-Forwarded-For, then `host` and `xff` as given. From
    /// a peer that is not a trusted proxy (`trusted` false), the other
    /// headers naming a client address are dropped too.
    pub fn write_upstream_head(
        &self,
        out: &mut Vec<u8>,
        target: &str,
        query: Option<&str>,
        host: &[u8],
        xff: &[u8],
        trusted: bool,
    ) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        if let Some(q) = query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for h in self.headers {
            let n = h.name;
            if n.eq_ignore_ascii_case("host")
                || n.eq_ignore_ascii_case("x-forwarded-for")
                || HOP_BY_HOP.iter().any(|hop| n.eq_ignore_ascii_case(hop))
                || (!trusted
                    && CLIENT_ADDRESS_HEADERS
                        .iter()
                        .any(|c| n.eq_ignore_ascii_case(c)))
            {
                continue;
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\nX-Forwarded-For: ");
        out.extend_from_slice(xff);
        out.extend_from_slice(b"\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(raw: &[u8]) -> Option<(String, usize, usize, bool)> {
        let mut h = headers();
        match read(raw, &mut h, 8192, 32) {
            Read::Ready(p) => Some((p.target.to_string(), p.head_len, p.body_len, p.close)),
            _ => None,
        }
    }

    fn is_partial(raw: &[u8]) -> bool {
        let mut h = headers();
        matches!(read(raw, &mut h, 8192, 32), Read::Partial)
    }

    #[test]
    fn plain_heads_are_taken() {
        let raw = b"GET /sms/send?to=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            take(raw),
            Some(("/sms/send?to=1".into(), raw.len(), 0, false))
        );
        let raw = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        assert_eq!(take(raw), Some(("/x".into(), raw.len() - 5, 5, true)));
        assert!(is_partial(b"GET /sms HTTP/1.1\r\nHost: a\r\n"));
    }

    #[test]
    fn anything_unusual_goes_to_pingora() {
        for raw in [
            &b"GET /x HTTP/1.0\r\n\r\n"[..],
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET /x HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\n\r\n",
            b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET http://a/x HTTP/1.1\r\n\r\n",
            b"GET /x\"y HTTP/1.1\r\n\r\n",
            b"GET /x#f HTTP/1.1\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n",
        ] {
            assert_eq!(take(raw), None, "{}", String::from_utf8_lossy(raw));
            assert!(!is_partial(raw));
        }
    }

    #[test]
    fn limits_send_a_head_to_pingora() {
        let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(take(raw.as_bytes()), None);
        let mut h = headers();
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert!(matches!(
            read(long.as_bytes(), &mut h, 8192, 32),
            Read::Other(Handoff::HeadTooLarge)
        ));
    }

    #[test]
    fn the_upstream_head_drops_hop_by_hop_and_replaces_host_and_xff() {
        let raw = b"POST /sms/send HTTP/1.1\r\nHost: gw\r\nX-Account: acme\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nContent-Length: 2\r\n\r\nhi";
        let mut h = headers();
        let Read::Ready(p) = read(raw, &mut h, 8192, 32) else {
            panic!("not taken")
        };
        assert_eq!(
            p.values("x-account").collect::<Vec<_>>(),
            vec![&b"acme"[..]]
        );
        let mut out = Vec::new();
        p.write_upstream_head(
            &mut out,
            "/send",
            Some("a=1"),
            b"up:80",
            b"203.0.113.7",
            false,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /send?a=1 HTTP/1.1\r\nX-Account: acme\r\nContent-Length: 2\r\nHost: up:80\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
        );
        out.clear();
        p.write_upstream_head(&mut out, "/send", None, b"up:80", b"203.0.113.7", true);
        assert!(
            String::from_utf8_lossy(&out).contains("X-Real-IP: 6.6.6.6\r\n"),
            "kept from a trusted proxy"
        );
    }

    #[test]
    fn decimal_reads_only_plain_digits() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"65536"), Some(65536));
        for bad in [
            &b""[..],
            b"-1",
            b"1,1",
            b" 1",
            b"0x10",
            b"9999999999999999999",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
