use super::*;
use crate::domain::model::{Source, WhitelistEntry, WhitelistMode};
use crate::domain::Timestamp;
use crate::seclog::LogKey;

pub(crate) fn account(id: &str) -> Account {
    Account {
        id: id.parse().unwrap(),
        name: "Acme".into(),
        emails: vec!["ops@acme.test".into()],
        whitelist: WhitelistMode::Enforce,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        approvals_required: 1,
        frozen: false,
    }
}

/// An admin-made entry of `account` for `cidr`.
pub(crate) fn entry_of(account: &str, cidr: &str) -> WhitelistEntry {
    WhitelistEntry {
        id: String::new(),
        account: account.parse().unwrap(),
        cidr: cidr.parse().unwrap(),
        remark: String::new(),
        tags: vec![],
        source: Source::Admin,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        expires_at: None,
        reminded: 0,
    }
}

/// alice's submission of `ips` for account acme, a link mail to each of
/// `emails`: links for an hour, no end, one approval needed.
pub(crate) fn new_request(ips: &[&str], emails: &[&str]) -> NewRequest {
    NewRequest {
        account: "acme".parse().unwrap(),
        ips: ips.iter().map(|i| i.to_string()).collect(),
        remark: String::new(),
        reference: None,
        requested_by: "alice".into(),
        requested_from: "192.0.2.1".into(),
        user_agent: "test".into(),
        ttl_secs: 3600,
        valid_for_secs: None,
        approvals_required: 1,
        emails: emails.iter().map(|e| e.to_string()).collect(),
        idempotency: None,
    }
}

/// The log key unit tests open stores with.
pub(crate) fn test_key() -> LogKey {
    LogKey::new(b"unit-test-log-key-0123456789abcdef").unwrap()
}

/// The sled store itself, for the tests that reach into its trees.
pub(crate) fn open_sled(dir: &tempfile::TempDir) -> sled::SledStore {
    sled::SledStore::open(dir.path(), test_key()).unwrap()
}

pub(crate) fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path(), test_key()).unwrap()
}

pub(crate) fn op() -> Actor {
    Actor::admin(Some(std::net::IpAddr::from([127, 0, 0, 1])))
}
