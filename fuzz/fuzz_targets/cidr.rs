//! IP and CIDR parsing (admin API, config, CSV import all use it): never
//! panics; what it accepts prints canonically and parses back to itself.
#![no_main]

use ipgate_config::net::parse_cidr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(net) = parse_cidr(text) {
        let canonical = net.to_string();
        assert_eq!(parse_cidr(&canonical).ok(), Some(net), "{text:?}");
        assert_eq!(
            net.trunc(),
            net,
            "host bits are refused, never kept: {text:?}"
        );
        assert!(
            !matches!(net.addr(), std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()),
            "IPv4-mapped IPv6 is folded to IPv4: {text:?}"
        );
    }
});
