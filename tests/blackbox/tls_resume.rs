//! A client coming back on a new connection resumes its TLS session, on
//! TLS 1.2 and on 1.3, however many other clients came in between: the
//! sessions live in stateless tickets, not in a small server-side cache
//! (rustls keeps 256 by default; a TLS 1.3 handshake fills two of them).

use crate::common::*;
use rustls::pki_types::ServerName;
use rustls::HandshakeKind;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// One call as acme on a new connection: the handshake it took and the
/// answer's status.
fn call(gate: &Server, config: &Arc<rustls::ClientConfig>) -> (HandshakeKind, u16) {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let sock = TcpStream::connect(gate.tls.unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(
        b"GET /sms/x HTTP/1.1\r\nHost: localhost\r\nX-Account-Id: acme\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    // The server may close without close_notify: what was read is kept.
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (s.conn.handshake_kind().unwrap(), status)
}

#[test]
fn a_client_resumes_its_session_after_300_others_on_tls_1_2_and_1_3() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::tls());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    for (label, version) in [
        ("TLS 1.2", &rustls::version::TLS12),
        ("TLS 1.3", &rustls::version::TLS13),
    ] {
        let returning = gate.tls_client(&[version]);
        assert_eq!(
            call(&gate, &returning),
            (HandshakeKind::Full, 200),
            "{label}"
        );
        assert_eq!(
            call(&gate, &returning),
            (HandshakeKind::Resumed, 200),
            "{label}: the second connection"
        );
        // 300 other clients, each with a session of its own.
        for _ in 0..300 {
            let other = gate.tls_client(&[version]);
            assert_eq!(call(&gate, &other).0, HandshakeKind::Full, "{label}");
        }
        assert_eq!(
            call(&gate, &returning),
            (HandshakeKind::Resumed, 200),
            "{label}: after 300 other clients"
        );
    }
}
