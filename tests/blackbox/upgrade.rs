//! A graceful binary upgrade of `ipgate proxy`: a new process started
//! with `--upgrade` takes the listening sockets over when the running one
//! gets SIGQUIT. Under a steady load of kept-alive callers (on the raw
//! path and on Pingora's), a caller that opens a connection per call and a
//! slow call in flight, no call is refused or fails, the upstream sees
//! each call exactly once, and the old process exits once its last
//! connection has closed.

use crate::common::fleet::*;
use crate::common::*;
use ipgate_policy::Mode;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one caller saw: calls answered 200 (by id), and every failure.
#[derive(Default)]
struct Calls {
    ok: Vec<String>,
    failed: Vec<String>,
}

/// One HTTP/1.1 call on `s`: the status and whether the answer closes the
/// connection, or what went wrong.
fn call(s: &mut TcpStream, request: &[u8]) -> Result<(u16, bool), String> {
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("closed before the answer ({} bytes)", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed in the body".to_string()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read body: {e}")),
        }
    }
    Ok((status, header("connection").as_deref() == Some("close")))
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    Ok(s)
}

/// How a caller calls.
#[derive(Clone, Copy)]
enum Way {
    /// On one kept-alive connection at a time (the raw path).
    KeptAlive,
    /// Kept alive with a `Connection` option the raw path hands to
    /// Pingora's path.
    KeptAlivePingora,
    /// A new connection per call.
    NewConnection,
}

fn post(id: &str, way: Way) -> Vec<u8> {
    let connection = match way {
        Way::KeptAlive => "",
        Way::KeptAlivePingora => "Connection: keep-alive, x-trace\r\n",
        Way::NewConnection => "Connection: close\r\n",
    };
    format!(
        "POST /sms/send?id={id} HTTP/1.1\r\nHost: api\r\nX-Account-Id: acme\r\n\
         {connection}Content-Length: 5\r\n\r\nhello"
    )
    .into_bytes()
}

/// Calls until `stop`, on one kept-alive connection at a time (a new one
/// when an answer says `Connection: close`), or on a new connection per
/// call.
fn caller(addr: SocketAddr, name: String, way: Way, stop: Arc<AtomicBool>) -> Calls {
    let keep_alive = !matches!(way, Way::NewConnection);
    let mut calls = Calls::default();
    let mut conn: Option<TcpStream> = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("{name}-{n}");
        let s = match conn.take() {
            Some(s) => s,
            None => match connect(addr) {
                Ok(s) => s,
                Err(e) => {
                    calls.failed.push(format!("{id}: {e}"));
                    continue;
                }
            },
        };
        let mut s = s;
        match call(&mut s, &post(&id, way)) {
            Ok((200, close)) => {
                calls.ok.push(id);
                if keep_alive && !close {
                    conn = Some(s);
                }
            }
            Ok((status, _)) => calls.failed.push(format!("{id}: status {status}")),
            Err(e) => calls.failed.push(format!("{id}: {e}")),
        }
        if !keep_alive {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    calls
}

#[test]
fn a_proxy_upgrade_hands_its_sockets_over_without_a_failed_call() {
    // The upstream counts each call by its id; `/slow` takes 1.5 s.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let up = {
        let seen = seen.clone();
        Upstream::scripted(false, move |head| {
            let target = head.split(' ').nth(1).unwrap_or("").to_string();
            if let Some((_, id)) = target.split_once("id=") {
                *seen.lock().unwrap().entry(id.to_string()).or_default() += 1;
            }
            if target.starts_with("/slow") {
                std::thread::sleep(Duration::from_millis(1500));
            }
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        })
    };
    let mut proxy = FleetProxy::start(
        &up,
        FleetOpts {
            snapshot: Some(snapshot(5, "acme", Mode::Enforce, &["127.0.0.1/32"]).encode()),
            proxy_extra: "drain_timeout = \"10s\"",
            ..FleetOpts::following(&[FleetOpts::nobody()])
        },
    );
    let addr = proxy.proxy;
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = [
        ("kept-a", Way::KeptAlive),
        ("kept-b", Way::KeptAlive),
        ("pingora-a", Way::KeptAlivePingora),
        ("new-a", Way::NewConnection),
    ]
    .into_iter()
    .map(|(name, way)| {
        let stop = stop.clone();
        std::thread::spawn(move || caller(addr, name.to_string(), way, stop))
    })
    .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = seen.lock().unwrap().len();
    let old_pid = proxy.pid();

    // A slow call in flight while the sockets change hands: it was passed
    // on by the old process, which must let it finish.
    let slow = std::thread::spawn(move || {
        let mut s = connect(addr)?;
        let req = b"POST /sms/slow?id=slow-1 HTTP/1.1\r\nHost: api\r\nX-Account-Id: acme\r\n\
                    Content-Length: 5\r\n\r\nhello";
        call(&mut s, req)
    });
    std::thread::sleep(Duration::from_millis(300));
    let upgrade_started = Instant::now();
    let mut old = proxy.upgrade();
    let exited = loop {
        if let Some(status) = old.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            upgrade_started.elapsed() < Duration::from_secs(30),
            "the old process did not exit after the hand-over:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let old_gone_after = upgrade_started.elapsed();
    // The new process alone, for a while.
    let during = seen.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let calls: Vec<Calls> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    let slow = slow.join().unwrap();

    let failed: Vec<&String> = calls.iter().flat_map(|c| &c.failed).collect();
    let ok: Vec<&String> = calls.iter().flat_map(|c| &c.ok).collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed, the first: {:?}\n{}",
        failed.len(),
        failed.len() + ok.len(),
        &failed[..failed.len().min(5)],
        proxy.log()
    );
    assert_eq!(slow, Ok((200, false)), "the slow call in flight finished");
    assert!(exited.success(), "the old process exits cleanly: {exited}");
    let seen = seen.lock().unwrap().clone();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "the upstream saw calls more than once: {twice:?}"
    );
    for id in &ok {
        assert!(
            seen.contains_key(id.as_str()),
            "{id} answered 200 but never reached the upstream"
        );
    }
    assert_eq!(seen.get("slow-1"), Some(&1));
    assert!(
        seen.len() > during && during > before && before > 0,
        "calls went on before ({before}), during ({during}) and after ({}) the hand-over",
        seen.len()
    );
    let log = proxy.log();
    for want in [
        "SIGQUIT received: handing the listening sockets",
        "hand-over done",
    ] {
        assert!(log.contains(want), "{want:?} missing:\n{log}");
    }
    assert!(
        ok.iter().any(|id| id.starts_with("pingora-a-")),
        "Pingora's path served calls too"
    );
    // The new process serves, with its own metrics and readiness.
    assert_ne!(proxy.pid(), old_pid);
    assert_eq!(proxy.ops("/readyz").0, 200);
    let m = proxy.metrics_text();
    assert!(m.contains("ipgate_table_version 5"), "{m}");
    // The new process too served the Pingora-path caller on its path.
    assert!(
        m.lines()
            .any(|l| l.starts_with("ipgate_proxy_handoffs_total")
                && l.contains("reason=\"connection_option\"")
                && !l.ends_with(" 0")),
        "{m}"
    );
    let (status, _) = proxy.get(
        "127.0.0.1",
        "/sms/send?id=after",
        &[("X-Account-Id", "acme")],
    );
    assert_eq!(status, 200);
    eprintln!(
        "hand-over: {} calls, none failed; the old process exited {:.1} s after SIGQUIT",
        ok.len() + 1,
        old_gone_after.as_secs_f64()
    );
    assert!(
        proxy.stop().success(),
        "the new process stops cleanly on SIGTERM"
    );
}
