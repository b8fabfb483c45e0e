//! The verifiable map (SPEC §9) as the log keeps and serves it.
//!
//! **What is stored, what is in memory.** The store keeps each map key's value (count and chain,
//! [`Storage::map_values`]), written in the same atomic commit as the batch whose map leaf commits
//! it: one record per batch with the values of the keys it touched. The map's nodes are derived
//! data, held in memory as the core's [`MapTree`] (about 130 bytes per key): [`MapStore::load`]
//! rebuilds them from the stored values at start and the ledger checks the root against the last
//! map leaf; the sequencer then updates them. Storing the nodes in sled took one insert per node
//! on every touched key's path (~20 at 1M keys) and made a batch's commit 6× slower
//! (docs/benchmarks.md), for nothing a restart cannot recompute.
//!
//! **How a batch updates it.** The sequencer *stages* the batch ([`MapStore::stage`]: the new
//! root and every node it changes, computed under a read lock, beside the tree hashing and while
//! lookups go on) and, after the storage commit, *commits* it ([`MapStore::advance`], a short
//! write lock that copies the staged nodes in).
//!
//! **Which version a lookup reads.** A lookup answers against the *published* head, which trails
//! the sequencer by one batch between a commit and its publication (sync, checkpoint lock,
//! witnesses), and a lookup that started on a head may still be reading while the next batch is
//! committed. Its map proof must be the map of exactly its checkpoint, or the client rejects it at
//! step 5. So the tree keeps the versions before its last [`KEEP`] commits
//! ([`MapTree::with_history`]), and a proof is computed under one read lock from the version of
//! the lookup's checkpoint size, consistent whatever the sequencer does meanwhile. A lookup on a
//! head older than every kept version gets [`MapError::NotKept`] and is answered again against the
//! newest head.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use ledger_core::map::{KeyProof, MapAddition, MapError, MapTree, MapValue, Staged};
use ledger_core::{Hash, TreeHash};

use crate::storage::StorageError;

/// How many batches' older versions are kept: a lookup may start on a head this many batches old
/// and still be answered from it.
pub const KEEP: usize = 16;

/// The map's nodes in memory, with the versions of the last [`KEEP`] batches (see the module doc).
#[derive(Debug)]
pub struct MapStore {
    tree: RwLock<MapTree>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl MapStore {
    /// Rebuilds the map of checkpoint size `size` from the stored values; returns the store and
    /// the map's root.
    pub fn load(
        th: TreeHash,
        values: &[(Hash, MapValue)],
        size: u64,
    ) -> Result<(MapStore, Hash), StorageError> {
        let tree = MapTree::from_values(th, values, size)
            .map_err(|e| StorageError::Corrupt {
                key: "map values".into(),
                reason: e.to_string(),
            })?
            .with_history(KEEP);
        let root = tree.root();
        Ok((
            MapStore {
                tree: RwLock::new(tree),
            },
            root,
        ))
    }

    /// The number of keys in the map.
    pub fn keys(&self) -> usize {
        read(&self.tree).keys()
    }

    /// Stages a batch's additions over the current map (the map of the last committed batch):
    /// the new root, the nodes to write, the touched keys' new values for the store.
    pub(crate) fn stage(&self, additions: &[MapAddition]) -> Result<Staged, MapError> {
        read(&self.tree).stage(additions)
    }

    /// Commits a staged batch that takes the map to checkpoint size `to`, keeping the version it
    /// overwrites readable.
    pub(crate) fn advance(&self, staged: Staged, to: u64) -> Result<(), MapError> {
        write(&self.tree).commit(staged, to)
    }

    /// Commits a staged batch of a DP mirror's span ([`MapTree::commit_pinned`]): the map of the
    /// served checkpoint, size `pinned`, stays readable until the span is verified and served.
    pub(crate) fn advance_pinned(
        &self,
        staged: Staged,
        to: u64,
        pinned: u64,
    ) -> Result<(), MapError> {
        write(&self.tree).commit_pinned(staged, to, pinned)
    }

    /// The proof for `key` in the map of checkpoint size `size` (a published head's).
    pub fn prove_at(&self, key: &Hash, size: u64) -> Result<KeyProof, MapError> {
        read(&self.tree).prove_at(key, size)
    }

    /// The root of the map of checkpoint size `size`.
    pub fn root_at(&self, size: u64) -> Result<Hash, MapError> {
        read(&self.tree).root_at(size)
    }

    /// Every key's current value, in key order (for tests and checks).
    pub fn values(&self) -> Vec<(Hash, ledger_core::map::MapValue)> {
        read(&self.tree).values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::journal;

    fn add(key: u8, index: u64) -> MapAddition {
        let mut k = [0u8; 32];
        k[0] = key;
        k[1] = (index % 7) as u8;
        MapAddition {
            key: k,
            index,
            leaf_hash: [index as u8; 32],
        }
    }

    /// Batches applied as the sequencer does (stage, store commit, advance): every kept
    /// checkpoint size proves exactly what a from-scratch map of that size proves, also between
    /// staging and advancing, an older size is refused, and the values the store keeps rebuild
    /// the same map at start.
    #[test]
    fn readers_see_the_map_of_their_checkpoint_and_the_values_rebuild_it() {
        let th = TreeHash::Blake3;
        // The stored map values: the journal as the store writes it.
        let mut stored: Vec<u8> = Vec::new();
        let (store, root) =
            MapStore::load(th, &journal::replay(&stored).expect("values"), 0).expect("load");
        assert_eq!(root, ledger_core::map::EMPTY);
        let mut reference = MapTree::new(th);
        let mut snapshots: Vec<(u64, MapTree)> = vec![(0, reference.clone())];
        let mut size = 0u64;
        let mut all_keys = Vec::new();
        for batch in 0..(KEEP as u64 + 4) {
            // Keys repeat across batches (index % 7), so chains grow and leaves move deeper.
            let additions: Vec<MapAddition> = (0..5)
                .map(|i| add((batch * 7 + i * 31) as u8 % 40, size + i))
                .collect();
            all_keys.extend(additions.iter().map(|a| a.key));
            let staged = store.stage(&additions).expect("stage");
            let to = size + 6;
            stored.extend(journal::encode(to, staged.values()).expect("record"));
            // Before `advance`, the old size still reads its map.
            assert_eq!(store.root_at(size).expect("root"), reference.root());
            let staged_root = staged.root();
            store.advance(staged, to).expect("advance");
            reference.apply(&additions).expect("apply");
            assert_eq!(staged_root, reference.root());
            size = to;
            snapshots.push((size, reference.clone()));
        }
        let oldest = snapshots[snapshots.len() - 1 - KEEP].0;
        for (at, snapshot) in &snapshots {
            if *at < oldest {
                assert!(matches!(store.root_at(*at), Err(MapError::NotKept { .. })));
                continue;
            }
            assert_eq!(
                store.root_at(*at).expect("root"),
                snapshot.root(),
                "size {at}"
            );
            for key in all_keys.iter().take(40) {
                assert_eq!(
                    store.prove_at(key, *at).expect("prove"),
                    snapshot.prove(key),
                    "size {at}"
                );
            }
        }
        // The stored values rebuild exactly the map the batches left in memory.
        let (again, root) =
            MapStore::load(th, &journal::replay(&stored).expect("values"), size).expect("load");
        assert_eq!(root, reference.root());
        assert_eq!(again.values(), store.values());
        assert_eq!(again.keys(), reference.keys());
        assert_eq!(read(&again.tree).nodes(), reference.nodes());
    }
}
