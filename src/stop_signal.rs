//! SIGTERM drains the proxy and then the control plane before Pingora
//! stops: Pingora's own graceful stop tears its runtimes down as soon as
//! the signal is broadcast (its grace period is a fixed sleep), which
//! would cut calls the upstream is already acting on, and admin, portal
//! and sync calls half answered. So the signal is taken here, the proxy
//! drains (`ipgate_proxy::drain`), then the control plane's listeners stop
//! taking connections and finish the calls they hold (sync polls answer
//! 304 at once), all within `proxy.drain_timeout`, and only then is the
//! stop handed on. SIGINT stays a fast stop.
//!
//! SIGQUIT hands `ipgate proxy`'s listening sockets to a new process
//! started with `--upgrade` (`crate::hand_over`). A process with a store
//! cannot hand over (the new one could not open the store while this one
//! holds it), so there SIGQUIT stops as SIGTERM does.

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
    /// `ipgate proxy`: where a SIGQUIT sends the listening sockets. Its
    /// Pingora grace period is then the hand-over's bound, so a SIGTERM's
    /// stop (drained already) is handed on as a fast one.
    pub hand_over_to: Option<String>,
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
        match (&signal, &self.hand_over_to) {
            (ShutdownSignal::FastShutdown, _) => return signal,
            (ShutdownSignal::GracefulUpgrade, Some(sock)) => {
                self.drain.hand_over();
                tracing::info!(
                    socket = %sock,
                    in_flight = self.drain.in_flight(),
                    "SIGQUIT received: handing the listening sockets to the new process; \
                     every answer from here on closes its connection"
                );
                return signal;
            }
            (ShutdownSignal::GracefulUpgrade, None) => tracing::warn!(
                "SIGQUIT asks for a hand-over, which only `ipgate proxy` does (this process \
                 holds the store): stopping as on SIGTERM"
            ),
            (ShutdownSignal::GracefulTerminate, _) => {}
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
        match self.hand_over_to {
            Some(_) => ShutdownSignal::FastShutdown,
            None => ShutdownSignal::GracefulTerminate,
        }
    }
}
