//! The exchange over in-memory streams: an upstream that answers from a
//! script, read by read, and a client that is a byte vector.

use super::*;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// An upstream that takes whatever is written and answers with `reads`,
/// one chunk per read; then end of stream, or nothing ever (`hang`).
#[derive(Default)]
struct Upstream {
    reads: VecDeque<Vec<u8>>,
    written: Vec<u8>,
    hang: bool,
    refuse_writes: bool,
}

impl Upstream {
    fn answering(chunks: &[&[u8]]) -> Upstream {
        Upstream {
            reads: chunks.iter().map(|c| c.to_vec()).collect(),
            ..Upstream::default()
        }
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.reads.pop_front() {
            Some(chunk) => {
                buf.put_slice(&chunk);
                Poll::Ready(Ok(()))
            }
            // Never woken: the test's timer decides.
            None if self.hang => Poll::Pending,
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.refuse_writes {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A client that has gone: every write fails.
struct GoneClient;

impl AsyncWrite for GoneClient {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

const REQUEST: &[u8] = b"GET /v1/sms HTTP/1.1\r\nHost: api:80\r\n\r\n";
const TIMEOUT: Duration = Duration::from_secs(5);

/// What one exchange did: its result, what the client received, what the
/// upstream was sent.
struct Run {
    result: Result<Exchanged, (UpstreamError, bool)>,
    client: String,
    upstream: String,
}

async fn run_with<C: AsyncWrite + Unpin>(
    client: &mut C,
    mut up: Upstream,
    head_request: bool,
    close: bool,
) -> (Result<Exchanged, (UpstreamError, bool)>, Upstream) {
    let mut out = REQUEST.to_vec();
    let (mut head, mut answer, mut timer) = (Vec::new(), Vec::new(), LazyTimer::new());
    let x = Exchange {
        client,
        out: &mut out,
        head: &mut head,
        answer: &mut answer,
        timer: &mut timer,
    };
    let deadline = Instant::now() + TIMEOUT;
    let result = exchange(x, &mut up, deadline, TIMEOUT, head_request, close).await;
    (result, up)
}

async fn run(up: Upstream, head_request: bool, close: bool) -> Run {
    let mut client = Vec::new();
    let (result, up) = run_with(&mut client, up, head_request, close).await;
    Run {
        result,
        client: String::from_utf8_lossy(&client).into_owned(),
        upstream: String::from_utf8_lossy(&up.written).into_owned(),
    }
}

fn done(r: &Run) -> &Exchanged {
    match &r.result {
        Ok(x) => x,
        Err((e, passed_on)) => panic!("exchange failed ({e}, part passed on: {passed_on})"),
    }
}

fn failed(r: &Run) -> (&UpstreamError, bool) {
    match &r.result {
        Ok(x) => panic!("exchange did not fail: status {}", x.status),
        Err((e, passed_on)) => (e, *passed_on),
    }
}

#[tokio::test]
async fn an_answer_with_a_length_is_passed_on_and_both_sides_kept() {
    let r = run(
        Upstream::answering(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
        ]),
        false,
        false,
    )
    .await;
    let x = done(&r);
    assert_eq!(r.upstream, String::from_utf8_lossy(REQUEST));
    assert_eq!(
        r.client,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    );
    assert_eq!(x.status, 200);
    assert!(x.reusable && x.keep && x.client_failed.is_none());
}

#[tokio::test]
async fn a_body_in_many_reads_is_passed_on_whole() {
    let r = run(
        Upstream::answering(&[
            b"HTTP/1.1 200 OK\r\nContent-Len",
            b"gth: 10\r\n\r\n01",
            b"2345",
            b"6789",
        ]),
        false,
        false,
    )
    .await;
    let x = done(&r);
    assert_eq!(
        r.client,
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
    );
    assert!(x.reusable && x.keep);
}

#[tokio::test]
async fn a_chunked_body_ends_at_its_last_chunk() {
    let r = run(
        Upstream::answering(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
            b"c\r\n0\r",
            b"\n\r\n",
        ]),
        false,
        false,
    )
    .await;
    let x = done(&r);
    assert_eq!(
        r.client,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    assert!(x.reusable && x.keep);
}

#[tokio::test]
async fn interim_answers_go_to_the_client_before_the_answer() {
    let r = run(
        Upstream::answering(&[
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        ]),
        false,
        false,
    )
    .await;
    assert_eq!(done(&r).status, 201);
    assert_eq!(
        r.client,
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    );
}

#[tokio::test]
async fn a_head_request_ends_at_the_answers_head() {
    let r = run(
        Upstream::answering(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"]),
        true,
        false,
    )
    .await;
    let x = done(&r);
    assert_eq!(r.client, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    assert!(x.reusable && x.keep);
}

#[tokio::test]
async fn bytes_past_the_answer_keep_the_upstream_connection_out_of_the_pool() {
    let r = run(
        Upstream::answering(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        ]),
        false,
        false,
    )
    .await;
    let x = done(&r);
    assert_eq!(r.client, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(
        !x.reusable,
        "an upstream that sent more than its answer is not reused"
    );
    assert!(x.keep, "the client's connection is not at fault");
}

#[tokio::test]
async fn a_body_until_close_ends_both_connections() {
    let r = run(
        Upstream::answering(&[b"HTTP/1.1 200 OK\r\n\r\nall ", b"of it"]),
        false,
        false,
    )
    .await;
    let x = done(&r);
    assert!(r.client.ends_with("\r\n\r\nall of it"), "{}", r.client);
    assert!(!x.reusable && !x.keep);
}

#[tokio::test]
async fn a_client_that_asked_to_close_is_not_kept() {
    let r = run(
        Upstream::answering(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]),
        false,
        true,
    )
    .await;
    let x = done(&r);
    assert!(!x.keep);
    assert!(r.client.contains("onnection: close"), "{}", r.client);
}

#[tokio::test]
async fn an_upstream_closing_before_answering_leaves_the_client_untouched() {
    let r = run(Upstream::answering(&[]), false, false).await;
    let (e, passed_on) = failed(&r);
    assert!(matches!(e, UpstreamError::Closed), "{e}");
    assert!(!passed_on);
    assert_eq!(r.client, "", "nothing may reach the client: it gets a 502");
    assert_eq!(e.answer().0, 502);
}

#[tokio::test]
async fn an_upstream_closing_mid_body_is_broken_after_what_was_passed_on() {
    let r = run(
        Upstream::answering(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"]),
        false,
        false,
    )
    .await;
    let (e, passed_on) = failed(&r);
    assert!(matches!(e, UpstreamError::Closed), "{e}");
    assert!(
        passed_on,
        "the head and part of the body went to the client"
    );
    assert_eq!(
        r.client,
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"
    );
}

#[tokio::test]
async fn a_request_not_written_is_a_write_error_the_upstream_never_saw() {
    let up = Upstream {
        refuse_writes: true,
        ..Upstream::default()
    };
    let r = run(up, false, false).await;
    let (e, passed_on) = failed(&r);
    // A write error is what makes resending a POST safe.
    assert!(matches!(e, UpstreamError::Write(_)), "{e}");
    assert!(!passed_on);
    assert_eq!(r.client, "");
}

#[tokio::test]
async fn a_malformed_answer_is_refused_before_anything_is_passed_on() {
    let r = run(
        Upstream::answering(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        ]),
        false,
        false,
    )
    .await;
    let (e, passed_on) = failed(&r);
    assert!(matches!(e, UpstreamError::Bad(_)), "{e}");
    assert!(!passed_on);
    assert_eq!(r.client, "");
}

#[tokio::test]
async fn an_endless_head_is_refused() {
    let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
    while endless.len() <= 70 * 1024 {
        endless
            .extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let chunks: Vec<&[u8]> = endless.chunks(8 * 1024).collect();
    let r = run(Upstream::answering(&chunks), false, false).await;
    let (e, passed_on) = failed(&r);
    assert!(matches!(e, UpstreamError::Bad(_)), "{e}");
    assert!(!passed_on);
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_times_out_with_504() {
    let up = Upstream {
        hang: true,
        ..Upstream::default()
    };
    let started = Instant::now();
    let r = run(up, false, false).await;
    let (e, passed_on) = failed(&r);
    assert!(matches!(e, UpstreamError::Timeout), "{e}");
    assert!(!passed_on);
    assert_eq!(e.answer().0, 504);
    assert!(started.elapsed() >= TIMEOUT);
}

#[tokio::test]
async fn a_client_gone_mid_answer_is_reported_and_nothing_kept() {
    let up = Upstream::answering(&[b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", b"cd"]);
    let (result, _) = run_with(&mut GoneClient, up, false, false).await;
    let x = match result {
        Ok(x) => x,
        Err((e, _)) => panic!("the upstream side went well: {e}"),
    };
    assert!(x.client_failed.is_some());
    assert!(!x.reusable && !x.keep);
}
