//! The canonical node set of the map (SPEC §9 "Tree"): node ids and nodes.
//!
//! A node is named by its bit prefix, [`NodeId`] = (depth, the key's first `depth` bits with the
//! rest zeroed). The canonical tree of a key set has exactly these nodes:
//!
//! - every prefix holding **two or more** keys, as [`MapNode::Internal`] with its hash;
//! - every prefix holding **exactly one** key whose parent holds two or more (or the root), as
//!   [`MapNode::Leaf`] with the key and its value.
//!
//! Empty prefixes and the prefixes below a leaf are not nodes: they hash to zeros, or are not
//! reached (a path stops at the first leaf). So one key set has one node set, and tests compare
//! [`super::MapTree::nodes`] after any sequence of batches with a from-scratch reference
//! construction. Keys are only ever added (chains only grow), so no node is ever removed: a leaf
//! that gains a neighbour becomes an internal node under the same id and its key moves deeper.
//!
//! Leaves keep their (key, count, chain) rather than their hash, because a proof ending in another
//! key's leaf must show them; their hash is one `H` away. Internal nodes keep only their hash.

use super::{leaf_hash, MapValue, KEY_BITS};
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_mask_and_navigate() {
        let key = [0xffu8; 32];
        let id = NodeId::of(&key, 10).unwrap();
        assert_eq!(id.prefix()[0], 0xff);
        assert_eq!(id.prefix()[1], 0b1100_0000);
        assert_eq!(id.prefix()[2], 0);
        assert_eq!(id.child(true), NodeId::of(&key, 11));
        let left = id.child(false).unwrap();
        assert_eq!(left.sibling(), id.child(true));
        assert!(NodeId::of(&key, 257).is_none());
        assert!(NodeId::of(&key, 256).unwrap().child(false).is_none());
        assert!(NodeId::ROOT.sibling().is_none());
    }

    #[test]
    fn a_nodes_hash_is_its_leaf_or_stored_hash() {
        let th = TreeHash::Sha256;
        let value = MapValue {
            count: 3,
            chain: [9; 32],
        };
        let leaf = MapNode::Leaf {
            key: [7; 32],
            value,
        };
        assert_eq!(leaf.hash(th), leaf_hash(th, &[7; 32], &value));
        assert_eq!(MapNode::Internal { hash: [5; 32] }.hash(th), [5; 32]);
    }
}
