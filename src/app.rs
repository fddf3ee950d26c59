//! ipgate assembled: [`App::build`] puts the proxy half (`ipgate-proxy`)
//! and the control plane (`ipgate-control`) into one Pingora server, with
//! the control plane's HTTP listeners (admin API, portal, metrics) as a
//! background service; [`App::run`] serves until SIGTERM or SIGINT. The
//! table is loaded from the store before anything listens, so the proxy
//! never accepts a connection without it. A proxy on its own
//! ([`Halves::ProxyOnly`]) has no store: it starts from its saved snapshot,
//! or refuses every call with 503 `no_table`, and follows a control plane
//! (`ipgate_proxy::follow`).

use crate::listener::{serve, Timeouts};
use crate::stop_signal::ControlStop;
use async_trait::async_trait;
use ipgate_config::Config;
use ipgate_control::app::{BuildError, ControlPlane, ControlSecrets};
use ipgate_control::http::admin::AdminToken;
use ipgate_control::jobs::Jobs;
use ipgate_control::seclog::LogKey;
use ipgate_control::service::publish::load_table;
use ipgate_control::store::postgres::PgOptions;
use ipgate_control::store::{Store, StoreError};
use ipgate_policy::LiveTable;
use ipgate_proxy::assemble::{self, AssembleError, ProxyInputs};
use ipgate_proxy::drain::Drain;
use ipgate_proxy::follow::{FollowConfig, FollowError, Follower};
use ipgate_proxy::metrics::TableCollector;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use prometheus::Registry;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Which halves run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halves {
    Both,
    ControlOnly,
    /// Proxy listeners, metrics and a follower of a control plane's sync
    /// feed: no store, no portal, no admin listener.
    ProxyOnly,
}

impl Halves {
    fn has_proxy(self) -> bool {
        matches!(self, Halves::Both | Halves::ProxyOnly)
    }
}

/// The secrets the server needs, read by the caller (env or files).
pub struct Secrets {
    /// The control plane's; needed by `Both` and `ControlOnly`.
    pub control: Option<ControlPlaneSecrets>,
    pub introspect_token: Option<String>,
    /// The sync feed's token: the one the control plane's feed checks
    /// (`None`: the feed is off), and the one `ProxyOnly` presents to it
    /// (needed).
    pub sync_token: Option<String>,
}

/// The secrets only the control plane uses.
pub struct ControlPlaneSecrets {
    pub admin_token: AdminToken,
    pub log_key: LogKey,
    pub smtp_password: Option<String>,
    /// The PostgreSQL store's password (`store.url`).
    pub store_password: Option<String>,
}

/// Why the server could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("making the blocked-calls reporter: {0}")]
    Reporter(String),
    #[error("no runtime for the start-up: {0}")]
    SetupRuntime(std::io::Error),
    #[error("opening the store")]
    OpenStore(#[source] StoreError),
    #[error("loading the table from the store")]
    LoadTable(#[source] StoreError),
    #[error("cannot listen on {addr} ({key})")]
    Listen {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error(transparent)]
    Proxy(#[from] AssembleError),
    #[error(transparent)]
    Control(#[from] BuildError),
    #[error("registering the table's metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("the control plane's secrets (admin token, log key) were not given")]
    NoControlSecrets,
    #[error("`ipgate proxy` needs the sync token: set IPGATE_SYNC_TOKEN (or config key `sync.token_file`) to the control plane's sync token")]
    NoSyncToken,
    #[error(transparent)]
    Follow(#[from] FollowError),
    #[error("`--upgrade` is for `ipgate proxy` only: a process with a store cannot take over from one that holds it")]
    UpgradeNeedsProxy,
    #[error(transparent)]
    UpgradeSock(#[from] crate::upgrade_sock::UpgradeSockError),
}

/// Binds now, so a taken port is a clear error before anything starts.
fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    let listen = |error| AppError::Listen { key, addr, error };
    let l = TcpListener::bind(addr).map_err(listen)?;
    l.set_nonblocking(true).map_err(listen)?;
    Ok(l)
}

/// The metrics listener: bound now, or, for a new process taking over
/// with `--upgrade`, as soon as the old one lets its port go.
enum MetricsBind {
    Now(TcpListener),
    Later(SocketAddr),
}

/// How often a new process tries the old one's metrics port.
const METRICS_RETRY: Duration = Duration::from_millis(50);

/// Binds `addr` once the process handing over lets it go; `None` if the
/// server stops first.
async fn bind_when_free(addr: SocketAddr, mut stop: watch::Receiver<bool>) -> Option<TcpListener> {
    loop {
        if let Ok(l) = bind("metrics.listen", addr) {
            tracing::info!(%addr, "metrics listener taken over from the old process");
            return Some(l);
        }
        tokio::select! {
            () = tokio::time::sleep(METRICS_RETRY) => {}
            _ = stop.wait_for(|s| *s) => return None,
        }
    }
}

/// A server assembled and ready to run.
pub struct App {
    server: Server,
    /// The control plane's jobs (none for a proxy on its own).
    jobs: Option<Arc<Jobs>>,
    drain: Arc<Drain>,
    drain_timeout: Duration,
    control_stop: ControlStop,
    /// `ipgate proxy`: the socket a SIGQUIT sends the listeners to.
    hand_over_to: Option<String>,
}

impl App {
    /// Opens the store, loads the table, and assembles the halves asked
    /// for. `portal_extra`: routes only the demo adds to the portal
    /// listener (`/dev/mailbox`).
    /// `upgrade`: take the listening sockets over from a running `ipgate
    /// proxy` (sent when it gets SIGQUIT).
    pub fn build(
        config: Config,
        halves: Halves,
        secrets: Secrets,
        portal_extra: Option<axum::Router>,
        upgrade: bool,
    ) -> Result<App, AppError> {
        crate::huge_pages::turn_off();
        if upgrade && halves != Halves::ProxyOnly {
            return Err(AppError::UpgradeNeedsProxy);
        }
        let upgrade_sock = match halves {
            Halves::ProxyOnly => Some(crate::upgrade_sock::checked(&config)?),
            _ => None,
        };
        let registry = Registry::new();
        let mut control_parts = None;
        let mut follower = None;
        let table = if halves == Halves::ProxyOnly {
            if config.sync.control_urls.is_empty() {
                return Err(FollowError::NoControlPlane.into());
            }
            let token = secrets.sync_token.clone().ok_or(AppError::NoSyncToken)?;
            let name = config.sync.name.clone().unwrap_or_else(host_name);
            let table = Arc::new(LiveTable::new(Follower::no_table()));
            let f = Follower::new(
                FollowConfig::from_config(&config, name.clone(), token),
                table.clone(),
                &registry,
            )?;
            tracing::info!(name = %name, control_urls = ?config.sync.control_urls, snapshot = %config.sync.snapshot_path.display(), "following the control plane");
            f.load_saved();
            follower = Some(f);
            table
        } else {
            let cs = secrets.control.ok_or(AppError::NoControlSecrets)?;
            let store = match &config.store.url {
                Some(url) => {
                    let mut options = PgOptions::new(url, cs.store_password);
                    options.pool_size = config.store.pool_size;
                    options.timeout = config.store.timeout.0;
                    setup(Store::open_postgres(&options, cs.log_key))?
                }
                None => {
                    Store::open_with_cache(&config.store.path, config.store.cache_mb, cs.log_key)
                }
            }
            .map_err(AppError::OpenStore)?;
            let started = std::time::Instant::now();
            let table = Arc::new(LiveTable::new(
                setup(load_table(&store))?.map_err(AppError::LoadTable)?,
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
            setup(verify_log(&store))?;
            control_parts = Some((store, cs.admin_token, cs.smtp_password));
            table
        };
        registry.register(Box::new(TableCollector::new(table.clone())?))?;

        let control_listen = |key, addr: Option<SocketAddr>| match addr {
            Some(a) if control_parts.is_some() => bind(key, a).map(Some),
            _ => Ok(None),
        };
        let admin_listener = control_listen("control.admin_listen", config.control.admin_listen)?;
        let portal_listener = control_listen("control.listen", config.control.listen)?;
        let metrics_listener = match config.metrics.listen {
            Some(a) => match bind("metrics.listen", a) {
                Ok(l) => Some(MetricsBind::Now(l)),
                // The process handing over holds it until it stops.
                Err(AppError::Listen { error, .. })
                    if upgrade && error.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    Some(MetricsBind::Later(a))
                }
                Err(e) => return Err(e),
            },
            None => None,
        };

        let drain_timeout = config.proxy.drain_timeout.0;
        let conf = ServerConf {
            threads: config.proxy.threads,
            work_stealing: false,
            // A SIGTERM drains before Pingora hears of it. A hand-over
            // cannot (the sockets go first), so Pingora's grace period
            // bounds it; `hand_over` ends the process sooner.
            grace_period_seconds: Some(match upgrade_sock {
                Some(_) => drain_timeout.as_secs() + u64::from(drain_timeout.subsec_nanos() > 0),
                None => 0,
            }),
            graceful_shutdown_timeout_seconds: Some(2),
            upgrade_sock: upgrade_sock.clone().unwrap_or_default(),
            ..Default::default()
        };
        let opt = pingora::server::configuration::Opt {
            upgrade,
            ..Default::default()
        };
        let mut server = Server::new_with_opt_and_conf(opt, conf);
        if upgrade {
            tracing::info!(
                socket = upgrade_sock.as_deref().unwrap_or_default(),
                "waiting for the running proxy's listening sockets: send it SIGQUIT now"
            );
        }
        server.bootstrap();

        let drain = Arc::new(Drain::default());
        let mut blocked = None;
        if halves.has_proxy() {
            let services = assemble::services(
                &config,
                ProxyInputs {
                    table: table.clone(),
                    registry: &registry,
                    drain: drain.clone(),
                    server_conf: &server.configuration,
                    introspect_token: secrets.introspect_token,
                    upgrade,
                },
            )?;
            server.add_services(services.services);
            blocked = Some(services.blocked.clone());
            if halves == Halves::ProxyOnly {
                server.add_service(background_service(
                    "hand-over",
                    crate::hand_over::HandOverEnd {
                        drain: drain.clone(),
                        connections: services.connections,
                        timeout: drain_timeout,
                    },
                ));
            }
        }

        let report_store = control_parts.as_ref().map(|(s, _, _)| s.clone());
        if let Some(blocked) = blocked {
            let sink: Option<Box<dyn ipgate_proxy::blocked_report::Sink>> = match report_store {
                Some(store) => Some(Box::new(crate::blocked_sink::StoreSink(store))),
                None => match &secrets.sync_token {
                    Some(token) => Some(Box::new(
                        ipgate_proxy::blocked_report::HttpSink::new(
                            config.sync.control_urls.clone(),
                            token.clone(),
                        )
                        .map_err(|e| AppError::Reporter(e.to_string()))?,
                    )),
                    None => None,
                },
            };
            if let Some(sink) = sink {
                server.add_service(background_service(
                    "blocked calls report",
                    ipgate_proxy::blocked_report::Reporter {
                        blocked,
                        sink,
                        every: ipgate_proxy::blocked_report::EVERY,
                    },
                ));
            }
        }
        let control = match control_parts {
            Some((store, admin_token, smtp_password)) => Some(setup(ControlPlane::build(
                &config,
                store,
                table.clone(),
                &registry,
                ControlSecrets {
                    admin_token,
                    smtp_password,
                    sync_token: secrets.sync_token,
                },
            ))??),
            None => None,
        };
        let jobs = control.as_ref().map(|c| c.jobs.clone());
        let (stop, stopped) = (watch::Sender::new(false), watch::Sender::new(false));
        let control_stop = ControlStop {
            stop: stop.clone(),
            stopped: stopped.subscribe(),
        };
        let listeners = Listeners {
            stop,
            stopped,
            admin: admin_listener.and_then(|l| Some((l, control.as_ref()?.admin_router()))),
            portal: portal_listener.and_then(|l| Some((l, control.as_ref()?.portal_router()))),
            portal_extra,
            metrics: metrics_listener.map(|l| (l, Arc::new(registry), table.clone())),
            control,
            timeouts: Timeouts {
                header: config.control.header_timeout.0,
                body: config.control.body_timeout.0,
            },
        };
        server.add_service(background_service(
            if halves == Halves::ProxyOnly {
                "metrics"
            } else {
                "control plane"
            },
            listeners,
        ));
        if let Some(f) = follower {
            server.add_service(background_service("sync follower", f));
        }
        server.add_service(background_service(
            "entry expiry",
            ipgate_proxy::expiry::EndEntries {
                table: table.clone(),
            },
        ));
        server.add_service(background_service("hang-up", crate::hangup::Hangup));
        tracing::info!(
            role = ?halves,
            proxy = ?config.proxy.listen.filter(|_| halves.has_proxy()),
            tls = ?config.proxy.tls_listen.filter(|_| halves.has_proxy()),
            admin = ?config.control.admin_listen.filter(|_| halves != Halves::ProxyOnly),
            metrics = ?config.metrics.listen,
            "ipgate starting"
        );
        Ok(App {
            server,
            jobs,
            drain,
            drain_timeout,
            control_stop,
            hand_over_to: upgrade_sock,
        })
    }

    /// Serves until SIGINT or SIGTERM (which drains calls in flight first).
    pub fn run(self) {
        self.server.run(RunArgs {
            shutdown_signal: Box::new(crate::stop_signal::DrainOnTerm {
                drain: self.drain,
                timeout: self.drain_timeout,
                control: self.control_stop,
                hand_over_to: self.hand_over_to,
            }),
        });
        // Every runtime has stopped (Pingora drops their tasks at once, so
        // work started from the stop inside them could be cut off): no
        // refusal can be noted any more, so the windows still open are
        // written now.
        let Some(jobs) = self.jobs else { return };
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(jobs.finish()),
            Err(e) => {
                tracing::error!(error = %e, "no runtime to write the last login refusal summaries")
            }
        }
    }
}

/// Runs one step of the start-up that reads or writes the store, before
/// Pingora's runtimes exist, on the start-up runtime. That runtime lives as
/// long as the process, with a worker of its own: a PostgreSQL store's
/// connections made in these steps are driven by tasks on it, and stay
/// usable from every other runtime afterwards.
fn setup<F: std::future::Future>(step: F) -> Result<F::Output, AppError> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = match RUNTIME.get() {
        Some(rt) => rt,
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("ipgate-startup")
                .enable_all()
                .build()
                .map_err(AppError::SetupRuntime)?;
            RUNTIME.get_or_init(|| rt)
        }
    };
    Ok(rt.block_on(step))
}

/// Checks the security log's chain at start, and says what it found.
async fn verify_log(store: &Store) {
    match store.verify_security_log().await {
        Ok(v) if v.ok => {
            tracing::info!(records = v.records, head = %v.head, key_id = %v.key_id, keyed_from = ?v.keyed_from, "security log verified")
        }
        Ok(v) => {
            tracing::error!(broken_at = ?v.broken_at, reason = ?v.reason, head = %v.head, key_id = %v.key_id, "security log chain is BROKEN")
        }
        Err(e) => tracing::error!(error = %e, "security log cannot be read"),
    }
}

/// The control plane's HTTP listeners, served by axum inside Pingora's
/// runtime, with its mail sender and jobs.
struct Listeners {
    /// Stops them: sent on SIGTERM once the proxy has drained, or when
    /// Pingora stops (SIGINT).
    stop: watch::Sender<bool>,
    /// Sent once every listener, the mail sender and the jobs have ended.
    stopped: watch::Sender<bool>,
    admin: Option<(TcpListener, axum::Router)>,
    portal: Option<(TcpListener, axum::Router)>,
    /// Routes only the demo adds to the portal listener (`/dev/mailbox`).
    portal_extra: Option<axum::Router>,
    metrics: Option<(MetricsBind, Arc<Registry>, Arc<LiveTable>)>,
    /// None for a proxy on its own.
    control: Option<ControlPlane>,
    timeouts: Timeouts,
}

/// `/metrics`; `/healthz` (200 while the process serves); `/readyz` (200
/// while the live table judges calls: loaded, and not stale; else 503).
fn metrics_router(registry: Arc<Registry>, table: Arc<LiveTable>) -> axum::Router {
    use axum::http::{header, StatusCode};
    use ipgate_policy::Refusal;
    axum::Router::new()
        .route(
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
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let t = table.load_full();
                async move {
                    let (status, word) = match t.refusal() {
                        None => (StatusCode::OK, "ready"),
                        Some(Refusal::NoTable) => (StatusCode::SERVICE_UNAVAILABLE, "no_table"),
                        Some(Refusal::Stale) => (StatusCode::SERVICE_UNAVAILABLE, "stale_table"),
                    };
                    (
                        status,
                        axum::Json(serde_json::json!({"status": word, "version": t.version()})),
                    )
                }
            }),
        )
}

/// The host name, as `sync.name` allows it (1-64 of A-Z a-z 0-9 . _ -).
fn host_name() -> String {
    let raw = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "proxy".to_string()
    } else {
        name
    }
}

#[async_trait]
impl BackgroundService for Listeners {
    async fn start(&self, mut pingora_stop: ShutdownWatch) {
        let shutdown = self.stop.subscribe();
        let admin = async {
            if let Some((l, router)) = &self.admin {
                serve("admin", l, router.clone(), self.timeouts, shutdown.clone()).await;
            }
        };
        let metrics = async {
            let Some((bind, registry, table)) = &self.metrics else {
                return;
            };
            let taken_over;
            let l = match bind {
                MetricsBind::Now(l) => l,
                MetricsBind::Later(addr) => match bind_when_free(*addr, shutdown.clone()).await {
                    Some(l) => {
                        taken_over = l;
                        &taken_over
                    }
                    None => return,
                },
            };
            serve(
                "metrics",
                l,
                metrics_router(registry.clone(), table.clone()),
                self.timeouts,
                shutdown.clone(),
            )
            .await;
        };
        let portal = async {
            if let Some((l, router)) = &self.portal {
                let mut router = router.clone();
                if let Some(extra) = &self.portal_extra {
                    router = router.merge(extra.clone());
                }
                serve("portal", l, router, self.timeouts, shutdown.clone()).await;
            }
        };
        let control = async {
            let Some(c) = &self.control else { return };
            // Polls held open would hold the stop for up to sync.poll_timeout.
            let feed = async {
                let mut stop = shutdown.clone();
                let _ = stop.changed().await;
                c.feed.stop();
            };
            tokio::join!(
                c.mailer.run(&c.publisher.store, shutdown.clone()),
                feed,
                c.jobs.run(shutdown.clone())
            );
        };
        let work = async { tokio::join!(admin, metrics, portal, control) };
        // Pingora's own stop (SIGINT, or after a SIGTERM's drain) stops
        // them too, if the drain has not already.
        let forward = async {
            let _ = pingora_stop.changed().await;
            self.stop.send_replace(true);
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = work => {}
            () = forward => {}
        }
        self.stopped.send_replace(true);
    }
}
