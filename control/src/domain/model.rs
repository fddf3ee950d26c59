//! The records the control plane keeps: accounts, whitelist entries,
//! blocklist entries, account identities and secret keys (as hashes), as
//! stored (JSON in sled) and as shown by the admin API. Ids of accounts,
//! networks and times are typed ([`crate::domain`]) but stored and shown
//! as the strings they always were; the schemas say `string` for them.

use crate::domain::{AccountId, Cidr, Timestamp};
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
    #[schema(value_type = String)]
    pub id: AccountId,
    pub name: String,
    pub emails: Vec<String>,
    pub whitelist: WhitelistMode,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    /// How many different account emails must approve a request before
    /// its IPs go live: 1 (the default, not stored) to the number of
    /// emails.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub approvals_required: u8,
    /// Self-service requests are refused until the operator lifts it
    /// (after "this wasn't me"); absent when not frozen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub frozen: bool,
}

fn one() -> u8 {
    1
}

fn is_one(n: &u8) -> bool {
    *n == 1
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Account {
    /// `email` is one of the account's emails (ignoring ASCII case, as mail
    /// domains are).
    pub fn has_email(&self, email: &str) -> bool {
        self.emails.iter().any(|e| e.eq_ignore_ascii_case(email))
    }
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
    #[schema(value_type = String)]
    pub account: AccountId,
    #[schema(value_type = String)]
    pub cidr: Cidr,
    pub remark: String,
    pub tags: Vec<String>,
    pub source: Source,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    /// When the entry leaves the whitelist by itself; absent for an entry
    /// that stays until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    /// How many of the expiry reminders' times (`control.expiry_reminders`)
    /// have passed for this entry: 0 until the first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reminded: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl WhitelistEntry {
    /// The entry has ended by `now` (it is time-bound and its time came).
    pub fn ended(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockEntry {
    pub id: String,
    #[schema(value_type = String)]
    pub cidr: Cidr,
    pub remark: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// A name the upstream knows an account by (username, API key id, sender
/// id, phone-number id): unique over all identities and account ids,
/// ASCII case ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    pub id: String,
    #[schema(value_type = String)]
    pub account: AccountId,
    pub value: String,
    pub remark: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// An account's secret key, kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKey {
    pub id: String,
    pub account: AccountId,
    /// Lower-case hex.
    pub sha256: String,
    pub fingerprint: String,
    pub remark: String,
    pub created_at: Timestamp,
}

/// A secret key as the admin API shows it: no hash, only its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SecretKeyView {
    pub id: String,
    pub fingerprint: String,
    pub remark: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

impl From<&SecretKey> for SecretKeyView {
    fn from(k: &SecretKey) -> SecretKeyView {
        SecretKeyView {
            id: k.id.clone(),
            fingerprint: k.fingerprint.clone(),
            remark: k.remark.clone(),
            created_at: k.created_at,
        }
    }
}

/// Hex digits of the hash a fingerprint shows.
pub const FINGERPRINT_HEX: usize = 12;

/// `sha256:` and the first [`FINGERPRINT_HEX`] hex digits of a key's hash:
/// enough to tell an account's keys apart, too little to stand for one.
pub fn fingerprint(sha256: &[u8; 32]) -> String {
    let hex = crate::hex::encode(sha256);
    format!("sha256:{}", &hex[..FINGERPRINT_HEX])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// `json` (a record as the code before the typed fields wrote it)
    /// reads, and is written back byte for byte.
    fn same_after_round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
        let v: T = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), json);
        v
    }

    #[test]
    fn stored_records_read_and_write_as_before() {
        let a: Account = same_after_round_trip(
            r#"{"id":"Acme-1","name":"Acme","emails":["ops@acme.test"],"whitelist":"enforce","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:05Z"}"#,
        );
        assert_eq!(a.id, "Acme-1");
        assert_eq!(a.updated_at.unix(), 1_767_225_605);
        let e: WhitelistEntry = same_after_round_trip(
            r#"{"id":"7","account":"Acme-1","cidr":"2001:db8::/64","remark":"","tags":["prod"],"source":"request","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#,
        );
        assert_eq!(e.cidr, Cidr::parse("2001:db8::/64").unwrap());
        same_after_round_trip::<BlockEntry>(
            r#"{"id":"8","cidr":"192.0.2.0/24","remark":"abuse","created_at":"2026-01-01T00:00:00Z"}"#,
        );
        same_after_round_trip::<Identity>(
            r#"{"id":"9","account":"Acme-1","value":"15550001111","remark":"","created_at":"2026-01-01T00:00:00Z"}"#,
        );
        same_after_round_trip::<SecretKey>(
            r#"{"id":"10","account":"Acme-1","sha256":"00ff","fingerprint":"sha256:00ff","remark":"","created_at":"2026-01-01T00:00:00Z"}"#,
        );
    }

    #[test]
    fn a_record_breaking_a_rule_does_not_read() {
        for bad in [
            r#"{"id":"7","account":"acme","cidr":"10.0.0.1/8","remark":"","tags":[],"source":"admin","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"id":"7","account":"a b","cidr":"10.0.0.0/8","remark":"","tags":[],"source":"admin","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"id":"7","account":"acme","cidr":"10.0.0.0/8","remark":"","tags":[],"source":"admin","created_at":"2026-01-01","updated_at":"2026-01-01T00:00:00Z"}"#,
        ] {
            assert!(
                serde_json::from_str::<WhitelistEntry>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprints_are_the_first_hex_digits_of_the_hash() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        assert_eq!(fingerprint(&hash), "sha256:ab0000000000");
    }
}
