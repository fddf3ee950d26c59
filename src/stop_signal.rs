//! SIGTERM drains the proxy before Pingora stops: Pingora's own graceful
//! stop tears its runtimes down as soon as the signal is broadcast (its
//! grace period is a fixed sleep, here none), which would cut calls the
//! upstream is already acting on. So the signal is taken here, the proxy
//! drains (`ipgate_proxy::drain`) for at most `proxy.drain_timeout`, and
//! only then is the stop handed on. SIGINT stays a fast stop; SIGQUIT
//! (a graceful `--upgrade` hand-over) is handed on as it comes.

use async_trait::async_trait;
use ipgate_proxy::drain::{Drain, Drained};
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DrainOnTerm {
    pub drain: Arc<Drain>,
    pub timeout: Duration,
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
        signal
    }
}
