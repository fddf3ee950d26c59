//! A whole store as records, for moving it between backends (`ipgate
//! store copy`): every record as the stores keep it, the security log's
//! records byte for byte with its head, the server secrets and the table
//! generation. Indexes (names, key hashes, networks, the pending request
//! of each account) are not in it: each backend builds its own from the
//! records.

use crate::domain::model::{Account, BlockEntry, Identity, SecretKey, WhitelistEntry};
use crate::domain::tokens::ApiToken;
use crate::domain::users::User;
use crate::seclog::Head;
use crate::store::{IpRequest, LinkRecord, MailJob, Session};

#[derive(Debug, Default)]
pub struct Dump {
    /// Server secrets by name (`csrf`), 32 bytes each.
    pub secrets: Vec<(String, Vec<u8>)>,
    /// The table generation reached (the sync feed's versions grow on it).
    pub generation: u64,
    /// The largest record id given out (entries, requests, mails...).
    pub max_id: u64,
    pub accounts: Vec<Account>,
    /// Entries with the account they are filed under.
    pub entries: Vec<(String, WhitelistEntry)>,
    pub blocklist: Vec<BlockEntry>,
    pub identities: Vec<Identity>,
    pub keys: Vec<SecretKey>,
    pub users: Vec<User>,
    /// API tokens by the hash of the token.
    pub tokens: Vec<(String, ApiToken)>,
    /// Portal sessions by the hash of their id.
    pub sessions: Vec<(String, Session)>,
    pub requests: Vec<IpRequest>,
    /// Links by the hash of their token.
    pub links: Vec<(String, LinkRecord)>,
    pub outbox: Vec<MailJob>,
    /// The security log: each record's place and exact text, oldest first.
    pub log: Vec<(u64, String)>,
    pub head: Option<Head>,
}

impl Dump {
    /// How many records of each kind, for the progress lines.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("accounts", self.accounts.len()),
            ("entries", self.entries.len()),
            ("blocklist", self.blocklist.len()),
            ("identities", self.identities.len()),
            ("keys", self.keys.len()),
            ("users", self.users.len()),
            ("tokens", self.tokens.len()),
            ("sessions", self.sessions.len()),
            ("requests", self.requests.len()),
            ("links", self.links.len()),
            ("mails", self.outbox.len()),
            ("log records", self.log.len()),
        ]
    }
}
