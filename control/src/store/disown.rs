//! "This wasn't me": every approval notice carries its own single-use
//! link. Sending it (a POST, as for decisions) removes what that approval
//! added (or, for an approval short of the quorum, cancels the request),
//! freezes the account's self-service requests until the operator lifts
//! it, and tells every account email. What both backends share: where the
//! link is kept, what is recorded, and which notices offer the link.

use crate::domain::flow::Status;
use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use crate::seclog::Event;
use crate::store::IpRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The key a "this wasn't me" link is kept under beside the review links:
/// the prefix keeps a review lookup from ever finding it.
pub fn link_key(hash: &str) -> String {
    format!("disown:{hash}")
}

/// Who said an approval was not theirs, from where and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disowned {
    pub email: String,
    pub from: String,
    pub at: Timestamp,
}

/// Whether a notice of `r` (telling of `approval`, short of the quorum,
/// or of the outcome) offers a "this wasn't me" link: an approval does,
/// a rejection does not, and nothing once someone has used one.
pub fn offered(r: &IpRequest, approval: Option<u8>) -> bool {
    r.disowned.is_none()
        && match approval {
            Some(_) => r.status == Status::Pending,
            None => r.status == Status::Approved,
        }
}

/// The record of a disowned approval.
pub fn event<'a>(
    r: &'a IpRequest,
    removed: &[WhitelistEntry],
    cancelled: bool,
    user_agent: &str,
) -> Event<'a> {
    let cidrs: Vec<String> = removed.iter().map(|e| e.cidr.to_string()).collect();
    Event {
        event: "request.disowned",
        account: Some(r.account.as_str()),
        details: json!({
            "request": r.id,
            "email": r.disowned.as_ref().map(|d| d.email.as_str()),
            "removed": cidrs,
            "cancelled": cancelled,
            "frozen": true,
            "user_agent": user_agent,
        }),
    }
}

/// The record of an entry removed because its approval was disowned.
pub fn entry_removed<'a>(e: &'a WhitelistEntry, request: &str) -> Event<'a> {
    Event {
        event: "whitelist.removed",
        account: Some(e.account.as_str()),
        details: json!({"entry": e.id, "cidr": e.cidr, "reason": "disowned", "request": request}),
    }
}
