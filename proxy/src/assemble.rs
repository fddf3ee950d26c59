//! The proxy half assembled from its config: the gate over the live table,
//! Pingora's path, and the raw path on the plain and TLS listeners, as
//! Pingora services ready to be added to a server.

use crate::conn_limit::ConnLimit;
use crate::drain::Drain;
use crate::gate::head_check::HeadLimits;
use crate::gate::introspect::{IntrospectError, Introspector};
use crate::gate::routes::{RouteError, Routes};
use crate::gate::Gate;
use crate::metrics::ProxyMetrics;
use crate::pingora_path::SharedGate;
use crate::raw_path::RawPath;
use crate::tls::{server_config, TlsFileError};
use ipgate_config::Config;
use ipgate_policy::client_ip::TrustedProxies;
use ipgate_policy::{LiveTable, Policy};
use pingora_core::server::configuration::ServerConf;
use pingora_core::services::listening::Service;
use pingora_core::services::ServiceWithDependents;
use prometheus::Registry;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Why the proxy half could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("config key `proxy.route`: at least one [[proxy.route]] is needed to run the proxy")]
    NoRoute,
    #[error("config key `proxy.listen`: set listen or tls_listen to run the proxy")]
    NoListener,
    #[error("cannot listen on {addr} ({key})")]
    Listen {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    TlsFiles(#[from] TlsFileError),
    #[error("registering the proxy's metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("config key `proxy.introspect_url`")]
    Introspect(#[from] IntrospectError),
}

/// What the proxy half needs besides its config.
pub struct ProxyInputs<'a> {
    /// The table every call is judged against.
    pub table: Arc<LiveTable>,
    pub registry: &'a Registry,
    /// Shared with the stop signal, which drains through it.
    pub drain: Arc<Drain>,
    /// The Pingora server's configuration (Pingora's path needs it).
    pub server_conf: &'a Arc<ServerConf>,
    /// Bearer token for `proxy.introspect_url`, when one is set.
    pub introspect_token: Option<String>,
    /// The listening sockets come from the process this one replaces
    /// (`--upgrade`): their ports are taken, by it.
    pub upgrade: bool,
}

/// The proxy's listening services, and the count of their open client
/// connections (a hand-over ends when it falls to zero).
pub struct ProxyServices {
    pub services: Vec<Box<dyn ServiceWithDependents>>,
    pub connections: Arc<ConnLimit>,
    /// The denied calls counted for reporting (`crate::blocked`).
    pub blocked: Arc<crate::blocked::BlockedCalls>,
}

/// The proxy's listening services: the TLS listener's (when set) and the
/// plain listener's, each serving the raw path with Pingora's behind it.
pub fn services(config: &Config, inputs: ProxyInputs<'_>) -> Result<ProxyServices, AssembleError> {
    let p = &config.proxy;
    let routes = Routes::build(&p.routes)?;
    if routes.is_empty() {
        return Err(AssembleError::NoRoute);
    }
    let introspector = match p.introspect_url.as_str() {
        "" => None,
        url => Some(Arc::new(Introspector::new(
            url,
            inputs.introspect_token,
            p.introspect_ttl.0,
            p.introspect_timeout.0,
        )?)),
    };
    let blocked = Arc::new(crate::blocked::BlockedCalls::register(
        inputs.registry,
        routes.names().map(str::to_owned).collect(),
    )?);
    let gate = Arc::new(Gate {
        table: inputs.table,
        metrics: ProxyMetrics::register(
            inputs.registry,
            routes.names(),
            config.metrics.label_accounts,
        )?,
        routes,
        trusted: TrustedProxies::new(p.trusted_proxies.iter().map(|c| c.0).collect()),
        policy: Policy {
            unknown_account: p.unknown_account,
            deny_unidentified: p.deny_unidentified,
        },
        limits: HeadLimits {
            max_bytes: p.max_header_bytes,
            max_headers: p.max_headers,
        },
        access_log: p.access_log,
        max_inspect_body: p.max_inspect_body,
        body_timeout: p.header_timeout.0,
        introspector,
        drain: inputs.drain,
        blocked: blocked.clone(),
    });
    // Plain HTTP/1 requests take the raw path; Pingora's proxy serves the
    // rest, with the same gate.
    let pingora_path = pingora_proxy::http_proxy(inputs.server_conf, SharedGate(gate.clone()));
    let limit = ConnLimit::register(inputs.registry, p.max_connections)?;
    let app = RawPath::new(gate, pingora_path, p.header_timeout.0, limit.clone());
    let upgrade = inputs.upgrade;
    let mut services: Vec<Box<dyn ServiceWithDependents>> = Vec::new();
    if let Some(addr) = p.listen.filter(|_| !upgrade) {
        port_is_free("proxy.listen", addr)?;
    }
    if let (Some(addr), Some(cert), Some(key)) = (p.tls_listen, &p.tls_cert, &p.tls_key) {
        let tls = server_config(cert, key)?;
        // Pingora's TLS to upstreams takes the process's default provider,
        // which its own listener settings installed before ipgate built the
        // listener's configuration itself.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if !upgrade {
            port_is_free("proxy.tls_listen", addr)?;
        }
        // Added as TCP: the raw path does the handshake itself, under the
        // head deadline (Pingora's own allows 60 s).
        let mut svc = Service::new("ipgate proxy (TLS)".to_string(), app.with_tls(tls));
        svc.add_tcp(&addr.to_string());
        services.push(Box::new(svc));
    }
    if let Some(addr) = p.listen {
        let mut svc = Service::new("ipgate proxy".to_string(), app);
        svc.add_tcp(&addr.to_string());
        services.push(Box::new(svc));
    }
    if services.is_empty() {
        return Err(AssembleError::NoListener);
    }
    Ok(ProxyServices {
        services,
        connections: limit,
        blocked,
    })
}

/// Fails early and clearly if the port is taken: Pingora binds later.
fn port_is_free(key: &'static str, addr: SocketAddr) -> Result<(), AssembleError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| AssembleError::Listen { key, addr, source })
}
