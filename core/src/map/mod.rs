//! The verifiable map (SPEC §9): completeness and absence.
//!
//! The log tree proves that what a DP shows is *in* the log; the map proves that it is *all* of it.
//! The map is a binary prefix tree over 256-bit keys ([`sii_key`], [`signer_key`]) whose value is
//! the hash chain of the leaves filed under the key ([`MapValue`]). Its root is committed in a map
//! leaf of the log tree, so witnesses and monitors cover it with no new trust.
//!
//! # Why our own tree
//!
//! SPEC §9 fixes the tree byte for byte: one key set has exactly one root, and a subtree holding a
//! single key hashes to that key's leaf *whatever its depth* (the tree is "compressed": a path stops
//! where its key is alone). No sparse-Merkle or Patricia crate hashes exactly this shape (they pad
//! to depth 256, use default-hash ladders, or compress internal chains with extension nodes), and a
//! monitor must rebuild the very same root from the entries, so the tree math is written here once,
//! as pure functions, in the style of [`crate::tree`]:
//!
//! - [`node`]: the canonical node set — one [`NodeId`] (depth, bit prefix) per node of the tree,
//!   holding a [`MapNode`] (a leaf's key and value, or an internal hash) — by which tests compare
//!   any map with a reference construction;
//! - [`tree`]: [`MapTree`], the map in memory as the log, the monitor and the tests keep it: the
//!   incremental batch update in two steps (stage the exact nodes a batch changes, then commit
//!   them), proof generation, and the recent versions that lookups still read;
//! - [`proof`]: the client's verification of presence and absence.
//!
//! `H` is the log's tree hash ([`TreeHash`]), `u64be` 8 bytes big-endian, `‖` concatenation; the
//! domain tags 0x10–0x14 keep map hashes apart from each other and from the log tree's 0x00/0x01.

use crate::entry::Entry;
use crate::hash::{Hash, TreeHash};

pub mod node;
pub mod proof;
pub mod tree;

pub use node::{MapNode, NodeId};
pub use proof::{verify_absence, verify_presence, KeyProof, MapProof, MapProofError, OtherLeaf};
pub use tree::{MapTree, Staged};

/// One leaf filed under one key: the leaf at log `index` with `leaf_hash` extends `key`'s chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapAddition {
    /// The map key ([`sii_key`] or [`signer_key`]).
    pub key: Hash,
    /// The leaf's index in the log.
    pub index: u64,
    /// The leaf's RFC 6962 leaf hash.
    pub leaf_hash: Hash,
}

/// The hash of an empty subtree, and the root of the empty map: 32 zero bytes (SPEC §9 "Tree").
pub const EMPTY: Hash = [0; 32];

/// The number of bits of a key, hence the largest depth of a node (a leaf of two keys that share
/// 255 bits sits at depth 256).
pub const KEY_BITS: u16 = 256;

/// Domain tag of an SII key.
const TAG_SII: u8 = 0x10;
/// Domain tag of a signer-name key.
const TAG_SIGNER: u8 = 0x11;
/// Domain tag of a chain step.
const TAG_CHAIN: u8 = 0x12;
/// Domain tag of a map leaf (a subtree holding exactly one key).
pub(crate) const TAG_LEAF: u8 = 0x13;
/// Domain tag of an internal map node (a subtree holding two or more keys).
pub(crate) const TAG_NODE: u8 = 0x14;

/// `H(parts[0] ‖ parts[1] ‖ …)` with the log's tree hash (SPEC §9's `H`).
pub(crate) fn digest(th: TreeHash, parts: &[&[u8]]) -> Hash {
    th.digest(parts)
}

/// The map key of an SII: `K = H(0x10 ‖ sii)` over its canonical text (SPEC §9 "Keys").
pub fn sii_key(th: TreeHash, sii: &str) -> Hash {
    digest(th, &[&[TAG_SII], sii.as_bytes()])
}

/// The map key of a signer name (an MSP or a prover, any role): `K = H(0x11 ‖ name)` (SPEC §9
/// "Keys").
pub fn signer_key(th: TreeHash, name: &str) -> Hash {
    digest(th, &[&[TAG_SIGNER], name.as_bytes()])
}

/// The key a leaf is filed under (SPEC §9 "Value of a key"), if any: an entry naming an SII under
/// that SII's key, an enroll leaf under its `name`'s signer key; a map leaf under none.
pub fn key_of(th: TreeHash, entry: &Entry) -> Option<Hash> {
    match entry {
        Entry::Enroll(e) => Some(signer_key(th, e.name.as_str())),
        Entry::Map(_) => None,
        other => other.sii().map(|sii| sii_key(th, sii.as_str())),
    }
}

/// The addition the leaf at `index` (with `leaf_hash` and `entry`) makes to the map, if any (see
/// [`key_of`]). The log, the monitor and the test logs all file leaves through this one function.
pub fn addition(th: TreeHash, index: u64, leaf_hash: &Hash, entry: &Entry) -> Option<MapAddition> {
    key_of(th, entry).map(|key| MapAddition {
        key,
        index,
        leaf_hash: *leaf_hash,
    })
}

/// Bit `i` of a key: bit `7 − (i mod 8)` of byte `i div 8`, most significant first (SPEC §9
/// "Tree"). `i` must be below 256.
pub(crate) fn bit(key: &Hash, i: u16) -> bool {
    let i = usize::from(i);
    (key[i / 8] >> (7 - (i % 8))) & 1 == 1
}

/// Whether `a` and `b` agree on their first `depth` bits (`depth ≤ 256`).
pub(crate) fn shares_prefix(a: &Hash, b: &Hash, depth: u16) -> bool {
    let depth = usize::from(depth.min(KEY_BITS));
    let (full, rest) = (depth / 8, depth % 8);
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// The value of a key: the chain of the leaves filed under it, in log order (SPEC §9 "Value of a
/// key"): `c₀ = 0³²`, `cⱼ = H(0x12 ‖ cⱼ₋₁ ‖ u64be(indexⱼ) ‖ leaf_hashⱼ)`, `count = j`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapValue {
    /// How many leaves the chain covers.
    pub count: u64,
    /// The chain hash `c_count`.
    pub chain: Hash,
}

impl MapValue {
    /// The value of a key with no leaves: `count = 0`, `c₀ = 32 zero bytes`. Such a key is not in
    /// the map.
    pub const EMPTY: MapValue = MapValue {
        count: 0,
        chain: EMPTY,
    };

    /// Appends the leaf at `index` with `leaf_hash` to the chain (SPEC §9 "Value of a key").
    ///
    /// Callers append in log order; the chain itself cannot check that across batches (it does not
    /// keep the last index), [`MapTree::stage`] checks it within a batch.
    pub fn extend(&mut self, th: TreeHash, index: u64, leaf_hash: &Hash) -> Result<(), MapError> {
        let count = self.count.checked_add(1).ok_or(MapError::CountOverflow)?;
        self.chain = digest(
            th,
            &[&[TAG_CHAIN], &self.chain, &index.to_be_bytes(), leaf_hash],
        );
        self.count = count;
        Ok(())
    }

    /// The chain of `leaves` (`(index, leaf_hash)` in log order) from the empty value.
    pub fn of_leaves<'a>(
        th: TreeHash,
        leaves: impl IntoIterator<Item = (u64, &'a Hash)>,
    ) -> Result<MapValue, MapError> {
        let mut v = MapValue::EMPTY;
        for (index, leaf_hash) in leaves {
            v.extend(th, index, leaf_hash)?;
        }
        Ok(v)
    }
}

/// The hash of a subtree holding exactly the key `key` with `value`: `H(0x13 ‖ K ‖ u64be(count) ‖
/// c)` (SPEC §9 "Tree"), the same at any depth.
pub fn leaf_hash(th: TreeHash, key: &Hash, value: &MapValue) -> Hash {
    digest(
        th,
        &[&[TAG_LEAF], key, &value.count.to_be_bytes(), &value.chain],
    )
}

/// The hash of a subtree holding two or more keys: `H(0x14 ‖ left ‖ right)` (SPEC §9 "Tree").
pub fn node_hash(th: TreeHash, left: &Hash, right: &Hash) -> Hash {
    digest(th, &[&[TAG_NODE], left, right])
}

/// Why reading, updating or proving from a stored map failed (verification has its own
/// [`MapProofError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// A chain would cover more than 2⁶⁴ − 1 leaves.
    #[error("a map value's count would overflow")]
    CountOverflow,
    /// A batch filed leaves under one key out of log order (indexes must strictly increase).
    #[error("leaf index {index} is filed under a key after index {previous} in the same batch")]
    IndexesOutOfOrder {
        /// The earlier index.
        previous: u64,
        /// The index that followed it.
        index: u64,
    },
    /// A stored node contradicts the canonical tree (a leaf off its prefix, an internal node at
    /// depth 256, …): the store is corrupt.
    #[error("map node at depth {depth} is corrupt: {reason}")]
    CorruptNode {
        /// The node's depth.
        depth: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The map of this version is neither the current one nor among the versions kept
    /// ([`MapTree::with_history`]).
    #[error("the map of version {version} is no longer kept (the map is at {latest})")]
    NotKept {
        /// The version asked for.
        version: u64,
        /// The map's current version.
        latest: u64,
    },
    /// Changes staged on one version of the tree were committed to another.
    #[error("map changes staged on another version of the tree")]
    Stale,
    /// The map holds 2³¹ − 1 nodes of one kind, as many as a 32-bit reference can name.
    #[error("the map is full (2^31 - 1 nodes of one kind)")]
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_the_tree_hash() {
        for th in [TreeHash::Blake3, TreeHash::Sha256] {
            assert_eq!(digest(th, &[&[0x00], b"abc"]), th.leaf_hash(b"abc"));
            assert_eq!(digest(th, &[]), th.empty_root());
        }
    }

    #[test]
    fn bits_are_most_significant_first() {
        let mut k = [0u8; 32];
        k[0] = 0b1000_0001;
        k[31] = 0b0000_0001;
        assert!(bit(&k, 0));
        assert!(!bit(&k, 1));
        assert!(bit(&k, 7));
        assert!(bit(&k, 255));
        assert!(!bit(&k, 254));
    }

    #[test]
    fn prefixes_compare_bit_by_bit() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[1] = 0b0010_0000; // bit 10
        assert!(shares_prefix(&a, &b, 10));
        assert!(!shares_prefix(&a, &b, 11));
        assert!(!shares_prefix(&a, &b, 256));
        assert!(shares_prefix(&a, &a, 256));
        assert!(shares_prefix(&a, &b, 0));
    }

    #[test]
    fn chain_counts_and_distinguishes_order() {
        let th = TreeHash::Blake3;
        let (x, y) = ([1u8; 32], [2u8; 32]);
        let ab = MapValue::of_leaves(th, [(1, &x), (2, &y)]).unwrap();
        let ba = MapValue::of_leaves(th, [(2, &y), (1, &x)]).unwrap();
        assert_eq!(ab.count, 2);
        assert_ne!(ab.chain, ba.chain);
        let mut full = MapValue {
            count: u64::MAX,
            chain: EMPTY,
        };
        assert_eq!(full.extend(th, 0, &x), Err(MapError::CountOverflow));
    }
}
