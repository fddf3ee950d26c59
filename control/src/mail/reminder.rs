//! The reminder every account email gets before a time-bound whitelist
//! entry ends (`control.expiry_reminders`), multipart like the others.

use super::compose::{summary_mail, MailContext, Rendered};
use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use crate::plain_time::time_until;

/// The reminder that `e` ends soon, as of `now`.
pub fn reminder_mail(e: &WhitelistEntry, ctx: &MailContext, now: Timestamp) -> Rendered {
    let at = e.expires_at.unwrap_or(now);
    let when = time_until(at, now);
    let subject = format!(
        "{} leaves the API IP whitelist of {} {when}",
        e.cidr, ctx.account_name
    );
    let summary = format!(
        "{} is whitelisted for {} ({}) until {at}; it leaves the whitelist by itself then, and API calls from it are refused from that moment.",
        e.cidr, ctx.account_name, e.account
    );
    let rows = vec![
        ("Account", e.account.to_string()),
        ("Address", e.cidr.to_string()),
        ("Remark", e.remark.clone()),
        ("Whitelisted since", e.created_at.to_string()),
        ("Ends", format!("{at} ({when})")),
    ];
    let keep = "To keep it, request it again from the portal (an account email approves it as before), or ask us to extend it.";
    summary_mail(subject, &summary, &rows, keep, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Source;

    #[test]
    fn the_reminder_names_the_address_and_when_it_ends() {
        let e = WhitelistEntry {
            id: "7".into(),
            account: "acme".parse().unwrap(),
            cidr: crate::domain::Cidr::parse("203.0.113.10/32").unwrap(),
            remark: "<prod>".into(),
            tags: vec![],
            source: Source::Request,
            created_at: Timestamp::from_unix(1_800_000_000),
            updated_at: Timestamp::from_unix(1_800_000_000),
            expires_at: Some(Timestamp::from_unix(1_800_000_000 + 7 * 86_400)),
            reminded: 1,
        };
        let ctx = MailContext {
            contact: "Call us.",
            account_name: "Acme",
            from_address: "ipgate@acme.test",
        };
        let now = Timestamp::from_unix(1_800_000_000 + 4 * 86_400);
        let m = reminder_mail(&e, &ctx, now);
        assert_eq!(
            m.subject,
            "203.0.113.10/32 leaves the API IP whitelist of Acme in 3 days"
        );
        assert!(m.text.contains("until 2027-01-22T"), "{}", m.text);
        assert!(m.text.contains("ipgate@acme.test"));
        assert!(m.html.contains("&lt;prod&gt;"), "the remark is escaped");
        assert!(!m.html.contains("<prod>"));
    }
}
