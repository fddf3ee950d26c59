//! The notice every account email gets when someone says an approval was
//! not theirs: what was undone, that requests are frozen, and how to reach
//! the operator.

use super::compose::{request_details, summary_mail, MailContext, Rendered};
use crate::store::IpRequest;

/// The notice that `r`'s approval was reported as not theirs.
pub fn disowned_mail(r: &IpRequest, ctx: &MailContext) -> Rendered {
    let (by, from, at) = match &r.disowned {
        Some(d) => (d.email.clone(), d.from.clone(), d.at.to_string()),
        None => Default::default(),
    };
    let subject = format!(
        "Security: an approval of IP whitelist request {} for {} was reported as not theirs",
        r.id, ctx.account_name
    );
    let undone = if r.added.is_empty() {
        "The request was stopped before anything was whitelisted.".to_string()
    } else {
        format!(
            "What it whitelisted ({}) was removed and is refused from now on.",
            r.ips.join(", ")
        )
    };
    let summary = format!(
        "{by} reported from {from} at {at} that an approval of request {} was not theirs. {undone} Self-service whitelist requests for {} are frozen until we have checked with you.",
        r.id, ctx.account_name
    );
    let contact = format!("Contact us: {}", ctx.contact);
    summary_mail(subject, &summary, &request_details(r), &contact, ctx)
}
