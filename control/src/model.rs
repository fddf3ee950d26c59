//! The records the control plane keeps: accounts, whitelist entries,
//! blocklist entries, account identities and secret keys (as hashes), as
//! stored (JSON in sled) and as shown by the admin API.

use ipgate_policy::Mode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An account's whitelist feature, as the admin API spells it: `off`
/// (not checked), `enforce` (refused unless whitelisted), `report` (let
/// through, and reported where `enforce` would refuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub emails: Vec<String>,
    pub whitelist: WhitelistMode,
    pub created_at: String,
    pub updated_at: String,
}

/// Who put an entry in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The operator, through the admin API.
    Admin,
    /// A customer request approved from an emailed link.
    Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockEntry {
    pub id: String,
    pub cidr: String,
    pub remark: String,
    pub created_at: String,
}

/// A name the upstream knows an account by (username, API key id, sender
/// id, phone-number id): unique over all identities and account ids,
/// ASCII case ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    pub id: String,
    pub account: String,
    pub value: String,
    pub remark: String,
    pub created_at: String,
}

/// An account's secret key, kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKey {
    pub id: String,
    pub account: String,
    /// Lower-case hex.
    pub sha256: String,
    pub fingerprint: String,
    pub remark: String,
    pub created_at: String,
}

/// A secret key as the admin API shows it: no hash, only its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SecretKeyView {
    pub id: String,
    pub fingerprint: String,
    pub remark: String,
    pub created_at: String,
}

impl From<&SecretKey> for SecretKeyView {
    fn from(k: &SecretKey) -> SecretKeyView {
        SecretKeyView {
            id: k.id.clone(),
            fingerprint: k.fingerprint.clone(),
            remark: k.remark.clone(),
            created_at: k.created_at.clone(),
        }
    }
}

/// Hex digits of the hash a fingerprint shows.
pub const FINGERPRINT_HEX: usize = 12;

/// `sha256:` and the first [`FINGERPRINT_HEX`] hex digits of a key's hash:
/// enough to tell an account's keys apart, too little to stand for one.
pub fn fingerprint(sha256: &[u8; 32]) -> String {
    let hex = crate::seclog::hex(sha256);
    format!("sha256:{}", &hex[..FINGERPRINT_HEX])
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
