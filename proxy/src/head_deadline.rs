//! `proxy.header_timeout`: a request head not complete in time closes the
//! connection (slowloris). Pingora 0.9 reads heads with a per-read timeout
//! only and has no hook before a head is read, so each accepted stream is
//! wrapped ([`crate::raw_path`] does it): from accept (so a TLS handshake counts
//! against the first head's time) and from the first byte of each later
//! request on a kept-alive connection, until the bytes read contain the
//! head's blank line ([`crate::head_end`]; blank lines before a request
//! line do not count), a read past the deadline fails with `TimedOut` and
//! the connection is closed.
//!
//! The wrapper can also give back bytes already read ([`DeadlineStream::unread`]),
//! so a connection the raw HTTP/1 path has started reading can be handed
//! to Pingora whole.

use crate::conn_limit::ConnSlot;
use crate::head_end::HeadEnd;
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::TlsRef;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An accepted stream with the head deadline.
#[derive(Debug)]
pub struct DeadlineStream {
    inner: Stream,
    /// Bytes read earlier and given back: served before the socket's.
    unread: Bytes,
    timeout: Duration,
    /// When the head now being received started; `None` between heads.
    head_started: Option<Instant>,
    /// One timer per connection, made the first time a head is still
    /// incomplete when the socket has nothing more to read, and reset for
    /// later heads. A head that arrives in one read never touches it.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer is set for the current head.
    armed: bool,
    head_end: HeadEnd,
    /// A response was written since the last head ended: the next bytes
    /// read start a new request.
    responded: bool,
    /// This connection's place under `proxy.max_connections`, given back
    /// when the stream is dropped (the connection closed).
    _slot: ConnSlot,
}

impl DeadlineStream {
    /// `accepted`: when the connection was accepted; its first head (and
    /// the TLS handshake before it) must be complete by `accepted + timeout`.
    pub fn new(
        inner: Stream,
        timeout: Duration,
        accepted: Instant,
        slot: ConnSlot,
    ) -> DeadlineStream {
        DeadlineStream {
            inner,
            unread: Bytes::new(),
            timeout,
            head_started: Some(accepted),
            timer: None,
            armed: false,
            head_end: HeadEnd::default(),
            responded: false,
            _slot: slot,
        }
    }

    /// Gives back bytes that were read from this stream: the next reads
    /// return them first. They were seen by the deadline already.
    pub fn unread(&mut self, bytes: Bytes) {
        self.unread = bytes;
    }

    /// The underlying stream (for its digests).
    pub fn inner(&self) -> &Stream {
        &self.inner
    }

    fn observe(&mut self, bytes: &[u8]) {
        if self.head_started.is_none() {
            if !self.responded {
                return; // body bytes, or a pipelined request already buffered
            }
            self.responded = false;
            self.head_end = HeadEnd::default();
            self.head_started = Some(Instant::now());
            self.armed = false;
        }
        if self.head_end.feed(bytes).is_some() {
            self.head_started = None;
            self.armed = false;
        }
    }

    /// Sets the timer for the current head (if not yet) and polls it, so it
    /// wakes this task at the deadline. True when the deadline has passed.
    fn wait_for_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(started) = self.head_started else {
            return false;
        };
        if !self.armed {
            let at = started + self.timeout;
            match self.timer.as_mut() {
                Some(t) => t.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        self.timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "request head not complete within proxy.header_timeout",
    )
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.advance(n);
            return Poll::Ready(Ok(()));
        }
        if this.armed && this.wait_for_deadline(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        match res {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.observe(&filled[before..]);
                }
            }
            Poll::Pending if this.wait_for_deadline(cx) => {
                return Poll::Ready(Err(timed_out()));
            }
            _ => {}
        }
        res
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.head_started.is_none() {
            this.responded = true;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.head_started.is_none() {
            this.responded = true;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for DeadlineStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for DeadlineStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for DeadlineStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for DeadlineStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for DeadlineStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for DeadlineStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
