//! A network as the admin API takes it: [`parse_cidr`]'s result, shown in
//! [`IpNet`]'s normal form (`203.0.113.10/32`, `2001:db8::/64`).

use ipgate_config::net::{parse_cidr, NetParseError};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A network without host bits, IPv4-mapped IPv6 folded to IPv4.
///
/// Shown and stored as its normal form, the text entries have always been
/// written with. Read with [`parse_cidr`], the parser that checked it
/// when it was written; a stored value it refuses is a damaged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    /// A typed address or network: a bare address is a host network.
    pub fn parse(input: &str) -> Result<Cidr, NetParseError> {
        parse_cidr(input).map(Cidr)
    }

    pub fn net(self) -> IpNet {
        self.0
    }
}

impl From<Cidr> for IpNet {
    fn from(c: Cidr) -> IpNet {
        c.0
    }
}

impl FromStr for Cidr {
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Cidr, NetParseError> {
        Cidr::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_as_the_admin_api_has_always_normalised_it() {
        for (typed, shown) in [
            ("203.0.113.10", "203.0.113.10/32"),
            (" 203.0.113.0/24 ", "203.0.113.0/24"),
            ("2001:DB8:0:0::/64", "2001:db8::/64"),
            ("::ffff:192.0.2.1", "192.0.2.1/32"),
            ("2001:db8::1", "2001:db8::1/128"),
        ] {
            let c = Cidr::parse(typed).unwrap();
            assert_eq!(c.to_string(), shown);
            assert_eq!(c.to_string(), parse_cidr(typed).unwrap().to_string());
            assert_eq!(Cidr::parse(shown), Ok(c), "its own text reads back");
        }
        assert!(matches!(
            Cidr::parse("10.0.0.1/8"),
            Err(NetParseError::HostBits(..))
        ));
        assert_eq!(Cidr::parse(""), Err(NetParseError::Empty));
    }

    #[test]
    fn serde_is_the_normal_form() {
        let c = Cidr::parse("2001:db8::/64").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"2001:db8::/64\"");
        assert_eq!(
            serde_json::from_str::<Cidr>("\"2001:db8::/64\"").unwrap(),
            c
        );
        assert!(serde_json::from_str::<Cidr>("\"10.0.0.1/8\"").is_err());
        assert!(serde_json::from_str::<Cidr>("\"example\"").is_err());
    }
}
