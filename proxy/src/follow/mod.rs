//! A proxy that follows a control plane (`ipgate proxy`): at start it
//! serves the snapshot it saved last ([`saved`]; fail static), or refuses
//! every call with 503 `no_table` until a table arrives, never allowing
//! all. Then it long-polls the control planes' sync feed in turn
//! ([`client`]), with a jittered backoff after a failure ([`backoff`]):
//! each newer snapshot is checked whole, swapped into the live table and
//! saved. With `sync.max_stale` set, a table whose last successful poll is
//! older than that is swapped for one refusing with 503 `stale_table`
//! until the next success. [`metrics`] says how it goes.

pub mod backoff;
pub mod client;
pub mod metrics;
pub mod saved;

use async_trait::async_trait;
use backoff::Backoff;
use client::{Answer, Client, ClientError, PollError};
use ipgate_config::Config;
use ipgate_policy::snapshot::{Snapshot, SnapshotError};
use ipgate_policy::table::{LiveTable, Refusal, Table};
use metrics::{FollowMetrics, Rejected};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use prometheus::Registry;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What a follower needs to know, from `[sync]` and the secrets.
#[derive(Clone)]
pub struct FollowConfig {
    /// Control planes' admin listeners, tried in turn (at least one).
    pub control_urls: Vec<String>,
    pub snapshot_path: PathBuf,
    /// Zero: serve the last table however old.
    pub max_stale: Duration,
    pub poll_timeout: Duration,
    /// This proxy's name, sent with every poll.
    pub name: String,
    /// The sync token (never logged).
    pub token: String,
}

impl std::fmt::Debug for FollowConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowConfig")
            .field("control_urls", &self.control_urls)
            .field("snapshot_path", &self.snapshot_path)
            .field("max_stale", &self.max_stale)
            .field("poll_timeout", &self.poll_timeout)
            .field("name", &self.name)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl FollowConfig {
    /// `[sync]` of `config`, with the name and token the caller settled.
    pub fn from_config(config: &Config, name: String, token: String) -> FollowConfig {
        let s = &config.sync;
        FollowConfig {
            control_urls: s.control_urls.clone(),
            snapshot_path: s.snapshot_path.clone(),
            max_stale: s.max_stale.0,
            poll_timeout: s.poll_timeout.0,
            name,
            token,
        }
    }
}

/// Why a follower could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("config key `sync.control_urls`: a proxy needs at least one control plane to follow")]
    NoControlPlane,
    #[error("config key `sync.max_stale`: {max_stale:?} must be 0 or longer than sync.poll_timeout ({poll_timeout:?}), or a poll held open would make the table stale")]
    StaleWithinPoll {
        max_stale: Duration,
        poll_timeout: Duration,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("registering the sync metrics")]
    Metrics(#[from] prometheus::Error),
}

/// What the follower holds besides the live table.
#[derive(Debug, Default)]
struct Held {
    /// The last real table received or loaded (never a refusing one).
    table: Option<Arc<Table>>,
    /// Its version (0: none).
    version: u64,
    /// When the proxy last knew its table current.
    fresh_at: Option<Instant>,
    /// The live table is the refusing stand-in for `table`.
    stale: bool,
    /// The snapshot file at start was refused: the next save must not
    /// keep it as `.prev`.
    file_refused: bool,
}

/// Follows the control planes into `table`.
pub struct Follower {
    config: FollowConfig,
    client: Client,
    table: Arc<LiveTable>,
    metrics: FollowMetrics,
    held: Mutex<Held>,
}

/// What a poll did, when it succeeded.
enum Took {
    /// A newer table is live.
    New(u64),
    /// Nothing newer: the table held is current.
    Current,
}

/// Why a poll did not succeed, for the log.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error("the snapshot is refused: {0}")]
    Refused(SnapshotError),
    #[error("the snapshot's version {got} is not above the version held, {held}")]
    Older { got: u64, held: u64 },
    #[error("checking the snapshot failed: {0}")]
    Task(String),
}

impl Follower {
    /// A follower of `config.control_urls` publishing into `table`, its
    /// metrics registered in `registry`. Nothing is loaded or polled yet.
    pub fn new(
        config: FollowConfig,
        table: Arc<LiveTable>,
        registry: &Registry,
    ) -> Result<Follower, FollowError> {
        if config.control_urls.is_empty() {
            return Err(FollowError::NoControlPlane);
        }
        if !config.max_stale.is_zero() && config.max_stale <= config.poll_timeout {
            return Err(FollowError::StaleWithinPoll {
                max_stale: config.max_stale,
                poll_timeout: config.poll_timeout,
            });
        }
        let client = Client::new(
            config.token.clone(),
            config.name.clone(),
            config.poll_timeout,
        )?;
        Ok(Follower {
            client,
            table,
            metrics: FollowMetrics::register(registry)?,
            config,
            held: Mutex::new(Held::default()),
        })
    }

    /// The table a following proxy starts with: every call refused with
    /// 503 `no_table`.
    pub fn no_table() -> Table {
        Table::refusing(Refusal::NoTable)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version held (0: none).
    pub fn version(&self) -> u64 {
        self.held().version
    }

    /// Serves the saved snapshot, or its `.prev`, when one is whole; logs
    /// each file refused and why. Returns the version loaded. Call before
    /// the listeners start, so the first call meets it.
    pub fn load_saved(&self) -> Option<u64> {
        let path = &self.config.snapshot_path;
        let found = saved::load(path);
        for refused in &found.refused {
            tracing::error!(error = %refused, "saved snapshot refused; it is not loaded");
        }
        self.held().file_refused = found.refused.iter().any(|e| e.path() == path.as_path());
        let Some(loaded) = found.loaded else {
            tracing::warn!(
                path = %path.display(),
                "no usable saved snapshot: every call is answered 503 no_table until the control plane sends a table"
            );
            return None;
        };
        // The file's time is when the proxy last knew it current (`touch`).
        let age = std::fs::metadata(&loaded.from)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or(Duration::ZERO);
        let version = loaded.snapshot.version();
        let table = loaded.snapshot.to_table();
        tracing::info!(
            path = %loaded.from.display(),
            version,
            accounts = table.accounts(),
            entries = table.entries(),
            saved_secs_ago = age.as_secs(),
            "serving the saved snapshot until the control plane answers"
        );
        let mut held = self.held();
        held.fresh_at = Some(Instant::now().checked_sub(age).unwrap_or_else(Instant::now));
        self.publish(&mut held, Arc::new(table), version);
        Some(version)
    }

    /// Makes `table` (version `version`) the real table and live.
    fn publish(&self, held: &mut Held, table: Arc<Table>, version: u64) {
        held.table = Some(table.clone());
        held.version = version;
        held.stale = false;
        self.table.replace(table);
        self.metrics.held(version);
    }

    /// Polls until `shutdown`, and watches the table's age.
    pub async fn run(&self, shutdown: ShutdownWatch) {
        tokio::join!(self.follow(shutdown.clone()), self.watch_age(shutdown));
    }

    async fn follow(&self, mut shutdown: ShutdownWatch) {
        let urls = &self.config.control_urls;
        let mut backoff = Backoff::default();
        let mut at = 0usize;
        let mut last_logged: Option<(String, Instant)> = None;
        let mut failing = false;
        loop {
            let Some(url) = urls.get(at % urls.len().max(1)) else {
                return;
            };
            let started = Instant::now();
            let after = self.version();
            let result = tokio::select! {
                r = self.client.poll(url, after) => r,
                _ = shutdown.changed() => return,
            };
            match self.take(result).await {
                Ok(took) => {
                    backoff.reset();
                    if failing {
                        failing = false;
                        last_logged = None;
                        tracing::info!(control_url = %url, version = self.version(), "following the control plane again");
                    }
                    if let Took::New(version) = took {
                        tracing::info!(control_url = %url, version, "table from the control plane is live");
                    } else if started.elapsed() < backoff::MIN {
                        // A feed that does not hold its polls is not polled in a loop.
                        sleep_or_stop(backoff::MIN, &mut shutdown).await;
                    }
                }
                Err(failure) => {
                    failing = true;
                    self.metrics.failed();
                    let text = failure.to_string();
                    let repeat = last_logged.as_ref().is_some_and(|(t, when)| {
                        *t == text && when.elapsed() < Duration::from_secs(60)
                    });
                    if !repeat {
                        let next = urls.get((at + 1) % urls.len()).unwrap_or(url);
                        let held = self.version();
                        let serving = match held {
                            0 => "no table yet, so calls are answered 503 no_table",
                            _ => "still serving the table held",
                        };
                        if matches!(failure, Failure::Poll(PollError::Unauthorized)) {
                            tracing::error!(control_url = %url, next = %next, held_version = held, error = %text, "sync poll failed; {serving}");
                        } else {
                            tracing::warn!(control_url = %url, next = %next, held_version = held, error = %text, "sync poll failed; {serving}");
                        }
                        last_logged = Some((text, Instant::now()));
                    }
                    at = at.wrapping_add(1);
                    if !sleep_or_stop(backoff.after_failure(), &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Acts on one poll's result.
    async fn take(&self, result: Result<Answer, PollError>) -> Result<Took, Failure> {
        let (bytes, announced) = match result {
            Ok(Answer::NotModified) => {
                self.fresh();
                let path = self.config.snapshot_path.clone();
                if self.version() > 0 {
                    let _ = tokio::task::spawn_blocking(move || saved::touch(&path)).await;
                }
                return Ok(Took::Current);
            }
            Ok(Answer::Snapshot { bytes, announced }) => (bytes, announced),
            Err(e) => {
                match &e {
                    PollError::Unauthorized => self.metrics.rejected(Rejected::Unauthorized),
                    PollError::TooLarge => self.metrics.rejected(Rejected::TooLarge),
                    PollError::Gzip(_) => self.metrics.rejected(Rejected::Malformed),
                    _ => {}
                }
                return Err(e.into());
            }
        };
        let held = self.version();
        // An announced version not above the one held is refused before
        // the snapshot is parsed.
        if let Some(got) = announced.filter(|v| *v <= held) {
            self.metrics.rejected(Rejected::OlderVersion);
            return Err(Failure::Older { got, held });
        }
        let checked = tokio::task::spawn_blocking(move || {
            Snapshot::decode(&bytes).map(|s| {
                let table = s.to_table();
                (s.version(), table, bytes)
            })
        })
        .await
        .map_err(|e| Failure::Task(e.to_string()))?;
        let (version, table, bytes) = match checked {
            Ok(t) => t,
            Err(e) => {
                self.metrics.rejected(match e {
                    SnapshotError::Checksum => Rejected::Checksum,
                    SnapshotError::TooLarge(_) => Rejected::TooLarge,
                    _ => Rejected::Malformed,
                });
                return Err(Failure::Refused(e));
            }
        };
        {
            let mut h = self.held();
            if version <= h.version {
                self.metrics.rejected(Rejected::OlderVersion);
                return Err(Failure::Older {
                    got: version,
                    held: h.version,
                });
            }
            self.publish(&mut h, Arc::new(table), version);
        }
        self.fresh();
        let path = self.config.snapshot_path.clone();
        let current = match std::mem::take(&mut self.held().file_refused) {
            true => saved::Current::Replace,
            false => saved::Current::Keep,
        };
        let saving = tokio::task::spawn_blocking(move || saved::save(&path, &bytes, current)).await;
        match saving {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, version, "cannot save the snapshot; the table is live, but a restart cannot start from it")
            }
            Err(e) => tracing::error!(error = %e, version, "cannot save the snapshot"),
        }
        Ok(Took::New(version))
    }

    /// A successful poll: the table held is current.
    fn fresh(&self) {
        let mut h = self.held();
        h.fresh_at = Some(Instant::now());
        self.metrics.succeeded(SystemTime::now());
        if h.stale {
            if let Some(t) = h.table.clone() {
                tracing::info!(
                    version = h.version,
                    "the table is current again; calls are judged again"
                );
                let v = h.version;
                self.publish(&mut h, t, v);
            }
        }
    }

    /// With `sync.max_stale` set, swaps in a refusing table once the last
    /// success is older than that.
    async fn watch_age(&self, mut shutdown: ShutdownWatch) {
        let max = self.config.max_stale;
        if max.is_zero() {
            let _ = shutdown.changed().await;
            return;
        }
        let tick = (max / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
        while sleep_or_stop(tick, &mut shutdown).await {
            self.check_age(max);
        }
    }

    fn check_age(&self, max: Duration) {
        let mut h = self.held();
        let Some(fresh_at) = h.fresh_at else { return };
        if h.stale || fresh_at.elapsed() <= max {
            return;
        }
        let Some(real) = h.table.clone() else { return };
        h.stale = true;
        tracing::warn!(
            version = h.version,
            last_success_secs_ago = fresh_at.elapsed().as_secs(),
            max_stale = ?max,
            "the table is stale (sync.max_stale): every call is answered 503 stale_table until a poll succeeds"
        );
        let refusing = (*real).clone().with_refusal(Some(Refusal::Stale));
        self.table.replace(Arc::new(refusing));
    }
}

/// Sleeps for `d`; false when `shutdown` came first.
async fn sleep_or_stop(d: Duration, shutdown: &mut ShutdownWatch) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

#[async_trait]
impl BackgroundService for Follower {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown).await;
    }
}

#[cfg(test)]
mod tests;
