//! A TLS load generator for `benches/load/run`: like `wrk -t1`, one thread
//! and a fixed number of connections, but it can also open a new connection
//! for every call (as PHP, shell scripts and cron jobs do), choose TLS 1.2
//! or 1.3, and resume sessions or not, which wrk cannot.
//!
//! ```text
//! cargo run --release --example tls_load -- --connect 127.0.0.1:8443 \
//!     --ca certs/server.crt --header "X-Account-Id: acct-0" --new-conn --tls 1.3
//! ```
//!
//! Prints one JSON object: calls, seconds, calls/s, p50/p99/max in ms (the
//! whole call: connect and handshake when it opens one, request, answer),
//! how many answers were not 2xx, errors (with the first one's text), full
//! and resumed handshakes.

use anyhow::Context;
use clap::Parser;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::HandshakeKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Longest a call may take before it counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer head and body read.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Parser)]
struct Args {
    /// Address of the TLS listener.
    #[arg(long)]
    connect: SocketAddr,
    /// PEM certificate to trust (the server's self-signed one).
    #[arg(long)]
    ca: PathBuf,
    /// Name sent in SNI and checked against the certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    #[arg(long, default_value = "/v1/send")]
    path: String,
    /// Extra request header, `Name: value`; may be repeated.
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, default_value_t = 16)]
    conns: usize,
    #[arg(long, default_value_t = 8)]
    secs: u64,
    /// A new connection (and handshake) for every call, with `Connection: close`.
    #[arg(long)]
    new_conn: bool,
    /// TLS version: 1.2 or 1.3.
    #[arg(long, default_value = "1.3")]
    tls: String,
    /// Never resume a session: every handshake is a full one.
    #[arg(long)]
    no_resume: bool,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    non2xx: u64,
    errors: u64,
    first_error: Option<String>,
    full: u64,
    resumed: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.non2xx += other.non2xx;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.full += other.full;
        self.resumed += other.resumed;
    }
}

struct Client {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    request: Vec<u8>,
    new_conn: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Arc::new(client(&args)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.secs);
    let mut tally = runtime.block_on(async {
        let workers: Vec<_> = (0..args.conns.max(1))
            .map(|_| tokio::spawn(worker(client.clone(), deadline)))
            .collect();
        let mut tally = Tally::default();
        for w in workers {
            tally.merge(w.await?);
        }
        anyhow::Ok(tally)
    })?;
    let secs = started.elapsed().as_secs_f64();
    tally.latencies_us.sort_unstable();
    let calls = tally.latencies_us.len();
    let pct = |p: f64| -> f64 {
        if calls == 0 {
            return 0.0;
        }
        let i = ((calls as f64 * p).ceil() as usize).clamp(1, calls) - 1;
        f64::from(tally.latencies_us[i]) / 1000.0
    };
    let out = serde_json::json!({
        "calls": calls,
        "secs": secs,
        "rps": calls as f64 / secs,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": pct(1.0),
        "non2xx": tally.non2xx,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "full_handshakes": tally.full,
        "resumed_handshakes": tally.resumed,
    });
    println!("{out}");
    Ok(())
}

fn client(args: &Args) -> anyhow::Result<Client> {
    let mut roots = rustls::RootCertStore::empty();
    let cert = CertificateDer::from_pem_file(&args.ca)
        .with_context(|| format!("reading {}", args.ca.display()))?;
    roots.add(cert).context("the --ca certificate")?;
    let version = match args.tls.as_str() {
        "1.2" => &rustls::version::TLS12,
        "1.3" => &rustls::version::TLS13,
        other => anyhow::bail!("--tls {other}: give 1.2 or 1.3"),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    if args.no_resume {
        config.resumption = Resumption::disabled();
    }
    let name = ServerName::try_from(args.server_name.clone()).context("--server-name")?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        args.path, args.server_name
    );
    for h in &args.headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if args.new_conn {
        request.push_str("Connection: close\r\n");
    }
    request.push_str("\r\n");
    Ok(Client {
        addr: args.connect,
        name,
        connector: TlsConnector::from(Arc::new(config)),
        request: request.into_bytes(),
        new_conn: args.new_conn,
    })
}

async fn worker(client: Arc<Client>, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<TlsStream<TcpStream>> = None;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let started = Instant::now();
        let call = tokio::time::timeout(CALL_TIMEOUT, call(&client, &mut conn, &mut buf));
        match call.await {
            Ok(Ok(answer)) => {
                let took = started.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(took).unwrap_or(u32::MAX));
                if !(200..300).contains(&answer.status) {
                    tally.non2xx += 1;
                }
                match answer.handshake {
                    Some(HandshakeKind::Resumed) => tally.resumed += 1,
                    Some(_) => tally.full += 1,
                    None => {}
                }
                if client.new_conn || !answer.keep_alive {
                    conn = None;
                }
            }
            Ok(Err(e)) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                conn = None;
            }
            Err(_) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("no answer within {CALL_TIMEOUT:?}"));
                conn = None;
            }
        }
    }
    tally
}

struct Answer {
    status: u16,
    keep_alive: bool,
    /// The handshake this call made, if it opened the connection.
    handshake: Option<HandshakeKind>,
}

async fn call(
    client: &Client,
    conn: &mut Option<TlsStream<TcpStream>>,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Answer> {
    let mut handshake = None;
    let stream = match conn {
        Some(s) => s,
        None => {
            let tcp = TcpStream::connect(client.addr).await.context("connect")?;
            tcp.set_nodelay(true)?;
            let tls = client
                .connector
                .connect(client.name.clone(), tcp)
                .await
                .context("TLS handshake")?;
            handshake = tls.get_ref().1.handshake_kind();
            conn.insert(tls)
        }
    };
    stream
        .write_all(&client.request)
        .await
        .context("writing the request")?;
    let (status, keep_alive) = read_answer(stream, buf).await?;
    Ok(Answer {
        status,
        keep_alive,
        handshake,
    })
}

/// Reads one answer: its head, then a `Content-Length` body or, without
/// one, everything to the end of the connection.
async fn read_answer(
    s: &mut TlsStream<TcpStream>,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, bool)> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        anyhow::ensure!(
            buf.len() < MAX_ANSWER,
            "answer head over {MAX_ANSWER} bytes"
        );
        if read_some(s, buf).await? == 0 {
            anyhow::bail!("connection closed before the answer's head ended");
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("answer head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status code in the answer")?;
    let mut length = None;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("chunked answers are not read by this client");
        }
    }
    match length {
        Some(n) => {
            anyhow::ensure!(n <= MAX_ANSWER, "answer body over {MAX_ANSWER} bytes");
            while buf.len() < head_end + n {
                if read_some(s, buf).await? == 0 {
                    anyhow::bail!("connection closed inside the answer's body");
                }
            }
        }
        None => {
            keep_alive = false;
            while read_some(s, buf).await? > 0 {
                anyhow::ensure!(
                    buf.len() <= 2 * MAX_ANSWER,
                    "answer over {MAX_ANSWER} bytes"
                );
            }
        }
    }
    Ok((status, keep_alive))
}

async fn read_some(s: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> anyhow::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await.context("reading the answer")?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}
