//! A network namespace joined to the host by a veth link, made by a test
//! that runs as root, so that a link can really be cut (`ip link set
//! down`); and a plain TCP forwarder, so that a process inside reaches
//! servers that listen on the host's loopback.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;

pub struct NetNs {
    pub name: String,
    host_link: String,
    /// The host's end of the link.
    pub host: Ipv4Addr,
    /// The namespace's end.
    pub inner: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

impl NetNs {
    /// A namespace of this test process (`tag` tells a test's apart), or
    /// None with a line saying why the test is skipped.
    pub fn make(tag: u8) -> Option<NetNs> {
        if !is_root() && std::env::var_os("IPGATE_REQUIRE_NETNS").is_none() {
            eprintln!("SKIPPED: cutting a link needs root (network namespaces)");
            return None;
        }
        let pid = std::process::id();
        let subnet = (pid % 250) as u8;
        let ns = NetNs {
            name: format!("ipgate-{pid}-{tag}"),
            host_link: format!("vh{pid}x{tag}"),
            host: Ipv4Addr::new(10, 213, subnet, tag * 4 + 1),
            inner: Ipv4Addr::new(10, 213, subnet, tag * 4 + 2),
        };
        let inner_link = format!("vn{pid}x{tag}");
        let (host, inner) = (format!("{}/30", ns.host), format!("{}/30", ns.inner));
        let made = ip(&["netns", "add", &ns.name])
            .and_then(|_| {
                ip(&[
                    "link",
                    "add",
                    &ns.host_link,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &inner_link,
                ])
            })
            .and_then(|_| ip(&["link", "set", &inner_link, "netns", &ns.name]))
            .and_then(|_| ip(&["addr", "add", &host, "dev", &ns.host_link]))
            .and_then(|_| ip(&["link", "set", &ns.host_link, "up"]))
            .and_then(|_| ns.exec(&["addr", "add", &inner, "dev", &inner_link]))
            .and_then(|_| ns.exec(&["link", "set", &inner_link, "up"]))
            .and_then(|_| ns.exec(&["link", "set", "lo", "up"]));
        match made {
            Ok(()) => Some(ns),
            Err(e) if std::env::var_os("IPGATE_REQUIRE_NETNS").is_some() => {
                panic!("IPGATE_REQUIRE_NETNS is set but no network namespace could be made: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no network namespace here: {e}");
                None
            }
        }
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Takes the link down: nothing passes either way, and nobody is told.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_link, "down"]).unwrap();
    }

    pub fn mend(&self) {
        ip(&["link", "set", &self.host_link, "up"]).unwrap();
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Forwards every connection made to `listen` (port 0: any) to `to`, for
/// as long as the test process runs; returns the address it listens on.
pub fn forward(listen: SocketAddr, to: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(listen).unwrap();
    let at = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let Ok(outbound) = TcpStream::connect(to) else {
                continue;
            };
            for (mut from, mut into) in [
                (inbound.try_clone(), outbound.try_clone()),
                (outbound.try_clone(), inbound.try_clone()),
            ]
            .into_iter()
            .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
            {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(Shutdown::Write);
                });
            }
        }
    });
    at
}
