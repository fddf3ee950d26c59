//! The records the control plane keeps: accounts, whitelist entries and
//! blocklist entries, as stored (JSON in sled) and as shown by the admin API.

use ipgate_proxy::Mode;
use serde::{Deserialize, Serialize};

/// An account's whitelist feature, as the admin API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhitelistMode {
    Off,
    Enforce,
    Report,
}

impl From<WhitelistMode> for Mode {
    fn from(m: WhitelistMode) -> Mode {
        match m {
            WhitelistMode::Off => Mode::Off,
            WhitelistMode::Enforce => Mode::Enforce,
            WhitelistMode::Report => Mode::Report,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub emails: Vec<String>,
    pub whitelist: WhitelistMode,
    pub created_at: String,
    pub updated_at: String,
}

/// Who put an entry in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The operator, through the admin API.
    Admin,
    /// A customer request approved from an emailed link.
    Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhitelistEntry {
    pub id: String,
    pub account: String,
    pub cidr: String,
    pub remark: String,
    pub tags: Vec<String>,
    pub source: Source,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    pub id: String,
    pub cidr: String,
    pub remark: String,
    pub created_at: String,
}

/// Now, as RFC 3339 UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Now, as Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}
