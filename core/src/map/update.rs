//! The map's root and its incremental batch update (SPEC §9 "Tree", "Map leaf").
//!
//! After each batch the log files the batch's leaves under their keys and commits the new root in a
//! map leaf. [`update`] computes that root from the stored nodes in O(touched keys × depth) reads and
//! hashes — it never rebuilds the tree — and returns exactly the nodes that change, for the log to
//! write in the same atomic commit as the batch.

use std::collections::BTreeMap;

use super::node::{read_checked, subtree_hash};
use super::{bit, leaf_hash, node_hash, MapError, MapNode, MapNodeReader, MapValue, NodeId, EMPTY};
use crate::hash::{Hash, TreeHash};

/// One leaf filed under one key: the leaf at log `index` with `leaf_hash` extends `key`'s chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapAddition {
    /// The map key ([`super::sii_key`] or [`super::signer_key`]).
    pub key: Hash,
    /// The leaf's index in the log.
    pub index: u64,
    /// The leaf's RFC 6962 leaf hash.
    pub leaf_hash: Hash,
}

/// The result of [`update`]: the new root and the nodes to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapUpdate {
    /// The map's root after the batch (the `root` of the batch's map leaf).
    pub root: Hash,
    /// Every node the batch adds or changes, in id order, each id once. Writing them over the old
    /// nodes gives exactly the canonical node set of the new map: keys are only added, so no node is
    /// ever removed (a leaf that gains a neighbour is overwritten by an internal node).
    pub writes: Vec<(NodeId, MapNode)>,
}

/// The map's root: the hash of the subtree at [`NodeId::ROOT`], 32 zero bytes for the empty map
/// (SPEC §9 "Tree").
pub fn map_root(th: TreeHash, reader: &impl MapNodeReader) -> Result<Hash, MapError> {
    subtree_hash(th, reader, &NodeId::ROOT)
}

/// Applies a batch of additions, in log order, to the map stored behind `reader` (SPEC §9 "Map
/// leaf"): returns the new root and the nodes to write. Several additions for one key extend its
/// chain in the order given; their indexes must strictly increase
/// ([`MapError::IndexesOutOfOrder`]). An empty batch changes nothing.
///
/// The walk visits only the paths of the touched keys: at an internal node it descends into the
/// children holding touched keys and reads the other child's hash; at a leaf or an empty subtree it
/// builds the (small) subtree of the keys now under it from scratch.
pub fn update(
    th: TreeHash,
    reader: &impl MapNodeReader,
    additions: &[MapAddition],
) -> Result<MapUpdate, MapError> {
    let mut by_key: BTreeMap<Hash, Vec<(u64, Hash)>> = BTreeMap::new();
    for a in additions {
        let leaves = by_key.entry(a.key).or_default();
        if let Some(&(previous, _)) = leaves.last() {
            if a.index <= previous {
                return Err(MapError::IndexesOutOfOrder {
                    previous,
                    index: a.index,
                });
            }
        }
        leaves.push((a.index, a.leaf_hash));
    }
    let touched: Vec<(Hash, Vec<(u64, Hash)>)> = by_key.into_iter().collect();
    let mut writes = Vec::new();
    let root = if touched.is_empty() {
        map_root(th, reader)?
    } else {
        update_at(th, reader, NodeId::ROOT, &touched, &mut writes)?
    };
    writes.sort_by_key(|(id, _)| *id);
    Ok(MapUpdate { root, writes })
}

/// Builds the whole map from scratch from its keys' values (`items`, in any order): the root and
/// every node, as [`update`] returns them. For a log that keeps the map's values and rebuilds its
/// nodes (at start), and for tests. Refuses a repeated key or a value with a count of zero (such a
/// key is not in the map).
pub fn build_from_values(th: TreeHash, items: &[(Hash, MapValue)]) -> Result<MapUpdate, MapError> {
    let mut sorted = items.to_vec();
    sorted.sort_unstable_by_key(|(k, _)| *k);
    for pair in sorted.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(MapError::CorruptNode {
                depth: 0,
                reason: "a key has two values",
            });
        }
    }
    if sorted.iter().any(|(_, v)| v.count == 0) {
        return Err(MapError::CorruptNode {
            depth: 0,
            reason: "a value with a count of zero",
        });
    }
    let mut writes = Vec::with_capacity(sorted.len() * 2);
    let root = build(th, NodeId::ROOT, &sorted, &mut writes)?;
    writes.sort_by_key(|(id, _)| *id);
    Ok(MapUpdate { root, writes })
}

/// Extends `base` with `leaves`.
fn extended(th: TreeHash, base: MapValue, leaves: &[(u64, Hash)]) -> Result<MapValue, MapError> {
    let mut v = base;
    for (index, leaf_hash) in leaves {
        v.extend(th, *index, leaf_hash)?;
    }
    Ok(v)
}

/// The new hash of the subtree at `id`, whose prefix all of `touched` (non-empty, sorted, distinct
/// keys) share; pushes the nodes it writes.
fn update_at(
    th: TreeHash,
    reader: &impl MapNodeReader,
    id: NodeId,
    touched: &[(Hash, Vec<(u64, Hash)>)],
    writes: &mut Vec<(NodeId, MapNode)>,
) -> Result<Hash, MapError> {
    match read_checked(reader, &id)? {
        // Every touched key is new here.
        None => {
            let items = touched
                .iter()
                .map(|(k, leaves)| Ok((*k, extended(th, MapValue::EMPTY, leaves)?)))
                .collect::<Result<Vec<_>, MapError>>()?;
            build(th, id, &items, writes)
        }
        // One key was alone here: the subtree now holds it (extended, if touched) and the others.
        Some(MapNode::Leaf { key: k0, value: v0 }) => {
            let mut items = Vec::with_capacity(touched.len() + 1);
            let mut k0_placed = false;
            for (k, leaves) in touched {
                if !k0_placed && k0 < *k {
                    items.push((k0, v0));
                    k0_placed = true;
                }
                if *k == k0 {
                    items.push((k0, extended(th, v0, leaves)?));
                    k0_placed = true;
                } else {
                    items.push((*k, extended(th, MapValue::EMPTY, leaves)?));
                }
            }
            if !k0_placed {
                items.push((k0, v0));
            }
            build(th, id, &items, writes)
        }
        // Two or more keys: descend where touched keys go, reuse the other side's hash.
        Some(MapNode::Internal { .. }) => {
            let depth = id.depth();
            let split = touched.partition_point(|(k, _)| !bit(k, depth));
            let (left, right) = touched.split_at(split);
            let corrupt = MapError::CorruptNode {
                depth,
                reason: "internal node at depth 256",
            };
            let left_id = id.child(false).ok_or(corrupt.clone())?;
            let right_id = id.child(true).ok_or(corrupt)?;
            let lh = if left.is_empty() {
                subtree_hash(th, reader, &left_id)?
            } else {
                update_at(th, reader, left_id, left, writes)?
            };
            let rh = if right.is_empty() {
                subtree_hash(th, reader, &right_id)?
            } else {
                update_at(th, reader, right_id, right, writes)?
            };
            let hash = node_hash(th, &lh, &rh);
            writes.push((id, MapNode::Internal { hash }));
            Ok(hash)
        }
    }
}

/// Builds the subtree at `id` over `items` (sorted, distinct keys under `id`'s prefix) from
/// scratch, pushing its nodes; returns its hash.
fn build(
    th: TreeHash,
    id: NodeId,
    items: &[(Hash, MapValue)],
    writes: &mut Vec<(NodeId, MapNode)>,
) -> Result<Hash, MapError> {
    match items {
        [] => Ok(EMPTY),
        [(key, value)] => {
            writes.push((
                id,
                MapNode::Leaf {
                    key: *key,
                    value: *value,
                },
            ));
            Ok(leaf_hash(th, key, value))
        }
        _ => {
            let depth = id.depth();
            let corrupt = MapError::CorruptNode {
                depth,
                reason: "two keys share all 256 bits",
            };
            let left_id = id.child(false).ok_or(corrupt.clone())?;
            let right_id = id.child(true).ok_or(corrupt)?;
            let split = items.partition_point(|(k, _)| !bit(k, depth));
            let (left, right) = items.split_at(split);
            let lh = build(th, left_id, left, writes)?;
            let rh = build(th, right_id, right, writes)?;
            let hash = node_hash(th, &lh, &rh);
            writes.push((id, MapNode::Internal { hash }));
            Ok(hash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MemoryMapStore;
    use super::*;

    fn add(key: Hash, index: u64) -> MapAddition {
        MapAddition {
            key,
            index,
            leaf_hash: [index as u8; 32],
        }
    }

    #[test]
    fn building_from_values_equals_updating() {
        let th = TreeHash::Blake3;
        let mut m = MemoryMapStore::new(th);
        let adds: Vec<MapAddition> = (0..300u64)
            .map(|i| add(th.leaf_hash(&(i % 97).to_be_bytes()), i))
            .collect();
        for chunk in adds.chunks(37) {
            m.apply(chunk).unwrap();
        }
        let values: Vec<(Hash, MapValue)> = m
            .nodes()
            .values()
            .filter_map(|n| match n {
                MapNode::Leaf { key, value } => Some((*key, *value)),
                MapNode::Internal { .. } => None,
            })
            .rev()
            .collect();
        assert_eq!(values.len(), 97);
        let built = build_from_values(th, &values).unwrap();
        assert_eq!(built.root, m.root().unwrap());
        assert_eq!(
            built.writes,
            m.nodes().iter().map(|(i, n)| (*i, *n)).collect::<Vec<_>>()
        );
        let mut twice = values.clone();
        twice.push(values[3]);
        assert!(build_from_values(th, &twice).is_err());
        assert_eq!(build_from_values(th, &[]).unwrap().root, EMPTY);
    }

    #[test]
    fn empty_map_and_empty_batch() {
        let mut m = MemoryMapStore::new(TreeHash::Blake3);
        assert_eq!(m.root().unwrap(), EMPTY);
        let up = m.apply(&[]).unwrap();
        assert_eq!(up.root, EMPTY);
        assert!(up.writes.is_empty());
    }

    #[test]
    fn one_key_is_its_leaf_at_the_root() {
        let th = TreeHash::Sha256;
        let mut m = MemoryMapStore::new(th);
        let up = m.apply(&[add([3; 32], 0), add([3; 32], 5)]).unwrap();
        let v = MapValue::of_leaves(th, [(0, &[0; 32]), (5, &[5; 32])]).unwrap();
        assert_eq!(up.root, leaf_hash(th, &[3; 32], &v));
        assert_eq!(up.writes.len(), 1);
    }

    #[test]
    fn out_of_order_indexes_are_refused() {
        let mut m = MemoryMapStore::new(TreeHash::Blake3);
        assert_eq!(
            m.apply(&[add([1; 32], 4), add([2; 32], 1), add([1; 32], 4)]),
            Err(MapError::IndexesOutOfOrder {
                previous: 4,
                index: 4
            })
        );
    }

    #[test]
    fn keys_differing_in_the_last_bit_sit_at_depth_256() {
        let th = TreeHash::Blake3;
        let mut m = MemoryMapStore::new(th);
        let a = [0u8; 32];
        let mut b = a;
        b[31] = 1;
        m.apply(&[add(a, 0)]).unwrap();
        let up = m.apply(&[add(b, 1)]).unwrap();
        // 256 internal nodes (depths 0..=255) and two leaves at depth 256.
        assert_eq!(up.writes.len(), 258);
        assert_eq!(m.nodes().len(), 258);
        let mut h = node_hash(
            th,
            &leaf_hash(th, &a, &MapValue::of_leaves(th, [(0, &[0; 32])]).unwrap()),
            &leaf_hash(th, &b, &MapValue::of_leaves(th, [(1, &[1; 32])]).unwrap()),
        );
        for _ in 0..255 {
            h = node_hash(th, &h, &EMPTY);
        }
        assert_eq!(up.root, h);
    }
}
