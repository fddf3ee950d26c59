//! The account a call is judged as is the one its credentials name, never
//! one the caller adds: every bypass that worked before, black-box, on
//! both HTTP/1 paths (the raw path for plain HTTP/1.1, Pingora's for
//! HTTP/1.0 and chunked bodies), asserting the status, the code and that
//! the upstream received nothing.

use crate::common::*;
use serde_json::json;

/// acme: enforce, only 203.0.113.10 (never the test's 127.0.0.1), alias
/// `acme-user`, phone id `15550001`, key `acme-secret-key`. globex: report
/// mode (lets every address through), key `globex-key`. So a call from
/// 127.0.0.1 gets through only when it is judged as globex.
fn setup(up: &Upstream, extra: &str) -> Server {
    let route = format!(
        r#"
[[proxy.route]]
name = "keyed"
path_prefix = "/keyed/"
upstream = "http://{up}"
account_from = ["key:bearer", "key:header:X-Api-Key", "key:query:api_key", "key:form:api_key", "form:username", "json:/from"]

[[proxy.route]]
name = "wa"
path_prefix = "/wa/"
upstream = "http://{up}"
account_from = ["key:bearer", "path_segment:1"]
"#,
        up = up.addr
    );
    let gate = Server::start(
        up,
        ServerOpts {
            extra: format!("{extra}\n{route}"),
            ..ServerOpts::default()
        },
    );
    gate.account("acme", "enforce", &["203.0.113.10"]);
    gate.account("globex", "report", &[]);
    for (account, value) in [
        ("acme", "acme-user"),
        ("acme", "15550001"),
        ("globex", "15550009"),
    ] {
        let (s, b) = gate.admin(
            "POST",
            &format!("/admin/v1/accounts/{account}/identities"),
            Some(json!({"value": value})),
        );
        assert_eq!(s, 201, "{b}");
    }
    for (account, key) in [("acme", "acme-secret-key"), ("globex", "globex-key")] {
        let (s, b) = gate.admin(
            "POST",
            &format!("/admin/v1/accounts/{account}/keys"),
            Some(json!({"key": key})),
        );
        assert_eq!(s, 201, "{b}");
    }
    gate
}

/// One call as bytes: `head` is the request line's method and target
/// plus header lines; `body` is sent with Content-Length.
struct Call<'a> {
    method: &'a str,
    target: String,
    headers: Vec<(&'a str, String)>,
    body: &'a str,
}

fn call<'a>(
    method: &'a str,
    target: &'a str,
    headers: &[(&'a str, &str)],
    body: &'a str,
) -> Call<'a> {
    Call {
        method,
        target: target.to_string(),
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body,
    }
}

impl<'a> Call<'a> {
    /// The WhatsApp-style call for phone id `id` with `authorization`.
    fn with_target(mut self, id: &str, authorization: &str) -> Call<'a> {
        self.target = format!("/wa/v17.0/{id}/messages");
        self.headers
            .push(("Authorization", authorization.to_string()));
        self
    }
}

/// How the call is framed, which picks the proxy's path.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// HTTP/1.1 with Content-Length: the raw path.
    Raw,
    /// HTTP/1.0: Pingora's path.
    Http10,
    /// HTTP/1.1 with a chunked body: Pingora's path.
    Chunked,
}

fn bytes(c: &Call, f: Framing) -> Vec<u8> {
    let version = if matches!(f, Framing::Http10) {
        "1.0"
    } else {
        "1.1"
    };
    let mut out = format!(
        "{} {} HTTP/{version}\r\nHost: gw.test\r\nConnection: close\r\n",
        c.method, c.target
    );
    for (k, v) in &c.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    match f {
        Framing::Chunked if !c.body.is_empty() => {
            out.push_str(&format!(
                "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                c.body.len(),
                c.body
            ));
        }
        _ => out.push_str(&format!(
            "Content-Length: {}\r\n\r\n{}",
            c.body.len(),
            c.body
        )),
    }
    out.into_bytes()
}

/// Sends the call and returns (status, error code or "").
fn send(gate: &Server, c: &Call, f: Framing) -> (u16, String) {
    let answer = raw(gate.proxy, &bytes(c, f));
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let code = if status == 200 {
        String::new()
    } else {
        code(body)
    };
    (status, code)
}

/// The call is refused with `status` and `code` on every path, and the
/// upstream receives nothing.
fn refused(gate: &Server, up: &Upstream, c: &Call, status: u16, want: &str) {
    for f in [Framing::Raw, Framing::Http10, Framing::Chunked] {
        let hits = up.hits();
        let got = send(gate, c, f);
        assert_eq!(
            got,
            (status, want.to_string()),
            "{f:?}: {} {} {:?} {}",
            c.method,
            c.target,
            c.headers,
            &c.body[..c.body.len().min(80)]
        );
        assert_eq!(up.hits(), hits, "{f:?}: the upstream got a refused call");
    }
}

fn passes(gate: &Server, up: &Upstream, c: &Call) {
    for f in [Framing::Raw, Framing::Http10, Framing::Chunked] {
        let hits = up.hits();
        assert_eq!(
            send(gate, c, f),
            (200, String::new()),
            "{f:?}: {} {}",
            c.method,
            c.target
        );
        assert_eq!(up.hits(), hits + 1);
    }
}

#[test]
fn naming_another_account_beside_the_credentials_is_refused() {
    let up = Upstream::start();
    let gate = setup(&up, "");
    let acme_basic = basic("acme");
    let globex_basic = basic("globex");
    let cases = [
        // The issue's three bypasses.
        call(
            "GET",
            "/sms/send",
            &[("Authorization", &acme_basic), ("X-Account-Id", "globex")],
            "",
        ),
        call(
            "GET",
            "/sms/send?username=acme",
            &[("Authorization", &globex_basic)],
            "",
        ),
        call(
            "GET",
            "/wa/v17.0/15550009/messages",
            &[("Authorization", "Bearer acme-secret-key")],
            "",
        ),
        // A key of one account with an identifier of another.
        call(
            "POST",
            "/keyed/send",
            &[
                ("Authorization", "Bearer acme-secret-key"),
                ("Content-Type", "application/json"),
            ],
            r#"{"from":"globex"}"#,
        ),
        call(
            "POST",
            "/keyed/send",
            &[
                ("X-Api-Key", "acme-secret-key"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "username=globex&to=1",
        ),
        call(
            "GET",
            "/keyed/send?api_key=globex-key",
            &[("Authorization", "Bearer acme-secret-key")],
            "",
        ),
        // A name nobody knows beside one that resolves.
        call(
            "GET",
            "/sms/send?username=nobody",
            &[("X-Account-Id", "globex")],
            "",
        ),
    ];
    for c in &cases {
        refused(&gate, &up, c, 401, "ambiguous_account");
    }
}

#[test]
fn malformed_sources_are_refused_not_passed_over() {
    let up = Upstream::start();
    let gate = setup(&up, "");
    let unpadded = "Basic YWNtZTpzZWNyZXQ"; // "acme:secret" without its "="
    let cases = [
        call(
            "GET",
            "/sms/send",
            &[("Authorization", unpadded), ("X-Account-Id", "globex")],
            "",
        ),
        call(
            "GET",
            "/sms/send",
            &[
                ("Authorization", &basic("acme")),
                ("Authorization", &basic("globex")),
            ],
            "",
        ),
        call(
            "GET",
            "/sms/send",
            &[("X-Account-Id", "globex"), ("X-Account-Id", "globex")],
            "",
        ),
        call(
            "GET",
            "/sms/send?user%6Eame=acme",
            &[("X-Account-Id", "globex")],
            "",
        ),
        call("GET", "/sms/send?Username=acme&username=globex", &[], ""),
        call("GET", "/sms/send?username=globex&username=globex", &[], ""),
        call("GET", "/sms/send?username=glob%ffex", &[], ""),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "username=globex&username=acme",
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "username=globex&user%6Eame=acme",
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/json")],
            r#"{"from":"globex","from":"acme"}"#,
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/json")],
            r#"{"from":"globex","From":"acme"}"#,
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/json")],
            r#"{"from":"globex""#,
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "text/plain")],
            "username=globex",
        ),
    ];
    for c in &cases {
        refused(&gate, &up, c, 401, "unidentified");
    }
}

#[test]
fn identities_and_keys_resolve_ignoring_case_and_unknown_is_denied_by_default() {
    let up = Upstream::start();
    let gate = setup(&up, "");
    // Judged as acme, whose list does not hold 127.0.0.1: refused by its list.
    for c in [
        call("GET", "/sms/send", &[("X-Account-Id", "ACME")], ""),
        call("GET", "/sms/send?username=Acme-User", &[], ""),
        call(
            "GET",
            "/wa/v17.0/15550001/messages",
            &[("Authorization", "Bearer acme-secret-key")],
            "",
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "api_key=acme-secret-key&username=acme-user",
        ),
        call(
            "POST",
            "/keyed/send",
            &[("Content-Type", "application/json")],
            r#"{"from":15550001}"#,
        ),
    ] {
        refused(&gate, &up, &c, 403, "ip_not_whitelisted");
    }
    // An identity nobody registered: unknown, denied by default.
    refused(
        &gate,
        &up,
        &call("GET", "/sms/send", &[("X-Account-Id", "GLOBEX-2")], ""),
        403,
        "unknown_account",
    );
    refused(
        &gate,
        &up,
        &call(
            "GET",
            "/wa/v17.0/1/m",
            &[("Authorization", "Bearer stolen")],
            "",
        ),
        403,
        "unknown_account",
    );

    // globex's own credentials, all agreeing: through, body unchanged.
    let body = r#"{"from":"15550009","text":"hi"}"#;
    let c = call(
        "POST",
        "/keyed/send",
        &[
            ("Authorization", "Bearer globex-key"),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    passes(&gate, &up, &c);
    assert_eq!(
        String::from_utf8_lossy(&up.last().body),
        body,
        "the body is forwarded unchanged"
    );
    passes(
        &gate,
        &up,
        &call(
            "GET",
            "/wa/v17.0/15550009/messages",
            &[("Authorization", "Bearer globex-key")],
            "",
        ),
    );
}

#[test]
fn a_body_over_max_inspect_body_is_refused_on_routes_that_read_it() {
    let up = Upstream::start();
    let gate = setup(&up, "max_inspect_body = 1024");
    let big = format!("username=globex&pad={}", "x".repeat(2000));
    let c = call(
        "POST",
        "/keyed/send",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &big,
    );
    refused(&gate, &up, &c, 413, "body_too_large");
    // A route that reads no body forwards it, whatever its size.
    let c = call("POST", "/sms/send", &[("X-Account-Id", "globex")], &big);
    passes(&gate, &up, &c);
    assert_eq!(up.last().body.len(), big.len());
}

/// A real RFC 7662-style introspection server: `intro-acme` is acme's
/// (through its alias), `intro-globex` globex's, `slow` answers after 3 s,
/// anything else is inactive. Counts the calls per token and records the
/// Authorization header it was sent.
struct Introspection {
    addr: std::net::SocketAddr,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Introspection {
    fn start() -> Introspection {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let seen = calls.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/introspect",
                    axum::routing::post(
                        move |headers: axum::http::HeaderMap,
                              axum::extract::Form(form): axum::extract::Form<
                            std::collections::HashMap<String, String>,
                        >| {
                            let seen = seen.clone();
                            async move {
                                let token = form.get("token").cloned().unwrap_or_default();
                                let auth = headers
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string();
                                seen.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push((token.clone(), auth));
                                let answer = match token.as_str() {
                                    "intro-acme" => {
                                        json!({"active": true, "username": "acme-user"})
                                    }
                                    "intro-globex" => json!({"active": true, "username": "GLOBEX"}),
                                    "slow" => {
                                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                                        json!({"active": true, "username": "globex"})
                                    }
                                    _ => json!({"active": false}),
                                };
                                axum::Json(answer)
                            }
                        },
                    ),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app).await;
            });
        });
        Introspection { addr, calls }
    }

    fn calls(&self, token: &str) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.iter().filter(|(t, _)| t == token).count()
    }
}

#[test]
fn unregistered_keys_are_introspected_cached_and_refused_when_it_cannot_answer() {
    let up = Upstream::start();
    let intro = Introspection::start();
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "intro-client-token\n").unwrap();
    let gate = setup(
        &up,
        &format!(
            "introspect_url = \"http://{}/introspect\"\nintrospect_ttl = \"60s\"\nintrospect_timeout = \"500ms\"\nintrospect_token_file = \"{}\"",
            intro.addr,
            token_file.path().display()
        ),
    );
    let bearer = |t: &str| format!("Bearer {t}");
    let wa = |id: &str, token: &str| call("GET", "/", &[], "").with_target(id, &bearer(token));

    // An introspected key of globex with globex's phone id: through, asked once.
    passes(&gate, &up, &wa("15550009", "intro-globex"));
    assert_eq!(intro.calls("intro-globex"), 1, "the answer is cached");
    {
        let calls = intro.calls.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(
            calls[0].1, "Bearer intro-client-token",
            "ipgate authenticates to the endpoint"
        );
    }
    // acme's introspected key naming globex's phone id: ambiguous.
    refused(
        &gate,
        &up,
        &wa("15550009", "intro-acme"),
        401,
        "ambiguous_account",
    );
    // An inactive key is unknown, and that answer is cached too.
    refused(
        &gate,
        &up,
        &wa("15550009", "revoked-key"),
        401,
        "ambiguous_account",
    );
    refused(
        &gate,
        &up,
        &call("GET", "/keyed/send", &[("X-Api-Key", "revoked-key")], ""),
        403,
        "unknown_account",
    );
    assert_eq!(intro.calls("revoked-key"), 1);
    // A registered key is never sent out.
    refused(
        &gate,
        &up,
        &wa("15550001", "acme-secret-key"),
        403,
        "ip_not_whitelisted",
    );
    assert_eq!(intro.calls("acme-secret-key"), 0);
    // Slow: refused, never let through unjudged.
    let started = std::time::Instant::now();
    refused(
        &gate,
        &up,
        &wa("15550009", "slow"),
        503,
        "introspection_unavailable",
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "bounded by introspect_timeout"
    );

    let log = gate.log();
    for secret in [
        "intro-globex",
        "intro-acme",
        "revoked-key",
        "acme-secret-key",
        "intro-client-token",
    ] {
        assert!(!log.contains(secret), "a key reached the log: {secret}");
    }
    let metrics = gate.metrics_text();
    assert!(!metrics.contains("intro-"), "a key reached the metrics");
}

#[test]
fn introspection_down_refuses_the_call() {
    let up = Upstream::start();
    let closed = free_port();
    let gate = setup(
        &up,
        &format!("introspect_url = \"http://127.0.0.1:{closed}/introspect\""),
    );
    let c = call("GET", "/wa/v17.0/15550009/m", &[], "").with_target("15550009", "Bearer some-key");
    refused(&gate, &up, &c, 503, "introspection_unavailable");
    // Registered keys need no introspection and still work.
    let c =
        call("GET", "/wa/v17.0/15550009/m", &[], "").with_target("15550009", "Bearer globex-key");
    passes(&gate, &up, &c);
}
