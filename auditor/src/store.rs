//! The auditor's durable state in sled: per log, the latest cosigned checkpoint (the witness
//! state of C2SP tlog-witness); and the evidence.
//!
//! Tree `logs`: origin → JSON [`LogRecord`]. A record is created when a log is first configured
//! and is never deleted: it remembers the log's key and tree hash, so that a log removed from the
//! configuration and added again resumes from the size it had (it cannot be reset to 0 through
//! the configuration), and a configuration that names a *different* key or hash for a known origin
//! is refused at start ([`StoreError::LogKeyChanged`]).
//!
//! Every update of a record is a sled `compare_and_swap` against the exact bytes that were read
//! and checked, so "check the old size" and "write the new checkpoint" are one atomic step: of two
//! racing requests from the same old size, exactly one swap succeeds. Callers flush
//! ([`Store::flush`]) before answering.
//!
//! Tree `evidence`: evidence ID → JSON [`Evidence`], inserted once (compare-and-swap from empty).

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_core::{Hash, TreeHash};
use serde::{Deserialize, Serialize};

use crate::config::LogConfig;
use ledger_core::api::Evidence;

/// A storage failure or a refused configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode (corruption or an incompatible version).
    #[error("state store: corrupt record for {key:?}: {reason}")]
    Corrupt {
        /// The record key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// The configuration names a different key or tree hash for a log the auditor already knows.
    #[error(
        "log {origin:?} is already known with vkey {stored_vkey} and hash {stored_hash}; the \
         configuration says vkey {config_vkey} and hash {config_hash}. A log's key and hash cannot \
         change (that would reset its witness state); give a new log a new origin"
    )]
    LogKeyChanged {
        /// The log's origin.
        origin: String,
        /// The stored key.
        stored_vkey: String,
        /// The stored hash.
        stored_hash: String,
        /// The configured key.
        config_vkey: String,
        /// The configured hash.
        config_hash: String,
    },
}

/// The witness state of one log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The log's verifier key when it was first configured.
    pub vkey: String,
    /// The log's tree hash name.
    pub hash: String,
    /// The size of the latest cosigned checkpoint (0 before the first).
    pub size: u64,
    /// Its root hash, standard base64 (the empty root before the first).
    pub root: String,
    /// The latest cosigned checkpoint note (log signature and our cosignature), if any.
    pub note: Option<String>,
    /// When it was last updated (Unix seconds).
    pub updated: u64,
}

impl LogRecord {
    /// The record of a log that was never cosigned.
    pub fn initial(log: &LogConfig, now: u64) -> LogRecord {
        LogRecord {
            vkey: log.log.log_key.to_string(),
            hash: log.log.hash.name().to_string(),
            size: 0,
            root: B64.encode(log.log.hash.empty_root()),
            note: None,
            updated: now,
        }
    }

    /// The root hash, decoded.
    pub fn root_hash(&self) -> Result<Hash, StoreError> {
        ledger_core::api::b64::decode_hash(&self.root).map_err(|reason| StoreError::Corrupt {
            key: "root".into(),
            reason,
        })
    }

    /// The tree hash, decoded.
    pub fn tree_hash(&self) -> Result<TreeHash, StoreError> {
        self.hash.parse().map_err(|_| StoreError::Corrupt {
            key: "hash".into(),
            reason: format!("unknown tree hash {:?}", self.hash),
        })
    }
}

/// A record as read: its decoded value and the exact stored bytes, to swap against.
#[derive(Clone, Debug)]
pub struct Versioned {
    /// The decoded record.
    pub record: LogRecord,
    raw: sled::IVec,
}

/// The sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    logs: sled::Tree,
    evidence: sled::Tree,
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::open(dir)?;
        let logs = db.open_tree("logs")?;
        let evidence = db.open_tree("evidence")?;
        Ok(Store { db, logs, evidence })
    }

    /// Registers a configured log: creates its record, or checks that the stored key and hash
    /// are the configured ones (see the module docs).
    pub fn register_log(&self, log: &LogConfig, now: u64) -> Result<(), StoreError> {
        let fresh = encode(&LogRecord::initial(log, now))?;
        match self.logs.compare_and_swap(
            log.origin().as_bytes(),
            None as Option<&[u8]>,
            Some(fresh),
        )? {
            Ok(()) => Ok(()),
            Err(cas) => {
                let current = cas.current.ok_or_else(|| StoreError::Corrupt {
                    key: log.origin().to_string(),
                    reason: "record vanished".into(),
                })?;
                let stored = decode(log.origin(), &current)?;
                let config_vkey = log.log.log_key.to_string();
                if stored.vkey != config_vkey || stored.hash != log.log.hash.name() {
                    return Err(StoreError::LogKeyChanged {
                        origin: log.origin().to_string(),
                        stored_vkey: stored.vkey,
                        stored_hash: stored.hash,
                        config_vkey,
                        config_hash: log.log.hash.name().to_string(),
                    });
                }
                Ok(())
            }
        }
    }

    /// The record of a log, with its stored bytes.
    pub fn get(&self, origin: &str) -> Result<Option<Versioned>, StoreError> {
        self.logs
            .get(origin.as_bytes())?
            .map(|raw| {
                Ok(Versioned {
                    record: decode(origin, &raw)?,
                    raw,
                })
            })
            .transpose()
    }

    /// Atomically replaces the record of `origin` by `new` if it is still exactly `expected`.
    /// Returns whether the swap happened.
    pub fn compare_and_swap(
        &self,
        origin: &str,
        expected: &Versioned,
        new: &LogRecord,
    ) -> Result<bool, StoreError> {
        let bytes = encode(new)?;
        Ok(self
            .logs
            .compare_and_swap(origin.as_bytes(), Some(&expected.raw), Some(bytes))?
            .is_ok())
    }

    /// Stores evidence unless evidence with the same ID exists; returns whether it was new.
    pub fn insert_evidence(&self, e: &Evidence) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(e).map_err(|err| StoreError::Corrupt {
            key: e.id.clone(),
            reason: err.to_string(),
        })?;
        Ok(self
            .evidence
            .compare_and_swap(e.id.as_bytes(), None as Option<&[u8]>, Some(bytes))?
            .is_ok())
    }

    /// The evidence with this ID.
    pub fn get_evidence(&self, id: &str) -> Result<Option<Evidence>, StoreError> {
        self.evidence
            .get(id.as_bytes())?
            .map(|raw| {
                serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                    key: id.to_string(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// All evidence, oldest detection first.
    pub fn list_evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut out = Vec::new();
        for item in self.evidence.iter() {
            let (k, v) = item?;
            let e: Evidence = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: e.to_string(),
            })?;
            out.push(e);
        }
        out.sort_by(|a, b| (a.detected, &a.id).cmp(&(b.detected, &b.id)));
        Ok(out)
    }

    /// How many pieces of evidence are stored.
    pub fn evidence_count(&self) -> usize {
        self.evidence.len()
    }

    /// Makes every write so far durable (the witness answers only after this).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

fn encode(r: &LogRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(r).map_err(|e| StoreError::Corrupt {
        key: "record".into(),
        reason: e.to_string(),
    })
}

fn decode(key: &str, raw: &[u8]) -> Result<LogRecord, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::test_key;

    fn log(name: &str, hash: TreeHash) -> LogConfig {
        LogConfig {
            log: ledger_core::trust::TrustedLog::new(test_key(name).verifier(), hash),
            url: None,
        }
    }

    #[test]
    fn register_is_idempotent_and_refuses_a_changed_key_or_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let l = log("log.example/a", TreeHash::Sha256);
        s.register_log(&l, 1).unwrap();
        s.register_log(&l, 2).unwrap();
        assert_eq!(s.get("log.example/a").unwrap().unwrap().record.updated, 1);
        let mut other_key = l.clone();
        other_key.log.log_key = ledger_core::testkit::test_witness_key("log.example/a").verifier();
        assert!(matches!(
            s.register_log(&other_key, 3),
            Err(StoreError::LogKeyChanged { .. })
        ));
        let mut other_hash = l.clone();
        other_hash.log.hash = TreeHash::Blake3;
        assert!(matches!(
            s.register_log(&other_hash, 3),
            Err(StoreError::LogKeyChanged { .. })
        ));
    }

    #[test]
    fn compare_and_swap_succeeds_once_from_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let l = log("log.example/a", TreeHash::Sha256);
        s.register_log(&l, 1).unwrap();
        let v = s.get(l.origin()).unwrap().unwrap();
        let mut a = v.record.clone();
        a.size = 5;
        let mut b = v.record.clone();
        b.size = 6;
        assert!(s.compare_and_swap(l.origin(), &v, &a).unwrap());
        assert!(!s.compare_and_swap(l.origin(), &v, &b).unwrap());
        assert_eq!(s.get(l.origin()).unwrap().unwrap().record.size, 5);
    }
}
