//! The security log's key at open. A log whose newest record is keyed
//! with another key is refused, so one chain never mixes keys. A log from
//! before log keys (every record plain SHA-256, the chain intact) gets a
//! keyed `log.keyed` record at once: its `prev` pins every older record
//! under the key, so from then on they cannot be rewritten unseen.

use super::{flatten, SledStore, StoreError};
use crate::seclog::{self, Actor, Event};
use serde_json::json;
use sled::transaction::TransactionalTree;

impl SledStore {
    pub(super) fn ensure_log_key(&self) -> Result<(), StoreError> {
        let Some(head) = seclog::head_record(&self.seclog)? else {
            // Empty, or a head the start-up verification will report.
            return Ok(());
        };
        match &head.key_id {
            Some(id) if id == self.log_key.id() => Ok(()),
            Some(id) => Err(StoreError::LogKeyMismatch {
                stored: id.clone(),
                configured: self.log_key.id().to_string(),
            }),
            None => self.adopt_unkeyed_log(),
        }
    }

    /// Appends `log.keyed` after an intact chain of unkeyed records; a
    /// broken one is left for the start-up verification to report.
    fn adopt_unkeyed_log(&self) -> Result<(), StoreError> {
        let v = seclog::verify(&self.seclog, &self.log_key)?;
        if !v.ok || v.keyed_from.is_some() {
            return Ok(());
        }
        let event = Event {
            event: "log.keyed",
            account: None,
            details: json!({
                "key_id": self.log_key.id(),
                "unkeyed_records": v.records,
                "unkeyed_head": v.head,
            }),
        };
        flatten(self.seclog.transaction(|log: &TransactionalTree| {
            seclog::append(log, &self.log_key, &Actor::system(), &event)?;
            Ok(())
        }))?;
        self.db.flush()?;
        tracing::warn!(
            unkeyed_records = v.records,
            key_id = self.log_key.id(),
            "security log: records 1-{} were written before log keys (plain SHA-256); \
             they are now pinned under this log key, keyed from record {}. This happens \
             once per store: if it shows again, the log was rewritten while ipgate was \
             stopped; restore a backup",
            v.records,
            v.records + 1
        );
        Ok(())
    }
}
