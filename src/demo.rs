//! `ipgate demo`: the whole product on one machine with no setup. A temp
//! store, two built-in echo upstreams (`sms`, `waba`), a built-in SMTP
//! catcher whose mails show at `/dev/mailbox`, a seeded account with a main
//! user (password and TOTP printed), and a printed walk: a curl that is
//! denied, the portal request, the emailed link, the same curl allowed.
//! Ctrl-C stops it and removes the temp store.

use anyhow::Context;
use base64::Engine;
use clap::Args;
use ipgate::app::Halves;
use ipgate_config::Config;
use ipgate_control::domain::model::{
    fingerprint, Account, Identity, SecretKey, Source, WhitelistEntry, WhitelistMode,
};
use ipgate_control::domain::users::{self, Role, User};
use ipgate_control::domain::{AccountId, Timestamp};
use ipgate_control::hex;
use ipgate_control::http::admin::AdminToken;
use ipgate_control::seclog::{Actor, LogKey};
use ipgate_control::store::Store;
use ipgate_devmail::Catcher;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

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
    // The dev mailbox shows live links and TOTP codes without a login.
    if config.control.listen.is_some_and(|a| !a.ip().is_loopback()) {
        anyhow::bail!("the demo's portal (with its /dev/mailbox) listens on loopback only; unset IPGATE_CONTROL__LISTEN");
    }
    let catcher = Arc::new(
        Catcher::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("starting the demo's SMTP catcher")?,
    );
    config.smtp.url = format!("smtp://{}", catcher.addr());
    config.smtp.from = "ipgate demo <security@ipgate.demo>".into();
    let password = format!(
        "demo-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 9]>())
    );
    let totp_secret = users::new_totp_secret();
    let waba_token = |who: &str| {
        format!(
            "demo-{who}-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
        )
    };
    let tokens = (waba_token("acme"), waba_token("globex"));
    // The demo's store lives and dies with this process, so its log key
    // is made here and never written down.
    let log_key = LogKey::new(hex::encode(&rand::random::<[u8; 32]>()).as_bytes())
        .context("the demo's security log key")?;
    seed(
        &config,
        &log_key,
        &password,
        &totp_secret,
        (&tokens.0, &tokens.1),
    )?;

    let token_bytes: [u8; 24] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token_bytes);
    let admin_token = AdminToken::new(&token).context("demo token")?;
    print_walk(
        &config,
        &token,
        &password,
        &totp_secret,
        (&tokens.0, &tokens.1),
    );
    let mailbox = crate::mailbox::router(catcher, DEMO_USER, totp_secret);
    let secrets = ipgate::app::Secrets {
        control: Some(ipgate::app::ControlPlaneSecrets {
            admin_token,
            log_key,
            smtp_password: None,
            store_password: None,
        }),
        introspect_token: crate::secrets::introspect_token(&config)?,
        sync_token: crate::secrets::sync_token(&config)?,
    };
    ipgate::app::App::build(config, Halves::Both, secrets, Some(mailbox), false)?.run();
    drop(dir);
    Ok(ExitCode::SUCCESS)
}

/// The seeded main user of `acme`.
const DEMO_USER: &str = "alice";

/// The phone-number ids the demo's accounts own.
const DEMO_PHONE_ACME: &str = "15550001111";
const DEMO_PHONE_GLOBEX: &str = "15550002222";

fn seed(
    config: &Config,
    log_key: &LogKey,
    password: &str,
    totp_secret: &[u8],
    tokens: (&str, &str),
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store =
            Store::open_with_cache(&config.store.path, config.store.cache_mb, log_key.clone())?;
        let account = |id: &str, name: &str, mode| -> anyhow::Result<Account> {
            Ok(Account {
                id: AccountId::parse(id)?,
                name: name.into(),
                emails: vec![format!("ops@{id}.test"), format!("cto@{id}.test")],
                whitelist: mode,
                created_at: Timestamp::now(),
                updated_at: Timestamp::now(),
                approvals_required: 1,
                frozen: false,
            })
        };
        let seed = Actor::system();
        let acme = account("acme", "Acme SMS Ltd", WhitelistMode::Enforce)?;
        store.create_account(acme, &seed).await?;
        let globex = account("globex", "Globex (report-only)", WhitelistMode::Report)?;
        store.create_account(globex, &seed).await?;
        let entry = WhitelistEntry {
            id: String::new(),
            account: AccountId::parse("acme")?,
            cidr: "203.0.113.10/32".parse()?,
            remark: "acme production server".into(),
            tags: vec!["prod".into()],
            source: Source::Admin,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            expires_at: None,
            reminded: 0,
        };
        store.add_entries("acme", vec![entry], &seed).await?;
        // What the upstreams authenticate: the SMS user names, the WhatsApp
        // tokens and the phone-number ids each account owns.
        for (account, value, remark) in [
            ("acme", DEMO_PHONE_ACME, "WhatsApp phone-number id"),
            ("globex", DEMO_PHONE_GLOBEX, "WhatsApp phone-number id"),
        ] {
            let identity = Identity {
                id: String::new(),
                account: AccountId::parse(account)?,
                value: value.into(),
                remark: remark.into(),
                created_at: Timestamp::now(),
            };
            store.add_identity(identity, &seed).await?;
        }
        for (account, token) in [("acme", tokens.0), ("globex", tokens.1)] {
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let key = SecretKey {
                id: String::new(),
                account: AccountId::parse(account)?,
                sha256: hex::encode(&hash),
                fingerprint: fingerprint(&hash),
                remark: "WhatsApp API token".into(),
                created_at: Timestamp::now(),
            };
            store.add_key(key, hash, &seed).await?;
        }
        let user = User {
            username: DEMO_USER.into(),
            account: AccountId::parse("acme")?,
            role: Role::Main,
            password_hash: users::hash_password(password)?,
            totp_secret: Some(totp_secret.to_vec()),
            totp_last_step: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        };
        store.create_user(user, &seed).await?;
        anyhow::Ok(())
    })
}

fn print_walk(
    config: &Config,
    token: &str,
    password: &str,
    totp_secret: &[u8],
    tokens: (&str, &str),
) {
    let (acme_token, globex_token) = tokens;
    let (acme_phone, globex_phone) = (DEMO_PHONE_ACME, DEMO_PHONE_GLOBEX);
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let proxy = addr(config.proxy.listen);
    let admin = addr(config.control.admin_listen);
    let metrics = addr(config.metrics.listen);
    let portal = config.control.public_url.trim_end_matches('/');
    let secret = users::base32(totp_secret);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ipgate".into());
    println!(
        r#"
ipgate demo is running (store in a temp dir, removed on Ctrl-C).

  proxy        http://{proxy}   routes /sms/ and /waba/ to built-in echo upstreams
  portal       {portal}/portal
  dev mailbox  {portal}/dev/mailbox   every mail the demo sent, and the current TOTP code
  admin API    http://{admin}   Bearer token below
  metrics      http://{metrics}/metrics

Seeded: account "acme" (whitelist: enforce, 203.0.113.10 whitelisted; mails go to
        ops@acme.test and cto@acme.test), its main user:
        username {DEMO_USER}
        password {password}
        TOTP secret {secret} (or read the current code at {portal}/dev/mailbox)
        and account "globex" (whitelist: report, nothing whitelisted).
        WhatsApp tokens and phone-number ids: acme {acme_token} / {acme_phone},
        globex {globex_token} / {globex_phone}.

1. Call the SMS API as acme from this machine: denied, 127.0.0.1 is not on acme's list.

curl -s -u acme:any-password http://{proxy}/sms/v1/messages

2. Log in at {portal}/portal as {DEMO_USER} with the password and TOTP code above,
   and request 127.0.0.1 (your current IP is shown on the page): Continue, then
   "Send confirmation email" on the page that shows what goes to whom.

3. Open {portal}/dev/mailbox, click one of the two "Confirm" links, and press
   "Approve & whitelist now". Opening the link alone changes nothing.

4. The same call is now allowed and reaches the echo upstream:

curl -s -u acme:any-password http://{proxy}/sms/v1/messages

The operator can do the same without a request (IPv6 and CIDR too):

IPGATE_ADMIN_TOKEN={token} {exe} admin --url http://{admin} whitelist add acme 127.0.0.2 --remark "my laptop"

The WhatsApp route judges the Bearer token and the phone-number id in the
path; both must belong to one account. acme's token on acme's number: denied
by acme's list (then allowed once you approved 127.0.0.1):

curl -s -H 'Authorization: Bearer {acme_token}' http://{proxy}/waba/v17.0/{acme_phone}/messages

acme's token naming globex's number (globex is report-only, so naming it
would let anything through): refused as ambiguous, whoever's list it is.

curl -s -H 'Authorization: Bearer {acme_token}' http://{proxy}/waba/v17.0/{globex_phone}/messages

Report-only mode lets globex's own calls through and counts them:

curl -s -H 'Authorization: Bearer {globex_token}' http://{proxy}/waba/v17.0/{globex_phone}/messages

Counters: curl -s http://{metrics}/metrics | grep ipgate_
Ctrl-C stops the demo.
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
