//! The "this wasn't me" link's pages, `{public_url}/not-me/{token}`, sent
//! in every approval notice. Opening it (GET or HEAD) changes nothing and
//! shows what the approval did; its one button POSTs with a CSRF value
//! bound to the link and a ticked box, and undoes the approval (the
//! entries it added leave the proxy table before the answer), freezes
//! the account's self-service requests and tells every account email.

use crate::domain::flow::Status;
use crate::domain::users::token_hash;
use crate::html::{message, page, respond, table, unavailable};
use crate::http::csrf::{csrf_ok, csrf_value};
use crate::http::extract::Visitor;
use crate::http::links::{token_of, too_many, well_formed};
use crate::http::state::CustomerState;
use crate::mail::compose::request_details;
use crate::store::{IpRequest, LinkRecord, StoreError};
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<CustomerState> {
    Router::new().route("/not-me/{token}", get(open).post(report))
}

fn not_valid() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "bad",
        "This link is not valid, or it was already used. Nothing was changed. If you still think an approval was not yours, contact us.",
    )
}

fn what_it_did(r: &IpRequest) -> String {
    match r.status {
        Status::Approved => format!(
            "{} approved this request at {}: {} {} whitelisted for the account.",
            r.decided_by.as_deref().unwrap_or("someone"),
            r.decided_at.map(|t| t.to_string()).unwrap_or_default(),
            r.ips.join(" and "),
            if r.ips.len() == 1 { "is" } else { "are" }
        ),
        Status::Pending => format!(
            "This request has {} of the {} approvals it needs; nothing is whitelisted yet.",
            r.approvals.len(),
            r.approvals_required
        ),
        _ => format!("This request is {} now.", r.status.as_str()),
    }
}

fn review(s: &CustomerState, link: &LinkRecord, r: &IpRequest, csrf: &str) -> Response {
    let body = html! {
        h1 { "Was this approval not you?" }
        div class="box warn" {
            p { (what_it_did(r)) }
            p {
                "If neither you nor anyone you trust approved it, report it here. This removes what the approval \
    added (or stops the request, if it is not live yet) at once, freezes self-service requests for the account \
    until we have checked with you, and tells every address of the account. This link was sent to "
                b { (link.email) } " and works once."
            }
        }
        (table(&request_details(r)))
        form method="post" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label {
                    input type="checkbox" name="confirm" value="yes" id="confirm" required;
                    " This approval was not me or anyone I trust"
                }
            }
            button type="submit" id="not-me" { "This wasn't me: undo it and freeze requests" }
        }
        p class="muted" { "Opening this page changed nothing. Contact us: " (s.contact) }
    };
    respond(StatusCode::OK, page("This wasn't me", body))
}

/// The hash of the path's token, or the page refusing the visit (too
/// many from this client, or a token not of the issued shape).
fn visit(
    s: &CustomerState,
    v: &Visitor,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, Box<Response>> {
    if !s.link_limit.allow_client(v.ip) {
        return Err(Box::new(too_many()));
    }
    let token = token_of(path);
    if !well_formed(&token) {
        return Err(Box::new(not_valid()));
    }
    Ok(token_hash(&token))
}

async fn open(
    State(s): State<CustomerState>,
    v: Visitor,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let hash = match visit(&s, &v, path) {
        Ok(h) => h,
        Err(refused) => return *refused,
    };
    match s.publisher.store.disown_link(&hash).await {
        Ok(Some((link, r))) => {
            if let Some(d) = &r.disowned {
                return already(&s, &d.email);
            }
            review(&s, &link, &r, &csrf_value(&s.csrf_key, "not-me", &hash))
        }
        Ok(None) => not_valid(),
        Err(e) => unavailable(&e),
    }
}

fn already(s: &CustomerState, by: &str) -> Response {
    message(
        StatusCode::CONFLICT,
        "Already reported",
        "warn",
        &format!(
            "{by} already reported this approval as not theirs: what it added was removed and requests are frozen. Contact us: {}",
            s.contact
        ),
    )
}

#[derive(Deserialize)]
struct ReportForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

async fn report(
    State(s): State<CustomerState>,
    v: Visitor,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Response {
    let hash = match visit(&s, &v, path) {
        Ok(h) => h,
        Err(refused) => return *refused,
    };
    let form = form.ok().map(|Form(f)| f);
    let csrf_good = form
        .as_ref()
        .is_some_and(|f| csrf_ok(&csrf_value(&s.csrf_key, "not-me", &hash), &f.csrf));
    if !csrf_good {
        return message(
            StatusCode::FORBIDDEN,
            "Form not accepted",
            "bad",
            "This form did not come from the link's own page. Nothing was changed: open the link from your mail again and use the button there.",
        );
    }
    if form.as_ref().is_none_or(|f| f.confirm != "yes") {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not reported yet",
            "warn",
            "Nothing was changed. To report the approval, open the link again, tick the box, then press the button.",
        );
    }
    match crate::service::disown::report(&s.publisher, &s.mail_wake, &hash, v.ip, &v.user_agent)
        .await
    {
        Ok((r, removed)) => {
            let undone = if removed.is_empty() {
                "Nothing of it was live; the request is stopped.".to_string()
            } else {
                let cidrs: Vec<String> = removed.iter().map(|e| e.cidr.to_string()).collect();
                format!(
                    "Removed from the whitelist, refused from now on: {}.",
                    cidrs.join(", ")
                )
            };
            let body = html! {
                h1 { "Reported: the approval is undone" }
                div class="box ok" {
                    p { (undone) }
                    p {
                        "Self-service whitelist requests for account " (r.account.as_str())
                        " are frozen until we lift it. Every address of the account gets a notice."
                    }
                }
                div class="box warn" id="contact" { p { b { "Contact us: " } (s.contact) } }
            };
            respond(StatusCode::OK, page("Reported", body))
        }
        Err(StoreError::AlreadyDisowned(by)) => already(&s, &by),
        Err(StoreError::NoLink) => not_valid(),
        Err(e) => unavailable(&e),
    }
}
