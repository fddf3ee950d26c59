//! A fleet proxy: the real `ipgate proxy` process, following control
//! planes' sync feeds, on free loopback ports, with its snapshot file in
//! its own temp dir.

use super::{bin, free_port, ip, Upstream, SYNC_TOKEN};
use ipgate_policy::snapshot::{Contents, Snapshot, SnapshotAccount};
use ipgate_policy::Mode;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options for one `ipgate proxy`.
#[derive(Clone)]
pub struct FleetOpts {
    pub control_urls: Vec<String>,
    /// `IPGATE_SYNC_TOKEN` (none: unset).
    pub token: Option<String>,
    /// `sync.max_stale`.
    pub max_stale: &'static str,
    /// `sync.poll_timeout`: the control plane's, which holds the polls.
    pub poll_timeout: &'static str,
    /// `sync.name`.
    pub name: String,
    /// Written as the snapshot file before the first start.
    pub snapshot: Option<Vec<u8>>,
    /// Run inside a network namespace (none: on the host's loopback).
    pub within: Option<Within>,
    /// More `[proxy]` keys, as TOML lines.
    pub proxy_extra: &'static str,
}

/// A proxy inside a network namespace: it listens on the namespace's
/// address and reaches its upstream at `upstream` (a forwarder on the
/// host's end of the link).
#[derive(Clone)]
pub struct Within {
    pub netns: String,
    pub listen: std::net::Ipv4Addr,
    pub upstream: SocketAddr,
}

impl FleetOpts {
    /// Following `control_urls` with the right token.
    pub fn following(control_urls: &[String]) -> FleetOpts {
        FleetOpts {
            control_urls: control_urls.to_vec(),
            token: Some(SYNC_TOKEN.to_string()),
            max_stale: "0s",
            poll_timeout: "25s",
            name: "edge-1".to_string(),
            snapshot: None,
            within: None,
            proxy_extra: "",
        }
    }

    /// A control plane's URL nobody answers at.
    pub fn nobody() -> String {
        format!("http://127.0.0.1:{}", free_port())
    }
}

/// A snapshot at `version` with one account in `mode` whitelisting `nets`.
pub fn snapshot(version: u64, account: &str, mode: Mode, nets: &[&str]) -> Snapshot {
    Snapshot::new(Contents {
        version,
        made: 1_700_000_000,
        accounts: vec![SnapshotAccount {
            id: account.to_string(),
            mode,
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            ending: Vec::new(),
        }],
        ..Contents::default()
    })
    .unwrap()
}

/// The real `ipgate proxy` process.
pub struct FleetProxy {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub proxy: SocketAddr,
    pub metrics: SocketAddr,
    pub token: Option<String>,
    netns: Option<String>,
}

impl FleetProxy {
    /// Starts a proxy; retries on fresh ports when one was taken meanwhile.
    pub fn start(upstream: &Upstream, opts: FleetOpts) -> FleetProxy {
        let mut last = String::new();
        for _ in 0..4 {
            match FleetProxy::try_start(upstream, opts.clone()) {
                Ok(p) => return p,
                Err(log) if log.contains("cannot listen") || log.contains("is already used") => {
                    last = log
                }
                Err(log) => panic!("{log}"),
            }
        }
        panic!("no free ports after 4 tries:\n{last}");
    }

    fn try_start(upstream: &Upstream, opts: FleetOpts) -> Result<FleetProxy, String> {
        let dir = tempfile::tempdir().unwrap();
        let host = opts
            .within
            .as_ref()
            .map_or(std::net::Ipv4Addr::LOCALHOST, |w| w.listen);
        let at = |p: u16| SocketAddr::from((host, p));
        let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
        let (proxy, metrics) = (at(ports[0]), at(ports[1]));
        let urls: Vec<String> = opts
            .control_urls
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect();
        let text = format!(
            r#"
[proxy]
listen = "{proxy}"
threads = 1
unknown_account = "deny"
{proxy_extra}

[[proxy.route]]
name = "sms"
path_prefix = "/sms/"
strip_prefix = true
upstream = "http://{up}"
account_from = ["basic_user", "query:username", "header:X-Account-Id"]

[metrics]
listen = "{metrics}"

[sync]
control_urls = [{urls}]
snapshot_path = "{snapshot}"
max_stale = "{max_stale}"
poll_timeout = "{poll_timeout}"
name = "{name}"
"#,
            up = opts.within.as_ref().map_or(upstream.addr, |w| w.upstream),
            urls = urls.join(", "),
            snapshot = dir.path().join("data/snapshot.bin").display(),
            max_stale = opts.max_stale,
            poll_timeout = opts.poll_timeout,
            name = opts.name,
            proxy_extra = opts.proxy_extra,
        );
        let config = dir.path().join("proxy.toml");
        std::fs::write(&config, text).unwrap();
        let mut p = FleetProxy {
            child: None,
            dir,
            config,
            proxy,
            metrics,
            token: opts.token,
            netns: opts.within.map(|w| w.netns),
        };
        if let Some(bytes) = &opts.snapshot {
            p.write_snapshot(bytes);
        }
        p.spawn()?;
        Ok(p)
    }

    /// The snapshot file (`sync.snapshot_path`).
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.path().join("data/snapshot.bin")
    }

    /// `<snapshot_path>.prev`.
    pub fn prev_path(&self) -> PathBuf {
        self.dir.path().join("data/snapshot.bin.prev")
    }

    pub fn write_snapshot(&self, bytes: &[u8]) {
        std::fs::create_dir_all(self.dir.path().join("data")).unwrap();
        std::fs::write(self.snapshot_path(), bytes).unwrap();
    }

    /// `ipgate proxy --config F` (and `extra` arguments), logging to
    /// `proxy.log`.
    fn command(&self, extra: &[&str]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("proxy.log"))
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(["proxy", "--config"])
            .arg(&self.config)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("IPGATE_ADMIN_TOKEN")
            .env_remove("IPGATE_LOG_KEY")
            .stdout(Stdio::null())
            .stderr(log);
        match &self.token {
            Some(t) => cmd.env("IPGATE_SYNC_TOKEN", t),
            None => cmd.env_remove("IPGATE_SYNC_TOKEN"),
        };
        cmd
    }

    /// A graceful binary upgrade: starts `ipgate proxy --upgrade` on the
    /// same config, and once it waits on the hand-over socket, sends the
    /// running process SIGQUIT. The new process becomes this proxy's; the
    /// old one is returned, to be watched as it ends.
    pub fn upgrade(&mut self) -> OldProxy {
        let sock = self.dir.path().join("data/upgrade.sock");
        assert!(!sock.exists(), "no hand-over socket before the upgrade");
        let new = self.command(&["--upgrade"]).spawn().unwrap();
        let old = self.child.replace(new).expect("proxy not running");
        self.wait_until(
            "the new process to wait on the hand-over socket",
            10,
            || sock.exists(),
        );
        let sent = Command::new("kill")
            .args(["-QUIT", &old.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        OldProxy(old)
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("proxy not running").id()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = self.command(&[]);
        self.child = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let listening = |addr: SocketAddr| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
        };
        for addr in [self.proxy, self.metrics] {
            while !listening(addr) {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                    return Err(format!(
                        "ipgate proxy exited early ({status}):\n{}",
                        self.log()
                    ));
                }
                assert!(
                    Instant::now() < deadline,
                    "ipgate proxy did not listen on {addr} in time:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Everything the process logged (all its starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// `kill -9`, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("proxy not running");
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
            assert!(
                Instant::now() < deadline,
                "ipgate proxy did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts again on the same config and snapshot file.
    pub fn restart(&mut self) {
        self.spawn().unwrap();
    }

    /// A proxied GET from source address `from`.
    pub fn get(&self, from: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .local_address(ip(from))
            .timeout(Duration::from_secs(10))
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

    /// GET on the metrics listener: status and body.
    pub fn ops(&self, path: &str) -> (u16, String) {
        let resp = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .and_then(|c| c.get(format!("http://{}{path}", self.metrics)).send())
            .unwrap_or_else(|e| panic!("metrics listener: {e}"));
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    }

    pub fn metrics_text(&self) -> String {
        self.ops("/metrics").1
    }

    /// Polls `f` every 50 ms until it holds; fails after `secs` with the log.
    pub fn wait_until(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The process a graceful upgrade replaced; killed if still running
/// when dropped.
pub struct OldProxy(pub Child);

impl Drop for OldProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for FleetProxy {
    fn drop(&mut self) {
        self.kill();
    }
}
