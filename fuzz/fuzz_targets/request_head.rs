//! A whole request head, as the proxy's request filter sees it: framing
//! checks, client IP, path normalisation, routing, account extraction and
//! the decision. Never panics; a normalised path stays normalised and never
//! leaves its route's prefix; an extracted account id is always valid; only
//! the whitelisted address is ever allowed for the enforcing account.
#![no_main]

use ipgate_config::Config;
use ipgate_proxy::client_ip::TrustedProxies;
use ipgate_proxy::decision::{decide, AllowReason, Decision, Policy};
use ipgate_proxy::head_check::{self, HeadLimits};
use ipgate_proxy::routes::Routes;
use ipgate_proxy::table::{AccountPolicy, Mode, Table};
use ipgate_proxy::{account, path};
use libfuzzer_sys::fuzz_target;
use pingora_http::RequestHeader;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

const CONFIG: &str = r#"
[[proxy.route]]
name = "sms"
path_prefix = "/sms/"
strip_prefix = true
upstream = "http://127.0.0.1:9"
account_from = ["basic_user", "query:username", "header:X-Account-Id"]

[[proxy.route]]
name = "waba"
host = "waba.example.com"
path_prefix = "/v1/"
upstream = "http://127.0.0.1:9"
account_from = ["path_segment:0"]
"#;

struct World {
    routes: Routes,
    table: Table,
    trusted: TrustedProxies,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
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
        let table = Table::empty()
            .with_account("acme", Some(AccountPolicy::new(Mode::Enforce, [&allowed])))
            .with_blocklist(&["198.51.100.0/24".parse().unwrap_or(allowed)]);
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap_or(allowed)]);
        World {
            routes,
            table,
            trusted,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&peer_byte, raw)) = data.split_first() else {
        return;
    };
    let w = world();
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
    let limits = HeadLimits {
        max_bytes: 8192,
        max_headers: 50,
    };
    if head_check::check(&req, Some(&raw[..head_len]), limits).is_err() {
        return;
    }
    // The peer: the whitelisted address, a trusted proxy, a blocked one or another.
    let peer = IpAddr::V4(match peer_byte % 4 {
        0 => Ipv4Addr::new(203, 0, 113, 10),
        1 => Ipv4Addr::new(10, 0, 0, 1),
        2 => Ipv4Addr::new(198, 51, 100, 7),
        _ => Ipv4Addr::new(192, 0, 2, 1),
    });
    let xff = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes());
    let ip = w.trusted.client_ip(peer, xff);
    if peer_byte % 4 != 1 {
        assert_eq!(ip, peer, "only the trusted proxy's X-Forwarded-For counts");
    }

    let Ok(normalized) = path::normalize(req.uri.path()) else {
        return;
    };
    assert!(normalized.starts_with('/'));
    assert_eq!(
        path::normalize(&normalized).as_deref(),
        Ok(normalized.as_str()),
        "normalising twice changes nothing"
    );
    assert!(
        !normalized.split('/').any(|s| s == ".." || s == "."),
        "{normalized}"
    );
    let host = req
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or(req.uri.host());
    let route = w.routes.find(host, &normalized);
    let account = match route {
        Some((_, r)) => {
            let prefix = if r.name == "sms" { "/sms/" } else { "/v1/" };
            // The prefix itself without its last slash (`/sms`) is the route too.
            assert!(
                normalized.starts_with(prefix) || normalized == prefix.trim_end_matches('/'),
                "{normalized} left {prefix}"
            );
            assert!(r.upstream_path(&normalized).starts_with('/'));
            account::extract(&r.sources, &req, r.rest(&normalized))
                .ok()
                .flatten()
        }
        None => None,
    };
    if let Some(a) = &account {
        assert!(account::valid_account_id(a), "{a:?}");
    }
    let policy = Policy {
        unknown_account: ipgate_config::UnknownAccount::Deny,
        deny_unidentified: true,
    };
    let decision = decide(&w.table, policy, ip, route.is_some(), account.as_deref());
    if decision.forwards() {
        assert_eq!(decision, Decision::Allow(AllowReason::Whitelisted));
        assert_eq!(account.as_deref(), Some("acme"));
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)));
    }
});
