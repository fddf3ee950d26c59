//! The control plane's metrics (names are part of the contract, docs/operations.md): requests by
//! outcome, mail by kind and result, the outbox depth, and link visits.

use crate::domain::flow::Status;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// Every label value is present from the start, so dashboards see zeros.
#[derive(Clone)]
pub struct FlowMetrics {
    requests: IntCounterVec,
    mail: IntCounterVec,
    outbox: IntGauge,
    links: IntCounterVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    values: &[&[&str]],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    for v in values {
        c.with_label_values(v);
    }
    Ok(c)
}

/// What a visit to a link page found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkResult {
    /// A live link: the review page.
    Opened,
    /// Unknown or mangled.
    Invalid,
    /// Its request expired or was cancelled.
    Expired,
    /// Its request was already decided.
    Used,
}

impl LinkResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkResult::Opened => "opened",
            LinkResult::Invalid => "invalid",
            LinkResult::Expired => "expired",
            LinkResult::Used => "used",
        }
    }
}

impl FlowMetrics {
    pub fn register(registry: &Registry) -> Result<FlowMetrics, prometheus::Error> {
        let requests = counter(
            registry,
            "ipgate_flow_requests_total",
            "Self-service whitelist requests by outcome.",
            &["outcome"],
            &[
                &["submitted"],
                &["approved"],
                &["rejected"],
                &["expired"],
                &["cancelled"],
            ],
        )?;
        let mail = counter(
            registry,
            "ipgate_mail_total",
            "Mail delivery attempts by kind and result.",
            &["kind", "result"],
            &[
                &["link", "sent"],
                &["link", "failed"],
                &["notice", "sent"],
                &["notice", "failed"],
            ],
        )?;
        let outbox = IntGauge::new("ipgate_mail_outbox_depth", "Mails waiting in the outbox.")?;
        registry.register(Box::new(outbox.clone()))?;
        let links = counter(
            registry,
            "ipgate_confirm_links_total",
            "Visits to emailed links by what they found.",
            &["result"],
            &[&["opened"], &["invalid"], &["expired"], &["used"]],
        )?;
        Ok(FlowMetrics {
            requests,
            mail,
            outbox,
            links,
        })
    }

    /// Counts `n` requests reaching `status` (`Pending` counts as submitted).
    pub fn count(&self, status: Status, n: u64) {
        let outcome = match status {
            Status::Pending => "submitted",
            s => s.as_str(),
        };
        self.requests.with_label_values(&[outcome]).inc_by(n);
    }

    /// Counts one delivery attempt.
    pub fn mail(&self, kind: &str, sent: bool) {
        let result = if sent { "sent" } else { "failed" };
        self.mail.with_label_values(&[kind, result]).inc();
    }

    pub fn set_outbox_depth(&self, depth: usize) {
        self.outbox.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn link(&self, result: LinkResult) {
        self.links.with_label_values(&[result.as_str()]).inc();
    }
}
