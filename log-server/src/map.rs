//! The verifiable map (SPEC §9) as the log keeps and serves it.
//!
//! The map's nodes live in the store ([`Storage::map_node`]) and are always the map of the *stored*
//! head: the sequencer writes a batch's changed nodes in the same atomic commit as its leaves and
//! its map leaf. A lookup, though, answers against the *published* head, which trails the store
//! by one batch between a commit and its publication (sync, checkpoint lock, witnesses), and a
//! lookup that started on a head may still be reading while the next batch commits. Its map proof
//! must be the map of exactly its checkpoint, or the client rejects it at step 5.
//!
//! So before each commit the sequencer records the values the batch overwrites ([`MapVersions`]:
//! one [`Undo`] per batch, for the last [`KEEP`] batches, in memory), and a reader for the map of
//! checkpoint size `h` ([`MapAt`]) reads the store and then takes a node's value from the oldest
//! undo at or after `h` that holds it. Reading the store *before* looking at the undos makes this
//! right whichever side of a commit the read falls on: an undo is installed before its commit, so
//! a store value newer than `h` always has its older value in an undo already. (sled offers no
//! snapshots to do this for us; versioning every stored node instead would double the map's
//! writes and need a collector.) A reader older than every kept undo gets
//! [`MapError::Storage`] and the lookup retries against the newest head.
//!
//! Nothing here needs to survive a crash: after a restart, the store and the head agree again.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use ledger_core::map::{MapError, MapNode, MapNodeReader, NodeId};

use crate::storage::Storage;

/// How many batches' undos are kept: a lookup may start on a head this many batches old and
/// still be answered from it.
pub const KEEP: usize = 16;

/// The values of the nodes one batch overwrote, as they were in the map of checkpoint size
/// `version` (`None`: the node did not exist).
#[derive(Debug)]
pub struct Undo {
    version: u64,
    old: HashMap<NodeId, Option<MapNode>>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The undos of the last batches, oldest first, versions increasing.
    undos: VecDeque<Arc<Undo>>,
    /// The checkpoint size the store's map is at, or is being committed to.
    latest: u64,
}

/// The undos of the last [`KEEP`] batches (see the module doc).
#[derive(Debug, Default)]
pub struct MapVersions {
    kept: RwLock<Kept>,
}

impl MapVersions {
    /// No undos yet; the store's map is that of checkpoint size `size`.
    pub fn new(size: u64) -> MapVersions {
        MapVersions {
            kept: RwLock::new(Kept {
                undos: VecDeque::new(),
                latest: size,
            }),
        }
    }

    /// Records, before the commit that takes the store's map from checkpoint size `from` to `to`,
    /// the values at `from` of every node the commit writes.
    pub(crate) fn push(&self, from: u64, to: u64, old: HashMap<NodeId, Option<MapNode>>) {
        let mut kept = match self.kept.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        kept.undos.push_back(Arc::new(Undo { version: from, old }));
        while kept.undos.len() > KEEP {
            kept.undos.pop_front();
        }
        kept.latest = to;
    }

    /// The value in the map of checkpoint size `size` of the node whose stored value is `stored`
    /// (read before this call).
    fn at(
        &self,
        id: &NodeId,
        stored: Option<MapNode>,
        size: u64,
    ) -> Result<Option<MapNode>, MapError> {
        let kept = match self.kept.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if size < kept.latest && kept.undos.front().is_none_or(|u| u.version > size) {
            return Err(MapError::Storage(format!(
                "the map of checkpoint size {size} is no longer kept (the log is at {})",
                kept.latest
            )));
        }
        for undo in kept.undos.iter().filter(|u| u.version >= size) {
            if let Some(old) = undo.old.get(id) {
                return Ok(*old);
            }
        }
        Ok(stored)
    }
}

/// The map of one checkpoint size, over the store and the kept undos.
pub struct MapAt<'a> {
    /// The store.
    pub storage: &'a dyn Storage,
    /// The undos.
    pub versions: &'a MapVersions,
    /// The checkpoint size whose map is read.
    pub size: u64,
}

impl MapNodeReader for MapAt<'_> {
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        let stored = self
            .storage
            .map_node(id)
            .map_err(|e| MapError::Storage(e.to_string()))?;
        self.versions.at(id, stored, self.size)
    }
}

/// The sequencer's reader of the store's map during an update: remembers every node it read, so
/// that the batch's [`Undo`] costs no second read of the nodes the update looked at.
pub(crate) struct Recording<'a> {
    storage: &'a dyn Storage,
    read: RefCell<HashMap<NodeId, Option<MapNode>>>,
}

impl<'a> Recording<'a> {
    pub(crate) fn new(storage: &'a dyn Storage) -> Recording<'a> {
        Recording {
            storage,
            read: RefCell::new(HashMap::new()),
        }
    }

    /// The old values of the nodes in `writes` (read now if the update did not read them; in the
    /// canonical tree those are below a leaf or an empty subtree, hence absent).
    pub(crate) fn undo(
        self,
        writes: &[(NodeId, MapNode)],
    ) -> Result<HashMap<NodeId, Option<MapNode>>, MapError> {
        let mut read = self.read.into_inner();
        let mut old = HashMap::with_capacity(writes.len());
        for (id, _) in writes {
            let value = match read.remove(id) {
                Some(v) => v,
                None => self
                    .storage
                    .map_node(id)
                    .map_err(|e| MapError::Storage(e.to_string()))?,
            };
            old.insert(*id, value);
        }
        Ok(old)
    }
}

impl MapNodeReader for Recording<'_> {
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        if let Some(v) = self.read.borrow().get(id) {
            return Ok(*v);
        }
        let v = self
            .storage
            .map_node(id)
            .map_err(|e| MapError::Storage(e.to_string()))?;
        self.read.borrow_mut().insert(*id, v);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sled::SledStorage;
    use crate::storage::{Commit, Meta};
    use ledger_core::map::{self, MapAddition, MemoryMapStore};
    use ledger_core::TreeHash;

    fn add(key: u8, index: u64) -> MapAddition {
        let mut k = [0u8; 32];
        k[0] = key;
        k[1] = (index % 251) as u8;
        MapAddition {
            key: k,
            index,
            leaf_hash: [index as u8; 32],
        }
    }

    /// Commits map-only batches to a real store and checks that a reader at every kept checkpoint
    /// size proves exactly what a from-scratch map of that size proves, also mid-commit (undo
    /// installed, store not yet written), and that a reader older than every undo is refused.
    #[test]
    fn readers_see_the_map_of_their_checkpoint() {
        let th = TreeHash::Blake3;
        let storage = SledStorage::temporary().expect("store");
        storage
            .create(
                &Meta {
                    origin: "o".into(),
                    hash: th,
                    vkey: "v".into(),
                    created: 0,
                },
                b"cp0",
            )
            .expect("create");
        let versions = MapVersions::new(0);
        let mut reference = MemoryMapStore::new(th);
        let mut snapshots: Vec<(u64, MemoryMapStore)> = vec![(0, reference.clone())];
        let mut size = 0u64;
        let mut all_keys = Vec::new();
        for batch in 0..(KEEP as u64 + 4) {
            let additions: Vec<MapAddition> = (0..5)
                .map(|i| add((batch * 7 + i * 31) as u8, size + i))
                .collect();
            all_keys.extend(additions.iter().map(|a| a.key));
            let rec = Recording::new(&storage);
            let up = map::update(th, &rec, &additions).expect("update");
            let undo = rec.undo(&up.writes).expect("undo");
            let to = size + 6;
            versions.push(size, to, undo);
            // Mid-commit: the previous size's reader still sees its map.
            let mid = MapAt {
                storage: &storage,
                versions: &versions,
                size,
            };
            assert_eq!(
                map::map_root(th, &mid).expect("root"),
                reference.root().expect("r")
            );
            storage
                .commit(&Commit {
                    leaves: Vec::new(),
                    hashes_start: 0,
                    hashes: Vec::new(),
                    size: to,
                    checkpoint: b"cp".to_vec(),
                    map: up.writes.clone(),
                })
                .expect("commit");
            reference.apply(&additions).expect("apply");
            assert_eq!(up.root, reference.root().expect("root"));
            size = to;
            snapshots.push((size, reference.clone()));
        }
        for (at, snapshot) in &snapshots {
            let reader = MapAt {
                storage: &storage,
                versions: &versions,
                size: *at,
            };
            let kept = versions
                .kept
                .read()
                .expect("lock")
                .undos
                .front()
                .map(|u| u.version);
            if kept.is_some_and(|v| v > *at) {
                assert!(matches!(
                    map::map_root(th, &reader),
                    Err(MapError::Storage(_))
                ));
                continue;
            }
            assert_eq!(
                map::map_root(th, &reader).expect("root"),
                snapshot.root().expect("root"),
                "size {at}"
            );
            for key in all_keys.iter().take(40) {
                assert_eq!(
                    map::prove(th, &reader, key).expect("prove"),
                    snapshot.prove(key).expect("prove"),
                    "size {at}"
                );
            }
        }
    }
}
