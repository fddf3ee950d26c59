//! A whole request (head and body), judged by `Gate::judge`, the function
//! both HTTP/1 paths call: framing checks, client IP, path normalisation,
//! routing, every account source and the decision. Never panics; a
//! normalised path stays normalised and never leaves its route's prefix;
//! only acme's whitelisted address or report-mode globex is let through;
//! and a call let through is judged as the account that every reading of
//! its sources names, however lenient (any letter case of a parameter or
//! member name, percent-decoded names, every copy of a repeated header or
//! parameter, unpadded base64): a caller can never name one account to
//! ipgate and another to the upstream. (A body is read as the type its
//! Content-Type declares, as upstreams do.)
#![no_main]

use base64::Engine;
use ipgate_config::{AccountSource, Config, KeySource};
use ipgate_policy::account::Body;
use ipgate_policy::client_ip::TrustedProxies;
use ipgate_policy::decision::{AllowReason, Decision, Policy};
use ipgate_policy::table::{AccountPolicy, LiveTable, Mode, Table};
use ipgate_proxy::gate::head_check::{self, HeadLimits};
use ipgate_proxy::gate::path;
use ipgate_proxy::gate::routes::Routes;
use ipgate_proxy::gate::Gate;
use ipgate_proxy::metrics::ProxyMetrics;
use ipgate_proxy::pingora_path::head::PingoraHead;
use libfuzzer_sys::fuzz_target;
use pingora_http::RequestHeader;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

const CONFIG: &str = r#"
[[proxy.route]]
name = "sms"
path_prefix = "/sms/"
strip_prefix = true
upstream = "http://127.0.0.1:9"
account_from = ["basic_user", "query:username", "header:X-Account-Id", "key:basic_password"]

[[proxy.route]]
name = "waba"
host = "waba.example.com"
path_prefix = "/v1/"
upstream = "http://127.0.0.1:9"
account_from = ["key:bearer", "path_segment:0"]

[[proxy.route]]
name = "body"
path_prefix = "/b/"
upstream = "http://127.0.0.1:9"
account_from = ["form:username", "json:/from", "key:form:api_key", "key:header:X-Api-Key", "key:query:api_key"]
"#;

fn sha(k: &[u8]) -> [u8; 32] {
    Sha256::digest(k).into()
}

fn world() -> &'static Gate {
    static W: OnceLock<Gate> = OnceLock::new();
    W.get_or_init(|| {
        let config = match Config::parse(CONFIG, std::iter::empty::<(String, String)>()) {
            Ok(c) => c,
            Err(e) => panic!("fuzz config: {e}"),
        };
        let routes = match Routes::build(&config.proxy.routes) {
            Ok(r) => r,
            Err(e) => panic!("fuzz routes: {e}"),
        };
        let allowed: ipnet::IpNet = ipnet::IpNet::from(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)));
        let table = Table::build(
            1,
            vec![
                (
                    "acme".to_string(),
                    AccountPolicy::new(Mode::Enforce, [&allowed]),
                ),
                ("globex".to_string(), AccountPolicy::new(Mode::Report, [])),
            ],
            &["198.51.100.0/24".parse().unwrap_or(allowed)],
        )
        .with_identities(
            vec![
                ("a1".to_string(), "acme".to_string()),
                ("g1".to_string(), "globex".to_string()),
            ],
            vec![
                (sha(b"ka"), "acme".to_string()),
                (sha(b"kg"), "globex".to_string()),
            ],
        );
        let registry = prometheus::Registry::new();
        let metrics = match ProxyMetrics::register(&registry, routes.names(), false) {
            Ok(m) => m,
            Err(e) => panic!("fuzz metrics: {e}"),
        };
        let blocked = match ipgate_proxy::blocked::BlockedCalls::register(
            &registry,
            routes.names().map(str::to_owned).collect(),
        ) {
            Ok(b) => Arc::new(b),
            Err(e) => panic!("fuzz blocked-call metrics: {e}"),
        };
        Gate {
            table: Arc::new(LiveTable::new(table)),
            metrics,
            routes,
            trusted: TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap_or(allowed)]),
            policy: Policy {
                unknown_account: ipgate_config::UnknownAccount::Deny,
                deny_unidentified: true,
            },
            limits: HeadLimits {
                max_bytes: 8192,
                max_headers: 50,
            },
            access_log: false,
            max_inspect_body: 4096,
            body_timeout: std::time::Duration::from_secs(1),
            introspector: None,
            drain: Default::default(),
            blocked,
        }
    })
}

/// Every value a lenient reader could take for parameter `name` in `pairs`.
fn lenient_params(pairs: &[u8], name: &str) -> Vec<Vec<u8>> {
    let decode = |b: &[u8]| -> Vec<u8> {
        let spaced: Vec<u8> = b
            .iter()
            .map(|&c| if c == b'+' { b' ' } else { c })
            .collect();
        percent_encoding::percent_decode(&spaced).collect()
    };
    pairs
        .split(|&b| b == b'&')
        .filter_map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &b""[..]),
            };
            (decode(k).eq_ignore_ascii_case(name.as_bytes())
                || k.eq_ignore_ascii_case(name.as_bytes()))
            .then(|| decode(v))
        })
        .collect()
}

/// Every value a lenient JSON reader could take at `pointer`: members
/// matched in any letter case, every copy of a repeated member.
fn lenient_json(body: &[u8], pointer: &str) -> Vec<Vec<u8>> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut at = vec![v];
    for token in pointer.split('/').skip(1) {
        at = at
            .iter()
            .filter_map(|v| v.as_object())
            .flat_map(|m| {
                m.iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(token))
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    at.into_iter()
        .filter_map(|v| match v {
            serde_json::Value::String(s) => Some(s.into_bytes()),
            serde_json::Value::Number(n) => Some(n.to_string().into_bytes()),
            _ => None,
        })
        .collect()
}

/// The credentials in every Authorization header with `scheme`.
fn lenient_auth(req: &RequestHeader, scheme: &str) -> Vec<Vec<u8>> {
    req.headers
        .get_all("authorization")
        .iter()
        .filter_map(|v| {
            let v = v.as_bytes();
            let (s, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
            s.eq_ignore_ascii_case(scheme.as_bytes())
                .then(|| rest.trim_ascii().to_vec())
        })
        .collect()
}

fn lenient_basic(req: &RequestHeader) -> Vec<(Vec<u8>, Vec<u8>)> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    lenient_auth(req, "basic")
        .iter()
        .filter_map(|b| engine.decode(b).ok())
        .filter_map(|d| {
            let i = d.iter().position(|&b| b == b':')?;
            Some((d[..i].to_vec(), d[i + 1..].to_vec()))
        })
        .collect()
}

/// Whether every lenient reading of `source` in the call names `account`.
fn all_name(
    table: &Table,
    source: &AccountSource,
    req: &RequestHeader,
    rest: &str,
    body: &[u8],
    account: &str,
) -> bool {
    let query = req.uri.query().unwrap_or("").as_bytes();
    let names = |vals: Vec<Vec<u8>>| {
        vals.iter().all(|v| {
            let s = String::from_utf8_lossy(v);
            let s = s.trim();
            s.is_empty() || table.resolve_name(s).is_some_and(|a| a.id() == account)
        })
    };
    let keys = |vals: Vec<Vec<u8>>| {
        vals.iter().all(|v| {
            let v = v.trim_ascii();
            v.is_empty()
                || table
                    .resolve_key(&sha(v))
                    .is_some_and(|a| a.id() == account)
        })
    };
    let header = |n: &str| -> Vec<Vec<u8>> {
        req.headers
            .get_all(n)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    // Upstreams read a body as its declared type (any Content-Type naming it).
    let declared = |kind: &str| {
        req.headers.get_all("content-type").iter().any(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .to_ascii_lowercase()
                .contains(kind)
        })
    };
    let form = if declared("x-www-form-urlencoded") {
        body
    } else {
        &b""[..]
    };
    let json = if declared("json") { body } else { &b""[..] };
    match source {
        AccountSource::BasicUser => names(lenient_basic(req).into_iter().map(|(u, _)| u).collect()),
        AccountSource::Key(KeySource::BasicPassword) => {
            keys(lenient_basic(req).into_iter().map(|(_, p)| p).collect())
        }
        AccountSource::Key(KeySource::Bearer) => keys(lenient_auth(req, "bearer")),
        AccountSource::Header(h) => names(header(h)),
        AccountSource::Key(KeySource::Header(h)) => keys(header(h)),
        AccountSource::Query(q) => names(lenient_params(query, q)),
        AccountSource::Key(KeySource::Query(q)) => keys(lenient_params(query, q)),
        AccountSource::Form(f) => names(lenient_params(form, f)),
        AccountSource::Key(KeySource::Form(f)) => keys(lenient_params(form, f)),
        AccountSource::Json(p) => names(lenient_json(json, p)),
        AccountSource::PathSegment(n) => names(
            rest.split('/')
                .filter(|s| !s.is_empty())
                .nth(*n)
                .map(|s| vec![s.as_bytes().to_vec()])
                .unwrap_or_default(),
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&peer_byte, raw)) = data.split_first() else {
        return;
    };
    let gate = world();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = parsed.parse(raw) else {
        return;
    };
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return;
    };
    let Ok(mut req) = RequestHeader::build(method, target.as_bytes(), None) else {
        return;
    };
    for h in parsed.headers.iter() {
        if req.append_header(h.name.to_string(), h.value).is_err() {
            return;
        }
    }
    if head_check::check(&req, Some(&raw[..head_len]), gate.limits).is_err() {
        return;
    }
    let body_bytes = &raw[head_len..];
    // The peer: the whitelisted address, a trusted proxy, a blocked one or another.
    let peer = IpAddr::V4(match peer_byte % 4 {
        0 => Ipv4Addr::new(203, 0, 113, 10),
        1 => Ipv4Addr::new(10, 0, 0, 1),
        2 => Ipv4Addr::new(198, 51, 100, 7),
        _ => Ipv4Addr::new(192, 0, 2, 1),
    });
    let body = if body_bytes.is_empty() {
        Body::None
    } else {
        Body::Read(body_bytes)
    };
    let head = PingoraHead(&req);
    let j = gate.judge(peer, &head, body);
    assert!(
        j.pending.is_none(),
        "a read body and no introspection leave nothing pending"
    );
    if peer_byte % 4 != 1 {
        assert_eq!(
            j.client_ip, peer,
            "only the trusted proxy's X-Forwarded-For counts"
        );
    }
    let Ok(normalized) = &j.path else {
        return;
    };
    assert!(normalized.starts_with('/'));
    assert_eq!(
        path::normalize(normalized).as_deref(),
        Ok(&**normalized),
        "normalising twice changes nothing"
    );
    assert!(
        !normalized.split('/').any(|s| s == ".." || s == "."),
        "{normalized}"
    );
    let route = j.route.and_then(|i| gate.routes.get(i));
    if let Some(r) = route {
        let prefix = match r.name.as_str() {
            "sms" => "/sms/",
            "waba" => "/v1/",
            _ => "/b/",
        };
        // The prefix itself without its last slash (`/sms`) is the route too.
        assert!(
            normalized.starts_with(prefix) || normalized == prefix.trim_end_matches('/'),
            "{normalized} left {prefix}"
        );
        assert!(r.upstream_path(normalized).starts_with('/'));
    }
    if !j.decision.forwards() {
        return;
    }
    let account = j
        .account
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    match j.decision {
        Decision::Allow(AllowReason::Whitelisted) => {
            assert_eq!(account, "acme");
            assert_eq!(j.client_ip, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)));
        }
        Decision::Report(_) => assert_eq!(account, "globex"),
        other => panic!("let through as {other:?}"),
    }
    let Some(r) = route else {
        panic!("let through without a route")
    };
    let table = gate.table.load();
    for source in &r.sources {
        assert!(
            all_name(
                &table,
                source,
                &req,
                r.rest(normalized),
                body_bytes,
                &account
            ),
            "judged as {account}, but {source} may name another account"
        );
    }
});
