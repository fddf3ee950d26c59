//! The notice every account email gets when someone says an approval was
//! not theirs: what was undone, that requests are frozen, and how to reach
//! the operator.

use super::compose::{address_book, request_details, text_table, MailContext, Rendered};
use crate::html::table;
use crate::store::IpRequest;
use maud::html;

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
    let rows = request_details(r);
    let (book, book_html) = address_book(ctx);
    let text = format!(
        "{summary}\n\n{contact}\n\n{table}\n{book}\n",
        table = text_table(&rows)
    );
    let html = html! {
        p { (summary) }
        p { b { (contact) } }
        (table(&rows))
        (book_html)
    }
    .into_string();
    Rendered {
        subject,
        text,
        html,
    }
}
