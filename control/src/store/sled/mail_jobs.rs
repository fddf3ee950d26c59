//! What a queued mail is, and how a change queues one: inside the change's
//! own transaction (a submitted request, a decision), so a crash can delay
//! a mail but never lose it. The outbox (`outbox`) sends them.

use super::{encode, SledStore, StoreError, TxResult};
use crate::domain::AccountId;
use crate::store::{MailJob, MailKind};
use sled::transaction::TransactionalTree;

/// Queues one mail inside a transaction.
pub(crate) fn enqueue(
    outbox: &TransactionalTree,
    id: u64,
    kind: MailKind,
    to: &str,
    account: &AccountId,
    request: &str,
) -> TxResult<()> {
    let job = MailJob::queued(id, kind, to, account, request);
    outbox.insert(&id.to_be_bytes(), encode(&job))?;
    Ok(())
}

impl SledStore {
    /// Ids for `n` new mail jobs (taken before the transaction that queues them).
    pub(crate) fn mail_ids(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        (0..n).map(|_| self.next_id()).collect()
    }
}
