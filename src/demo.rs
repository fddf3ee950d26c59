//! `ipgate demo`: the whole product on one machine with no setup. A temp
//! store, two built-in echo upstreams (`sms`, `waba`), a seeded account, and
//! a printed walk: a curl that is denied, the admin call that whitelists
//! you, the same curl allowed. Ctrl-C stops it and removes the temp store.

use anyhow::Context;
use base64::Engine;
use clap::Args;
use ipgate_config::Config;
use ipgate_control::admin::AdminToken;
use ipgate_control::model::{now, Account, Source, WhitelistEntry, WhitelistMode};
use ipgate_control::seclog::Actor;
use ipgate_control::store::Store;
use std::net::SocketAddr;
use std::process::ExitCode;

const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

#[derive(Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("ipgate-demo-")
        .tempdir()
        .context("creating the demo's temp dir")?;
    let (sms, waba) = start_echo_upstreams()?;
    let text = DEMO_CONFIG
        .replacen(
            "upstream = \"http://127.0.0.1:1\"",
            &format!("upstream = \"http://{sms}\""),
            1,
        )
        .replacen(
            "upstream = \"http://127.0.0.1:1\"",
            &format!("upstream = \"http://{waba}\""),
            1,
        );
    let mut config = Config::parse(&text, std::env::vars()).context("the built-in demo config")?;
    config.store.path = dir.path().join("store");
    seed(&config)?;

    let token_bytes: [u8; 24] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token_bytes);
    let admin_token = AdminToken::new(&token).context("demo token")?;
    print_walk(&config, &token);
    crate::server::run(config, crate::server::Halves::Both, admin_token, None)?;
    drop(dir);
    Ok(ExitCode::SUCCESS)
}

fn seed(config: &Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open(&config.store.path)?;
        let account = |id: &str, name: &str, mode| Account {
            id: id.into(),
            name: name.into(),
            emails: vec![format!("ops@{id}.test"), format!("cto@{id}.test")],
            whitelist: mode,
            created_at: now(),
            updated_at: now(),
        };
        let seed = Actor::system();
        let acme = account("acme", "Acme SMS Ltd", WhitelistMode::Enforce);
        store.create_account(acme, &seed).await?;
        let globex = account("globex", "Globex (report-only)", WhitelistMode::Report);
        store.create_account(globex, &seed).await?;
        let entry = WhitelistEntry {
            id: String::new(),
            account: "acme".into(),
            cidr: "203.0.113.10/32".into(),
            remark: "acme production server".into(),
            tags: vec!["prod".into()],
            source: Source::Admin,
            created_at: now(),
            updated_at: now(),
        };
        store.add_entries("acme", vec![entry], &seed).await?;
        anyhow::Ok(())
    })
}

fn print_walk(config: &Config, token: &str) {
    let proxy = config
        .proxy
        .listen
        .map(|a| a.to_string())
        .unwrap_or_default();
    let admin = config
        .control
        .admin_listen
        .map(|a| a.to_string())
        .unwrap_or_default();
    let metrics = config
        .metrics
        .listen
        .map(|a| a.to_string())
        .unwrap_or_default();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ipgate".into());
    println!(
        r#"
ipgate demo is running (store in a temp dir, removed on Ctrl-C).

  proxy      http://{proxy}   routes /sms/ and /waba/ to built-in echo upstreams
  admin API  http://{admin}   Bearer token below
  metrics    http://{metrics}/metrics

Seeded: account "acme" (whitelist: enforce, 203.0.113.10 whitelisted),
        account "globex" (whitelist: report, nothing whitelisted).

1. Call the SMS API as acme from this machine: denied, 127.0.0.1 is not on acme's list.

curl -s -u acme:any-password http://{proxy}/sms/v1/messages

2. Whitelist this machine for acme, as the operator:

IPGATE_ADMIN_TOKEN={token} {exe} admin --url http://{admin} whitelist add acme 127.0.0.1 --remark "my laptop"

3. The same call is now allowed and reaches the echo upstream:

curl -s -u acme:any-password http://{proxy}/sms/v1/messages

Also try: report-only mode lets the call through and counts it,

curl -s -H 'X-Account-Id: globex' http://{proxy}/waba/v1/messages

and the counters: curl -s http://{metrics}/metrics | grep ipgate_proxy_requests_total

The self-service portal (request an IP, confirm from email) is not in this
build yet. Ctrl-C stops the demo.
"#
    );
}

/// Starts the two echo upstreams on free loopback ports, in a thread of their own.
fn start_echo_upstreams() -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let sms = std::net::TcpListener::bind("127.0.0.1:0")?;
    let waba = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addrs = (sms.local_addr()?, waba.local_addr()?);
    sms.set_nonblocking(true)?;
    waba.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("demo-echo".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "echo upstreams cannot start"),
            };
            rt.block_on(async move {
                let (Ok(a), Ok(b)) = (
                    tokio::net::TcpListener::from_std(sms),
                    tokio::net::TcpListener::from_std(waba),
                ) else {
                    return tracing::error!("echo upstreams cannot listen");
                };
                let _ = tokio::join!(axum::serve(a, echo("sms")), axum::serve(b, echo("waba")));
            });
        })?;
    Ok(addrs)
}

fn echo(name: &'static str) -> axum::Router {
    axum::Router::new().fallback(move |req: axum::extract::Request| async move {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        axum::Json(serde_json::json!({
            "upstream": name,
            "message": format!("the {name} API got your call"),
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "x_forwarded_for": header("x-forwarded-for"),
        }))
    })
}
