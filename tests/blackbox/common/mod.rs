//! Helpers for black-box tests: a real HTTP upstream that records what
//! reaches it, and the real `ipgate` binary started on free loopback ports.
#![allow(dead_code)]

pub mod browser;
pub mod fleet;
pub mod fs;
pub mod identities;
pub mod netns;
pub mod pg;
pub mod webdriver;

use serde_json::Value;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-admin-token-0123456789";
/// The security log key gates start with (`IPGATE_LOG_KEY`).
/// The sync feed's token every spawned server gets.
pub const SYNC_TOKEN: &str = "test-sync-token-0123456789abcdef";

pub const LOG_KEY: &str = "test-log-key-0123456789abcdef-0123456789";

/// A port no other test of this run is given, and below the kernel's
/// ephemeral range (32768 and up), so neither `bind(0)` nor an outgoing
/// connection takes it while a server restarts on it: a slice of 2,000
/// ports per process, chosen by its pid, each port free when handed out.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 6) * 2_000;
    for _ in 0..2_000 {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {base}..{}", base + 2_000);
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad ip {s}"))
}

/// What the upstream saw of one request.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub path: String,
    pub query: Option<String>,
    pub host: String,
    pub xff: String,
    /// The request body as received.
    pub body: Vec<u8>,
    /// Every header as received, names lower-cased.
    pub headers: Vec<(String, String)>,
}

/// A real HTTP server standing in for the SMS/WABA API.
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    conns: Arc<Mutex<HashSet<SocketAddr>>>,
    last: Arc<Mutex<Seen>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(HashSet::new()));
        let last = Arc::new(Mutex::new(Seen::default()));
        let (h, c, l) = (hits.clone(), conns.clone(), last.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(
                    move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                        SocketAddr,
                    >,
                          req: axum::extract::Request| {
                        let (h, c, l) = (h.clone(), c.clone(), l.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            c.lock().unwrap_or_else(|p| p.into_inner()).insert(peer);
                            let mut seen = {
                                let get = |n: &str| {
                                    req.headers()
                                        .get(n)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or("")
                                        .to_string()
                                };
                                Seen {
                                    path: req.uri().path().to_string(),
                                    query: req.uri().query().map(str::to_string),
                                    host: get("host"),
                                    xff: get("x-forwarded-for"),
                                    body: Vec::new(),
                                    headers: req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_string(),
                                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                            )
                                        })
                                        .collect(),
                                }
                            };
                            seen.body = axum::body::to_bytes(req.into_body(), 1 << 20)
                                .await
                                .map(|b| b.to_vec())
                                .unwrap_or_default();
                            *l.lock().unwrap_or_else(|p| p.into_inner()) = seen;
                            "upstream says hello"
                        }
                    },
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            });
        });
        Upstream {
            addr,
            hits,
            conns,
            last,
        }
    }

    /// A raw HTTP/1 upstream that answers every request with the bytes
    /// `answer` gives for its head (so a test can send any framing), and
    /// closes the connection after each answer when `close_after` is true.
    /// It records hits, connections and what it saw, as `start` does.
    pub fn scripted(
        close_after: bool,
        answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(HashSet::new()));
        let last = Arc::new(Mutex::new(Seen::default()));
        let answer = Arc::new(answer);
        let (h, c, l) = (hits.clone(), conns.clone(), last.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (h, c, l, answer) = (h.clone(), c.clone(), l.clone(), answer.clone());
                std::thread::spawn(move || {
                    if let Ok(peer) = stream.peer_addr() {
                        c.lock().unwrap_or_else(|p| p.into_inner()).insert(peer);
                    }
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match stream.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                        let header = |name: &str| {
                            head.lines()
                                .filter_map(|l| l.split_once(':'))
                                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_string())
                        };
                        let body_len: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + body_len {
                            match stream.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = buf[end + 4..end + 4 + body_len].to_vec();
                        buf.drain(..end + 4 + body_len);
                        let target = head.split(' ').nth(1).unwrap_or("").to_string();
                        let (path, query) = match target.split_once('?') {
                            Some((p, q)) => (p.to_string(), Some(q.to_string())),
                            None => (target, None),
                        };
                        *l.lock().unwrap_or_else(|p| p.into_inner()) = Seen {
                            path,
                            query,
                            host: header("host").unwrap_or_default(),
                            xff: header("x-forwarded-for").unwrap_or_default(),
                            body,
                            headers: head
                                .lines()
                                .skip(1)
                                .filter_map(|l| l.split_once(':'))
                                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                                .collect(),
                        };
                        h.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(&answer(&head)).is_err() || close_after {
                            return;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            hits,
            conns,
            last,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    pub fn last(&self) -> Seen {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Options for one `ipgate serve` process.
#[derive(Clone)]
pub struct ServerOpts {
    pub trusted_proxies: Vec<String>,
    pub unknown_account: &'static str,
    pub tls: bool,
    pub extra: String,
    /// Lines added to `[control]`.
    pub control_extra: String,
    /// The subcommand: `serve`, or `control` (no proxy listener).
    pub command: &'static str,
    /// More environment for the process (e.g. a PostgreSQL store).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            trusted_proxies: vec![],
            unknown_account: "deny",
            tls: false,
            extra: String::new(),
            control_extra: String::new(),
            command: "serve",
            env: Vec::new(),
        }
    }
}

impl ServerOpts {
    /// `ipgate control`: the control plane alone, the fleet's proxies' feed.
    pub fn control_plane() -> ServerOpts {
        ServerOpts {
            command: "control",
            ..ServerOpts::default()
        }
    }

    /// A gate with a TLS listener too (a fresh `ipgate certs dev` pair).
    pub fn tls() -> ServerOpts {
        ServerOpts {
            tls: true,
            ..ServerOpts::default()
        }
    }

    /// Loopback addresses may be requested (tests call the proxy from
    /// 127.0.0.x), plus more `[control]` lines.
    pub fn self_service(control_extra: &str) -> ServerOpts {
        ServerOpts {
            control_extra: format!("allow_private_ips = true\n{control_extra}"),
            ..ServerOpts::default()
        }
    }
}

/// The real `ipgate serve` process.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub proxy: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
    pub portal: SocketAddr,
    /// The SMTP server the gate sends its mail to.
    pub mail: ipgate_devmail::Catcher,
    /// `IPGATE_LOG_KEY` for the next start (none: unset).
    pub log_key: Option<String>,
    /// `serve` or `control`.
    pub command: &'static str,
    pub env: Vec<(String, String)>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ipgate")
}

impl Server {
    /// Starts a gate; retries on fresh ports when another test took one of
    /// the free ports picked for it in the meantime.
    pub fn start(upstream: &Upstream, opts: ServerOpts) -> Server {
        let mut last = String::new();
        for _ in 0..4 {
            match Server::try_start(upstream, opts.clone()) {
                Ok(g) => return g,
                Err(log) if log.contains("cannot listen") || log.contains("is already used") => {
                    last = log
                }
                Err(log) => panic!("{log}"),
            }
        }
        panic!("no free ports after 4 tries:\n{last}");
    }

    fn try_start(upstream: &Upstream, opts: ServerOpts) -> Result<Server, String> {
        let dir = tempfile::tempdir().unwrap();
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let (proxy, admin, metrics, portal) =
            (at(ports[0]), at(ports[1]), at(ports[2]), at(ports[3]));
        let tls = opts.tls.then(|| at(ports[4]));
        let mail = ipgate_devmail::Catcher::start(at(0)).unwrap();
        let mut tls_conf = String::new();
        if let Some(t) = tls {
            let out = Command::new(bin())
                .args(["certs", "dev", "--out"])
                .arg(dir.path().join("certs"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "certs dev failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tls_conf = format!(
                "tls_listen = \"{t}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                dir.path().join("certs/server.crt").display(),
                dir.path().join("certs/server.key").display()
            );
        }
        let trusted: Vec<String> = opts
            .trusted_proxies
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect();
        let text = format!(
            r#"
[proxy]
listen = "{proxy}"
{tls_conf}threads = 1
trusted_proxies = [{trusted}]
unknown_account = "{unknown}"
max_header_bytes = 8192
max_headers = 50
{extra}

[[proxy.route]]
name = "sms"
path_prefix = "/sms/"
strip_prefix = true
upstream = "http://{up}"
account_from = ["basic_user", "query:username", "header:X-Account-Id"]

[[proxy.route]]
name = "waba"
path_prefix = "/waba/"
strip_prefix = true
upstream = "http://{up}"
account_from = ["path_segment:0"]

[control]
listen = "{portal}"
admin_listen = "{admin}"
public_url = "http://{portal}"
{control_extra}

[smtp]
url = "smtp://{smtp}"
from = "Security <security@ipgate.test>"

[store]
path = "{store}"

[metrics]
listen = "{metrics}"
"#,
            trusted = trusted.join(", "),
            unknown = opts.unknown_account,
            extra = opts.extra,
            control_extra = opts.control_extra,
            up = upstream.addr,
            smtp = mail.addr(),
            store = dir.path().join("store").display(),
        );
        let config = dir.path().join("ipgate.toml");
        std::fs::write(&config, text).unwrap();
        let mut gate = Server {
            child: None,
            dir,
            config,
            proxy,
            tls,
            admin,
            metrics,
            portal,
            mail,
            log_key: Some(LOG_KEY.to_string()),
            command: opts.command,
            env: opts.env,
        };
        gate.spawn()?;
        Ok(gate)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("ipgate.log")).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args([self.command, "--config"])
            .arg(&self.config)
            .env("IPGATE_ADMIN_TOKEN", TOKEN)
            .env("IPGATE_SYNC_TOKEN", SYNC_TOKEN)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        match &self.log_key {
            Some(k) => cmd.env("IPGATE_LOG_KEY", k),
            None => cmd.env_remove("IPGATE_LOG_KEY"),
        };
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ipgate: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ports = vec![self.admin, self.metrics, self.portal];
        if self.command == "serve" {
            ports.push(self.proxy);
            ports.extend(self.tls);
        }
        // A connect to a port nobody listens on yet can meet itself (the
        // kernel may pick the same port as the source): that is not ready.
        let listening = |addr: SocketAddr| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
        };
        for addr in ports {
            while !listening(addr) {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                    return Err(format!("ipgate exited early ({status}):\n{}", self.log()));
                }
                assert!(
                    Instant::now() < deadline,
                    "ipgate did not listen on {addr} in time:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ipgate.log")).unwrap_or_default()
    }

    /// `kill -9`, then start again on the same config and store.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn().unwrap();
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL now, from any thread; `kill` (or `kill_and_restart`) reaps it.
    pub fn sigkill(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status();
        }
    }

    /// SIGTERM (Pingora's graceful shutdown), then wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("gate not running"));
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ipgate did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts again on the same config and store after `stop` or `kill`.
    pub fn restart(&mut self) {
        self.spawn().unwrap();
    }

    /// Starts again after `stop` or `kill`; Err with the log when ipgate
    /// exits before it listens.
    pub fn try_restart(&mut self) -> Result<(), String> {
        self.spawn()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One admin API call; returns status and JSON body.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.admin_with_token(method, path, body, TOKEN)
    }

    pub fn admin_with_token(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (u16, Value) {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client
            .request(method, format!("http://{}{path}", self.admin))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("admin call failed: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates an account and whitelists `cidrs` for it.
    pub fn account(&self, id: &str, mode: &str, cidrs: &[&str]) {
        let (s, b) = self.admin(
            "POST",
            "/admin/v1/accounts",
            Some(serde_json::json!({"id": id, "name": id, "emails": [format!("ops@{id}.test")], "whitelist": mode})),
        );
        assert_eq!(s, 201, "{b}");
        for c in cidrs {
            let (s, b) = self.admin(
                "POST",
                &format!("/admin/v1/accounts/{id}/whitelist"),
                Some(serde_json::json!({"cidr": c})),
            );
            assert_eq!(s, 201, "{b}");
        }
    }

    pub fn metrics_text(&self) -> String {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .and_then(|c| c.get(format!("http://{}/metrics", self.metrics)).send())
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("metrics: {e}"))
    }

    /// A proxied GET from source address `from`, with headers.
    pub fn get(&self, from: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .local_address(ip(from))
            .build()
            .unwrap();
        let mut req = client.get(format!("http://{}{path}", self.proxy));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("proxy call failed: {e}"));
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JSON error code of a proxy answer.
impl Seen {
    /// The value of header `name` (lower-case) as the upstream received it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("<no code in {body}>"))
}

/// Sends raw bytes to `addr` and returns what comes back until close or 5 s.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `Authorization` value for Basic `user:pass`.
pub fn basic(user: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:secret"))
    )
}

/// A customer API call with a Bearer token; returns status and JSON body.
pub fn api(
    gate: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(method, format!("http://{}{path}", gate.portal))
        .bearer_auth(token)
        .header("User-Agent", "ipgate-test/1.0");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .unwrap_or_else(|e| panic!("API call failed: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET /api/v1/whitelist/requests/{id}`: the request as the customer API shows it.
pub fn request(gate: &Server, token: &str, id: &str) -> Value {
    api(
        gate,
        "GET",
        &format!("/api/v1/whitelist/requests/{id}"),
        token,
        None,
    )
    .1
}

/// `POST /api/v1/whitelist/requests` with `body`; returns status and JSON.
pub fn submit_request(gate: &Server, token: &str, body: Value) -> (u16, Value) {
    api(
        gate,
        "POST",
        "/api/v1/whitelist/requests",
        token,
        Some(body),
    )
}

/// Creates a user (optionally with TOTP) and returns (API token, TOTP secret).
pub fn user(
    gate: &Server,
    account: &str,
    username: &str,
    role: &str,
    totp: bool,
) -> (String, Option<String>) {
    let (s, v) = gate.admin(
        "POST",
        &format!("/admin/v1/accounts/{account}/users"),
        Some(serde_json::json!({"username": username, "password": "a long enough passphrase", "role": role})),
    );
    assert_eq!(s, 201, "{v}");
    let secret = totp.then(|| {
        let (s, v) = gate.admin("POST", &format!("/admin/v1/users/{username}/totp"), None);
        assert_eq!(s, 200, "{v}");
        v["secret"].as_str().unwrap_or_default().to_string()
    });
    let (s, v) = gate.admin("POST", &format!("/admin/v1/users/{username}/tokens"), None);
    assert_eq!(s, 201, "{v}");
    (v["token"].as_str().unwrap_or_default().to_string(), secret)
}

/// Creates account `acme` ("Acme Ltd", enforcing, emails ops@ and
/// cto@acme.test, and the fields of `extra`); its answer.
pub fn acme_two_emails(gate: &Server, extra: Value) -> Value {
    let mut body = serde_json::json!({"id": "acme", "name": "Acme Ltd", "emails": ["ops@acme.test", "cto@acme.test"], "whitelist": "enforce"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, b) = gate.admin("POST", "/admin/v1/accounts", Some(body));
    assert_eq!(s, 201, "{b}");
    b
}

/// The `event` names of security-log records, in order.
pub fn events(log: &Value) -> Vec<&str> {
    log.as_array()
        .map(|a| a.iter().filter_map(|r| r["event"].as_str()).collect())
        .unwrap_or_default()
}

impl Server {
    /// A rustls client trusting this gate's dev certificate, speaking
    /// `versions`, with a session store of its own.
    pub fn tls_client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let cert = rustls::pki_types::CertificateDer::from_pem_file(
            self.dir.path().join("certs/server.crt"),
        )
        .unwrap();
        roots.add(cert).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }

    /// Runs `ipgate admin --url <this gate> ARGS` with the admin token.
    pub fn admin_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(["admin", "--url", &format!("http://{}", self.admin)])
            .args(args)
            .env("IPGATE_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    }
}

impl Server {
    /// Polls `f` every 100 ms until it holds; fails after `secs` with the gate's log.
    pub fn wait_until(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `event` names of one account's security-log records, in order.
    pub fn security_events(&self, account: &str) -> Vec<String> {
        let (_, log) = self.admin(
            "GET",
            &format!("/admin/v1/security-log?account={account}"),
            None,
        );
        events(&log).into_iter().map(str::to_string).collect()
    }

    /// Asserts that the metrics page has each of these lines (or prefixes).
    pub fn assert_metrics(&self, wants: &[&str]) {
        let m = self.metrics_text();
        for want in wants {
            assert!(m.contains(want), "{want} missing:\n{m}");
        }
    }
}

/// Runs `promtool ARGS` with `stdin`; None (and a note) when promtool is not
/// installed, unless `IPGATE_REQUIRE_PROMTOOL` is set, which makes that a failure.
pub fn promtool(args: &[&str], stdin: &str) -> Option<std::process::Output> {
    let child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match child {
        Ok(mut child) => {
            if let Some(mut input) = child.stdin.take() {
                input.write_all(stdin.as_bytes()).unwrap();
            }
            Some(child.wait_with_output().unwrap())
        }
        Err(e) => {
            assert!(
                std::env::var_os("IPGATE_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here but cannot run: {e}"
            );
            eprintln!("promtool not installed (apt-get install prometheus); skipped its check");
            None
        }
    }
}
