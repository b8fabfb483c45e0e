//! The verifiable map (SPEC §9) as the log keeps and serves it.
//!
//! **What is stored, what is in memory.** The store keeps each map key's value (count and chain,
//! [`Storage::map_values`]), written in the same atomic commit as the batch whose map leaf commits
//! it: one record per key a batch touches. The map's nodes (the canonical tree over those values,
//! [`ledger_core::map::node`]) are derived data: [`MapStore::load`] rebuilds them from the stored
//! values at start and checks the root against the last map leaf; the sequencer then updates them
//! in memory. Storing the nodes in sled instead took one insert per node on every touched key's
//! path (~20 at 1M keys) and made a batch's commit 6× slower (docs/benchmarks.md), for nothing a
//! restart cannot recompute. In memory the tree is kept as [`Nodes`]: the internal nodes' hashes
//! by id, and the keys' values in key order — a leaf's position is not stored, it is where its
//! key is alone — about 200 bytes per key, where a map of every node by id took 2–3× that.
//!
//! **Which version a lookup reads.** A lookup answers against the *published* head, which trails
//! the sequencer by one batch between a commit and its publication (sync, checkpoint lock,
//! witnesses), and a lookup that started on a head may still be reading while the next batch is
//! applied. Its map proof must be the map of exactly its checkpoint, or the client rejects it at
//! step 5. So before applying a batch to the nodes, the sequencer records the values the batch
//! overwrites (one [`Undo`] per batch, for the last [`KEEP`] batches), and a reader for the map of
//! checkpoint size `h` ([`MapAt`]) reads the current node and then takes its value from the oldest
//! undo at or after `h` that holds it. Reading the node *before* looking at the undos makes this
//! right whichever side of an update the read falls on: an undo is installed before its update, so
//! a value newer than `h` always has its older value in an undo already. A reader older than every
//! kept undo gets [`MapError::Storage`] and the lookup retries against the newest head.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ledger_core::map::{self, MapError, MapNode, MapNodeReader, MapValue, NodeId};
use ledger_core::{Hash, TreeHash};

use crate::storage::{Storage, StorageError};

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

/// The current map's nodes, compactly: every internal node's hash by id, and every key's value
/// by key. A leaf sits at a position whose parent is internal (or at the root) and under whose
/// prefix exactly one key lies; the core reads only such positions, children of internal nodes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Nodes {
    internal: HashMap<NodeId, Hash, ahash::RandomState>,
    values: BTreeMap<Hash, MapValue>,
}

impl Nodes {
    fn get(&self, id: &NodeId) -> Option<MapNode> {
        if let Some(hash) = self.internal.get(id) {
            return Some(MapNode::Internal { hash: *hash });
        }
        let depth = id.depth();
        if let Some(up) = depth.checked_sub(1) {
            let parent = NodeId::of(id.prefix(), up)?;
            if !self.internal.contains_key(&parent) {
                // Below a leaf or an empty subtree: not a node of the canonical tree.
                return None;
            }
        }
        let low = *id.prefix();
        let mut high = low;
        for bit in usize::from(depth)..256 {
            high[bit / 8] |= 0x80 >> (bit % 8);
        }
        let mut under = self.values.range(low..=high);
        match (under.next(), under.next()) {
            (Some((key, value)), None) => Some(MapNode::Leaf {
                key: *key,
                value: *value,
            }),
            // No key (empty), or two or more without an internal node: not a stored node.
            _ => None,
        }
    }

    fn insert(&mut self, id: NodeId, node: MapNode) {
        match node {
            MapNode::Internal { hash } => {
                self.internal.insert(id, hash);
            }
            MapNode::Leaf { key, value } => {
                self.values.insert(key, value);
            }
        }
    }
}

/// The map's nodes in memory and the undos of the last [`KEEP`] batches (see the module doc).
#[derive(Debug, Default)]
pub struct MapStore {
    nodes: RwLock<Nodes>,
    kept: RwLock<Kept>,
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
    /// Rebuilds the nodes of the map of checkpoint size `size` from the stored values; returns the
    /// store and the map's root.
    pub fn load(
        th: TreeHash,
        storage: &dyn Storage,
        size: u64,
    ) -> Result<(MapStore, Hash), StorageError> {
        let values = storage.map_values()?;
        let built = map::build_from_values(th, &values).map_err(|e| StorageError::Corrupt {
            key: "map values".into(),
            reason: e.to_string(),
        })?;
        let mut nodes = Nodes::default();
        for (id, node) in built.writes {
            nodes.insert(id, node);
        }
        let store = MapStore {
            nodes: RwLock::new(nodes),
            kept: RwLock::new(Kept {
                undos: VecDeque::new(),
                latest: size,
            }),
        };
        Ok((store, built.root))
    }

    /// The number of keys in the map.
    pub fn keys(&self) -> usize {
        read(&self.nodes).values.len()
    }

    /// Applies a committed batch that takes the map from checkpoint size `from` to `to`: first
    /// records `undo` (the values at `from` of every node written), then writes the nodes.
    pub(crate) fn advance(
        &self,
        from: u64,
        to: u64,
        undo: HashMap<NodeId, Option<MapNode>>,
        writes: Vec<(NodeId, MapNode)>,
    ) {
        {
            let mut kept = write(&self.kept);
            kept.undos.push_back(Arc::new(Undo {
                version: from,
                old: undo,
            }));
            while kept.undos.len() > KEEP {
                kept.undos.pop_front();
            }
            kept.latest = to;
        }
        let mut nodes = write(&self.nodes);
        for (id, node) in writes {
            nodes.insert(id, node);
        }
    }

    /// The current value of the node `id` (the map of the last applied batch).
    fn current(&self, id: &NodeId) -> Option<MapNode> {
        read(&self.nodes).get(id)
    }

    /// The value in the map of checkpoint size `size` of the node whose current value is
    /// `current` (read before this call).
    fn at(
        &self,
        id: &NodeId,
        current: Option<MapNode>,
        size: u64,
    ) -> Result<Option<MapNode>, MapError> {
        let kept = read(&self.kept);
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
        Ok(current)
    }
}

/// The new values of the keys a batch touched (what the store keeps), from the update's writes:
/// each touched key's leaf is among them (its value changed), next to untouched keys' leaves that
/// only moved deeper.
pub(crate) fn touched_values(
    touched: &HashSet<Hash>,
    writes: &[(NodeId, MapNode)],
) -> Vec<(Hash, MapValue)> {
    writes
        .iter()
        .filter_map(|(_, n)| match n {
            MapNode::Leaf { key, value } if touched.contains(key) => Some((*key, *value)),
            _ => None,
        })
        .collect()
}

/// The map of one checkpoint size, over the nodes and the kept undos.
pub struct MapAt<'a> {
    /// The map.
    pub store: &'a MapStore,
    /// The checkpoint size whose map is read.
    pub size: u64,
}

impl MapNodeReader for MapAt<'_> {
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        let current = self.store.current(id);
        self.store.at(id, current, self.size)
    }
}

impl MapNodeReader for MapStore {
    /// The current map (the sequencer's view: the map of the last applied batch).
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        Ok(self.current(id))
    }
}

impl MapStore {
    /// The current values of the nodes in `writes`: the batch's [`Undo`], taken before
    /// [`MapStore::advance`] applies them.
    pub(crate) fn undo(&self, writes: &[(NodeId, MapNode)]) -> HashMap<NodeId, Option<MapNode>> {
        let nodes = read(&self.nodes);
        writes.iter().map(|(id, _)| (*id, nodes.get(id))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sled::SledStorage;
    use crate::storage::{Commit, Meta};
    use ledger_core::map::{MapAddition, MemoryMapStore};

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

    /// Batches applied as the sequencer does (update over the current nodes, undo, advance): a
    /// reader at every kept checkpoint size proves exactly what a from-scratch map of that size
    /// proves, also while a batch is being applied (before `advance`), a reader older than every
    /// undo is refused, and the values the store keeps rebuild the same map at start.
    #[test]
    fn readers_see_the_map_of_their_checkpoint_and_the_values_rebuild_it() {
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
        let (store, root) = MapStore::load(th, &storage, 0).expect("load");
        assert_eq!(root, map::EMPTY);
        let mut reference = MemoryMapStore::new(th);
        let mut snapshots: Vec<(u64, MemoryMapStore)> = vec![(0, reference.clone())];
        let mut size = 0u64;
        let mut all_keys = Vec::new();
        for batch in 0..(KEEP as u64 + 4) {
            // Keys repeat across batches (index % 7), so chains grow and leaves move deeper.
            let additions: Vec<MapAddition> = (0..5)
                .map(|i| add((batch * 7 + i * 31) as u8 % 40, size + i))
                .collect();
            all_keys.extend(additions.iter().map(|a| a.key));
            let up = map::update(th, &store, &additions).expect("update");
            let undo = store.undo(&up.writes);
            let touched: HashSet<Hash> = additions.iter().map(|a| a.key).collect();
            let to = size + 6;
            storage
                .commit(&Commit {
                    leaves: Vec::new(),
                    hashes_start: 0,
                    hashes: Vec::new(),
                    size: to,
                    checkpoint: b"cp".to_vec(),
                    map: touched_values(&touched, &up.writes),
                })
                .expect("commit");
            // Before `advance`, the old size's reader still sees its map.
            let mid = MapAt {
                store: &store,
                size,
            };
            assert_eq!(
                map::map_root(th, &mid).expect("root"),
                reference.root().expect("r")
            );
            store.advance(size, to, undo, up.writes.clone());
            reference.apply(&additions).expect("apply");
            assert_eq!(up.root, reference.root().expect("root"));
            size = to;
            snapshots.push((size, reference.clone()));
        }
        for (at, snapshot) in &snapshots {
            let reader = MapAt {
                store: &store,
                size: *at,
            };
            let oldest = read(&store.kept).undos.front().map(|u| u.version);
            if oldest.is_some_and(|v| v > *at) {
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
        // The stored values rebuild exactly the nodes the batches left in memory.
        let (again, root) = MapStore::load(th, &storage, size).expect("load");
        assert_eq!(root, reference.root().expect("root"));
        assert_eq!(*read(&again.nodes), *read(&store.nodes));
        assert_eq!(
            again.keys(),
            reference
                .nodes()
                .values()
                .filter(|n| matches!(n, MapNode::Leaf { .. }))
                .count()
        );
    }
}
