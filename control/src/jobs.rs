//! The control plane's timed jobs, run beside its listeners: every second
//! pending requests past their expiry become expired (and the table is
//! republished), time-bound entries that ended are removed and reminders
//! of those about to end are queued; every 5 s the summaries of refused logins whose window is
//! over are written; every minute expired portal sessions and the
//! submissions' idempotency keys past their 24 hours are removed; every
//! 10 minutes blocked calls last seen over 7 days ago are forgotten. At
//! the stop, `finish` writes the refusal windows still open. Beside them,
//! the changes other control planes make to a shared store are
//! republished as the store learns of them.

use crate::limits::refusals::Refusals;
use crate::metrics::FlowMetrics;
use crate::service::entry_ends;
use crate::service::publish::Publisher;
use crate::service::requests::expire_due;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct Jobs {
    pub publisher: Arc<Publisher>,
    pub metrics: FlowMetrics,
    /// The portal's refused logins; `None` without a portal listener.
    pub refusals: Option<Arc<Refusals>>,
    /// `control.expiry_reminders`, in seconds before the end, largest first.
    pub reminders: Vec<u64>,
}

impl Jobs {
    /// Runs until `stop` turns true.
    pub async fn run(&self, stop: watch::Receiver<bool>) {
        tokio::join!(self.timed(stop.clone()), self.follow_store(stop));
    }

    /// Republishes what other control planes sharing the store change, as
    /// the store learns of it (never, for a store of this plane alone).
    async fn follow_store(&self, mut stop: watch::Receiver<bool>) {
        let store = self.publisher.store.clone();
        loop {
            let noted = tokio::select! {
                n = store.watch_changes() => n,
                _ = stop.changed() => return,
            };
            let caught_up = match noted {
                Ok(false) => continue,
                Ok(true) => self.publisher.catch_up().await,
                Err(e) => Err(e),
            };
            if let Err(e) = caught_up {
                tracing::warn!(error = %e, "cannot follow the other control planes' changes; the table stays as it is and is caught up when the store answers");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    async fn timed(&self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // The windows still open are written by `finish`, once
                // nothing can note a refusal any more.
                _ = stop.changed() => return,
            }
            ticks += 1;
            if ticks.is_multiple_of(5) {
                if let Some(r) = &self.refusals {
                    self.write_summaries(r.due()).await;
                }
            }
            if ticks.is_multiple_of(60) {
                match self.publisher.store.sweep_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "expired portal sessions removed"),
                    Err(e) => tracing::error!(error = %e, "sweeping sessions failed"),
                }
                match self.publisher.store.sweep_idempotency_keys().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(keys = n, "expired idempotency keys removed"),
                    Err(e) => tracing::error!(error = %e, "sweeping idempotency keys failed"),
                }
            }
            if ticks.is_multiple_of(600) {
                let before = crate::domain::Timestamp::now()
                    .unix()
                    .saturating_sub(crate::store::blocked::KEEP_SECS);
                if let Err(e) = self.publisher.store.sweep_blocked_calls(before).await {
                    tracing::error!(error = %e, "sweeping blocked calls older than 7 days failed");
                }
            }
            expire_due(&self.publisher, &self.metrics).await;
            entry_ends::tick(&self.publisher, &self.reminders).await;
        }
    }

    /// Writes a `login.failed_summary` for every refusal window still open.
    /// Call it once the servers have stopped.
    pub async fn finish(&self) {
        if let Some(r) = &self.refusals {
            self.write_summaries(r.drain()).await;
        }
    }

    async fn write_summaries(&self, due: Vec<crate::limits::refusals::Summary>) {
        if let Err(e) = self.publisher.store.login_failed_summaries(&due).await {
            tracing::error!(error = %e, summaries = due.len(), "writing login refusal summaries failed");
        }
    }
}
