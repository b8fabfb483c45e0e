//! The checkpoint lock: the latest checkpoint this log's key signed, kept in a small file *outside*
//! the store it guards (as Sunlight keeps it in its lock backend), so that a store that went
//! backwards — damaged, cut, restored from an old backup, deleted — is refused at start instead of
//! being signed over (SPEC §4: a log never signs two inconsistent checkpoints).
//!
//! The file holds exactly one signed checkpoint note (the log's signature only, no cosignatures).
//! By default it lives beside the key file (`<key file>.checkpoint`): the lock belongs to the key,
//! not to the data folder, so starting an *empty* data folder with the key of a log that already
//! signed is caught too.
//!
//! Writing is crash-safe and conditional: the new note goes to `<lock>.tmp`, is synced, renamed
//! over the lock, and the folder is synced; before that, the file is read back and must still hold
//! what this process wrote (or read) last, so a second process signing with the same key and lock
//! is detected and refused instead of silently interleaving two trees.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the checkpoint lock cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Reading, writing or syncing the file failed.
    #[error("checkpoint lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file changed since this process last wrote it: another process signs with this key.
    #[error(
        "checkpoint lock {path} was changed by someone else since this log-server last wrote it \
         (is another log-server signing with this key?); refusing to sign over it"
    )]
    Changed {
        /// The lock file.
        path: PathBuf,
    },
}

/// The lock file and what this process last wrote to (or read from) it.
#[derive(Debug)]
pub struct CheckpointLock {
    path: PathBuf,
    last: Mutex<Option<Vec<u8>>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The default lock path for a key file: the key's path with `.checkpoint` appended.
pub fn default_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_os_string();
    s.push(".checkpoint");
    PathBuf::from(s)
}

/// Reads the lock file: `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, LockError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

impl CheckpointLock {
    /// The lock at `path`, whose current content (as read at start) is `current`.
    pub fn new(path: PathBuf, current: Option<Vec<u8>>) -> CheckpointLock {
        CheckpointLock {
            path,
            last: Mutex::new(current),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the lock with `note`, crash-safely, if it still holds what this process last
    /// wrote or read. After `Ok`, a crash at any point leaves either the old or the new note.
    pub fn store(&self, note: &[u8]) -> Result<(), LockError> {
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if read(&self.path)? != *last {
            return Err(LockError::Changed {
                path: self.path.clone(),
            });
        }
        if last.as_deref() == Some(note) {
            return Ok(());
        }
        let tmp = {
            let mut s = self.path.as_os_str().to_os_string();
            s.push(".tmp");
            PathBuf::from(s)
        };
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            f.write_all(note).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        sync_parent(&self.path)?;
        *last = Some(note.to_vec());
        Ok(())
    }
}

/// Syncs the folder holding `path`, so a rename into it survives a crash.
fn sync_parent(path: &Path) -> Result<(), LockError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_replaces_and_detects_another_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = default_path(&dir.path().join("log.key"));
        assert!(path.ends_with("log.key.checkpoint"));
        assert_eq!(read(&path).expect("read"), None);
        let lock = CheckpointLock::new(path.clone(), None);
        lock.store(b"one\n").expect("first");
        assert_eq!(read(&path).expect("read"), Some(b"one\n".to_vec()));
        lock.store(b"two\n").expect("second");
        lock.store(b"two\n").expect("same again");
        assert_eq!(read(&path).expect("read"), Some(b"two\n".to_vec()));
        assert!(!dir.path().join("log.key.checkpoint.tmp").exists());

        // Another process (another lock over the same file) writes: the first one refuses.
        let other = CheckpointLock::new(path.clone(), read(&path).expect("read"));
        other.store(b"three\n").expect("other");
        let err = lock.store(b"four\n").expect_err("changed under us");
        assert!(matches!(err, LockError::Changed { .. }), "{err}");
        assert_eq!(read(&path).expect("read"), Some(b"three\n".to_vec()));

        // A lock that was deleted under us is a change too.
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(
            other.store(b"five\n"),
            Err(LockError::Changed { .. })
        ));
    }
}
