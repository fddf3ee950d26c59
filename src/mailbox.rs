//! `/dev/mailbox`, only in `ipgate demo`: the mails the built-in SMTP
//! catcher received, newest first, with clickable links, and the demo
//! user's current TOTP code so no authenticator app is needed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ipgate_control::html::{page, respond};
use ipgate_devmail::Catcher;
use maud::{html, Markup, PreEscaped};
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

/// The text, escaped, with http(s) URLs turned into links.
fn linkify(text: &str) -> Markup {
    html! {
        @for word in text.split_inclusive(char::is_whitespace) {
            @let trimmed = word.trim_end();
            @if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
                a href=(trimmed) { (trimmed) } (&word[trimmed.len()..])
            } @else {
                (word)
            }
        }
    }
}

async fn show(State(m): State<Mailbox>) -> Response {
    let code = ipgate_control::domain::users::totp_now(
        &m.totp_secret,
        ipgate_control::domain::Timestamp::now().unix(),
    );
    let mut mails = m.catcher.mails();
    mails.reverse();
    let body = html! {
        h1 { "Demo mailbox" }
        p class="muted" {
            "Every mail ipgate sent in this demo (only " code { "ipgate demo" }
            " has this page). Reload to see new ones."
        }
        div class="box ok" {
            "Current TOTP code for " b { (m.user) } ": " b id="totp" { (code) }
            " (changes every 30 s; a code works once)"
        }
        p { a href="/portal" { "Open the portal" } }
        @for mail in &mails {
            div class="box" {
                b { (mail.subject) }
                br;
                span class="muted" {
                    "to " (mail.to.join(", ")) " " (PreEscaped("&middot;")) " from " (mail.header_from)
                }
                pre style="white-space:pre-wrap" {
                    (linkify(mail.text.as_deref().unwrap_or("(no text part)")))
                }
            }
        }
        @if mails.is_empty() {
            p class="muted" { "No mail yet. Submit a request in the portal, then reload this page." }
        }
    };
    respond(StatusCode::OK, page("Demo mailbox", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_clickable_and_the_rest_escaped() {
        assert_eq!(
            linkify("open http://a/confirm/x <b>\n").into_string(),
            "open <a href=\"http://a/confirm/x\">http://a/confirm/x</a> &lt;b&gt;\n"
        );
    }
}
