//! The proxy's Prometheus metrics (names are part of the contract, docs/operations.md
//! "Metrics"). Counter handles for every (route, decision, reason) are
//! made once at start, so counting a request is one atomic add. Table
//! gauges are read from the live table at scrape time.

use crate::raw_path::handoff::Handoff;
use ipgate_policy::decision::{AllowReason, Decision, DenyReason};
use ipgate_policy::table::LiveTable;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Label used for requests that matched no route.
pub const NO_ROUTE: &str = "none";

const OUTCOMES: usize = AllowReason::ALL.len() + 2 * DenyReason::ALL.len();

fn outcome_index(d: Decision) -> usize {
    let deny = |r: DenyReason| DenyReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
    match d {
        Decision::Allow(r) => AllowReason::ALL.iter().position(|x| *x == r).unwrap_or(0),
        Decision::Report(r) => AllowReason::ALL.len() + deny(r),
        Decision::Deny(r) => AllowReason::ALL.len() + DenyReason::ALL.len() + deny(r),
    }
}

fn all_outcomes() -> Vec<Decision> {
    let mut v: Vec<Decision> = AllowReason::ALL
        .iter()
        .map(|r| Decision::Allow(*r))
        .collect();
    v.extend(DenyReason::ALL.iter().map(|r| Decision::Report(*r)));
    v.extend(DenyReason::ALL.iter().map(|r| Decision::Deny(*r)));
    v
}

/// Label values for a decision.
pub fn labels(d: Decision) -> (&'static str, &'static str) {
    match d {
        Decision::Allow(r) => ("allow", r.label()),
        Decision::Report(r) => ("report", r.code()),
        Decision::Deny(r) => ("deny", r.code()),
    }
}

/// Counters and histograms the proxy updates per request.
pub struct ProxyMetrics {
    /// `[route index (last = no route)][outcome]`
    requests: Vec<Vec<IntCounter>>,
    upstream: Vec<prometheus::Histogram>,
    by_account: Option<IntCounterVec>,
    /// By `Handoff` (its index in `Handoff::ALL`).
    handoffs: Vec<IntCounter>,
}

impl ProxyMetrics {
    /// Registers the proxy's metrics for these route names.
    pub fn register<'a>(
        registry: &Registry,
        routes: impl Iterator<Item = &'a str>,
        label_accounts: bool,
    ) -> Result<ProxyMetrics, prometheus::Error> {
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "ipgate_proxy_requests_total",
                "Requests seen by the proxy, by route and decision.",
            ),
            &["route", "decision", "reason"],
        )?;
        let upstream_vec = HistogramVec::new(
            HistogramOpts::new(
                "ipgate_proxy_upstream_seconds",
                "Time from sending a request upstream to the end of its response.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route"],
        )?;
        let handoffs_vec = IntCounterVec::new(
            Opts::new(
                "ipgate_proxy_handoffs_total",
                "Connections the raw HTTP/1 path handed to Pingora's path, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests_vec.clone()))?;
        registry.register(Box::new(upstream_vec.clone()))?;
        registry.register(Box::new(handoffs_vec.clone()))?;
        let handoffs = Handoff::ALL
            .iter()
            .map(|h| handoffs_vec.with_label_values(&[h.label()]))
            .collect();
        let by_account = if label_accounts {
            let v = IntCounterVec::new(
                Opts::new("ipgate_proxy_denied_by_account_total", "Denied (or report-only) requests by account; on because metrics.label_accounts = true."),
                &["account", "decision", "reason"],
            )?;
            registry.register(Box::new(v.clone()))?;
            Some(v)
        } else {
            None
        };
        let names: Vec<&str> = routes.chain(std::iter::once(NO_ROUTE)).collect();
        let outcomes = all_outcomes();
        let mut requests = Vec::with_capacity(names.len());
        let mut upstream = Vec::with_capacity(names.len());
        for name in &names {
            let row: Vec<IntCounter> = outcomes
                .iter()
                .map(|d| {
                    let (dec, reason) = labels(*d);
                    requests_vec.with_label_values(&[name, dec, reason])
                })
                .collect();
            debug_assert_eq!(row.len(), OUTCOMES);
            requests.push(row);
            upstream.push(upstream_vec.with_label_values(&[name]));
        }
        Ok(ProxyMetrics {
            requests,
            upstream,
            by_account,
            handoffs,
        })
    }

    /// Counts one connection handed to Pingora's path.
    pub fn handed_off(&self, reason: Handoff) {
        if let Some(c) = self.handoffs.get(reason.index()) {
            c.inc();
        }
    }

    /// Whether deny metrics carry account labels (`metrics.label_accounts`).
    pub fn labels_accounts(&self) -> bool {
        self.by_account.is_some()
    }

    /// Counts one decided request. `route` is `None` when no route matched.
    #[inline]
    pub fn count(&self, route: Option<usize>, decision: Decision, account: Option<&str>) {
        let row = route
            .unwrap_or(self.requests.len() - 1)
            .min(self.requests.len() - 1);
        if let Some(c) = self
            .requests
            .get(row)
            .and_then(|r| r.get(outcome_index(decision)))
        {
            c.inc();
        }
        if let (Some(v), Some(a), false) = (
            &self.by_account,
            account,
            matches!(decision, Decision::Allow(_)),
        ) {
            let (dec, reason) = labels(decision);
            v.with_label_values(&[a, dec, reason]).inc();
        }
    }

    /// Records one upstream round trip.
    #[inline]
    pub fn observe_upstream(&self, route: usize, took: Duration) {
        if let Some(h) = self.upstream.get(route) {
            h.observe(took.as_secs_f64());
        }
    }
}

/// Exposes the live table's size and version as gauges at scrape time.
pub struct TableCollector {
    table: Arc<LiveTable>,
    entries: IntGauge,
    expiring: IntGauge,
    accounts: IntGauge,
    blocklist: IntGauge,
    version: IntGauge,
    updated: Gauge,
    descs: Vec<Desc>,
}

impl TableCollector {
    pub fn new(table: Arc<LiveTable>) -> Result<TableCollector, prometheus::Error> {
        let entries = IntGauge::new(
            "ipgate_table_entries",
            "Whitelist entries in the live table.",
        )?;
        let expiring = IntGauge::new(
            "ipgate_table_entries_expiring",
            "Whitelist entries in the live table that end at a set time.",
        )?;
        let accounts = IntGauge::new("ipgate_table_accounts", "Accounts in the live table.")?;
        let blocklist = IntGauge::new(
            "ipgate_table_blocklist_entries",
            "Global blocklist entries in the live table.",
        )?;
        let version = IntGauge::new(
            "ipgate_table_version",
            "Version of the live table; rises with every change.",
        )?;
        let updated = Gauge::new(
            "ipgate_table_updated_timestamp_seconds",
            "When the live table last changed (Unix time).",
        )?;
        let descs = [
            &entries as &dyn Collector,
            &expiring,
            &accounts,
            &blocklist,
            &version,
            &updated,
        ]
        .iter()
        .flat_map(|c| c.desc().into_iter().cloned())
        .collect();
        Ok(TableCollector {
            table,
            entries,
            expiring,
            accounts,
            blocklist,
            version,
            updated,
            descs,
        })
    }
}

impl Collector for TableCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let t = self.table.load();
        self.entries.set(t.entries() as i64);
        self.expiring.set(t.expiring_entries() as i64);
        self.accounts.set(t.accounts() as i64);
        self.blocklist.set(t.blocklist_entries() as i64);
        self.version.set(t.version() as i64);
        self.updated.set(
            t.updated()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        [
            &self.entries as &dyn Collector,
            &self.expiring,
            &self.accounts,
            &self.blocklist,
            &self.version,
            &self.updated,
        ]
        .iter()
        .flat_map(|c| c.collect())
        .collect()
    }
}

/// The registry in Prometheus text format.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipgate_policy::table::Table;

    #[test]
    fn every_outcome_has_its_own_counter() {
        let idx: std::collections::HashSet<usize> =
            all_outcomes().into_iter().map(outcome_index).collect();
        assert_eq!(idx.len(), OUTCOMES);
    }

    #[test]
    fn counts_and_gauges_render() {
        let reg = Registry::new();
        let m = ProxyMetrics::register(&reg, ["sms", "waba"].into_iter(), false).unwrap();
        reg.register(Box::new(
            TableCollector::new(Arc::new(LiveTable::new(Table::empty()))).unwrap(),
        ))
        .unwrap();
        m.count(
            Some(1),
            Decision::Deny(DenyReason::IpNotWhitelisted),
            Some("acme"),
        );
        m.count(None, Decision::Deny(DenyReason::NoRoute), None);
        let text = render(&reg);
        assert!(text.contains(r#"ipgate_proxy_requests_total{decision="deny",reason="ip_not_whitelisted",route="waba"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"ipgate_proxy_requests_total{decision="deny",reason="no_route",route="none"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("ipgate_table_version 0"), "{text}");
        assert!(!text.contains("acme"), "no account label unless turned on");
    }
}
