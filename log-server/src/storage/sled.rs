//! [`Storage`] on sled 0.34: one tree, key prefixes per kind of record, so that one
//! [`sled::Batch`] (atomic across a crash: sled seals a batch as one unit in its log) holds a whole
//! sequencer batch, and `flush` makes it durable.
//!
//! Keys (all integers big-endian, so byte order is numeric order and prefix scans are ordered):
//!
//! | key                              | value                              |
//! |----------------------------------|------------------------------------|
//! | `L` ‖ index                      | leaf bytes                         |
//! | `H` ‖ stored-hash index          | 32-byte hash                       |
//! | `X` ‖ leaf hash                  | index                              |
//! | `S` ‖ SII ‖ `0x00` ‖ index       | empty (SIIs never contain `0x00`)  |
//! | `E` ‖ index                      | empty (an enroll leaf)             |
//! | `M:meta`                         | JSON [`Meta`]                      |
//! | `M:head`                         | size ‖ signed checkpoint note      |

use std::path::Path;

use ledger_core::Hash;

use super::{Commit, Meta, Storage, StorageError};

const LEAF: u8 = b'L';
const HASH: u8 = b'H';
const LEAF_INDEX: u8 = b'X';
const SII: u8 = b'S';
const ENROLL: u8 = b'E';
const META_KEY: &[u8] = b"M:meta";
const HEAD_KEY: &[u8] = b"M:head";

/// The sled-backed store.
#[derive(Clone, Debug)]
pub struct SledStorage {
    db: sled::Db,
}

fn db_err(e: sled::Error) -> StorageError {
    StorageError::Db(e.to_string())
}

fn key_u64(prefix: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

fn key_hash(prefix: u8, h: &Hash) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = prefix;
    k[1..].copy_from_slice(h);
    k
}

fn sii_prefix(sii: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(sii.len() + 10);
    k.push(SII);
    k.extend_from_slice(sii.as_bytes());
    k.push(0);
    k
}

fn sii_key(sii: &str, index: u64) -> Vec<u8> {
    let mut k = sii_prefix(sii);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The big-endian u64 in the last 8 bytes of `bytes`.
fn trailing_u64(bytes: &[u8], what: &str) -> Result<u64, StorageError> {
    let tail = bytes
        .len()
        .checked_sub(8)
        .and_then(|start| bytes.get(start..))
        .and_then(|t| <[u8; 8]>::try_from(t).ok())
        .ok_or_else(|| StorageError::Corrupt {
            key: what.to_string(),
            reason: format!("{} bytes, expected at least 8", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(tail))
}

impl SledStorage {
    /// Opens (or creates) the store in folder `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<SledStorage, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(db_err)?;
        Ok(SledStorage { db })
    }

    /// A store in a temporary folder that sled deletes on drop (tests).
    pub fn temporary() -> Result<SledStorage, StorageError> {
        let db = sled::Config::new().temporary(true).open().map_err(db_err)?;
        Ok(SledStorage { db })
    }
}

impl Storage for SledStorage {
    fn meta(&self) -> Result<Option<Meta>, StorageError> {
        let Some(v) = self.db.get(META_KEY).map_err(db_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                key: "meta".into(),
                reason: e.to_string(),
            })
    }

    fn create(&self, meta: &Meta, checkpoint: &[u8]) -> Result<(), StorageError> {
        if self.db.get(META_KEY).map_err(db_err)?.is_some() {
            return Err(StorageError::AlreadyCreated);
        }
        let json = serde_json::to_vec(meta).map_err(|e| StorageError::Corrupt {
            key: "meta".into(),
            reason: e.to_string(),
        })?;
        let mut batch = sled::Batch::default();
        batch.insert(META_KEY, json);
        batch.insert(HEAD_KEY, head_value(0, checkpoint));
        self.db.apply_batch(batch).map_err(db_err)?;
        self.flush()
    }

    fn head(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let Some(v) = self.db.get(HEAD_KEY).map_err(db_err)? else {
            return Ok(None);
        };
        let (size, cp) = v.split_at_checked(8).ok_or_else(|| StorageError::Corrupt {
            key: "head".into(),
            reason: "shorter than 8 bytes".into(),
        })?;
        Ok(Some((trailing_u64(size, "head")?, cp.to_vec())))
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .db
            .get(key_u64(LEAF, index))
            .map_err(db_err)?
            .map(|v| v.to_vec()))
    }

    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        if end <= start {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0).min(4096));
        for (expected, kv) in (start..).zip(self.db.range(key_u64(LEAF, start)..key_u64(LEAF, end)))
        {
            let (k, v) = kv.map_err(db_err)?;
            if trailing_u64(&k, "leaf key")? != expected {
                break;
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    fn hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StorageError> {
        indexes
            .iter()
            .map(|&i| {
                let v = self
                    .db
                    .get(key_u64(HASH, i))
                    .map_err(db_err)?
                    .ok_or(StorageError::MissingHash(i))?;
                Hash::try_from(v.as_ref()).map_err(|_| StorageError::Corrupt {
                    key: format!("hash {i}"),
                    reason: format!("{} bytes, expected 32", v.len()),
                })
            })
            .collect()
    }

    fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.db
            .get(key_hash(LEAF_INDEX, leaf_hash))
            .map_err(db_err)?
            .map(|v| trailing_u64(&v, "leaf index"))
            .transpose()
    }

    fn sii_indices(&self, sii: &str) -> Result<Vec<u64>, StorageError> {
        self.db
            .scan_prefix(sii_prefix(sii))
            .keys()
            .map(|k| trailing_u64(&k.map_err(db_err)?, "sii key"))
            .collect()
    }

    fn enrollments(&self) -> Result<Vec<u64>, StorageError> {
        self.db
            .scan_prefix([ENROLL])
            .keys()
            .map(|k| trailing_u64(&k.map_err(db_err)?, "enroll key"))
            .collect()
    }

    fn commit(&self, commit: &Commit) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for leaf in &commit.leaves {
            batch.insert(&key_u64(LEAF, leaf.index), leaf.bytes.as_slice());
            batch.insert(
                &key_hash(LEAF_INDEX, &leaf.leaf_hash)[..],
                &leaf.index.to_be_bytes(),
            );
            if let Some(sii) = &leaf.sii {
                batch.insert(sii_key(sii, leaf.index), &[][..]);
            }
            if leaf.enroll {
                batch.insert(&key_u64(ENROLL, leaf.index), &[][..]);
            }
        }
        for (i, h) in (commit.hashes_start..).zip(&commit.hashes) {
            batch.insert(&key_u64(HASH, i), h);
        }
        batch.insert(HEAD_KEY, head_value(commit.size, &commit.checkpoint));
        self.db.apply_batch(batch).map_err(db_err)?;
        self.flush()
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(db_err)?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db.size_on_disk().map_err(db_err)
    }
}

fn head_value(size: u64, checkpoint: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + checkpoint.len());
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(checkpoint);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::NewLeaf;
    use ledger_core::TreeHash;

    fn meta() -> Meta {
        Meta {
            origin: "example.org/log".into(),
            hash: TreeHash::Blake3,
            vkey: "example.org/log+00000000+AA".into(),
            created: 1,
        }
    }

    fn leaf(index: u64, sii: Option<&str>, enroll: bool) -> NewLeaf {
        let bytes = format!("leaf {index}").into_bytes();
        NewLeaf {
            index,
            leaf_hash: TreeHash::Blake3.leaf_hash(&bytes),
            bytes,
            sii: sii.map(str::to_string),
            enroll,
        }
    }

    #[test]
    fn create_commit_and_read_back() {
        let s = SledStorage::temporary().expect("open");
        assert_eq!(s.meta().expect("meta"), None);
        s.create(&meta(), b"cp0").expect("create");
        assert!(matches!(
            s.create(&meta(), b"cp0"),
            Err(StorageError::AlreadyCreated)
        ));
        assert_eq!(s.meta().expect("meta"), Some(meta()));
        assert_eq!(s.head().expect("head"), Some((0, b"cp0".to_vec())));

        let c = Commit {
            leaves: vec![
                leaf(0, None, true),
                leaf(1, Some("tel:+14155550100"), false),
                leaf(2, Some("tel:+1415555010"), false),
                leaf(3, Some("tel:+14155550100"), false),
            ],
            hashes_start: 0,
            hashes: vec![[1; 32], [2; 32], [3; 32]],
            size: 4,
            checkpoint: b"cp4".to_vec(),
        };
        s.commit(&c).expect("commit");
        assert_eq!(s.head().expect("head"), Some((4, b"cp4".to_vec())));
        assert_eq!(s.leaf(1).expect("leaf"), Some(b"leaf 1".to_vec()));
        assert_eq!(s.leaf(4).expect("leaf"), None);
        assert_eq!(
            s.leaves(1, 10).expect("leaves"),
            vec![b"leaf 1".to_vec(), b"leaf 2".to_vec(), b"leaf 3".to_vec()]
        );
        assert_eq!(s.leaves(3, 3).expect("leaves"), Vec::<Vec<u8>>::new());
        assert_eq!(s.hashes(&[2, 0]).expect("hashes"), vec![[3; 32], [1; 32]]);
        assert!(matches!(s.hashes(&[3]), Err(StorageError::MissingHash(3))));
        assert_eq!(s.leaf_index(&c.leaves[2].leaf_hash).expect("idx"), Some(2));
        assert_eq!(s.leaf_index(&[9; 32]).expect("idx"), None);
        // A prefix of another SII must not match it: the 0x00 separator ends the SII.
        assert_eq!(s.sii_indices("tel:+14155550100").expect("sii"), vec![1, 3]);
        assert_eq!(s.sii_indices("tel:+1415555010").expect("sii"), vec![2]);
        assert_eq!(s.sii_indices("tel:+1").expect("sii"), Vec::<u64>::new());
        assert_eq!(s.enrollments().expect("enr"), vec![0]);
        assert!(s.size_on_disk().expect("disk") > 0);
    }

    #[test]
    fn reopen_sees_committed_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SledStorage::open(dir.path(), 1 << 20).expect("open");
            s.create(&meta(), b"cp0").expect("create");
            s.commit(&Commit {
                leaves: vec![leaf(0, Some("mailto:a@example.org"), false)],
                hashes_start: 0,
                hashes: vec![[7; 32]],
                size: 1,
                checkpoint: b"cp1".to_vec(),
            })
            .expect("commit");
        }
        let s = SledStorage::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(s.head().expect("head"), Some((1, b"cp1".to_vec())));
        assert_eq!(s.sii_indices("mailto:a@example.org").expect("sii"), vec![0]);
        assert_eq!(s.hashes(&[0]).expect("hash"), vec![[7; 32]]);
    }
}
