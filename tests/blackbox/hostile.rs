//! Malformed and hostile requests get a clear refusal and change nothing.

use crate::common::*;

fn gate() -> (Upstream, Server) {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("free", "off", &[]);
    (up, gate)
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ambiguous_framing_is_refused() {
    let (up, gate) = gate();
    let both = "POST /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(status_of(&raw(gate.proxy, both.as_bytes())), 400);
    let two = "POST /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_eq!(status_of(&raw(gate.proxy, two.as_bytes())), 400);
    let space = "GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id : free\r\n\r\n";
    assert_eq!(status_of(&raw(gate.proxy, space.as_bytes())), 400);
    assert_eq!(up.hits(), 0);
    let ok = "GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n";
    assert_eq!(
        status_of(&raw(gate.proxy, ok.as_bytes())),
        200,
        "the gate still serves"
    );
}

#[test]
fn oversized_heads_get_431() {
    let (up, gate) = gate();
    let big = format!(
        "GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let r = raw(gate.proxy, big.as_bytes());
    assert_eq!(status_of(&r), 431, "{r}");
    let mut many = String::from("GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n");
    for i in 0..60 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status_of(&raw(gate.proxy, many.as_bytes())), 431);
    assert_eq!(up.hits(), 0);
}

#[test]
fn bad_basic_auth_is_a_clear_401() {
    let (up, gate) = gate();
    let (s, b) = gate.get(
        "127.0.0.1",
        "/sms/x",
        &[("Authorization", "Basic %%%not-base64")],
    );
    assert_eq!((s, code(&b)), (401, "unidentified".to_string()));
    assert!(b.contains("Basic"), "says what is wrong: {b}");
    let (s, b) = gate.get(
        "127.0.0.1",
        "/sms/x",
        &[("X-Account-Id", "bad id with spaces")],
    );
    assert_eq!((s, code(&b)), (401, "unidentified".to_string()));
    assert!(b.contains("malformed"), "{b}");
    assert_eq!(up.hits(), 0);
}

#[test]
fn paths_are_normalised_and_never_leave_their_prefix() {
    let (up, gate) = gate();
    // Climbing out of /sms/ into /waba/ is routed as /waba/ (whose account source is the path).
    let (s, b) = gate.get(
        "127.0.0.1",
        "/sms/%2e%2e/waba/ghost/x",
        &[("X-Account-Id", "free")],
    );
    assert_eq!(
        (s, code(&b)),
        (403, "unknown_account".to_string()),
        "the normalised path picks the route"
    );
    let r = raw(
        gate.proxy,
        b"GET /sms/../../etc/passwd HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n",
    );
    assert_eq!(status_of(&r), 400, "{r}");
    let (s, _) = gate.get("127.0.0.1", "/sms/a/./b/../c", &[("X-Account-Id", "free")]);
    assert_eq!(s, 200);
    assert_eq!(up.last().path, "/a/c");
    // Double encoding that decodes to nothing special stays literal.
    let (s, _) = gate.get("127.0.0.1", "/sms/a%2520b", &[("X-Account-Id", "free")]);
    assert_eq!(s, 200);
    assert_eq!(up.last().path, "/a%2520b", "double encoding stays literal");
    // `;` inside a segment is an ordinary character.
    let (s, _) = gate.get("127.0.0.1", "/sms/a;v=1/b", &[("X-Account-Id", "free")]);
    assert_eq!(s, 200);
    assert_eq!(up.last().path, "/a;v=1/b");
    let r = raw(
        gate.proxy,
        b"GET /sms/%zz HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n",
    );
    assert_eq!(status_of(&r), 400, "{r}");
}

#[test]
fn paths_an_upstream_may_read_as_another_are_refused() {
    let (up, gate) = gate();
    // Each would leave /sms/ for an upstream that decodes twice, takes `\`
    // for `/`, or drops `;` parameters from a segment (Tomcat, Spring, IIS).
    for path in [
        "/sms/%252e%252e/waba/x",
        "/sms/%252E%252E/x",
        "/sms/%252e/x",
        "/sms/a%252fb",
        "/sms/a%255cb",
        "/sms/..%5cwaba/x",
        "/sms/a%5Cb",
        "/sms/a\\b",
        "/sms/..;/waba/x",
        "/sms/.;x/y",
        "/sms/%2e%2e;jsessionid=1/x",
        "/sms/x/..;",
    ] {
        let head = format!("GET {path} HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n");
        let r = raw(gate.proxy, head.as_bytes());
        assert_eq!(status_of(&r), 400, "{path}: {r}");
        assert_eq!(code(body_of(&r)), "bad_request", "{path}: {r}");
        // Pingora's path (HTTP/1.0 is its) refuses the same.
        let head = format!("GET {path} HTTP/1.0\r\nHost: a\r\nX-Account-Id: free\r\n\r\n");
        let r = raw(gate.proxy, head.as_bytes());
        assert_eq!(status_of(&r), 400, "{path} (HTTP/1.0): {r}");
    }
    assert_eq!(up.hits(), 0, "none reached the upstream");
}

fn slow_gate() -> (Upstream, Server) {
    let up = Upstream::start();
    let opts = ServerOpts {
        extra: "header_timeout = \"1s\"".into(),
        ..ServerOpts::default()
    };
    let gate = Server::start(&up, opts);
    gate.account("free", "off", &[]);
    (up, gate)
}

/// True when the server has closed `s` (EOF or reset) before the socket's
/// read timeout; false when the read merely timed out.
fn closed(s: &mut std::net::TcpStream) -> bool {
    use std::io::{ErrorKind, Read};
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn slowloris_heads_are_cut_off_at_header_timeout() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (up, gate) = slow_gate();

    // A connection that never sends a byte.
    let mut idle = std::net::TcpStream::connect(gate.proxy).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let start = Instant::now();
    assert!(closed(&mut idle), "an idle connection is closed");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "closed after {:?}",
        start.elapsed()
    );

    // A head trickled one byte every 200 ms never completes.
    let mut slow = std::net::TcpStream::connect(gate.proxy).unwrap();
    let start = Instant::now();
    let mut cut = false;
    for b in b"GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    if !cut {
        slow.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        cut = closed(&mut slow);
    }
    assert!(cut, "the trickled head was not cut off");
    assert_eq!(up.hits(), 0);
}

#[test]
fn header_timeout_does_not_touch_prompt_or_kept_alive_clients() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let (up, gate) = slow_gate();
    let mut s = std::net::TcpStream::connect(gate.proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = b"GET /sms/x HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n";
    for round in 0..2 {
        s.write_all(req)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let mut buf = [0u8; 4096];
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
        // Idle longer than header_timeout between requests on a kept-alive connection.
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(up.hits(), 2);
}

#[test]
fn host_tricks_never_reach_another_route() {
    let up = Upstream::start();
    let route = format!(
        "\n[[proxy.route]]\nname = \"hosted\"\nhost = \"api.example.com\"\nupstream = \"http://{}\"\naccount_from = [\"header:X-Account-Id\"]\n",
        up.addr
    );
    let gate = Server::start(
        &up,
        ServerOpts {
            extra: route,
            ..ServerOpts::default()
        },
    );
    gate.account("free", "off", &[]);
    let send = |head: &str| raw(gate.proxy, head.as_bytes());
    // The route by Host, port and case aside.
    let ok = send("GET /x HTTP/1.1\r\nHost: API.example.com:8080\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&ok), 200, "{ok}");
    assert_eq!(up.hits(), 1);
    // No Host, another Host, two Hosts: no route or refused, never forwarded.
    for head in [
        "GET /x HTTP/1.1\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: evil.example.com\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: api.example.com.evil.test\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n",
    ] {
        let r = send(head);
        assert_eq!((status_of(&r), code(body_of(&r))), (404, "no_route".to_string()), "{head:?}: {r}");
    }
    let two = send("GET /x HTTP/1.1\r\nHost: evil.example.com\r\nHost: api.example.com\r\nX-Account-Id: free\r\n\r\n");
    assert_eq!(status_of(&two), 400, "{two}");
    // An absolute URL naming another host than Host: refused, not routed either way.
    for head in [
        "GET http://api.example.com/x HTTP/1.1\r\nHost: evil.example.com\r\nX-Account-Id: free\r\n\r\n",
        "GET http://evil.example.com/x HTTP/1.1\r\nHost: api.example.com\r\nX-Account-Id: free\r\n\r\n",
    ] {
        let r = send(head);
        assert_eq!(status_of(&r), 400, "{head:?}: {r}");
    }
    let same = send("GET http://api.example.com/x HTTP/1.1\r\nHost: api.example.com\r\nX-Account-Id: free\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&same), 200, "{same}");
    assert_eq!(up.hits(), 2, "only the two honest calls were forwarded");
}

fn body_of(resp: &str) -> &str {
    resp.split("\r\n\r\n").nth(1).unwrap_or("")
}
