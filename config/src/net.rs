//! Parsing of the IP addresses and networks that users type: config keys,
//! admin API bodies and the self-service form all go through here, so every
//! entry point refuses the same inputs with the same words.

use ipnet::IpNet;
use std::net::IpAddr;

/// Why a typed address or network was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetParseError {
    #[error("empty value: expected an IP address or CIDR such as 203.0.113.10 or 2001:db8::/64")]
    Empty,
    #[error("`{0}` is not an IP address or CIDR (examples: 203.0.113.10, 203.0.113.0/24, 2001:db8::/64)")]
    Syntax(String),
    #[error("`{0}` has host bits set; did you mean {1}?")]
    HostBits(String, IpNet),
    #[error("`{0}` has a leading zero in an IPv4 octet, which is ambiguous; write it without leading zeros")]
    LeadingZero(String),
}

/// Folds an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) into the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses a single address or a network in CIDR notation. A bare address
/// becomes a host network (/32 or /128). Refuses host bits outside the
/// prefix (`10.0.0.1/8`) instead of silently widening or narrowing what the
/// operator meant. IPv4-mapped IPv6 inputs are folded to IPv4.
pub fn parse_cidr(input: &str) -> Result<IpNet, NetParseError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(NetParseError::Empty);
    }
    let (addr_part, prefix) = match s.split_once('/') {
        Some((a, p)) => {
            let p: u8 = p
                .parse()
                .map_err(|_| NetParseError::Syntax(s.to_string()))?;
            (a, Some(p))
        }
        None => (s, None),
    };
    if addr_part.contains('.') && !addr_part.contains(':') {
        check_no_leading_zero(addr_part, s)?;
    }
    let addr: IpAddr = addr_part
        .parse()
        .map_err(|_| NetParseError::Syntax(s.to_string()))?;
    let (addr, prefix) = match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => match prefix {
                Some(p) if p < 96 => return Err(NetParseError::Syntax(s.to_string())),
                p => (IpAddr::V4(v4), p.map(|p| p - 96)),
            },
            None => (addr, prefix),
        },
        IpAddr::V4(_) => (addr, prefix),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    let net = IpNet::new(addr, prefix).map_err(|_| NetParseError::Syntax(s.to_string()))?;
    if net.trunc() != net {
        return Err(NetParseError::HostBits(s.to_string(), net.trunc()));
    }
    Ok(net)
}

fn check_no_leading_zero(addr: &str, whole: &str) -> Result<(), NetParseError> {
    for octet in addr.split('.') {
        if octet.len() > 1 && octet.starts_with('0') {
            return Err(NetParseError::LeadingZero(whole.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn bare_addresses_become_host_networks() {
        assert_eq!(
            parse_cidr("203.0.113.10").map(|n| n.to_string()),
            Ok("203.0.113.10/32".into())
        );
        assert_eq!(
            parse_cidr("2001:db8::1").map(|n| n.to_string()),
            Ok("2001:db8::1/128".into())
        );
    }

    #[test]
    fn mapped_ipv6_is_folded_to_ipv4() {
        assert_eq!(
            parse_cidr("::ffff:198.51.100.7").map(|n| n.to_string()),
            Ok("198.51.100.7/32".into())
        );
        assert_eq!(
            parse_cidr("::ffff:198.51.100.0/120").map(|n| n.to_string()),
            Ok("198.51.100.0/24".into())
        );
        assert_eq!(
            canonical_ip(
                "::ffff:1.2.3.4"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ),
            IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))
        );
    }

    #[test]
    fn refuses_garbage_host_bits_and_leading_zeros() {
        assert!(matches!(parse_cidr(""), Err(NetParseError::Empty)));
        assert!(matches!(
            parse_cidr("10.0.0.0/33"),
            Err(NetParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_cidr("not-an-ip"),
            Err(NetParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_cidr("10.0.0.1/8"),
            Err(NetParseError::HostBits(_, _))
        ));
        assert!(matches!(
            parse_cidr("010.0.0.1"),
            Err(NetParseError::LeadingZero(_))
        ));
        assert!(matches!(
            parse_cidr("1.2.3.4/"),
            Err(NetParseError::Syntax(_))
        ));
    }
}
