//! The JSON bodies the proxy answers with itself: denials, refused heads,
//! upstream failures. `{"error":{"code","message","client_ip","request_id"}}`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

/// A request id: a per-process random prefix and a counter, 24 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

static NEXT: AtomicU64 = AtomicU64::new(0);
static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

impl RequestId {
    pub fn next() -> RequestId {
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The 24 lowercase hex digits.
    fn hex(self) -> [u8; 24] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let prefix = *PREFIX.get_or_init(rand::random::<u32>);
        let value = (u128::from(prefix) << 64) | u128::from(self.0);
        let mut out = [0u8; 24];
        for (i, b) in out.iter_mut().enumerate() {
            *b = DIGITS[((value >> (4 * (23 - i))) & 0xf) as usize];
        }
        out
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

/// Writes `ip` in dotted decimal to `buf`; returns the length (7..=15).
fn write_ipv4(buf: &mut [u8; 15], ip: Ipv4Addr) -> usize {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    n
}

/// Hands `f` the address as text; IPv4 (the usual case, on every call) is
/// written on the stack without `fmt`.
pub fn with_ip_text<R>(ip: IpAddr, f: impl FnOnce(&str) -> R) -> R {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let n = write_ipv4(&mut buf, v4);
            f(std::str::from_utf8(&buf[..n]).unwrap_or_default())
        }
        IpAddr::V6(v6) => f(&v6.to_string()),
    }
}

/// Appends `text` as a JSON string, escaped by serde_json.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // The usual case (every fixed code and message): nothing to escape.
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Renders an error body. `client_ip` is `None` when it is not known.
pub fn error_body(code: &str, message: &str, client_ip: Option<IpAddr>, id: RequestId) -> String {
    let mut out = Vec::with_capacity(96 + code.len() + message.len());
    write_error_body(&mut out, code, message, client_ip, id);
    // Only UTF-8 was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends an error body to `out`, directly (no JSON tree): the deny path
/// answers with it on every denied call. Keys in the same order serde_json
/// gave.
pub fn write_error_body(
    out: &mut Vec<u8>,
    code: &str,
    message: &str,
    client_ip: Option<IpAddr>,
    id: RequestId,
) {
    out.extend_from_slice(b"{\"error\":{\"client_ip\":");
    match client_ip {
        // An address's text never needs escaping.
        Some(ip) => with_ip_text(ip, |text| {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"code\":");
    push_json_str(out, code);
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, message);
    out.extend_from_slice(b",\"request_id\":\"");
    out.extend_from_slice(&id.hex());
    out.extend_from_slice(b"\"}}");
}

/// The error `code` of a call refused because ipgate is stopping
/// (`ipgate_proxy::drain`): nothing of it reached the upstream.
pub const SHUTTING_DOWN: &str = "shutting_down";
pub const SHUTTING_DOWN_MESSAGE: &str =
    "ipgate is stopping; nothing of this call was sent upstream, so it is safe to retry.";

/// Appends a whole HTTP/1.1 answer with an error body to `out` (the raw
/// HTTP/1 path's counterpart of the service's `answer`); `scratch` holds
/// the body while its length is written. To a HEAD request (`head`) the
/// answer has the same head and no body, so that a client or a front
/// proxy that pools the connection reads the next answer where it starts.
#[allow(clippy::too_many_arguments)]
pub fn write_error_answer(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    status: u16,
    code: &str,
    message: &str,
    client_ip: Option<IpAddr>,
    id: RequestId,
    close: bool,
    head: bool,
) {
    scratch.clear();
    write_error_body(scratch, code, message, client_ip, id);
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, status.into());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    write_decimal(out, scratch.len());
    out.extend_from_slice(b"\r\ncache-control: no-store\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(scratch);
    }
}

/// Appends `n` in decimal, without `fmt`.
pub fn write_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_error_answer_is_framed_by_its_length() {
        for close in [false, true] {
            let (mut out, mut scratch) = (Vec::new(), Vec::new());
            let ip = Some(IpAddr::from([203, 0, 113, 9]));
            write_error_answer(
                &mut out,
                &mut scratch,
                403,
                "ip_blocked",
                "No \"way\".",
                ip,
                RequestId(7),
                close,
                false,
            );
            let text = String::from_utf8(out).unwrap_or_default();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
            assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            assert_eq!(head.contains("connection: close"), close, "{head}");
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            assert_eq!(v["error"]["message"], "No \"way\".");
            assert_eq!(v["error"]["client_ip"], "203.0.113.9");
        }
    }

    #[test]
    fn decimals_match_display() {
        for n in [0usize, 7, 10, 403, 65_535, usize::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(String::from_utf8_lossy(&out), n.to_string());
        }
    }

    #[test]
    fn body_shape() {
        let body = error_body(
            "ip_not_whitelisted",
            "no \"quotes\" break it",
            Some(IpAddr::from([203, 0, 113, 9])),
            RequestId(5),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "ip_not_whitelisted");
        assert_eq!(v["error"]["client_ip"], "203.0.113.9");
        assert_eq!(v["error"]["message"], "no \"quotes\" break it");
        assert_eq!(v["error"]["request_id"].as_str().map(|s| s.len()), Some(24));
    }

    #[test]
    fn bodies_are_valid_json_for_any_message_and_address() {
        let odd = "tab\t nl\n cr\r bell\u{7} quote\" back\\ é ✓";
        for ip in [
            None,
            Some(IpAddr::from([0, 0, 0, 0])),
            Some(IpAddr::from([255, 255, 255, 255])),
            Some(IpAddr::from([10, 0, 100, 9])),
            Some("2001:db8::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
        ] {
            let body = error_body("no_route", odd, ip, RequestId(u64::MAX));
            let v: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert_eq!(v["error"]["message"], odd);
            assert_eq!(
                v["error"]["client_ip"].as_str().map(str::to_string),
                ip.map(|i| i.to_string())
            );
            let id = RequestId(u64::MAX).to_string();
            assert_eq!(v["error"]["request_id"], id.as_str());
            assert!(id.ends_with("ffffffffffffffff"), "{id}");
        }
    }

    #[test]
    fn ipv4_is_written_like_display() {
        for ip in [
            [0, 0, 0, 0],
            [1, 2, 3, 4],
            [9, 10, 99, 100],
            [255, 255, 255, 255],
            [127, 0, 0, 1],
        ] {
            let ip = Ipv4Addr::from(ip);
            let mut buf = [0u8; 15];
            let n = write_ipv4(&mut buf, ip);
            assert_eq!(
                std::str::from_utf8(&buf[..n]).ok(),
                Some(ip.to_string().as_str())
            );
        }
    }
}
