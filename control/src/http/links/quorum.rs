//! The link pages' words for a request that needs several approvals: how
//! many it has, and the page for an address whose approval is counted.

use crate::html::{page, respond, table};
use crate::mail::compose::request_details;
use crate::store::IpRequest;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

/// Whether `email` already approved `r` (short of its quorum).
pub fn approved_by(r: &IpRequest, email: &str) -> bool {
    r.approvals
        .iter()
        .any(|a| a.email.eq_ignore_ascii_case(email))
}

/// The review page's box on the quorum, for a request that needs more
/// than one approval.
pub fn quorum_box(r: &IpRequest) -> Markup {
    if r.approvals_required <= 1 {
        return html! {};
    }
    let have = r.approvals.len();
    let need = usize::from(r.approvals_required);
    html! {
        div class="box warn" id="quorum" {
            p {
                b { (have) " of " (need) " approvals" }
                " so far. The addresses go live once " (need) " different addresses of the account have approved; \
    one Reject from any of them ends the request."
            }
            @if !r.approvals.is_empty() {
                ul {
                    @for a in &r.approvals {
                        li { (a.email) " approved from " (a.from) " at " (a.at.to_string()) }
                    }
                }
            }
        }
    }
}

/// The label of the Approve button: whether this approval is the last.
pub fn approve_label(r: &IpRequest) -> &'static str {
    if r.approvals.len() + 1 >= usize::from(r.approvals_required) {
        "Approve & whitelist now"
    } else {
        "Approve (more approvals needed)"
    }
}

/// The page for an address whose approval is counted and not the last.
pub fn counted_page(r: &IpRequest, status: StatusCode, just_now: bool) -> Response {
    let have = r.approvals.len();
    let need = usize::from(r.approvals_required);
    let left = need.saturating_sub(have);
    let lead = if just_now {
        "Your approval is counted"
    } else {
        "You already approved this request"
    };
    respond(
        status,
        page(
            "Approval counted",
            html! {
                h1 { "Approval counted: " (have) " of " (need) }
                div class="box ok" {
                    p {
                        (lead) ". The addresses go live once " (left) " more "
                        (if left == 1 { "address" } else { "addresses" })
                        " of the account approve from their own links; until then nothing is whitelisted. \
            Every address of the account gets a notice of each approval."
                    }
                }
                (table(&request_details(r)))
            },
        ),
    )
}
