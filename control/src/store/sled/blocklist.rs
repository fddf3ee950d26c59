//! The global blocklist: networks refused for every account.

use super::{abort, decode, encode, flatten, SledStore, StoreError, Touch};
use crate::domain::model::BlockEntry;
use crate::seclog::{self, Actor, Event};
use crate::store::BlockStore;
use async_trait::async_trait;
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

#[async_trait]
impl BlockStore for SledStore {
    async fn blocklist(&self) -> Result<Vec<BlockEntry>, StoreError> {
        self.blocklist
            .iter()
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    async fn add_block(
        &self,
        mut entry: BlockEntry,
        actor: &Actor,
    ) -> Result<BlockEntry, StoreError> {
        let id = self.next_id()?;
        entry.id = id.to_string();
        let existing = self.blocklist().await?;
        if existing.iter().any(|b| b.cidr == entry.cidr) {
            return Err(StoreError::Duplicate(entry.cidr.to_string()));
        }
        let value = encode(&entry);
        let event = Event {
            event: "blocklist.added",
            account: None,
            details: json!({"entry": entry.id, "cidr": entry.cidr, "remark": entry.remark}),
        };
        flatten((&self.blocklist, &self.seclog).transaction(
            |(tx, log): &(TransactionalTree, TransactionalTree)| {
                tx.insert(&id.to_be_bytes(), value.as_slice())?;
                seclog::append(log, &self.log_key, actor, &event)?;
                Ok(())
            },
        ))?;
        self.flush().await?;
        self.touched(Touch::Blocklist);
        Ok(entry)
    }

    async fn remove_block(&self, id: &str, actor: &Actor) -> Result<BlockEntry, StoreError> {
        let n: u64 = id
            .parse()
            .map_err(|_| StoreError::NoEntry(id.to_string()))?;
        let removed = flatten((&self.blocklist, &self.seclog).transaction(
            |(tx, log): &(TransactionalTree, TransactionalTree)| {
                let Some(v) = tx.remove(&n.to_be_bytes())? else {
                    return abort(StoreError::NoEntry(id.to_string()));
                };
                let b: BlockEntry = decode(&v).or_else(abort)?;
                let event = Event {
                    event: "blocklist.removed",
                    account: None,
                    details: json!({"entry": b.id, "cidr": b.cidr}),
                };
                seclog::append(log, &self.log_key, actor, &event)?;
                Ok(b)
            },
        ))?;
        self.flush().await?;
        self.touched(Touch::Blocklist);
        Ok(removed)
    }
}
