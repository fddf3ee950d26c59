//! SIGHUP: by default it would end the process without a graceful stop.
//! ipgate keeps serving and logs what a hang-up does here: nothing is
//! reloaded live; config changes take a restart (SIGTERM, or a graceful
//! `--upgrade` hand-over). The table and identities are live anyway: every
//! admin change reaches the proxy before it is answered.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// Takes SIGHUP for the life of the server.
pub struct Hangup;

#[async_trait]
impl BackgroundService for Hangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take SIGHUP; a hang-up will end the process");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!(
                        "SIGHUP received: nothing is reloaded live; whitelists, identities and keys \
                         are always live, and config file changes take a restart (SIGTERM)"
                    );
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
