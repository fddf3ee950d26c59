//! `proxy.max_connections`: open client connections are counted from
//! accept to close, and one past the limit is closed at accept, before a
//! TLS handshake or a byte read, so idle sockets cannot exhaust the
//! process's files and memory.

use prometheus::{IntCounter, IntGauge, Registry};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The count of open client connections, shared by every listener.
#[derive(Debug)]
pub struct ConnLimit {
    open: AtomicUsize,
    max: usize,
    gauge: IntGauge,
    refused: IntCounter,
}

/// One open connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct ConnSlot(Arc<ConnLimit>);

impl ConnLimit {
    /// At most `max` open connections, shown in `registry` as
    /// `ipgate_proxy_connections` with the excess counted in
    /// `ipgate_proxy_connections_refused_total`.
    pub fn register(registry: &Registry, max: usize) -> Result<Arc<ConnLimit>, prometheus::Error> {
        let gauge = IntGauge::new(
            "ipgate_proxy_connections",
            "Client connections open now (plain and TLS).",
        )?;
        let refused = IntCounter::new(
            "ipgate_proxy_connections_refused_total",
            "Client connections closed at accept because proxy.max_connections were open.",
        )?;
        registry.register(Box::new(gauge.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Arc::new(ConnLimit {
            open: AtomicUsize::new(0),
            max,
            gauge,
            refused,
        }))
    }

    /// A place for a newly accepted connection, or `None` (counted) when
    /// `max` are open.
    pub fn take(self: &Arc<Self>) -> Option<ConnSlot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                self.gauge.inc();
                Some(ConnSlot(self.clone()))
            }
            Err(_) => {
                self.refused.inc();
                None
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize) -> Arc<ConnLimit> {
        ConnLimit::register(&Registry::new(), max).unwrap()
    }

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back() {
        let l = limit(2);
        let a = l.take();
        let b = l.take();
        assert!(a.is_some() && b.is_some());
        assert!(l.take().is_none());
        assert_eq!(l.refused.get(), 1);
        assert_eq!(l.gauge.get(), 2);
        drop(a);
        assert_eq!(l.open(), 1);
        assert!(l.take().is_some(), "a closed connection frees its place");
    }
}
