//! What both HTTP/1 paths send upstream about where a call came from and
//! where it goes: one rule each, so the two paths cannot drift apart.

use super::respond::with_ip_text;
use super::routes::Route;
use std::net::IpAddr;

/// Writes the `X-Forwarded-For` value to send upstream into `out`. From
/// an untrusted peer the incoming header is dropped: the upstream sees
/// only `client_ip`, the address ipgate judged. From a trusted proxy the
/// chain it sent is kept and this hop's address appended: `chain` is
/// (the trusted peer, its first `X-Forwarded-For` value), given only when
/// the peer is trusted and sent one.
pub fn forwarded_for(out: &mut Vec<u8>, chain: Option<(IpAddr, &[u8])>, client_ip: IpAddr) {
    match chain {
        Some((hop, prev)) => {
            out.extend_from_slice(prev);
            out.extend_from_slice(b", ");
            with_ip_text(hop, |t| out.extend_from_slice(t.as_bytes()));
        }
        None => with_ip_text(client_ip, |t| out.extend_from_slice(t.as_bytes())),
    }
}

/// The path to send upstream when it is not the one the client sent:
/// normalising (`normalized`) or the route's prefix stripping changed it.
/// `None`: send the target as it came.
pub fn rewritten_path<'a>(route: &Route, normalized: &'a str, sent: &str) -> Option<&'a str> {
    let forwarded = route.upstream_path(normalized);
    (forwarded != sent).then_some(forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(chain: Option<(IpAddr, &[u8])>, client: &str) -> String {
        let mut out = Vec::new();
        forwarded_for(&mut out, chain, client.parse().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_untrusted_chain_is_replaced_and_a_trusted_one_extended() {
        assert_eq!(xff(None, "203.0.113.9"), "203.0.113.9");
        assert_eq!(xff(None, "2001:db8::1"), "2001:db8::1");
        let hop: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            xff(Some((hop, b"198.51.100.7")), "198.51.100.7"),
            "198.51.100.7, 10.0.0.2"
        );
    }
}
