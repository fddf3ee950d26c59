//! One request and its answer over an upstream connection: the request
//! written whole, interim answers passed on, the answer's framing followed
//! to its end and passed on as it comes. Generic over the streams, so it is
//! tested here with in-memory ones.

use super::answer::{self, Answer, BadResponse, Chunks, Framing};
use super::timer::LazyTimer;
use crate::gate::outcome::{UPSTREAM_TIMEOUT, UPSTREAM_UNAVAILABLE};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::READ_CHUNK;

#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
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
    pub(super) fn answer(&self) -> (u16, &'static str, &'static str) {
        match self {
            UpstreamError::Timeout => UPSTREAM_TIMEOUT,
            _ => UPSTREAM_UNAVAILABLE,
        }
    }
}

pub(super) struct Exchanged {
    pub status: u16,
    /// The upstream connection can be pooled.
    pub reusable: bool,
    /// The client's connection can be kept.
    pub keep: bool,
    /// Writing to the client failed (the upstream side went well).
    pub client_failed: Option<io::Error>,
}

/// What one exchange works with: the client, and the connection's buffers
/// and upstream timer.
pub(super) struct Exchange<'a, C> {
    /// Interim answers and the answer are passed on to it.
    pub client: &'a mut C,
    /// In: the whole request for the upstream. Then what is passed on.
    pub out: &'a mut Vec<u8>,
    /// The answer's head as passed on.
    pub head: &'a mut Vec<u8>,
    /// Bytes from the upstream not yet passed on.
    pub answer: &'a mut Vec<u8>,
    pub timer: &'a mut LazyTimer,
}

/// One request and its answer on `up`. The error's flag says whether part
/// of the answer already went to the client.
/// `deadline`: for sending the request and receiving the answer's head;
/// each later read of the body gets `timeout`.
pub(super) async fn exchange<C, U>(
    x: Exchange<'_, C>,
    up: &mut U,
    deadline: Instant,
    timeout: Duration,
    head_request: bool,
    close: bool,
) -> Result<Exchanged, (UpstreamError, bool)>
where
    C: AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let Exchange {
        client,
        out,
        head,
        answer: from_upstream,
        timer,
    } = x;
    let wrote = timer.within(deadline, up.write_all(out)).await;
    match wrote {
        None => return Err((UpstreamError::Timeout, false)),
        Some(Err(e)) => return Err((UpstreamError::Write(e), false)),
        Some(Ok(())) => {}
    }
    from_upstream.clear();
    // The head, after any interim (1xx) answers, which are passed on.
    let framed: Answer = loop {
        head.clear();
        match answer::read(from_upstream, head_request, close, head) {
            Err(e) => return Err((e.into(), false)),
            Ok(Some(a)) if (100..200).contains(&a.status) => {
                from_upstream.drain(..a.head_len);
                if let Err(e) = client.write_all(head).await {
                    return Err((UpstreamError::Io(e), true));
                }
                continue;
            }
            Ok(Some(a)) => break a,
            Ok(None) => {}
        }
        if from_upstream.len() > 64 * 1024 {
            return Err((BadResponse::Malformed.into(), false));
        }
        match read_upstream(from_upstream, timer, up, deadline).await {
            Ok(0) => return Err((UpstreamError::Closed, false)),
            Ok(_) => {}
            Err(e) => return Err((e, false)),
        }
    };
    let status = framed.status;
    let body_start = framed.head_len;
    out.clear();
    out.extend_from_slice(head);

    // Bytes of the body still to come, and whether the upstream sent more
    // than the answer (then it is not reused).
    let mut chunks = Chunks::default();
    let mut left: Option<u64> = match framed.framing {
        Framing::None => Some(0),
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::UntilClose => None,
    };
    let mut tidy = true;
    let mut from = body_start;
    loop {
        let avail = &from_upstream[from..];
        let (take, done) = match (framed.framing, left) {
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
        out.extend_from_slice(&avail[..take]);
        if done {
            break;
        }
        // Pass on what there is, then wait for more.
        if let Err(e) = write_all(client, out).await {
            return Ok(Exchanged {
                status,
                reusable: false,
                keep: false,
                client_failed: Some(e),
            });
        }
        out.clear();
        from_upstream.clear();
        from = 0;
        match read_upstream(from_upstream, timer, up, Instant::now() + timeout).await {
            Ok(0) if framed.framing == Framing::UntilClose => break,
            Ok(0) => return Err((UpstreamError::Closed, true)),
            Ok(_) => {}
            Err(e) => return Err((e, true)),
        }
    }
    let written = write_all(client, out).await;
    from_upstream.clear();
    Ok(Exchanged {
        status,
        // `framed.reusable` is already false for a body that ran until close.
        reusable: framed.reusable && tidy,
        keep: !close && framed.framing != Framing::UntilClose && written.is_ok(),
        client_failed: written.err(),
    })
}

async fn read_upstream<U: AsyncRead + Unpin>(
    from_upstream: &mut Vec<u8>,
    timer: &mut LazyTimer,
    up: &mut U,
    deadline: Instant,
) -> Result<usize, UpstreamError> {
    from_upstream.reserve(READ_CHUNK);
    match timer.within(deadline, up.read_buf(from_upstream)).await {
        None => Err(UpstreamError::Timeout),
        Some(Err(e)) => Err(UpstreamError::Io(e)),
        Some(Ok(n)) => Ok(n),
    }
}

/// Writes `bytes` to the client.
async fn write_all<C: AsyncWrite + Unpin>(client: &mut C, bytes: &[u8]) -> io::Result<()> {
    client.write_all(bytes).await?;
    client.flush().await
}

#[cfg(test)]
mod tests;
