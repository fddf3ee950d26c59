//! The operator's kit, black-box: `ipgate check-network`, `ipgate admin
//! import`, the access log and the running process's memory settings,
//! against the real binary.

use crate::common::*;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

fn check_network(config: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["check-network", "--config"]).arg(config);
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn routes_config(dir: &std::path::Path, upstreams: &[(&str, String)]) -> std::path::PathBuf {
    let mut text = String::new();
    for (name, up) in upstreams {
        text.push_str(&format!(
            "[[proxy.route]]\nname = \"{name}\"\npath_prefix = \"/{name}/\"\nupstream = \"{up}\"\nconnect_timeout = \"2s\"\nread_timeout = \"2s\"\n"
        ));
    }
    let path = dir.join(format!("check-{}.toml", upstreams.len()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A port on which nothing listens.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().map(|a| a.port()).unwrap_or(1)
}

#[test]
fn check_network_passes_a_live_upstream_and_names_a_dead_one() {
    let dir = tempfile::tempdir().unwrap();
    let live = Upstream::start();
    let dead = dead_port();
    let both = routes_config(
        dir.path(),
        &[
            ("sms", format!("http://{}", live.addr)),
            ("waba", format!("http://127.0.0.1:{dead}")),
        ],
    );
    let (ok, out) = check_network(&both, &[]);
    assert!(!ok, "a dead upstream must fail the check:\n{out}");
    assert!(
        out.contains(&format!("upstream http://{} (routes: sms)", live.addr)),
        "{out}"
    );
    assert!(out.contains("GET / -> HTTP/1.1 200 OK"), "{out}");
    assert_eq!(live.hits(), 1, "one round trip to the live upstream");
    let dead_part = out
        .split(&format!("upstream http://127.0.0.1:{dead}"))
        .nth(1)
        .unwrap_or_default();
    assert!(dead_part.contains("tcp   FAIL"), "{out}");
    assert!(dead_part.contains("refused"), "{out}");
    assert!(dead_part.contains("http: skipped"), "{out}");
    assert!(out.contains("FAILED: 1 of 2 upstreams"), "{out}");
    for step in ["dns   ok", "tcp   ok", "http  ok"] {
        assert!(out.contains(step), "every step is timed: {step}\n{out}");
    }

    let only_live = routes_config(dir.path(), &[("sms", format!("http://{}", live.addr))]);
    let (ok, out) = check_network(&only_live, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("ok: all 1 upstreams answered"), "{out}");

    let unresolvable = routes_config(
        dir.path(),
        &[
            ("x", format!("http://{}", live.addr)),
            ("sms", "http://upstream.invalid:8080".to_string()),
            ("waba", "https://also.invalid".to_string()),
        ],
    );
    let (ok, out) = check_network(&unresolvable, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("dns   FAIL"), "{out}");
    assert!(out.contains("upstream.invalid does not resolve"), "{out}");
    assert!(out.contains("tcp, tls, http: skipped"), "{out}");
    assert!(out.contains("FAILED: 2 of 3 upstreams"), "{out}");

    // Through http_proxy the proxy resolves the name: ipgate asks it for the
    // absolute URL. The live upstream plays the proxy here; `no_proxy`
    // keeps the first route direct.
    let hits = live.hits();
    let (_, out) = check_network(
        &unresolvable,
        &[
            ("http_proxy", &format!("http://{}", live.addr)),
            ("no_proxy", "localhost,127.0.0.1"),
        ],
    );
    assert!(
        out.contains(&format!(
            "through http://{} (from the environment)",
            live.addr
        )),
        "{out}"
    );
    assert!(
        out.contains("GET http://upstream.invalid:8080/ -> HTTP/1.1 200 OK"),
        "{out}"
    );
    assert_eq!(live.last().host, "upstream.invalid:8080", "{out}");
    assert!(out.contains("none: connecting directly"), "{out}");
    assert_eq!(
        live.hits(),
        hits + 2,
        "one call through the proxy, one direct"
    );
    assert!(
        out.contains("FAILED: 1 of 3 upstreams"),
        "https_proxy is unset, so the https upstream still fails DNS:\n{out}"
    );
}

#[test]
fn check_network_shakes_hands_over_tls_and_says_when_the_certificate_is_not_trusted() {
    let up = Upstream::start();
    // The gate's own TLS listener stands in for an https upstream.
    let gate = Server::start(&up, ServerOpts::tls());
    let tls_port = gate.tls.map(|a| a.port()).unwrap_or(0);
    let config = routes_config(
        gate.dir.path(),
        &[("sms", format!("https://localhost:{tls_port}"))],
    );
    let trusted = gate.dir.path().join("certs/server.crt");
    let (ok, out) = check_network(&config, &[("SSL_CERT_FILE", &trusted.to_string_lossy())]);
    assert!(ok, "{out}");
    assert!(out.contains("tls   ok"), "{out}");
    assert!(out.contains("certificate valid for localhost"), "{out}");
    assert!(
        out.contains("GET / -> HTTP/1.1 404"),
        "the gate answers no_route over TLS:\n{out}"
    );

    // Another self-signed certificate as the only trusted one.
    let other = gate.dir.path().join("other");
    let made = Command::new(bin())
        .args(["certs", "dev", "--out"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let (ok, out) = check_network(
        &config,
        &[("SSL_CERT_FILE", &other.join("server.crt").to_string_lossy())],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("tls   FAIL"), "{out}");
    assert!(out.contains("certificate"), "{out}");
    assert!(out.contains("http: skipped"), "{out}");
}

fn import(gate: &Server, file: &str, stdin: Option<&str>, token: &str) -> Output {
    let mut child = Command::new(bin())
        .args(["admin", "--url", &format!("http://{}", gate.admin)])
        .args(["import", file])
        .env("IPGATE_ADMIN_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut input) = child.stdin.take() {
        use std::io::Write;
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn cidrs(gate: &Server, account: &str) -> Vec<String> {
    let (s, list) = gate.admin(
        "GET",
        &format!("/admin/v1/accounts/{account}/whitelist"),
        None,
    );
    assert_eq!(s, 200, "{list}");
    let mut out: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["cidr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn import_adds_good_rows_refuses_bad_ones_and_can_be_run_again() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["198.51.100.7"]);
    gate.account("globex", "enforce", &[]);
    let csv = "account,cidr,remark,tags\n\
               acme,127.0.0.1,\"office, Berlin\",prod;eu\n\
               acme,198.51.100.7,already there\n\
               acme,10.1.2.0/24\n\
               globex,2001:db8::/64,v6 pool\n\
               # a comment line\n\
               acme,10.1.2.3/24,host bits set\n\
               nosuch,203.0.113.9,unknown account\n\
               acme,not-an-ip\n\
               globex\n";
    let file = gate.dir.path().join("entries.csv");
    std::fs::write(&file, csv).unwrap();
    let out = import(&gate, &file.to_string_lossy(), None, TOKEN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "refused rows make exit 1:\n{stdout}{stderr}"
    );
    assert!(stderr.contains("importing 8 rows from"), "{stderr}");
    assert!(
        stderr.contains("[100%] 8/8 rows: 3 added, 1 already there, 4 refused"),
        "{stderr}"
    );
    assert!(
        stdout.contains("3 added, 1 already on the whitelist, 4 refused"),
        "{stdout}"
    );
    for line in [
        "line 7: acme 10.1.2.3/24: cidr:",
        "line 8: nosuch 203.0.113.9:",
        "line 9: acme not-an-ip: cidr:",
        "line 10: needs an account and a cidr",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    assert_eq!(
        cidrs(&gate, "acme"),
        ["10.1.2.0/24", "127.0.0.1/32", "198.51.100.7/32"]
    );
    assert_eq!(cidrs(&gate, "globex"), ["2001:db8::/64"]);
    let (_, list) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    let office = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["cidr"] == "127.0.0.1/32").cloned())
        .unwrap_or_default();
    assert_eq!(office["remark"], "office, Berlin");
    assert_eq!(office["tags"], serde_json::json!(["prod", "eu"]));
    let (status, _) = gate.get("127.0.0.1", "/sms/x", &[("Authorization", &basic("acme"))]);
    assert_eq!(status, 200, "an imported entry is live in the proxy");

    // Run again: nothing new, nothing changed.
    let out = import(&gate, &file.to_string_lossy(), None, TOKEN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 added, 4 already on the whitelist, 4 refused"),
        "{stdout}"
    );
    assert_eq!(cidrs(&gate, "acme").len(), 3);

    // Good rows from stdin: exit 0.
    let out = import(&gate, "-", Some("globex,192.0.2.0/28\n"), TOKEN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cidrs(&gate, "globex"), ["192.0.2.0/28", "2001:db8::/64"]);

    // A wrong token stops at once and says how to go on.
    let out = import(&gate, "-", Some("globex,192.0.2.64/28\n"), "wrong-token");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("STOPPED after 0 of 1 rows: line 1: the admin API answered 401"),
        "{stdout}"
    );
    assert_eq!(cidrs(&gate, "globex").len(), 2);

    // Not CSV text at all.
    std::fs::write(&file, b"\xff\xfe binary").unwrap();
    let out = import(&gate, &file.to_string_lossy(), None, TOKEN);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not UTF-8 text"));
}

#[test]
fn each_proxied_call_leaves_one_access_log_line_unless_turned_off() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let auth = [("Authorization", basic("acme"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(gate.get("127.0.0.1", "/sms/send", &auth).0, 200);
    assert_eq!(gate.get("127.0.0.2", "/sms/send", &auth).0, 403);
    let lines = |gate: &Server| -> Vec<String> {
        gate.log()
            .lines()
            .filter(|l| l.contains("ipgate::access"))
            .map(str::to_string)
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while lines(&gate).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let got = lines(&gate);
    assert_eq!(got.len(), 2, "{}", gate.log());
    for (line, wants) in got.iter().zip([
        [
            "route=\"sms\"",
            "account=\"acme\"",
            "client_ip=127.0.0.1",
            "decision=\"allow\"",
            "reason=\"whitelisted\"",
            "status=200",
        ],
        [
            "route=\"sms\"",
            "account=\"acme\"",
            "client_ip=127.0.0.2",
            "decision=\"deny\"",
            "reason=\"ip_not_whitelisted\"",
            "status=403",
        ],
    ]) {
        for want in wants {
            assert!(line.contains(want), "{want} missing in {line}");
        }
        assert!(line.contains("upstream_ms="), "{line}");
    }

    let quiet = Server::start(
        &up,
        ServerOpts {
            extra: "access_log = false".into(),
            ..ServerOpts::default()
        },
    );
    quiet.account("acme", "enforce", &["127.0.0.1"]);
    assert_eq!(quiet.get("127.0.0.1", "/sms/send", &auth).0, 200);
    assert_eq!(quiet.get("127.0.0.2", "/sms/send", &auth).0, 403);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(lines(&quiet).is_empty(), "{}", quiet.log());

    // `log.format = "json"`: one JSON object per line, same fields.
    let json = Server::start(
        &up,
        ServerOpts {
            extra: "[log]\nformat = \"json\"".into(),
            ..ServerOpts::default()
        },
    );
    json.account("acme", "enforce", &["127.0.0.1"]);
    assert_eq!(json.get("127.0.0.2", "/sms/send", &auth).0, 403);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while lines(&json).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let got = lines(&json);
    assert_eq!(got.len(), 1, "{}", json.log());
    let v: serde_json::Value =
        serde_json::from_str(&got[0]).unwrap_or_else(|e| panic!("{e}: {}", got[0]));
    assert_eq!(v["target"], "ipgate::access");
    let f = &v["fields"];
    assert_eq!(
        (
            &f["route"],
            &f["account"],
            &f["client_ip"],
            &f["decision"],
            &f["reason"],
            &f["status"]
        ),
        (
            &serde_json::json!("sms"),
            &serde_json::json!("acme"),
            &serde_json::json!("127.0.0.2"),
            &serde_json::json!("deny"),
            &serde_json::json!("ip_not_whitelisted"),
            &serde_json::json!(403)
        ),
        "{v}"
    );
    for line in json.log().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "every log line is JSON: {line}"
        );
    }
}

/// Approvals must not pay for the kernel zeroing 2 MiB huge pages
/// (docs/performance.md, "A million entries"): the running server has them off, as
/// `grep THP_enabled /proc/PID/status` shows an operator.
#[test]
fn the_running_server_has_transparent_huge_pages_off() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    let pid = gate.pid().unwrap_or_else(|| panic!("no pid"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .unwrap_or_else(|| panic!("this kernel does not report THP_enabled:\n{status}"));
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// SIGHUP does not end the server: it logs that nothing is reloaded live
/// and keeps serving.
#[test]
fn sighup_keeps_the_server_running_and_says_what_it_does() {
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let pid = gate.pid().unwrap_or_else(|| panic!("no pid"));
    let auth = basic("acme");
    assert_eq!(
        gate.get("127.0.0.1", "/sms/x", &[("Authorization", &auth)])
            .0,
        200
    );
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    gate.wait_until("the SIGHUP log line", 10, || {
        gate.log().contains("SIGHUP received")
    });
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server ended on SIGHUP"
    );
    assert_eq!(
        gate.get("127.0.0.1", "/sms/x", &[("Authorization", &auth)])
            .0,
        200
    );
}

/// SIGTERM lets calls already sent upstream finish, on both HTTP/1 paths
/// (a plain body on the raw path, a chunked one on Pingora's): their
/// callers get the upstream's answer, not a reset that leaves them
/// guessing whether the SMS went out. A call that comes while they finish
/// is refused with 503 before anything of it reaches the upstream.
#[test]
fn sigterm_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let up = Upstream::scripted(true, |_| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsent".to_vec()
    });
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let proxy = gate.proxy;
    let auth = basic("acme");
    let call = |body: &'static str| {
        let head = format!(
            "POST /sms/send HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n{body}"
        );
        std::thread::spawn(move || raw(proxy, head.as_bytes()))
    };
    let plain = call("Content-Length: 2\r\n\r\nhi");
    let chunked = call("Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
    gate.wait_until("both calls to reach the upstream", 10, || up.hits() == 2);
    let pid = gate.pid().unwrap_or_else(|| panic!("no pid"));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    gate.wait_until("the drain to start", 10, || {
        gate.log().contains("SIGTERM received")
    });
    let late = call("Content-Length: 2\r\n\r\nhi")
        .join()
        .unwrap_or_else(|_| panic!("the caller panicked"));
    assert!(late.starts_with("HTTP/1.1 503"), "{late:?}");
    assert!(late.contains("\"shutting_down\""), "{late:?}");
    let status = gate.stop();
    assert!(status.success(), "{status}");
    for (what, c) in [("plain", plain), ("chunked", chunked)] {
        let answer = c.join().unwrap_or_else(|_| panic!("the caller panicked"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{what}: {answer:?}");
        assert!(answer.ends_with("sent"), "{what}: {answer:?}");
    }
    assert_eq!(up.hits(), 2, "the late call reached the upstream");
}

/// SIGQUIT asks for a socket hand-over, which only `ipgate proxy` does:
/// `ipgate serve` holds the store, which a new process could not open, so
/// it says so and stops as on SIGTERM (exit 0), never sending its
/// listening sockets anywhere.
#[test]
fn sigquit_to_serve_stops_it_as_sigterm_with_a_warning() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    let pid = gate.pid().unwrap_or_else(|| panic!("no pid"));
    let _ = Command::new("kill")
        .args(["-QUIT", &pid.to_string()])
        .status();
    gate.wait_until("the process to end", 15, || {
        !std::path::Path::new(&format!("/proc/{pid}/status")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|s| s.contains("State:\tZ"))
    });
    let log = gate.log();
    assert!(
        log.contains("SIGQUIT asks for a hand-over, which only `ipgate proxy` does"),
        "{log}"
    );
    assert!(!log.contains("listener sockets sent"), "{log}");
    let status = gate.stop();
    assert!(status.success(), "{status}");
}
