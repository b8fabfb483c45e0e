//! The spent set of a DP: the nonce of every token redeemed, recorded durably before the answer
//! it paid for is sent, so that no crash (kill -9, power loss after the fsync) makes a spent
//! token spendable again.
//!
//! An append-only file, `<data>/tokens-spent`, of 36-byte records: the token's nonce (32 bytes)
//! and the UTC day of its challenge (big-endian u32). Each redemption appends one record and
//! `fdatasync`s it. At start the file is read back (a torn last record, from a crash mid-write,
//! is ignored: its answer was never sent) and records of days no longer accepted are dropped,
//! rewriting the file (temporary file, fsync, rename), so it holds at most two days of tokens.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file name in the data folder.
pub const FILE_NAME: &str = "tokens-spent";
const RECORD: usize = 36;

/// Errors of the spent set.
#[derive(Debug, thiserror::Error)]
pub enum SpentError {
    /// The file could not be read, written or synced.
    #[error("spent-token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Inner {
    file: File,
    spent: HashSet<[u8; 32]>,
    reserved: HashSet<[u8; 32]>,
}

/// The durable set of spent nonces, with the in-flight reservations of the redemptions under way.
#[derive(Debug)]
pub struct SpentSet {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl SpentSet {
    /// Opens (or creates) `<data>/tokens-spent`, keeping the records of days `>= oldest_day`.
    pub fn open(data: &Path, oldest_day: u32) -> Result<SpentSet, SpentError> {
        let path = data.join(FILE_NAME);
        let io = |source| SpentError::Io {
            path: path.clone(),
            source,
        };
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut kept: HashMap<[u8; 32], u32> = HashMap::new();
        let mut dropped = bytes.len() % RECORD != 0;
        for rec in bytes.chunks_exact(RECORD) {
            let mut nonce = [0u8; 32];
            nonce.copy_from_slice(&rec[..32]);
            let mut day = [0u8; 4];
            day.copy_from_slice(&rec[32..]);
            let day = u32::from_be_bytes(day);
            if day >= oldest_day {
                kept.insert(nonce, day);
            } else {
                dropped = true;
            }
        }
        if dropped {
            // Rewrite without the expired (or torn) records: temporary file, fsync, rename.
            let tmp = data.join(format!("{FILE_NAME}.tmp"));
            let mut out = Vec::with_capacity(kept.len() * RECORD);
            for (nonce, day) in &kept {
                out.extend_from_slice(nonce);
                out.extend_from_slice(&day.to_be_bytes());
            }
            let write = || -> std::io::Result<()> {
                let mut f = File::create(&tmp)?;
                f.write_all(&out)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                File::open(data)?.sync_all()
            };
            write().map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(SpentSet {
            path: path.clone(),
            inner: Mutex::new(Inner {
                file,
                spent: kept.into_keys().collect(),
                reserved: HashSet::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `nonce` for a redemption under way: false if it is spent or being spent.
    pub fn reserve(&self, nonce: &[u8; 32]) -> bool {
        let mut g = self.lock();
        if g.spent.contains(nonce) || g.reserved.contains(nonce) {
            return false;
        }
        g.reserved.insert(*nonce);
        true
    }

    /// Drops a reservation (the token did not verify: its nonce is not burnt).
    pub fn release(&self, nonce: &[u8; 32]) {
        self.lock().reserved.remove(nonce);
    }

    /// Records `nonce` (of a token of `day`) as spent, durably: appended and fdatasync'ed before
    /// this returns. On an error the nonce stays reserved (not spendable in this process) and
    /// the lookup must not be answered.
    pub fn commit(&self, nonce: &[u8; 32], day: u32) -> Result<(), SpentError> {
        let mut rec = [0u8; RECORD];
        rec[..32].copy_from_slice(nonce);
        rec[32..].copy_from_slice(&day.to_be_bytes());
        let mut g = self.lock();
        let written = g.file.write_all(&rec).and_then(|()| g.file.sync_data());
        written.map_err(|source| SpentError::Io {
            path: self.path.clone(),
            source,
        })?;
        g.reserved.remove(nonce);
        g.spent.insert(*nonce);
        Ok(())
    }

    /// Whether `nonce` is recorded as spent.
    pub fn is_spent(&self, nonce: &[u8; 32]) -> bool {
        self.lock().spent.contains(nonce)
    }

    /// How many nonces are recorded.
    pub fn len(&self) -> usize {
        self.lock().spent.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_survives_reopen_expired_days_and_torn_records_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SpentSet::open(dir.path(), 10).expect("open");
        assert!(s.reserve(&[1; 32]));
        assert!(
            !s.reserve(&[1; 32]),
            "a reservation blocks a concurrent spend"
        );
        s.commit(&[1; 32], 10).expect("commit");
        assert!(s.reserve(&[2; 32]));
        s.commit(&[2; 32], 11).expect("commit");
        assert!(s.reserve(&[3; 32]));
        s.release(&[3; 32]);
        assert!(s.reserve(&[3; 32]), "a released nonce is not burnt");
        drop(s);
        // A torn record at the end.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .expect("open");
        f.write_all(&[9; 20]).expect("write");
        drop(f);
        let s = SpentSet::open(dir.path(), 10).expect("reopen");
        assert!(s.is_spent(&[1; 32]) && s.is_spent(&[2; 32]) && !s.is_spent(&[3; 32]));
        assert!(!s.reserve(&[1; 32]));
        drop(s);
        let s = SpentSet::open(dir.path(), 11).expect("reopen later");
        assert_eq!(s.len(), 1);
        assert!(s.is_spent(&[2; 32]));
        let len = std::fs::metadata(dir.path().join(FILE_NAME))
            .expect("meta")
            .len();
        assert_eq!(len, RECORD as u64);
    }
}
