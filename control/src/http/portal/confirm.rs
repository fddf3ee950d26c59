//! The portal's confirmation step: the request form comes here first.
//! Every check runs, nothing is saved, and the page shows what will be
//! sent and to whom, with the sender's address to add to the address book;
//! its "Send confirmation email" button posts the same fields (and the
//! session's CSRF value) to `/portal/requests`, which saves the request.

use super::{forged, refusal, Portal, RequestForm};
use crate::html::{page, respond, table};
use crate::http::state::CustomerState;
use crate::plain_time::plain_duration;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::html;
use std::time::Duration;

pub(super) async fn confirm(
    State(s): State<CustomerState>,
    p: Portal,
    form: Result<Form<RequestForm>, FormRejection>,
) -> Response {
    let Some(f) = RequestForm::posted(&p, form) else {
        return forged();
    };
    let ips = f.ips();
    let submission = crate::service::requests::Submission {
        ips: &ips,
        remark: &f.remark,
        valid_for: Some(&f.valid_for),
        reference: None,
    };
    let new = match s.requests().check(&p.caller.requester(), &submission).await {
        Ok(n) => n,
        Err(e) => return refusal(&s, &p, e).await,
    };
    let stays = match new.valid_for_secs {
        Some(secs) => format!(
            "{} from approval",
            plain_duration(Duration::from_secs(secs))
        ),
        None => "until removed".to_string(),
    };
    let remark = if new.remark.is_empty() {
        "(none)".to_string()
    } else {
        new.remark.clone()
    };
    let need = match new.approvals_required {
        1 => "one approval, from any of them".to_string(),
        n => format!("{n} approvals, from different addresses"),
    };
    let rows = vec![
        ("IP addresses", new.ips.join(", ")),
        ("Remark", remark),
        ("Whitelisted for", stays),
        ("Confirmation emails to", new.emails.join(", ")),
        ("Needs", need),
        ("Links valid for", plain_duration(s.link_ttl)),
    ];
    let body = html! {
        h1 { "Send confirmation email" }
        p {
            "Nothing is saved yet. When you press the button, every address below gets its own confirmation \
    link; the IPs go live when the request is approved from them."
        }
        (table(&rows))
        div class="box warn" id="address-book" {
            p {
                "So that the mail does not land in spam, add "
                b id="sender" { (s.mail_from) }
                " to the address book of each of these addresses first."
            }
        }
        form method="post" action="/portal/requests" {
            input type="hidden" name="csrf" value=(p.session.csrf);
            input type="hidden" name="ip1" value=(f.ip1.trim());
            input type="hidden" name="ip2" value=(f.ip2.trim());
            input type="hidden" name="remark" value=(f.remark);
            input type="hidden" name="valid_for" value=(f.valid_for);
            button type="submit" id="send" { "Send confirmation email" }
            " "
            a href="/portal" id="back" { "Back, change nothing" }
        }
    };
    respond(StatusCode::OK, page("Send confirmation email", body))
}
