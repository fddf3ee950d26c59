//! SIGTERM drains the proxy and then the control plane before Pingora
//! stops: Pingora's own graceful stop tears its runtimes down as soon as
//! the signal is broadcast (its grace period is a fixed sleep, here none),
//! which would cut calls the upstream is already acting on, and admin,
//! portal and sync calls half answered. So the signal is taken here, the
//! proxy drains (`ipgate_proxy::drain`), then the control plane's
//! listeners stop taking connections and finish the calls they hold (sync
//! polls answer 304 at once), all within `proxy.drain_timeout`, and only
//! then is the stop handed on. SIGINT stays a fast stop; SIGQUIT
//! (a graceful `--upgrade` hand-over) is handed on as it comes.

use async_trait::async_trait;
use ipgate_proxy::drain::{Drain, Drained};
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct DrainOnTerm {
    pub drain: Arc<Drain>,
    pub timeout: Duration,
    pub control: ControlStop,
}

/// How the control plane's listeners are stopped and seen stopped.
pub struct ControlStop {
    pub stop: watch::Sender<bool>,
    pub stopped: watch::Receiver<bool>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnTerm {
    async fn recv(&self) -> ShutdownSignal {
        let signal = UnixShutdownSignalWatch.recv().await;
        if !matches!(signal, ShutdownSignal::GracefulTerminate) {
            return signal;
        }
        let started = Instant::now();
        tracing::info!(
            in_flight = self.drain.in_flight(),
            timeout = ?self.timeout,
            "SIGTERM received: finishing the calls in flight, refusing new ones"
        );
        match self.drain.drain(self.timeout).await {
            Drained::Idle => tracing::info!(
                waited = ?started.elapsed(),
                "no call in flight; stopping"
            ),
            Drained::TimedOut(left) => tracing::warn!(
                in_flight = left,
                "proxy.drain_timeout passed with calls in flight; stopping anyway"
            ),
        }
        self.control.stop.send_replace(true);
        let left = self.timeout.saturating_sub(started.elapsed());
        let mut stopped = self.control.stopped.clone();
        match tokio::time::timeout(left, stopped.wait_for(|s| *s)).await {
            Ok(_) => tracing::info!(waited = ?started.elapsed(), "control plane stopped"),
            Err(_) => tracing::warn!(
                "proxy.drain_timeout passed before the control plane's calls ended; stopping anyway"
            ),
        }
        signal
    }
}
