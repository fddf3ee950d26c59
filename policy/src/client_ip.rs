//! Which address a request comes from. The socket peer, unless the peer is
//! a trusted proxy: then `X-Forwarded-For` is walked from the right,
//! skipping trusted hops, and the first untrusted address is the client.
//! A malformed header is ignored (the peer is used), so a client can never
//! pick its own address by sending garbage.

use ipgate_config::net::canonical_ip;
use ipnet::IpNet;
use std::net::IpAddr;

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Resolves the client address. `xff` holds every `X-Forwarded-For`
    /// header value in the order received.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        xff: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let peer = canonical_ip(peer);
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut leftmost = peer;
        for value in xff.rev() {
            let Ok(text) = std::str::from_utf8(value) else {
                return peer;
            };
            for hop in text.rsplit(',') {
                let Some(ip) = parse_hop(hop) else {
                    return peer;
                };
                if !self.contains(ip) {
                    return ip;
                }
                leftmost = ip;
            }
        }
        // Every hop was a trusted proxy: the request started inside them.
        leftmost
    }
}

/// One hop: an address, optionally with a port (`1.2.3.4:5`, `[2001:db8::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches(|c| c == ' ' || c == '\t');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical_ip(sa.ip()));
    }
    None
}

/// Headers that name the client's address besides `X-Forwarded-For`.
/// From a peer that is not a trusted proxy they are the caller's own words:
/// both HTTP/1 paths drop them, so the upstream never reads an address
/// ipgate did not decide on. From a trusted proxy they are passed on.
pub const CLIENT_ADDRESS_HEADERS: [&str; 7] = [
    "x-real-ip",
    "forwarded",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test ip {s}"))
    }
    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().filter_map(|s| s.parse().ok()).collect())
    }
    fn resolve(t: &TrustedProxies, peer: &str, headers: &[&str]) -> IpAddr {
        t.client_ip(ip(peer), headers.iter().map(|h| h.as_bytes()))
    }

    #[test]
    fn untrusted_peer_cannot_forge_forwarded_for() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "198.51.100.7", &["203.0.113.10"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(
                &TrustedProxies::default(),
                "198.51.100.7",
                &["203.0.113.10"]
            ),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "10.0.0.1", &["1.1.1.1, 203.0.113.10, 10.0.0.9"]),
            ip("203.0.113.10")
        );
        assert_eq!(
            resolve(&t, "10.0.0.1", &["1.1.1.1", "203.0.113.10:443"]),
            ip("203.0.113.10")
        );
        assert_eq!(
            resolve(&t, "10.0.0.1", &["10.1.1.1, 10.2.2.2"]),
            ip("10.1.1.1")
        );
        assert_eq!(resolve(&t, "10.0.0.1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_header_falls_back_to_peer() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "10.0.0.1", &["203.0.113.10, junk"]),
            ip("10.0.0.1")
        );
        assert_eq!(resolve(&t, "10.0.0.1", &["203.0.113.10,,"]), ip("10.0.0.1"));
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), [&b"\xff\xfe"[..]].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_addresses_are_folded() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "::ffff:10.0.0.1", &["::ffff:203.0.113.10"]),
            ip("203.0.113.10")
        );
        assert_eq!(
            resolve(&TrustedProxies::default(), "::ffff:198.51.100.7", &[]),
            ip("198.51.100.7")
        );
    }
}
