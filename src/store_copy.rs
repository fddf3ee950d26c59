//! `ipgate store copy --from sled:PATH --to postgres://...` (and back,
//! `--from postgres://... --to sled:PATH`): moves a store between the
//! backends. The source is read whole (a sled source must not be in use:
//! sled locks it; a PostgreSQL source is read in one snapshot), the target
//! must be new (no accounts, users or log records; a sled target a path
//! that does not exist yet or an empty directory), and the target's
//! security log must verify to the source's head and record count before
//! the copy is called done.

use anyhow::{bail, Context};
use ipgate_config::Config;
use ipgate_control::seclog::Verification;
use ipgate_control::store::dump::Dump;
use ipgate_control::store::postgres::{PgOptions, PgStore};
use ipgate_control::store::sled::SledStore;
use ipgate_control::store::LogStore;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct CopyArgs {
    /// The store to copy: `sled:PATH` or `postgres://user@host:port/db`.
    #[arg(long)]
    from: String,
    /// The new store, of the other kind (a PostgreSQL password comes from
    /// IPGATE_STORE_PASSWORD or the config's store.password_file).
    #[arg(long)]
    to: String,
    /// A config whose store.log_key_file and store.password_file to use
    /// (else IPGATE_LOG_KEY and IPGATE_STORE_PASSWORD).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn is_postgres(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

pub fn run(args: CopyArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::parse("", std::env::vars())?,
    };
    let key = crate::secrets::log_key(&config)?;
    let password = crate::secrets::store_password(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let pg = |url: &str| {
        let mut options = PgOptions::new(url, password.clone());
        options.timeout = std::time::Duration::from_secs(300);
        options
    };
    for url in [&args.from, &args.to]
        .into_iter()
        .filter(|u| is_postgres(u))
    {
        // Refused before anything is read or made.
        pg(url).parsed_url()?;
    }
    match (args.from.strip_prefix("sled:"), args.to.strip_prefix("sled:")) {
        (Some(path), None) if is_postgres(&args.to) => {
            // sled would make an empty store where there is none.
            if !Path::new(path).join("db").is_file() {
                bail!("there is no sled store at {path}");
            }
            let source = SledStore::open(Path::new(path), key.clone())
                .with_context(|| format!("opening the sled store at {path}"))?;
            rt.block_on(async {
                let before = checked(source.verify_security_log().await?)?;
                let dump = source.export()?;
                said_read(&dump);
                let target = PgStore::open(&pg(&args.to), key).await?;
                let mut last = String::new();
                target
                    .import(&dump, &mut |what, done, of| progress(&mut last, what, done, of))
                    .await?;
                same(&dump, &before, target.verify_security_log().await?)
            })
        }
        (None, Some(path)) if is_postgres(&args.from) => {
            let target_dir = Path::new(path);
            if target_dir.exists()
                && std::fs::read_dir(target_dir).map_or(true, |mut d| d.next().is_some())
            {
                bail!("{path} is not empty: copy only into a new sled store (a path that does not exist yet, or an empty directory)");
            }
            rt.block_on(async {
                let source = PgStore::open(&pg(&args.from), key.clone()).await?;
                let before = checked(source.verify_security_log().await?)?;
                let dump = source.export().await?;
                said_read(&dump);
                {
                    let target = SledStore::open(target_dir, key.clone())?;
                    target.import(&dump)?;
                    eprintln!("copied everything into {path}");
                }
                // Opened again, the store builds its indexes from the records.
                let target = SledStore::open(target_dir, key)?;
                same(&dump, &before, target.verify_security_log().await?)
            })
        }
        _ => bail!(
            "copy from sled:PATH to a postgres:// URL, or from a postgres:// URL to sled:PATH (got --from `{}` --to `{}`)",
            args.from,
            args.to
        ),
    }
}

fn checked(v: Verification) -> anyhow::Result<Verification> {
    if !v.ok {
        bail!(
            "the source's security log does not verify (record {:?}: {}); nothing was copied",
            v.broken_at,
            v.reason.unwrap_or_default()
        );
    }
    Ok(v)
}

fn said_read(dump: &Dump) {
    for (what, n) in dump.counts() {
        eprintln!("read {n} {what}");
    }
}

fn progress(last: &mut String, what: &str, done: usize, of: usize) {
    let line = format!("copied {done}/{of} {what}");
    if line != *last {
        eprintln!("{line}");
        *last = line;
    }
}

/// The copy is done only when its log verifies to the source's head.
fn same(dump: &Dump, before: &Verification, after: Verification) -> anyhow::Result<()> {
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
}
