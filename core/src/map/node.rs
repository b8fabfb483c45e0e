//! The stored map (SPEC §9 "Tree"): node ids, nodes, the reader trait and the in-memory store.
//!
//! # Stored representation
//!
//! A node is named by its bit prefix, [`NodeId`] = (depth, the key's first `depth` bits with the
//! rest zeroed). Exactly the nodes of the canonical tree are stored:
//!
//! - every prefix holding **two or more** keys, as [`MapNode::Internal`] with its hash;
//! - every prefix holding **exactly one** key whose parent holds two or more (or the root), as
//!   [`MapNode::Leaf`] with the key and its value.
//!
//! Empty prefixes and the prefixes below a leaf are not stored: an absent id hashes to zeros, and a
//! lookup stops at the first leaf. So one key set has one node set (the tests compare the store
//! after any sequence of batches with a from-scratch build), a node is found by its id alone without
//! walking pointers, and a proof or an update reads one node per depth along a key's path plus its
//! sibling. Keys are only ever added (chains only grow), so an update never deletes a node: a leaf
//! that gains a neighbour becomes an internal node under the same id and its key moves deeper.
//!
//! Leaves keep their (key, count, chain) rather than their hash, because a proof ending in another
//! key's leaf must show them; their hash is one `H` away. Internal nodes keep only their hash.

use std::collections::BTreeMap;

use super::{leaf_hash, MapError, MapValue, KEY_BITS, TAG_LEAF, TAG_NODE};
use crate::hash::{Hash, TreeHash};

/// The id of a map node: its depth (0 = the root, at most 256) and the bit prefix leading to it
/// (the first `depth` bits of its keys, later bits zero). Ordered by depth, then prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    depth: u16,
    prefix: Hash,
}

impl NodeId {
    /// The root's id (depth 0, empty prefix).
    pub const ROOT: NodeId = NodeId {
        depth: 0,
        prefix: [0; 32],
    };

    /// The id of the node at `depth` on `key`'s path: its first `depth` bits. `None` if `depth` is
    /// above 256.
    pub fn of(key: &Hash, depth: u16) -> Option<NodeId> {
        if depth > KEY_BITS {
            return None;
        }
        let mut prefix = [0u8; 32];
        let d = usize::from(depth);
        let (full, rest) = (d / 8, d % 8);
        prefix[..full].copy_from_slice(&key[..full]);
        if rest > 0 {
            prefix[full] = key[full] & (0xffu8 << (8 - rest));
        }
        Some(NodeId { depth, prefix })
    }

    /// The node's depth (0 = the root).
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// The node's bit prefix: the first [`depth`](Self::depth) bits, the rest zero.
    pub fn prefix(&self) -> &Hash {
        &self.prefix
    }

    /// The child whose next bit (bit `depth`) is `right` (0 = left, 1 = right); `None` at depth 256.
    pub fn child(&self, right: bool) -> Option<NodeId> {
        if self.depth >= KEY_BITS {
            return None;
        }
        let mut prefix = self.prefix;
        let d = usize::from(self.depth);
        if right {
            prefix[d / 8] |= 0x80 >> (d % 8);
        }
        Some(NodeId {
            depth: self.depth + 1,
            prefix,
        })
    }

    /// The node beside this one (same parent, last bit flipped); `None` for the root.
    pub fn sibling(&self) -> Option<NodeId> {
        if self.depth == 0 {
            return None;
        }
        let mut prefix = self.prefix;
        let d = usize::from(self.depth - 1);
        prefix[d / 8] ^= 0x80 >> (d % 8);
        Some(NodeId {
            depth: self.depth,
            prefix,
        })
    }

    /// The 34-byte storage key: `u16be(depth) ‖ prefix`. Byte order equals the [`Ord`] order.
    pub fn to_bytes(&self) -> [u8; 34] {
        let mut out = [0u8; 34];
        out[..2].copy_from_slice(&self.depth.to_be_bytes());
        out[2..].copy_from_slice(&self.prefix);
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes), refusing a depth above 256 or prefix bits set beyond
    /// the depth.
    pub fn from_bytes(bytes: &[u8]) -> Result<NodeId, MapError> {
        let bytes: &[u8; 34] = bytes
            .try_into()
            .map_err(|_| MapError::BadNodeId("not 34 bytes"))?;
        let depth = u16::from_be_bytes([bytes[0], bytes[1]]);
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&bytes[2..]);
        let id = NodeId::of(&prefix, depth).ok_or(MapError::BadNodeId("depth above 256"))?;
        if id.prefix != prefix {
            return Err(MapError::BadNodeId("prefix bits set beyond the depth"));
        }
        Ok(id)
    }
}

/// A stored node of the canonical tree (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapNode {
    /// A subtree holding exactly one key; hashes to `H(0x13 ‖ K ‖ u64be(count) ‖ c)`.
    Leaf {
        /// The key.
        key: Hash,
        /// Its value.
        value: MapValue,
    },
    /// A subtree holding two or more keys, with its hash `H(0x14 ‖ left ‖ right)`.
    Internal {
        /// The subtree's hash.
        hash: Hash,
    },
}

impl MapNode {
    /// The subtree's hash.
    pub fn hash(&self, th: TreeHash) -> Hash {
        match self {
            MapNode::Leaf { key, value } => leaf_hash(th, key, value),
            MapNode::Internal { hash } => *hash,
        }
    }

    /// The storage bytes: `0x13 ‖ K ‖ u64be(count) ‖ c` (73 bytes) for a leaf, `0x14 ‖ hash` (33
    /// bytes) for an internal node — the preimage tags of their hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            MapNode::Leaf { key, value } => {
                let mut out = Vec::with_capacity(73);
                out.push(TAG_LEAF);
                out.extend_from_slice(key);
                out.extend_from_slice(&value.count.to_be_bytes());
                out.extend_from_slice(&value.chain);
                out
            }
            MapNode::Internal { hash } => {
                let mut out = Vec::with_capacity(33);
                out.push(TAG_NODE);
                out.extend_from_slice(hash);
                out
            }
        }
    }

    /// Decodes [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<MapNode, MapError> {
        match bytes.split_first() {
            Some((&TAG_LEAF, rest)) if rest.len() == 72 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&rest[..32]);
                let mut count = [0u8; 8];
                count.copy_from_slice(&rest[32..40]);
                let mut chain = [0u8; 32];
                chain.copy_from_slice(&rest[40..]);
                Ok(MapNode::Leaf {
                    key,
                    value: MapValue {
                        count: u64::from_be_bytes(count),
                        chain,
                    },
                })
            }
            Some((&TAG_NODE, rest)) if rest.len() == 32 => {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(rest);
                Ok(MapNode::Internal { hash })
            }
            Some((&TAG_LEAF, _)) => Err(MapError::BadNodeEncoding("a leaf node is 73 bytes")),
            Some((&TAG_NODE, _)) => Err(MapError::BadNodeEncoding("an internal node is 33 bytes")),
            Some(_) => Err(MapError::BadNodeEncoding("unknown node tag")),
            None => Err(MapError::BadNodeEncoding("empty")),
        }
    }
}

/// A source of stored map nodes: the log's database, or [`MemoryMapStore`] in tests.
pub trait MapNodeReader {
    /// The node stored under `id`, or `None` if there is none (an empty subtree, or a prefix below
    /// a leaf).
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError>;
}

impl<R: MapNodeReader + ?Sized> MapNodeReader for &R {
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        (**self).read_node(id)
    }
}

/// Reads the node at `id` and checks it against the canonical tree: a leaf's key must lie under the
/// id's prefix with a non-zero count, and an internal node cannot sit at depth 256.
pub(crate) fn read_checked(
    reader: &impl MapNodeReader,
    id: &NodeId,
) -> Result<Option<MapNode>, MapError> {
    let node = reader.read_node(id)?;
    match &node {
        Some(MapNode::Leaf { key, value }) => {
            if NodeId::of(key, id.depth()).as_ref() != Some(id) {
                return Err(MapError::CorruptNode {
                    depth: id.depth(),
                    reason: "leaf key is not under the node's prefix",
                });
            }
            if value.count == 0 {
                return Err(MapError::CorruptNode {
                    depth: id.depth(),
                    reason: "leaf with a count of zero",
                });
            }
        }
        Some(MapNode::Internal { .. }) if id.depth() >= KEY_BITS => {
            return Err(MapError::CorruptNode {
                depth: id.depth(),
                reason: "internal node at depth 256",
            });
        }
        _ => {}
    }
    Ok(node)
}

/// The hash of the subtree at `id`: zeros when nothing is stored there.
pub(crate) fn subtree_hash(
    th: TreeHash,
    reader: &impl MapNodeReader,
    id: &NodeId,
) -> Result<Hash, MapError> {
    Ok(read_checked(reader, id)?.map_or(super::EMPTY, |n| n.hash(th)))
}

/// The whole map in memory, as the nodes of the module doc: the reference [`MapNodeReader`] for
/// tests and tools. (The log keeps the same nodes in its database.)
#[derive(Clone, Debug)]
pub struct MemoryMapStore {
    th: TreeHash,
    nodes: BTreeMap<NodeId, MapNode>,
}

impl MemoryMapStore {
    /// The empty map using `th`.
    pub fn new(th: TreeHash) -> Self {
        MemoryMapStore {
            th,
            nodes: BTreeMap::new(),
        }
    }

    /// The tree hash.
    pub fn tree_hash(&self) -> TreeHash {
        self.th
    }

    /// Applies a batch with [`super::update()`] and writes the nodes it returns; returns the update.
    pub fn apply(
        &mut self,
        additions: &[super::MapAddition],
    ) -> Result<super::MapUpdate, MapError> {
        let up = super::update(self.th, &*self, additions)?;
        for (id, node) in &up.writes {
            self.nodes.insert(*id, *node);
        }
        Ok(up)
    }

    /// The current root.
    pub fn root(&self) -> Result<Hash, MapError> {
        super::map_root(self.th, self)
    }

    /// A proof for `key` (see [`super::prove`]).
    pub fn prove(&self, key: &Hash) -> Result<super::KeyProof, MapError> {
        super::prove(self.th, self, key)
    }

    /// Every stored node, in id order.
    pub fn nodes(&self) -> &BTreeMap<NodeId, MapNode> {
        &self.nodes
    }
}

impl MapNodeReader for MemoryMapStore {
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        Ok(self.nodes.get(id).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_mask_navigate_and_round_trip() {
        let key = [0xffu8; 32];
        let id = NodeId::of(&key, 10).unwrap();
        assert_eq!(id.prefix()[0], 0xff);
        assert_eq!(id.prefix()[1], 0b1100_0000);
        assert_eq!(id.prefix()[2], 0);
        assert_eq!(id.child(true), NodeId::of(&key, 11));
        let left = id.child(false).unwrap();
        assert_eq!(left.sibling(), id.child(true));
        assert_eq!(NodeId::from_bytes(&id.to_bytes()), Ok(id));
        assert!(NodeId::of(&key, 257).is_none());
        assert!(NodeId::of(&key, 256).unwrap().child(false).is_none());
        assert!(NodeId::ROOT.sibling().is_none());
        let mut bad = id.to_bytes();
        bad[33] = 1;
        assert!(NodeId::from_bytes(&bad).is_err());
        assert!(NodeId::from_bytes(&[0; 33]).is_err());
        let mut deep = [0u8; 34];
        deep[..2].copy_from_slice(&257u16.to_be_bytes());
        assert!(NodeId::from_bytes(&deep).is_err());
    }

    #[test]
    fn nodes_round_trip_and_bad_bytes_are_refused() {
        let leaf = MapNode::Leaf {
            key: [7; 32],
            value: MapValue {
                count: 3,
                chain: [9; 32],
            },
        };
        let internal = MapNode::Internal { hash: [5; 32] };
        for n in [leaf, internal] {
            assert_eq!(MapNode::from_bytes(&n.to_bytes()), Ok(n));
        }
        assert!(MapNode::from_bytes(&[]).is_err());
        assert!(MapNode::from_bytes(&[0x14; 32]).is_err());
        assert!(MapNode::from_bytes(&[0x13; 33]).is_err());
        assert!(MapNode::from_bytes(&[0x15; 33]).is_err());
    }

    #[test]
    fn corrupt_nodes_are_refused() {
        let mut store = MemoryMapStore::new(TreeHash::Blake3);
        store.nodes.insert(
            NodeId::ROOT.child(true).unwrap(),
            MapNode::Leaf {
                key: [0; 32],
                value: MapValue {
                    count: 1,
                    chain: [0; 32],
                },
            },
        );
        let id = NodeId::ROOT.child(true).unwrap();
        assert!(matches!(
            read_checked(&store, &id),
            Err(MapError::CorruptNode { depth: 1, .. })
        ));
        let deep = NodeId::of(&[0; 32], 256).unwrap();
        store
            .nodes
            .insert(deep, MapNode::Internal { hash: [1; 32] });
        assert!(read_checked(&store, &deep).is_err());
    }
}
