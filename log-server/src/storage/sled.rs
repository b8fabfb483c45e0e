//! [`Storage`] on sled 0.34: one tree, key prefixes per kind of record, so that one
//! [`sled::Batch`] (atomic across a crash: sled seals a batch as one unit in its log) holds a whole
//! sequencer batch, and `flush` makes it durable.
//!
//! Keys (all integers big-endian, so byte order is numeric order and prefix scans are ordered):
//!
//! | key                              | value                                                   |
//! |----------------------------------|---------------------------------------------------------|
//! | `B` ‖ index / 16                 | up to 16 consecutive leaves, each `u32` length ‖ bytes  |
//! | `T` ‖ stored-hash index / 64     | up to 64 consecutive 32-byte stored hashes              |
//! | `X` ‖ leaf hash                  | index                                                   |
//! | `S` ‖ SII ‖ `0x00` ‖ index       | empty (SIIs never contain `0x00`)                       |
//! | `E` ‖ index                      | empty (an enroll leaf)                                  |
//! | `V` ‖ tree size                  | the map keys the batch ending there touched, with their new values: `(key ‖ u64be(count) ‖ chain)*`, SPEC §9 |
//! | `M:meta`                         | JSON [`Meta`]                                           |
//! | `M:head`                         | size ‖ signed checkpoint note                           |
//! | `M:layout`                       | the layout version, `3`                                 |
//!
//! Leaves and stored hashes are written once, in order, so they are kept in small groups: a batch
//! of 256 claims writes ~25 group records instead of ~770 single ones (sled rewrites a node per
//! insert; per-key inserts were ~20% of the server's CPU), and the group being filled is read and
//! rewritten whole (at most 15 leaves or 63 hashes of it), which bounds the extra bytes written
//! when a quiet log commits one leaf at a time. The map is stored as a journal of its keys' values:
//! one record per batch with the new values of the keys it touched (72 bytes per key), so a batch
//! costs one insert for the map, where one record per key would cost one per touched key and
//! storing the map's nodes one per node on each touched key's path (~20 at 1M keys: measured at 6×
//! the batch's commit time, see docs/benchmarks.md). At start the journal is replayed (later values
//! win) and the nodes are rebuilt from the values and kept in memory ([`crate::map`]).
//!
//! Older layouts are not read: a data folder written by layout 1 (one key per leaf and per hash) or
//! layout 2 (before the verifiable map: its checkpoints do not end in map leaves, so its lookups
//! cannot prove completeness) is refused at start.

use std::path::Path;

use ledger_core::map::MapValue;
use ledger_core::Hash;

use super::{Commit, Meta, Storage, StorageError};

const LEAF_GROUP: u8 = b'B';
const HASH_GROUP: u8 = b'T';
/// Leaves per `B` record.
const LEAVES_PER_GROUP: u64 = 16;
/// Stored hashes per `T` record.
const HASHES_PER_GROUP: u64 = 64;
const LAYOUT_KEY: &[u8] = b"M:layout";
const LAYOUT: u8 = 3;
const LEAF_INDEX: u8 = b'X';
const SII: u8 = b'S';
const ENROLL: u8 = b'E';
const MAP_JOURNAL: u8 = b'V';
/// One journal item: key, count, chain.
const JOURNAL_ITEM: usize = 72;
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

fn journal_record(values: &[(Hash, MapValue)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(values.len() * JOURNAL_ITEM);
    for (key, v) in values {
        b.extend_from_slice(key);
        b.extend_from_slice(&v.count.to_be_bytes());
        b.extend_from_slice(&v.chain);
    }
    b
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

/// The leaves of a `B` record, in order.
fn decode_leaf_group(v: &[u8], group: u64) -> Result<Vec<&[u8]>, StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        key: format!("leaf group {group}"),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let (leaf, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| corrupt("truncated leaf"))?;
        out.push(leaf);
        rest = tail;
    }
    Ok(out)
}

fn push_leaf(v: &mut Vec<u8>, leaf: &[u8]) -> Result<(), StorageError> {
    let len = u32::try_from(leaf.len()).map_err(|_| StorageError::Corrupt {
        key: "leaf".into(),
        reason: format!("{} bytes do not fit a u32 length", leaf.len()),
    })?;
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(leaf);
    Ok(())
}

impl SledStorage {
    /// Opens (or creates) the store in folder `path` with a page cache of `cache_bytes`, zstd
    /// compressed or not (sled fixes that at creation and refuses a mismatch).
    pub fn open(
        path: &Path,
        cache_bytes: u64,
        compress: bool,
    ) -> Result<SledStorage, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .use_compression(compress)
            .compression_factor(1)
            .open()
            .map_err(db_err)?;
        Ok(SledStorage { db })
    }

    /// Adds the `B` records of `leaves` (consecutive indices) to `batch`: the group being filled is
    /// read, cut to the leaves before the first new one, and rewritten with the new ones.
    fn group_leaves(
        &self,
        leaves: &[super::NewLeaf],
        batch: &mut sled::Batch,
    ) -> Result<(), StorageError> {
        let Some(first) = leaves.first() else {
            return Ok(());
        };
        let mut group = first.index / LEAVES_PER_GROUP;
        let mut value = Vec::new();
        let at = (first.index % LEAVES_PER_GROUP) as usize;
        if at > 0 {
            let old = self.db.get(key_u64(LEAF_GROUP, group)).map_err(db_err)?;
            let old = old.as_deref().unwrap_or_default();
            let kept = decode_leaf_group(old, group)?;
            if kept.len() < at {
                return Err(StorageError::Corrupt {
                    key: format!("leaf group {group}"),
                    reason: format!("holds {} leaves, the batch starts at {at}", kept.len()),
                });
            }
            for l in kept.iter().take(at) {
                push_leaf(&mut value, l)?;
            }
        }
        for (n, leaf) in leaves.iter().enumerate() {
            if leaf.index != first.index + n as u64 {
                return Err(StorageError::Corrupt {
                    key: format!("leaf {}", leaf.index),
                    reason: "the batch's leaves are not consecutive".into(),
                });
            }
            if leaf.index / LEAVES_PER_GROUP != group {
                batch.insert(&key_u64(LEAF_GROUP, group), std::mem::take(&mut value));
                group = leaf.index / LEAVES_PER_GROUP;
            }
            push_leaf(&mut value, &leaf.bytes)?;
        }
        batch.insert(&key_u64(LEAF_GROUP, group), value);
        Ok(())
    }

    /// Adds the `T` records of the stored hashes at `start..` to `batch`, like
    /// [`SledStorage::group_leaves`].
    fn group_hashes(
        &self,
        start: u64,
        hashes: &[Hash],
        batch: &mut sled::Batch,
    ) -> Result<(), StorageError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let mut group = start / HASHES_PER_GROUP;
        let mut value = Vec::with_capacity(HASHES_PER_GROUP as usize * 32);
        let at = ((start % HASHES_PER_GROUP) * 32) as usize;
        if at > 0 {
            let old = self.db.get(key_u64(HASH_GROUP, group)).map_err(db_err)?;
            let kept = old
                .as_deref()
                .and_then(|o| o.get(..at))
                .ok_or_else(|| StorageError::MissingHash(start - 1))?;
            value.extend_from_slice(kept);
        }
        for (i, h) in (start..).zip(hashes) {
            if i / HASHES_PER_GROUP != group {
                batch.insert(&key_u64(HASH_GROUP, group), std::mem::take(&mut value));
                group = i / HASHES_PER_GROUP;
            }
            value.extend_from_slice(h);
        }
        batch.insert(&key_u64(HASH_GROUP, group), value);
        Ok(())
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
        let layout = self.db.get(LAYOUT_KEY).map_err(db_err)?;
        if layout.as_deref() != Some(&[LAYOUT][..]) {
            let found = match layout.as_deref() {
                None => "1".to_string(),
                Some([v]) => v.to_string(),
                Some(other) => format!("{other:?}"),
            };
            let why = if found == "2" {
                " (written before the verifiable map of SPEC §9: its checkpoints do not end in \
                 map leaves, so its lookups cannot prove they are complete)"
            } else {
                ""
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
        batch.insert(LAYOUT_KEY, &[LAYOUT][..]);
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
        let group = index / LEAVES_PER_GROUP;
        let Some(v) = self.db.get(key_u64(LEAF_GROUP, group)).map_err(db_err)? else {
            return Ok(None);
        };
        let leaves = decode_leaf_group(&v, group)?;
        let at = (index % LEAVES_PER_GROUP) as usize;
        Ok(leaves.get(at).map(|l| l.to_vec()))
    }

    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        if end <= start {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0).min(4096));
        let (first, last) = (start / LEAVES_PER_GROUP, (end - 1) / LEAVES_PER_GROUP);
        let mut next = start;
        for kv in self
            .db
            .range(key_u64(LEAF_GROUP, first)..=key_u64(LEAF_GROUP, last))
        {
            let (k, v) = kv.map_err(db_err)?;
            let group = trailing_u64(&k, "leaf group key")?;
            if group != next / LEAVES_PER_GROUP {
                break;
            }
            let leaves = decode_leaf_group(&v, group)?;
            let skip = (next % LEAVES_PER_GROUP) as usize;
            let want = usize::try_from(end - next).unwrap_or(usize::MAX);
            for l in leaves.iter().skip(skip).take(want) {
                out.push(l.to_vec());
                next += 1;
            }
            if next % LEAVES_PER_GROUP != 0 || next >= end {
                break;
            }
        }
        Ok(out)
    }

    fn hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StorageError> {
        // Proofs read a few hashes from each of a few groups: fetch each group once per call.
        let mut groups: Vec<(u64, sled::IVec)> = Vec::new();
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            let g = i / HASHES_PER_GROUP;
            let v = match groups.iter().find(|(k, _)| *k == g) {
                Some((_, v)) => v.clone(),
                None => {
                    let v = self
                        .db
                        .get(key_u64(HASH_GROUP, g))
                        .map_err(db_err)?
                        .ok_or(StorageError::MissingHash(i))?;
                    groups.push((g, v.clone()));
                    v
                }
            };
            let at = ((i % HASHES_PER_GROUP) * 32) as usize;
            let h = v
                .get(at..at + 32)
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or(StorageError::MissingHash(i))?;
            out.push(h);
        }
        Ok(out)
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

    fn map_values(&self) -> Result<Vec<(Hash, MapValue)>, StorageError> {
        let mut values: std::collections::HashMap<Hash, MapValue> =
            std::collections::HashMap::new();
        for kv in self.db.scan_prefix([MAP_JOURNAL]) {
            let (k, v) = kv.map_err(db_err)?;
            let size = trailing_u64(&k, "map journal key")?;
            if v.len() % JOURNAL_ITEM != 0 {
                return Err(StorageError::Corrupt {
                    key: format!("map journal at size {size}"),
                    reason: format!("{} bytes is not a whole number of items", v.len()),
                });
            }
            for item in v.chunks_exact(JOURNAL_ITEM) {
                let (key, rest) = item.split_at(32);
                let (count, chain) = rest.split_at(8);
                let (Ok(key), Ok(count), Ok(chain)) = (
                    Hash::try_from(key),
                    <[u8; 8]>::try_from(count),
                    Hash::try_from(chain),
                ) else {
                    // The chunks are exactly JOURNAL_ITEM bytes, so this cannot happen; if it did,
                    // the record would be unreadable, not skippable.
                    return Err(StorageError::Corrupt {
                        key: format!("map journal at size {size}"),
                        reason: "an item of the wrong length".into(),
                    });
                };
                values.insert(
                    key,
                    MapValue {
                        count: u64::from_be_bytes(count),
                        chain,
                    },
                );
            }
        }
        let mut out: Vec<(Hash, MapValue)> = values.into_iter().collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        Ok(out)
    }

    fn commit(&self, commit: &Commit) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        if !commit.map.is_empty() {
            batch.insert(
                &key_u64(MAP_JOURNAL, commit.size)[..],
                journal_record(&commit.map),
            );
        }
        for leaf in &commit.leaves {
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
        self.group_leaves(&commit.leaves, &mut batch)?;
        self.group_hashes(commit.hashes_start, &commit.hashes, &mut batch)?;
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
            map: vec![(
                [0x80; 32],
                MapValue {
                    count: 2,
                    chain: [5; 32],
                },
            )],
        };
        s.commit(&c).expect("commit");
        let newer = MapValue {
            count: 3,
            chain: [6; 32],
        };
        let first = MapValue {
            count: 1,
            chain: [1; 32],
        };
        s.commit(&Commit {
            leaves: Vec::new(),
            hashes_start: 3,
            hashes: Vec::new(),
            size: 4,
            checkpoint: b"cp4".to_vec(),
            map: vec![([0x80; 32], newer), ([0x01; 32], first)],
        })
        .expect("commit");
        assert_eq!(
            s.map_values().expect("values"),
            vec![([0x01; 32], first), ([0x80; 32], newer)]
        );
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
            let s = SledStorage::open(dir.path(), 1 << 20, false).expect("open");
            s.create(&meta(), b"cp0").expect("create");
            s.commit(&Commit {
                leaves: vec![leaf(0, Some("mailto:a@example.org"), false)],
                hashes_start: 0,
                hashes: vec![[7; 32]],
                size: 1,
                checkpoint: b"cp1".to_vec(),
                map: Vec::new(),
            })
            .expect("commit");
        }
        let s = SledStorage::open(dir.path(), 1 << 20, false).expect("reopen");
        assert_eq!(s.head().expect("head"), Some((1, b"cp1".to_vec())));
        assert_eq!(s.sii_indices("mailto:a@example.org").expect("sii"), vec![0]);
        assert_eq!(s.hashes(&[0]).expect("hash"), vec![[7; 32]]);
    }

    /// Batches of every size against a plain reference: group boundaries, partial groups read and
    /// rewritten, leaves of different lengths, and reads across groups.
    #[test]
    fn groups_hold_exactly_what_was_committed() {
        let s = SledStorage::temporary().expect("open");
        s.create(&meta(), b"cp0").expect("create");
        let mut leaves: Vec<Vec<u8>> = Vec::new();
        let mut hashes: Vec<Hash> = Vec::new();
        for (round, n) in [1usize, 3, 12, 16, 17, 40, 1, 1, 300, 15, 2]
            .into_iter()
            .enumerate()
        {
            let start = leaves.len() as u64;
            let new: Vec<NewLeaf> = (start..start + n as u64)
                .map(|i| {
                    let bytes = vec![b'a' + (i % 26) as u8; (i % 37) as usize];
                    NewLeaf {
                        index: i,
                        leaf_hash: TreeHash::Blake3.leaf_hash(&bytes),
                        bytes,
                        sii: None,
                        enroll: false,
                    }
                })
                .collect();
            // About two stored hashes per leaf, like the tree.
            let new_hashes: Vec<Hash> = (0..2 * n + round % 2)
                .map(|j| [((hashes.len() + j) % 251) as u8; 32])
                .collect();
            s.commit(&Commit {
                leaves: new.clone(),
                hashes_start: hashes.len() as u64,
                hashes: new_hashes.clone(),
                size: start + n as u64,
                checkpoint: b"cp".to_vec(),
                map: Vec::new(),
            })
            .expect("commit");
            leaves.extend(new.into_iter().map(|l| l.bytes));
            hashes.extend(new_hashes);
            let size = leaves.len() as u64;
            assert_eq!(
                s.leaves(0, size + 5).expect("leaves"),
                leaves,
                "round {round}"
            );
            for a in [0, 1, 15, 16, 17, size / 2, size - 1]
                .into_iter()
                .filter(|a| *a < size)
            {
                assert_eq!(s.leaf(a).expect("leaf"), leaves.get(a as usize).cloned());
                let b = (a + 33).min(size);
                assert_eq!(
                    s.leaves(a, b).expect("leaves"),
                    leaves[a as usize..b as usize].to_vec(),
                    "leaves {a}..{b}"
                );
            }
            assert_eq!(s.leaf(size).expect("leaf"), None);
            let all: Vec<u64> = (0..hashes.len() as u64).rev().collect();
            let mut want = hashes.clone();
            want.reverse();
            assert_eq!(s.hashes(&all).expect("hashes"), want);
            assert!(matches!(
                s.hashes(&[hashes.len() as u64]),
                Err(StorageError::MissingHash(_))
            ));
        }
    }

    #[test]
    fn a_data_folder_of_another_layout_is_refused() {
        let s = SledStorage::temporary().expect("open");
        s.create(&meta(), b"cp0").expect("create");
        s.db.remove(LAYOUT_KEY).expect("remove");
        let err = s.meta().expect_err("layout 1 refused").to_string();
        assert!(err.contains("storage layout 1;"), "{err}");
        assert!(err.contains("reads layout 3"), "{err}");
        s.db.insert(LAYOUT_KEY, &[2u8][..]).expect("insert");
        let err = s.meta().expect_err("layout 2 refused").to_string();
        assert!(
            err.contains("storage layout 2 (written before the verifiable map"),
            "{err}"
        );
        assert!(err.contains("start a new log"), "{err}");
        s.db.insert(LAYOUT_KEY, &[3u8][..]).expect("insert");
        assert!(s.meta().expect("layout 3 read").is_some());
    }
}
