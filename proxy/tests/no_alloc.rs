//! The decision path allocates nothing: client IP (with a trusted proxy's
//! X-Forwarded-For), path, route, every account source of the route
//! (Basic, header, query, path segment, form body, registered keys, aliases,
//! all agreeing or not), the snapshot load and the table lookups. Counted with dhat's allocator
//! around `Gate::judge`, the exact code the proxy runs per request, and
//! around the raw HTTP/1 path's parse, judge and upstream head.

// A test may unwrap: a panic is how it fails.
#![allow(clippy::unwrap_used)]

use ipgate_config::{Config, UnknownAccount};
use ipgate_policy::account::Body;
use ipgate_policy::client_ip::TrustedProxies;
use ipgate_policy::decision::{AllowReason, DenyReason};
use ipgate_policy::{AccountPolicy, Decision, LiveTable, Mode, Policy, Refusal, Table};
use ipgate_proxy::gate::head_check::HeadLimits;
use ipgate_proxy::gate::routes::Routes;
use ipgate_proxy::gate::Gate;
use ipgate_proxy::metrics::ProxyMetrics;
use ipgate_proxy::pingora_path::head::PingoraHead;
use ipgate_proxy::raw_path::request::{self, Read};
use ipnet::IpNet;
use pingora_http::RequestHeader;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// dhat counts every thread's allocations, the test harness's included: a
/// second test in this file would have its result printed (allocating)
/// while this one measures. So there is one test, running both checks.
#[test]
fn the_decision_path_allocates_nothing() {
    judging_a_request_allocates_nothing();
    the_raw_path_parses_judges_and_writes_without_allocating();
}

fn gate() -> Gate {
    let text = r#"
        [proxy]
        trusted_proxies = ["10.0.0.0/8"]
        [[proxy.route]]
        name = "sms"
        path_prefix = "/sms/"
        strip_prefix = true
        upstream = "http://127.0.0.1:7001"
        account_from = ["basic_user", "query:username", "header:X-Account-Id"]
        [[proxy.route]]
        name = "waba"
        path_prefix = "/waba/"
        upstream = "http://127.0.0.1:7002"
        account_from = ["key:bearer", "path_segment:0"]
        [[proxy.route]]
        name = "form"
        path_prefix = "/form/"
        upstream = "http://127.0.0.1:7003"
        account_from = ["form:username", "key:form:api_key"]
    "#;
    let config = Config::parse(text, Vec::new()).unwrap();
    let routes = Routes::build(&config.proxy.routes).unwrap();
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let accounts = (0..1000).map(|i| {
        let nets = if i == 7 {
            vec![net("203.0.113.0/24"), net("2001:db8::/64")]
        } else {
            vec![net(&format!("198.18.{}.{}/32", i / 250, i % 250))]
        };
        (
            format!("acct-{i}"),
            AccountPolicy::new(Mode::Enforce, &nets),
        )
    });
    let sha = |k: &str| -> [u8; 32] { Sha256::digest(k.as_bytes()).into() };
    let table = Table::build(1, accounts, &[net("192.0.2.0/24")]).with_identities(
        (0..1000).map(|i| (format!("sender-{i}"), format!("acct-{i}"))),
        (0..1000).map(|i| (sha(&format!("key-{i}")), format!("acct-{i}"))),
    );
    let registry = prometheus::Registry::new();
    Gate {
        table: Arc::new(LiveTable::new(table)),
        metrics: ProxyMetrics::register(&registry, routes.names(), false).unwrap(),
        routes,
        trusted: TrustedProxies::new(config.proxy.trusted_proxies.iter().map(|c| c.0).collect()),
        policy: Policy {
            unknown_account: UnknownAccount::Deny,
            deny_unidentified: true,
        },
        limits: HeadLimits {
            max_bytes: 32768,
            max_headers: 100,
        },
        access_log: false,
        max_inspect_body: 65536,
        body_timeout: std::time::Duration::from_secs(10),
        introspector: None,
        drain: Default::default(),
        blocked: Arc::new(ipgate_proxy::blocked::BlockedCalls::unregistered()),
    }
}

fn request(path: &str, headers: &[(&'static str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
    req.insert_header("Host", "api.example.com").unwrap();
    for (name, value) in headers {
        req.append_header(*name, *value).unwrap();
    }
    req
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (peer, request, body, expected decision): the cases a user's traffic takes.
fn cases() -> Vec<(IpAddr, RequestHeader, &'static [u8], Decision)> {
    let allowed = Decision::Allow(AllowReason::Whitelisted);
    let form = |body: &'static [u8], want| {
        let req = request(
            "/form/send",
            &[("Content-Type", "application/x-www-form-urlencoded")],
        );
        (ip("203.0.113.9"), req, body, want)
    };
    let head_only = vec![
        (
            ip("203.0.113.9"),
            request("/sms/send?username=SENDER-7&to=123", &[]),
            allowed,
        ),
        (
            ip("203.0.113.9"),
            // acct-7:pw
            request("/sms/send", &[("Authorization", "Basic YWNjdC03OnB3")]),
            allowed,
        ),
        (
            ip("203.0.113.9"),
            request(
                "/waba/acct-7/messages",
                &[("Authorization", "Bearer key-7")],
            ),
            allowed,
        ),
        (
            ip("203.0.113.9"),
            request(
                "/waba/acct-8/messages",
                &[("Authorization", "Bearer key-7")],
            ),
            Decision::Deny(DenyReason::AmbiguousAccount),
        ),
        (
            ip("203.0.113.9"),
            request("/sms/send?username=acct-8", &[("X-Account-Id", "acct-7")]),
            Decision::Deny(DenyReason::AmbiguousAccount),
        ),
        (
            ip("203.0.113.9"),
            request("/sms/send?username=acct-7&to=123", &[]),
            allowed,
        ),
        (
            ip("203.0.113.9"),
            request("/sms/send", &[("X-Account-Id", "acct-7")]),
            allowed,
        ),
        (
            ip("198.51.100.1"),
            request("/sms/send", &[("X-Account-Id", "acct-7")]),
            Decision::Deny(DenyReason::IpNotWhitelisted),
        ),
        (
            ip("10.1.2.3"),
            request(
                "/sms/send",
                &[
                    ("X-Account-Id", "acct-7"),
                    ("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.9.9.9"),
                ],
            ),
            allowed,
        ),
        (
            ip("2001:db8::5"),
            request("/waba/acct-7/messages", &[]),
            allowed,
        ),
        (
            ip("::ffff:203.0.113.9"),
            request("/waba/acct-7/messages", &[]),
            allowed,
        ),
        (
            ip("203.0.113.9"),
            request("/sms/send", &[("X-Account-Id", "nobody")]),
            Decision::Deny(DenyReason::UnknownAccount),
        ),
        (
            ip("192.0.2.1"),
            request("/sms/send", &[("X-Account-Id", "acct-7")]),
            Decision::Deny(DenyReason::IpBlocked),
        ),
        (
            ip("203.0.113.9"),
            request("/sms/send", &[]),
            Decision::Deny(DenyReason::Unidentified),
        ),
        (
            ip("203.0.113.9"),
            request("/elsewhere", &[("X-Account-Id", "acct-7")]),
            Decision::Deny(DenyReason::NoRoute),
        ),
    ];
    let mut all: Vec<_> = head_only
        .into_iter()
        .map(|(peer, req, want)| (peer, req, &b""[..], want))
        .collect();
    all.push(form(b"to=1&username=sender-7&api_key=key-7", allowed));
    all.push(form(
        b"username=acct-7&api_key=key-8",
        Decision::Deny(DenyReason::AmbiguousAccount),
    ));
    all
}

fn body(b: &[u8]) -> Body<'_> {
    if b.is_empty() {
        Body::None
    } else {
        Body::Read(b)
    }
}

fn judging_a_request_allocates_nothing() {
    let gate = gate();
    let cases = cases();
    for (peer, req, b, want) in &cases {
        let head = PingoraHead(req);
        let j = gate.judge(*peer, &head, body(b));
        assert_eq!(j.decision, *want, "{peer} {}", req.uri);
    }

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    for _ in 0..1000 {
        for (peer, req, b, _) in &cases {
            let head = PingoraHead(black_box(req));
            let j = gate.judge(*peer, &head, body(b));
            black_box(j.decision);
        }
    }
    let after = dhat::HeapStats::get();
    assert_eq!(
        after.total_blocks - before.total_blocks,
        0,
        "{} allocations in {} decisions",
        after.total_blocks - before.total_blocks,
        cases.len() * 1000
    );

    // A following proxy with no table yet refuses every call first, and
    // as cheaply (the swaps themselves allocate, outside the count).
    let real = gate.table.load_full();
    gate.table
        .replace(Arc::new(Table::refusing(Refusal::NoTable)));
    let before = dhat::HeapStats::get();
    for (peer, req, b, _) in &cases {
        let head = PingoraHead(black_box(req));
        let j = gate.judge(*peer, &head, body(b));
        assert_eq!(j.decision, Decision::Deny(DenyReason::NoTable));
        assert!(j.pending.is_none(), "nothing is read or asked for");
    }
    let after = dhat::HeapStats::get();
    assert_eq!(after.total_blocks - before.total_blocks, 0);
    gate.table.replace(real);

    // The counter does see allocations: a path that must be rewritten
    // costs one, and that is the only kind of request that does.
    let odd = request("/sms/./send", &[("X-Account-Id", "acct-7")]);
    let head = PingoraHead(&odd);
    let before = dhat::HeapStats::get();
    let j = gate.judge(ip("203.0.113.9"), &head, Body::None);
    assert_eq!(j.decision, Decision::Allow(AllowReason::Whitelisted));
    drop(j);
    let after = dhat::HeapStats::get();
    assert!(after.total_blocks > before.total_blocks);
}

/// A case's request as the bytes a client sends.
fn wire(req: &RequestHeader, body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {} HTTP/1.1\r\n", req.uri).into_bytes();
    for (name, value) in req.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The raw HTTP/1 path's per-request work before any I/O: parse the bytes
/// in place, judge, write the head for the upstream into a reused buffer.
fn raw_path(gate: &Gate, peer: IpAddr, bytes: &[u8], out: &mut Vec<u8>) -> Option<Decision> {
    let mut headers = request::headers();
    let Read::Ready(p) = request::read(bytes, &mut headers, 8192, 64) else {
        return None;
    };
    let b = &bytes[p.head_len..p.head_len + p.body_len];
    let j = gate.judge(peer, &p, body(b));
    out.clear();
    p.write_upstream_head(out, p.target, None, b"up.test", b"203.0.113.9", false);
    Some(j.decision)
}

fn the_raw_path_parses_judges_and_writes_without_allocating() {
    let gate = gate();
    let cases: Vec<(IpAddr, Vec<u8>, Decision)> = cases()
        .into_iter()
        .map(|(peer, req, b, want)| (peer, wire(&req, b), want))
        .collect();
    let mut out = Vec::with_capacity(4096);
    for (peer, bytes, want) in &cases {
        let got = raw_path(&gate, *peer, bytes, &mut out);
        assert_eq!(
            got,
            Some(*want),
            "{peer} {}",
            String::from_utf8_lossy(bytes)
        );
    }

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    for _ in 0..1000 {
        for (peer, bytes, _) in &cases {
            black_box(raw_path(&gate, *peer, black_box(bytes), &mut out));
        }
    }
    let after = dhat::HeapStats::get();
    assert_eq!(
        after.total_blocks - before.total_blocks,
        0,
        "{} allocations in {} requests",
        after.total_blocks - before.total_blocks,
        cases.len() * 1000
    );
}
