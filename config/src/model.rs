//! The config file's sections, with their defaults (docs/configuration.md).

use crate::types::{AccountSource, Cidr, HumanDuration, Upstream};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub proxy: ProxyConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// What to do with a request for an account ipgate has never heard of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownAccount {
    Allow,
    #[default]
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub threads: usize,
    pub trusted_proxies: Vec<Cidr>,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_timeout: HumanDuration,
    /// Open client connections (plain and TLS together); one more is
    /// closed at accept.
    pub max_connections: usize,
    /// On SIGTERM, the longest wait for calls already passed upstream to
    /// finish before the process stops anyway.
    pub drain_timeout: HumanDuration,
    /// The Unix socket a new `ipgate proxy --upgrade` takes the listening
    /// sockets over on; none: `upgrade.sock` beside `sync.snapshot_path`.
    pub upgrade_sock: Option<PathBuf>,
    pub unknown_account: UnknownAccount,
    pub deny_unidentified: bool,
    pub access_log: bool,
    /// Body bytes read for `form:`/`json:`/`key:form:` sources; a larger
    /// body on a route that needs it is refused with 413.
    pub max_inspect_body: usize,
    /// RFC 7662-style introspection endpoint for keys that are not
    /// registered; empty: off.
    pub introspect_url: String,
    /// How long an introspection answer (unknown keys too) is reused.
    pub introspect_ttl: HumanDuration,
    /// Longest wait for the introspection endpoint; past it the call is
    /// refused with 503.
    pub introspect_timeout: HumanDuration,
    /// File holding the Bearer token sent to the introspection endpoint;
    /// `IPGATE_INTROSPECT_TOKEN` wins when set.
    pub introspect_token_file: Option<PathBuf>,
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            threads: 2,
            trusted_proxies: Vec::new(),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            header_timeout: HumanDuration(Duration::from_secs(10)),
            max_connections: 10_000,
            drain_timeout: HumanDuration(Duration::from_secs(30)),
            upgrade_sock: None,
            unknown_account: UnknownAccount::Deny,
            deny_unidentified: true,
            access_log: true,
            max_inspect_body: 64 * 1024,
            introspect_url: String::new(),
            introspect_ttl: HumanDuration(Duration::from_secs(60)),
            introspect_timeout: HumanDuration(Duration::from_secs(2)),
            introspect_token_file: None,
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub strip_prefix: bool,
    pub upstream: Upstream,
    #[serde(default = "default_account_from")]
    pub account_from: Vec<AccountSource>,
    /// TCP (and TLS) connect timeout to the upstream.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Longest wait for the upstream between reads.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
}

impl RouteConfig {
    /// Whether any source reads the request body.
    pub fn reads_body(&self) -> bool {
        self.account_from.iter().any(AccountSource::reads_body)
    }
}

fn default_account_from() -> Vec<AccountSource> {
    vec![AccountSource::BasicUser]
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_read_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub public_url: String,
    pub link_ttl: HumanDuration,
    pub max_ips_per_request: usize,
    pub max_entries_per_account: usize,
    pub allow_private_ips: bool,
    /// File holding the admin token; `IPGATE_ADMIN_TOKEN` wins when set.
    pub admin_token_file: Option<PathBuf>,
    /// A request head on the portal, admin or metrics listener not in
    /// this long after the connection opened (or the last answer) closes it.
    pub header_timeout: HumanDuration,
    /// A request body not in this long after its head: 408.
    pub body_timeout: HumanDuration,
    /// How long before a time-bound entry ends each reminder mail goes to
    /// every account email (an entry created after a reminder's time skips
    /// that one).
    pub expiry_reminders: Vec<HumanDuration>,
    /// How to reach the operator, as "this wasn't me" pages and mails say
    /// it ("contact us" and this text).
    pub contact: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9001))),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9002))),
            public_url: "http://127.0.0.1:9001".to_string(),
            link_ttl: HumanDuration(Duration::from_secs(24 * 3600)),
            max_ips_per_request: 2,
            max_entries_per_account: 50,
            allow_private_ips: false,
            admin_token_file: None,
            header_timeout: HumanDuration(Duration::from_secs(10)),
            body_timeout: HumanDuration(Duration::from_secs(10)),
            expiry_reminders: vec![
                HumanDuration(Duration::from_secs(3 * 86_400)),
                HumanDuration(Duration::from_secs(86_400)),
            ],
            contact: "Contact your provider's support at once.".to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub url: String,
    pub from: String,
    /// File holding the SMTP password; `IPGATE_SMTP_PASSWORD` wins when set.
    pub password_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            url: "smtp://127.0.0.1:25".to_string(),
            from: "Security <security@example.com>".to_string(),
            password_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The sled store's directory (when `url` is not set).
    pub path: PathBuf,
    /// A PostgreSQL store instead of sled: `postgres://user@host:port/db`,
    /// without a password (that comes from `IPGATE_STORE_PASSWORD` or
    /// `password_file`). Several control planes may share it.
    pub url: Option<String>,
    /// File holding the PostgreSQL password; `IPGATE_STORE_PASSWORD` wins
    /// when set.
    pub password_file: Option<PathBuf>,
    /// PostgreSQL connections kept open at most.
    pub pool_size: usize,
    /// Bounds connecting to PostgreSQL, waiting for a free connection, and
    /// each statement.
    pub timeout: HumanDuration,
    /// sled's page cache, in MiB (sled's own default is 1 GiB).
    pub cache_mb: u64,
    /// File holding the key of the security log's HMAC chain (kept outside
    /// `path`); `IPGATE_LOG_KEY` wins when set.
    pub log_key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("data/ipgate"),
            url: None,
            password_file: None,
            pool_size: 16,
            timeout: HumanDuration(Duration::from_secs(5)),
            cache_mb: 64,
            log_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
    /// Put account ids on deny metrics (off by default: cardinality and privacy).
    pub label_accounts: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
            label_accounts: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// The control planes' admin listeners a proxy follows, tried in turn.
    pub control_urls: Vec<String>,
    /// Where a proxy saves the last table it received.
    pub snapshot_path: PathBuf,
    /// 0: serve the last table however old; else refuse with 503 once the
    /// table is older than this.
    pub max_stale: HumanDuration,
    /// How long the feed holds a poll open before answering 304.
    pub poll_timeout: HumanDuration,
    /// The name a proxy reports to the control plane (default: host name).
    pub name: Option<String>,
    /// File holding the sync token; `IPGATE_SYNC_TOKEN` wins when set.
    pub token_file: Option<PathBuf>,
}

impl Config {
    /// `proxy.upgrade_sock`, or `upgrade.sock` beside `sync.snapshot_path`
    /// (a directory only the proxy writes to).
    pub fn upgrade_sock(&self) -> PathBuf {
        match &self.proxy.upgrade_sock {
            Some(p) => p.clone(),
            None => self
                .sync
                .snapshot_path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("upgrade.sock"),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            control_urls: Vec::new(),
            snapshot_path: PathBuf::from("data/snapshot.bin"),
            max_stale: HumanDuration(Duration::ZERO),
            poll_timeout: HumanDuration(Duration::from_secs(25)),
            name: None,
            token_file: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}
