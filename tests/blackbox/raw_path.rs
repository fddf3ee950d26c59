//! The raw HTTP/1 path beside Pingora's, black-box: the same request gets
//! the same answer and reaches the upstream the same way on either, a
//! kept-alive connection moves from one to the other mid-way, and every
//! framing an upstream answers with is passed on whole.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One answer as a client reads it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// A kept-alive client connection that reads one framed answer per request.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(gate: &Server) -> Client {
        let s = TcpStream::connect(gate.proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    fn send(&mut self, request: &[u8], head_request: bool) -> Reply {
        self.s.write_all(request).unwrap();
        loop {
            let reply = self.read_one(head_request);
            // Interim answers are passed on; the test reads past them.
            if !(100..200).contains(&reply.status) {
                return reply;
            }
        }
    }

    fn read_one(&mut self, head_request: bool) -> Reply {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill(), "connection closed before an answer head");
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let body = if head_request || (100..200).contains(&status) || status == 204 {
            Vec::new()
        } else if lower.contains("transfer-encoding: chunked") {
            self.dechunk()
        } else if let Some(n) = length {
            while self.buf.len() < n {
                assert!(self.fill(), "connection closed inside a body");
            }
            self.buf.drain(..n).collect()
        } else {
            while self.fill() {}
            std::mem::take(&mut self.buf)
        };
        Reply { status, head, body }
    }

    fn dechunk(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                assert!(self.fill(), "connection closed inside a chunk size");
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|e| panic!("chunk size {size_text:?}: {e}"));
            if size == 0 {
                // Trailer lines, up to an empty one.
                self.buf.drain(..line_end + 2);
                loop {
                    let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        assert!(self.fill(), "connection closed inside the trailer");
                        continue;
                    };
                    self.buf.drain(..i + 2);
                    if i == 0 {
                        return body;
                    }
                }
            }
            while self.buf.len() < line_end + 2 + size + 2 {
                assert!(self.fill(), "connection closed inside a chunk");
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            self.buf.drain(..line_end + 2 + size + 2);
        }
    }

    /// True when the gate closed the connection (read gives EOF).
    fn closed(&mut self) -> bool {
        !self.fill()
    }
}

fn gate_behind_a_trusted_proxy(up: &Upstream) -> Server {
    let gate = Server::start(
        up,
        ServerOpts {
            trusted_proxies: vec!["127.0.0.1/32".into()],
            ..ServerOpts::default()
        },
    );
    gate.account("acme", "enforce", &["198.51.100.7"]);
    gate
}

/// A GET as the raw path takes it, and the same GET with an empty chunked
/// body, which only Pingora's path takes.
fn both_forms(target: &str, headers: &[(&str, &str)]) -> [Vec<u8>; 2] {
    let lines: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    [
        format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\n{lines}\r\n").into_bytes(),
        format!(
            "GET {target} HTTP/1.1\r\nHost: gw.test\r\n{lines}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        .into_bytes(),
    ]
}

#[test]
fn both_paths_give_the_same_answer_and_forward_alike() {
    let up = Upstream::start();
    let gate = gate_behind_a_trusted_proxy(&up);
    let auth = basic("acme");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/sms/v1/send?to=1",
            vec![
                ("Authorization", &auth),
                ("X-Forwarded-For", "198.51.100.7"),
            ],
            200,
            "/v1/send",
        ),
        (
            "/sms/a/../v1/%73end?username=acme",
            vec![("X-Forwarded-For", "198.51.100.7")],
            200,
            "/v1/send",
        ),
        (
            "/waba/acme/messages",
            vec![("X-Forwarded-For", "10.9.9.9, 198.51.100.7")],
            200,
            "/acme/messages",
        ),
        (
            "/sms/v1/send",
            vec![("Authorization", &auth), ("X-Forwarded-For", "203.0.113.9")],
            403,
            "ip_not_whitelisted",
        ),
        ("/sms/v1/send", vec![], 401, "unidentified"),
        (
            "/sms/v1/send",
            vec![
                ("X-Account-Id", "nobody"),
                ("X-Forwarded-For", "198.51.100.7"),
            ],
            403,
            "unknown_account",
        ),
        ("/elsewhere", vec![], 404, "no_route"),
    ];
    for (target, headers, status, expect) in cases {
        let mut seen = Vec::new();
        for (form, request) in both_forms(target, &headers).iter().enumerate() {
            let hits = up.hits();
            let mut c = Client::connect(&gate);
            let reply = c.send(request, false);
            let what = format!("{target} {headers:?} form {form}");
            assert_eq!(reply.status, status, "{what}: {}", reply.text());
            if status == 200 {
                assert_eq!(reply.text(), "upstream says hello", "{what}");
                assert_eq!(up.hits(), hits + 1, "{what}");
                let s = up.last();
                assert_eq!(s.path, expect, "{what}");
                seen.push((s.path, s.query, s.host, s.xff));
            } else {
                let v = reply.json();
                assert_eq!(v["error"]["code"], expect, "{what}");
                assert_eq!(up.hits(), hits, "{what}: a denial reached the upstream");
                let head = reply.head.to_ascii_lowercase();
                assert!(
                    head.contains("content-type: application/json"),
                    "{what}: {}",
                    reply.head
                );
                assert!(
                    head.contains("cache-control: no-store"),
                    "{what}: {}",
                    reply.head
                );
                let mut v = v;
                v["error"]["request_id"] = serde_json::Value::Null;
                seen.push((v.to_string(), None, String::new(), String::new()));
            }
        }
        assert_eq!(seen[0], seen[1], "{target}: the two paths differ");
    }
    // The chain from a trusted proxy is kept with this hop appended, and
    // the upstream's own Host is sent.
    let mut c = Client::connect(&gate);
    let reply = c.send(
        &both_forms("/waba/acme/x", &[("X-Forwarded-For", "198.51.100.7")])[0],
        false,
    );
    assert_eq!(reply.status, 200);
    let s = up.last();
    assert_eq!(s.xff, "198.51.100.7, 127.0.0.1");
    assert_eq!(s.host, up.addr.to_string());
}

/// `ipgate_proxy_handoffs_total` by reason, only those above zero.
fn handoffs(gate: &Server) -> Vec<(String, u64)> {
    gate.metrics_text()
        .lines()
        .filter_map(|l| l.strip_prefix("ipgate_proxy_handoffs_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(r, n)| (r.to_string(), n.trim().parse().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn each_handoff_to_pingora_is_counted_with_its_reason() {
    let up = Upstream::start();
    let gate = gate_behind_a_trusted_proxy(&up);
    let ok = "X-Account-Id: acme\r\nX-Forwarded-For: 198.51.100.7\r\n";
    let big = format!("X-Pad: {}\r\n", "a".repeat(40_000));
    let cases: [(String, u16); 5] = [
        (format!("GET /sms/v1/send HTTP/1.1\r\nHost: gw\r\n{ok}\r\n"), 200),
        (format!("GET /sms/v1/send HTTP/1.1\r\nHost: gw\r\n{ok}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 200),
        (format!("GET /sms/v1/send HTTP/1.1\r\nHost: gw\r\n{ok}Expect: 100-continue\r\n\r\n"), 200),
        (format!("GET /sms/v1/send HTTP/1.1\r\nHost: gw\r\n{ok}{big}\r\n"), 431),
        (format!("GET /sms/a%5Cb HTTP/1.1\r\nHost: gw\r\n{ok}\r\n"), 400),
    ];
    for (request, want) in &cases {
        let mut c = Client::connect(&gate);
        let reply = c.send(request.as_bytes(), false);
        assert_eq!(reply.status, *want, "{}", reply.text());
    }
    let mut got = handoffs(&gate);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("head_too_large".into(), 1),
            ("path".into(), 1),
            ("transfer_encoding".into(), 1),
            ("upgrade".into(), 1),
        ],
        "the plain request stays on the raw path; each other is handed over once"
    );
}

#[test]
fn a_kept_alive_connection_moves_to_pingora_mid_way() {
    let up = Upstream::start();
    let gate = gate_behind_a_trusted_proxy(&up);
    let ok = [
        ("X-Account-Id", "acme"),
        ("X-Forwarded-For", "198.51.100.7"),
    ];
    let [raw, chunked] = both_forms("/sms/v1/send", &ok);
    let denied = both_forms("/sms/v1/send", &[("X-Account-Id", "acme")])[0].clone();
    let mut c = Client::connect(&gate);
    let hits = up.hits();
    for (i, request) in [&raw, &denied, &raw, &chunked, &raw, &denied, &raw]
        .iter()
        .enumerate()
    {
        let reply = c.send(request, false);
        let want = if std::ptr::eq(*request, &denied) {
            403
        } else {
            200
        };
        assert_eq!(reply.status, want, "request {i}: {}", reply.text());
    }
    assert_eq!(
        up.hits(),
        hits + 5,
        "every allowed request reached the upstream once"
    );
    assert_eq!(handoffs(&gate), vec![("transfer_encoding".into(), 1)]);
    // A request with a body that is denied closes the connection (its body
    // is never read as a request).
    let mut c = Client::connect(&gate);
    let reply = c.send(
        b"POST /sms/v1/send HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\nContent-Length: 4\r\n\r\nGET ",
        false,
    );
    assert_eq!(reply.status, 403);
    assert!(reply.head.contains("connection: close"), "{}", reply.head);
    assert!(c.closed());
}

#[test]
fn every_upstream_framing_is_passed_on_whole_over_one_upstream_connection() {
    let big = "x".repeat(100_000);
    let big_answer = big.clone();
    let up = Upstream::scripted(false, move |head| {
        let path = head.split(' ').nth(1).unwrap_or("");
        if head.starts_with("HEAD ") {
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec();
        }
        match path {
            "/len" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: len\r\n\r\nhello".to_vec(),
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            "/big" => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big_answer}", big_answer.len()).into_bytes(),
            "/none" => b"HTTP/1.1 204 No Content\r\nX-Up: none\r\n\r\n".to_vec(),
            "/interim" => b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            "/post" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngot!".to_vec(),
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        }
    });
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let get = |path: &str, method: &str| {
        format!("{method} /sms{path} HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\n\r\n")
            .into_bytes()
    };
    let mut c = Client::connect(&gate);
    let r = c.send(&get("/len", "GET"), false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert!(r.head.contains("X-Up: len"), "{}", r.head);
    let r = c.send(&get("/chunked", "GET"), false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    let r = c.send(&get("/big", "GET"), false);
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    assert!(r.body == big.as_bytes());
    let r = c.send(&get("/none", "GET"), false);
    assert_eq!(r.status, 204);
    let r = c.send(&get("/len", "HEAD"), true);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(r.head.contains("Content-Length: 5"), "{}", r.head);
    let r = c.send(&get("/interim", "GET"), false);
    assert_eq!((r.status, r.text().as_str()), (201, "ok"));
    let r = c.send(
        b"POST /sms/post HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\nContent-Length: 11\r\n\r\nhello world",
        false,
    );
    assert_eq!((r.status, r.text().as_str()), (200, "got!"));
    let r = c.send(&get("/len", "GET"), false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(up.hits(), 8);
    assert_eq!(
        up.connections(),
        1,
        "one kept-alive upstream connection carried every request"
    );
}

#[test]
fn upstream_connections_that_close_are_replaced_and_bad_answers_refused() {
    // Claims keep-alive, then closes after every answer: a pooled connection
    // is found closed and the request is sent again on a new one.
    let up = Upstream::scripted(true, |head| match head.split(' ').nth(1).unwrap_or("") {
        "/until-close" => b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(),
        "/smuggle" => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec()
        }
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    });
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let get = |path: &str| {
        format!("GET /sms{path} HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\n\r\n").into_bytes()
    };
    let mut c = Client::connect(&gate);
    for i in 0..6 {
        // Give the upstream's close time to arrive, so the pooled
        // connection is really closed when it is taken.
        std::thread::sleep(Duration::from_millis(50));
        let r = c.send(&get("/ok"), false);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "request {i}");
    }
    assert_eq!(up.hits(), 6, "each request reached the upstream once");

    // A body that runs until the upstream closes: passed on, then the
    // client's connection closes too.
    let r = c.send(&get("/until-close"), false);
    assert_eq!((r.status, r.text().as_str()), (200, "until close"));
    assert!(r.head.contains("Connection: close"), "{}", r.head);

    let mut c = Client::connect(&gate);
    let r = c.send(&get("/smuggle"), false);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_unavailable");
}

#[test]
fn a_denied_head_has_no_body_on_either_path_and_the_next_answer_is_read_whole() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    gate.account("beta", "enforce", &["203.0.113.1"]);
    let head = b"HEAD /sms/x HTTP/1.1\r\nHost: gw\r\nX-Account-Id: beta\r\n\r\n";
    let get = b"GET /sms/x HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\n\r\n";
    // The raw path, then the same after the connection moved to Pingora's
    // (a chunked request hands it over).
    for to_pingora in [false, true] {
        let mut c = Client::connect(&gate);
        if to_pingora {
            let r = c.send(
                b"POST /sms/x HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                false,
            );
            assert_eq!(r.status, 200, "{}", r.head);
        }
        let r = c.send(head, true);
        assert_eq!(r.status, 403, "pingora: {to_pingora}: {}", r.head);
        let r = c.send(get, false);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "upstream says hello"),
            "pingora: {to_pingora}: a body after the HEAD answer was read as the next answer: {}",
            r.head
        );
    }
}

/// A pooled upstream connection that answers a POST with a malformed head
/// may have acted on it (sent the SMS): the POST is never sent again; the
/// client gets 502. A GET in the same place is sent again, once.
#[test]
fn a_post_is_never_sent_twice_when_a_pooled_connection_answers_badly() {
    let up = Upstream::scripted(false, |head| {
        if head.split(' ').nth(1).unwrap_or("").starts_with("/bad") {
            b"garbage, not HTTP\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        }
    });
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    // One good exchange leaves an upstream connection in the pool.
    let pool_one = || {
        let mut c = Client::connect(&gate);
        let r = c.send(
            b"GET /sms/ok HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\n\r\n",
            false,
        );
        assert_eq!(r.status, 200, "{}", r.head);
    };
    pool_one();

    let before = up.hits();
    let mut c = Client::connect(&gate);
    let r = c.send(
        b"POST /sms/bad HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\nContent-Length: 4\r\n\r\nsend",
        false,
    );
    assert_eq!(r.status, 502, "{}", r.head);
    assert_eq!(up.hits() - before, 1, "the POST reached the upstream once");

    // Pool a connection again, then the same failure on a GET: sent once more.
    pool_one();
    let before = up.hits();
    let mut c = Client::connect(&gate);
    let r = c.send(
        b"GET /sms/bad HTTP/1.1\r\nHost: gw\r\nX-Account-Id: acme\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 502, "{}", r.head);
    assert_eq!(
        up.hits() - before,
        2,
        "an idempotent request is sent again once"
    );
}
