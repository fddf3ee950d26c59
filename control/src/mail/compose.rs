//! The mails: one review link per account email, and the outcome notice
//! after a decision. Each is multipart text + HTML; every stored value is
//! escaped in the HTML part (a `maud` template).

use crate::html::table;
use crate::store::IpRequest;
use maud::{html, Markup};

/// A link styled as a button, inline (mail clients drop style sheets).
const BUTTON: &str = "display:inline-block;padding:12px 22px;background:#1a56db;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:bold";

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the mails need besides the request.
pub struct MailContext<'a> {
    pub account_name: &'a str,
    /// The sender's address, for the address-book line.
    pub from_address: &'a str,
    /// How to reach the operator (`control.contact`).
    pub contact: &'a str,
}

/// What a request's mails and link pages show about it.
pub fn request_details(r: &IpRequest) -> Vec<(&'static str, String)> {
    let stays = match r.valid_for_secs {
        Some(s) => format!(
            "{} from approval",
            crate::plain_time::plain_duration(std::time::Duration::from_secs(s))
        ),
        None => "until removed".to_string(),
    };
    vec![
        ("Account", r.account.to_string()),
        ("IP addresses", r.ips.join(", ")),
        (
            "Remark",
            if r.remark.is_empty() {
                "(none)".to_string()
            } else {
                r.remark.clone()
            },
        ),
        ("Whitelisted for", stays),
        ("Requested by", r.requested_by.clone()),
        ("Requested at", r.created_at.to_string()),
        ("Requested from", r.requested_from.clone()),
        ("Browser / client", r.user_agent.clone()),
        ("Link expires", r.expires_at.to_string()),
    ]
    .into_iter()
    .chain(approvals_row(r))
    .collect()
}

/// "1 of 2 (ops@acme.test)", for a request that needs several approvals.
fn approvals_row(r: &IpRequest) -> Option<(&'static str, String)> {
    if r.approvals_required <= 1 {
        return None;
    }
    let by: Vec<&str> = r.approvals.iter().map(|a| a.email.as_str()).collect();
    let list = if by.is_empty() {
        String::new()
    } else {
        format!(": {}", by.join(", "))
    };
    Some((
        "Approvals",
        format!(
            "{} of {} needed{list}",
            r.approvals.len(),
            r.approvals_required
        ),
    ))
}

fn text_table(rows: &[(&str, String)]) -> String {
    rows.iter()
        .map(|(k, v)| format!("  {k:<17} {v}\n"))
        .collect()
}

fn address_book(ctx: &MailContext) -> (String, Markup) {
    let line = format!(
        "To be sure these security mails reach you, add {} to your address book.",
        ctx.from_address
    );
    let html = html! { p style="color:#667" { (line) } };
    (line, html)
}

/// The review mail for one email: its own link.
pub fn link_mail(r: &IpRequest, link: &str, ctx: &MailContext) -> Rendered {
    let subject = format!(
        "Confirm IP whitelist request {} for {}",
        r.id, ctx.account_name
    );
    let rows = request_details(r);
    let (book, book_html) = address_book(ctx);
    let intro = format!(
        "{} asked to add {} to the API IP whitelist of {} ({}).",
        r.requested_by,
        r.ips.join(" and "),
        ctx.account_name,
        r.account
    );
    let text = format!(
        "{intro}\n\n{table}\nReview it and approve or reject it here. This link is yours alone, works once and expires with the request:\n\n{link}\n\nOpening the link changes nothing: the addresses go live only when you press Approve.\nIf you do not know this request, press Reject or ignore this mail; it expires by itself.\n\n{book}\n",
        table = text_table(&rows),
    );
    let html = html! {
        p { (intro) }
        (table(&rows))
        p {
            a href=(link) id="review" style=(BUTTON) { "Review & approve request" }
        }
        p style="color:#667" {
            "This link is yours alone, works once and expires with the request. If the button does not work, copy this address into your browser: "
            (link)
        }
        p {
            "Opening the link changes nothing: the addresses go live only when you press Approve. \
    If you do not know this request, press Reject or ignore this mail; it expires by itself."
        }
        (book_html)
    }
    .into_string();
    Rendered {
        subject,
        text,
        html,
    }
}

/// The notice sent to every account email after a decision, or (with
/// `approval`, counting from 1) after an approval short of the quorum.
pub fn notice_mail(
    r: &IpRequest,
    approval: Option<u8>,
    not_me: Option<&str>,
    ctx: &MailContext,
) -> Rendered {
    let mut m = match approval {
        Some(n) => approval_notice(r, n, ctx),
        None => outcome_notice(r, ctx),
    };
    if let Some(link) = not_me {
        let line = "Was this approval not you or anyone you trust? This link, yours alone and good once, removes what it added and freezes requests for the account until we have checked:";
        m.text = format!("{line}\n\n{link}\n\n{}", m.text);
        let html = html! {
            p {
                "Was this approval not you or anyone you trust? "
                a href=(link) id="not-me" { "This wasn't me" }
                " (this link is yours alone and works once) removes what it added and freezes requests for the account until we have checked."
            }
        }
        .into_string();
        m.html = format!("{html}{}", m.html);
    }
    m
}

fn outcome_notice(r: &IpRequest, ctx: &MailContext) -> Rendered {
    let outcome = r.status.as_str();
    let by = r.decided_by.clone().unwrap_or_default();
    let from = r.decided_from.clone().unwrap_or_default();
    let at = r.decided_at.map(|t| t.to_string()).unwrap_or_default();
    let subject = format!(
        "IP whitelist request {} for {} was {outcome}",
        r.id, ctx.account_name
    );
    let effect = match r.status {
        crate::domain::flow::Status::Approved => format!(
            "{} {} whitelisted and live now.",
            r.ips.join(" and "),
            if r.ips.len() == 1 { "is" } else { "are" }
        ),
        _ => "Nothing was changed.".to_string(),
    };
    let summary = format!(
        "Request {} was {outcome} by {by} from {from} at {at}. {effect}",
        r.id
    );
    let mut rows = request_details(r);
    rows.retain(|(k, _)| *k != "Link expires");
    rows.push(("Decision", outcome.to_string()));
    rows.push(("Decided by", by));
    rows.push(("Decided from", from));
    rows.push(("Decided at", at));
    let closing = "If this was not you or someone you trust, contact us at once.";
    summary_mail(subject, &summary, &rows, closing, ctx)
}

/// A mail of one summary, the rows and a closing line, then the
/// address-book line: the same words as text and as HTML.
pub(crate) fn summary_mail(
    subject: String,
    summary: &str,
    rows: &[(&str, String)],
    closing: &str,
    ctx: &MailContext,
) -> Rendered {
    let (book, book_html) = address_book(ctx);
    let text = format!(
        "{summary}\n\n{table}\n{closing}\n\n{book}\n",
        table = text_table(rows)
    );
    let html = html! {
        p { (summary) }
        (table(rows))
        p { (closing) }
        (book_html)
    }
    .into_string();
    Rendered {
        subject,
        text,
        html,
    }
}

/// The notice of approval `n` of a request that needs more.
fn approval_notice(r: &IpRequest, n: u8, ctx: &MailContext) -> Rendered {
    let a = r.approvals.get(usize::from(n).saturating_sub(1));
    let by = a.map(|a| a.email.clone()).unwrap_or_default();
    let from = a.map(|a| a.from.clone()).unwrap_or_default();
    let at = a.map(|a| a.at.to_string()).unwrap_or_default();
    let need = r.approvals_required;
    let subject = format!(
        "IP whitelist request {} for {}: approval {n} of {need}",
        r.id, ctx.account_name
    );
    let summary = format!(
        "{by} approved request {} from {from} at {at}: approval {n} of the {need} needed. Nothing is whitelisted yet; the addresses go live once {need} different addresses of the account have approved from their own links.",
        r.id
    );
    let warn =
        "If you did not expect this request, reject it from your own link: one Reject ends it.";
    summary_mail(subject, &summary, &request_details(r), warn, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::Status;

    fn request() -> IpRequest {
        IpRequest {
            id: "7".into(),
            account: "acme".parse().unwrap(),
            ips: vec!["203.0.113.10".into()],
            remark: "<b>prod</b>".into(),
            reference: None,
            status: Status::Pending,
            requested_by: "alice".into(),
            requested_from: "198.51.100.7".into(),
            user_agent: "curl/8".into(),
            created_at: "2026-11-24T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-25T10:00:00Z".parse().unwrap(),
            decided_by: None,
            decided_from: None,
            decided_at: None,
            valid_for_secs: None,
            approvals_required: 1,
            approvals: Vec::new(),
            added: Vec::new(),
            disowned: None,
        }
    }

    const CTX: MailContext = MailContext {
        contact: "Call us.",
        account_name: "Acme",
        from_address: "security@example.com",
    };

    #[test]
    fn the_link_mail_carries_the_details_and_its_link() {
        let m = link_mail(&request(), "https://p.example/confirm/abc", &CTX);
        for part in [&m.text, &m.html] {
            for want in [
                "203.0.113.10",
                "alice",
                "198.51.100.7",
                "2026-11-25T10:00:00Z",
                "https://p.example/confirm/abc",
                "security@example.com to your address book",
            ] {
                assert!(part.contains(want), "{want} missing in {part}");
            }
        }
        assert!(m.text.contains("<b>prod</b>"));
        assert!(m.html.contains("&lt;b&gt;prod&lt;/b&gt;"));
        assert!(!m.html.contains("<b>prod"));
    }

    #[test]
    fn the_notice_says_who_decided_from_where_and_when() {
        let mut r = request();
        r.status = Status::Approved;
        r.decided_by = Some("ops@acme.test".into());
        r.decided_from = Some("192.0.2.9".into());
        r.decided_at = Some("2026-11-24T10:05:00Z".parse().unwrap());
        let m = notice_mail(&r, None, None, &CTX);
        assert!(m.subject.contains("approved"));
        assert!(m.text.contains(
            "was approved by ops@acme.test from 192.0.2.9 at 2026-11-24T10:05:00Z. 203.0.113.10 is whitelisted and live now."
        ));
        r.status = Status::Rejected;
        assert!(notice_mail(&r, None, None, &CTX)
            .text
            .contains("Nothing was changed."));
    }
}
