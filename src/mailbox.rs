//! `/dev/mailbox`, only in `ipgate demo`: the mails the built-in SMTP
//! catcher received, newest first, with clickable links, and the demo
//! user's current TOTP code so no authenticator app is needed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ipgate_control::html::{esc, page, respond};
use ipgate_devmail::Catcher;
use std::sync::Arc;

#[derive(Clone)]
struct Mailbox {
    catcher: Arc<Catcher>,
    user: String,
    totp_secret: Vec<u8>,
}

pub fn router(catcher: Arc<Catcher>, user: &str, totp_secret: Vec<u8>) -> axum::Router {
    axum::Router::new()
        .route("/dev/mailbox", get(show))
        .with_state(Mailbox {
            catcher,
            user: user.to_string(),
            totp_secret,
        })
}

/// Escapes text and turns http(s) URLs into links.
fn linkify(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let trimmed = word.trim_end();
            if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
                let rest = &word[trimmed.len()..];
                format!("<a href=\"{u}\">{u}</a>{}", esc(rest), u = esc(trimmed))
            } else {
                esc(word)
            }
        })
        .collect()
}

async fn show(State(m): State<Mailbox>) -> Response {
    let code = ipgate_control::users::totp_now(&m.totp_secret, ipgate_control::model::unix_now());
    let mut mails = m.catcher.mails();
    mails.reverse();
    let list: String = mails
        .iter()
        .map(|mail| {
            format!(
                "<div class=\"box\"><b>{}</b><br><span class=\"muted\">to {} &middot; from {}</span><pre style=\"white-space:pre-wrap\">{}</pre></div>",
                esc(&mail.subject),
                esc(&mail.to.join(", ")),
                esc(&mail.header_from),
                linkify(mail.text.as_deref().unwrap_or("(no text part)")),
            )
        })
        .collect();
    let list = if list.is_empty() {
        "<p class=\"muted\">No mail yet. Submit a request in the portal, then reload this page.</p>"
            .to_string()
    } else {
        list
    };
    let body = format!(
        "<h1>Demo mailbox</h1><p class=\"muted\">Every mail ipgate sent in this demo (only <code>ipgate demo</code> has this page). Reload to see new ones.</p>\
<div class=\"box ok\">Current TOTP code for <b>{user}</b>: <b id=\"totp\">{code}</b> (changes every 30 s; a code works once)</div>\
<p><a href=\"/portal\">Open the portal</a></p>{list}",
        user = esc(&m.user),
    );
    respond(StatusCode::OK, page("Demo mailbox", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_clickable_and_the_rest_escaped() {
        assert_eq!(
            linkify("open http://a/confirm/x <b>\n"),
            "open <a href=\"http://a/confirm/x\">http://a/confirm/x</a> &lt;b&gt;\n"
        );
    }
}
