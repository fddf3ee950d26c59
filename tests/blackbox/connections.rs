//! Client connections are bounded: each must finish its TLS handshake and
//! its request head within `proxy.header_timeout`, whatever it sends, and
//! no more than `proxy.max_connections` are open at once.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A gate whose heads must be complete within 1 s, with a TLS listener.
fn slow_gate(extra: &str) -> (Upstream, Server) {
    let up = Upstream::start();
    let opts = ServerOpts {
        extra: format!("header_timeout = \"1s\"\n{extra}"),
        tls: true,
        ..ServerOpts::default()
    };
    let gate = Server::start(&up, opts);
    gate.account("free", "off", &[]);
    (up, gate)
}

/// Writes `bytes`, then one `filler` byte every 200 ms (a caller keeping
/// the connection busy), for up to 8 s. The time until the server closed
/// the connection, or `None` when it was still open after 8 s.
fn time_to_close(
    s: &mut (impl Read + Write),
    bytes: &[u8],
    filler: Option<u8>,
) -> Option<Duration> {
    let start = Instant::now();
    if s.write_all(bytes).and_then(|()| s.flush()).is_err() {
        return Some(start.elapsed());
    }
    while start.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(b) = filler {
            if s.write_all(&[b]).and_then(|()| s.flush()).is_err() {
                return Some(start.elapsed());
            }
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {} // an answer (e.g. a 400) before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// A TLS client trusting the gate's dev certificate, handshake done.
fn tls(gate: &Server) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = gate.tls_client(rustls::DEFAULT_VERSIONS);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let addr = gate.tls.unwrap_or_else(|| panic!("no TLS listener"));
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .unwrap_or_else(|e| panic!("TLS handshake: {e}"));
    }
    s.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    s
}

fn assert_cut(what: &str, took: Option<Duration>) {
    match took {
        // 1 s of header_timeout plus scheduling slack.
        Some(t) => assert!(
            t < Duration::from_secs(5),
            "{what}: closed only after {t:?}"
        ),
        None => panic!("{what}: still open after 8 s with header_timeout = 1s"),
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn blank_lines_before_the_request_line_do_not_stop_the_head_clock() {
    let (up, gate) = slow_gate("");
    // Blank lines first, then a head dripped a byte at a time.
    assert_cut(
        "blank lines then a trickle",
        time_to_close(&mut tcp(gate.proxy), b"\r\n\r\n", Some(b'G')),
    );
    assert_cut(
        "blank lines then a trickle, over TLS",
        time_to_close(&mut tls(&gate), b"\r\n\r\n", Some(b'G')),
    );
    // Blank lines before a prompt request are still allowed (RFC 9112 2.2).
    let r = raw(
        gate.proxy,
        b"\r\n\r\nGET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(up.hits(), 1);
}

#[test]
fn an_http2_preface_followed_by_nothing_is_closed() {
    let (up, gate) = slow_gate("");
    assert_cut(
        "h2 preface, plain",
        time_to_close(&mut tcp(gate.proxy), PREFACE, None),
    );
    assert_cut(
        "h2 preface, TLS",
        time_to_close(&mut tls(&gate), PREFACE, None),
    );
    // The preface's first part alone reads as a complete HTTP/1 head.
    assert_cut(
        "h2 preface cut short",
        time_to_close(&mut tcp(gate.proxy), &PREFACE[..18], None),
    );
    // No HTTP/2 is offered (no h2c, no h2 in ALPN): the preface is an
    // HTTP/1 head that is refused.
    let r = raw(gate.proxy, PREFACE);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(up.hits(), 0);
}

#[test]
fn a_tls_handshake_that_never_finishes_is_closed_at_header_timeout() {
    let (up, gate) = slow_gate("");
    let addr = gate.tls.unwrap_or_else(|| panic!("no TLS listener"));
    // Nothing at all.
    assert_cut(
        "silent TLS client",
        time_to_close(&mut tcp(addr), b"", None),
    );
    // The first bytes of a ClientHello record, then nothing.
    assert_cut(
        "half a ClientHello",
        time_to_close(&mut tcp(addr), &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01], None),
    );
    // A finished handshake and a prompt request still work.
    let mut s = tls(&gate);
    s.write_all(
        b"GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    s.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(up.hits(), 1);
}

#[test]
fn connections_past_max_connections_are_refused_at_accept() {
    let up = Upstream::start();
    let opts = ServerOpts {
        extra: "max_connections = 3".into(),
        tls: true,
        ..ServerOpts::default()
    };
    let gate = Server::start(&up, opts);
    gate.account("free", "off", &[]);
    let call = b"GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n";
    // Three idle connections (one on TLS) fill the budget; each is known
    // to be accepted once it has been answered.
    let mut held: Vec<Box<dyn ReadWrite>> = Vec::new();
    for i in 0..3 {
        let mut s: Box<dyn ReadWrite> = if i == 2 {
            Box::new(tls(&gate))
        } else {
            Box::new(tcp(gate.proxy))
        };
        s.write_all(call).unwrap();
        assert!(
            read_answer(&mut *s).starts_with("HTTP/1.1 200"),
            "connection {i}"
        );
        held.push(s);
    }
    // The fourth, plain or TLS, is closed at once with nothing read.
    let mut extra = tcp(gate.proxy);
    let _ = extra.write_all(call);
    assert_eq!(read_answer(&mut extra), "", "a 4th connection was served");
    let addr = gate.tls.unwrap_or_else(|| panic!("no TLS listener"));
    assert_cut(
        "4th TLS connection",
        time_to_close(&mut tcp(addr), b"", None),
    );
    let m = gate.metrics_text();
    assert!(m.contains("ipgate_proxy_connections 3"), "{m}");
    assert!(
        m.contains("ipgate_proxy_connections_refused_total 2"),
        "{m}"
    );
    // Closing one frees its place.
    drop(held.pop());
    gate.wait_until("a freed connection slot", 5, || {
        let mut s = tcp(gate.proxy);
        s.write_all(call).is_ok() && read_answer(&mut s).starts_with("HTTP/1.1 200")
    });
    assert_eq!(up.hits(), 4);
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// What the server sent until it paused for 2 s or closed.
fn read_answer(s: &mut dyn ReadWrite) -> String {
    let mut out = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(2) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_portal_and_admin_listeners_bound_heads_and_bodies() {
    let up = Upstream::start();
    let opts = ServerOpts {
        control_extra: "header_timeout = \"1s\"\nbody_timeout = \"1s\"".into(),
        ..ServerOpts::default()
    };
    let gate = Server::start(&up, opts);
    for (name, addr) in [
        ("portal", gate.portal),
        ("admin", gate.admin),
        ("metrics", gate.metrics),
    ] {
        assert_cut(
            &format!("{name}: silent"),
            time_to_close(&mut tcp(addr), b"", None),
        );
        assert_cut(
            &format!("{name}: a head dripped"),
            time_to_close(&mut tcp(addr), b"GET / HTTP/1.1\r\n", Some(b'X')),
        );
    }
    // A body promised and not sent: 408, connection closed.
    let mut s = tcp(gate.portal);
    let start = Instant::now();
    s.write_all(
        b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a",
    )
    .unwrap();
    let answer = read_answer(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // A kept-alive connection left idle is closed too.
    let mut s = tcp(gate.admin);
    s.write_all(b"GET /admin/v1/accounts HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert!(read_answer(&mut s).starts_with("HTTP/1.1 401"));
    assert_cut(
        "admin: idle after an answer",
        time_to_close(&mut s, b"", None),
    );
    // Prompt clients are served as before.
    let (status, _) = gate.admin("GET", "/admin/v1/accounts", None);
    assert_eq!(status, 200);
}

#[test]
fn a_connection_handed_to_pingoras_path_stays_one_connection() {
    let up = Upstream::start();
    let opts = ServerOpts {
        extra: "max_connections = 1".into(),
        tls: true,
        ..ServerOpts::default()
    };
    let gate = Server::start(&up, opts);
    gate.account("free", "off", &[]);
    let mut s = tls(&gate);
    s.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A chunked body hands the connection to Pingora's path, which serves
    // the rest of it, kept alive, on the same single place.
    let chunked = b"POST /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let plain = b"GET /sms/y HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n";
    for (i, req) in [&chunked[..], plain, chunked, plain].iter().enumerate() {
        s.write_all(req)
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        let answer = read_response(&mut s);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "request {i}: {answer:?}"
        );
    }
    assert!(gate.metrics_text().contains("ipgate_proxy_connections 1"));
    assert_eq!(up.hits(), 4);
}

/// One whole answer framed by Content-Length, read within 5 s.
fn read_response(s: &mut dyn ReadWrite) -> String {
    let mut out = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(5) {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
