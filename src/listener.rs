//! Serves an axum router on one of the control plane's listeners (portal,
//! admin, metrics) with every read bounded: a request head must be in
//! within `control.header_timeout` of the connection opening (or of the
//! previous answer, on a kept-alive connection), and a body within
//! `control.body_timeout` of its head. `axum::serve` has neither, so a
//! client sending nothing, or one byte a minute, held a connection and a
//! task for as long as it liked.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use pingora::server::ShutdownWatch;
use std::time::Duration;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The largest body any control-plane route takes (admin imports are sent
/// in batches well under this).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// How long a listener waits for a client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
}

/// Accepts connections on `listener` until `shutdown`, then lets the
/// connections in progress finish their request.
pub async fn serve(
    name: &'static str,
    listener: &std::net::TcpListener,
    router: axum::Router,
    timeouts: Timeouts,
    mut shutdown: ShutdownWatch,
) {
    let listener = match listener
        .try_clone()
        .and_then(tokio::net::TcpListener::from_std)
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = name, error = %e, "cannot serve");
            return;
        }
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        timeouts.body,
        body_in_time,
    ));
    let mut conns = JoinSet::new();
    loop {
        let (sock, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files, most likely: wait rather than spin.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        while conns.try_join_next().is_some() {}
        let router = router.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.header)
                .serve_connection(TokioIo::new(sock), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(listener = name, %peer, error = %e, "connection ended");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

/// Reads the whole body within `limit` before the handler runs, so no
/// handler waits on a slow client (and none is cut off half-way through a
/// change). Too slow: 408; too large: 413; the connection is closed.
async fn body_in_time(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large",
                )
            } else {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            }
        }
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive within control.body_timeout",
        ),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONNECTION, "close")],
        axum::Json(serde_json::json!({"error": {"code": "bad_request", "message": message}})),
    )
        .into_response()
}
