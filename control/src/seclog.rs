//! The security log: an append-only, hash-chained record of every security
//! step. Each record carries the hash of the one before it and its own hash
//! over its content, so editing, reordering or dropping a record breaks the
//! chain where `verify` finds it; the head hash is exported (verify answer,
//! start-up log) so a truncated tail can be caught against a copy kept
//! elsewhere. Records are appended inside the same sled transaction as the
//! change they describe.
//!
//! The hash is an HMAC-SHA256 under a [`LogKey`] kept outside the store,
//! and each record names the key (`key_id`), so someone who can write the
//! store but not read the key cannot rebuild the chain after an edit.
//! Records written before log keys have no `key_id` and a plain SHA-256;
//! they verify as such, but only before the first keyed record, whose
//! `prev` pins them: an unkeyed record after a keyed one is a break.

mod key;
mod verify;
pub use key::{LogKey, LogKeyError, MIN_KEY_LEN};
pub use verify::{head_record, verify, verify_chain, Verification};

use crate::domain::Timestamp;
use crate::hex::encode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::net::IpAddr;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HEAD_KEY: &[u8] = b"head";

/// Who did something, from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: String,
    pub ip: Option<IpAddr>,
}

impl Actor {
    pub fn admin(ip: Option<IpAddr>) -> Actor {
        Actor {
            who: "admin".into(),
            ip,
        }
    }
    pub fn system() -> Actor {
        Actor {
            who: "system".into(),
            ip: None,
        }
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecRecord {
    /// The record's place in the log, from 1.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    // The text as written, not a `Timestamp`: the hash covers the record
    // as serialised, so a record must read back and re-serialise byte for
    // byte, and a damaged one must still read (and fail verification).
    pub at: String,
    /// What happened: `account.created`, `whitelist.added`,
    /// `login.failed`, ... (docs/api.md).
    pub event: String,
    #[schema(required = true)]
    pub account: Option<String>,
    /// `admin`, `system`, or the user who did it.
    pub actor: String,
    #[schema(required = true)]
    pub ip: Option<String>,
    /// What the event is about, per event.
    pub details: Value,
    /// The id of the log key whose HMAC `hash` is; none for a record
    /// written before log keys (plain SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The previous record's hash.
    pub prev: String,
    /// Over `prev` and the record without its hash.
    pub hash: String,
}

impl SecRecord {
    /// The hash of `prev` and the record without its hash: HMAC-SHA256
    /// under `key` when the record is keyed, else plain SHA-256. (For a
    /// record naming another key the answer is meaningless: check the id.)
    fn compute_hash(&self, key: &LogKey) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let body = serde_json::to_vec(&unhashed).unwrap_or_default();
        match self.key_id {
            Some(_) => encode(&key.tag(&[self.prev.as_bytes(), b"\n", &body])),
            None => {
                let mut h = Sha256::new();
                h.update(self.prev.as_bytes());
                h.update(b"\n");
                h.update(&body);
                encode(&h.finalize())
            }
        }
    }
}

/// The chain's newest record: its place and hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub event: &'a str,
    pub account: Option<&'a str>,
    pub details: Value,
}

/// The record that follows `head` for `event`, keyed with `key` and
/// hashed: what every backend appends.
pub fn next_record(head: &Head, key: &LogKey, actor: &Actor, event: &Event<'_>) -> SecRecord {
    let mut rec = SecRecord {
        seq: head.seq + 1,
        at: Timestamp::now().to_string(),
        event: event.event.to_string(),
        account: event.account.map(str::to_string),
        actor: actor.who.clone(),
        ip: actor.ip.map(|i| i.to_string()),
        details: event.details.clone(),
        key_id: Some(key.id().to_string()),
        prev: head.hash.clone(),
        hash: String::new(),
    };
    rec.hash = rec.compute_hash(key);
    rec
}

/// The head before the first record.
pub fn genesis() -> Head {
    Head {
        seq: 0,
        hash: GENESIS.into(),
    }
}

/// Appends `event` to the log tree inside a transaction, keyed with
/// `key`. Returns the new head hash.
pub fn append<E: From<CorruptHead>>(
    log: &TransactionalTree,
    key: &LogKey,
    actor: &Actor,
    event: &Event<'_>,
) -> Result<String, ConflictableTransactionError<E>> {
    let head: Head = match log.get(HEAD_KEY)? {
        // An unreadable head is never taken for a fresh chain: that would
        // write over record 1. The change is refused instead.
        Some(v) => serde_json::from_slice(&v)
            .map_err(|e| ConflictableTransactionError::Abort(CorruptHead(e.to_string()).into()))?,
        None if log.get(1u64.to_be_bytes())?.is_some() => {
            return Err(ConflictableTransactionError::Abort(
                CorruptHead("the head is missing but records exist".into()).into(),
            ))
        }
        None => genesis(),
    };
    let rec = next_record(&head, key, actor, event);
    log.insert(
        &rec.seq.to_be_bytes(),
        serde_json::to_vec(&rec).unwrap_or_default(),
    )?;
    let new_head = Head {
        seq: rec.seq,
        hash: rec.hash.clone(),
    };
    log.insert(HEAD_KEY, serde_json::to_vec(&new_head).unwrap_or_default())?;
    Ok(rec.hash)
}

/// The security log's head record cannot be read: nothing is appended.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the security log's head is unreadable ({0}); nothing was changed. Run `ipgate admin log verify` and restore the store from a backup")]
pub struct CorruptHead(pub String);

/// Every record, oldest first, optionally only one account's.
pub fn records(log: &sled::Tree, account: Option<&str>) -> Result<Vec<SecRecord>, sled::Error> {
    let mut out = Vec::new();
    for item in log.iter() {
        let (k, v) = item?;
        if k.len() != 8 {
            continue;
        }
        match serde_json::from_slice::<SecRecord>(&v) {
            Ok(r) if account.is_none() || r.account.as_deref() == account => out.push(r),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "unreadable security-log record"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
