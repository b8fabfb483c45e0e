//! The data folder's disk: free space, checked before the store is opened and before every batch is
//! written, so that a full disk is met by refusing writes (and resuming when space returns) instead
//! of by a write failing halfway inside the index — which poisons it until a restart (see
//! [`crate::sequencer`]).

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        assert_eq!(check_free(dir.path(), 0), Ok(()));
        assert_eq!(check_free(dir.path(), 1), Ok(()));
        let low = check_free(dir.path(), u64::MAX).expect_err("no disk is that large");
        assert!(low.to_string().contains("--min-free-mb"), "{low}");
    }
}
