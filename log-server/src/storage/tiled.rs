//! The data folder's store: the tree as files ([`TileFiles`]: C2SP tiles and entry bundles under
//! `public/`, the flat `hashes` file) and everything looked up by key in the index
//! ([`KeyIndex`] under `index/`), with the commit order that keeps the two in step.
//!
//! A commit ([`Storage::commit`], the sequencer's steps 4–6) writes and syncs the files first and
//! the index last: the index's head (size and signed checkpoint, in the same index batch as the
//! batch's index records) is what makes the files count. So after a crash or an I/O error at any
//! point before the index commit, the head is the old one and the files beyond it are leftovers
//! that [`TileFiles::recover`] (at start) or [`TileFiles::remove_beyond`] (at once) removes, and
//! the same or another batch may be written in their place.

use std::path::{Path, PathBuf};

use ledger_core::map::MapValue;
use ledger_core::tile::Tile;
use ledger_core::Hash;

use super::files::{io_err, TileFiles, MAX_BATCH_LEAVES};
use super::index::KeyIndex;
use super::{Commit, Meta, Storage, StorageError};
use crate::fault;

/// The folder under the data folder that holds the index.
pub const INDEX_DIR: &str = "index";
/// Where storage layouts 1–4 kept their index (in sled): a data folder with it is refused.
pub const SLED_INDEX_DIR: &str = "db";

/// The store of one data folder.
#[derive(Debug)]
pub struct TiledStorage {
    index: KeyIndex,
    files: TileFiles,
}

impl TiledStorage {
    /// Opens the store of data folder `data` (creating an empty one when there is none), with an
    /// index block cache of `cache_bytes`, LZ4 compressed or not. A folder of an older layout, or
    /// with tree files but no index, is refused before anything in it is changed. Reads of the
    /// tree wait for [`Storage::recover`].
    pub fn open(
        data: &Path,
        cache_bytes: u64,
        compress: bool,
    ) -> Result<TiledStorage, StorageError> {
        let sled = data.join(SLED_INDEX_DIR);
        if sled.exists() {
            return Err(StorageError::Corrupt {
                key: "layout".into(),
                reason: format!(
                    "the data folder {} has its index in sled ({}): storage layout 4 or older; \
                     this log-server reads layout 5 (the index in fjall, {INDEX_DIR}/) only. \
                     There is no migration: start a new log (a new --data folder and a new log \
                     key, so that clients and witnesses pin it afresh), and keep serving the old \
                     one with the log-server release that wrote it",
                    data.display(),
                    sled.display()
                ),
            });
        }
        let index = KeyIndex::open(&data.join(INDEX_DIR), cache_bytes, compress)?;
        let created = index.meta()?.is_some();
        let files = TileFiles::open(data)?;
        if !created && files.hash_range(0, 1).is_ok() {
            return Err(StorageError::Corrupt {
                key: "hashes".into(),
                reason: format!(
                    "the data folder {} is damaged: it holds a tree's hashes but its \
                     index ({}) holds no log (the index was lost); restore the data \
                     folder from a backup",
                    data.display(),
                    data.join(INDEX_DIR).display()
                ),
            });
        }
        Ok(TiledStorage { index, files })
    }

    /// The folder that holds the C2SP static layout (`checkpoint`, `tile/`).
    pub fn public_dir(&self) -> PathBuf {
        self.files.public_dir().to_path_buf()
    }
}

impl Storage for TiledStorage {
    fn meta(&self) -> Result<Option<Meta>, StorageError> {
        self.index.meta()
    }

    fn create(&self, meta: &Meta, checkpoint: &[u8]) -> Result<(), StorageError> {
        self.index.create(meta, checkpoint)
    }

    fn head(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        Ok(self.index.head()?.map(|h| (h.size, h.checkpoint)))
    }

    fn recover(&self, size: u64) -> Result<(), StorageError> {
        let head = self.index.head()?.ok_or_else(|| StorageError::Corrupt {
            key: "head".into(),
            reason: "no head to recover to".into(),
        })?;
        if head.size != size {
            return Err(StorageError::Corrupt {
                key: "head".into(),
                reason: format!("the index's head is {}, not {size}", head.size),
            });
        }
        for path in self.files.recover(size, head.journal_len)? {
            tracing::info!(path = %path.display(), "removed a file an interrupted commit left beyond the head, or rewrote a partial tile of the head from the stored hashes");
        }
        Ok(())
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.files.leaves(index, index.saturating_add(1))?.pop())
    }

    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        self.files.leaves(start, end)
    }

    fn hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StorageError> {
        self.files.hashes(indexes)
    }

    fn hash_range(&self, start: u64, end: u64) -> Result<Vec<Hash>, StorageError> {
        self.files.hash_range(start, end)
    }

    fn tile(&self, tile: &Tile) -> Result<Vec<u8>, StorageError> {
        self.files.tile(tile)
    }

    fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.index.leaf_index(leaf_hash)
    }

    fn sii_indices(&self, sii: &str) -> Result<Vec<u64>, StorageError> {
        self.index.sii_indices(sii)
    }

    fn enrollments(&self) -> Result<Vec<u64>, StorageError> {
        self.index.enrollments()
    }

    fn map_values(&self) -> Result<Vec<(Hash, MapValue)>, StorageError> {
        self.files.map_values()
    }

    fn commit(&self, commit: &Commit) -> Result<(), StorageError> {
        let old = self.files.size();
        let appended = commit.size.checked_sub(old);
        if appended != Some(commit.leaves.len() as u64)
            || commit.leaves.len() as u64 > MAX_BATCH_LEAVES
        {
            return Err(StorageError::Corrupt {
                key: "commit".into(),
                reason: format!(
                    "{} leaves cannot grow the tree from {old} to {}",
                    commit.leaves.len(),
                    commit.size
                ),
            });
        }
        // Steps 4 and 5: the files, written and synced; on any error, nothing of them counts and
        // they are removed at once (best effort: recovery at start removes them otherwise).
        let began = std::time::Instant::now();
        let mut wrote = began;
        let files = self.files.write(old, commit).and_then(|written| {
            fault::crash_point("files-written");
            wrote = std::time::Instant::now();
            let journal_len = written.journal_len;
            self.files.sync(written).map(|()| journal_len)
        });
        let synced = std::time::Instant::now();
        let journal_len = match files {
            Ok(len) => len,
            Err(e) => {
                if let Err(cleanup) = self.files.remove_beyond(old) {
                    tracing::warn!(error = %cleanup, "removing the files of a failed commit");
                }
                return Err(e);
            }
        };
        fault::crash_point("files-synced");
        fault::point("index-commit").map_err(|e| io_err("committing the index", e))?;
        // Step 6: the index and the head, one atomic index batch, synced.
        self.index.commit(commit, journal_len)?;
        tracing::debug!(
            write_us = wrote.duration_since(began).as_micros() as u64,
            sync_us = synced.duration_since(wrote).as_micros() as u64,
            index_us = synced.elapsed().as_micros() as u64,
            "commit steps"
        );
        fault::crash_point("index-committed");
        self.files.set_size(commit.size, journal_len);
        Ok(())
    }

    fn publish(&self, checkpoint: &[u8], old_size: u64, new_size: u64) -> Result<(), StorageError> {
        self.files
            .publish_checkpoint(checkpoint, new_size)
            .map_err(|e| io_err("publishing the checkpoint file", e))?;
        self.files
            .collect_partials(old_size, new_size)
            .map_err(|e| io_err("removing partial tiles", e))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.index.flush()
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        let files = self
            .files
            .size_on_disk()
            .map_err(|e| io_err("measuring the tile files", e))?;
        Ok(self.index.size_on_disk()? + files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::NewLeaf;
    use ledger_core::tile::{
        entry_bundles_for_size, read_tile_data, tiles_for_size, try_encode_entry_bundle, TILE_WIDTH,
    };
    use ledger_core::tree::{stored_hash_count, stored_hashes, HashReader, MemoryHashStore};
    use ledger_core::TreeHash;

    const TH: TreeHash = TreeHash::Blake3;

    fn meta() -> Meta {
        Meta {
            origin: "example.org/log".into(),
            hash: TH,
            vkey: "example.org/log+00000000+AA".into(),
            created: 1,
        }
    }

    /// A log under test: the store and a plain in-memory reference of the same tree.
    struct Fixture {
        dir: tempfile::TempDir,
        store: TiledStorage,
        leaves: Vec<Vec<u8>>,
        tree: MemoryHashStore,
        /// The map values the committed batches left.
        map: std::collections::BTreeMap<Hash, MapValue>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = TiledStorage::open(dir.path(), 1 << 20, false).expect("open");
            store.create(&meta(), b"cp0").expect("create");
            store.recover(0).expect("recover");
            Fixture {
                dir,
                store,
                leaves: Vec::new(),
                tree: MemoryHashStore::new(TH),
                map: std::collections::BTreeMap::new(),
            }
        }

        /// The commit that appends `n` leaves of assorted lengths (SIIs on every third).
        fn next(&self, n: u64) -> Commit {
            let start = self.leaves.len() as u64;
            let mut tree = self.tree.clone();
            let mut hashes = Vec::new();
            let leaves: Vec<NewLeaf> = (start..start + n)
                .map(|i| {
                    let mut bytes = format!("leaf {i} ").into_bytes();
                    bytes.resize(bytes.len() + (i % 37) as usize, b'a' + (i % 26) as u8);
                    let leaf_hash = TH.leaf_hash(&bytes);
                    let new = stored_hashes(TH, i, &leaf_hash, &tree).expect("hashes");
                    tree.append_leaf(&bytes);
                    hashes.extend(new);
                    NewLeaf {
                        index: i,
                        leaf_hash,
                        bytes,
                        sii: (i % 3 == 0).then(|| format!("tel:+1415555{:04}", i % 100)),
                        enroll: i == 0,
                    }
                })
                .collect();
            // Map values for a few keys, some of them touched again by later batches.
            let map = (0..n.min(5))
                .map(|k| {
                    let mut key = [0u8; 32];
                    key[0] = ((start + k) % 7) as u8;
                    (
                        key,
                        MapValue {
                            count: start + k,
                            chain: [(start % 251) as u8; 32],
                        },
                    )
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            Commit {
                leaves,
                hashes_start: stored_hash_count(start),
                hashes,
                size: start + n,
                checkpoint: format!("cp{}", start + n).into_bytes(),
                map,
            }
        }

        fn apply(&mut self, c: &Commit) {
            self.map.extend(c.map.iter().copied());
            for l in &c.leaves {
                self.tree.append_leaf(&l.bytes);
                self.leaves.push(l.bytes.clone());
            }
        }

        fn size(&self) -> u64 {
            self.leaves.len() as u64
        }

        /// Every tile and bundle of the head is on disk under `public/` with exactly the
        /// reference's bytes, and nothing else is.
        fn check_files(&self) {
            let size = self.size();
            assert_eq!(
                self.store.map_values().expect("map values"),
                self.map.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
                "the journal replays to the committed batches' values"
            );
            let mut want = std::collections::BTreeSet::new();
            for tile in tiles_for_size(size) {
                let data = std::fs::read(self.store.public_dir().join(tile.path()))
                    .unwrap_or_else(|e| panic!("{}: {e}", tile.path()));
                assert_eq!(
                    data,
                    read_tile_data(&tile, &self.tree).expect("ref"),
                    "{}",
                    tile.path()
                );
                want.insert(tile.path());
            }
            for bundle in entry_bundles_for_size(size) {
                let first = (bundle.index * u64::from(TILE_WIDTH)) as usize;
                let refs: Vec<&[u8]> = self.leaves[first..first + usize::from(bundle.width)]
                    .iter()
                    .map(Vec::as_slice)
                    .collect();
                let data = std::fs::read(self.store.public_dir().join(bundle.path()))
                    .unwrap_or_else(|e| panic!("{}: {e}", bundle.path()));
                assert_eq!(
                    data,
                    try_encode_entry_bundle(&refs).expect("enc"),
                    "{}",
                    bundle.path()
                );
                want.insert(bundle.path());
            }
            // Older partials of the head's partial tiles may stay; nothing beyond the head may.
            for path in files_under(&self.store.public_dir().join("tile")) {
                let rel = path
                    .strip_prefix(self.store.public_dir())
                    .expect("under")
                    .to_string_lossy()
                    .to_string();
                let tile = Tile::parse_path(&rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert!(tile.is_within(size), "{rel} is beyond the head {size}");
                assert!(
                    want.contains(&rel) || tile.is_partial() && tile_is_head_partial(&tile, size),
                    "{rel} is redundant at size {size}"
                );
            }
        }
    }

    /// Opens the store in `dir` again: the index releases its folder lock only once the dropped
    /// store's threads are done, so an open right after a drop may find it still held.
    fn reopen(dir: &Path) -> TiledStorage {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match TiledStorage::open(dir, 1 << 20, false) {
                Ok(s) => return s,
                Err(e)
                    if e.to_string().contains("lock") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
    }

    /// Whether `tile` is a narrower partial of a tile the tree of `size` has as partial.
    fn tile_is_head_partial(tile: &Tile, size: u64) -> bool {
        ledger_core::tile::tile_width_at(tile.level, tile.index, size) < TILE_WIDTH
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    /// Batches of every size: tile and bundle boundaries, partial tiles extended and completed,
    /// level-1 tiles; after each, the files are exactly the reference's, and reads agree.
    #[test]
    fn batches_write_exactly_the_tiles_of_the_head() {
        let mut f = Fixture::new();
        for n in [1u64, 3, 12, 240, 1, 255, 256, 300, 1, 1, 65_536 - 1000, 17] {
            let c = f.next(n);
            f.store.commit(&c).expect("commit");
            f.store
                .publish(&c.checkpoint, f.size(), c.size)
                .expect("publish");
            f.apply(&c);
            f.check_files();
            let size = f.size();
            assert_eq!(
                f.store.leaves(0, size + 5).expect("leaves").len() as u64,
                size
            );
            for a in [0, 1, 255, 256, 257, size / 2, size - 1] {
                if a < size {
                    assert_eq!(
                        f.store.leaf(a).expect("leaf"),
                        Some(f.leaves[a as usize].clone())
                    );
                }
            }
            assert_eq!(f.store.leaf(size).expect("leaf"), None);
            let all: Vec<u64> = (0..stored_hash_count(size)).collect();
            assert_eq!(
                f.store.hashes(&all).expect("hashes"),
                f.tree.read_hashes(&all).expect("ref")
            );
            assert_eq!(
                f.store.hash_range(0, all.len() as u64).expect("range"),
                f.store.hashes(&all).expect("hashes")
            );
            assert!(matches!(
                f.store.hashes(&[all.len() as u64]),
                Err(StorageError::MissingHash(_))
            ));
        }
        assert_eq!(
            f.store.head().expect("head"),
            Some((f.size(), format!("cp{}", f.size()).into_bytes()))
        );
        // Index records.
        assert_eq!(f.store.enrollments().expect("enrollments"), vec![0]);
        assert_eq!(
            f.store
                .leaf_index(&TH.leaf_hash(&f.leaves[5]))
                .expect("idx"),
            Some(5)
        );
        let sii = f.store.sii_indices("tel:+14155550003").expect("sii");
        assert!(
            sii.contains(&3) && sii.iter().all(|i| i % 3 == 0),
            "{sii:?}"
        );
        assert!(f.store.size_on_disk().expect("disk") > 0);
        // Every partial width the head covers is served, cut from the files.
        let size = f.size();
        for tile in tiles_for_size(size)
            .into_iter()
            .filter(|t| t.level == 0)
            .take(2)
        {
            let partial = Tile { width: 7, ..tile };
            assert_eq!(
                f.store.tile(&partial).expect("tile"),
                read_tile_data(&partial, &f.tree).expect("ref")
            );
        }
    }

    /// A commit whose files were written (or half written, or synced) but whose index commit
    /// never happened leaves files beyond the head; reopening removes them and the next commit
    /// (other leaves at the same indices) is read back exactly.
    #[test]
    fn files_of_an_uncommitted_batch_are_removed_at_start() {
        let mut f = Fixture::new();
        let first = f.next(300);
        f.store.commit(&first).expect("commit");
        f.apply(&first);
        // A batch written and synced but not indexed (as a crash before step 6 leaves it).
        let lost = f.next(1000);
        let written = f.store.files.write(f.size(), &lost).expect("write");
        f.store.files.sync(written).expect("sync");
        // … and a temporary file of a half-written one.
        std::fs::write(f.store.public_dir().join("tile/0/.tmp-009"), b"half").expect("tmp");
        let Fixture {
            dir,
            store,
            leaves,
            tree,
            map,
        } = f;
        drop(store);
        let store = reopen(dir.path());
        store.recover(300).expect("recover");
        let mut f = Fixture {
            dir,
            store,
            leaves,
            tree,
            map,
        };
        f.check_files();
        assert!(!f.store.public_dir().join("tile/0/.tmp-009").exists());
        assert_eq!(f.store.files.size(), 300);
        // Other leaves at the same indices.
        let mut other = f.next(700);
        for l in &mut other.leaves {
            l.bytes.push(b'!');
        }
        // Recompute the hashes for the changed bytes.
        let mut tree = f.tree.clone();
        other.hashes.clear();
        for l in &mut other.leaves {
            l.leaf_hash = TH.leaf_hash(&l.bytes);
            other
                .hashes
                .extend(stored_hashes(TH, l.index, &l.leaf_hash, &tree).expect("h"));
            tree.append_leaf(&l.bytes);
        }
        f.store.commit(&other).expect("commit");
        f.store
            .publish(&other.checkpoint, 300, 1000)
            .expect("publish");
        f.apply(&other);
        f.check_files();
    }

    /// An injected-at-the-files failure leaves nothing: the same batch then commits.
    #[test]
    fn a_failed_file_write_leaves_nothing_beyond_the_head() {
        let mut f = Fixture::new();
        let first = f.next(10);
        f.store.commit(&first).expect("commit");
        f.apply(&first);
        let next = f.next(600);
        let written = f.store.files.write(f.size(), &next).expect("write");
        drop(written);
        f.store.files.remove_beyond(f.size()).expect("remove");
        f.check_files();
        f.store.commit(&next).expect("commit");
        f.store.publish(&next.checkpoint, 10, 610).expect("publish");
        f.apply(&next);
        f.check_files();
    }

    #[test]
    fn an_index_without_its_files_or_files_without_an_index_are_refused() {
        let mut f = Fixture::new();
        let c = f.next(40);
        f.store.commit(&c).expect("commit");
        f.apply(&c);
        let Fixture { dir, store, .. } = f;
        drop(store);
        // The head's partial bundle lost.
        let bundle = dir.path().join("public/tile/entries/000.p/40");
        let saved = std::fs::read(&bundle).expect("read");
        std::fs::remove_file(&bundle).expect("rm");
        let store = reopen(dir.path());
        let err = store.recover(40).expect_err("refused");
        assert!(err.to_string().contains("tile/entries/000.p/40"), "{err}");
        std::fs::write(&bundle, saved).expect("restore");
        store.recover(40).expect("opens again");
        // The head's partial hash tile (not synced before the commit point) lost or torn: it is
        // rewritten from the stored hashes.
        let tile = dir.path().join("public/tile/0/000.p/40");
        let good = std::fs::read(&tile).expect("read");
        std::fs::write(&tile, &good[..100]).expect("tear");
        store.recover(40).expect("repaired");
        assert_eq!(std::fs::read(&tile).expect("read"), good);
        std::fs::remove_file(&tile).expect("rm");
        store.recover(40).expect("repaired");
        assert_eq!(std::fs::read(&tile).expect("read"), good);
        drop(store);
        // The index lost.
        std::fs::remove_dir_all(dir.path().join(INDEX_DIR)).expect("rm db");
        let err = TiledStorage::open(dir.path(), 1 << 20, false).expect_err("refused");
        assert!(err.to_string().contains("is damaged"), "{err}");
    }

    #[test]
    fn a_data_folder_with_a_sled_index_is_refused_before_anything_is_opened() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join(SLED_INDEX_DIR)).expect("mkdir db");
        let err = TiledStorage::open(dir.path(), 1 << 20, false).expect_err("refused");
        let err = err.to_string();
        assert!(err.contains("storage layout 4 or older"), "{err}");
        assert!(err.contains("start a new log"), "{err}");
        assert!(
            !dir.path().join(INDEX_DIR).exists(),
            "no index was created beside the old one"
        );
    }
}
