//! The `ipgate` command: CLI wiring only. Each subcommand's work lives in
//! the crates (`ipgate-config`, `ipgate-policy`, `ipgate-proxy`,
//! `ipgate-control`) or in the small modules beside this file.

#![forbid(unsafe_code)]

mod admin_cli;
mod admin_client;
mod admin_import;
mod certs;
mod check_network;
mod demo;
mod logging;
mod mailbox;
mod proxy_env;
mod secrets;
mod store_copy;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ipgate_config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: Pingora allocates many small objects
/// per proxied request, and glibc's malloc/free were about a quarter of the
/// proxy's instructions (callgrind; docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ipgate",
    version,
    about = "IP-whitelisting gateway for SMS and WhatsApp Business APIs"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything on one machine with no setup: temp store, echo upstreams, a seeded account.
    Demo(demo::DemoArgs),
    /// Proxy and control plane in one process, sharing one in-memory table.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Control plane only (admin API, metrics).
    Control {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Proxy only, following a control plane's sync feed (no store).
    Proxy {
        #[arg(long, short)]
        config: PathBuf,
        /// Take the listening sockets over from the running proxy: start
        /// this, then send the running one SIGQUIT (docs/operations.md).
        #[arg(long)]
        upgrade: bool,
    },
    /// Config file commands.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Operator client of the admin API.
    Admin(admin_cli::AdminArgs),
    /// Checks every upstream: DNS, TCP, TLS, one HTTP round trip, with timings.
    /// Honours http_proxy/https_proxy/no_proxy; exit 1 when any upstream fails.
    CheckNetwork {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Store commands.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// Development TLS certificates.
    Certs {
        #[command(subcommand)]
        cmd: certs::CertsCmd,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Copies a whole store between sled and PostgreSQL (either way) into
    /// a new one, verifying the security log's chain after the copy.
    Copy(store_copy::CopyArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validates a config: exit 0, or a clear error naming the key.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Config {
            cmd: ConfigCmd::Check { config },
        } => {
            let c = Config::load(&config)?;
            if let (Some(cert), Some(key)) = (&c.proxy.tls_cert, &c.proxy.tls_key) {
                if c.proxy.tls_listen.is_some() {
                    ipgate_proxy::tls::check_pair(cert, key)
                        .context("config key `proxy.tls_cert`/`proxy.tls_key`")?;
                }
            }
            ipgate_control::mail::sender::check(&c.smtp)?;
            println!("{}: ok ({} routes)", config.display(), c.proxy.routes.len());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve { config } => serve(&config, ipgate::app::Halves::Both, false, cli.log_json),
        Cmd::Control { config } => serve(
            &config,
            ipgate::app::Halves::ControlOnly,
            false,
            cli.log_json,
        ),
        Cmd::Proxy { config, upgrade } => serve(
            &config,
            ipgate::app::Halves::ProxyOnly,
            upgrade,
            cli.log_json,
        ),
        Cmd::Admin(args) => admin_cli::run(args),
        Cmd::CheckNetwork { config } => check_network::run(&Config::load(&config)?),
        Cmd::Certs { cmd } => certs::run(cmd),
        Cmd::Store {
            cmd: StoreCmd::Copy(args),
        } => store_copy::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Demo(args) => {
            logging::init(cli.log_json, ipgate_config::LogFormat::Human);
            demo::run(args)
        }
    }
}

fn serve(
    path: &std::path::Path,
    halves: ipgate::app::Halves,
    upgrade: bool,
    log_json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    logging::init(log_json, config.log.format);
    let proxy_only = halves == ipgate::app::Halves::ProxyOnly;
    let control = match proxy_only {
        true => None,
        false => Some(ipgate::app::ControlPlaneSecrets {
            admin_token: secrets::admin_token(&config)?,
            log_key: secrets::log_key(&config)?,
            smtp_password: secrets::smtp_password(&config)?,
            store_password: secrets::store_password(&config)?,
        }),
    };
    let secrets = ipgate::app::Secrets {
        control,
        introspect_token: secrets::introspect_token(&config)?,
        sync_token: secrets::sync_token(&config)?,
    };
    ipgate::app::App::build(config, halves, secrets, None, upgrade)?.run();
    Ok(ExitCode::SUCCESS)
}
