//! Many proxies, one control plane, through the real binaries: `ipgate
//! proxy` with no table refuses every call (503 `no_table`), never allows
//! all; it serves its saved snapshot at once when the control plane is
//! down, refuses a damaged one with a log line, says clearly when its sync
//! token is wrong; and a fleet follows `ipgate control` within a second,
//! keeps serving through the control plane's crash and restarts from its
//! snapshot while it is down.

use crate::common::fleet::*;
use crate::common::*;
use ipgate_policy::Mode;
use std::time::{Duration, Instant};

fn acme(proxy: &FleetProxy, from: &str) -> (u16, String) {
    proxy.get(from, "/sms/send", &[("X-Account-Id", "acme")])
}

#[test]
fn with_no_table_and_no_control_plane_every_call_is_refused_503_no_table() {
    let up = Upstream::start();
    let proxy = FleetProxy::start(&up, FleetOpts::following(&[FleetOpts::nobody()]));
    for path in ["/sms/send", "/elsewhere"] {
        let (status, body) = proxy.get("127.0.0.1", path, &[("X-Account-Id", "acme")]);
        assert_eq!((status, code(&body).as_str()), (503, "no_table"), "{body}");
    }
    let (status, body) = proxy.get("127.0.0.1", "/sms/send", &[]);
    assert_eq!((status, code(&body).as_str()), (503, "no_table"), "{body}");
    assert_eq!(up.hits(), 0, "nothing reaches the upstream");
    assert_eq!(proxy.ops("/readyz").0, 503);
    assert_eq!(proxy.ops("/healthz").0, 200);
    let m = proxy.metrics_text();
    for want in [
        "ipgate_sync_version 0",
        "ipgate_sync_connected 0",
        "ipgate_sync_last_success_timestamp_seconds 0",
        r#"ipgate_proxy_requests_total{decision="deny",reason="no_table",route="sms"} 2"#,
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    assert!(
        proxy.log().contains("no usable saved snapshot"),
        "{}",
        proxy.log()
    );
    if let Some(out) = promtool(&["check", "metrics"], &m) {
        assert!(
            out.status.success(),
            "promtool refused the proxy's metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_saved_snapshot_is_served_at_once_with_the_control_plane_down() {
    let up = Upstream::start();
    let saved = snapshot(5, "acme", Mode::Enforce, &["127.0.0.1/32"]);
    let proxy = FleetProxy::start(
        &up,
        FleetOpts {
            snapshot: Some(saved.encode()),
            ..FleetOpts::following(&[FleetOpts::nobody()])
        },
    );
    let (status, body) = acme(&proxy, "127.0.0.1");
    assert_eq!((status, body.as_str()), (200, "upstream says hello"));
    let (status, body) = acme(&proxy, "127.0.0.2");
    assert_eq!((status, code(&body).as_str()), (403, "ip_not_whitelisted"));
    assert_eq!(proxy.ops("/readyz").0, 200);
    let m = proxy.metrics_text();
    assert!(m.contains("ipgate_sync_version 5"), "{m}");
    assert!(m.contains("ipgate_table_version 5"), "{m}");
    assert!(
        proxy.log().contains("serving the saved snapshot"),
        "{}",
        proxy.log()
    );
    let mut proxy = proxy;
    assert!(proxy.stop().success(), "SIGTERM stops it cleanly");
}

#[test]
fn a_truncated_snapshot_is_refused_with_a_log_line_and_never_loaded() {
    let up = Upstream::start();
    let whole = snapshot(5, "acme", Mode::Off, &[]).encode();
    let mut proxy = FleetProxy::start(
        &up,
        FleetOpts {
            snapshot: Some(whole[..whole.len() - 7].to_vec()),
            ..FleetOpts::following(&[FleetOpts::nobody()])
        },
    );
    // A feature-off account would let everything through: not one call is.
    let (status, body) = acme(&proxy, "127.0.0.1");
    assert_eq!((status, code(&body).as_str()), (503, "no_table"), "{body}");
    assert_eq!(up.hits(), 0);
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains("saved snapshot refused"))
        .unwrap_or_else(|| panic!("no refusal line:\n{log}"));
    assert!(
        line.contains(&proxy.snapshot_path().display().to_string()) && line.contains("truncated"),
        "{line}"
    );

    // With a whole `.prev` beside it, the proxy starts from that.
    proxy.kill();
    std::fs::write(
        proxy.prev_path(),
        snapshot(4, "acme", Mode::Enforce, &["127.0.0.1/32"]).encode(),
    )
    .unwrap();
    proxy.restart();
    assert_eq!(acme(&proxy, "127.0.0.1").0, 200);
    assert_eq!(acme(&proxy, "127.0.0.2").0, 403);
    assert!(proxy.metrics_text().contains("ipgate_sync_version 4"));
}

#[test]
fn a_wrong_sync_token_is_logged_clearly_and_nothing_is_allowed() {
    let up = Upstream::start();
    let control = Server::start(&up, ServerOpts::control_plane());
    control.account("acme", "off", &[]);
    let proxy = FleetProxy::start(
        &up,
        FleetOpts {
            token: Some("not-the-sync-token-0123456789".to_string()),
            ..FleetOpts::following(&[format!("http://{}", control.admin)])
        },
    );
    proxy.wait_until("the 401 log line", 10, || {
        proxy.log().contains("IPGATE_SYNC_TOKEN")
    });
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains("IPGATE_SYNC_TOKEN"))
        .unwrap_or_default();
    assert!(line.contains("ERROR") && line.contains("401"), "{line}");
    assert!(
        !log.contains("not-the-sync-token"),
        "the token is never logged"
    );
    assert!(!log.contains(SYNC_TOKEN));
    assert_eq!(acme(&proxy, "127.0.0.1").0, 503);
    proxy.wait_until("the refusal counted", 10, || {
        proxy.metrics_text().lines().any(|l| {
            l.starts_with(r#"ipgate_sync_rejected_total{reason="unauthorized"}"#)
                && !l.ends_with(" 0")
        })
    });
}

/// Three proxies and one `ipgate control`.
struct Fleet {
    up: Upstream,
    control: Server,
    proxies: Vec<FleetProxy>,
}

fn fleet() -> Fleet {
    let up = Upstream::start();
    let control = Server::start(&up, ServerOpts::control_plane());
    control.account("acme", "enforce", &["127.0.0.1/32"]);
    let url = format!("http://{}", control.admin);
    let proxies: Vec<FleetProxy> = (1..=3)
        .map(|i| {
            FleetProxy::start(
                &up,
                FleetOpts {
                    name: format!("edge-{i}"),
                    ..FleetOpts::following(std::slice::from_ref(&url))
                },
            )
        })
        .collect();
    for p in &proxies {
        p.wait_until("the first table", 15, || acme(p, "127.0.0.1").0 == 200);
        assert_eq!(p.ops("/readyz").0, 200);
    }
    Fleet {
        up,
        control,
        proxies,
    }
}

#[test]
fn a_change_through_the_admin_api_is_live_on_three_proxies_within_a_second() {
    let f = fleet();
    for p in &f.proxies {
        assert_eq!(acme(p, "127.0.0.2").0, 403);
    }
    let (s, b) = f.control.admin(
        "POST",
        "/admin/v1/accounts/acme/whitelist",
        Some(serde_json::json!({"cidr": "127.0.0.2/32"})),
    );
    assert_eq!(s, 201, "{b}");
    let changed = Instant::now();
    for p in &f.proxies {
        while acme(p, "127.0.0.2").0 != 200 {
            assert!(
                changed.elapsed() < Duration::from_secs(1),
                "not live within 1 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    for p in &f.proxies {
        let m = p.metrics_text();
        assert!(m.contains("ipgate_sync_connected 1"), "{m}");
        assert!(p.snapshot_path().exists());
    }
    // Each poll names its proxy and the version it holds.
    let listed_at = |version: u64| {
        let (s, listed) = f.control.admin("GET", "/admin/v1/proxies", None);
        assert_eq!(s, 200, "{listed}");
        (1..=3).all(|i| {
            listed["proxies"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| {
                    p["name"] == format!("edge-{i}").as_str()
                        && p["version"].as_u64() == Some(version)
                })
            })
        })
    };
    let (_, listed) = f.control.admin("GET", "/admin/v1/proxies", None);
    let version = listed["version"].as_u64().unwrap();
    f.proxies[0].wait_until("all three listed at the feed's version", 10, || {
        listed_at(version)
    });
    let m = f.proxies[0].metrics_text();
    assert!(m.contains(&format!("ipgate_sync_version {version}")), "{m}");
    drop(f.up);
}

#[test]
fn the_fleet_serves_through_a_control_plane_crash_and_restarts_from_its_snapshot() {
    let mut f = fleet();
    let calls = |f: &Fleet, n: usize| {
        let mut failed = 0;
        for _ in 0..n {
            for p in &f.proxies {
                if acme(p, "127.0.0.1").0 != 200 || acme(p, "127.0.0.2").0 != 403 {
                    failed += 1;
                }
            }
        }
        failed
    };
    assert_eq!(calls(&f, 5), 0);
    f.control.kill();
    // Calls during and after the crash, while the proxies' polls fail.
    let until = Instant::now() + Duration::from_secs(3);
    let mut failed = 0;
    while Instant::now() < until {
        failed += calls(&f, 1);
    }
    assert_eq!(failed, 0, "calls failed with the control plane down");
    for p in &f.proxies {
        p.wait_until("the lost control plane noticed", 10, || {
            p.metrics_text().contains("ipgate_sync_connected 0")
        });
        assert_eq!(p.ops("/readyz").0, 200, "max_stale 0: still ready");
    }

    // A proxy restarted while the control plane is down serves its snapshot.
    let p = &mut f.proxies[0];
    p.kill();
    p.restart();
    assert_eq!(acme(p, "127.0.0.1").0, 200);
    assert_eq!(acme(p, "127.0.0.2").0, 403);
    assert!(p.log().contains("serving the saved snapshot"));
    assert_eq!(calls(&f, 3), 0);
}

#[test]
fn with_max_stale_a_table_too_old_is_refused_until_the_control_plane_is_back() {
    let up = Upstream::start();
    // A [sync] table after [control]'s lines: the control plane holds polls 2 s.
    let mut control = Server::start(
        &up,
        ServerOpts {
            control_extra: "[sync]\npoll_timeout = \"2s\"".to_string(),
            ..ServerOpts::control_plane()
        },
    );
    control.account("acme", "enforce", &["127.0.0.1/32"]);
    let proxy = FleetProxy::start(
        &up,
        FleetOpts {
            max_stale: "3s",
            poll_timeout: "2s",
            ..FleetOpts::following(&[format!("http://{}", control.admin)])
        },
    );
    proxy.wait_until("the first table", 15, || acme(&proxy, "127.0.0.1").0 == 200);
    // Quiet polls held 2 s are successes: still fresh after 4 s.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(acme(&proxy, "127.0.0.1").0, 200, "{}", proxy.log());

    control.kill();
    proxy.wait_until("the stale refusal", 15, || {
        let (status, body) = acme(&proxy, "127.0.0.1");
        status == 503 && code(&body) == "stale_table"
    });
    let (status, body) = proxy.ops("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("stale_table"), "{body}");
    assert!(proxy.log().contains("stale"), "{}", proxy.log());

    control.restart();
    proxy.wait_until("calls judged again", 15, || {
        acme(&proxy, "127.0.0.1").0 == 200
    });
    assert_eq!(acme(&proxy, "127.0.0.2").0, 403);
    assert_eq!(proxy.ops("/readyz").0, 200);
}
