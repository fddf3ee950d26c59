//! `ipgate check-network`: for each upstream of the config, DNS, TCP
//! connect, TLS handshake (https upstreams) and one HTTP round trip, each
//! timed, through `http_proxy`/`https_proxy` when they are set. One line per
//! step; a failed step says why and skips the rest of that upstream.

use crate::proxy_env::{HttpProxy, ProxyEnv};
use base64::Engine;
use ipgate_config::{Config, Upstream};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER_AGENT: &str = concat!("ipgate-check-network/", env!("CARGO_PKG_VERSION"));
const MAX_HEAD: usize = 16 * 1024;

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One upstream and the limits its routes give it.
struct Target {
    upstream: Upstream,
    routes: Vec<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
}

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let env = ProxyEnv::from_env();
    let targets = targets(config);
    let mut failed = 0;
    for t in &targets {
        println!("upstream {} (routes: {})", t.upstream, t.routes.join(", "));
        if let Err(rest) = check(t, &env) {
            if !rest.is_empty() {
                println!("  {rest}: skipped");
            }
            failed += 1;
        }
    }
    if failed == 0 {
        println!("ok: all {} upstreams answered", targets.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: {failed} of {} upstreams", targets.len());
        Ok(ExitCode::FAILURE)
    }
}

/// Routes sharing an upstream are checked once, with their shortest timeouts.
fn targets(config: &Config) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for r in &config.proxy.routes {
        if let Some(t) = out.iter_mut().find(|t| t.upstream == r.upstream) {
            t.routes.push(r.name.clone());
            t.connect_timeout = t.connect_timeout.min(r.connect_timeout.0);
            t.read_timeout = t.read_timeout.min(r.read_timeout.0);
        } else {
            out.push(Target {
                upstream: r.upstream.clone(),
                routes: vec![r.name.clone()],
                connect_timeout: r.connect_timeout.0,
                read_timeout: r.read_timeout.0,
            });
        }
    }
    out
}

fn report(step: &str, started: Instant, result: &Result<String, String>) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(detail) => println!("  {step:<5} ok   {ms:>8.1} ms  {detail}"),
        Err(why) => println!("  {step:<5} FAIL {ms:>8.1} ms  {why}"),
    }
}

/// Runs one step, prints its line; on failure, the name of the next step.
fn step<T>(
    name: &str,
    next: &'static str,
    f: impl FnOnce() -> Result<(T, String), String>,
) -> Result<T, &'static str> {
    let started = Instant::now();
    let result = f();
    let shown = result
        .as_ref()
        .map(|(_, d)| d.clone())
        .map_err(Clone::clone);
    report(name, started, &shown);
    result.map(|(v, _)| v).map_err(|_| next)
}

/// Checks one upstream; on failure, the first step that was skipped.
fn check(t: &Target, env: &ProxyEnv) -> Result<(), &'static str> {
    let up = &t.upstream;
    let after_tcp = if up.tls { "tls, http" } else { "http" };
    let proxy = step("proxy", "dns, tcp, tls, http", || {
        env.for_host(&up.host, up.tls).map(|p| {
            let detail = match &p {
                Some(p) => format!("through {p} (from the environment)"),
                None => "none: connecting directly".to_string(),
            };
            (p, detail)
        })
    })?;
    let (dns_host, dns_port) = match &proxy {
        Some(p) => (p.host.as_str(), p.port),
        None => (up.host.as_str(), up.port),
    };
    let addrs = step(
        "dns",
        if up.tls {
            "tcp, tls, http"
        } else {
            "tcp, http"
        },
        || resolve(dns_host, dns_port, t.connect_timeout),
    )?;
    let mut stream: Box<dyn Stream> = step("tcp", after_tcp, || {
        connect(&addrs, t.connect_timeout, t.read_timeout)
    })
    .map(|s| Box::new(s) as Box<dyn Stream>)?;
    if let (Some(p), true) = (&proxy, up.tls) {
        step("tunnel", "tls, http", || tunnel(&mut stream, p, up))?;
    }
    if up.tls {
        stream = step("tls", "http", || handshake(stream, &up.host))?;
    }
    let absolute = proxy.as_ref().filter(|_| !up.tls);
    step("http", "", || round_trip(&mut stream, up, absolute))?;
    Ok(())
}

fn resolve(host: &str, port: u16, limit: Duration) -> Result<(Vec<SocketAddr>, String), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.trim_matches(['[', ']']).to_string();
    // getaddrinfo has no timeout of its own: wait for it at most `limit`.
    std::thread::spawn(move || {
        let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(addrs)) if !addrs.is_empty() => {
            let shown: Vec<String> = addrs.iter().take(3).map(|a| a.ip().to_string()).collect();
            let more = addrs.len().saturating_sub(3);
            let detail = format!(
                "{host} -> {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
            Ok((addrs, detail))
        }
        Ok(Ok(_)) => Err(format!("{host} resolves to no address")),
        Ok(Err(e)) => Err(format!("{host} does not resolve: {e}")),
        Err(_) => Err(format!("{host}: no DNS answer within {limit:?}")),
    }
}

fn connect(
    addrs: &[SocketAddr],
    connect: Duration,
    read: Duration,
) -> Result<(TcpStream, String), String> {
    let mut why = Vec::new();
    for a in addrs {
        match TcpStream::connect_timeout(a, connect) {
            Ok(s) => {
                let timeouts = s
                    .set_read_timeout(Some(read))
                    .and_then(|_| s.set_write_timeout(Some(read)));
                return match timeouts {
                    Ok(()) => Ok((s, format!("connected to {a}"))),
                    Err(e) => Err(format!("{a}: {e}")),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => why.push(format!(
                "{a}: no answer within {connect:?} (connect_timeout)"
            )),
            Err(e) => why.push(format!("{a}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// `CONNECT host:port` through an HTTP proxy, for a TLS upstream.
fn tunnel(
    stream: &mut Box<dyn Stream>,
    proxy: &HttpProxy,
    up: &Upstream,
) -> Result<((), String), String> {
    let authority = up.authority();
    let mut head = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n"
    );
    if let Some(c) = &proxy.credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(c);
        head.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    head.push_str("\r\n");
    let status = exchange(stream, &head).map_err(|e| format!("proxy {proxy}: {e}"))?;
    if status.code == 200 {
        Ok(((), format!("{proxy} opened a tunnel to {authority}")))
    } else {
        Err(format!(
            "proxy {proxy} refused CONNECT {authority}: {}",
            status.line
        ))
    }
}

fn handshake(stream: Box<dyn Stream>, host: &str) -> Result<(Box<dyn Stream>, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    // The same trust store the proxy's upstream connections use.
    let native = rustls_native_certs::load_native_certs()
        .map_err(|e| format!("cannot read the system's CA certificates: {e}"))?;
    let (added, _ignored) = roots.add_parsable_certificates(native);
    if added == 0 {
        return Err(
            "no trusted CA certificates found (install ca-certificates, or set SSL_CERT_FILE)"
                .to_string(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake with {host} failed: {}", io_reason(&e)))?;
    }
    let version = tls
        .conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let suite = tls
        .conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    Ok((
        Box::new(tls),
        format!("{version} {suite}, certificate valid for {host}"),
    ))
}

fn round_trip(
    stream: &mut Box<dyn Stream>,
    up: &Upstream,
    via: Option<&HttpProxy>,
) -> Result<((), String), String> {
    let authority = up.authority();
    let target = match via {
        Some(_) => format!("http://{authority}/"),
        None => "/".to_string(),
    };
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n"
    );
    if let Some(c) = via.and_then(|p| p.credentials.as_ref()) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(c);
        head.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    head.push_str("\r\n");
    let status = exchange(stream, &head)?;
    if via.is_some() && matches!(status.code, 502..=504) {
        return Err(format!(
            "GET {target} -> {}: the proxy could not reach the upstream",
            status.line
        ));
    }
    Ok(((), format!("GET {target} -> {}", status.line)))
}

struct Status {
    code: u16,
    line: String,
}

/// Writes a request head and reads the answer's head (up to its blank line).
fn exchange(stream: &mut Box<dyn Stream>, head: &str) -> Result<Status, String> {
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.flush())
        .map_err(|e| format!("sending the request: {}", io_reason(&e)))?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && !buf.ends_with(b"\n\n") {
        match stream.read(&mut byte) {
            Ok(0) if buf.is_empty() => return Err("connection closed without an answer".into()),
            Ok(0) => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) => return Err(format!("waiting for the answer: {}", io_reason(&e))),
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("answer head longer than {MAX_HEAD} bytes"));
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") => Ok(Status { code, line }),
        _ => Err(format!(
            "not an HTTP answer: `{}`",
            line.chars().take(80).collect::<String>()
        )),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "no answer within read_timeout".to_string()
        }
        _ => e.to_string(),
    }
}
