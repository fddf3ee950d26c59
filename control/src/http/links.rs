//! The emailed link's pages, `{public_url}/confirm/{token}`. Opening a link
//! (GET or HEAD) changes nothing but the security log: mail scanners open
//! links. The review page's two buttons POST with a CSRF value bound to the
//! link; the decision is one store transaction and, on approval, the IPs are
//! live in the proxy table before the answer is written.

use crate::domain::flow::Status;
use crate::domain::users::token_hash;
use crate::html::{message, page, respond, table, unavailable};
use crate::http::csrf::{csrf_ok, csrf_value};
use crate::http::extract::Visitor;
use crate::http::state::CustomerState;
use crate::mail::compose::request_details;
use crate::metrics::LinkResult;
use crate::store::{IpRequest, LinkView, StoreError, Verdict};
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

mod quorum;

pub fn routes() -> Router<CustomerState> {
    Router::new().route("/confirm/{token}", get(open).post(decide))
}

/// Tokens are 32 random bytes in unpadded base64url: 43 characters.
pub(crate) fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn classify(view: Option<&LinkView>) -> LinkResult {
    match view.map(|v| v.request.status) {
        None => LinkResult::Invalid,
        Some(Status::Pending) => LinkResult::Opened,
        Some(Status::Approved | Status::Rejected) => LinkResult::Used,
        Some(Status::Expired | Status::Cancelled) => LinkResult::Expired,
    }
}

fn rows(r: &IpRequest) -> Markup {
    table(&request_details(r))
}

fn invalid_page() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        page(
            "Link not valid",
            html! {
                h1 { "This link is not valid" }
                div class="box bad" {
                    p { "Nothing was changed." }
                    p {
                        "Mail programs sometimes cut long links: copy the whole link from the mail into your browser's address bar. \
            If it still fails, the request may be gone: ask for a new request from the portal."
                    }
                }
            },
        ),
    )
}

fn ended_page(r: &IpRequest, this_email: &str) -> Response {
    let by = r.decided_by.as_deref().unwrap_or("");
    let from = r.decided_from.as_deref().unwrap_or("");
    let at = r.decided_at.map(|t| t.to_string()).unwrap_or_default();
    let (title, body) = match r.status {
        Status::Approved | Status::Rejected if by == this_email => (
            "Link already used",
            html! {
                p {
                    "You already " (r.status.as_str()) " this request from " (from) " at " (at)
                    ". This link works once; there is nothing more to do."
                }
            },
        ),
        Status::Approved | Status::Rejected => (
            "Request already decided",
            html! {
                p {
                    "This request was already " (r.status.as_str()) " by " (by) " from " (from)
                    " at " (at) ". Your link no longer works; there is nothing more to do."
                }
            },
        ),
        Status::Cancelled => (
            "Request cancelled",
            html! {
                p {
                    (r.requested_by)
                    " cancelled this request, so its links no longer work. Nothing was whitelisted."
                }
                p { "If the addresses are still needed, submit a new request from the portal." }
            },
        ),
        Status::Expired | Status::Pending => (
            "Link expired",
            html! {
                p {
                    "This request expired at " (r.expires_at.to_string())
                    " and its links no longer work. Nothing was whitelisted."
                }
                p { "If the addresses are still needed, submit a new request from the portal." }
            },
        ),
    };
    respond(
        StatusCode::GONE,
        page(
            title,
            html! {
                h1 { (title) }
                div class="box warn" { (body) }
                (rows(r))
            },
        ),
    )
}

/// A link whose address was taken off the account since it was sent.
fn removed_page(r: &IpRequest) -> Response {
    respond(
        StatusCode::GONE,
        page(
            "Link no longer valid",
            html! {
                h1 { "This link no longer works" }
                div class="box warn" {
                    p {
                        "The address this link was sent to is no longer \
            one of the account's addresses, so its link was withdrawn. Nothing was changed."
                    }
                    p { "Someone whose address is on the account can still decide from their own link." }
                }
                (rows(r))
            },
        ),
    )
}

fn review_page(v: &LinkView, account_name: &str, csrf: &str) -> Response {
    let r = &v.request;
    let body = html! {
        h1 { "Review IP whitelist request " (r.id) }
        p {
            "Someone asked to let these server addresses call the API for " b { (account_name) }
            " (account " (r.account.as_str()) "). This link was sent to " b { (v.link.email) }
            "; nothing changes until you press a button."
        }
        (rows(r))
        (quorum::quorum_box(r))
        form method="post" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label {
                    input type="checkbox" name="confirm" value="yes" id="confirm" required;
                    " I have checked these addresses and decide for " (account_name)
                }
            }
            button type="submit" name="decision" value="approve" id="approve" { (quorum::approve_label(r)) }
            button type="submit" name="decision" value="reject" id="reject" { "Reject request" }
        }
        p class="muted" {
            @if r.approvals_required > 1 {
                "If you do not know this request, reject it: a Reject ends every link of this request."
            } @else {
                "If you do not know this request, reject it. Either decision ends every other link of this request."
            }
        }
    };
    respond(StatusCode::OK, page("Review request", body))
}

pub(crate) fn too_many() -> Response {
    message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "bad",
        "Too many link visits from your address. Wait a minute, then open the link from your mail again.",
    )
}

/// The token from the path; one that is not even UTF-8 is treated as mangled.
pub(crate) fn token_of(path: Result<Path<String>, PathRejection>) -> String {
    path.map(|Path(t)| t).unwrap_or_default()
}

async fn open(
    State(s): State<CustomerState>,
    v: Visitor,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    if !s.link_limit.allow_client(v.ip) {
        return too_many();
    }
    let token = token_of(path);
    let store = &s.publisher.store;
    let hash = token_hash(&token);
    let view = if well_formed(&token) {
        match store.link(&hash).await {
            Ok(view) => view,
            Err(e) => return unavailable(&e),
        }
    } else {
        None
    };
    if view.as_ref().is_some_and(|v| {
        !s.link_limit
            .allow(&format!("account:{}", v.request.account))
    }) {
        return too_many();
    }
    let mut result = classify(view.as_ref());
    // A link whose address left the account counts as ended (`expired`).
    let removed = result == LinkResult::Opened && view.as_ref().is_some_and(|v| !v.address_current);
    if removed {
        result = LinkResult::Expired;
    }
    s.metrics.link(result);
    let Some(view) = view else {
        // Not a link of any request: counted and traced, but anonymous
        // guesses do not grow the security log.
        tracing::warn!(ip = %v.ip, "visit to an unknown or mangled link");
        return invalid_page();
    };
    let logged = if removed {
        "refused: address removed from the account"
    } else {
        result.as_str()
    };
    if let Err(e) = store.link_opened(&view, logged, v.ip, &v.user_agent).await {
        return unavailable(&e);
    }
    if removed {
        return removed_page(&view.request);
    }
    if result != LinkResult::Opened {
        return ended_page(&view.request, &view.link.email);
    }
    if quorum::approved_by(&view.request, &view.link.email) {
        return quorum::counted_page(&view.request, StatusCode::OK, false);
    }
    let name = match store.account(view.request.account.as_str()).await {
        Ok(a) => a.map(|a| a.name).unwrap_or_default(),
        Err(e) => return unavailable(&e),
    };
    review_page(&view, &name, &csrf_value(&s.csrf_key, "confirm", &hash))
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    decision: String,
    /// The review page's box, ticked: a person decided. A mail scanner
    /// that submits the form as it stands sends no `confirm`.
    #[serde(default)]
    confirm: String,
}

async fn decide(
    State(s): State<CustomerState>,
    v: Visitor,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    if !s.link_limit.allow_client(v.ip) {
        return too_many();
    }
    let token = token_of(path);
    if !well_formed(&token) {
        s.metrics.link(LinkResult::Invalid);
        return invalid_page();
    }
    let hash = token_hash(&token);
    let store = &s.publisher.store;
    let form = form.ok().map(|Form(f)| f);
    let csrf_good = form
        .as_ref()
        .is_some_and(|f| csrf_ok(&csrf_value(&s.csrf_key, "confirm", &hash), &f.csrf));
    let decision = match form.as_ref().map(|f| f.decision.as_str()) {
        Some("approve") => Some(Verdict::Approve),
        Some("reject") => Some(Verdict::Reject),
        _ => None,
    };
    let view = match store.link(&hash).await {
        Ok(Some(view)) => view,
        Ok(None) => {
            s.metrics.link(LinkResult::Invalid);
            return invalid_page();
        }
        Err(e) => return unavailable(&e),
    };
    if !s
        .link_limit
        .allow(&format!("account:{}", view.request.account))
    {
        return too_many();
    }
    let classified = classify(Some(&view));
    if classified == LinkResult::Opened && !view.address_current {
        s.metrics.link(LinkResult::Expired);
        if let Err(e) = store
            .link_opened(
                &view,
                "refused: address removed from the account",
                v.ip,
                &v.user_agent,
            )
            .await
        {
            return unavailable(&e);
        }
        return removed_page(&view.request);
    }
    let confirmed = form.as_ref().is_some_and(|f| f.confirm == "yes");
    if csrf_good && decision.is_some() && !confirmed && classified == LinkResult::Opened {
        if let Err(e) = store
            .link_opened(&view, "refused: box not ticked", v.ip, &v.user_agent)
            .await
        {
            return unavailable(&e);
        }
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not decided yet",
            "warn",
            "Nothing was changed. To decide, open the link from your mail again, tick the box saying you have checked the addresses, then press Approve or Reject.",
        );
    }
    let (true, Some(decision)) = (csrf_good, decision) else {
        if let Err(e) = store
            .link_opened(
                &view,
                "refused: bad form or CSRF value",
                v.ip,
                &v.user_agent,
            )
            .await
        {
            return unavailable(&e);
        }
        return message(
            StatusCode::FORBIDDEN,
            "Form not accepted",
            "bad",
            "This form did not come from the link's own page, or it is incomplete. Nothing was changed: open the link from your mail again and press a button there.",
        );
    };
    let decided = s
        .requests()
        .decide(&view, &hash, decision, v.ip, &v.user_agent)
        .await;
    match decided {
        Ok(r) if r.status == Status::Pending => quorum::counted_page(&r, StatusCode::OK, true),
        Ok(r) => {
            let text = match r.status {
                Status::Approved => format!(
                    "{} {} whitelisted for account {} and live now. Every address of the account gets a notice.",
                    r.ips.join(" and "),
                    if r.ips.len() == 1 { "is" } else { "are" },
                    r.account
                ),
                _ => format!(
                    "Request {} was rejected; nothing was changed. Every address of the account gets a notice.",
                    r.id
                ),
            };
            let title = if r.status == Status::Approved {
                "Approved"
            } else {
                "Rejected"
            };
            message(StatusCode::OK, title, "ok", &text)
        }
        Err(StoreError::NotPending { .. }) => match store.link(&hash).await {
            Ok(Some(now)) => {
                s.metrics.link(classify(Some(&now)));
                let mut resp = ended_page(&now.request, "");
                *resp.status_mut() = StatusCode::CONFLICT;
                resp
            }
            Ok(None) => invalid_page(),
            Err(e) => unavailable(&e),
        },
        Err(StoreError::AlreadyApproved { .. }) => {
            quorum::counted_page(&view.request, StatusCode::CONFLICT, false)
        }
        Err(StoreError::NoLink) => invalid_page(),
        Err(StoreError::LinkAddressRemoved) => removed_page(&view.request),
        Err(e) => unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_of_the_issued_shape_are_looked_up() {
        let (token, _) = crate::domain::users::new_api_token();
        assert!(well_formed(&token));
        assert!(!well_formed(&token[..42]));
        assert!(!well_formed(&format!("{}%", &token[..42])));
        assert!(!well_formed(""));
    }
}
