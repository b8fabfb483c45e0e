//! The data folder's disk: free space, checked before the store is opened and before every batch is
//! written, so that a full disk is met by refusing writes (and resuming when space returns) instead
//! of by a write failing halfway inside the store — which sled cannot take back and which leaves
//! only a restart (see [`crate::sequencer`]).
//!
//! Also the clean-up of what an interrupted store start leaves behind: sled writes a snapshot to
//! `snap.<lsn>.generating` and renames it when complete; a start that ran out of space leaves the
//! empty `.generating` file, which sled then refuses to read ("Read corrupted data") on every later
//! start. Such a file is never a complete snapshot, so removing it loses nothing (sled rebuilds the
//! snapshot from its log).

use std::path::{Path, PathBuf};

/// The space the data folder's filesystem offers an unprivileged writer, in bytes.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether the filesystem holding `dir` has at least `min` bytes free. `Err` carries the free
/// bytes when it has not. A `min` of 0 turns the check off.
pub fn check_free(dir: &Path, min: u64) -> Result<(), DiskLow> {
    if min == 0 {
        return Ok(());
    }
    match free_bytes(dir) {
        Ok(free) if free < min => Err(DiskLow { free, min }),
        // A filesystem that cannot say is not refused: the store's own errors still stop the log.
        _ => Ok(()),
    }
}

/// The disk holding the data folder is below the configured free-space floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the disk holding the data folder has {} free, less than the {} it must keep free (--min-free-mb)", mib(*.free), mib(*.min))]
pub struct DiskLow {
    /// Free bytes.
    pub free: u64,
    /// The floor, bytes.
    pub min: u64,
}

fn mib(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{bytes} bytes")
    }
}

/// Removes sled's incomplete snapshots (`snap.*.generating`) from the store folder `db`; returns
/// the files removed.
pub fn remove_incomplete_snapshots(db: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(db) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_and_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        assert_eq!(check_free(dir.path(), 0), Ok(()));
        assert_eq!(check_free(dir.path(), 1), Ok(()));
        let low = check_free(dir.path(), u64::MAX).expect_err("no disk is that large");
        assert!(low.to_string().contains("--min-free-mb"), "{low}");

        std::fs::write(dir.path().join("snap.00000000001.generating"), b"").expect("w");
        std::fs::write(dir.path().join("snap.00000000001"), b"x").expect("w");
        std::fs::write(dir.path().join("db"), b"x").expect("w");
        let removed = remove_incomplete_snapshots(dir.path()).expect("rm");
        assert_eq!(removed.len(), 1);
        assert!(dir.path().join("snap.00000000001").exists());
        assert!(dir.path().join("db").exists());
        assert!(remove_incomplete_snapshots(&dir.path().join("none"))
            .expect("missing folder")
            .is_empty());
    }
}
