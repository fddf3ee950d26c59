//! The follower's Prometheus metrics (names are part of the contract,
//! docs/operations.md "Many proxies"): the version held, when a poll last
//! succeeded, whether the last poll did, and what was refused and why.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an answer from the control plane was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The snapshot's checksum does not match its payload.
    Checksum,
    /// Its version is not above the one held.
    OlderVersion,
    /// Not a snapshot this build reads: framing, format, JSON or content.
    Malformed,
    /// Over the size limit, compressed or not.
    TooLarge,
    /// The control plane refused the sync token (401).
    Unauthorized,
}

impl Rejected {
    pub const ALL: [Rejected; 5] = [
        Rejected::Checksum,
        Rejected::OlderVersion,
        Rejected::Malformed,
        Rejected::TooLarge,
        Rejected::Unauthorized,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Rejected::Checksum => "checksum",
            Rejected::OlderVersion => "older_version",
            Rejected::Malformed => "malformed",
            Rejected::TooLarge => "too_large",
            Rejected::Unauthorized => "unauthorized",
        }
    }
}

/// The follower's gauges and counters, registered once.
#[derive(Clone)]
pub struct FollowMetrics {
    version: IntGauge,
    last_success: Gauge,
    connected: IntGauge,
    rejected: Vec<IntCounter>,
}

impl FollowMetrics {
    pub fn register(registry: &Registry) -> Result<FollowMetrics, prometheus::Error> {
        let version = IntGauge::new(
            "ipgate_sync_version",
            "Version of the table this proxy holds from its control plane (0: none).",
        )?;
        let last_success = Gauge::new(
            "ipgate_sync_last_success_timestamp_seconds",
            "When a poll of the control plane last succeeded (Unix time; 0: never).",
        )?;
        let connected = IntGauge::new(
            "ipgate_sync_connected",
            "1 when the last poll of the control plane succeeded, else 0.",
        )?;
        let rejected_vec = IntCounterVec::new(
            Opts::new(
                "ipgate_sync_rejected_total",
                "Answers from the control plane this proxy refused, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(version.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(connected.clone()))?;
        registry.register(Box::new(rejected_vec.clone()))?;
        let rejected = Rejected::ALL
            .iter()
            .map(|r| rejected_vec.with_label_values(&[r.label()]))
            .collect();
        Ok(FollowMetrics {
            version,
            last_success,
            connected,
            rejected,
        })
    }

    /// Metrics no registry renders, for tests.
    #[cfg(test)]
    pub fn unregistered() -> FollowMetrics {
        FollowMetrics::register(&Registry::new()).unwrap()
    }

    pub fn held(&self, version: u64) {
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    pub fn succeeded(&self, at: SystemTime) {
        self.connected.set(1);
        self.last_success.set(
            at.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
    }

    pub fn failed(&self) {
        self.connected.set(0);
    }

    pub fn rejected(&self, why: Rejected) {
        if let Some(c) = Rejected::ALL
            .iter()
            .position(|r| *r == why)
            .and_then(|i| self.rejected.get(i))
        {
            c.inc();
        }
    }

    /// How many answers were refused for `why` (tests and logs).
    pub fn rejected_count(&self, why: Rejected) -> u64 {
        Rejected::ALL
            .iter()
            .position(|r| *r == why)
            .and_then(|i| self.rejected.get(i))
            .map_or(0, IntCounter::get)
    }
}
