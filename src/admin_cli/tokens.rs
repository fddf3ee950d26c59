//! `ipgate admin token issue|list|revoke`: a user's customer API tokens.
//! The token is printed once, by `issue`; lists show ids, scopes, expiry
//! and fingerprints only.

use super::identities::Call;
use crate::admin_client::seg;
use clap::Subcommand;
use serde_json::{Map, Value};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Issues a token: printed once, only its hash is kept.
    Issue {
        username: String,
        /// What it may do: `read` (GET routes), `request` (submit and
        /// cancel); repeat for both. Default: both.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// How long it works, e.g. `90d`, `12h`, `30m` (at most 366d).
        /// Default: 90d.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// Lists a user's tokens: id, scopes, created, expires, fingerprint.
    List { username: String },
    /// Revokes a token: it stops working at once.
    Revoke { username: String, token_id: String },
}

fn path(username: &str, id: Option<&str>) -> String {
    let mut p = format!("/admin/v1/users/{}/tokens", seg(username));
    if let Some(id) = id {
        p.push('/');
        p.push_str(&seg(id));
    }
    p
}

pub fn token_call(cmd: &TokenCmd) -> Call {
    match cmd {
        TokenCmd::Issue {
            username,
            scopes,
            expires_in,
        } => {
            let mut body = Map::new();
            if !scopes.is_empty() {
                body.insert("scopes".into(), Value::from(scopes.clone()));
            }
            if let Some(e) = expires_in {
                body.insert("expires_in".into(), Value::from(e.clone()));
            }
            ("POST", path(username, None), Some(Value::Object(body)))
        }
        TokenCmd::List { username } => ("GET", path(username, None), None),
        TokenCmd::Revoke { username, token_id } => ("DELETE", path(username, Some(token_id)), None),
    }
}
