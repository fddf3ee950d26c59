//! Routes: which upstream a request goes to, by Host and path prefix, and
//! where its account is named. Upstream addresses are resolved once at
//! start so a request never waits on DNS.

use ipgate_config::{AccountSource, RouteConfig};
use pingora_core::upstreams::peer::HttpPeer;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Why routes could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("route `{route}`: upstream {upstream} {reason}")]
pub struct RouteError {
    pub route: String,
    pub upstream: String,
    pub reason: String,
}

/// One configured route, ready to serve.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    host: Option<String>,
    prefix: Option<String>,
    strip_prefix: bool,
    pub sources: Vec<AccountSource>,
    /// A source reads the body (`form:`, `json:`, `key:form:`).
    pub reads_body: bool,
    /// The Host header sent upstream, made once (cloning it is a refcount).
    pub upstream_host: http::HeaderValue,
    /// How the raw HTTP/1 path reaches the upstream; `None` for a TLS
    /// upstream, which only Pingora's path serves.
    pub plain: Option<PlainUpstream>,
    peer: HttpPeer,
}

/// A plain-HTTP upstream: its resolved address and the route's timeouts.
#[derive(Debug, Clone, Copy)]
pub struct PlainUpstream {
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    /// For each read of the answer and each write of the request.
    pub read_timeout: Duration,
}

impl Route {
    /// The peer for one request: a clone of the template (pooled connections
    /// are shared by peers that hash alike).
    pub fn peer(&self) -> Box<HttpPeer> {
        Box::new(self.peer.clone())
    }

    /// The path sent upstream for normalised `path`, after `strip_prefix`.
    pub fn upstream_path<'a>(&self, path: &'a str) -> &'a str {
        match (&self.prefix, self.strip_prefix) {
            (Some(prefix), true) => {
                let rest = path.get(prefix.len().saturating_sub(1)..).unwrap_or("/");
                if rest.starts_with('/') {
                    rest
                } else {
                    "/"
                }
            }
            _ => path,
        }
    }

    /// The part of `path` after the prefix, for `path_segment:N`.
    pub fn rest<'a>(&self, path: &'a str) -> &'a str {
        match &self.prefix {
            Some(prefix) => path.get(prefix.len()..).unwrap_or(""),
            None => path,
        }
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        match &self.prefix {
            Some(prefix) => {
                path.starts_with(prefix.as_str()) || prefix.strip_suffix('/') == Some(path)
            }
            None => true,
        }
    }
}

/// All routes, tried in config order.
#[derive(Debug)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Resolves every upstream now; an unresolvable one is an error naming the route.
    pub fn build(configs: &[RouteConfig]) -> Result<Routes, RouteError> {
        configs
            .iter()
            .map(build_route)
            .collect::<Result<Vec<_>, _>>()
            .map(Routes)
    }

    /// The first route that matches, with its index.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<(usize, &Route)> {
        let host = host.map(strip_port);
        self.0
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(host, path))
    }

    pub fn get(&self, idx: usize) -> Option<&Route> {
        self.0.get(idx)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|r| r.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn build_route(c: &RouteConfig) -> Result<Route, RouteError> {
    let err = |reason: String| RouteError {
        route: c.name.clone(),
        upstream: c.upstream.to_string(),
        reason,
    };
    let addr = (c.upstream.host.as_str(), c.upstream.port)
        .to_socket_addrs()
        .map_err(|e| err(format!("does not resolve: {e}")))?
        .next()
        .ok_or_else(|| err("resolves to no address".into()))?;
    let mut peer = HttpPeer::new(addr, c.upstream.tls, c.upstream.host.clone());
    peer.options.connection_timeout = Some(c.connect_timeout.0);
    peer.options.total_connection_timeout = Some(c.connect_timeout.0 * 2);
    peer.options.read_timeout = Some(c.read_timeout.0);
    peer.options.write_timeout = Some(c.read_timeout.0);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    let authority = c.upstream.authority();
    let upstream_host = http::HeaderValue::from_str(&authority).map_err(|_| RouteError {
        route: c.name.clone(),
        upstream: authority.clone(),
        reason: "is not a valid Host header value".into(),
    })?;
    Ok(Route {
        name: c.name.clone(),
        host: c.host.clone(),
        prefix: c.path_prefix.clone(),
        strip_prefix: c.strip_prefix,
        sources: c.account_from.clone(),
        reads_body: c.reads_body(),
        upstream_host,
        plain: (!c.upstream.tls).then_some(PlainUpstream {
            addr,
            connect_timeout: c.connect_timeout.0,
            read_timeout: c.read_timeout.0,
        }),
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipgate_config::Config;

    fn routes() -> Routes {
        let text = r#"
            [[proxy.route]]
            name = "sms"
            path_prefix = "/sms/"
            strip_prefix = true
            upstream = "http://127.0.0.1:7001"
            [[proxy.route]]
            name = "waba"
            host = "waba.example.com"
            upstream = "http://127.0.0.1:7002"
        "#;
        let c = Config::parse(text, Vec::new()).unwrap();
        Routes::build(&c.proxy.routes).unwrap()
    }

    #[test]
    fn prefix_and_host_routing() {
        let r = routes();
        assert_eq!(r.find(None, "/sms/send").map(|(i, _)| i), Some(0));
        assert_eq!(r.find(None, "/sms").map(|(i, _)| i), Some(0));
        assert_eq!(r.find(None, "/smsx").map(|(i, _)| i), None);
        assert_eq!(
            r.find(Some("WABA.example.com:8080"), "/v1/messages")
                .map(|(i, _)| i),
            Some(1)
        );
        assert_eq!(
            r.find(Some("other.example.com"), "/v1/messages")
                .map(|(i, _)| i),
            None
        );
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        let r = routes();
        let sms = r.get(0).unwrap_or_else(|| panic!("no route"));
        assert_eq!(sms.upstream_path("/sms/send/now"), "/send/now");
        assert_eq!(sms.upstream_path("/sms/"), "/");
        assert_eq!(sms.upstream_path("/sms"), "/");
        assert_eq!(sms.rest("/sms/acme/send"), "acme/send");
    }
}
