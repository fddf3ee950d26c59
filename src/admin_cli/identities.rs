//! `ipgate admin identity|key ...`: an account's identities and secret
//! keys. A key is read from stdin, never from the command line, and is
//! never printed (the API answers with its fingerprint only).

use crate::admin_client::seg;
use anyhow::Context;
use clap::{ArgGroup, Subcommand};
use serde_json::{json, Value};

/// One admin API call: method, path, body.
pub type Call = (&'static str, String, Option<Value>);

#[derive(Subcommand)]
pub enum IdentityCmd {
    List {
        account: String,
    },
    /// Gives the account a name the upstream knows it by; unique over
    /// every account's ids and identities, case ignored.
    Add {
        account: String,
        value: String,
        #[arg(long, default_value = "")]
        remark: String,
    },
    Remove {
        account: String,
        identity_id: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Lists the keys' ids, fingerprints and remarks.
    List {
        account: String,
    },
    /// Registers a key: read from the first line of stdin (so it stays out
    /// of shell history and `ps`), or given as its SHA-256 in hex.
    #[command(group = ArgGroup::new("given").required(true).multiple(false))]
    Add {
        account: String,
        /// Read the key from the first line of stdin.
        #[arg(long, group = "given")]
        key_stdin: bool,
        /// The key's SHA-256 in hex (either case) instead of the key.
        #[arg(long, group = "given", value_name = "HEX")]
        sha256: Option<String>,
        #[arg(long, default_value = "")]
        remark: String,
    },
    Remove {
        account: String,
        key_id: String,
    },
}

fn path(account: &str, list: &str, id: Option<&str>) -> String {
    let mut p = format!("/admin/v1/accounts/{}/{list}", seg(account));
    if let Some(id) = id {
        p.push('/');
        p.push_str(&seg(id));
    }
    p
}

pub fn identity_call(cmd: &IdentityCmd) -> Call {
    match cmd {
        IdentityCmd::List { account } => ("GET", path(account, "identities", None), None),
        IdentityCmd::Add {
            account,
            value,
            remark,
        } => (
            "POST",
            path(account, "identities", None),
            Some(json!({"value": value, "remark": remark})),
        ),
        IdentityCmd::Remove {
            account,
            identity_id,
        } => (
            "DELETE",
            path(account, "identities", Some(identity_id)),
            None,
        ),
    }
}

pub fn key_call(cmd: &KeyCmd) -> anyhow::Result<Call> {
    Ok(match cmd {
        KeyCmd::List { account } => ("GET", path(account, "keys", None), None),
        KeyCmd::Add {
            account,
            key_stdin: _,
            sha256,
            remark,
        } => {
            let body = match sha256 {
                Some(h) => json!({"sha256": h, "remark": remark}),
                None => json!({"key": key_from_stdin()?, "remark": remark}),
            };
            ("POST", path(account, "keys", None), Some(body))
        }
        KeyCmd::Remove { account, key_id } => ("DELETE", path(account, "keys", Some(key_id)), None),
    })
}

/// A secret key from the first line of stdin, its line ending dropped.
fn key_from_stdin() -> anyhow::Result<String> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .context("reading the key from stdin")?;
    let key = key.trim_end_matches(['\r', '\n']).to_string();
    if key.is_empty() {
        anyhow::bail!(
            "no key on stdin: pipe it in, e.g. `ipgate admin key add ACCOUNT --key-stdin < FILE`"
        );
    }
    Ok(key)
}
