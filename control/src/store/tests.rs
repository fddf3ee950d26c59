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
