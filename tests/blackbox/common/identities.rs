//! What the identity tests share: a gate with a key-judged route and two
//! accounts, the keys they register (with their SHA-256, worked out
//! beforehand), and the admin CLI with stdin. Used by the
//! `identities` and `identities_cli` modules.

#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::process::{Command, Output, Stdio};

/// A secret key; never to be seen again once registered.
pub const KEY: &str = "live_key_acme_7f3a9c21e4";
/// sha256(KEY)
pub const KEY_SHA256: &str = "de46da41af5cafcd561d04469dc528c451c77eb59c1c0591471de1274b1baa2c";
/// sha256("second-key-for-acme")
pub const SECOND_SHA256: &str = "7be0afce2b52f3428219088d1fc3f7635427806246fcd91ff7ef5249b78309fa";
/// sha256("globex-import-key-1"), sha256("globex-import-key-2")
pub const IMPORT_SHA256: [&str; 2] = [
    "0b5b5d7468e0b546c9b6c28300282653d9fc0e1b5876b5cf0de5306367ec626c",
    "aa57e06889eb8a09e9e7ddefa6f64b0990c99c94425683a66be14afe62918a12",
];

/// A gate with a route judged by `Authorization: Bearer KEY` alone; acme
/// (enforce) whitelists the tests' 127.0.0.1, globex (enforce) nothing.
pub fn gate(up: &Upstream) -> Server {
    let route = format!(
        "[[proxy.route]]\nname = \"keyed\"\npath_prefix = \"/keyed/\"\nupstream = \"http://{}\"\naccount_from = [\"key:bearer\"]\n",
        up.addr
    );
    let opts = ServerOpts {
        extra: route,
        ..ServerOpts::default()
    };
    let gate = Server::start(up, opts);
    gate.account("acme", "enforce", &["127.0.0.1"]);
    gate.account("globex", "enforce", &[]);
    gate
}

pub fn error(v: &Value) -> (&str, &str) {
    let e = &v["errors"][0];
    (
        e["field"].as_str().unwrap_or(""),
        e["message"].as_str().unwrap_or(""),
    )
}

/// `ipgate admin ARGS` with `stdin`.
pub fn cli(gate: &Server, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .args(["admin", "--url", &format!("http://{}", gate.admin)])
        .args(args)
        .env("IPGATE_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut input) = child.stdin.take() {
        use std::io::Write;
        input.write_all(stdin.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn values(gate: &Server, account: &str) -> Vec<String> {
    let (s, list) = gate.admin(
        "GET",
        &format!("/admin/v1/accounts/{account}/identities"),
        None,
    );
    assert_eq!(s, 200, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    list.iter()
        .filter_map(|i| i["value"].as_str().map(str::to_string))
        .collect()
}
