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

/// One place in a request that names the calling account.
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
    /// A field of an `application/x-www-form-urlencoded` body, e.g. `form:username`.
    Form(String),
    /// A member of a JSON body, by RFC 6901 pointer, e.g. `json:/from`.
    Json(String),
    /// A secret key, resolved by its SHA-256.
    Key(KeySource),
}

/// Where a secret key is carried: `key:bearer`, `key:basic_password`,
/// `key:header:NAME`, `key:query:NAME`, `key:form:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Bearer,
    BasicPassword,
    /// Stored lower-case.
    Header(String),
    Query(String),
    Form(String),
}

impl AccountSource {
    /// Whether the source is read from the request body.
    pub fn reads_body(&self) -> bool {
        matches!(
            self,
            AccountSource::Form(_)
                | AccountSource::Json(_)
                | AccountSource::Key(KeySource::Form(_))
        )
    }
}

const HELP: &str = "use basic_user, query:NAME, header:NAME, path_segment:N, form:NAME, json:/POINTER, \
                    key:bearer, key:basic_password, key:header:NAME, key:query:NAME or key:form:NAME";

fn header_name(arg: &str) -> Result<String, String> {
    http::HeaderName::from_bytes(arg.as_bytes())
        .map_err(|_| format!("`{arg}` is not a valid header name"))?;
    Ok(arg.to_ascii_lowercase())
}

/// A parameter or field name: visible ASCII that needs no percent-encoding.
fn param_name(arg: &str) -> Result<String, String> {
    if arg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'[' | b']'))
    {
        Ok(arg.to_string())
    } else {
        Err(format!(
            "`{arg}` is not a plain parameter name (A-Z a-z 0-9 - _ . ~ [ ])"
        ))
    }
}

/// An RFC 6901 JSON pointer to a member: `/a/b`, with `~0` and `~1` escapes.
fn json_pointer(arg: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{arg}` is not a JSON pointer to a member (write e.g. `/from` or `/auth/username`)"
        )
    };
    if !arg.starts_with('/') || arg.len() < 2 {
        return Err(bad());
    }
    for token in arg[1..].split('/') {
        if token.is_empty() {
            return Err(bad());
        }
        let mut rest = token;
        while let Some(i) = rest.find('~') {
            match rest.as_bytes().get(i + 1) {
                Some(b'0' | b'1') => rest = &rest[i + 2..],
                _ => return Err(bad()),
            }
        }
    }
    Ok(arg.to_string())
}

fn key_source(arg: &str) -> Result<KeySource, String> {
    match arg {
        "bearer" => return Ok(KeySource::Bearer),
        "basic_password" => return Ok(KeySource::BasicPassword),
        _ => {}
    }
    let (kind, name) = arg
        .split_once(':')
        .filter(|(_, n)| !n.is_empty())
        .ok_or_else(|| format!("unknown key source `key:{arg}`: {HELP}"))?;
    match kind {
        "header" => header_name(name).map(KeySource::Header),
        "query" => param_name(name).map(KeySource::Query),
        "form" => param_name(name).map(KeySource::Form),
        _ => Err(format!("unknown key source `key:{arg}`: {HELP}")),
    }
}

impl TryFrom<String> for AccountSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
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
            "query" => param_name(arg).map(AccountSource::Query),
            "header" => header_name(arg).map(AccountSource::Header),
            "path_segment" => arg
                .parse()
                .map(AccountSource::PathSegment)
                .map_err(|_| format!("`{arg}` is not a segment number (0, 1, ...)")),
            "form" => param_name(arg).map(AccountSource::Form),
            "json" => json_pointer(arg).map(AccountSource::Json),
            "key" => key_source(arg).map(AccountSource::Key),
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
            AccountSource::Form(n) => write!(f, "form:{n}"),
            AccountSource::Json(p) => write!(f, "json:{p}"),
            AccountSource::Key(KeySource::Bearer) => f.write_str("key:bearer"),
            AccountSource::Key(KeySource::BasicPassword) => f.write_str("key:basic_password"),
            AccountSource::Key(KeySource::Header(h)) => write!(f, "key:header:{h}"),
            AccountSource::Key(KeySource::Query(q)) => write!(f, "key:query:{q}"),
            AccountSource::Key(KeySource::Form(n)) => write!(f, "key:form:{n}"),
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
        for (given, want) in [
            ("form:username", AccountSource::Form("username".into())),
            ("json:/auth/user", AccountSource::Json("/auth/user".into())),
            ("key:bearer", AccountSource::Key(KeySource::Bearer)),
            (
                "key:basic_password",
                AccountSource::Key(KeySource::BasicPassword),
            ),
            (
                "key:header:X-Api-Key",
                AccountSource::Key(KeySource::Header("x-api-key".into())),
            ),
            (
                "key:query:api_key",
                AccountSource::Key(KeySource::Query("api_key".into())),
            ),
            (
                "key:form:api_key",
                AccountSource::Key(KeySource::Form("api_key".into())),
            ),
        ] {
            let got = AccountSource::try_from(given.to_string());
            assert_eq!(got.as_ref(), Ok(&want), "{given}");
            assert_eq!(
                want.to_string().to_ascii_lowercase(),
                given.to_ascii_lowercase()
            );
        }
        for bad in [
            "json:from",
            "json:/",
            "json:/a//b",
            "json:/a~2",
            "key:cookie:x",
            "key:",
            "key:header:",
            "query:user name",
            "form:a%20b",
            "key:query:a&b",
        ] {
            assert!(AccountSource::try_from(bad.to_string()).is_err(), "{bad}");
        }
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
