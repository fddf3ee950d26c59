//! Secrets come from the environment or a `*_file` key, never from the TOML.

use anyhow::{bail, Context};
use ipgate_config::Config;
use ipgate_control::http::admin::{AdminToken, MIN_TOKEN_LEN};
use ipgate_control::seclog::{LogKey, LogKeyError};
use std::path::Path;

/// `IPGATE_ADMIN_TOKEN`, else the file named by `control.admin_token_file`.
pub fn admin_token(config: &Config) -> anyhow::Result<AdminToken> {
    let raw = match std::env::var("IPGATE_ADMIN_TOKEN") {
        Ok(v) if !v.is_empty() => v,
        _ => match &config.control.admin_token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("config key `control.admin_token_file`: cannot read {}", path.display()))?
                .trim()
                .to_string(),
            None => bail!("set IPGATE_ADMIN_TOKEN (or control.admin_token_file) to a random token of at least 16 characters"),
        },
    };
    match AdminToken::new(&raw) {
        Some(t) => Ok(t),
        None => bail!("the admin token is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)"),
    }
}

/// `IPGATE_SMTP_PASSWORD`, else the file named by `smtp.password_file`, else none.
pub fn smtp_password(config: &Config) -> anyhow::Result<Option<String>> {
    password(
        "IPGATE_SMTP_PASSWORD",
        "smtp.password_file",
        config.smtp.password_file.as_deref(),
    )
}

/// `IPGATE_STORE_PASSWORD`, else the file named by `store.password_file`,
/// else none: the PostgreSQL store's password.
pub fn store_password(config: &Config) -> anyhow::Result<Option<String>> {
    password(
        "IPGATE_STORE_PASSWORD",
        "store.password_file",
        config.store.password_file.as_deref(),
    )
}

/// A password from `env`, else from `file` (config key `key`) without its
/// line end, else none.
fn password(env: &str, key: &str, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Ok(v) = std::env::var(env) {
        if !v.is_empty() {
            return Ok(Some(v));
        }
    }
    match file {
        Some(path) => Ok(Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("config key `{key}`: cannot read {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        )),
        None => Ok(None),
    }
}

/// `IPGATE_INTROSPECT_TOKEN`, else the file named by
/// `proxy.introspect_token_file`, else none.
pub fn introspect_token(config: &Config) -> anyhow::Result<Option<String>> {
    if let Ok(v) = std::env::var("IPGATE_INTROSPECT_TOKEN") {
        if !v.is_empty() {
            return Ok(Some(v));
        }
    }
    match &config.proxy.introspect_token_file {
        Some(path) => Ok(Some(
            std::fs::read_to_string(path)
                .with_context(|| {
                    format!(
                        "config key `proxy.introspect_token_file`: cannot read {}",
                        path.display()
                    )
                })?
                .trim()
                .to_string(),
        )),
        None => Ok(None),
    }
}

/// `IPGATE_LOG_KEY`, else the file named by `store.log_key_file`: the key
/// of the security log's HMAC chain. Required: without it, whoever can
/// write the store could rebuild the log. The file must not be inside
/// `store.path`, where it would be as writable, and as copied, as the log.
pub fn log_key(config: &Config) -> anyhow::Result<LogKey> {
    let raw = match std::env::var("IPGATE_LOG_KEY") {
        Ok(v) if !v.is_empty() => v,
        _ => match &config.store.log_key_file {
            Some(path) => {
                refuse_inside_store(path, &config.store.path)?;
                std::fs::read_to_string(path)
                    .with_context(|| format!("config key `store.log_key_file`: cannot read {}", path.display()))?
                    .trim()
                    .to_string()
            }
            None => bail!(
                "set IPGATE_LOG_KEY (or store.log_key_file) to a random key of at least {} characters \
                 (e.g. `openssl rand -hex 32`), kept outside store.path: it keys the security log's \
                 hash chain (docs/operations.md, \"The security log's key\")",
                ipgate_control::seclog::MIN_KEY_LEN
            ),
        },
    };
    LogKey::new(raw.trim().as_bytes()).map_err(|e| match e {
        LogKeyError::TooShort => anyhow::anyhow!("IPGATE_LOG_KEY / store.log_key_file: {e}"),
    })
}

fn refuse_inside_store(key_file: &Path, store: &Path) -> anyhow::Result<()> {
    let (Ok(key), Ok(store)) = (key_file.canonicalize(), store.canonicalize()) else {
        return Ok(());
    };
    if key.starts_with(&store) {
        bail!(
            "config key `store.log_key_file`: {} is inside store.path; keep the log key outside the store",
            key_file.display()
        );
    }
    Ok(())
}

/// `IPGATE_SYNC_TOKEN`, else the file named by `sync.token_file`, else
/// none: the token proxies present to the control plane's sync feed, and
/// that the feed checks. It can do nothing else.
pub fn sync_token(config: &Config) -> anyhow::Result<Option<String>> {
    let raw = match std::env::var("IPGATE_SYNC_TOKEN") {
        Ok(v) if !v.is_empty() => v,
        _ => match &config.sync.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| {
                    format!(
                        "config key `sync.token_file`: cannot read {}",
                        path.display()
                    )
                })?
                .trim()
                .to_string(),
            None => return Ok(None),
        },
    };
    if raw.len() < MIN_TOKEN_LEN {
        bail!("the sync token is too short: use at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)");
    }
    Ok(Some(raw))
}
