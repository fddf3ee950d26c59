//! Blocked calls in sled: tree `blocked_calls`, key `account \0 address`,
//! value the merged [`BlockedCall`] (JSON).

use super::{decode, encode, SledStore, StoreError};
use crate::store::blocked::{top, BlockedCall, BlockedReport};
use crate::store::BlockedCallStore;
use async_trait::async_trait;

fn key(account: &str, address: &std::net::IpAddr) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(address.to_string().as_bytes());
    k
}

#[async_trait]
impl BlockedCallStore for SledStore {
    async fn add_blocked_calls(&self, reports: &[BlockedReport]) -> Result<(), StoreError> {
        for r in reports {
            let k = key(&r.account, &r.call.address);
            let mut failed = None;
            self.blocked_calls.update_and_fetch(&k, |old| {
                let merged = match old.map(decode::<BlockedCall>) {
                    Some(Ok(o)) => o.merged(&r.call),
                    Some(Err(e)) => {
                        failed = Some(e);
                        r.call.clone()
                    }
                    None => r.call.clone(),
                };
                Some(encode(&merged))
            })?;
            if let Some(e) = failed {
                tracing::warn!(error = %e, "a stored blocked-call record was corrupt; replaced");
            }
        }
        Ok(())
    }

    async fn blocked_calls(
        &self,
        account: &str,
        since: u64,
        limit: usize,
    ) -> Result<Vec<BlockedCall>, StoreError> {
        let mut prefix = account.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.blocked_calls.scan_prefix(&prefix) {
            let (_, v) = kv?;
            let c: BlockedCall = decode(&v)?;
            if c.last_seen >= since {
                out.push(c);
            }
        }
        Ok(top(out, limit))
    }

    async fn sweep_blocked_calls(&self, before: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.blocked_calls.iter() {
            let (k, v) = kv?;
            let old = decode::<BlockedCall>(&v).map(|c| c.last_seen < before);
            if old.unwrap_or(true) {
                self.blocked_calls.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
