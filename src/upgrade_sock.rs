//! The Unix socket a graceful upgrade passes the listening sockets over
//! (`proxy.upgrade_sock`). Whoever can bind that path when the old process
//! sends them gets every customer connection, so it must lie in a
//! directory no other user can write to, not in `/tmp`.

use ipgate_config::Config;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why `proxy.upgrade_sock` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeSockError {
    #[error("config key `proxy.upgrade_sock`: {0} is not UTF-8")]
    NotUtf8(PathBuf),
    #[error(
        "config key `proxy.upgrade_sock`: {path} is {len} bytes; a Unix socket path is at most 107"
    )]
    TooLong { path: PathBuf, len: usize },
    #[error("config key `proxy.upgrade_sock`: cannot make its directory {dir}")]
    Dir {
        dir: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("config key `proxy.upgrade_sock`: {dir} is writable by every user, who could take the listening sockets at a hand-over; use a directory only ipgate writes to")]
    WorldWritable { dir: PathBuf },
}

/// Longest `sun_path` Linux takes, without its terminating zero.
const MAX_LEN: usize = 107;

/// The socket's path, checked, as the string Pingora takes.
pub fn checked(config: &Config) -> Result<String, UpgradeSockError> {
    let path = config.upgrade_sock();
    let text = path
        .to_str()
        .ok_or_else(|| UpgradeSockError::NotUtf8(path.clone()))?
        .to_string();
    if text.len() > MAX_LEN {
        return Err(UpgradeSockError::TooLong {
            len: text.len(),
            path,
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    private_dir(&dir)?;
    Ok(text)
}

fn private_dir(dir: &Path) -> Result<(), UpgradeSockError> {
    let failed = |error| UpgradeSockError::Dir {
        dir: dir.to_path_buf(),
        error,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(failed)?;
    }
    let mode = std::fs::metadata(dir).map_err(failed)?.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(UpgradeSockError::WorldWritable {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::parse(toml, std::iter::empty()).unwrap()
    }

    #[test]
    fn the_socket_defaults_to_the_snapshot_directory() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("state/snapshot.bin");
        let c = config(&format!("[sync]\nsnapshot_path = {:?}\n", snap));
        let path = checked(&c).unwrap();
        assert_eq!(Path::new(&path), dir.path().join("state/upgrade.sock"));
        assert!(dir.path().join("state").is_dir(), "its directory is made");
    }

    #[test]
    fn a_directory_every_user_can_write_to_is_refused() {
        let c = config("[proxy]\nupgrade_sock = \"/tmp/ipgate-upgrade.sock\"\n");
        let e = checked(&c).unwrap_err().to_string();
        assert!(
            e.contains("proxy.upgrade_sock") && e.contains("writable by every user"),
            "{e}"
        );
    }

    #[test]
    fn a_path_too_long_for_a_socket_is_refused() {
        let long = format!("/var/lib/{}/upgrade.sock", "x".repeat(120));
        let c = config(&format!("[proxy]\nupgrade_sock = {long:?}\n"));
        let e = checked(&c).unwrap_err().to_string();
        assert!(e.contains("at most 107"), "{e}");
    }
}
