//! What a queued mail is, and how a change queues one: inside the change's
//! own transaction (a submitted request, a decision), so a crash can delay
//! a mail but never lose it. The outbox (`outbox`) sends them.

use super::{encode, SledStore, StoreError, TxResult};
use crate::domain::{unix_seconds, AccountId, Timestamp};
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
    pub account: AccountId,
    pub request: String,
    pub attempts: u32,
    /// Stored as Unix seconds under `next_attempt_unix`, as it always was.
    #[serde(rename = "next_attempt_unix", with = "unix_seconds")]
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// Queues one mail inside a transaction.
pub(crate) fn enqueue(
    outbox: &TransactionalTree,
    id: u64,
    kind: MailKind,
    to: &str,
    account: &AccountId,
    request: &str,
) -> TxResult<()> {
    let job = MailJob {
        id,
        kind,
        to: to.to_string(),
        account: account.clone(),
        request: request.to_string(),
        attempts: 0,
        next_attempt_at: Timestamp::EPOCH,
        last_error: None,
        created_at: Timestamp::now(),
    };
    outbox.insert(&id.to_be_bytes(), encode(&job))?;
    Ok(())
}

impl SledStore {
    /// Ids for `n` new mail jobs (taken before the transaction that queues them).
    pub(crate) fn mail_ids(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        (0..n).map(|_| self.next_id()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job as the code before `Timestamp` wrote it reads as it was, and
    /// is written back in the same shape.
    #[test]
    fn a_stored_job_keeps_its_shape() {
        let stored = r#"{"id":41,"kind":"link","to":"ops@acme.test","account":"acme","request":"40","attempts":2,"next_attempt_unix":1767225602,"last_error":"connection refused","created_at":"2026-01-01T00:00:00Z"}"#;
        let job: MailJob = serde_json::from_str(stored).unwrap();
        assert_eq!(job.account, "acme");
        assert_eq!(job.next_attempt_at, Timestamp::from_unix(1_767_225_602));
        assert_eq!(job.created_at, Timestamp::from_unix(1_767_225_600));
        assert_eq!(serde_json::to_string(&job).unwrap(), stored);
    }
}
