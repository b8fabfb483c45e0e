//! Crash-safe state in sled: per log the progress (verified checkpoint, compact frontier, the
//! checkpoint being caught up to), the enrollments, and the journals of the rule state (see
//! [`crate::rulestate`]) and of the rebuilt map (see [`crate::mapstate`]), whose snapshots are
//! files beside the database; and the alerts, pending and delivered.
//!
//! Every change of one catch-up step is one atomic `sled::Batch` followed by a flush: progress,
//! state and the alerts it raised are recorded together *before* any alert is delivered. A crash
//! before the flush repeats the step (it raises the same alerts, with the same ids, and the ids
//! already recorded are not raised twice); a crash after it finds the alerts pending and delivers
//! them. Each delivery is marked per sink as soon as it succeeds, so a restart repeats none that a
//! sink acknowledged (the file sink even truncates what it wrote without a mark: exactly once).

use sha2::Digest as _;
use std::path::Path;

use ledger_core::entry::Role;
use ledger_core::key::VerifierKey;
use serde::{Deserialize, Serialize};

use crate::alert::Identified;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("state database: {0}")]
    Db(#[from] sled::Error),
    /// A stored value does not decode (written by another version, or damaged).
    #[error("state database: damaged record {key}: {reason}")]
    Damaged {
        /// The key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
}

/// The progress of one log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The size of the newest checkpoint whose root the downloaded entries reproduced.
    pub verified_size: u64,
    /// That checkpoint's note (empty before the first).
    pub verified_checkpoint: String,
    /// The leaves hashed so far.
    pub frontier_size: u64,
    /// The compact frontier of those leaves (base64 hashes, largest subtree first).
    pub frontier: Vec<String>,
    /// The checkpoint being caught up to, when the last step stopped before reaching it.
    pub target_checkpoint: Option<String>,
    /// When a checkpoint different from the previous one was last seen (Unix seconds).
    pub last_new_checkpoint: u64,
    /// SHA-256 (hex) of the last checkpoint note seen.
    pub last_checkpoint_sha256: String,
    /// Set when the log misbehaved in a way that stops verification (root mismatch, fork).
    pub halted: Option<String>,
    /// Entries verified, over all runs.
    pub entries_verified: u64,
    /// Whether the map state (journal and snapshot) covers every leaf hashed: set when the first
    /// leaf is hashed by a monitor that rebuilds the map. A state that hashed leaves without it
    /// (written before the map existed) cannot check map leaves and is refused.
    #[serde(default)]
    pub map_rebuilt: bool,
    /// The index of the last log-signed map leaf verified, if any: a verified checkpoint of size
    /// `n > 0` must end in one (at `n − 1`).
    #[serde(default)]
    pub last_map_leaf: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct EnrollRec {
    role: Role,
    key: VerifierKey,
}

/// Everything one catch-up step changes, applied atomically by [`Store::commit`].
#[derive(Debug, Default)]
pub struct Commit {
    /// The log's new progress.
    pub progress: Option<(String, Progress)>,
    /// New enrollments: (log, index, role, key).
    pub enrolls: Vec<(String, u64, Role, VerifierKey)>,
    /// The rule-state journal record of the step: (log, position after the step, operations).
    pub journal: Option<(String, u64, Vec<u8>)>,
    /// The map journal record of the step: (log, position after the step, additions).
    pub map_journal: Option<(String, u64, Vec<u8>)>,
    /// New alerts (already checked not to be known).
    pub alerts: Vec<Identified>,
}

/// Which of a log's two journals: the rule state's or the rebuilt map's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// The rule state's operations ([`crate::rulestate`]).
    Rules,
    /// The map's additions ([`crate::mapstate`]).
    Map,
}

impl Journal {
    fn tag(self) -> &'static [u8] {
        match self {
            Journal::Rules => b"rj",
            Journal::Map => b"mj",
        }
    }
}

/// The state database.
pub struct Store {
    db: sled::Db,
    dir: std::path::PathBuf,
}

const SEQ_KEY: &[u8] = b"A\0seq";

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

fn decode<T: for<'de> Deserialize<'de>>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Damaged {
        key: String::from_utf8_lossy(k).replace('\0', "/"),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Our records are plain structs of strings, numbers and maps with string keys.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the state in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            // Flushed explicitly after every atomic step; a bounded cache keeps RSS small.
            .flush_every_ms(None)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        Ok(Store {
            db,
            dir: dir.to_path_buf(),
        })
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(k)? {
            None => Ok(None),
            Some(v) => decode(k, &v).map(Some),
        }
    }

    /// The progress of `log`.
    pub fn progress(&self, log: &str) -> Result<Option<Progress>, StoreError> {
        self.get(&key(&[b"L", log.as_bytes(), b"progress"]))
    }

    /// The enrollments of `log`, in index order.
    pub fn enrollments(&self, log: &str) -> Result<Vec<(u64, Role, VerifierKey)>, StoreError> {
        let prefix = key(&[b"L", log.as_bytes(), b"enroll", b""]);
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            let idx = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Damaged {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "bad enrollment key".into(),
                })?;
            let rec: EnrollRec = decode(&k, &v)?;
            out.push((idx, rec.role, rec.key));
        }
        Ok(out)
    }

    fn snapshot_path(&self, folder: &str, log: &str) -> std::path::PathBuf {
        let name: String = sha2::Sha256::digest(log.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(folder).join(format!("{name}.snap"))
    }

    /// Where the rule-state snapshot of `log` lives.
    pub fn rules_snapshot_path(&self, log: &str) -> std::path::PathBuf {
        self.snapshot_path("rules", log)
    }

    /// Where the map snapshot of `log` lives.
    pub fn map_snapshot_path(&self, log: &str) -> std::path::PathBuf {
        self.snapshot_path("map", log)
    }

    /// The records of `log`'s journal `which` after position `after`, in order.
    pub fn journal(
        &self,
        log: &str,
        which: Journal,
        after: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = key(&[b"L", log.as_bytes(), which.tag(), b""]);
        let mut start = prefix.clone();
        start.extend_from_slice(&after.saturating_add(1).to_be_bytes());
        let mut out = Vec::new();
        for item in self.db.range(start..) {
            let (k, v) = item?;
            let Some(pos) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let pos = <[u8; 8]>::try_from(pos)
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Damaged {
                    key: String::from_utf8_lossy(&k).replace('\0', "/"),
                    reason: "bad journal key".into(),
                })?;
            out.push((pos, v.to_vec()));
        }
        Ok(out)
    }

    /// Removes the records of `log`'s journal `which` up to and including `upto` (a snapshot
    /// covers them).
    pub fn prune_journal(&self, log: &str, which: Journal, upto: u64) -> Result<(), StoreError> {
        let prefix = key(&[b"L", log.as_bytes(), which.tag(), b""]);
        let mut end = prefix.clone();
        end.extend_from_slice(&upto.to_be_bytes());
        let mut batch = sled::Batch::default();
        for item in self.db.range(prefix.clone()..=end) {
            let (k, _) = item?;
            batch.remove(k);
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Whether an alert with this id was ever recorded (pending or delivered).
    pub fn alert_known(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.db.contains_key(key(&[b"A", b"id", id.as_bytes()]))?)
    }

    /// Applies `c` atomically and makes it durable.
    pub fn commit(&self, c: Commit) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        if let Some((log, p)) = &c.progress {
            batch.insert(key(&[b"L", log.as_bytes(), b"progress"]), encode(p));
        }
        for (log, index, role, vkey) in &c.enrolls {
            batch.insert(
                key(&[b"L", log.as_bytes(), b"enroll", &index.to_be_bytes()]),
                encode(&EnrollRec {
                    role: *role,
                    key: vkey.clone(),
                }),
            );
        }
        for (which, record) in [(Journal::Rules, &c.journal), (Journal::Map, &c.map_journal)] {
            if let Some((log, pos, bytes)) = record {
                batch.insert(
                    key(&[b"L", log.as_bytes(), which.tag(), &pos.to_be_bytes()]),
                    bytes.as_slice(),
                );
            }
        }
        if !c.alerts.is_empty() {
            let mut seq = self
                .db
                .get(SEQ_KEY)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            for a in &c.alerts {
                seq += 1;
                batch.insert(key(&[b"A", b"p", &seq.to_be_bytes()]), encode(a));
                batch.insert(key(&[b"A", b"id", a.id.as_bytes()]), b"pending".to_vec());
            }
            batch.insert(SEQ_KEY, seq.to_be_bytes().to_vec());
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The pending alerts, oldest first, with their sequence keys.
    pub fn pending(&self) -> Result<Vec<(Vec<u8>, Identified)>, StoreError> {
        let prefix = key(&[b"A", b"p", b""]);
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            out.push((k.to_vec(), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// Whether sink `sink` acknowledged alert `id`.
    pub fn sink_delivered(&self, sink: usize, id: &str) -> Result<bool, StoreError> {
        Ok(self.db.contains_key(key(&[
            b"A",
            b"s",
            sink.to_string().as_bytes(),
            id.as_bytes(),
        ]))?)
    }

    /// Records that sink `sink` acknowledged alert `id` (and, for a file sink, the file's new
    /// length), durably.
    pub fn mark_sink(
        &self,
        sink: usize,
        id: &str,
        file_len: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let n = sink.to_string();
        batch.insert(
            key(&[b"A", b"s", n.as_bytes(), id.as_bytes()]),
            b"".to_vec(),
        );
        if let Some(len) = file_len {
            batch.insert(key(&[b"F", n.as_bytes()]), len.to_be_bytes().to_vec());
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Records that every sink acknowledged the pending alert at `seq_key` (and, when the last
    /// one was a file sink, `(sink, the file's new length)`), in one durable write.
    pub fn mark_done(
        &self,
        seq_key: &[u8],
        id: &str,
        sinks: usize,
        file_len: Option<(usize, u64)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        if let Some((n, len)) = file_len {
            batch.insert(
                key(&[b"F", n.to_string().as_bytes()]),
                len.to_be_bytes().to_vec(),
            );
        }
        batch.remove(seq_key);
        batch.insert(key(&[b"A", b"id", id.as_bytes()]), b"delivered".to_vec());
        for n in 0..sinks {
            batch.remove(key(&[b"A", b"s", n.to_string().as_bytes(), id.as_bytes()]));
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The length of a file sink's file as of its last recorded delivery.
    pub fn file_len(&self, sink: usize) -> Result<Option<u64>, StoreError> {
        Ok(self
            .db
            .get(key(&[b"F", sink.to_string().as_bytes()]))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Records a file sink's length without a delivery (when it is first opened).
    pub fn set_file_len(&self, sink: usize, len: u64) -> Result<(), StoreError> {
        self.db.insert(
            key(&[b"F", sink.to_string().as_bytes()]),
            len.to_be_bytes().to_vec(),
        )?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, Kind};

    #[test]
    fn commit_pending_and_done_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = Alert::new(Kind::BadEntry, "l", Some(3), "x").identify("");
        {
            let s = Store::open(dir.path()).unwrap();
            let p = Progress {
                verified_size: 5,
                ..Progress::default()
            };
            s.commit(Commit {
                progress: Some(("l".into(), p)),
                alerts: vec![a.clone()],
                journal: Some(("l".into(), 5, vec![1, 2, 3])),
                map_journal: Some(("l".into(), 5, vec![4])),
                ..Commit::default()
            })
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.progress("l").unwrap().unwrap().verified_size, 5);
        assert!(s.alert_known(&a.id).unwrap());
        assert_eq!(
            s.journal("l", Journal::Rules, 0).unwrap(),
            vec![(5, vec![1, 2, 3])]
        );
        assert_eq!(s.journal("l", Journal::Map, 0).unwrap(), vec![(5, vec![4])]);
        assert!(s.journal("l", Journal::Rules, 5).unwrap().is_empty());
        s.prune_journal("l", Journal::Map, 5).unwrap();
        assert!(s.journal("l", Journal::Map, 0).unwrap().is_empty());
        assert_eq!(s.journal("l", Journal::Rules, 0).unwrap().len(), 1);
        let pending = s.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, a);
        s.mark_sink(0, &a.id, Some(10)).unwrap();
        assert!(s.sink_delivered(0, &a.id).unwrap());
        assert_eq!(s.file_len(0).unwrap(), Some(10));
        s.mark_done(&pending[0].0, &a.id, 1, Some((0, 20))).unwrap();
        assert_eq!(s.file_len(0).unwrap(), Some(20));
        assert!(s.pending().unwrap().is_empty());
        assert!(s.alert_known(&a.id).unwrap(), "delivered ids stay known");
    }
}
