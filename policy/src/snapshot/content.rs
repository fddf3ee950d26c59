//! What a snapshot holds, and the checks that make it one: well-formed
//! ids, nothing twice, every alias and key owned by a known account.

use crate::account::valid_account_id;
use crate::table::{Identity, KeyHash, Mode};
use ipnet::IpNet;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The data a table is built from, in any order; [`super::Snapshot::new`]
/// checks it and sorts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// The table's version.
    pub version: u64,
    /// When it was made, in seconds since the Unix epoch.
    pub made: u64,
    pub accounts: Vec<SnapshotAccount>,
    /// The global blocklist.
    pub blocklist: Vec<IpNet>,
    /// Aliases: (name, account id).
    pub identities: Vec<Identity>,
    /// Secret keys' SHA-256: (hash, account id).
    pub keys: Vec<KeyHash>,
}

/// One account: its id, mode and whitelist networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotAccount {
    pub id: String,
    pub mode: Mode,
    pub nets: Vec<IpNet>,
    /// Those of `nets` that end, each with its time (Unix seconds).
    pub ending: Vec<(IpNet, u64)>,
}

/// Why a snapshot's content cannot make a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("account id {0:?} is malformed (1-128 of A-Z a-z 0-9 . _ - @ +)")]
    AccountId(String),
    #[error("account {0:?} appears more than once (case ignored)")]
    DuplicateAccount(String),
    #[error("identity {0:?} is malformed (1-128 of A-Z a-z 0-9 . _ - @ +)")]
    IdentityName(String),
    #[error("identity {0:?} appears more than once (case ignored)")]
    DuplicateIdentity(String),
    #[error("identity {0:?} is also an account id")]
    IdentityIsAccount(String),
    #[error("identity {name:?} belongs to unknown account {account:?}")]
    IdentityOwner { name: String, account: String },
    #[error("key hash {0:?} is not 32 bytes of hex")]
    KeyHash(String),
    #[error("key hash {0} appears more than once")]
    DuplicateKey(String),
    #[error("key hash {hash} belongs to unknown account {account:?}")]
    KeyOwner { hash: String, account: String },
    #[error("made at {0} s after the epoch, a time this system cannot hold")]
    Made(u64),
    #[error("account {account:?} has an ending entry {net} that is not one of its networks (or is there twice)")]
    EndingNet { account: String, net: IpNet },
}

/// `secs` after the Unix epoch, if the system can hold it.
pub(super) fn unix_time(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Lower-case hex of a hash, for errors and the payload.
pub(super) fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Contents {
    /// The same data sorted, or the first thing wrong with it.
    pub(super) fn canonical(mut self) -> Result<Contents, Invalid> {
        if unix_time(self.made).is_none() {
            return Err(Invalid::Made(self.made));
        }
        self.accounts.sort_by(|a, b| a.id.cmp(&b.id));
        let mut ids = HashSet::with_capacity(self.accounts.len());
        for a in &mut self.accounts {
            if !valid_account_id(&a.id) {
                return Err(Invalid::AccountId(a.id.clone()));
            }
            if !ids.insert(a.id.to_ascii_lowercase()) {
                return Err(Invalid::DuplicateAccount(a.id.clone()));
            }
            a.nets.sort_unstable();
            a.ending.sort_unstable();
            for (i, (net, _)) in a.ending.iter().enumerate() {
                let twice = a.ending.get(i + 1).is_some_and(|(n, _)| n == net);
                if twice || a.nets.binary_search(net).is_err() {
                    return Err(Invalid::EndingNet {
                        account: a.id.clone(),
                        net: *net,
                    });
                }
            }
        }
        let known = |account: &str| ids.contains(&account.to_ascii_lowercase());
        self.blocklist.sort_unstable();
        self.identities.sort_unstable();
        let mut names = HashSet::with_capacity(self.identities.len());
        for (name, account) in &self.identities {
            if !valid_account_id(name) {
                return Err(Invalid::IdentityName(name.clone()));
            }
            let folded = name.to_ascii_lowercase();
            if ids.contains(&folded) {
                return Err(Invalid::IdentityIsAccount(name.clone()));
            }
            if !names.insert(folded) {
                return Err(Invalid::DuplicateIdentity(name.clone()));
            }
            if !known(account) {
                return Err(Invalid::IdentityOwner {
                    name: name.clone(),
                    account: account.clone(),
                });
            }
        }
        self.keys.sort_unstable();
        for pair in self.keys.windows(2) {
            if let [(a, _), (b, _)] = pair {
                if a == b {
                    return Err(Invalid::DuplicateKey(hex(a)));
                }
            }
        }
        for (hash, account) in &self.keys {
            if !known(account) {
                return Err(Invalid::KeyOwner {
                    hash: hex(hash),
                    account: account.clone(),
                });
            }
        }
        Ok(self)
    }
}
