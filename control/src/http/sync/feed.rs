//! `GET /sync/v1/snapshot`: the long poll, the sync token check, and the
//! encoded snapshot cached per version (built once however many proxies
//! ask for it).

use super::proxies::{ProxyName, SeenProxies};
use crate::api_error::ApiError;
use crate::http::admin::bearer;
use crate::http::admin::AdminToken;
use crate::service::publish::{snapshot, Publisher};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use flate2::write::GzEncoder;
use flate2::Compression;
use ipgate_policy::snapshot::Snapshot;
use serde::Deserialize;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// The media type of an encoded snapshot.
pub const SNAPSHOT_TYPE: &str = "application/vnd.ipgate.snapshot";
/// The header that carries the version of the snapshot answered.
pub const VERSION_HEADER: &str = "x-ipgate-version";

/// Feed versions. A store of one control plane (sled): the store's
/// generation (one more at every start of a control plane on it) in the
/// high 32 bits, the live table's version in the low 32; the table counts
/// from 1 at every start, the generation never goes back, so the feed's
/// versions only grow. A store shared by several control planes
/// (PostgreSQL): [`SHARED_BASE`] plus the store's own version, the same on
/// every control plane for the same changes, so a proxy may poll any of
/// them; the base keeps it above any version a sled store gave.
#[derive(Debug, Clone, Copy)]
pub struct FeedVersion {
    generation: u64,
}

/// Where a shared store's feed versions start.
pub const SHARED_BASE: u64 = 1 << 62;

impl FeedVersion {
    pub fn new(generation: u64) -> FeedVersion {
        FeedVersion { generation }
    }

    /// The feed version of the live table at `table_version` holding a
    /// shared store's `store_version` (none for a store of one plane).
    pub fn of(self, table_version: u64, store_version: Option<u64>) -> u64 {
        match store_version {
            Some(v) => SHARED_BASE.saturating_add(v),
            None => (self.generation << 32) | table_version.min(u64::from(u32::MAX)),
        }
    }
}

/// A snapshot encoded once, in both forms a proxy may ask for.
struct Encoded {
    version: u64,
    plain: Bytes,
    gzip: Bytes,
}

/// The feed's state.
pub struct SyncFeed {
    publisher: Arc<Publisher>,
    /// The sync token, kept as its SHA-256; `None`: the feed is off.
    token: Option<AdminToken>,
    version: FeedVersion,
    poll_timeout: Duration,
    cache: Mutex<Option<Arc<Encoded>>>,
    pub proxies: Arc<SeenProxies>,
    /// Set when the control plane stops: polls held open answer 304 then.
    stopping: watch::Sender<bool>,
}

impl SyncFeed {
    /// Whether the request carries the sync token; else the answer.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check_token(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<(), Response> {
        let Some(token) = &self.token else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization",
                "this control plane has no sync token: set IPGATE_SYNC_TOKEN (or sync.token_file)",
            )
            .into_response());
        };
        match bearer(headers) {
            Some(p) if token.matches(p) => Ok(()),
            Some(_) => {
                tracing::warn!(%peer, "sync request with a wrong token refused");
                Err(unauthorized("the sync token is wrong"))
            }
            None => Err(unauthorized(
                "send the sync token as `Authorization: Bearer TOKEN`",
            )),
        }
    }

    /// The store the feed's control plane writes.
    pub(crate) fn store(&self) -> &crate::store::Store {
        &self.publisher.store
    }

    pub fn new(
        publisher: Arc<Publisher>,
        token: Option<AdminToken>,
        version: FeedVersion,
        poll_timeout: Duration,
    ) -> SyncFeed {
        SyncFeed {
            publisher,
            token,
            version,
            poll_timeout,
            cache: Mutex::new(None),
            proxies: Arc::new(SeenProxies::default()),
            stopping: watch::Sender::new(false),
        }
    }

    /// The feed version of the live table now.
    pub fn current(&self) -> u64 {
        self.version.of(
            self.publisher.table.load().version(),
            self.publisher.store_version(),
        )
    }

    /// Ends the polls held open (each answers 304 at once).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// The last snapshot built, when it is newer than `after`.
    async fn last_newer_than(&self, after: u64) -> Option<Arc<Encoded>> {
        self.cache
            .lock()
            .await
            .as_ref()
            .filter(|e| e.version > after)
            .cloned()
    }

    /// The snapshot of the table as it is now, from the cache when no
    /// change came since it was built.
    async fn encoded(&self) -> Result<Arc<Encoded>, StoreError> {
        let mut cache = self.cache.lock().await;
        if let Some(e) = cache.as_ref().filter(|e| e.version == self.current()) {
            return Ok(e.clone());
        }
        let version = self.version;
        let snap = self
            .publisher
            .read_at_rest(|store, table_version| async move {
                let v = version.of(table_version, self.publisher.store_version());
                snapshot(&store, v).await.map(|s| (v, s))
            })
            .await;
        let (v, snap) = snap?;
        let (plain, gzip) = wire_forms(&snap)
            .map_err(|e| StoreError::Corrupt(format!("compressing the snapshot: {e}")))?;
        let e = Arc::new(Encoded {
            version: v,
            plain: Bytes::from(plain),
            gzip: Bytes::from(gzip),
        });
        *cache = Some(e.clone());
        Ok(e)
    }
}

/// A snapshot as the feed sends it: encoded, and that gzipped (fast
/// level: the table is mostly digits and repeats, and a poll answered
/// late costs more than a few bytes more on the wire).
pub fn wire_forms(snap: &Snapshot) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let plain = snap.encode();
    let mut gz = GzEncoder::new(Vec::with_capacity(plain.len() / 4), Compression::fast());
    gz.write_all(&plain)?;
    let gzip = gz.finish()?;
    Ok((plain, gzip))
}

/// The feed's one route, on the admin listener but outside the admin
/// token's guard: only the sync token opens it.
pub fn routes(feed: Arc<SyncFeed>) -> Router {
    Router::new()
        .route("/sync/v1/snapshot", get(poll))
        .route(
            "/sync/v1/blocked-calls",
            axum::routing::post(super::blocked::report).layer(
                axum::extract::DefaultBodyLimit::max(super::blocked::MAX_BODY),
            ),
        )
        .with_state(feed)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Poll {
    after: Option<u64>,
    proxy: Option<String>,
}

async fn poll(
    State(feed): State<Arc<SyncFeed>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Poll>, QueryRejection>,
) -> Response {
    if let Err(refused) = feed.check_token(&headers, peer) {
        return refused;
    }
    let Ok(Query(q)) = query else {
        return ApiError::bad(
            "query",
            "expected only `after` (a whole number, the version held) and `proxy` (the proxy's name)",
        )
        .into_response();
    };
    let name = match q.proxy.as_deref().map(ProxyName::parse).transpose() {
        Ok(n) => n,
        Err(why) => return ApiError::bad("proxy", why).into_response(),
    };
    let after = q.after.unwrap_or(0);
    feed.proxies.seen(
        name.unwrap_or_else(|| ProxyName::of_peer(peer)),
        peer,
        after,
    );

    let mut changes = feed.publisher.watch();
    let mut stopping = feed.stopping.subscribe();
    let deadline = tokio::time::Instant::now() + feed.poll_timeout;
    loop {
        changes.borrow_and_update();
        if feed.current() > after {
            break;
        }
        if *stopping.borrow_and_update() {
            return not_modified(feed.current());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return not_modified(feed.current()),
            _ = stopping.changed() => return not_modified(feed.current()),
            changed = changes.changed() => if changed.is_err() {
                return not_modified(feed.current());
            },
        }
    }
    match feed.encoded().await {
        Ok(e) => answer(&e, accepts_gzip(&headers)),
        Err(e) => match feed.last_newer_than(after).await {
            // The store is away: a proxy behind the last snapshot built
            // gets that one (fail static); it gets the newer one once the
            // store answers again.
            Some(last) => {
                tracing::warn!(error = %e, version = last.version, "the store cannot be read; the sync feed serves the last snapshot it built");
                answer(&last, accepts_gzip(&headers))
            }
            None => {
                tracing::error!(error = %e, "cannot build the table snapshot for the sync feed");
                ApiError::from(e).into_response()
            }
        },
    }
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "authorization", message).into_response()
}

fn not_modified(version: u64) -> Response {
    (
        StatusCode::NOT_MODIFIED,
        [(VERSION_HEADER, version.to_string())],
    )
        .into_response()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|c| {
            let mut parts = c.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn answer(e: &Encoded, gzip: bool) -> Response {
    let body = if gzip {
        e.gzip.clone()
    } else {
        e.plain.clone()
    };
    let mut resp = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(SNAPSHOT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(VERSION_HEADER, HeaderValue::from(e.version));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

#[cfg(test)]
mod tests;
