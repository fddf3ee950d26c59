//! Approval quorum: a request of an account that needs several approvals
//! (`approvals_required`) goes live when that many different account
//! emails approved it; each approval before the last is counted on the
//! request, with its own security-log record and notice. One Reject ends
//! the request whatever was approved. Both backends decide through here,
//! inside their transaction.

use crate::domain::Timestamp;
use crate::seclog::Event;
use crate::store::{IpRequest, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One approval of a request that needs several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub email: String,
    pub from: String,
    pub at: Timestamp,
    pub user_agent: String,
}

/// Where an approval leaves its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Counted: this many approvals so far, fewer than needed.
    Counted(u8),
    /// Enough: the request is approved now.
    Enough,
}

/// Counts `email`'s approval of pending request `r`. An email approves a
/// request once (it may hold two links of it, when a mail went twice).
pub fn approve(
    r: &mut IpRequest,
    email: &str,
    from: &str,
    at: Timestamp,
    user_agent: &str,
) -> Result<Step, StoreError> {
    if r.approvals_required <= 1 {
        return Ok(Step::Enough);
    }
    if r.approvals
        .iter()
        .any(|a| a.email.eq_ignore_ascii_case(email))
    {
        return Err(StoreError::AlreadyApproved {
            id: r.id.clone(),
            have: r.approvals.len(),
            need: r.approvals_required,
        });
    }
    r.approvals.push(Approval {
        email: email.to_string(),
        from: from.to_string(),
        at,
        user_agent: user_agent.chars().take(200).collect(),
    });
    let have = u8::try_from(r.approvals.len()).unwrap_or(u8::MAX);
    if have >= r.approvals_required {
        Ok(Step::Enough)
    } else {
        Ok(Step::Counted(have))
    }
}

/// The record of an approval counted short of the quorum.
pub fn counted<'a>(r: &'a IpRequest, email: &str, user_agent: &str, have: u8) -> Event<'a> {
    Event {
        event: "link.approved",
        account: Some(r.account.as_str()),
        details: json!({
            "request": r.id,
            "email": email,
            "user_agent": user_agent,
            "approval": have,
            "of": r.approvals_required,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRequest;

    fn request(required: u8) -> IpRequest {
        let new = NewRequest {
            approvals_required: required,
            ..crate::store::tests::new_request(&["203.0.113.10"], &[])
        };
        IpRequest::new("1".into(), &new, Timestamp::from_unix(1_800_000_000))
    }

    #[test]
    fn the_quorum_counts_different_emails_once_each() {
        let at = Timestamp::from_unix(1_800_000_100);
        let mut r = request(2);
        assert_eq!(
            approve(&mut r, "ops@acme.test", "192.0.2.9", at, "ua").unwrap(),
            Step::Counted(1)
        );
        assert!(matches!(
            approve(&mut r, "OPS@acme.test", "192.0.2.9", at, "ua"),
            Err(StoreError::AlreadyApproved {
                have: 1,
                need: 2,
                ..
            })
        ));
        assert_eq!(r.approvals.len(), 1, "a refused approval is not counted");
        assert_eq!(
            approve(&mut r, "cto@acme.test", "192.0.2.8", at, "ua").unwrap(),
            Step::Enough
        );
        assert_eq!(r.approvals.len(), 2);
    }

    #[test]
    fn one_approval_is_enough_by_default_and_not_listed() {
        let mut r = request(1);
        let at = Timestamp::from_unix(1_800_000_100);
        assert_eq!(
            approve(&mut r, "ops@acme.test", "192.0.2.9", at, "ua").unwrap(),
            Step::Enough
        );
        assert!(r.approvals.is_empty());
    }
}
