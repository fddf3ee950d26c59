//! The one judge both HTTP/1 paths share: from a request's peer address
//! and head it finds the client IP, the canonical path, the route, the
//! account and the decision ([`Gate::judge`]); it also counts and logs
//! each finished call ([`outcome`]). Everything here is free of Pingora's
//! request types: each path adapts its own head to [`Head`].

pub mod forwarding;
pub mod head_check;
pub mod introspect;
pub mod outcome;
pub mod path;
pub mod respond;
pub mod routes;

use crate::drain::Drain;
use crate::metrics::ProxyMetrics;
use head_check::HeadLimits;
use introspect::Introspector;
use ipgate_policy::account::{
    self, AccountError, AccountName, Body, Caller, Identified, KeyAnswers, Lookup, PendingKey,
};
use ipgate_policy::client_ip::TrustedProxies;
use ipgate_policy::decision::{decide, Decision, DenyReason, Policy};
use ipgate_policy::head::{visible_text, Head};
use ipgate_policy::table::{LiveTable, Table};
use path::PathError;
use routes::Routes;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// Everything the judge needs, built once at start and shared by both paths.
pub struct Gate {
    pub table: Arc<LiveTable>,
    pub routes: Routes,
    pub trusted: TrustedProxies,
    pub policy: Policy,
    pub limits: HeadLimits,
    pub metrics: ProxyMetrics,
    pub access_log: bool,
    /// `proxy.max_inspect_body`.
    pub max_inspect_body: usize,
    /// Bounds reading a body that a source must read (`proxy.header_timeout`).
    pub body_timeout: std::time::Duration,
    /// Set when `proxy.introspect_url` is.
    pub introspector: Option<Arc<Introspector>>,
    /// Calls passed upstream, for a graceful stop (both paths).
    pub drain: Arc<Drain>,
    /// Denied calls per (account, address), until reported.
    pub blocked: Arc<crate::blocked::BlockedCalls>,
}

/// What the proxy concludes about one request before acting on it.
pub struct Judgement<'r> {
    pub client_ip: IpAddr,
    /// The socket peer (canonical) when it is a trusted proxy.
    pub trusted_peer: Option<IpAddr>,
    /// The canonical path, or why the path is refused (400; then the
    /// fields below are not meaningful).
    pub path: Result<Cow<'r, str>, PathError>,
    pub route: Option<usize>,
    /// The account the call is judged as, as the table names it.
    pub account: Option<AccountName>,
    /// What was malformed in the call's sources, when that is the reason.
    pub account_problem: Option<AccountError>,
    /// Meaningful only when nothing is `pending`.
    pub decision: Decision,
    /// What must happen before the call can be judged.
    pub pending: Option<Pending>,
}

/// Work a path does, then judges the call again.
#[derive(Debug)]
pub enum Pending {
    /// Read the body (up to `proxy.max_inspect_body`).
    Body,
    /// Introspect this key.
    Key(PendingKey),
    /// Refuse: the body a source must read is over `max_inspect_body`.
    TooLarge,
}

impl Gate {
    /// Steps 1-5 for a request from `peer`: client IP, path, route,
    /// account, decision. Reads the live table without a lock and
    /// allocates nothing for a canonical path and identifier sources
    /// (`tests/no_alloc.rs`). `body`: what has been read of the body.
    pub fn judge<'r, H: Head>(&self, peer: IpAddr, req: &'r H, body: Body<'_>) -> Judgement<'r> {
        let client_ip = self.trusted.client_ip(peer, req.values("x-forwarded-for"));
        let peer = ipgate_config::net::canonical_ip(peer);
        let trusted_peer = self.trusted.contains(peer).then_some(peer);
        let normalized = match path::normalize_cow(req.path()) {
            Ok(p) => p,
            Err(e) => {
                return Judgement {
                    client_ip,
                    trusted_peer,
                    path: Err(e),
                    route: None,
                    account: None,
                    account_problem: None,
                    decision: Decision::Deny(DenyReason::NoRoute),
                    pending: None,
                }
            }
        };
        let host = req
            .values("host")
            .next()
            .and_then(visible_text)
            .or(req.uri_host());
        let found = self.routes.find(host, &normalized);
        let guard = self.table.load();
        let table: &Table = &guard;
        let mut pending = None;
        // A refusing table (no table yet, or a stale one) and a blocked
        // address are refused before the call's sources are read.
        let caller = match found {
            _ if table.refusal().is_some() => Caller::Nobody,
            Some((_, r))
                if r.reads_body
                    && matches!(body, Body::Read(b) if b.len() > self.max_inspect_body) =>
            {
                if !table.is_blocked(client_ip) {
                    pending = Some(Pending::TooLarge);
                }
                Caller::Nobody
            }
            Some((_, r)) if !table.is_blocked(client_ip) => {
                let lookup = Lookup {
                    table,
                    answers: self.introspector.as_deref().map(|i| i as &dyn KeyAnswers),
                };
                match account::identify(&r.sources, req, r.rest(&normalized), body, lookup) {
                    Identified::Done(c) => c,
                    Identified::NeedBody => {
                        pending = Some(Pending::Body);
                        Caller::Nobody
                    }
                    Identified::Introspect(k) => {
                        pending = Some(Pending::Key(k));
                        Caller::Nobody
                    }
                }
            }
            _ => Caller::Nobody,
        };
        let route = found.map(|(i, _)| i);
        let decision = decide(table, self.policy, client_ip, route.is_some(), caller);
        Judgement {
            client_ip,
            trusted_peer,
            path: Ok(normalized),
            route,
            account: match caller {
                Caller::Account(a) => Some(AccountName::new(a.id())),
                _ => None,
            },
            account_problem: match caller {
                Caller::Malformed(e) => Some(e),
                _ => None,
            },
            decision,
            pending,
        }
    }
}

impl Gate {
    /// Asks the introspection endpoint about `key`; `Err` when it cannot
    /// answer (then the call is refused with 503).
    pub async fn introspect(&self, key: &PendingKey) -> std::result::Result<(), ()> {
        let Some(i) = &self.introspector else {
            return Err(());
        };
        i.introspect(key).await.map_err(|e| {
            tracing::warn!(error = %e, "key introspection failed; the call is refused");
        })
    }
}
