//! The security-log events both backends write, built in one place so a
//! change is recorded alike whichever store records it.

use crate::domain::flow::Status;
use crate::domain::model::{Account, WhitelistEntry};
use crate::limits::refusals::Summary;
use crate::seclog::{Actor, Event};
use crate::store::{IpRequest, LinkView};
use serde_json::json;

/// A request ended (or, for `Pending`, reopened) with `status`.
pub fn request_ended(req: &IpRequest, status: Status) -> Event<'_> {
    let event = match status {
        Status::Cancelled => "request.cancelled",
        Status::Expired => "request.expired",
        Status::Approved => "request.approved",
        Status::Rejected => "request.rejected",
        Status::Pending => "request.pending",
    };
    Event {
        event,
        account: Some(req.account.as_str()),
        details: json!({"request": req.id}),
    }
}

/// A request submitted, its link mailed to `emails`; its `reference`
/// only when it has one.
pub fn request_submitted<'a>(req: &'a IpRequest, emails: &[String]) -> Event<'a> {
    let mut details = json!({
        "request": req.id, "ips": req.ips, "remark": req.remark, "user_agent": req.user_agent,
        "emails": emails, "expires_at": req.expires_at,
    });
    if let (Some(r), Some(map)) = (&req.reference, details.as_object_mut()) {
        map.insert("reference".into(), json!(r));
    }
    Event {
        event: "request.submitted",
        account: Some(req.account.as_str()),
        details,
    }
}

/// An account replaced: what it was and what it is.
pub fn account_changed<'a>(id: &'a str, old: &Account, new: &Account) -> Event<'a> {
    Event {
        event: "account.changed",
        account: Some(id),
        details: json!({
            "before": {"name": old.name, "emails": old.emails, "whitelist": old.whitelist, "approvals_required": old.approvals_required, "frozen": old.frozen},
            "after": {"name": new.name, "emails": new.emails, "whitelist": new.whitelist, "approvals_required": new.approvals_required, "frozen": new.frozen},
        }),
    }
}

/// A link page opened, with what it showed.
pub fn link_opened<'a>(view: &'a LinkView, result: &str, user_agent: &str) -> Event<'a> {
    Event {
        event: "link.opened",
        account: Some(view.request.account.as_str()),
        details: json!({
            "request": view.request.id,
            "result": result,
            "user_agent": user_agent,
        }),
    }
}

/// A refused login (no secrets: the reason only).
pub fn login_failed<'a>(username: &str, account: Option<&'a str>, reason: &str) -> Event<'a> {
    Event {
        event: "login.failed",
        account,
        details: json!({"username": username.chars().take(64).collect::<String>(), "reason": reason}),
    }
}

/// The refused logins of one window counted instead of recorded, by the
/// system, from the last address seen from the source.
pub fn login_failed_summary(s: &Summary) -> (Actor, Event<'_>) {
    let actor = Actor {
        who: "system".into(),
        ip: Some(s.ip),
    };
    let e = Event {
        event: "login.failed_summary",
        account: s.account.as_deref(),
        details: json!({
            "source": s.source,
            "suppressed": s.suppressed,
            "reasons": s.reasons,
            "usernames": s.usernames,
            "window_start": s.window_start,
            "window_secs": s.window_secs,
        }),
    };
    (actor, e)
}

/// A whitelist entry added (from `request`, when a request's approval
/// added it); its end time when it has one.
pub fn entry_added<'a>(e: &'a WhitelistEntry, request: Option<&str>) -> Event<'a> {
    let mut details =
        json!({"entry": e.id, "cidr": e.cidr, "remark": e.remark, "source": e.source});
    if let Some(r) = request {
        details["request"] = json!(r);
    }
    if let Some(at) = e.expires_at {
        details["expires_at"] = json!(at);
    }
    Event {
        event: "whitelist.added",
        account: Some(e.account.as_str()),
        details,
    }
}

/// A time-bound entry ended and left the whitelist.
pub fn entry_expired(e: &WhitelistEntry) -> Event<'_> {
    Event {
        event: "whitelist.expired",
        account: Some(e.account.as_str()),
        details: json!({"entry": e.id, "cidr": e.cidr, "expires_at": e.expires_at}),
    }
}

/// Reminder mails queued for a time-bound entry about to end.
pub fn entry_reminder(e: &WhitelistEntry, emails: usize) -> Event<'_> {
    Event {
        event: "whitelist.expiry_reminder",
        account: Some(e.account.as_str()),
        details: json!({"entry": e.id, "cidr": e.cidr, "expires_at": e.expires_at, "reminder": e.reminded, "emails": emails}),
    }
}
