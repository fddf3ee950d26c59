//! The feed in-process: a real sled store, the real admin router (feed
//! and admin API on one listener), answers read as a proxy reads them.

use super::*;
use crate::app::tests::{call, create_acme, from_client, plane_in, Plane, ADMIN};
use axum::body::Body;
use axum::http::{Method, Request};
use flate2::read::GzDecoder;
use http_body_util::BodyExt;
use ipgate_policy::snapshot::Snapshot;
use serde_json::json;
use std::io::Read;
use tower::ServiceExt;

const SYNC: &str = "in-process-sync-token-0123456789";

async fn feed_plane(poll: &str) -> Plane {
    let toml = format!("[sync]\npoll_timeout = \"{poll}\"\n");
    plane_in(tempfile::tempdir().unwrap(), &toml, Some(SYNC)).await
}

struct Polled {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Polled {
    fn version(&self) -> u64 {
        self.headers
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {VERSION_HEADER}: {:?}", self.headers))
    }

    /// The snapshot as a proxy decodes it (gunzipped when it came so).
    fn snapshot(&self) -> Snapshot {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        let gz = self.headers.get(header::CONTENT_ENCODING).is_some();
        let bytes = if gz {
            let mut out = Vec::new();
            GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            self.body.to_vec()
        };
        Snapshot::decode(&bytes).unwrap()
    }
}

async fn poll(router: &Router, query: &str, token: Option<&str>, gzip: bool) -> Polled {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(format!("/sync/v1/snapshot{query}"));
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if gzip {
        req = req.header(header::ACCEPT_ENCODING, "gzip");
    }
    let req = from_client(req.body(Body::empty()).unwrap());
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Polled {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn only_the_sync_token_opens_the_feed() {
    let p = feed_plane("1s").await;
    let r = p.control.admin_router();
    assert_eq!(
        poll(&r, "", None, false).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        poll(&r, "", Some("wrong-token-0123456789abcdef"), false)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The admin token can do everything else, but not this.
    assert_eq!(
        poll(&r, "", Some(ADMIN), false).await.status,
        StatusCode::UNAUTHORIZED
    );
    // And the sync token opens nothing else.
    let a = call(&r, Method::GET, "/admin/v1/accounts", Some(SYNC), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(poll(&r, "", Some(SYNC), false).await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_sync_token_the_feed_is_off_and_says_so() {
    let p = plane_in(tempfile::tempdir().unwrap(), "", None).await;
    let polled = poll(&p.control.admin_router(), "", Some(SYNC), false).await;
    assert_eq!(polled.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&polled.body).contains("IPGATE_SYNC_TOKEN"));
}

#[tokio::test]
async fn a_bad_query_is_400() {
    let p = feed_plane("1s").await;
    let r = p.control.admin_router();
    for q in ["?after=-1", "?after=x", "?other=1", "?proxy=has%20space"] {
        assert_eq!(
            poll(&r, q, Some(SYNC), false).await.status,
            StatusCode::BAD_REQUEST,
            "{q}"
        );
    }
}

#[tokio::test]
async fn the_whole_table_comes_checksummed_at_the_version_it_names() {
    let p = feed_plane("1s").await;
    create_acme(&p).await;
    let admin = p.control.admin_router();
    let a = call(
        &admin,
        Method::POST,
        "/admin/v1/accounts/acme/whitelist",
        Some(ADMIN),
        Some(json!({"cidr": "203.0.113.7"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    for gzip in [false, true] {
        let polled = poll(&admin, "?after=0", Some(SYNC), gzip).await;
        assert_eq!(
            polled.headers.get(header::CONTENT_TYPE).unwrap(),
            SNAPSHOT_TYPE
        );
        assert_eq!(polled.headers.get(header::CONTENT_ENCODING).is_some(), gzip);
        let snap = polled.snapshot();
        assert_eq!(snap.contents().version, polled.version());
        assert_eq!(polled.version(), p.control.feed.current());
        let acme = snap
            .contents()
            .accounts
            .iter()
            .find(|a| a.id == "acme")
            .unwrap();
        assert_eq!(
            acme.nets,
            vec!["203.0.113.7/32".parse::<ipnet::IpNet>().unwrap()]
        );
    }
}

#[tokio::test]
async fn a_poll_at_the_current_version_waits_then_answers_304() {
    let p = feed_plane("1s").await;
    let r = p.control.admin_router();
    let v = poll(&r, "", Some(SYNC), false).await.version();
    let started = std::time::Instant::now();
    let polled = poll(&r, &format!("?after={v}"), Some(SYNC), false).await;
    assert_eq!(polled.status, StatusCode::NOT_MODIFIED);
    assert_eq!(polled.version(), v);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_change_ends_a_waiting_poll_with_the_new_table() {
    let p = feed_plane("30s").await;
    create_acme(&p).await;
    let r = p.control.admin_router();
    let v = poll(&r, "", Some(SYNC), false).await.version();
    let waiting = {
        let r = r.clone();
        tokio::spawn(async move {
            poll(&r, &format!("?after={v}&proxy=edge-1"), Some(SYNC), true).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the poll must wait for a change");
    let started = std::time::Instant::now();
    let a = call(
        &r,
        Method::POST,
        "/admin/v1/accounts/acme/whitelist",
        Some(ADMIN),
        Some(json!({"cidr": "198.51.100.9"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let polled = waiting.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(polled.version() > v);
    let acme = polled
        .snapshot()
        .contents()
        .accounts
        .iter()
        .find(|a| a.id == "acme")
        .cloned()
        .unwrap();
    assert_eq!(
        acme.nets,
        vec!["198.51.100.9/32".parse::<ipnet::IpNet>().unwrap()]
    );

    // The poller is listed with the version it held.
    let a = call(&r, Method::GET, "/admin/v1/proxies", Some(ADMIN), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let listed = a.json();
    assert_eq!(listed["version"], polled.version());
    let edge = listed["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "edge-1")
        .cloned()
        .unwrap();
    assert_eq!(edge["version"], v);
    assert_eq!(edge["current"], false);
}

#[tokio::test]
async fn stopping_ends_waiting_polls_at_once() {
    let p = feed_plane("30s").await;
    let r = p.control.admin_router();
    let v = poll(&r, "", Some(SYNC), false).await.version();
    let waiting = {
        let r = r.clone();
        tokio::spawn(async move { poll(&r, &format!("?after={v}"), Some(SYNC), false).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.control.feed.stop();
    let polled = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(polled.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn versions_only_grow_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let p = plane_in(dir, "", Some(SYNC)).await;
    create_acme(&p).await;
    let before = p.control.feed.current();
    let Plane { control, dir, .. } = p;
    drop(control);
    let p = plane_in(dir, "", Some(SYNC)).await;
    let after = p.control.feed.current();
    assert!(after > before, "{after} after a restart, {before} before");
    // The restarted plane serves the same data under its new version.
    let polled = poll(
        &p.control.admin_router(),
        &format!("?after={before}"),
        Some(SYNC),
        false,
    )
    .await;
    assert_eq!(polled.version(), after);
    assert!(polled
        .snapshot()
        .contents()
        .accounts
        .iter()
        .any(|a| a.id == "acme"));
}
