//! What the head at the start of a connection's buffer calls for: parsed
//! once it is all in, judged by [`Gate::judge`], and written into the
//! connection's out buffer as an answer or as the request for the upstream.

use super::conn::Conn;
use super::handoff::Handoff;
use super::request::{self, Read};
use super::RawPath;
use crate::gate::forwarding::{forwarded_for, rewritten_path};
use crate::gate::outcome::{deny_message, Outcome};
use crate::gate::respond::{write_error_answer, RequestId};
use crate::gate::routes::PlainUpstream;
use crate::gate::{Judgement, Pending};
use ipgate_policy::account::{Body, PendingKey};
use ipgate_policy::decision::{Decision, DenyReason};
use ipgate_policy::head::Head;
use std::net::IpAddr;
use tokio::time::Instant;

/// What the head at the start of `Conn::buf` calls for.
pub(super) enum Step {
    /// The body is not all in: plan again once `Conn::buf` holds `need` bytes.
    Partial { need: usize },
    /// Pingora's path serves this request (and the connection from here).
    Other(Handoff),
    /// `Conn::out` holds the whole answer.
    Answer {
        seen: Seen,
        status: u16,
        close: bool,
    },
    /// A key must be introspected before the head is planned again.
    Introspect(PendingKey),
    /// `Conn::out` holds the request for the upstream.
    Forward {
        seen: Seen,
        route: usize,
        upstream: PlainUpstream,
        head_request: bool,
        /// The method is idempotent (RFC 9110): safe to send again.
        idempotent: bool,
        close: bool,
    },
}

/// What the metrics and the access log need of a request.
pub(super) struct Seen {
    pub id: RequestId,
    pub started: Instant,
    pub client_ip: IpAddr,
    pub route: Option<usize>,
    pub decision: Decision,
    pub account: Option<String>,
    /// Bytes of `Conn::buf` the request took.
    pub consumed: usize,
}

impl<A> RawPath<A> {
    /// Parses and judges the head at the start of `c.buf` (the proxy's order,
    /// steps 1-5), and writes what is to be sent into `c.out`.
    /// `introspected`: a key of this request was sent to introspection
    /// already; one still unanswered then refuses the call (503).
    pub(super) fn plan(&self, c: &mut Conn, introspected: bool) -> Step {
        let gate = &*self.gate;
        let mut headers = request::headers();
        let mut p = match request::read(
            &c.buf,
            &mut headers,
            gate.limits.max_bytes,
            gate.limits.max_headers,
        ) {
            // The head's end was found, so httparse cannot want more; if
            // it does, Pingora's path decides.
            Read::Partial => return Step::Other(Handoff::Unparsed),
            Read::Other(reason) => return Step::Other(reason),
            Read::Ready(p) => p,
        };
        // Handing the listeners to a new process: this answer closes the
        // connection, so the next call goes to the new one.
        p.close |= gate.drain.handing_over();
        let Some(peer) = c.peer else {
            return Step::Other(Handoff::NoPeer);
        };
        let end = p.head_len + p.body_len;
        let body = match &c.buf.get(p.head_len..end) {
            _ if p.body_len == 0 => Body::None,
            Some(b) => Body::Read(b),
            None => Body::Unread,
        };
        let j = gate.judge(peer, &p, body);
        let Ok(path) = &j.path else {
            return Step::Other(Handoff::Path);
        };
        match j.pending {
            None => {}
            Some(Pending::Body) if p.body_len <= gate.max_inspect_body => {
                return Step::Partial { need: end }
            }
            Some(Pending::Body | Pending::TooLarge) => {
                return refuse(
                    &mut c.out,
                    &mut c.scratch,
                    &j,
                    p.head_len,
                    DenyReason::BodyTooLarge,
                    p.method == "HEAD",
                );
            }
            Some(Pending::Key(_)) if introspected => {
                return refuse(
                    &mut c.out,
                    &mut c.scratch,
                    &j,
                    p.head_len,
                    DenyReason::IntrospectionUnavailable,
                    p.method == "HEAD",
                );
            }
            Some(Pending::Key(key)) => return Step::Introspect(key),
        }
        let seen = |consumed| Seen {
            id: RequestId::next(),
            started: Instant::now(),
            client_ip: j.client_ip,
            route: j.route,
            decision: j.decision,
            account: gate
                .keeps_account(j.decision)
                .then(|| j.account.map(|a| a.as_str().to_owned()))
                .flatten(),
            consumed,
        };
        c.out.clear();
        if let Decision::Deny(reason) = j.decision {
            let seen = seen(p.head_len);
            // The body is not read: close rather than read it as a request.
            let close = p.close || p.body_len > 0;
            write_error_answer(
                &mut c.out,
                &mut c.scratch,
                reason.status(),
                reason.code(),
                deny_message(reason, j.account_problem),
                Some(seen.client_ip),
                seen.id,
                close,
                p.method == "HEAD",
            );
            return Step::Answer {
                seen,
                status: reason.status(),
                close,
            };
        }
        let Some((index, r)) = j.route.and_then(|i| gate.routes.get(i).map(|r| (i, r))) else {
            return Step::Other(Handoff::NoRoute);
        };
        let Some(upstream) = r.plain else {
            return Step::Other(Handoff::TlsUpstream);
        };
        if c.buf.len() < end {
            return Step::Partial { need: end };
        }
        // The target as sent (`request::read` checked its bytes), unless
        // normalising or stripping changed the path.
        let (target, query) = match rewritten_path(r, path, p.path()) {
            None => (p.target, None),
            // The normaliser re-encodes what it decoded; should a rewritten
            // path ever hold a byte unfit for a request line, Pingora's
            // path (which parses it as a URI) decides instead.
            Some(forwarded) if !request::plain_target(forwarded) => {
                return Step::Other(Handoff::RewrittenTarget)
            }
            Some(forwarded) => (forwarded, p.query()),
        };
        c.scratch.clear();
        // The headers are searched only for a trusted peer.
        let chain = j
            .trusted_peer
            .and_then(|hop| p.values("x-forwarded-for").next().map(|prev| (hop, prev)));
        forwarded_for(&mut c.scratch, chain, j.client_ip);
        p.write_upstream_head(
            &mut c.out,
            target,
            query,
            r.upstream_host.as_bytes(),
            &c.scratch,
            j.trusted_peer.is_some(),
        );
        c.out.extend_from_slice(&c.buf[p.head_len..end]);
        Step::Forward {
            seen: seen(end),
            route: index,
            upstream,
            head_request: p.method == "HEAD",
            idempotent: matches!(
                p.method,
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            ),
            close: p.close,
        }
    }

    pub(super) fn finish(
        &self,
        seen: &Seen,
        status: u16,
        upstream_started: Option<Instant>,
        error: Option<&dyn std::fmt::Display>,
    ) {
        self.gate.record(&Outcome {
            id: seen.id,
            started: seen.started.into_std(),
            client_ip: Some(seen.client_ip),
            route: seen.route,
            decision: seen.decision,
            account: seen.account.as_deref(),
            status,
            upstream_started: upstream_started.map(Instant::into_std),
            error,
        });
    }
}

/// Writes a refusal decided outside [`Gate::judge`] into `out`; the
/// connection is closed after it (the body is not read).
fn refuse(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    j: &Judgement<'_>,
    consumed: usize,
    reason: DenyReason,
    head: bool,
) -> Step {
    let seen = Seen {
        id: RequestId::next(),
        started: Instant::now(),
        client_ip: j.client_ip,
        route: j.route,
        decision: Decision::Deny(reason),
        account: None,
        consumed,
    };
    out.clear();
    write_error_answer(
        out,
        scratch,
        reason.status(),
        reason.code(),
        reason.message(),
        Some(seen.client_ip),
        seen.id,
        true,
        head,
    );
    Step::Answer {
        seen,
        status: reason.status(),
        close: true,
    }
}
