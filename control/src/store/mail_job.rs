//! What a queued mail is, as every backend's outbox keeps it, and the
//! rules its attempts follow (the backoff, the security-log record).

use crate::domain::{unix_seconds, AccountId, Timestamp};
use crate::seclog::Event;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a mail is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// The review link for one account email.
    Link,
    /// The outcome of a decision.
    Notice,
    /// A time-bound entry ends soon.
    Reminder,
    /// Someone said a request's approval was not theirs.
    Disowned,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Link => "link",
            MailKind::Notice => "notice",
            MailKind::Reminder => "reminder",
            MailKind::Disowned => "disowned",
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
    /// The whitelist entry a reminder is about (`request` is empty then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The approval (from 1) a notice tells of, when the request needs
    /// several and this one was not the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<u8>,
}

impl MailJob {
    /// A job queued now, due at once.
    pub fn queued(
        id: u64,
        kind: MailKind,
        to: &str,
        account: &AccountId,
        request: &str,
    ) -> MailJob {
        MailJob {
            id,
            kind,
            to: to.to_string(),
            account: account.clone(),
            request: request.to_string(),
            attempts: 0,
            next_attempt_at: Timestamp::EPOCH,
            last_error: None,
            created_at: Timestamp::now(),
            entry: None,
            approval: None,
        }
    }

    /// A notice to `to` that approval `approval` of request `request` was
    /// counted, short of the quorum.
    pub fn approval_notice(
        id: u64,
        to: &str,
        account: &AccountId,
        request: &str,
        approval: u8,
    ) -> MailJob {
        MailJob {
            approval: Some(approval),
            ..MailJob::queued(id, MailKind::Notice, to, account, request)
        }
    }

    /// A reminder to `to` that entry `entry` of `account` ends soon.
    pub fn reminder(id: u64, to: &str, account: &AccountId, entry: &str) -> MailJob {
        MailJob {
            entry: Some(entry.to_string()),
            ..MailJob::queued(id, MailKind::Reminder, to, account, "")
        }
    }

    /// The job after this attempt failed with `error`: due again after
    /// the backoff, the error (cut to 300 characters) kept.
    pub fn failed(&self, error: &str) -> MailJob {
        let mut next = self.clone();
        next.next_attempt_at = Timestamp::now().plus_secs(backoff_secs(self.attempts));
        next.last_error = Some(error.chars().take(300).collect());
        next
    }
}

/// Seconds to wait after `attempts` failed tries: 1, 2, 4 ... capped at 60.
pub(crate) fn backoff_secs(attempts: u32) -> u64 {
    1u64.checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u64::MAX)
        .min(60)
}

pub(crate) fn job_event<'a>(
    event: &'a str,
    job: &'a MailJob,
    extra: serde_json::Value,
) -> Event<'a> {
    let mut details =
        json!({"request": job.request, "to": job.to, "kind": job.kind, "attempt": job.attempts});
    if let Some(entry) = &job.entry {
        details["entry"] = json!(entry);
    }
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    Event {
        event,
        account: Some(job.account.as_str()),
        details,
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
