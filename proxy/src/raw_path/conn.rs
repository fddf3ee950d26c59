//! One client connection on the raw path: its buffers, and the loop that
//! serves its requests one after another until it closes or is handed to
//! Pingora's path.

use super::forward::{Forwarded, Sending};
use super::handoff::Handoff;
use super::plan::Step;
use super::pool::IDLE;
use super::request;
use super::timer::LazyTimer;
use super::{RawPath, READ_CHUNK};
use crate::gate::respond::{write_error_answer, SHUTTING_DOWN, SHUTTING_DOWN_MESSAGE};
use crate::head_deadline::DeadlineStream;
use crate::head_end::HeadEnd;
use pingora_core::server::ShutdownWatch;
use std::io;
use std::net::IpAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// One client connection and its reusable buffers.
pub(super) struct Conn {
    pub stream: DeadlineStream,
    pub peer: Option<IpAddr>,
    /// Bytes from the client not yet handled.
    pub buf: Vec<u8>,
    /// The next write: the head and body sent upstream, or an answer.
    pub out: Vec<u8>,
    pub scratch: Vec<u8>,
    /// The upstream answer's head as passed on.
    pub head: Vec<u8>,
    /// Bytes from the upstream not yet passed on.
    pub answer: Vec<u8>,
    /// Between requests: `IDLE` after the last one.
    pub idle: LazyTimer,
    pub upstream_timer: LazyTimer,
    pub last_active: Instant,
    /// The search for the end of the head at the start of `buf`.
    pub head_end: HeadEnd,
    /// Bytes of `buf` searched so far.
    pub scanned: usize,
    /// The head at the start of `buf` is all in: it may be parsed.
    pub head_complete: bool,
    /// `buf` must hold this many bytes before the request is planned
    /// again (its body is still coming).
    pub need: usize,
}

impl Conn {
    /// Drops the request just served (`consumed` bytes of `buf`); what
    /// follows, if anything, starts the next head.
    pub fn next_request(&mut self, consumed: usize) {
        self.buf.drain(..consumed);
        self.head_end = HeadEnd::default();
        self.scanned = 0;
        self.head_complete = false;
        self.need = 0;
    }
}

pub(super) enum End {
    Close,
    /// Pingora's path takes the connection, with `Conn::buf` unread.
    Fallback(Handoff),
}

impl<A> RawPath<A> {
    pub(super) async fn serve(&self, c: &mut Conn, shutdown: &ShutdownWatch) -> End {
        loop {
            // Pingora has stopped accepting. In a hand-over the request
            // that may already be on its way here is still served (and
            // answered with `Connection: close`).
            if *shutdown.borrow() && !self.gate.drain.handing_over() {
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

/// Writes `c.out` to the client.
pub(super) async fn write_client(c: &mut Conn) -> io::Result<()> {
    c.stream.write_all(&c.out).await?;
    c.stream.flush().await
}
