//! Pingora's path: the `ProxyHttp` service that serves whatever the raw
//! path hands over (TLS it did not take, HTTP/2, unusual heads). It
//! gathers the head through [`head::PingoraHead`], asks [`Gate::judge`]
//! and acts: a denial is answered here and never reaches the upstream.

pub mod head;

use crate::drain::InFlight;
use crate::gate::forwarding::{forwarded_for, rewritten_path};
use crate::gate::head_check;
use crate::gate::outcome::{deny_message, Outcome, UPSTREAM_TIMEOUT, UPSTREAM_UNAVAILABLE};
use crate::gate::respond::{error_body, RequestId, SHUTTING_DOWN, SHUTTING_DOWN_MESSAGE};
use crate::gate::{Gate, Pending};
use async_trait::async_trait;
use bytes::Bytes;
use head::PingoraHead;
use http::header::{self, HeaderName, HeaderValue};
use ipgate_policy::account::Body;
use ipgate_policy::client_ip::CLIENT_ADDRESS_HEADERS;
use ipgate_policy::decision::{Decision, DenyReason};
use pingora_core::prelude::*;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Built once. A header looked up by `&str` has its name parsed on every
/// call, and a value from `&str` is copied on every call.
static JSON: HeaderValue = HeaderValue::from_static("application/json");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Per-request state, filled in `request_filter` and read later.
pub struct RequestCtx {
    id: RequestId,
    started: Instant,
    client_ip: Option<IpAddr>,
    /// The socket peer (canonical) when it is a trusted proxy.
    trusted_peer: Option<IpAddr>,
    route: Option<usize>,
    account: Option<String>,
    decision: Option<Decision>,
    /// Normalised path and query to send upstream.
    upstream_uri: Option<String>,
    upstream_started: Option<Instant>,
    /// Held while the call is passed upstream, so a stop waits for it.
    in_flight: Option<InFlight>,
}

impl Gate {
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        status: u16,
        code: &str,
        message: &str,
        close: bool,
    ) -> Result<()> {
        let body = error_body(code, message, ctx.client_ip, ctx.id);
        let mut resp = ResponseHeader::build(status, Some(4))?;
        resp.insert_header(header::CONTENT_TYPE, JSON.clone())?;
        resp.insert_header(header::CONTENT_LENGTH, HeaderValue::from(body.len()))?;
        resp.insert_header(header::CACHE_CONTROL, NO_STORE.clone())?;
        if close {
            resp.insert_header(header::CONNECTION, "close")?;
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
        Ok(())
    }
}

impl Gate {
    /// Reads the whole request body for a source that needs it, within
    /// `body_timeout` and `max_inspect_body`. Pingora keeps what was read
    /// and sends it upstream unchanged (its retry buffer, 64 KiB).
    /// `Ok(Err(reason))`: refuse the call with `reason`.
    async fn read_body(&self, session: &mut Session) -> Result<Result<Bytes, DenyReason>> {
        session.as_mut().enable_retry_buffering();
        let mut buf = bytes::BytesMut::new();
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, session.read_request_body()).await {
                Err(_) => {
                    return Error::e_explain(ErrorType::ReadTimedout, "reading the request body")
                }
                Ok(r) => r?,
            };
            let Some(chunk) = chunk else {
                return Ok(Ok(buf.freeze()));
            };
            if buf.len() + chunk.len() > self.max_inspect_body {
                return Ok(Err(DenyReason::BodyTooLarge));
            }
            buf.extend_from_slice(&chunk);
        }
    }
}

fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(header::TRANSFER_ENCODING)
        || req
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The gate as Pingora's proxy holds it, shared with the raw HTTP/1 path.
pub struct SharedGate(pub Arc<Gate>);

impl std::ops::Deref for SharedGate {
    type Target = Gate;
    fn deref(&self) -> &Gate {
        &self.0
    }
}

#[async_trait]
impl ProxyHttp for SharedGate {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            id: RequestId::next(),
            started: Instant::now(),
            client_ip: None,
            trusted_peer: None,
            route: None,
            account: None,
            decision: None,
            upstream_uri: None,
            upstream_started: None,
            in_flight: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let raw = session
            .as_downstream()
            .as_http1()
            .map(|h1| h1.get_headers_raw_bytes());
        if let Err(e) = head_check::check(session.req_header(), raw.as_deref(), self.limits) {
            self.answer(session, ctx, e.status(), e.code(), &e.to_string(), true)
                .await?;
            return Ok(true);
        }

        let Some(peer) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        else {
            // Not a TCP peer: nothing to check an address against, so refuse.
            let r = DenyReason::IpNotWhitelisted;
            self.answer(
                session,
                ctx,
                r.status(),
                r.code(),
                "The client address is unknown.",
                true,
            )
            .await?;
            return Ok(true);
        };
        let mut body: Option<Bytes> = None;
        let mut introspected = false;
        // Outside the loop: the judgement that leaves it borrows the head.
        let mut head;
        let j = loop {
            let view = match &body {
                Some(b) => Body::Read(b),
                None if has_body(session.req_header()) => Body::Unread,
                None => Body::None,
            };
            head = PingoraHead(session.req_header());
            let mut j = self.judge(peer, &head, view);
            let Some(pending) = j.pending.take() else {
                break j;
            };
            let (client_ip, route) = (j.client_ip, j.route);
            drop(j);
            let refusal = match pending {
                Pending::Body if body.is_none() => match self.read_body(session).await? {
                    Ok(b) => {
                        body = Some(b);
                        continue;
                    }
                    Err(refusal) => refusal,
                },
                Pending::Key(key) if !introspected => {
                    introspected = true;
                    match self.introspect(&key).await {
                        Ok(()) => continue,
                        Err(()) => DenyReason::IntrospectionUnavailable,
                    }
                }
                // Asked once and still not answerable: refuse.
                Pending::Body | Pending::TooLarge => DenyReason::BodyTooLarge,
                Pending::Key(_) => DenyReason::IntrospectionUnavailable,
            };
            ctx.client_ip = Some(client_ip);
            ctx.route = route;
            ctx.decision = Some(Decision::Deny(refusal));
            self.answer(
                session,
                ctx,
                refusal.status(),
                refusal.code(),
                refusal.message(),
                true,
            )
            .await?;
            return Ok(true);
        };
        ctx.client_ip = Some(j.client_ip);
        ctx.trusted_peer = j.trusted_peer;
        let normalized = match j.path {
            Ok(p) => p,
            Err(e) => {
                self.answer(session, ctx, 400, "bad_request", &e.to_string(), true)
                    .await?;
                return Ok(true);
            }
        };
        let (route, decision, account_problem) = (j.route, j.decision, j.account_problem);
        ctx.route = route;
        ctx.decision = Some(decision);
        // Kept past this filter only for the access log or account labels.
        if self.keeps_account(decision) {
            ctx.account = j.account.map(|a| a.as_str().to_owned());
        }

        if let Decision::Deny(reason) = decision {
            let message = deny_message(reason, account_problem);
            let close = has_body(session.req_header());
            self.answer(session, ctx, reason.status(), reason.code(), message, close)
                .await?;
            return Ok(true);
        }

        if let Some(r) = route.and_then(|i| self.routes.get(i)) {
            let req_uri = &session.req_header().uri;
            if let Some(forwarded) = rewritten_path(r, &normalized, req_uri.path()) {
                let mut uri = forwarded.to_string();
                if let Some(q) = req_uri.query() {
                    uri.push('?');
                    uri.push_str(q);
                }
                ctx.upstream_uri = Some(uri);
            }
        }
        let Some(in_flight) = self.drain.enter() else {
            // Stopping: refused before any byte went upstream.
            self.answer(
                session,
                ctx,
                503,
                SHUTTING_DOWN,
                SHUTTING_DOWN_MESSAGE,
                true,
            )
            .await?;
            return Ok(true);
        };
        ctx.in_flight = Some(in_flight);
        if self.drain.handing_over() {
            // The next call opens a connection the new process accepts.
            session.set_keepalive(None);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // Fail closed: only a request that request_filter let through has a route here.
        match (ctx.route.and_then(|i| self.routes.get(i)), ctx.decision) {
            (Some(route), Some(d)) if d.forwards() => {
                ctx.upstream_started = Some(Instant::now());
                Ok(route.peer())
            }
            _ => Error::e_explain(
                ErrorType::InternalError,
                "no route decided for this request",
            ),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(uri) = ctx.upstream_uri.take() {
            let uri: http::Uri = uri
                .parse()
                .or_err(ErrorType::InternalError, "rebuilding the upstream URI")?;
            upstream_request.set_uri(uri);
        }
        if let Some(route) = ctx.route.and_then(|i| self.routes.get(i)) {
            upstream_request.insert_header(header::HOST, route.upstream_host.clone())?;
        }
        let value = match ctx.client_ip {
            Some(ip) => {
                let chain = ctx.trusted_peer.and_then(|hop| {
                    upstream_request
                        .headers
                        .get(&X_FORWARDED_FOR)
                        .map(|prev| (hop, prev.as_bytes()))
                });
                let mut out = Vec::new();
                forwarded_for(&mut out, chain, ip);
                HeaderValue::from_bytes(&out)
                    .or_err(ErrorType::InternalError, "building X-Forwarded-For")?
            }
            None => HeaderValue::from_static(""),
        };
        upstream_request.remove_header(&X_FORWARDED_FOR);
        upstream_request.insert_header("X-Forwarded-For", value)?;
        if ctx.trusted_peer.is_none() {
            for name in CLIENT_ADDRESS_HEADERS {
                upstream_request.remove_header(name);
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy
    where
        RequestCtx: Send + Sync,
    {
        let (code, name, message) = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(c), _) => (*c, "error", "The request failed."),
            (
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
                ErrorSource::Upstream,
            ) => UPSTREAM_TIMEOUT,
            (_, ErrorSource::Upstream) => UPSTREAM_UNAVAILABLE,
            (
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => (0, "", ""),
            (_, ErrorSource::Downstream) => (400, "bad_request", "The request could not be read."),
            _ => (
                500,
                "internal_error",
                "The gateway failed to handle the request.",
            ),
        };
        if code > 0 {
            if let Err(err) = self.answer(session, ctx, code, name, message, true).await {
                tracing::debug!(error = %err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx)
    where
        RequestCtx: Send + Sync,
    {
        let Some(decision) = ctx.decision else { return };
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        self.record(&Outcome {
            id: ctx.id,
            started: ctx.started,
            client_ip: ctx.client_ip,
            route: ctx.route,
            decision,
            account: ctx.account.as_deref(),
            status,
            upstream_started: ctx.upstream_started,
            error: e.map(|e| e as &dyn std::fmt::Display),
        });
    }
}
