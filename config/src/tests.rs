use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Vec::<(String, String)>::new())
}

fn key_of(r: Result<Config, ConfigError>) -> String {
    match r {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => format!("not an Invalid error: {other:?}"),
    }
}

#[test]
fn example_file_is_valid() {
    let text = include_str!("../ipgate.example.toml");
    let c = parse(text).map_err(|e| e.to_string());
    assert!(c.is_ok(), "{c:?}");
    let c = c.ok().map(|c| c.proxy.routes.len());
    assert_eq!(c, Some(2));
}

#[test]
fn empty_file_takes_defaults() {
    let c = parse("").ok().map(|c| {
        (
            c.proxy.max_headers,
            c.control.max_ips_per_request,
            c.proxy.deny_unidentified,
        )
    });
    assert_eq!(c, Some((100, 2, true)));
}

#[test]
fn unknown_key_is_named() {
    let e = parse("[proxy]\nlisen = \"0.0.0.0:1\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("lisen"), "{e}");
}

#[test]
fn bad_values_name_their_key() {
    assert_eq!(
        key_of(parse("[proxy]\nlisten = \"nope\"\n")),
        "proxy.listen"
    );
    assert_eq!(
        key_of(parse(
            "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"x\"]\n"
        )),
        "proxy.trusted_proxies[1]"
    );
    assert_eq!(
        key_of(parse("[proxy]\nheader_timeout = \"soon\"\n")),
        "proxy.header_timeout"
    );
    assert_eq!(key_of(parse("[proxy]\nthreads = 0\n")), "proxy.threads");
    assert_eq!(
        key_of(parse("[proxy]\ndrain_timeout = \"2h\"\n")),
        "proxy.drain_timeout"
    );
    assert_eq!(key_of(parse("[store]\ncache_mb = 0\n")), "store.cache_mb");
    assert_eq!(key_of(parse("[store]\ncache_mb = -1\n")), "store.cache_mb");
    for bad in [
        "url = \"mysql://db/x\"",
        "url = \"postgres://ipgate:hunter2@db:5432/ipgate\"",
        "pool_size = 0",
        "timeout = \"1ms\"",
    ] {
        assert_eq!(
            key_of(parse(&format!("[store]\n{bad}\n"))),
            format!("store.{}", bad.split(' ').next().unwrap()),
            "{bad}"
        );
    }
    assert_eq!(
        key_of(parse("[proxy]\nunknown_account = \"maybe\"\n")),
        "proxy.unknown_account"
    );
    assert_eq!(
        key_of(parse("[proxy]\ntls_listen = \"0.0.0.0:8443\"\n")),
        "proxy.tls_cert"
    );
    assert_eq!(
        key_of(parse(
            "[[proxy.route]]\nname = \"a\"\nupstream = \"ftp://x\"\npath_prefix = \"/a/\"\n"
        )),
        "proxy.route[0].upstream"
    );
    assert_eq!(
        key_of(parse(
            "[[proxy.route]]\nname = \"a\"\nupstream = \"http://x\"\n"
        )),
        "proxy.route[0].host"
    );
    assert_eq!(
        key_of(parse("[[proxy.route]]\nname = \"a\"\nupstream = \"http://x\"\nhost = \"a\"\naccount_from = [\"cookie:x\"]\n")),
        "proxy.route[0].account_from[0]"
    );
    assert_eq!(
        key_of(parse("[control]\npublic_url = \"portal\"\n")),
        "control.public_url"
    );
    assert_eq!(
        key_of(parse("[metrics]\nlisten = \"127.0.0.1:9002\"\n")),
        "metrics.listen"
    );
}

#[test]
fn syntax_errors_are_reported() {
    assert!(matches!(parse("[proxy"), Err(ConfigError::Syntax(_))));
}

#[test]
fn environment_overrides_win_and_are_checked() {
    let vars = vec![("IPGATE_PROXY__THREADS".to_string(), "3".to_string())];
    let c = Config::parse("[proxy]\nthreads = 1\n", vars)
        .ok()
        .map(|c| c.proxy.threads);
    assert_eq!(c, Some(3));
    let vars = vec![("IPGATE_PROXY__THREADS".to_string(), "lots".to_string())];
    assert_eq!(key_of(Config::parse("", vars)), "proxy.threads");
}

#[test]
fn expiry_reminders_default_to_three_days_and_one_day_and_are_checked() {
    let secs = |c: &Config| -> Vec<u64> {
        c.control
            .expiry_reminders
            .iter()
            .map(|d| d.0.as_secs())
            .collect()
    };
    assert_eq!(
        parse("").ok().map(|c| secs(&c)),
        Some(vec![259_200, 86_400])
    );
    let c = parse("[control]\nexpiry_reminders = [\"8s\", \"4s\"]\n");
    assert_eq!(c.ok().map(|c| secs(&c)), Some(vec![8, 4]));
    assert_eq!(
        parse("[control]\nexpiry_reminders = []\n")
            .ok()
            .map(|c| secs(&c)),
        Some(vec![])
    );
    for bad in [
        "[\"0s\"]",
        "[\"1500ms\"]",
        "[\"367d\"]",
        "[\"1d\", \"2d\", \"3d\", \"4d\", \"5d\"]",
    ] {
        assert_eq!(
            key_of(parse(&format!("[control]\nexpiry_reminders = {bad}\n"))),
            "control.expiry_reminders",
            "{bad}"
        );
    }
}

#[test]
fn the_contact_text_is_one_printable_line() {
    let c = parse("[control]\ncontact = \"Call +1 555 0100\"\n");
    assert_eq!(
        c.ok().map(|c| c.control.contact),
        Some("Call +1 555 0100".to_string())
    );
    for bad in [
        "\"\"",
        "\"   \"",
        "\"a\\nb\"",
        &format!("\"{}\"", "x".repeat(501)),
    ] {
        assert_eq!(
            key_of(parse(&format!("[control]\ncontact = {bad}\n"))),
            "control.contact",
            "{bad}"
        );
    }
}
