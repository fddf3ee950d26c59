//! Small typed values that the config file spells as strings: durations,
//! networks, upstream URLs and account sources. Each parses once, at load,
//! so the rest of ipgate never sees an unchecked string.

use crate::net::{parse_cidr, NetParseError};
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A duration written like `10s`, `500ms`, `24h` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                format!("`{s}` is not a duration ({e}); write e.g. \"10s\", \"500ms\", \"24h\"")
            })
    }
}

/// A network in CIDR notation, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub IpNet);

impl TryFrom<String> for Cidr {
    type Error = NetParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_cidr(&s).map(Cidr)
    }
}

/// Where a route forwards to: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Upstream {
    /// `host:port`, as used for DNS resolution and the Host header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

impl TryFrom<String> for Upstream {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let uri: http::Uri = s.parse().map_err(|e| {
            format!("`{s}` is not a URL ({e}); write e.g. \"https://sms-api.internal:443\"")
        })?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("`{s}`: the scheme must be http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{s}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(format!(
                "`{s}`: an upstream is scheme://host:port only, without a path"
            ));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Upstream { tls, host, port })
    }
}

/// One place to look for the account id in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AccountSource {
    /// The user name of `Authorization: Basic ...`.
    BasicUser,
    /// A query parameter, e.g. `query:username`.
    Query(String),
    /// A request header, e.g. `header:X-Account-Id` (stored lower-case).
    Header(String),
    /// The N-th path segment after the route prefix (0-based), e.g. `path_segment:0`.
    PathSegment(usize),
}

impl TryFrom<String> for AccountSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        const HELP: &str = "use basic_user, query:NAME, header:NAME or path_segment:N";
        if s == "basic_user" {
            return Ok(AccountSource::BasicUser);
        }
        let (kind, arg) = s
            .split_once(':')
            .ok_or_else(|| format!("unknown account source `{s}`: {HELP}"))?;
        if arg.is_empty() {
            return Err(format!(
                "account source `{s}` needs a name after the colon: {HELP}"
            ));
        }
        match kind {
            "query" => Ok(AccountSource::Query(arg.to_string())),
            "header" => {
                http::HeaderName::from_bytes(arg.as_bytes())
                    .map_err(|_| format!("`{arg}` is not a valid header name"))?;
                Ok(AccountSource::Header(arg.to_ascii_lowercase()))
            }
            "path_segment" => arg
                .parse()
                .map(AccountSource::PathSegment)
                .map_err(|_| format!("`{arg}` is not a segment number (0, 1, ...)")),
            _ => Err(format!("unknown account source `{s}`: {HELP}")),
        }
    }
}

impl fmt::Display for AccountSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountSource::BasicUser => f.write_str("basic_user"),
            AccountSource::Query(q) => write!(f, "query:{q}"),
            AccountSource::Header(h) => write!(f, "header:{h}"),
            AccountSource::PathSegment(n) => write!(f, "path_segment:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = Upstream::try_from("https://sms-api.internal".to_string());
        assert_eq!(
            u,
            Ok(Upstream {
                tls: true,
                host: "sms-api.internal".into(),
                port: 443
            })
        );
        let u = Upstream::try_from("http://127.0.0.1:8000".to_string());
        assert_eq!(u.map(|u| u.authority()), Ok("127.0.0.1:8000".to_string()));
        assert!(Upstream::try_from("ftp://x".to_string()).is_err());
        assert!(Upstream::try_from("http://x/path".to_string()).is_err());
        assert!(Upstream::try_from("not a url".to_string()).is_err());
    }

    #[test]
    fn account_sources() {
        assert_eq!(
            AccountSource::try_from("basic_user".to_string()),
            Ok(AccountSource::BasicUser)
        );
        assert_eq!(
            AccountSource::try_from("header:X-Account-Id".to_string()),
            Ok(AccountSource::Header("x-account-id".into()))
        );
        assert_eq!(
            AccountSource::try_from("path_segment:2".to_string()),
            Ok(AccountSource::PathSegment(2))
        );
        assert!(AccountSource::try_from("cookie:x".to_string()).is_err());
        assert!(AccountSource::try_from("query:".to_string()).is_err());
        assert!(AccountSource::try_from("path_segment:x".to_string()).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            HumanDuration::try_from("10s".to_string()),
            Ok(HumanDuration(Duration::from_secs(10)))
        );
        assert!(HumanDuration::try_from("ten".to_string()).is_err());
    }
}
