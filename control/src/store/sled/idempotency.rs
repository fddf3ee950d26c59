//! Submissions' idempotency keys in sled (`store::idempotency`): one
//! record per account and key hash, kept in the links tree under the
//! prefix `idem:` (a transaction takes at most 9 trees, and the request's
//! own, `flow_transaction`, has them all; no link lookup can find one, as
//! links are looked up by their token's hash), saved in the request's
//! transaction, swept when past its 24 hours.

use super::{abort, decode, encode, SledStore, StoreError, TxResult};
use crate::domain::Timestamp;
use crate::store::idempotency::{IdempotencyKey, KeyRecord};
use crate::store::{IdempotencyStore, IpRequest};
use async_trait::async_trait;
use sled::transaction::TransactionalTree;

/// Where the records are kept in the links tree.
const PREFIX: &[u8] = b"idem:";

/// A record's key: the prefix, the account, a zero byte, the key's hash.
fn record_key(account: &str, hash: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + account.len() + 1 + hash.len());
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(hash.as_bytes());
    k
}

/// Saves `key` of `account` as answering `request`, inside the request's
/// transaction; refuses ([`StoreError::KeyUsed`]) a key still live. A
/// record past its 24 hours is replaced.
pub(super) fn claim(
    tree: &TransactionalTree,
    account: &str,
    key: &IdempotencyKey,
    request: &IpRequest,
    now: Timestamp,
) -> TxResult<()> {
    let k = record_key(account, &key.hash);
    if let Some(raw) = tree.get(&k)? {
        let old: KeyRecord = decode(&raw).or_else(abort)?;
        if old.live(now) {
            return abort(StoreError::KeyUsed);
        }
    }
    tree.insert(k, encode(&KeyRecord::new(key, request, now)))?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for SledStore {
    async fn idempotency_key(
        &self,
        account: &str,
        hash: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let Some(raw) = self.links.get(record_key(account, hash))? else {
            return Ok(None);
        };
        let r: KeyRecord = decode(&raw)?;
        Ok(r.live(Timestamp::now()).then_some(r))
    }

    async fn sweep_idempotency_keys(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let mut n = 0;
        for kv in self.links.scan_prefix(PREFIX) {
            let (k, v) = kv?;
            let live = decode::<KeyRecord>(&v).is_ok_and(|r| r.live(now));
            // Only the record read: one a submission just saved stays.
            if !live
                && self
                    .links
                    .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                    .is_ok()
            {
                n += 1;
            }
        }
        if n > 0 {
            self.flush().await?;
        }
        Ok(n)
    }
}
