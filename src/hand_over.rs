//! The old process's side of a graceful binary upgrade (`ipgate proxy
//! --upgrade`, then SIGQUIT to the running one). The stop signal marks the
//! drain as handing over and lets Pingora send the listening sockets to
//! the new process; both accept for Pingora's 5 s, then this one stops
//! accepting. Every answer it still gives closes its connection. This
//! service then waits until no call is in flight and no client connection
//! is open, for at most `proxy.drain_timeout`, and ends the process:
//! Pingora itself would sleep its whole grace period.

use async_trait::async_trait;
use ipgate_proxy::conn_limit::ConnLimit;
use ipgate_proxy::drain::Drain;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct HandOverEnd {
    pub drain: Arc<Drain>,
    pub connections: Arc<ConnLimit>,
    pub timeout: Duration,
}

/// How often the counts are read while the last connections end.
const CHECK: Duration = Duration::from_millis(20);

#[async_trait]
impl BackgroundService for HandOverEnd {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Pingora broadcasts its stop once it no longer accepts.
        if shutdown.changed().await.is_err() || !self.drain.handing_over() {
            return;
        }
        let started = Instant::now();
        tracing::info!(
            connections = self.connections.open(),
            in_flight = self.drain.in_flight(),
            timeout = ?self.timeout,
            "hand-over: the new process accepts alone now; waiting for this one's last connections"
        );
        loop {
            let (open, in_flight) = (self.connections.open(), self.drain.in_flight());
            if open == 0 && in_flight == 0 {
                tracing::info!(waited = ?started.elapsed(), "hand-over done: no connection left; exiting");
                break;
            }
            if started.elapsed() >= self.timeout {
                tracing::warn!(
                    connections = open,
                    in_flight,
                    "hand-over: proxy.drain_timeout passed with connections open; exiting anyway"
                );
                break;
            }
            tokio::time::sleep(CHECK).await;
        }
        // A proxy holds no store; its snapshot is written to a file of its
        // own and renamed into place whole. Nothing is left to flush.
        std::process::exit(0);
    }
}
