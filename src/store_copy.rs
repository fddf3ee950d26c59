//! `ipgate store copy --from sled:PATH --to postgres://...`: moves a store
//! from sled to PostgreSQL. The source is read whole (it must not be in
//! use: sled locks it), the target must be new (no accounts, users or log
//! records), the copy is one transaction, and the target's security log
//! must verify to the source's head and record count before it is called
//! done.

use anyhow::{bail, Context};
use ipgate_config::Config;
use ipgate_control::store::postgres::{PgOptions, PgStore};
use ipgate_control::store::sled::SledStore;
use ipgate_control::store::LogStore;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CopyArgs {
    /// The store to copy: `sled:PATH`.
    #[arg(long)]
    from: String,
    /// The new store: `postgres://user@host:port/db` (password from
    /// IPGATE_STORE_PASSWORD or the config's store.password_file).
    #[arg(long)]
    to: String,
    /// A config whose store.log_key_file and store.password_file to use
    /// (else IPGATE_LOG_KEY and IPGATE_STORE_PASSWORD).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

pub fn run(args: CopyArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::parse("", std::env::vars())?,
    };
    let Some(path) = args.from.strip_prefix("sled:") else {
        if args.from.starts_with("postgres") {
            bail!("copying out of PostgreSQL is not built yet: --from must be sled:PATH");
        }
        bail!("--from must be sled:PATH, not `{}`", args.from);
    };
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL, not `{}`", args.to);
    }
    let key = crate::secrets::log_key(&config)?;
    let password = crate::secrets::store_password(&config)?;
    let source = SledStore::open(std::path::Path::new(path), key.clone())
        .with_context(|| format!("opening the sled store at {path}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let before = source.verify_security_log().await?;
        if !before.ok {
            bail!(
                "the source's security log does not verify (record {:?}: {}); nothing was copied",
                before.broken_at,
                before.reason.unwrap_or_default()
            );
        }
        let dump = source.export()?;
        for (what, n) in dump.counts() {
            eprintln!("read {n} {what}");
        }
        let mut options = PgOptions::new(&args.to, password);
        options.timeout = std::time::Duration::from_secs(300);
        let target = PgStore::open(&options, key).await?;
        let mut last = String::new();
        target
            .import(&dump, &mut |what, done, of| {
                let line = format!("copied {done}/{of} {what}");
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
            })
            .await?;
        let after = target.verify_security_log().await?;
        if !after.ok || after.head != before.head || after.records != before.records {
            bail!(
                "the copy's security log does not match the source's (source: {} records, head {}; copy: {} records, head {}, ok {}): do not use it",
                before.records,
                before.head,
                after.records,
                after.head,
                after.ok
            );
        }
        println!(
            "copied: {} accounts, {} entries, {} log records; the log verifies, head {}",
            dump.accounts.len(),
            dump.entries.len(),
            after.records,
            after.head
        );
        Ok(())
    })
}
