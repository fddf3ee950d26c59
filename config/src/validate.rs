//! Checks that span keys or need more than a type: routes, listeners,
//! limits. Runs after parsing; the first problem found is reported.

use crate::{Config, ConfigError};
use std::collections::HashSet;
use std::time::Duration;

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

fn check_store(c: &Config) -> Result<(), ConfigError> {
    if let Some(url) = &c.store.url {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "store.url",
                "must start with postgres:// or postgresql:// (leave it out for the sled store at store.path)",
            ));
        }
        // The password stays out of the URL, which shows in logs and
        // process listings: `postgres://user:password@...` is refused.
        let authority = url.split_once("://").map_or("", |(_, rest)| rest);
        let authority = authority.split(['/', '?']).next().unwrap_or("");
        if authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        {
            return Err(invalid(
                "store.url",
                "carries a password: give it in IPGATE_STORE_PASSWORD or store.password_file instead",
            ));
        }
    }
    if !(1..=256).contains(&c.store.pool_size) {
        return Err(invalid(
            "store.pool_size",
            format!("{} is out of range 1..=256", c.store.pool_size),
        ));
    }
    let t = c.store.timeout.0;
    if t < Duration::from_millis(100) || t > Duration::from_secs(300) {
        return Err(invalid("store.timeout", "must be between 100ms and 300s"));
    }
    Ok(())
}

pub fn check(c: &Config) -> Result<(), ConfigError> {
    check_proxy(c)?;
    check_control(c)?;
    check_listeners(c)?;
    if !(c.smtp.url.starts_with("smtp://") || c.smtp.url.starts_with("smtps://")) {
        return Err(invalid(
            "smtp.url",
            format!("`{}` must start with smtp:// or smtps://", c.smtp.url),
        ));
    }
    if !(4..=65_536).contains(&c.store.cache_mb) {
        return Err(invalid(
            "store.cache_mb",
            format!("{} is out of range 4..=65536", c.store.cache_mb),
        ));
    }
    check_store(c)?;
    for (i, url) in c.sync.control_urls.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                format!("sync.control_urls[{i}]"),
                format!("`{url}` must start with http:// or https://"),
            ));
        }
    }
    let poll = c.sync.poll_timeout.0;
    if poll < Duration::from_secs(1) || poll > Duration::from_secs(300) {
        return Err(invalid(
            "sync.poll_timeout",
            format!("{poll:?} is out of range 1s..=300s"),
        ));
    }
    if let Some(name) = &c.sync.name {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(invalid(
                "sync.name",
                format!("`{name}` must be 1-64 of A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    Ok(())
}

fn check_proxy(c: &Config) -> Result<(), ConfigError> {
    let p = &c.proxy;
    if p.threads == 0 || p.threads > 256 {
        return Err(invalid(
            "proxy.threads",
            format!("{} is out of range 1..=256", p.threads),
        ));
    }
    if !(1024..=1_048_575).contains(&p.max_header_bytes) {
        return Err(invalid(
            "proxy.max_header_bytes",
            format!("{} is out of range 1024..=1048575", p.max_header_bytes),
        ));
    }
    if !(1..=256).contains(&p.max_headers) {
        return Err(invalid(
            "proxy.max_headers",
            format!("{} is out of range 1..=256", p.max_headers),
        ));
    }
    if p.header_timeout.0.is_zero() {
        return Err(invalid("proxy.header_timeout", "must be more than zero"));
    }
    if !(1..=1_000_000).contains(&p.max_connections) {
        return Err(invalid(
            "proxy.max_connections",
            format!("{} is out of range 1..=1000000", p.max_connections),
        ));
    }
    if p.drain_timeout.0 > std::time::Duration::from_secs(3600) {
        return Err(invalid(
            "proxy.drain_timeout",
            "must be at most 1h (a stop must end)",
        ));
    }
    // Pingora's path replays at most 64 KiB of a body it has read.
    if !(1..=65_536).contains(&p.max_inspect_body) {
        return Err(invalid(
            "proxy.max_inspect_body",
            format!("{} is out of range 1..=65536", p.max_inspect_body),
        ));
    }
    if !p.introspect_url.is_empty()
        && (!(p.introspect_url.starts_with("http://") || p.introspect_url.starts_with("https://"))
            || p.introspect_url.parse::<http::Uri>().is_err())
    {
        return Err(invalid(
            "proxy.introspect_url",
            format!("`{}` must be an http:// or https:// URL", p.introspect_url),
        ));
    }
    if p.introspect_timeout.0.is_zero() || p.introspect_timeout.0.as_secs() > 60 {
        return Err(invalid(
            "proxy.introspect_timeout",
            "must be more than zero and at most 60s",
        ));
    }
    if p.tls_listen.is_some() {
        if p.tls_cert.is_none() {
            return Err(invalid(
                "proxy.tls_cert",
                "tls_listen is set, so tls_cert must name a PEM certificate file",
            ));
        }
        if p.tls_key.is_none() {
            return Err(invalid(
                "proxy.tls_key",
                "tls_listen is set, so tls_key must name a PEM private key file",
            ));
        }
    }
    let mut names = HashSet::new();
    for (i, r) in p.routes.iter().enumerate() {
        let key = |k: &str| format!("proxy.route[{i}].{k}");
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                key("name"),
                format!("`{}` must be non-empty letters, digits, _ or -", r.name),
            ));
        }
        if !names.insert(r.name.as_str()) {
            return Err(invalid(
                key("name"),
                format!("`{}` is used by two routes", r.name),
            ));
        }
        if r.host.is_none() && r.path_prefix.is_none() {
            return Err(invalid(
                key("host"),
                "a route needs host or path_prefix (or both)",
            ));
        }
        if let Some(h) = &r.host {
            if h.is_empty() || h.contains(['/', ' ', '@']) {
                return Err(invalid(key("host"), format!("`{h}` is not a host name")));
            }
        }
        if let Some(pp) = &r.path_prefix {
            if !pp.starts_with('/')
                || pp.contains(['?', '#', '%'])
                || pp.split('/').any(|s| s == "." || s == "..")
            {
                return Err(invalid(
                    key("path_prefix"),
                    format!("`{pp}` must be a plain path starting with /"),
                ));
            }
        }
        if r.strip_prefix && r.path_prefix.is_none() {
            return Err(invalid(
                key("strip_prefix"),
                "strip_prefix needs path_prefix",
            ));
        }
        if r.account_from.is_empty() {
            return Err(invalid(
                key("account_from"),
                "list at least one source, e.g. [\"basic_user\"]",
            ));
        }
        if r.connect_timeout.0.is_zero() || r.read_timeout.0.is_zero() {
            return Err(invalid(
                key("connect_timeout"),
                "timeouts must be more than zero",
            ));
        }
    }
    Ok(())
}

fn check_control(c: &Config) -> Result<(), ConfigError> {
    let k = &c.control;
    if !(k.public_url.starts_with("http://") || k.public_url.starts_with("https://"))
        || k.public_url.parse::<http::Uri>().is_err()
    {
        return Err(invalid(
            "control.public_url",
            format!("`{}` must be an http:// or https:// URL", k.public_url),
        ));
    }
    for (key, d) in [
        ("control.header_timeout", k.header_timeout.0),
        ("control.body_timeout", k.body_timeout.0),
    ] {
        if d.is_zero() || d > std::time::Duration::from_secs(300) {
            return Err(invalid(key, "must be more than zero and at most 300s"));
        }
    }
    if k.contact.trim().is_empty()
        || k.contact.chars().count() > 500
        || k.contact.chars().any(char::is_control)
    {
        return Err(invalid(
            "control.contact",
            "1-500 printable characters on one line",
        ));
    }
    if k.expiry_reminders.len() > 4 {
        return Err(invalid("control.expiry_reminders", "at most 4 reminders"));
    }
    for r in &k.expiry_reminders {
        let d = r.0;
        if d.as_secs() < 1
            || d.subsec_nanos() != 0
            || d > std::time::Duration::from_secs(366 * 86_400)
        {
            return Err(invalid(
                "control.expiry_reminders",
                "each is whole seconds, from 1s to 366d before the end",
            ));
        }
    }
    if k.link_ttl.0.as_secs() < 1 {
        return Err(invalid("control.link_ttl", "must be at least 1s"));
    }
    if !(1..=16).contains(&k.max_ips_per_request) {
        return Err(invalid(
            "control.max_ips_per_request",
            format!("{} is out of range 1..=16", k.max_ips_per_request),
        ));
    }
    if k.max_entries_per_account == 0 {
        return Err(invalid(
            "control.max_entries_per_account",
            "must be at least 1",
        ));
    }
    Ok(())
}

fn check_listeners(c: &Config) -> Result<(), ConfigError> {
    let all = [
        ("proxy.listen", c.proxy.listen),
        ("proxy.tls_listen", c.proxy.tls_listen),
        ("control.listen", c.control.listen),
        ("control.admin_listen", c.control.admin_listen),
        ("metrics.listen", c.metrics.listen),
    ];
    for (i, (key, addr)) in all.iter().enumerate() {
        let Some(addr) = addr else { continue };
        if addr.port() == 0 {
            continue;
        }
        if let Some((other, _)) = all[..i].iter().find(|(_, a)| *a == Some(*addr)) {
            return Err(invalid(*key, format!("{addr} is already used by {other}")));
        }
    }
    Ok(())
}
