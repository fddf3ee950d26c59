//! Malformed and hostile requests get a clear refusal and change nothing.

mod common;
use common::*;

fn gate() -> (Upstream, Gate) {
    let up = Upstream::start();
    let gate = Gate::start(&up, GateOpts::default());
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
    let (s, _) = gate.get(
        "127.0.0.1",
        "/sms/%252e%252e/x",
        &[("X-Account-Id", "free")],
    );
    assert_eq!(s, 200);
    assert_eq!(
        up.last().path,
        "/%252e%252e/x",
        "double encoding stays literal"
    );
    let r = raw(
        gate.proxy,
        b"GET /sms/%zz HTTP/1.1\r\nHost: a\r\nX-Account-Id: free\r\n\r\n",
    );
    assert_eq!(status_of(&r), 400, "{r}");
}
