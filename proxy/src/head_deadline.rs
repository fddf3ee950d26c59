//! `proxy.header_timeout`: a request head not complete in time closes the
//! connection (slowloris). Pingora 0.9 reads heads with a per-read timeout
//! only and has no hook before a head is read, so this wraps each accepted
//! stream: from accept (and from the first byte of each later request on a
//! kept-alive connection) until the bytes read contain the head's blank
//! line, a read past the deadline fails with `TimedOut` and Pingora closes
//! the connection.

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::TlsRef;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Wraps a Pingora app so every connection it serves has a head deadline.
pub struct HeadDeadline<A> {
    inner: Arc<A>,
    timeout: Duration,
}

impl<A> HeadDeadline<A> {
    pub fn new(inner: A, timeout: Duration) -> HeadDeadline<A> {
        HeadDeadline {
            inner: Arc::new(inner),
            timeout,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let wrapped: Stream = Box::new(DeadlineStream::new(session, self.timeout));
        self.inner.process_new(wrapped, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Finds the end of a request head (`\r\n\r\n`, or `\n\n` which parsers
/// also accept) across read boundaries.
#[derive(Debug, Default, Clone, Copy)]
struct HeadEnd(u32);

impl HeadEnd {
    /// Feeds bytes; true when a head end is among them.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.0 = (self.0 << 8) | u32::from(b);
            if self.0 == 0x0d0a_0d0a || self.0 & 0xffff == 0x0a0a {
                self.0 = 0;
                return true;
            }
        }
        false
    }
}

#[derive(Debug)]
struct DeadlineStream {
    inner: Stream,
    timeout: Duration,
    /// Running while a head is being received.
    deadline: Option<Pin<Box<Sleep>>>,
    head_end: HeadEnd,
    /// A response was written since the last head ended: the next bytes
    /// read start a new request.
    responded: bool,
}

impl DeadlineStream {
    fn new(inner: Stream, timeout: Duration) -> DeadlineStream {
        DeadlineStream {
            inner,
            timeout,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            head_end: HeadEnd::default(),
            responded: false,
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        if self.deadline.is_none() {
            if !self.responded {
                return; // body bytes, or a pipelined request already buffered
            }
            self.responded = false;
            self.head_end = HeadEnd::default();
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
        }
        if self.head_end.feed(bytes) {
            self.deadline = None;
        }
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not complete within proxy.header_timeout",
                )));
            }
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let filled = buf.filled();
            if filled.len() > before {
                this.observe(&filled[before..]);
            }
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
        if this.deadline.is_none() {
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
        if this.deadline.is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_reads() {
        let mut h = HeadEnd::default();
        assert!(!h.feed(b"GET / HTTP/1.1\r\nHost: a\r"));
        assert!(!h.feed(b"\n\r"));
        assert!(h.feed(b"\nbody"));
        let mut h = HeadEnd::default();
        assert!(h.feed(b"GET / HTTP/1.1\nHost: a\n\n"));
        let mut h = HeadEnd::default();
        assert!(!h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n"));
    }
}
