//! `ipgate admin ...`: the operator's shell client of the admin API. It
//! talks to the running server (sled's store is locked by that process).

use crate::admin_client::{seg, AdminClient};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

mod identities;
mod tokens;

#[derive(Args)]
pub struct AdminArgs {
    /// Admin API base URL (default: from --config's control.admin_listen, else http://127.0.0.1:9002).
    #[arg(long, env = "IPGATE_ADMIN_URL")]
    url: Option<String>,
    /// Config file to take the admin address from.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Admin token.
    #[arg(long, env = "IPGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// An account's whitelist entries (IPv4 or IPv6, address or CIDR).
    #[command(subcommand)]
    Whitelist(WhitelistCmd),
    /// An account's identities: names the upstream knows it by (usernames,
    /// API key ids, sender ids, phone-number ids).
    #[command(subcommand)]
    Identity(identities::IdentityCmd),
    /// An account's secret keys, kept by ipgate only as SHA-256 hashes.
    #[command(subcommand)]
    Key(identities::KeyCmd),
    /// The global blocklist.
    #[command(subcommand)]
    Blocklist(BlocklistCmd),
    /// The security log.
    #[command(subcommand)]
    Log(LogCmd),
    /// The proxies following this control plane's sync feed: the version
    /// each holds, whether it is current, and when it last polled.
    Proxies,
    /// Portal users and their 2FA.
    #[command(subcommand)]
    User(UserCmd),
    /// A user's customer API tokens: issue, list, revoke.
    #[command(subcommand)]
    Token(tokens::TokenCmd),
    /// Imports a CSV file (`-` reads stdin), showing progress and a summary
    /// of what was added or refused. Rows by kind: entries
    /// `account,cidr[,remark[,tags]]`, identities `account,value[,remark]`,
    /// keys `account,sha256[,remark]` (hashes only, never keys).
    Import {
        #[arg(long, value_enum, default_value = "entries")]
        kind: crate::admin_import::Kind,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Creates a user; the password is read from the first line of stdin.
    Create {
        account: String,
        username: String,
        /// main or sub
        #[arg(long, default_value = "main")]
        role: String,
    },
    Get {
        username: String,
    },
    /// Enrols (or re-enrols) TOTP: prints the secret and otpauth URI once.
    Totp {
        username: String,
    },
    /// Issues an API token with both scopes and the default lifetime
    /// (`ipgate admin token issue` chooses them).
    Token {
        username: String,
    },
}

#[derive(Subcommand)]
enum LogCmd {
    /// Records, oldest first.
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Walks the hash chain; exit 1 when it is broken.
    Verify,
}

#[derive(Subcommand)]
enum AccountCmd {
    Create {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long = "email")]
        emails: Vec<String>,
        /// off, enforce or report
        #[arg(long, default_value = "off")]
        whitelist: String,
        /// How many different emails must approve a request (default 1).
        #[arg(long)]
        approvals_required: Option<u8>,
    },
    Get {
        id: String,
    },
    List,
    /// Changes name, emails (all at once), whitelist mode, the approvals
    /// needed, or the freeze of self-service requests.
    Set {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "email")]
        emails: Option<Vec<String>>,
        #[arg(long)]
        whitelist: Option<String>,
        #[arg(long)]
        approvals_required: Option<u8>,
        /// `false` lifts a "this wasn't me" freeze; `true` freezes.
        #[arg(long)]
        frozen: Option<bool>,
    },
}

#[derive(Subcommand)]
enum WhitelistCmd {
    List {
        account: String,
    },
    Add {
        account: String,
        cidr: String,
        #[arg(long, default_value = "")]
        remark: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// The entry leaves the whitelist this long from now ("7d", "12h").
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// The entry leaves the whitelist at this time (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    Remove {
        account: String,
        entry_id: String,
    },
}

#[derive(Subcommand)]
enum BlocklistCmd {
    List,
    Add {
        cidr: String,
        #[arg(long, default_value = "")]
        remark: String,
    },
    Remove {
        id: String,
    },
}

fn base_url(args: &AdminArgs) -> anyhow::Result<String> {
    if let Some(u) = &args.url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    if let Some(path) = &args.config {
        let c = ipgate_config::Config::load(path)?;
        if let Some(a) = c.control.admin_listen {
            let host = if a.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                a.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            return Ok(format!("http://{host}:{}", a.port()));
        }
    }
    Ok("http://127.0.0.1:9002".to_string())
}

pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let base = base_url(&args)?;
    let (method, path, body): (&str, String, Option<Value>) = match &args.cmd {
        AdminCmd::Account(AccountCmd::Create {
            id,
            name,
            emails,
            whitelist,
            approvals_required,
        }) => {
            let mut body =
                json!({"id": id, "name": name, "emails": emails, "whitelist": whitelist});
            if let Some(n) = approvals_required {
                body["approvals_required"] = json!(n);
            }
            ("POST", "/admin/v1/accounts".into(), Some(body))
        }
        AdminCmd::Account(AccountCmd::Get { id }) => {
            ("GET", format!("/admin/v1/accounts/{}", seg(id)), None)
        }
        AdminCmd::Account(AccountCmd::List) => ("GET", "/admin/v1/accounts".into(), None),
        AdminCmd::Account(AccountCmd::Set {
            id,
            name,
            emails,
            whitelist,
            approvals_required,
            frozen,
        }) => {
            let mut patch = serde_json::Map::new();
            if let Some(n) = approvals_required {
                patch.insert("approvals_required".into(), json!(n));
            }
            if let Some(f) = frozen {
                patch.insert("frozen".into(), json!(f));
            }
            if let Some(n) = name {
                patch.insert("name".into(), json!(n));
            }
            if let Some(e) = emails {
                patch.insert("emails".into(), json!(e));
            }
            if let Some(w) = whitelist {
                patch.insert("whitelist".into(), json!(w));
            }
            (
                "PATCH",
                format!("/admin/v1/accounts/{}", seg(id)),
                Some(Value::Object(patch)),
            )
        }
        AdminCmd::Whitelist(WhitelistCmd::List { account }) => (
            "GET",
            format!("/admin/v1/accounts/{}/whitelist", seg(account)),
            None,
        ),
        AdminCmd::Whitelist(WhitelistCmd::Add {
            account,
            cidr,
            remark,
            tags,
            expires_in,
            expires_at,
        }) => {
            let mut body = json!({"cidr": cidr, "remark": remark, "tags": tags});
            if let Some(d) = expires_in {
                body["expires_in"] = json!(d);
            }
            if let Some(t) = expires_at {
                body["expires_at"] = json!(t);
            }
            (
                "POST",
                format!("/admin/v1/accounts/{}/whitelist", seg(account)),
                Some(body),
            )
        }
        AdminCmd::Whitelist(WhitelistCmd::Remove { account, entry_id }) => (
            "DELETE",
            format!(
                "/admin/v1/accounts/{}/whitelist/{}",
                seg(account),
                seg(entry_id)
            ),
            None,
        ),
        AdminCmd::Identity(cmd) => identities::identity_call(cmd),
        AdminCmd::Key(cmd) => identities::key_call(cmd)?,
        AdminCmd::Blocklist(BlocklistCmd::List) => ("GET", "/admin/v1/blocklist".into(), None),
        AdminCmd::Blocklist(BlocklistCmd::Add { cidr, remark }) => (
            "POST",
            "/admin/v1/blocklist".into(),
            Some(json!({"cidr": cidr, "remark": remark})),
        ),
        AdminCmd::Log(LogCmd::List { account }) => {
            let q = account
                .as_deref()
                .map(|a| format!("?account={}", seg(a)))
                .unwrap_or_default();
            ("GET", format!("/admin/v1/security-log{q}"), None)
        }
        AdminCmd::Log(LogCmd::Verify) => ("GET", "/admin/v1/security-log/verify".into(), None),
        AdminCmd::Proxies => ("GET", "/admin/v1/proxies".into(), None),
        AdminCmd::User(UserCmd::Create {
            account,
            username,
            role,
        }) => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            (
                "POST",
                format!("/admin/v1/accounts/{}/users", seg(account)),
                Some(json!({"username": username, "password": password, "role": role})),
            )
        }
        AdminCmd::User(UserCmd::Get { username }) => {
            ("GET", format!("/admin/v1/users/{}", seg(username)), None)
        }
        AdminCmd::User(UserCmd::Totp { username }) => (
            "POST",
            format!("/admin/v1/users/{}/totp", seg(username)),
            None,
        ),
        AdminCmd::User(UserCmd::Token { username }) => (
            "POST",
            format!("/admin/v1/users/{}/tokens", seg(username)),
            None,
        ),
        AdminCmd::Token(cmd) => tokens::token_call(cmd),
        AdminCmd::Blocklist(BlocklistCmd::Remove { id }) => {
            ("DELETE", format!("/admin/v1/blocklist/{}", seg(id)), None)
        }
        AdminCmd::Import { kind, file } => {
            return crate::admin_import::run(&AdminClient::new(base, &args.token)?, file, *kind);
        }
    };
    let client = AdminClient::new(base, &args.token)?;
    let (status, text) = client.call(method, &path, body)?;
    let pretty = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    let chain_broken = matches!(args.cmd, AdminCmd::Log(LogCmd::Verify))
        && serde_json::from_str::<Value>(&pretty)
            .ok()
            .and_then(|v| v["ok"].as_bool())
            != Some(true);
    if status.is_success() && !chain_broken {
        println!("{pretty}");
        Ok(ExitCode::SUCCESS)
    } else if status.is_success() {
        println!("{pretty}");
        eprintln!("the security log's hash chain is BROKEN");
        Ok(ExitCode::FAILURE)
    } else {
        eprintln!("admin API answered {status}:\n{pretty}");
        Ok(ExitCode::FAILURE)
    }
}
