//! An account's id: 1-128 of `A-Z a-z 0-9 . _ - @ +`, letters of either
//! case. The rule is [`valid_account_id`], the one the proxy reads calls
//! and table snapshots with; an [`AccountId`] is made only through it.

use ipgate_policy::account::valid_account_id;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A well-formed account id, as written (case kept).
///
/// Equality is exact, as the store keys accounts by the id as written.
/// That no two accounts' ids (or identities) differ only in ASCII case is
/// the `names` index's rule (`store::identities`), not this type's.
///
/// Serialised as the plain string; deserialising checks the rule, for
/// stored records too: every id was checked when written (the rule has
/// not changed), so one that fails is a damaged record, reported as such.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

/// A string that is not an account id. Its text is the rule, as the
/// admin API states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an account id is 1-128 of A-Z a-z 0-9 . _ - @ +")]
pub struct AccountIdError;

impl AccountId {
    /// `id` as an account id, if it is one.
    pub fn parse(id: &str) -> Result<AccountId, AccountIdError> {
        if valid_account_id(id) {
            Ok(AccountId(id.to_string()))
        } else {
            Err(AccountIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's bytes, as store keys hold it.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for AccountId {
    type Error = AccountIdError;

    fn try_from(id: String) -> Result<AccountId, AccountIdError> {
        if valid_account_id(&id) {
            Ok(AccountId(id))
        } else {
            Err(AccountIdError)
        }
    }
}

impl FromStr for AccountId {
    type Err = AccountIdError;

    fn from_str(id: &str) -> Result<AccountId, AccountIdError> {
        AccountId::parse(id)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AccountId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for AccountId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AccountId, D::Error> {
        let id = String::deserialize(d)?;
        AccountId::try_from(id).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_of_the_rule_are_made() {
        for good in ["acme", "ACME-prod_1", "a.b@c+d", &"x".repeat(128)] {
            let id = AccountId::parse(good).unwrap();
            assert_eq!(id.as_str(), good);
            assert_eq!(id.to_string(), good);
        }
        for bad in ["", "a b", "a/b", "ä", "a\n", &"x".repeat(129)] {
            assert_eq!(AccountId::parse(bad), Err(AccountIdError), "{bad:?}");
            assert!(AccountId::try_from(bad.to_string()).is_err());
        }
    }

    #[test]
    fn serde_is_the_plain_string_and_checks_the_rule() {
        let id = AccountId::parse("Acme").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"Acme\"");
        let back: AccountId = serde_json::from_str("\"Acme\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<AccountId>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<AccountId>("\"\"").is_err());
        assert!(serde_json::from_str::<AccountId>("7").is_err());
    }

    #[test]
    fn equality_is_exact() {
        let id = AccountId::parse("Acme").unwrap();
        assert!(id == "Acme");
        assert!(id != "acme");
        assert_ne!(id, AccountId::parse("acme").unwrap());
    }
}
