//! The snapshot file: the last table a proxy received, saved so that it
//! can serve at once after a restart while its control plane is away
//! (fail static). Saved atomically: written to `<path>.tmp.<pid>` (its
//! own, as an old and a new process both save during a hand-over) and synced,
//! the current file kept as `<path>.prev`, the new one renamed into place
//! and the directory synced, so a crash at any point leaves `<path>` or
//! `<path>.prev` whole. Loaded whole or not at all: a damaged file is
//! refused with the [`SnapshotError`] that says why, and `<path>.prev` is
//! tried next.

use ipgate_policy::snapshot::{Snapshot, SnapshotError, HEADER_LEN, MAX_PAYLOAD};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a saved file could not be used or written.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is refused: {source}")]
    Damaged {
        path: PathBuf,
        source: SnapshotError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SavedError {
    /// The file it is about.
    pub fn path(&self) -> &Path {
        match self {
            SavedError::Read { path, .. }
            | SavedError::Damaged { path, .. }
            | SavedError::Write { path, .. } => path,
        }
    }
}

/// `<path>` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The previous snapshot, kept when a new one is saved.
pub fn prev_path(path: &Path) -> PathBuf {
    sibling(path, ".prev")
}

/// A snapshot loaded from disk, and the file it came from.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub from: PathBuf,
}

/// What [`load`] found: the snapshot it can serve (if any) and every file
/// it refused, with why, for the log.
#[derive(Debug, Default)]
pub struct Found {
    pub loaded: Option<Loaded>,
    pub refused: Vec<SavedError>,
}

/// Reads and checks one file; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Snapshot>, SavedError> {
    let read_err = |source| SavedError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    // Never read more than the largest snapshot and one byte: the decode
    // then refuses the rest as trailing bytes.
    let limit = HEADER_LEN as u64 + MAX_PAYLOAD + 1;
    let mut data = Vec::new();
    file.take(limit).read_to_end(&mut data).map_err(read_err)?;
    Snapshot::decode(&data)
        .map(Some)
        .map_err(|source| SavedError::Damaged {
            path: path.to_path_buf(),
            source,
        })
}

/// The saved snapshot at `path`, else at `<path>.prev`; every file that
/// exists but cannot be used is in `refused`.
pub fn load(path: &Path) -> Found {
    let mut found = Found::default();
    for candidate in [path.to_path_buf(), prev_path(path)] {
        match read(&candidate) {
            Ok(Some(snapshot)) => {
                found.loaded = Some(Loaded {
                    snapshot,
                    from: candidate,
                });
                return found;
            }
            Ok(None) => {}
            Err(e) => found.refused.push(e),
        }
    }
    found
}

/// What becomes of the file at `path` when a new one is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    /// It is whole: it becomes `<path>.prev`.
    Keep,
    /// It was refused (or is missing): it is replaced, and `<path>.prev`,
    /// the last whole one, stays.
    Replace,
}

/// Saves `encoded` (a snapshot's bytes) at `path` atomically, keeping the
/// current file as `<path>.prev` when it is whole.
pub fn save(path: &Path, encoded: &[u8], current: Current) -> Result<(), SavedError> {
    let tmp = tmp_path(path);
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SavedError::Write { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(at(&dir))?;
    {
        let mut f = File::create(&tmp).map_err(at(&tmp))?;
        f.write_all(encoded).map_err(at(&tmp))?;
        f.sync_all().map_err(at(&tmp))?;
    }
    // The current file becomes `.prev` by a hard link, so `path` is never
    // missing: a crash between the two steps leaves both whole.
    let prev = prev_path(path);
    if current == Current::Keep && path.exists() {
        match std::fs::remove_file(&prev) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&prev)(e)),
        }
        if std::fs::hard_link(path, &prev).is_err() {
            // A file system without hard links: copy instead.
            std::fs::copy(path, &prev).map_err(at(&prev))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(at(path))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(at(&dir))?;
    Ok(())
}

/// This process's temp file beside `path`.
fn tmp_path(path: &Path) -> PathBuf {
    sibling(path, &format!(".tmp.{}", std::process::id()))
}

/// Marks the saved file as confirmed current now (a poll found nothing
/// newer), so that after a restart its age says when the proxy last knew
/// it was up to date. Best effort.
pub fn touch(path: &Path) {
    let done = File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Err(e) = done {
        tracing::debug!(path = %path.display(), error = %e, "cannot mark the snapshot file as current");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipgate_policy::snapshot::{Contents, SnapshotAccount};
    use ipgate_policy::Mode;

    pub(crate) fn snapshot(version: u64) -> Snapshot {
        Snapshot::new(Contents {
            version,
            made: 1_700_000_000 + version,
            accounts: vec![SnapshotAccount {
                id: "acme".into(),
                mode: Mode::Enforce,
                nets: vec!["203.0.113.0/24".parse().unwrap()],
                ending: Vec::new(),
            }],
            ..Contents::default()
        })
        .unwrap()
    }

    #[test]
    fn a_save_leaves_a_loadable_file_and_keeps_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/snapshot.bin");
        assert!(load(&path).loaded.is_none());
        save(&path, &snapshot(3).encode(), Current::Keep).unwrap();
        let found = load(&path);
        let loaded = found.loaded.unwrap();
        assert_eq!((loaded.snapshot.version(), &loaded.from), (3, &path));
        assert!(found.refused.is_empty());
        assert!(!prev_path(&path).exists(), "nothing to keep the first time");
        save(&path, &snapshot(4).encode(), Current::Keep).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().version(), 4);
        assert_eq!(read(&prev_path(&path)).unwrap().unwrap().version(), 3);
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_truncated_or_edited_file_is_refused_and_prev_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.bin");
        save(&path, &snapshot(1).encode(), Current::Keep).unwrap();
        save(&path, &snapshot(2).encode(), Current::Keep).unwrap();

        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        let found = load(&path);
        let loaded = found.loaded.unwrap();
        assert_eq!(
            (loaded.snapshot.version(), loaded.from),
            (1, prev_path(&path))
        );
        assert!(
            matches!(&found.refused[..], [SavedError::Damaged { source: SnapshotError::Truncated { .. }, path: p }] if p == &path),
            "{:?}",
            found.refused
        );
        let text = found.refused[0].to_string();
        assert!(
            text.contains("snapshot.bin") && text.contains("truncated"),
            "{text}"
        );

        // One byte of the payload changed: the checksum refuses it.
        let mut edited = whole.clone();
        let last = edited.len() - 2;
        edited[last] ^= 0x01;
        std::fs::write(&path, &edited).unwrap();
        let found = load(&path);
        assert_eq!(found.loaded.unwrap().snapshot.version(), 1);
        assert!(matches!(
            &found.refused[..],
            [SavedError::Damaged {
                source: SnapshotError::Checksum,
                ..
            }]
        ));

        // The next save replaces the damaged file and keeps `.prev`.
        save(&path, &snapshot(3).encode(), Current::Replace).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().version(), 3);
        assert_eq!(read(&prev_path(&path)).unwrap().unwrap().version(), 1);

        // Both damaged: nothing is loaded, both are named.
        std::fs::write(&path, &edited).unwrap();
        std::fs::write(prev_path(&path), b"IPGATE-SNAP").unwrap();
        let found = load(&path);
        assert!(found.loaded.is_none());
        assert_eq!(found.refused.len(), 2);
    }
}
