//! Wires the parts into one Pingora server: the proxy service on its
//! listeners, and the control plane's HTTP listeners (admin API, metrics)
//! as a background service. The table is loaded from the store before the
//! server starts, so the proxy never accepts a connection without it.

use crate::listener::{serve, Timeouts};
use anyhow::{bail, Context};
use async_trait::async_trait;
use ipgate_config::Config;
use ipgate_control::admin::{self, AdminState, AdminToken};
use ipgate_control::flow::Limits;
use ipgate_control::http::state::CustomerState;
use ipgate_control::jobs::Jobs;
use ipgate_control::login_limit::LoginLimit;
use ipgate_control::mailer::Mailer;
use ipgate_control::metrics::FlowMetrics;
use ipgate_control::publish::{load_table, Publisher};
use ipgate_control::ratelimit::RateLimit;
use ipgate_control::refusals::Refusals;
use ipgate_control::seclog::LogKey;
use ipgate_control::store::Store;
use ipgate_policy::client_ip::TrustedProxies;
use ipgate_policy::{LiveTable, Policy};
use ipgate_proxy::conn_limit::ConnLimit;
use ipgate_proxy::gate::head_check::HeadLimits;
use ipgate_proxy::gate::introspect::Introspector;
use ipgate_proxy::gate::routes::Routes;
use ipgate_proxy::metrics::{ProxyMetrics, TableCollector};
use ipgate_proxy::raw_path::RawPath;
use ipgate_proxy::{gate::Gate, pingora_path::SharedGate};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use prometheus::Registry;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Which halves run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halves {
    Both,
    ControlOnly,
}

/// Binds now, so a taken port is a clear error before anything starts.
fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} ({key})"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Runs until SIGINT/SIGTERM.
pub fn run(
    config: Config,
    halves: Halves,
    admin_token: AdminToken,
    log_key: LogKey,
    smtp_password: Option<String>,
    portal_extra: Option<axum::Router>,
) -> anyhow::Result<()> {
    crate::huge_pages::turn_off();
    let store = Store::open_with_cache(&config.store.path, config.store.cache_mb, log_key)
        .context("opening the store")?;
    let started = std::time::Instant::now();
    let table = Arc::new(LiveTable::new(
        load_table(&store).context("loading the table from the store")?,
    ));
    {
        let t = table.load();
        tracing::info!(
            accounts = t.accounts(),
            entries = t.entries(),
            blocklist = t.blocklist_entries(),
            took_ms = started.elapsed().as_millis() as u64,
            "whitelist table loaded from the store"
        );
    }
    match store.verify_security_log() {
        Ok(v) if v.ok => {
            tracing::info!(records = v.records, head = %v.head, key_id = %v.key_id, keyed_from = ?v.keyed_from, "security log verified")
        }
        Ok(v) => {
            tracing::error!(broken_at = ?v.broken_at, reason = ?v.reason, head = %v.head, key_id = %v.key_id, "security log chain is BROKEN")
        }
        Err(e) => tracing::error!(error = %e, "security log cannot be read"),
    }
    let registry = Registry::new();
    registry.register(Box::new(TableCollector::new(table.clone())?))?;

    let admin_listener = match config.control.admin_listen {
        Some(a) => Some(bind("control.admin_listen", a)?),
        None => None,
    };
    let portal_listener = match config.control.listen {
        Some(a) => Some(bind("control.listen", a)?),
        None => None,
    };
    let metrics_listener = match config.metrics.listen {
        Some(a) => Some(bind("metrics.listen", a)?),
        None => None,
    };

    let conf = ServerConf {
        threads: config.proxy.threads,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(2),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let drain = Arc::new(ipgate_proxy::drain::Drain::default());
    let trusted = TrustedProxies::new(config.proxy.trusted_proxies.iter().map(|c| c.0).collect());
    if halves == Halves::Both {
        let routes = Routes::build(&config.proxy.routes)?;
        if routes.is_empty() {
            bail!(
                "config key `proxy.route`: at least one [[proxy.route]] is needed to run the proxy"
            );
        }
        let gate = Arc::new(Gate {
            table: table.clone(),
            metrics: ProxyMetrics::register(
                &registry,
                routes.names(),
                config.metrics.label_accounts,
            )?,
            routes,
            trusted: trusted.clone(),
            policy: Policy {
                unknown_account: config.proxy.unknown_account,
                deny_unidentified: config.proxy.deny_unidentified,
            },
            limits: HeadLimits {
                max_bytes: config.proxy.max_header_bytes,
                max_headers: config.proxy.max_headers,
            },
            access_log: config.proxy.access_log,
            max_inspect_body: config.proxy.max_inspect_body,
            body_timeout: config.proxy.header_timeout.0,
            introspector: introspector(&config)?,
            drain: drain.clone(),
        });
        // Plain HTTP/1 requests take the raw path; Pingora's proxy serves
        // the rest, with the same gate.
        let pingora_path =
            pingora::proxy::http_proxy(&server.configuration, SharedGate(gate.clone()));
        let limit = ConnLimit::register(&registry, config.proxy.max_connections)?;
        let app = RawPath::new(gate, pingora_path, config.proxy.header_timeout.0, limit);
        let mut listening = false;
        if let Some(addr) = config.proxy.listen {
            // Fail early and clearly if the port is taken; Pingora binds later.
            drop(bind("proxy.listen", addr)?);
            listening = true;
        }
        if let (Some(addr), Some(cert), Some(key)) = (
            config.proxy.tls_listen,
            &config.proxy.tls_cert,
            &config.proxy.tls_key,
        ) {
            ipgate_proxy::tls::check_pair(cert, key)?;
            drop(bind("proxy.tls_listen", addr)?);
            let cert = cert.to_str().context("proxy.tls_cert is not UTF-8")?;
            let key = key.to_str().context("proxy.tls_key is not UTF-8")?;
            let tls = pingora::listeners::tls::TlsSettings::intermediate(cert, key)
                .map_err(|e| anyhow::anyhow!("proxy.tls_cert/tls_key: {e}"))?;
            // Added as TCP: the path does the handshake itself, under the
            // head deadline (Pingora's own allows 60 s).
            let mut svc = pingora::services::listening::Service::new(
                "ipgate proxy (TLS)".to_string(),
                app.with_tls(tls),
            );
            svc.add_tcp(&addr.to_string());
            server.add_service(svc);
            listening = true;
        }
        if !listening {
            bail!("config key `proxy.listen`: set listen or tls_listen to run the proxy");
        }
        if let Some(addr) = config.proxy.listen {
            let mut svc =
                pingora::services::listening::Service::new("ipgate proxy".to_string(), app);
            svc.add_tcp(&addr.to_string());
            server.add_service(svc);
        }
    }

    let csrf_key = Arc::new(store.secret("csrf").context("reading the CSRF key")?);
    let publisher = Arc::new(Publisher::new(store, table));
    let flow_metrics = FlowMetrics::register(&registry)?;
    let mailer = Mailer::new(
        &config.smtp,
        smtp_password,
        &config.control.public_url,
        flow_metrics.clone(),
    )?;
    let login_refusals = Arc::new(Refusals::default());
    let customer = CustomerState {
        publisher: publisher.clone(),
        limits: Limits {
            max_ips_per_request: config.control.max_ips_per_request,
            max_entries_per_account: config.control.max_entries_per_account,
            allow_private_ips: config.control.allow_private_ips,
        },
        link_ttl: config.control.link_ttl.0,
        trusted,
        metrics: flow_metrics.clone(),
        mail_wake: mailer.wake.clone(),
        csrf_key,
        link_limit: Arc::new(RateLimit::new(30, std::time::Duration::from_secs(60))),
        login_limit: Arc::new(LoginLimit::default()),
        login_refusals: login_refusals.clone(),
        secure_cookies: config.control.public_url.starts_with("https://"),
    };
    let admin_state = AdminState {
        publisher: publisher.clone(),
        token: Arc::new(admin_token),
    };
    let jobs = Arc::new(Jobs {
        publisher: publisher.clone(),
        metrics: flow_metrics.clone(),
        refusals: Some(login_refusals),
    });
    let control = ControlPlane {
        admin: admin_listener.map(|l| (l, admin_state)),
        portal: portal_listener.map(|l| (l, customer)),
        portal_extra,
        metrics: metrics_listener.map(|l| (l, Arc::new(registry))),
        publisher,
        jobs: jobs.clone(),
        mailer,
        timeouts: Timeouts {
            header: config.control.header_timeout.0,
            body: config.control.body_timeout.0,
        },
    };
    server.add_service(background_service("control plane", control));
    server.add_service(background_service("hang-up", crate::hangup::Hangup));
    tracing::info!(
        proxy = ?config.proxy.listen,
        tls = ?config.proxy.tls_listen,
        admin = ?config.control.admin_listen,
        metrics = ?config.metrics.listen,
        "ipgate starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(crate::stop_signal::DrainOnTerm {
            drain,
            timeout: config.proxy.drain_timeout.0,
        }),
    });
    // Every runtime has stopped (Pingora drops their tasks at once, so
    // work started from the stop inside them could be cut off): no refusal
    // can be noted any more, so the windows still open are written now.
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt.block_on(jobs.finish()),
        Err(e) => {
            tracing::error!(error = %e, "no runtime to write the last login refusal summaries")
        }
    }
    Ok(())
}

/// The control plane's HTTP listeners, served by axum inside Pingora's runtime.
struct ControlPlane {
    admin: Option<(TcpListener, AdminState)>,
    portal: Option<(TcpListener, CustomerState)>,
    /// Routes only the demo adds to the portal listener (`/dev/mailbox`).
    portal_extra: Option<axum::Router>,
    metrics: Option<(TcpListener, Arc<Registry>)>,
    publisher: Arc<Publisher>,
    jobs: Arc<Jobs>,
    mailer: Mailer,
    timeouts: Timeouts,
}

fn metrics_router(registry: Arc<Registry>) -> axum::Router {
    use axum::http::header;
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    ipgate_proxy::metrics::render(&registry),
                )
            }
        }),
    )
}

#[async_trait]
impl BackgroundService for ControlPlane {
    async fn start(&self, shutdown: ShutdownWatch) {
        let admin = async {
            if let Some((l, state)) = &self.admin {
                serve(
                    "admin",
                    l,
                    admin::router(state.clone()),
                    self.timeouts,
                    shutdown.clone(),
                )
                .await;
            }
        };
        let metrics = async {
            if let Some((l, registry)) = &self.metrics {
                serve(
                    "metrics",
                    l,
                    metrics_router(registry.clone()),
                    self.timeouts,
                    shutdown.clone(),
                )
                .await;
            }
        };
        let portal = async {
            if let Some((l, state)) = &self.portal {
                let mut router = ipgate_control::http::router(state.clone());
                if let Some(extra) = &self.portal_extra {
                    router = router.merge(extra.clone());
                }
                serve("portal", l, router, self.timeouts, shutdown.clone()).await;
            }
        };
        let mail = self.mailer.run(&self.publisher.store, shutdown.clone());
        tokio::join!(
            admin,
            metrics,
            portal,
            mail,
            self.jobs.run(shutdown.clone())
        );
    }
}

/// The key introspection client, when `proxy.introspect_url` is set.
fn introspector(config: &Config) -> anyhow::Result<Option<Arc<Introspector>>> {
    let p = &config.proxy;
    if p.introspect_url.is_empty() {
        return Ok(None);
    }
    let token = crate::secrets::introspect_token(config)?;
    let i = Introspector::new(
        &p.introspect_url,
        token,
        p.introspect_ttl.0,
        p.introspect_timeout.0,
    )
    .context("config key `proxy.introspect_url`")?;
    Ok(Some(Arc::new(i)))
}
