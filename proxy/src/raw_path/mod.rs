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

mod answer;
mod conn;
mod exchange;
mod forward;
pub mod handoff;
mod plan;
mod pool;
pub mod request;
mod timer;

use crate::conn_limit::ConnLimit;
use crate::gate::Gate;
use crate::head_deadline::DeadlineStream;
use crate::head_end::HeadEnd;
use async_trait::async_trait;
use bytes::Bytes;
use conn::{Conn, End};
use handoff::Handoff;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pool::Pool;
use std::sync::Arc;
use std::time::Duration;
use timer::LazyTimer;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Serves connections on the raw HTTP/1 path, handing them to `fallback`
/// (Pingora's proxy) when a request is not for it. One per listener: the
/// TLS listener's does the handshake itself, so that it counts against
/// `proxy.header_timeout` and `proxy.max_connections` like a head does.
pub struct RawPath<A> {
    gate: Arc<Gate>,
    fallback: Arc<A>,
    header_timeout: Duration,
    /// Idle upstream connections, by route index (shared by the listeners).
    pools: Arc<[Pool]>,
    limit: Arc<ConnLimit>,
    tls: Option<Arc<Acceptor>>,
}

impl<A> RawPath<A> {
    /// The plain listener's.
    pub fn new(
        gate: Arc<Gate>,
        fallback: A,
        header_timeout: Duration,
        limit: Arc<ConnLimit>,
    ) -> RawPath<A> {
        let pools = (0..gate.routes.len()).map(|_| Pool::default()).collect();
        RawPath {
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
    pub fn with_tls(&self, tls: rustls::ServerConfig) -> RawPath<A> {
        RawPath {
            gate: self.gate.clone(),
            fallback: self.fallback.clone(),
            header_timeout: self.header_timeout,
            pools: self.pools.clone(),
            limit: self.limit.clone(),
            tls: Some(Arc::new(Acceptor::from_server_config(Arc::new(tls)))),
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
impl<A: ServerApp + Send + Sync + 'static> ServerApp for RawPath<A> {
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
