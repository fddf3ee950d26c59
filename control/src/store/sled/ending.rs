//! The index of time-bound entries, beside the entries: one key per entry
//! that ends, its end time (Unix seconds, big-endian) then the entry's
//! key, the network as value. In time order it answers what has ended and
//! what ends soon without reading every entry, and it gives the table the
//! end time of each ending network.
//!
//! Kept in the same transaction as the entries; built from them at open
//! when missing (a store made before entries could end, or just imported).

use super::{decode, entry_key, SledStore, StoreError, TxResult};
use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use ipnet::IpNet;
use sled::transaction::TransactionalTree;
use std::collections::HashMap;

const READY: &[u8] = b"ending-index";
const VERSION: &[u8] = b"1";

fn key(expires: Timestamp, entry_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + entry_key.len());
    k.extend_from_slice(&expires.unix().to_be_bytes());
    k.extend_from_slice(entry_key);
    k
}

/// Notes `e` (stored under `entry_key`) if it ends.
pub(crate) fn add(tx: &TransactionalTree, entry_key: &[u8], e: &WhitelistEntry) -> TxResult<()> {
    if let Some(at) = e.expires_at {
        tx.insert(key(at, entry_key), e.cidr.to_string().as_bytes())?;
    }
    Ok(())
}

/// Forgets `e` (stored under `entry_key`).
pub(crate) fn remove(tx: &TransactionalTree, entry_key: &[u8], e: &WhitelistEntry) -> TxResult<()> {
    if let Some(at) = e.expires_at {
        tx.remove(key(at, entry_key))?;
    }
    Ok(())
}

/// Drops the index and marks it unbuilt: the next open builds it.
pub(crate) fn forget(store: &SledStore) -> Result<(), StoreError> {
    store.meta.remove(READY)?;
    store.ending.clear()?;
    Ok(())
}

/// The account and entry id an entry key holds.
fn parse_entry_key(k: &[u8]) -> Option<(&str, u64)> {
    let split = k.len().checked_sub(9)?;
    let (account, rest) = k.split_at(split);
    let (zero, id) = rest.split_first()?;
    if *zero != 0 {
        return None;
    }
    Some((
        std::str::from_utf8(account).ok()?,
        u64::from_be_bytes(id.try_into().ok()?),
    ))
}

impl SledStore {
    /// Builds the index from the entries unless it is complete. Runs at
    /// open, before anything else can write.
    pub(crate) fn ensure_ending_index(&self) -> Result<(), StoreError> {
        if self.meta.get(READY)?.as_deref() == Some(VERSION) {
            return Ok(());
        }
        self.ending.clear()?;
        for kv in self.entries.iter() {
            let (k, v) = kv?;
            let e: WhitelistEntry = decode(&v)?;
            if let Some(at) = e.expires_at {
                self.ending
                    .insert(key(at, &k), e.cidr.to_string().as_bytes())?;
            }
        }
        self.meta.insert(READY, VERSION)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every ending network by account: (network, end time in Unix
    /// seconds).
    pub(crate) fn ending_networks(&self) -> Result<HashMap<String, Vec<(IpNet, u64)>>, StoreError> {
        let mut out: HashMap<String, Vec<(IpNet, u64)>> = HashMap::new();
        for kv in self.ending.iter() {
            let (k, v) = kv?;
            let corrupt = || StoreError::Corrupt("an ending-entry index key".into());
            let (at, entry) = k.split_first_chunk::<8>().ok_or_else(corrupt)?;
            let (account, _) = parse_entry_key(entry).ok_or_else(corrupt)?;
            let net: IpNet = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(corrupt)?;
            out.entry(account.to_string())
                .or_default()
                .push((net, u64::from_be_bytes(*at)));
        }
        Ok(out)
    }

    /// The time-bound entries ending at or before `until`, soonest first.
    pub(crate) fn entries_ending_by(
        &self,
        until: Timestamp,
    ) -> Result<Vec<WhitelistEntry>, StoreError> {
        let end = until.unix().saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for k in self.ending.range(..&end[..]).keys() {
            let k = k?;
            let Some((account, id)) = k.get(8..).and_then(parse_entry_key) else {
                return Err(StoreError::Corrupt("an ending-entry index key".into()));
            };
            if let Some(v) = self.entries.get(entry_key(account, id))? {
                out.push(decode(&v)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_come_back_apart() {
        let k = entry_key("acme-1", 77);
        assert_eq!(parse_entry_key(&k), Some(("acme-1", 77)));
        assert_eq!(parse_entry_key(b"short"), None);
    }
}
