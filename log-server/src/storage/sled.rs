//! The log's index on sled 0.34: what is looked up by key (leaf hash → index, SII → indices,
//! enroll indices), meta and the head. The leaves, tree hashes and the map's values are files
//! ([`super::files`], [`super::journal`]). One tree, key prefixes per kind of record, so that one
//! [`sled::Batch`] (atomic across a crash: sled seals a batch as one unit in its log) holds a whole
//! sequencer batch's index records with the new head, and `flush` makes it durable.
//!
//! Keys (all integers big-endian, so byte order is numeric order and prefix scans are ordered):
//!
//! | key                              | value                                                   |
//! |----------------------------------|---------------------------------------------------------|
//! | `X` ‖ leaf hash                  | index                                                   |
//! | `S` ‖ SHA-256(SII)[..16] ‖ index | empty                                                   |
//! | `E` ‖ index                      | empty (an enroll leaf)                                  |
//! | `M:meta`                         | JSON [`Meta`]                                           |
//! | `M:head`                         | size ‖ map journal length ‖ signed checkpoint note      |
//! | `M:layout`                       | the layout version, `4`                                 |
//!
//! The map's values are a journal file beside the tree's files ([`super::journal`]); the head
//! records its length.
//!
//! Older layouts are not read: a data folder written by layout 1 (one key per leaf and per hash),
//! layout 2 (before the verifiable map: its checkpoints do not end in map leaves, so its lookups
//! cannot prove completeness) or layout 3 (leaves and hashes inside sled) is refused at start.

use std::path::Path;

use ledger_core::Hash;

use super::{Commit, Meta, StorageError};

const LAYOUT_KEY: &[u8] = b"M:layout";
const LAYOUT: u8 = 4;
const LEAF_INDEX: u8 = b'X';
const SII: u8 = b'S';
const ENROLL: u8 = b'E';
const META_KEY: &[u8] = b"M:meta";
const HEAD_KEY: &[u8] = b"M:head";

/// The sled-backed store.
#[derive(Clone, Debug)]
pub struct SledIndex {
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

/// The bytes of an SII in its index keys: the first 16 bytes of SHA-256 (RFC 6962 leaf
/// form) of the SII, fixed-length and short (SIIs are up to 256 bytes). Two SIIs sharing them
/// would share an index list, which lookups filter by each entry's SII; at 128 bits that does not
/// happen by chance.
fn sii_prefix(sii: &str) -> [u8; 17] {
    let h = ledger_core::TreeHash::Sha256.leaf_hash(sii.as_bytes());
    let mut k = [0u8; 17];
    k[0] = SII;
    k[1..].copy_from_slice(&h[..16]);
    k
}

fn sii_key(sii: &str, index: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..17].copy_from_slice(&sii_prefix(sii));
    k[17..].copy_from_slice(&index.to_be_bytes());
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

impl SledIndex {
    /// Opens (or creates) the store in folder `path` with a page cache of `cache_bytes`, zstd
    /// compressed or not (sled fixes that at creation and refuses a mismatch).
    pub fn open(path: &Path, cache_bytes: u64, compress: bool) -> Result<SledIndex, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .use_compression(compress)
            .compression_factor(1)
            .open()
            .map_err(db_err)?;
        Ok(SledIndex { db })
    }

    /// A store in a temporary folder that sled deletes on drop (tests).
    pub fn temporary() -> Result<SledIndex, StorageError> {
        let db = sled::Config::new().temporary(true).open().map_err(db_err)?;
        Ok(SledIndex { db })
    }

    /// The log's meta, or `None` for an empty store (refusing other layouts).
    pub fn meta(&self) -> Result<Option<Meta>, StorageError> {
        let Some(v) = self.db.get(META_KEY).map_err(db_err)? else {
            return Ok(None);
        };
        let layout = self.db.get(LAYOUT_KEY).map_err(db_err)?;
        if layout.as_deref() != Some(&[LAYOUT][..]) {
            let found = match layout.as_deref() {
                None => "1".to_string(),
                Some([v]) => v.to_string(),
                Some(other) => format!("{other:?}"),
            };
            let why = match found.as_str() {
                "2" => {
                    " (written before the verifiable map of SPEC §9: its checkpoints do not end \
                     in map leaves, so its lookups cannot prove they are complete)"
                }
                "3" => " (leaves and tree hashes inside the index, before the tile files)",
                _ => "",
            };
            return Err(StorageError::Corrupt {
                key: "layout".into(),
                reason: format!(
                    "this data folder has storage layout {found}{why}; this log-server reads \
                     layout {LAYOUT} only. There is no migration: start a new log (a new --data \
                     folder and a new log key, so that clients and witnesses pin it afresh), and \
                     keep serving the old one with the log-server release that wrote it"
                ),
            });
        }
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                key: "meta".into(),
                reason: e.to_string(),
            })
    }

    /// Creates the log: writes meta and the signed checkpoint of the empty tree, and syncs.
    pub fn create(&self, meta: &Meta, checkpoint: &[u8]) -> Result<(), StorageError> {
        if self.db.get(META_KEY).map_err(db_err)?.is_some() {
            return Err(StorageError::AlreadyCreated);
        }
        let json = serde_json::to_vec(meta).map_err(|e| StorageError::Corrupt {
            key: "meta".into(),
            reason: e.to_string(),
        })?;
        let mut batch = sled::Batch::default();
        batch.insert(META_KEY, json);
        batch.insert(LAYOUT_KEY, &[LAYOUT][..]);
        batch.insert(HEAD_KEY, head_value(0, 0, checkpoint));
        self.db.apply_batch(batch).map_err(db_err)?;
        self.flush()
    }

    /// The stored head: tree size, the map journal's length and the signed checkpoint note for
    /// the size (written together).
    pub fn head(&self) -> Result<Option<IndexHead>, StorageError> {
        let Some(v) = self.db.get(HEAD_KEY).map_err(db_err)? else {
            return Ok(None);
        };
        let (size, rest) = v.split_at_checked(8).ok_or_else(|| StorageError::Corrupt {
            key: "head".into(),
            reason: "shorter than 16 bytes".into(),
        })?;
        let (journal_len, cp) = rest
            .split_at_checked(8)
            .ok_or_else(|| StorageError::Corrupt {
                key: "head".into(),
                reason: "shorter than 16 bytes".into(),
            })?;
        Ok(Some(IndexHead {
            size: trailing_u64(size, "head")?,
            journal_len: trailing_u64(journal_len, "head")?,
            checkpoint: cp.to_vec(),
        }))
    }

    /// The index of the leaf with this leaf hash.
    pub fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.db
            .get(key_hash(LEAF_INDEX, leaf_hash))
            .map_err(db_err)?
            .map(|v| trailing_u64(&v, "leaf index"))
            .transpose()
    }

    /// The indices of the leaves about `sii`, in log order.
    pub fn sii_indices(&self, sii: &str) -> Result<Vec<u64>, StorageError> {
        self.db
            .scan_prefix(sii_prefix(sii))
            .keys()
            .map(|k| trailing_u64(&k.map_err(db_err)?, "sii key"))
            .collect()
    }

    /// The indices of all enroll leaves, in log order.
    pub fn enrollments(&self) -> Result<Vec<u64>, StorageError> {
        self.db
            .scan_prefix([ENROLL])
            .keys()
            .map(|k| trailing_u64(&k.map_err(db_err)?, "enroll key"))
            .collect()
    }

    /// Writes a batch's index records and its head (with the map journal's new length)
    /// atomically, and syncs them.
    pub fn commit(&self, commit: &Commit, journal_len: u64) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for leaf in &commit.leaves {
            batch.insert(
                &key_hash(LEAF_INDEX, &leaf.leaf_hash)[..],
                &leaf.index.to_be_bytes(),
            );
            if let Some(sii) = &leaf.sii {
                batch.insert(&sii_key(sii, leaf.index)[..], &[][..]);
            }
            if leaf.enroll {
                batch.insert(&key_u64(ENROLL, leaf.index), &[][..]);
            }
        }
        batch.insert(
            HEAD_KEY,
            head_value(commit.size, journal_len, &commit.checkpoint),
        );
        self.db.apply_batch(batch).map_err(db_err)?;
        self.flush()
    }

    /// Syncs everything to disk.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(db_err)?;
        Ok(())
    }

    /// Bytes the index uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db.size_on_disk().map_err(db_err)
    }
}

/// The index's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexHead {
    /// The tree size.
    pub size: u64,
    /// The map journal's length at that size.
    pub journal_len: u64,
    /// The signed checkpoint note for the size.
    pub checkpoint: Vec<u8>,
}

fn head_value(size: u64, journal_len: u64, checkpoint: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + checkpoint.len());
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(&journal_len.to_be_bytes());
    v.extend_from_slice(checkpoint);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::TreeHash;

    fn meta() -> Meta {
        Meta {
            origin: "example.org/log".into(),
            hash: TreeHash::Blake3,
            vkey: "example.org/log+00000000+AA".into(),
            created: 1,
        }
    }

    #[test]
    fn a_data_folder_of_another_layout_is_refused() {
        let s = SledIndex::temporary().expect("open");
        s.create(&meta(), b"cp0").expect("create");
        s.db.remove(LAYOUT_KEY).expect("remove");
        let err = s.meta().expect_err("layout 1 refused").to_string();
        assert!(err.contains("storage layout 1;"), "{err}");
        assert!(err.contains("reads layout 4"), "{err}");
        s.db.insert(LAYOUT_KEY, &[2u8][..]).expect("insert");
        let err = s.meta().expect_err("layout 2 refused").to_string();
        assert!(
            err.contains("storage layout 2 (written before the verifiable map"),
            "{err}"
        );
        assert!(err.contains("start a new log"), "{err}");
        s.db.insert(LAYOUT_KEY, &[3u8][..]).expect("insert");
        let err = s.meta().expect_err("layout 3 refused").to_string();
        assert!(
            err.contains("storage layout 3 (leaves and tree hashes inside"),
            "{err}"
        );
        s.db.insert(LAYOUT_KEY, &[4u8][..]).expect("insert");
        assert!(s.meta().expect("layout 4 read").is_some());
    }
}
