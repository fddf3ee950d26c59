//! X-Forwarded-For resolution: never panics; an untrusted peer is always
//! the client; the client is the peer or an address written in the header.
#![no_main]

use arbitrary::Arbitrary;
use ipgate_policy::client_ip::TrustedProxies;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

#[derive(Arbitrary, Debug)]
struct Input {
    trusted: Vec<(IpAddr, u8)>,
    peer: IpAddr,
    xff: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let nets: Vec<ipnet::IpNet> = input
        .trusted
        .iter()
        .filter_map(|(ip, len)| ipnet::IpNet::new(*ip, *len).ok().map(|n| n.trunc()))
        .collect();
    let trusted = TrustedProxies::new(nets);
    let client = trusted.client_ip(input.peer, input.xff.iter().map(|v| v.as_slice()));
    let peer = ipgate_config::net::canonical_ip(input.peer);
    if !trusted.contains(peer) {
        assert_eq!(client, peer, "an untrusted peer's header is never believed");
        return;
    }
    if client != peer {
        let text: String = input
            .xff
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let written = text
            .split(',')
            .filter_map(|s| {
                let s = s.trim_matches([' ', '\t']);
                s.parse::<IpAddr>()
                    .ok()
                    .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            })
            .any(|ip| ipgate_config::net::canonical_ip(ip) == client);
        assert!(
            written,
            "client {client} is neither the peer nor in {text:?}"
        );
        assert_eq!(client, ipgate_config::net::canonical_ip(client));
    }
});
