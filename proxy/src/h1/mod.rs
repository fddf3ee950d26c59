//! The raw HTTP/1 path: plainly framed HTTP/1.1 requests to plain-HTTP
//! upstreams are judged and forwarded here, from the bytes received, with
//! no header maps built and no per-request timers. Pingora's path (with
//! the same [`Gate`]) takes a connection over, bytes already read
//! included, the moment a request is anything else: chunked or large
//! bodies, upgrades, `Expect`, HTTP/1.0, odd targets, refused heads, TLS
//! upstreams, HTTP/2. Both paths judge with [`Gate::judge`] and count with
//! [`Gate::record`], so a request gets the same answer on either.
//!
//! Why: Pingora 0.9 spends about 61,000 instructions per proxied request
//! on reading and re-serialising heads, its pool and timers, where nginx
//! spends about 20,000 on the whole request (docs/performance.md).

mod pool;
pub mod request;
mod response;
mod timer;

use crate::conn_limit::ConnLimit;
use crate::forwarding::{forwarded_for, rewritten_path};
use crate::handoff::Handoff;
use crate::head_deadline::DeadlineStream;
use crate::head_end::HeadEnd;
use crate::respond::{write_error_answer, RequestId, SHUTTING_DOWN, SHUTTING_DOWN_MESSAGE};
use crate::routes::PlainUpstream;
use crate::service::{
    deny_message, Gate, Judgement, Outcome, Pending, UPSTREAM_TIMEOUT, UPSTREAM_UNAVAILABLE,
};
use async_trait::async_trait;
use bytes::Bytes;
use ipgate_policy::account::{Body, PendingKey};
use ipgate_policy::decision::{Decision, DenyReason};
use ipgate_policy::head::Head;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::{Acceptor, TlsSettings};
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pool::{Pool, IDLE};
use request::Read;
use response::{Answer, BadResponse, Chunks, Framing};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use timer::LazyTimer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Serves connections on the raw HTTP/1 path, handing them to `fallback`
/// (Pingora's proxy) when a request is not for it. One per listener: the
/// TLS listener's does the handshake itself, so that it counts against
/// `proxy.header_timeout` and `proxy.max_connections` like a head does.
pub struct FastPath<A> {
    gate: Arc<Gate>,
    fallback: Arc<A>,
    header_timeout: Duration,
    /// Idle upstream connections, by route index (shared by the listeners).
    pools: Arc<[Pool]>,
    limit: Arc<ConnLimit>,
    tls: Option<Arc<Acceptor>>,
}

impl<A> FastPath<A> {
    /// The plain listener's.
    pub fn new(
        gate: Arc<Gate>,
        fallback: A,
        header_timeout: Duration,
        limit: Arc<ConnLimit>,
    ) -> FastPath<A> {
        let pools = (0..gate.routes.len()).map(|_| Pool::default()).collect();
        FastPath {
            gate,
            fallback: Arc::new(fallback),
            header_timeout,
            pools,
            limit,
            tls: None,
        }
    }

    /// The same path for a TLS listener, sharing the gate, the fallback,
    /// the upstream pools and the connection limit.
    pub fn with_tls(&self, tls: TlsSettings) -> FastPath<A> {
        FastPath {
            gate: self.gate.clone(),
            fallback: self.fallback.clone(),
            header_timeout: self.header_timeout,
            pools: self.pools.clone(),
            limit: self.limit.clone(),
            tls: Some(Arc::new(tls.build())),
        }
    }

    /// A newly accepted connection, from the listener, ready for its first
    /// head: counted, past its TLS handshake, under the head deadline.
    /// `None` closes it (the limit is reached, or the handshake failed or
    /// took too long).
    async fn admit(&self, stream: Stream) -> Option<DeadlineStream> {
        let accepted = Instant::now();
        let slot = self.limit.take()?;
        let stream = match &self.tls {
            None => stream,
            Some(acceptor) => {
                // The TLS listener is added to Pingora as a TCP one: its
                // streams are plain sockets.
                let Ok(tcp) = stream.into_any().downcast::<L4Stream>() else {
                    tracing::error!("a TLS listener's connection is not a TCP socket");
                    return None;
                };
                let deadline = accepted + self.header_timeout;
                match tokio::time::timeout_at(deadline, acceptor.tls_handshake(*tcp)).await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        return None;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake not done within proxy.header_timeout");
                        return None;
                    }
                }
            }
        };
        Some(DeadlineStream::new(
            stream,
            self.header_timeout,
            accepted,
            slot,
        ))
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for FastPath<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Pingora 0.9's path serves a connection it took to its end (it
        // loops over kept-alive requests itself); should a later version
        // give one back, it is ours already (counted, deadline on).
        let stream = if stream.as_any().is::<DeadlineStream>() {
            *stream.into_any().downcast::<DeadlineStream>().ok()?
        } else {
            self.admit(stream).await?
        };
        let peer = stream
            .inner()
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let h2 = stream.inner().selected_alpn_proto() == Some(ALPN::H2);
        let mut conn = Conn {
            stream,
            peer,
            buf: Vec::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(READ_CHUNK),
            scratch: Vec::new(),
            head: Vec::new(),
            answer: Vec::with_capacity(READ_CHUNK),
            idle: LazyTimer::new(),
            upstream_timer: LazyTimer::new(),
            last_active: Instant::now(),
            head_end: HeadEnd::default(),
            scanned: 0,
            head_complete: false,
            need: 0,
        };
        let reason = if h2 {
            Handoff::Http2
        } else {
            match self.serve(&mut conn, shutdown).await {
                End::Close => {
                    let _ = conn.stream.shutdown().await;
                    return None;
                }
                End::Fallback(reason) => reason,
            }
        };
        self.gate.metrics.handed_off(reason);
        conn.stream.unread(Bytes::from(conn.buf));
        self.fallback
            .process_new(Box::new(conn.stream), shutdown)
            .await
    }

    async fn cleanup(&self) {
        self.fallback.cleanup().await
    }
}

const READ_CHUNK: usize = 8 * 1024;

/// One client connection and its reusable buffers.
struct Conn {
    stream: DeadlineStream,
    peer: Option<IpAddr>,
    /// Bytes from the client not yet handled.
    buf: Vec<u8>,
    /// The next write: the head and body sent upstream, or an answer.
    out: Vec<u8>,
    scratch: Vec<u8>,
    /// The upstream answer's head as passed on.
    head: Vec<u8>,
    /// Bytes from the upstream not yet passed on.
    answer: Vec<u8>,
    /// Between requests: `IDLE` after the last one.
    idle: LazyTimer,
    upstream_timer: LazyTimer,
    last_active: Instant,
    /// The search for the end of the head at the start of `buf`.
    head_end: HeadEnd,
    /// Bytes of `buf` searched so far.
    scanned: usize,
    /// The head at the start of `buf` is all in: it may be parsed.
    head_complete: bool,
    /// `buf` must hold this many bytes before the request is planned
    /// again (its body is still coming).
    need: usize,
}

impl Conn {
    /// Drops the request just served (`consumed` bytes of `buf`); what
    /// follows, if anything, starts the next head.
    fn next_request(&mut self, consumed: usize) {
        self.buf.drain(..consumed);
        self.head_end = HeadEnd::default();
        self.scanned = 0;
        self.head_complete = false;
        self.need = 0;
    }
}

enum End {
    Close,
    /// Pingora's path takes the connection, with `Conn::buf` unread.
    Fallback(Handoff),
}

/// What the head at the start of `Conn::buf` calls for.
enum Step {
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

/// What forwarding one request must know of it.
#[derive(Debug, Clone, Copy)]
struct Sending {
    /// HEAD: the answer has no body.
    head_request: bool,
    /// The method is idempotent (RFC 9110): safe to send again.
    idempotent: bool,
    /// The client asked to close after this request.
    close: bool,
}

/// What the metrics and the access log need of a request.
struct Seen {
    id: RequestId,
    started: Instant,
    client_ip: IpAddr,
    route: Option<usize>,
    decision: Decision,
    account: Option<String>,
    /// Bytes of `Conn::buf` the request took.
    consumed: usize,
}

/// How forwarding ended.
enum Forwarded {
    /// The answer was passed on whole; keep the client's connection.
    Done { status: u16, keep: bool },
    /// Nothing was passed on: answer with this error and close.
    Failed(UpstreamError),
    /// Part of the answer was passed on: close.
    Broken { status: u16, error: String },
}

#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("connecting to the upstream: {0}")]
    Connect(io::Error),
    #[error("the upstream timed out")]
    Timeout,
    #[error("the upstream connection failed: {0}")]
    Io(io::Error),
    /// The request could not be written whole: the upstream cannot have
    /// acted on it.
    #[error("writing the request to the upstream: {0}")]
    Write(io::Error),
    #[error("the upstream closed the connection before answering")]
    Closed,
    #[error(transparent)]
    Bad(#[from] BadResponse),
}

impl UpstreamError {
    fn answer(&self) -> (u16, &'static str, &'static str) {
        match self {
            UpstreamError::Timeout => UPSTREAM_TIMEOUT,
            _ => UPSTREAM_UNAVAILABLE,
        }
    }
}

impl<A> FastPath<A> {
    async fn serve(&self, c: &mut Conn, shutdown: &ShutdownWatch) -> End {
        loop {
            if *shutdown.borrow() {
                return End::Close;
            }
            let mut introspected = false;
            let step = loop {
                // The head is parsed once it is all in, and planned again
                // only once the body it waits for is: a head or body
                // trickled in small reads costs one pass, not one per read.
                if !c.head_complete {
                    match c.head_end.feed(&c.buf[c.scanned..]) {
                        Some(n) => {
                            c.head_complete = true;
                            c.scanned += n;
                        }
                        None => c.scanned = c.buf.len(),
                    }
                }
                if c.head_complete && c.buf.len() >= c.need {
                    match self.plan(c, introspected) {
                        Step::Partial { need } => c.need = need,
                        Step::Introspect(key) => {
                            introspected = true;
                            // Whatever the answer, planning again decides: a
                            // failure leaves the key unanswered, and then
                            // `plan` says so again and the call is refused.
                            let _ = self.gate.introspect(&key).await;
                            continue;
                        }
                        step => break step,
                    }
                } else if !c.head_complete && c.buf.len() > self.gate.limits.max_bytes {
                    // Too large a head: Pingora's path answers 431.
                    return End::Fallback(Handoff::HeadTooLarge);
                }
                if c.buf.len() >= self.gate.limits.max_bytes + request::MAX_BODY {
                    return End::Fallback(Handoff::BodyLength);
                }
                match read_more(c).await {
                    Ok(0) | Err(_) if c.buf.is_empty() => return End::Close,
                    // A head cut short or timed out: Pingora's path answers
                    // it as it always did.
                    Ok(0) | Err(_) => return End::Fallback(Handoff::HeadCutShort),
                    Ok(_) => {}
                }
            };
            let keep = match step {
                Step::Other(reason) => return End::Fallback(reason),
                // Not reached: the loop above plans these again.
                Step::Partial { .. } | Step::Introspect(_) => {
                    return End::Fallback(Handoff::Unparsed)
                }
                Step::Answer {
                    seen,
                    status,
                    close,
                } => {
                    let written = write_client(c).await;
                    self.finish(&seen, status, None, None);
                    c.next_request(seen.consumed);
                    written.is_ok() && !close
                }
                Step::Forward {
                    seen,
                    route,
                    upstream,
                    head_request,
                    idempotent,
                    close,
                } => {
                    let Some(_in_flight) = self.gate.drain.enter() else {
                        // Stopping: refused before any byte went upstream.
                        c.out.clear();
                        write_error_answer(
                            &mut c.out,
                            &mut c.scratch,
                            503,
                            SHUTTING_DOWN,
                            SHUTTING_DOWN_MESSAGE,
                            Some(seen.client_ip),
                            seen.id,
                            true,
                            head_request,
                        );
                        let _ = write_client(c).await;
                        self.finish(&seen, 503, None, Some(&SHUTTING_DOWN));
                        return End::Close;
                    };
                    // Planning took microseconds: the request's start is
                    // the upstream's start (one clock read fewer).
                    let upstream_started = seen.started;
                    let forwarded = self
                        .forward(
                            c,
                            route,
                            upstream,
                            Sending {
                                head_request,
                                idempotent,
                                close,
                            },
                            upstream_started,
                        )
                        .await;
                    c.next_request(seen.consumed);
                    match forwarded {
                        Forwarded::Done { status, keep } => {
                            self.finish(&seen, status, Some(upstream_started), None);
                            keep
                        }
                        Forwarded::Failed(e) => {
                            let (status, code, message) = e.answer();
                            c.out.clear();
                            write_error_answer(
                                &mut c.out,
                                &mut c.scratch,
                                status,
                                code,
                                message,
                                Some(seen.client_ip),
                                seen.id,
                                true,
                                head_request,
                            );
                            let _ = write_client(c).await;
                            self.finish(&seen, status, Some(upstream_started), Some(&e));
                            false
                        }
                        Forwarded::Broken { status, error } => {
                            self.finish(&seen, status, Some(upstream_started), Some(&error));
                            false
                        }
                    }
                }
            };
            // Once a stop has begun, no further request on this connection.
            if !keep || self.gate.drain.draining() {
                return End::Close;
            }
            c.last_active = Instant::now();
        }
    }

    /// Parses and judges the head at the start of `c.buf` (the proxy's order,
    /// steps 1-5), and writes what is to be sent into `c.out`.
    /// `introspected`: a key of this request was sent to introspection
    /// already; one still unanswered then refuses the call (503).
    fn plan(&self, c: &mut Conn, introspected: bool) -> Step {
        let gate = &*self.gate;
        let mut headers = request::headers();
        let p = match request::read(
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
            account: (gate.access_log || gate.metrics.labels_accounts())
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

    fn finish(
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

    /// Sends `c.out` upstream and passes the answer on (step 6). When a
    /// pooled connection fails before any of the answer was passed on, the
    /// request goes once more on a new connection only if the upstream
    /// cannot have acted on it: it was not written whole, or its method is
    /// `idempotent`. The whole request is still in `c.out`.
    async fn forward(
        &self,
        c: &mut Conn,
        route: usize,
        upstream: PlainUpstream,
        how: Sending,
        started: Instant,
    ) -> Forwarded {
        let Sending {
            head_request,
            idempotent,
            close,
        } = how;
        let Some(pool) = self.pools.get(route) else {
            return Forwarded::Failed(UpstreamError::Closed);
        };
        let mut pooled = pool.take();
        loop {
            let reused = pooled.is_some();
            let mut up = match pooled.take() {
                Some(up) => up,
                None => match connect(upstream).await {
                    Ok(up) => up,
                    Err(e) => return Forwarded::Failed(e),
                },
            };
            let deadline = started + upstream.read_timeout;
            match exchange(
                c,
                &mut up,
                deadline,
                upstream.read_timeout,
                head_request,
                close,
            )
            .await
            {
                // Sent again only what the upstream cannot have acted on, as
                // nginx's proxy_next_upstream does: a request not written
                // whole, or an idempotent one; never a POST it may have
                // taken (an SMS sent twice).
                Err((e, false))
                    if reused
                        && (matches!(e, UpstreamError::Write(_))
                            || (idempotent && !matches!(e, UpstreamError::Timeout))) =>
                {
                    tracing::debug!(error = %e, "pooled upstream connection failed; sending again");
                    continue;
                }
                Err((e, false)) => return Forwarded::Failed(e),
                Err((e, true)) => {
                    return Forwarded::Broken {
                        status: 0,
                        error: e.to_string(),
                    }
                }
                Ok(Exchanged {
                    status,
                    reusable,
                    keep,
                    client_failed,
                }) => {
                    if reusable {
                        pool.put(up);
                    }
                    if let Some(e) = client_failed {
                        return Forwarded::Broken {
                            status,
                            error: format!("writing to the client: {e}"),
                        };
                    }
                    return Forwarded::Done { status, keep };
                }
            }
        }
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

async fn connect(upstream: PlainUpstream) -> Result<TcpStream, UpstreamError> {
    match tokio::time::timeout(upstream.connect_timeout, TcpStream::connect(upstream.addr)).await {
        Err(_) => Err(UpstreamError::Timeout),
        Ok(Err(e)) => Err(UpstreamError::Connect(e)),
        Ok(Ok(up)) => {
            let _ = up.set_nodelay(true);
            Ok(up)
        }
    }
}

struct Exchanged {
    status: u16,
    /// The upstream connection can be pooled.
    reusable: bool,
    /// The client's connection can be kept.
    keep: bool,
    /// Writing to the client failed (the upstream side went well).
    client_failed: Option<io::Error>,
}

/// One request and its answer on `up`. The error's flag says whether part
/// of the answer already went to the client.
/// `deadline`: for sending the request and receiving the answer's head;
/// each later read of the body gets `timeout`.
async fn exchange(
    c: &mut Conn,
    up: &mut TcpStream,
    deadline: Instant,
    timeout: Duration,
    head_request: bool,
    close: bool,
) -> Result<Exchanged, (UpstreamError, bool)> {
    let wrote = c
        .upstream_timer
        .within(deadline, up.write_all(&c.out))
        .await;
    match wrote {
        None => return Err((UpstreamError::Timeout, false)),
        Some(Err(e)) => return Err((UpstreamError::Write(e), false)),
        Some(Ok(())) => {}
    }
    c.answer.clear();
    // The head, after any interim (1xx) answers, which are passed on.
    let answer: Answer = loop {
        c.head.clear();
        match response::read(&c.answer, head_request, close, &mut c.head) {
            Err(e) => return Err((e.into(), false)),
            Ok(Some(a)) if (100..200).contains(&a.status) => {
                c.answer.drain(..a.head_len);
                if let Err(e) = c.stream.write_all(&c.head).await {
                    return Err((UpstreamError::Io(e), true));
                }
                continue;
            }
            Ok(Some(a)) => break a,
            Ok(None) => {}
        }
        if c.answer.len() > 64 * 1024 {
            return Err((BadResponse::Malformed.into(), false));
        }
        match read_upstream(c, up, deadline).await {
            Ok(0) => return Err((UpstreamError::Closed, false)),
            Ok(_) => {}
            Err(e) => return Err((e, false)),
        }
    };
    let status = answer.status;
    let body_start = answer.head_len;
    c.out.clear();
    c.out.extend_from_slice(&c.head);

    // Bytes of the body still to come, and whether the upstream sent more
    // than the answer (then it is not reused).
    let mut chunks = Chunks::default();
    let mut left: Option<u64> = match answer.framing {
        Framing::None => Some(0),
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::UntilClose => None,
    };
    let mut tidy = true;
    let mut from = body_start;
    loop {
        let avail = &c.answer[from..];
        let (take, done) = match (answer.framing, left) {
            (Framing::Chunked, _) => match chunks.feed(avail) {
                Ok(Some(n)) => (n, true),
                Ok(None) => (avail.len(), false),
                Err(e) => return Err((e.into(), true)),
            },
            (_, Some(n)) => {
                let take = (avail.len() as u64).min(n) as usize;
                left = Some(n - take as u64);
                (take, n == take as u64)
            }
            // Until close: all there is.
            (_, None) => (avail.len(), false),
        };
        if done && take < avail.len() {
            tidy = false; // bytes past the answer's end
        }
        c.out.extend_from_slice(&avail[..take]);
        if done {
            break;
        }
        // Pass on what there is, then wait for more.
        if let Err(e) = write_client(c).await {
            return Ok(Exchanged {
                status,
                reusable: false,
                keep: false,
                client_failed: Some(e),
            });
        }
        c.out.clear();
        c.answer.clear();
        from = 0;
        match read_upstream(c, up, Instant::now() + timeout).await {
            Ok(0) if answer.framing == Framing::UntilClose => break,
            Ok(0) => return Err((UpstreamError::Closed, true)),
            Ok(_) => {}
            Err(e) => return Err((e, true)),
        }
    }
    let written = write_client(c).await;
    c.answer.clear();
    Ok(Exchanged {
        status,
        // `answer.reusable` is already false for a body that ran until close.
        reusable: answer.reusable && tidy,
        keep: !close && answer.framing != Framing::UntilClose && written.is_ok(),
        client_failed: written.err(),
    })
}

/// Reads more of the client's bytes into `c.buf`; `IDLE` after the last
/// request ended, the connection is closed. The head deadline itself is
/// the stream's ([`DeadlineStream`]).
async fn read_more(c: &mut Conn) -> io::Result<usize> {
    c.buf.reserve(READ_CHUNK);
    let deadline = c.last_active + IDLE;
    match c.idle.within(deadline, c.stream.read_buf(&mut c.buf)).await {
        Some(r) => r,
        None => Err(io::ErrorKind::TimedOut.into()),
    }
}

async fn read_upstream(
    c: &mut Conn,
    up: &mut TcpStream,
    deadline: Instant,
) -> Result<usize, UpstreamError> {
    c.answer.reserve(READ_CHUNK);
    match c
        .upstream_timer
        .within(deadline, up.read_buf(&mut c.answer))
        .await
    {
        None => Err(UpstreamError::Timeout),
        Some(Err(e)) => Err(UpstreamError::Io(e)),
        Some(Ok(n)) => Ok(n),
    }
}

/// Writes `c.out` to the client.
async fn write_client(c: &mut Conn) -> io::Result<()> {
    c.stream.write_all(&c.out).await?;
    c.stream.flush().await
}
