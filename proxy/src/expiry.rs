//! Time-bound entries leave the live table by themselves: a background
//! task drops each at its time, on every proxy, whether or not a control
//! plane is reachable (a proxy serving a saved snapshot drops them too).
//! It wakes at the next entry's time, and at least every
//! [`LOOK_AGAIN`] to see a table swapped in meanwhile; the decision path
//! itself reads no clock.

use async_trait::async_trait;
use ipgate_policy::LiveTable;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest sleep between two looks at the table.
pub const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// Drops ended entries from `table` as they end.
pub struct EndEntries {
    pub table: Arc<LiveTable>,
}

impl EndEntries {
    /// Drops what ended by now; how long to sleep before the next look.
    pub fn once(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        if self.table.drop_expired(now.as_secs()) {
            let t = self.table.load();
            tracing::info!(
                version = t.version(),
                entries = t.entries(),
                expiring = t.expiring_entries(),
                "time-bound whitelist entries ended and left the table"
            );
        }
        match self.table.load().next_expiry() {
            Some(at) => Duration::from_secs(at).saturating_sub(now).min(LOOK_AGAIN),
            None => LOOK_AGAIN,
        }
    }
}

#[async_trait]
impl BackgroundService for EndEntries {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let wait = self.once();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipgate_policy::{AccountPolicy, Mode, Table};
    use ipnet::IpNet;

    #[test]
    fn an_ended_entry_is_dropped_and_the_next_look_is_soon() {
        let net: IpNet = "203.0.113.10/32".parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let policy = AccountPolicy::ending(Mode::Enforce, &[net], &[(net, now + 3600)], now);
        let table = Arc::new(LiveTable::new(Table::build(
            3,
            vec![("acme".to_string(), policy)],
            &[],
        )));
        let job = EndEntries {
            table: table.clone(),
        };
        assert_eq!(job.once(), LOOK_AGAIN, "an hour away: look again soon");
        assert_eq!(table.load().expiring_entries(), 1);
        // The same entry, ended a second ago.
        table.replace(Arc::new(Table::build(
            4,
            vec![(
                "acme".to_string(),
                AccountPolicy::ending(Mode::Enforce, &[net], &[(net, now + 1)], now),
            )],
            &[],
        )));
        assert!(job.once() <= Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(2100));
        job.once();
        let t = table.load();
        assert_eq!((t.version(), t.entries(), t.expiring_entries()), (4, 0, 0));
        assert!(!t
            .account("acme")
            .unwrap()
            .allowed
            .contains("203.0.113.10".parse().unwrap()));
    }
}
