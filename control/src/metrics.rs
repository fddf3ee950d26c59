//! The control plane's metrics (names from SPEC section 4).

use crate::flow::Status;
use prometheus::{IntCounterVec, Opts, Registry};

/// `ipgate_flow_requests_total{outcome}`, every outcome present from the start.
#[derive(Clone)]
pub struct FlowMetrics {
    requests: IntCounterVec,
}

impl FlowMetrics {
    pub fn register(registry: &Registry) -> Result<FlowMetrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "ipgate_flow_requests_total",
                "Self-service whitelist requests by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        for o in ["submitted", "approved", "rejected", "expired", "cancelled"] {
            requests.with_label_values(&[o]);
        }
        Ok(FlowMetrics { requests })
    }

    /// Counts `n` requests reaching `status` (`Pending` counts as submitted).
    pub fn count(&self, status: Status, n: u64) {
        let outcome = match status {
            Status::Pending => "submitted",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        };
        self.requests.with_label_values(&[outcome]).inc_by(n);
    }
}
