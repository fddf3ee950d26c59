//! `ipgate config check` and start-up refusals: a bad config is a clear
//! error naming the key, and nothing starts.

use crate::common::*;
use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin())
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_example_config_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/ipgate.example.toml"
    ))
    .unwrap_or_default();
    // Its TLS files do not exist in a fresh checkout; check the rest.
    let text = text.replace("tls_listen = \"0.0.0.0:8443\"", "");
    let (ok, out) = check(&text);
    assert!(ok, "{out}");
}

#[test]
fn bad_configs_name_the_key() {
    let route = "[[proxy.route]]\nname = \"sms\"\npath_prefix = \"/sms/\"\nupstream = \"http://127.0.0.1:9\"\n";
    let cases = [
        ("[proxy]\nlisten = \"localhost\"\n".to_string(), "proxy.listen"),
        ("[proxy]\nthreads = -1\n".to_string(), "proxy.threads"),
        ("[proxy]\nmax_headers = 1000\n".to_string(), "proxy.max_headers"),
        ("[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n".to_string(), "proxy.trusted_proxies[1]"),
        ("[proxy]\nlisten = \"0.0.0.0:1\"\nbogus = 1\n".to_string(), "bogus"),
        (format!("{route}account_from = [\"cookie:sid\"]\n"), "proxy.route[0].account_from[0]"),
        (route.replace("http://127.0.0.1:9", "gopher://x"), "proxy.route[0].upstream"),
        ("[control]\nlink_ttl = \"forever\"\n".to_string(), "control.link_ttl"),
        ("[smtp]\nurl = \"mail.example.com\"\n".to_string(), "smtp.url"),
        ("[proxy]\ntls_listen = \"0.0.0.0:8443\"\ntls_cert = \"/nonexistent.crt\"\ntls_key = \"/nonexistent.key\"\n".to_string(), "/nonexistent.crt"),
        ("this is not toml".to_string(), "TOML"),
    ];
    for (text, key) in cases {
        let (ok, out) = check(&text);
        assert!(!ok, "accepted:\n{text}");
        assert!(
            out.contains(key),
            "error for\n{text}\ndoes not name `{key}`: {out}"
        );
        assert!(!out.contains("panicked"), "{out}");
    }
}

#[test]
fn serve_refuses_to_start_without_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:{}\"\n[[proxy.route]]\nname = \"sms\"\npath_prefix = \"/sms/\"\nupstream = \"http://127.0.0.1:9\"\n[store]\npath = \"{}\"\n",
        free_port(),
        dir.path().join("store").display()
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("IPGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IPGATE_ADMIN_TOKEN"));
}

/// Runs `ipgate serve` on `config` with the admin token and without
/// `IPGATE_LOG_KEY`: its stderr if it exits within 20 s, else (killed)
/// None.
fn serve_exit(config: &std::path::Path, stderr: &std::path::Path) -> Option<String> {
    let log = std::fs::File::create(stderr).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(config)
        .env("IPGATE_ADMIN_TOKEN", TOKEN)
        .env_remove("IPGATE_LOG_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(!status.success());
            return Some(std::fs::read_to_string(stderr).unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn serve_refuses_to_start_without_a_log_key_or_with_one_inside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let inside = store.join("log_key");
    std::fs::write(&inside, LOG_KEY).unwrap();
    let short = dir.path().join("short_key");
    std::fs::write(&short, "too-short").unwrap();
    let base = format!(
        "[proxy]\nlisten = \"127.0.0.1:{}\"\n[[proxy.route]]\nname = \"sms\"\npath_prefix = \"/sms/\"\nupstream = \"http://127.0.0.1:9\"\n\
         [control]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n[metrics]\nlisten = \"127.0.0.1:{}\"\n[store]\npath = \"{}\"\n",
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        store.display()
    );
    for (extra, want) in [
        (String::new(), "IPGATE_LOG_KEY"),
        (
            format!("log_key_file = \"{}\"\n", inside.display()),
            "inside store.path",
        ),
        (
            format!("log_key_file = \"{}\"\n", short.display()),
            "too short",
        ),
    ] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let err = serve_exit(&path, &dir.path().join("stderr"))
            .unwrap_or_else(|| panic!("{extra:?}: serve started"));
        assert!(err.contains(want), "{extra}: {err}");
    }
}

/// A certificate and a key that do not belong together (two `ipgate certs
/// dev` pairs, crossed) are refused by `config check` and by `serve`, with
/// an error naming both keys, not a panic inside Pingora's TLS setup.
#[test]
fn a_certificate_and_a_key_that_do_not_match_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for pair in ["a", "b"] {
        let out = Command::new(bin())
            .args(["certs", "dev", "--out"])
            .arg(dir.path().join(pair))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         [[proxy.route]]\nname = \"sms\"\npath_prefix = \"/sms/\"\nupstream = \"http://127.0.0.1:9\"\n\
         [control]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{}\"\n[store]\npath = \"{}\"\n",
        free_port(),
        free_port(),
        dir.path().join("a/server.crt").display(),
        dir.path().join("b/server.key").display(),
        free_port(),
        free_port(),
        free_port(),
        dir.path().join("store").display()
    );
    let (ok, out) = check(&text);
    assert!(!ok, "config check accepted a crossed pair");
    for key in [
        "proxy.tls_cert",
        "proxy.tls_key",
        "a/server.crt",
        "b/server.key",
    ] {
        assert!(out.contains(key), "`{key}` not named: {out}");
    }
    assert!(!out.contains("panicked"), "{out}");

    let path = dir.path().join("c.toml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .env("IPGATE_ADMIN_TOKEN", TOKEN)
        .env("IPGATE_LOG_KEY", LOG_KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve started with a crossed pair");
    assert!(
        err.contains("proxy.tls_key") && !err.contains("panicked"),
        "{err}"
    );
}
