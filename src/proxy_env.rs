//! `http_proxy`, `https_proxy` and `no_proxy` as curl reads them, for
//! `ipgate check-network`.

use std::fmt;

/// An HTTP proxy to go through.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProxy {
    pub host: String,
    pub port: u16,
    /// `user:password` from the URL, sent as Basic `Proxy-Authorization`.
    pub credentials: Option<String>,
}

impl fmt::Display for HttpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the credentials.
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

/// The proxy settings of the environment.
#[derive(Debug, Default)]
pub struct ProxyEnv {
    http: Option<String>,
    https: Option<String>,
    no_proxy: Vec<String>,
}

impl ProxyEnv {
    pub fn from_env() -> ProxyEnv {
        let var = |lower: &str, upper: &str| {
            std::env::var(lower)
                .or_else(|_| std::env::var(upper))
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        ProxyEnv {
            http: var("http_proxy", "HTTP_PROXY"),
            https: var("https_proxy", "HTTPS_PROXY"),
            no_proxy: var("no_proxy", "NO_PROXY")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().trim_start_matches('.').to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The proxy for `host` (over TLS or not), none when `no_proxy` covers
    /// it, or why the proxy setting cannot be used.
    pub fn for_host(&self, host: &str, tls: bool) -> Result<Option<HttpProxy>, String> {
        let (name, value) = if tls {
            ("https_proxy", &self.https)
        } else {
            ("http_proxy", &self.http)
        };
        let Some(value) = value else { return Ok(None) };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let bypassed = self.no_proxy.iter().any(|n| {
            n == "*" || host == *n || host.ends_with(&format!(".{n}")) || cidr_has(n, &host)
        });
        if bypassed {
            return Ok(None);
        }
        parse_proxy(value)
            .map(Some)
            .map_err(|e| format!("{name}=`{}`: {e}", redact(value)))
    }
}

fn cidr_has(net: &str, host: &str) -> bool {
    match (
        net.parse::<ipnet::IpNet>(),
        host.parse::<std::net::IpAddr>(),
    ) {
        (Ok(n), Ok(ip)) => n.contains(&ip),
        _ => false,
    }
}

fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((before, after)) => {
            let scheme = before.split_once("://").map(|(s, _)| s).unwrap_or("");
            format!("{scheme}://***@{after}")
        }
        None => url.to_string(),
    }
}

fn parse_proxy(url: &str) -> Result<HttpProxy, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "only http:// proxies are supported, not {scheme}://"
            ))
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, hostport) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c.to_string()), h),
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => return Err(format!("`{p}` is not a port")),
        },
        _ => (hostport, 80),
    };
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err("expected http://[user:password@]host[:port]".to_string());
    }
    Ok(HttpProxy {
        host: host.to_string(),
        port,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(http: Option<&str>, https: Option<&str>, no: &[&str]) -> ProxyEnv {
        ProxyEnv {
            http: http.map(str::to_string),
            https: https.map(str::to_string),
            no_proxy: no.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_scheme_picks_the_variable_and_no_proxy_bypasses() {
        let e = env(
            Some("http://proxy:3128"),
            Some("user:pw@secure-proxy:8080"),
            &["internal.test", "10.0.0.0/8"],
        );
        let p = e.for_host("sms.example.com", false).ok().flatten();
        assert_eq!(p.map(|p| (p.host, p.port)), Some(("proxy".into(), 3128)));
        let p = e.for_host("sms.example.com", true).ok().flatten();
        assert_eq!(
            p.as_ref().map(|p| p.credentials.clone()),
            Some(Some("user:pw".into()))
        );
        assert_eq!(
            p.map(|p| p.to_string()).as_deref(),
            Some("http://secure-proxy:8080")
        );
        assert_eq!(e.for_host("api.internal.test", false), Ok(None));
        assert_eq!(e.for_host("internal.test", false), Ok(None));
        assert_eq!(e.for_host("10.1.2.3", false), Ok(None));
        assert!(e
            .for_host("notinternal.test", false)
            .ok()
            .flatten()
            .is_some());
        assert_eq!(env(None, None, &[]).for_host("x", true), Ok(None));
        assert_eq!(
            env(Some("http://p"), None, &["*"]).for_host("x", false),
            Ok(None)
        );
    }

    #[test]
    fn bad_proxy_urls_are_named_without_their_password() {
        let e = env(
            Some("socks5://u:secret@p:1080"),
            Some("http://p:notaport"),
            &[],
        );
        let err = e.for_host("x", false).err().unwrap_or_default();
        assert!(err.contains("only http:// proxies"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = e.for_host("x", true).err().unwrap_or_default();
        assert!(err.contains("not a port"), "{err}");
        assert_eq!(
            parse_proxy("http://[::1]:3128/").map(|p| (p.host, p.port)),
            Ok(("::1".to_string(), 3128))
        );
    }
}
