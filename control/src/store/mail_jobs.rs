//! What a queued mail is, and how a change queues one: inside the change's
//! own transaction (a submitted request, a decision), so a crash can delay
//! a mail but never lose it. The outbox (`outbox`) sends them.

use super::{encode, Store, StoreError, TxResult};
use crate::model::now;
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;

/// What a mail is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// The review link for one account email.
    Link,
    /// The outcome of a decision.
    Notice,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Link => "link",
            MailKind::Notice => "notice",
        }
    }
}

/// One queued mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailJob {
    pub id: u64,
    pub kind: MailKind,
    pub to: String,
    pub account: String,
    pub request: String,
    pub attempts: u32,
    pub next_attempt_unix: u64,
    pub last_error: Option<String>,
    pub created_at: String,
}

/// Queues one mail inside a transaction.
pub(crate) fn enqueue(
    outbox: &TransactionalTree,
    id: u64,
    kind: MailKind,
    to: &str,
    account: &str,
    request: &str,
) -> TxResult<()> {
    let job = MailJob {
        id,
        kind,
        to: to.to_string(),
        account: account.to_string(),
        request: request.to_string(),
        attempts: 0,
        next_attempt_unix: 0,
        last_error: None,
        created_at: now(),
    };
    outbox.insert(&id.to_be_bytes(), encode(&job))?;
    Ok(())
}

impl Store {
    /// Ids for `n` new mail jobs (taken before the transaction that queues them).
    pub(crate) fn mail_ids(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        (0..n).map(|_| self.next_id()).collect()
    }
}
