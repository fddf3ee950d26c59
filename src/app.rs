//! ipgate assembled: [`App::build`] puts the proxy half (`ipgate-proxy`)
//! and the control plane (`ipgate-control`) into one Pingora server, with
//! the control plane's HTTP listeners (admin API, portal, metrics) as a
//! background service; [`App::run`] serves until SIGTERM or SIGINT. The
//! table is loaded from the store before anything listens, so the proxy
//! never accepts a connection without it.

use crate::listener::{serve, Timeouts};
use crate::stop_signal::ControlStop;
use async_trait::async_trait;
use ipgate_config::Config;
use ipgate_control::app::{BuildError, ControlPlane, ControlSecrets};
use ipgate_control::http::admin::AdminToken;
use ipgate_control::jobs::Jobs;
use ipgate_control::seclog::LogKey;
use ipgate_control::service::publish::load_table;
use ipgate_control::store::{Store, StoreError};
use ipgate_policy::LiveTable;
use ipgate_proxy::assemble::{self, AssembleError, ProxyInputs};
use ipgate_proxy::drain::Drain;
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
}

/// The secrets the server needs, read by the caller (env or files).
pub struct Secrets {
    pub admin_token: AdminToken,
    pub log_key: LogKey,
    pub smtp_password: Option<String>,
    pub introspect_token: Option<String>,
    /// The sync feed's token; `None`: the feed is off.
    pub sync_token: Option<String>,
}

/// Why the server could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
}

/// Binds now, so a taken port is a clear error before anything starts.
fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    let listen = |error| AppError::Listen { key, addr, error };
    let l = TcpListener::bind(addr).map_err(listen)?;
    l.set_nonblocking(true).map_err(listen)?;
    Ok(l)
}

/// A server assembled and ready to run.
pub struct App {
    server: Server,
    jobs: Arc<Jobs>,
    drain: Arc<Drain>,
    drain_timeout: Duration,
    control_stop: ControlStop,
}

impl App {
    /// Opens the store, loads the table, and assembles the halves asked
    /// for. `portal_extra`: routes only the demo adds to the portal
    /// listener (`/dev/mailbox`).
    pub fn build(
        config: Config,
        halves: Halves,
        secrets: Secrets,
        portal_extra: Option<axum::Router>,
    ) -> Result<App, AppError> {
        crate::huge_pages::turn_off();
        let store =
            Store::open_with_cache(&config.store.path, config.store.cache_mb, secrets.log_key)
                .map_err(AppError::OpenStore)?;
        let started = std::time::Instant::now();
        let table = Arc::new(LiveTable::new(
            load_table(&store).map_err(AppError::LoadTable)?,
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
        verify_log(&store);
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

        let drain = Arc::new(Drain::default());
        if halves == Halves::Both {
            let services = assemble::services(
                &config,
                ProxyInputs {
                    table: table.clone(),
                    registry: &registry,
                    drain: drain.clone(),
                    server_conf: &server.configuration,
                    introspect_token: secrets.introspect_token,
                },
            )?;
            server.add_services(services);
        }

        let control = ControlPlane::build(
            &config,
            store,
            table,
            &registry,
            ControlSecrets {
                admin_token: secrets.admin_token,
                smtp_password: secrets.smtp_password,
                sync_token: secrets.sync_token,
            },
        )?;
        let jobs = control.jobs.clone();
        let (stop, stopped) = (watch::Sender::new(false), watch::Sender::new(false));
        let control_stop = ControlStop {
            stop: stop.clone(),
            stopped: stopped.subscribe(),
        };
        let listeners = Listeners {
            stop,
            stopped,
            admin: admin_listener.map(|l| (l, control.admin_router())),
            portal: portal_listener.map(|l| (l, control.portal_router())),
            portal_extra,
            metrics: metrics_listener.map(|l| (l, Arc::new(registry))),
            control,
            timeouts: Timeouts {
                header: config.control.header_timeout.0,
                body: config.control.body_timeout.0,
            },
        };
        server.add_service(background_service("control plane", listeners));
        server.add_service(background_service("hang-up", crate::hangup::Hangup));
        tracing::info!(
            proxy = ?config.proxy.listen,
            tls = ?config.proxy.tls_listen,
            admin = ?config.control.admin_listen,
            metrics = ?config.metrics.listen,
            "ipgate starting"
        );
        Ok(App {
            server,
            jobs,
            drain,
            drain_timeout: config.proxy.drain_timeout.0,
            control_stop,
        })
    }

    /// Serves until SIGINT or SIGTERM (which drains calls in flight first).
    pub fn run(self) {
        self.server.run(RunArgs {
            shutdown_signal: Box::new(crate::stop_signal::DrainOnTerm {
                drain: self.drain,
                timeout: self.drain_timeout,
                control: self.control_stop,
            }),
        });
        // Every runtime has stopped (Pingora drops their tasks at once, so
        // work started from the stop inside them could be cut off): no
        // refusal can be noted any more, so the windows still open are
        // written now.
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(self.jobs.finish()),
            Err(e) => {
                tracing::error!(error = %e, "no runtime to write the last login refusal summaries")
            }
        }
    }
}

/// Checks the security log's chain at start, and says what it found.
fn verify_log(store: &Store) {
    match store.verify_security_log() {
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
    metrics: Option<(TcpListener, Arc<Registry>)>,
    control: ControlPlane,
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
impl BackgroundService for Listeners {
    async fn start(&self, mut pingora_stop: ShutdownWatch) {
        let shutdown = self.stop.subscribe();
        let admin = async {
            if let Some((l, router)) = &self.admin {
                serve("admin", l, router.clone(), self.timeouts, shutdown.clone()).await;
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
            if let Some((l, router)) = &self.portal {
                let mut router = router.clone();
                if let Some(extra) = &self.portal_extra {
                    router = router.merge(extra.clone());
                }
                serve("portal", l, router, self.timeouts, shutdown.clone()).await;
            }
        };
        let mail = self
            .control
            .mailer
            .run(&self.control.publisher.store, shutdown.clone());
        // Polls held open would hold the stop for up to sync.poll_timeout.
        let feed = async {
            let mut stop = shutdown.clone();
            let _ = stop.changed().await;
            self.control.feed.stop();
        };
        let work = async {
            tokio::join!(
                admin,
                metrics,
                portal,
                mail,
                feed,
                self.control.jobs.run(shutdown.clone())
            )
        };
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
