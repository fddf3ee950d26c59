//! The global blocklist in PostgreSQL.

use super::{doc, parse_id, pg_error, read, PgStore};
use crate::domain::model::BlockEntry;
use crate::domain::Cidr;
use crate::seclog::{Actor, Event};
use crate::store::{BlockStore, StoreError, Touch};
use async_trait::async_trait;
use serde_json::json;

#[async_trait]
impl BlockStore for PgStore {
    async fn blocklist(&self) -> Result<Vec<BlockEntry>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT doc FROM ipgate_blocklist ORDER BY id", &[])
            .await
            .map_err(pg_error)?;
        rows.iter().map(|r| read(r, 0)).collect()
    }

    async fn add_block(&self, entry: BlockEntry, actor: &Actor) -> Result<BlockEntry, StoreError> {
        let added = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let rows =
                    w.tx.query("SELECT cidr FROM ipgate_blocklist", &[])
                        .await
                        .map_err(pg_error)?;
                for r in rows {
                    let text: String = r.try_get(0).map_err(pg_error)?;
                    if Cidr::parse(&text).ok() == Some(entry.cidr) {
                        return Err(StoreError::Duplicate(entry.cidr.to_string()));
                    }
                }
                let mut entry = entry.clone();
                let id = PgStore::next_id(&w).await?;
                entry.id = id.to_string();
                w.tx.execute(
                    "INSERT INTO ipgate_blocklist (id, cidr, doc) VALUES ($1, $2, $3)",
                    &[&parse_id(&entry.id), &entry.cidr.to_string(), &doc(&entry)],
                )
                .await
                .map_err(pg_error)?;
                let event = Event {
                    event: "blocklist.added",
                    account: None,
                    details: json!({"entry": entry.id, "cidr": entry.cidr, "remark": entry.remark}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Blocklist);
                w.commit().await?;
                Ok(entry)
            })
            .await?;
        Ok(added)
    }

    async fn remove_block(&self, id: &str, actor: &Actor) -> Result<BlockEntry, StoreError> {
        let n = parse_id(id).ok_or_else(|| StoreError::NoEntry(id.to_string()))?;
        let removed = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let row =
                    w.tx.query_opt(
                        "DELETE FROM ipgate_blocklist WHERE id = $1 RETURNING doc",
                        &[&n],
                    )
                    .await
                    .map_err(pg_error)?
                    .ok_or_else(|| StoreError::NoEntry(id.to_string()))?;
                let b: BlockEntry = read(&row, 0)?;
                let event = Event {
                    event: "blocklist.removed",
                    account: None,
                    details: json!({"entry": b.id, "cidr": b.cidr}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Blocklist);
                w.commit().await?;
                Ok(b)
            })
            .await?;
        Ok(removed)
    }
}
