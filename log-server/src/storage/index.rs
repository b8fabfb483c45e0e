//! The log's index on fjall 3 (an LSM tree): what is looked up by key (leaf hash → index, SII →
//! indices, enroll indices), meta and the head. The leaves, tree hashes and the map's values are
//! files ([`super::files`], [`super::journal`]). One keyspace per kind of record; one
//! [`fjall::OwnedWriteBatch`] (atomic across keyspaces and across a crash: fjall writes a batch
//! to its journal as one unit, and recovery drops a batch that is not whole) holds a whole
//! sequencer batch's index records with the new head, synced (`fsync`) before the commit returns.
//!
//! Why an LSM tree and not sled's B-tree (layout 4 and before): the index's keys are hashes, so
//! every insert lands on a random page, and sled copied and rewrote a page per insert (its node
//! clones and drops were ~15% of the log's CPU in bulk onboarding) and kept 350 bytes on disk per
//! entry for ~64 bytes of keys and values (docs/benchmarks.md). An LSM tree appends the batch to
//! its journal, sorts it in memory and writes sorted tables once, compacting them in the
//! background; bloom filters keep the misses of the idempotence check (every new leaf) off the
//! disk. Written once and looked up by key is exactly its workload.
//!
//! Keyspaces (all integers big-endian, so byte order is numeric order and prefix scans are ordered):
//!
//! | keyspace | key                        | value                                                   |
//! |----------|----------------------------|---------------------------------------------------------|
//! | `leaf`   | leaf hash                  | index                                                   |
//! | `sii`    | SHA-256(SII)[..16] ‖ index | empty                                                   |
//! | `enroll` | index                      | empty (an enroll leaf)                                  |
//! | `meta`   | `meta`                     | JSON [`Meta`]                                           |
//! | `meta`   | `head`                     | size ‖ map journal length ‖ signed checkpoint note      |
//! | `meta`   | `layout`                   | the layout version, `5`                                 |
//!
//! The map's values are a journal file beside the tree's files ([`super::journal`]); the head
//! records its length.
//!
//! An SII's indices are keys under its prefix, not one value rewritten as it grows: a value
//! would make a lookup one point read instead of a prefix scan, but it was measured at 10M
//! entries (docs/benchmarks.md) to give the same lookup rate and to cost bulk onboarding 20% (a
//! read of the SII's list per claim at commit).
//!
//! Older layouts are not read: layouts 1–4 kept the index in sled (`<data>/db`), and
//! [`super::tiled::TiledStorage::open`] refuses such a folder before opening anything.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use ledger_core::Hash;

use super::{Commit, Meta, StorageError};

const LAYOUT: u8 = 5;
const LAYOUT_KEY: &[u8] = b"layout";
const META_KEY: &[u8] = b"meta";
const HEAD_KEY: &[u8] = b"head";

/// The fjall-backed index.
#[derive(Clone)]
pub struct KeyIndex {
    db: Database,
    meta: Keyspace,
    leaf: Keyspace,
    sii: Keyspace,
    enroll: Keyspace,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex").finish_non_exhaustive()
    }
}

/// The most bytes fjall keeps in journals before it flushes the memtables they cover (its
/// smallest allowed bound; the default is 512 MiB). A journal is only needed until the memtables
/// it covers are written as tables; at the default the journals were 136 MB of a 191 MB index at
/// 1M entries, the largest part of the index's share of the disk (docs/benchmarks.md).
const MAX_JOURNALS: u64 = 64 * 1024 * 1024;

fn db_err(e: fjall::Error) -> StorageError {
    StorageError::Db(e.to_string())
}

/// The bytes of an SII in its index keys: the first 16 bytes of SHA-256 (RFC 6962 leaf
/// form) of the SII, fixed-length and short (SIIs are up to 256 bytes). Two SIIs sharing them
/// would share an index list, which lookups filter by each entry's SII; at 128 bits that does not
/// happen by chance.
fn sii_prefix(sii: &str) -> [u8; 16] {
    let h = ledger_core::TreeHash::Sha256.leaf_hash(sii.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

fn sii_key(sii: &str, index: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&sii_prefix(sii));
    k[16..].copy_from_slice(&index.to_be_bytes());
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

impl KeyIndex {
    /// Opens (or creates) the index in folder `path` with a block cache of `cache_bytes`, its
    /// data blocks LZ4-compressed or not (fixed when each table is written; the server keeps the
    /// choice of the log's creation).
    pub fn open(path: &Path, cache_bytes: u64, compress: bool) -> Result<KeyIndex, StorageError> {
        let db = Database::builder(path)
            .cache_size(cache_bytes)
            .max_journaling_size(MAX_JOURNALS)
            .open()
            .map_err(|e| match e {
                // Another process holds the folder: not damage (the caller may retry).
                fjall::Error::Locked => StorageError::Db(format!(
                    "the index in {} is locked by another process ({e})",
                    path.display()
                )),
                // The disk, not the data (a full disk, permissions).
                fjall::Error::Io(_) => StorageError::Db(format!(
                    "the index in {} does not open ({e})",
                    path.display()
                )),
                // A journal or table that does not read back (a checksum, a torn record the
                // recovery cannot skip, a missing file): the folder was damaged outside the log.
                e => StorageError::Corrupt {
                    key: "index".into(),
                    reason: format!(
                        "the index in {} is damaged: it does not open ({e}); restore the data \
                         folder from a backup",
                        path.display()
                    ),
                },
            })?;
        let compression = if compress {
            fjall::CompressionType::Lz4
        } else {
            fjall::CompressionType::None
        };
        let options = move || {
            KeyspaceCreateOptions::default()
                .data_block_compression_policy(fjall::config::CompressionPolicy::all(compression))
        };
        let keyspace = |name: &str| db.keyspace(name, options).map_err(db_err);
        Ok(KeyIndex {
            meta: keyspace("meta")?,
            leaf: keyspace("leaf")?,
            sii: keyspace("sii")?,
            enroll: keyspace("enroll")?,
            db,
        })
    }

    /// The log's meta, or `None` for an empty store (refusing other layouts).
    pub fn meta(&self) -> Result<Option<Meta>, StorageError> {
        let Some(v) = self.meta.get(META_KEY).map_err(db_err)? else {
            return Ok(None);
        };
        let layout = self.meta.get(LAYOUT_KEY).map_err(db_err)?;
        if layout.as_deref() != Some(&[LAYOUT][..]) {
            let found = match layout.as_deref() {
                None => "none".to_string(),
                Some([v]) => v.to_string(),
                Some(other) => format!("{other:?}"),
            };
            return Err(StorageError::Corrupt {
                key: "layout".into(),
                reason: format!(
                    "this data folder's index has storage layout {found}; this log-server reads \
                     layout {LAYOUT} only (a newer log-server wrote it, or it is damaged)"
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
        if self.meta.get(META_KEY).map_err(db_err)?.is_some() {
            return Err(StorageError::AlreadyCreated);
        }
        let json = serde_json::to_vec(meta).map_err(|e| StorageError::Corrupt {
            key: "meta".into(),
            reason: e.to_string(),
        })?;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.meta, META_KEY, json);
        batch.insert(&self.meta, LAYOUT_KEY, [LAYOUT]);
        batch.insert(&self.meta, HEAD_KEY, head_value(0, 0, checkpoint));
        batch.commit().map_err(db_err)
    }

    /// The stored head: tree size, the map journal's length and the signed checkpoint note for
    /// the size (written together).
    pub fn head(&self) -> Result<Option<IndexHead>, StorageError> {
        let Some(v) = self.meta.get(HEAD_KEY).map_err(db_err)? else {
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
        self.leaf
            .get(leaf_hash)
            .map_err(db_err)?
            .map(|v| trailing_u64(&v, "leaf index"))
            .transpose()
    }

    /// The indices of the leaves about `sii`, in log order.
    pub fn sii_indices(&self, sii: &str) -> Result<Vec<u64>, StorageError> {
        self.sii
            .prefix(sii_prefix(sii))
            .map(|kv| trailing_u64(&kv.key().map_err(db_err)?, "sii key"))
            .collect()
    }

    /// The indices of all enroll leaves, in log order.
    pub fn enrollments(&self) -> Result<Vec<u64>, StorageError> {
        self.enroll
            .iter()
            .map(|kv| trailing_u64(&kv.key().map_err(db_err)?, "enroll key"))
            .collect()
    }

    /// Writes a batch's index records and its head (with the map journal's new length)
    /// atomically, and syncs them.
    pub fn commit(&self, commit: &Commit, journal_len: u64) -> Result<(), StorageError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        // The keys are hashes, so in log order each insert walks the memtable's skiplist to a
        // random place (a cache miss per level). Sorted, consecutive inserts share most of their
        // path. The keys of one commit are distinct, so the order changes nothing else.
        let mut leaves: Vec<(&Hash, u64)> = commit
            .leaves
            .iter()
            .map(|l| (&l.leaf_hash, l.index))
            .collect();
        leaves.sort_unstable();
        let mut siis: Vec<[u8; 24]> = commit
            .leaves
            .iter()
            .filter_map(|l| l.sii.as_deref().map(|s| sii_key(s, l.index)))
            .collect();
        siis.sort_unstable();
        for (hash, index) in leaves {
            batch.insert(&self.leaf, *hash, index.to_be_bytes());
        }
        for key in siis {
            batch.insert(&self.sii, key, []);
        }
        for leaf in commit.leaves.iter().filter(|l| l.enroll) {
            batch.insert(&self.enroll, leaf.index.to_be_bytes(), []);
        }
        batch.insert(
            &self.meta,
            HEAD_KEY,
            head_value(commit.size, journal_len, &commit.checkpoint),
        );
        batch.commit().map_err(db_err)
    }

    /// Syncs everything to disk.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncAll).map_err(db_err)
    }

    /// Bytes the index uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db.disk_space().map_err(db_err)
    }

    /// Replaces the layout record (tests of the refusal).
    #[cfg(test)]
    fn set_layout(&self, layout: u8) {
        self.meta.insert(LAYOUT_KEY, [layout]).expect("insert");
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
    fn an_index_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = KeyIndex::open(dir.path(), 1 << 20, false).expect("open");
        s.create(&meta(), b"cp0").expect("create");
        s.set_layout(6);
        let err = s.meta().expect_err("layout 6 refused").to_string();
        assert!(err.contains("storage layout 6;"), "{err}");
        assert!(err.contains("reads layout 5"), "{err}");
        s.set_layout(5);
        assert!(s.meta().expect("layout 5 read").is_some());
        assert!(matches!(
            s.create(&meta(), b"cp0"),
            Err(StorageError::AlreadyCreated)
        ));
    }

    #[test]
    fn commits_are_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = KeyIndex::open(dir.path(), 1 << 20, true).expect("open");
        s.create(&meta(), b"cp0").expect("create");
        let a = "tel:+14155550100";
        let b = "tel:+14155550101";
        let leaves = vec![
            leaf(0, None, true),
            leaf(1, Some(a), false),
            leaf(2, Some(b), false),
            leaf(3, Some(a), false),
        ];
        let commit = Commit {
            leaves: leaves.clone(),
            hashes_start: 0,
            hashes: vec![],
            size: 4,
            checkpoint: b"cp4".to_vec(),
            map: vec![],
        };
        s.commit(&commit, 77).expect("commit");
        drop(s);
        let s = KeyIndex::open(dir.path(), 1 << 20, true).expect("reopen");
        assert_eq!(s.meta().expect("meta"), Some(meta()));
        assert_eq!(
            s.head().expect("head"),
            Some(IndexHead {
                size: 4,
                journal_len: 77,
                checkpoint: b"cp4".to_vec()
            })
        );
        assert_eq!(s.sii_indices(a).expect("a"), vec![1, 3]);
        assert_eq!(s.sii_indices(b).expect("b"), vec![2]);
        assert!(s.sii_indices("tel:+1").expect("none").is_empty());
        assert_eq!(s.enrollments().expect("enroll"), vec![0]);
        for l in &leaves {
            assert_eq!(s.leaf_index(&l.leaf_hash).expect("get"), Some(l.index));
        }
        assert_eq!(s.leaf_index(&[7u8; 32]).expect("miss"), None);

        // A later batch extends an SII's list; another SII's is untouched.
        let more = Commit {
            leaves: vec![leaf(4, Some(b), false), leaf(5, Some(a), false)],
            hashes_start: 0,
            hashes: vec![],
            size: 6,
            checkpoint: b"cp6".to_vec(),
            map: vec![],
        };
        s.commit(&more, 99).expect("commit");
        assert_eq!(s.sii_indices(a).expect("a"), vec![1, 3, 5]);
        assert_eq!(s.sii_indices(b).expect("b"), vec![2, 4]);
        assert_eq!(s.head().expect("head").map(|h| h.size), Some(6));
    }
}
