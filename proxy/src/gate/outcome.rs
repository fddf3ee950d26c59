//! What a finished call leaves behind on either path: its metrics and its
//! access-log line, and the answers both paths give when the upstream
//! fails or a call is denied.

use super::respond::RequestId;
use super::Gate;
use ipgate_policy::account::AccountError;
use ipgate_policy::decision::{Decision, DenyReason};
use std::net::IpAddr;
use std::time::Instant;

/// The answer (status, code, message) when the upstream timed out, on
/// either path.
pub const UPSTREAM_TIMEOUT: (u16, &str, &str) = (
    504,
    "upstream_timeout",
    "The API behind the gateway did not answer in time.",
);

/// The answer when the upstream could not be reached or failed, on either
/// path.
pub const UPSTREAM_UNAVAILABLE: (u16, &str, &str) = (
    502,
    "upstream_unavailable",
    "The API behind the gateway could not be reached.",
);

/// The message a denial answers with: the reason's, or what was wrong with
/// the account id the request carried.
pub fn deny_message(reason: DenyReason, account_problem: Option<AccountError>) -> &'static str {
    match (reason, account_problem) {
        (DenyReason::Unidentified, Some(e)) => e.message(),
        _ => reason.message(),
    }
}

/// One finished request as the metrics and the access log see it.
pub struct Outcome<'a> {
    pub id: RequestId,
    pub started: Instant,
    pub client_ip: Option<IpAddr>,
    pub route: Option<usize>,
    pub decision: Decision,
    pub account: Option<&'a str>,
    /// The status answered (0 when none was).
    pub status: u16,
    pub upstream_started: Option<Instant>,
    pub error: Option<&'a dyn std::fmt::Display>,
}

impl Gate {
    /// Whether a call's account must be kept until [`Gate::record`]: for
    /// the access log, account labels, or a blocked call to count.
    pub fn keeps_account(&self, d: Decision) -> bool {
        self.access_log
            || self.metrics.labels_accounts()
            || d == Decision::Deny(DenyReason::IpNotWhitelisted)
    }

    /// Counts a finished request and writes its access-log line.
    pub fn record(&self, o: &Outcome<'_>) {
        self.metrics.count(o.route, o.decision, o.account);
        // Only a denial of a known account's address is kept for it to see.
        if let (Decision::Deny(DenyReason::IpNotWhitelisted), Some(account), Some(ip)) =
            (o.decision, o.account, o.client_ip)
        {
            let route = o
                .route
                .and_then(|r| u16::try_from(r).ok())
                .unwrap_or(u16::MAX);
            self.blocked
                .note(account, ip, route, crate::blocked::unix_now());
        }
        if let (Some(route), Some(start)) = (o.route, o.upstream_started) {
            self.metrics.observe_upstream(route, start.elapsed());
        }
        if self.access_log {
            let (dec, reason) = crate::metrics::labels(o.decision);
            tracing::info!(
                target: "ipgate::access",
                request_id = %o.id,
                route = o.route.and_then(|i| self.routes.get(i)).map(|r| r.name.as_str()).unwrap_or(crate::metrics::NO_ROUTE),
                account = o.account.unwrap_or("-"),
                client_ip = %o.client_ip.map(|i| i.to_string()).unwrap_or_default(),
                decision = dec,
                reason,
                status = o.status,
                upstream_ms = o.upstream_started.map(|s| s.elapsed().as_secs_f64() * 1000.0).unwrap_or(0.0),
                total_ms = o.started.elapsed().as_secs_f64() * 1000.0,
                error = o.error.map(|e| e.to_string()).unwrap_or_default(),
                "request"
            );
        }
    }
}
