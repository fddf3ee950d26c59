//! Sending one planned request upstream on the raw path: a pooled
//! connection or a new one, and the rule for sending it again when a
//! pooled connection turns out dead.

use super::conn::Conn;
use super::exchange::{exchange, Exchange, Exchanged, UpstreamError};
use super::RawPath;
use crate::gate::routes::PlainUpstream;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What forwarding one request must know of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sending {
    /// HEAD: the answer has no body.
    pub head_request: bool,
    /// The method is idempotent (RFC 9110): safe to send again.
    pub idempotent: bool,
    /// The client asked to close after this request.
    pub close: bool,
}

/// How forwarding ended.
pub(super) enum Forwarded {
    /// The answer was passed on whole; keep the client's connection.
    Done { status: u16, keep: bool },
    /// Nothing was passed on: answer with this error and close.
    Failed(UpstreamError),
    /// Part of the answer was passed on: close.
    Broken { status: u16, error: String },
}

impl<A> RawPath<A> {
    /// Sends `c.out` upstream and passes the answer on (step 6). When a
    /// pooled connection fails before any of the answer was passed on, the
    /// request goes once more on a new connection only if the upstream
    /// cannot have acted on it: it was not written whole, or its method is
    /// `idempotent`. The whole request is still in `c.out`.
    pub(super) async fn forward(
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
            let x = Exchange {
                client: &mut c.stream,
                out: &mut c.out,
                head: &mut c.head,
                answer: &mut c.answer,
                timer: &mut c.upstream_timer,
            };
            match exchange(
                x,
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
