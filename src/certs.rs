//! `ipgate certs dev`: a self-signed certificate for local TLS testing.
//! The key is written with mode 0600 and is never meant to be committed.

use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CertsCmd {
    /// Writes server.crt and server.key (self-signed, for localhost) into --out.
    Dev {
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Names and addresses the certificate is for.
        #[arg(long = "name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        names: Vec<String>,
    },
}

pub fn run(cmd: CertsCmd) -> anyhow::Result<std::process::ExitCode> {
    let CertsCmd::Dev { out, names } = cmd;
    let key =
        rcgen::generate_simple_self_signed(names.clone()).context("generating the certificate")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let crt_path = out.join("server.crt");
    let key_path = out.join("server.key");
    std::fs::write(&crt_path, key.cert.pem())
        .with_context(|| format!("writing {}", crt_path.display()))?;
    write_private(&key_path, key.signing_key.serialize_pem().as_bytes())?;
    println!(
        "wrote {} and {} for {}",
        crt_path.display(),
        key_path.display(),
        names.join(", ")
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn write_private(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}
