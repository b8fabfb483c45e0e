//! Map proofs (SPEC §9 "Proof for a key K"): their form, and the verifier's check of presence and
//! absence against a map leaf's root (generation is [`super::MapTree::prove`]).
//!
//! A proof is the list of sibling hashes along K's path, top down (depth 0 under the root), plus —
//! when the path ends in another key's leaf — that key and its value. The path ends at depth
//! `d = len(siblings)` in K's own leaf (presence), in an empty subtree (absence, `other` null) or in
//! the leaf of another key sharing K's first `d` bits (absence). Verification refuses every proof
//! that is not the canonical one for K, not just those that miss the root.

use serde::{Deserialize, Serialize};

use super::{bit, leaf_hash, node_hash, shares_prefix, MapValue, EMPTY, KEY_BITS};
use crate::api::b64;
use crate::hash::{Hash, TreeHash};

/// The leaf of another key where an absence proof's path ends: `{"key","count","chain"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OtherLeaf {
    /// The other key.
    #[serde(with = "b64::hash")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::api::schema::B64Hash))]
    pub key: Hash,
    /// Its value's count.
    pub count: u64,
    /// Its value's chain hash.
    #[serde(with = "b64::hash")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::api::schema::B64Hash))]
    pub chain: Hash,
}

impl OtherLeaf {
    /// The other key's value.
    pub fn value(&self) -> MapValue {
        MapValue {
            count: self.count,
            chain: self.chain,
        }
    }
}

/// A proof for one key, in the SPEC §9 JSON form `{"siblings": [b64…], "other": null | {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MapProof {
    /// The sibling hashes along the key's path, top down: `siblings[i]` is beside the path at
    /// depth `i + 1`, under the node at depth `i`.
    #[serde(with = "b64::hashes")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::api::schema::B64Hash>))]
    pub siblings: Vec<Hash>,
    /// The other key's leaf where an absence proof's path ends; `null` for presence and for an
    /// absence ending in an empty subtree.
    // Always serialized (as `null` when absent): required, and nullable.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub other: Option<OtherLeaf>,
}

/// What [`super::MapTree::prove`] found for a key: its value (`None` if absent) and the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyProof {
    /// The key's value if the map holds the key.
    pub value: Option<MapValue>,
    /// The proof of presence (with `value`) or absence.
    pub proof: MapProof,
}

/// Why a map proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapProofError {
    /// More siblings than a key has bits.
    #[error("map proof has {0} siblings, more than 256")]
    TooManySiblings(usize),
    /// An absence can only end at depth 255 or less (at 256 the other key would equal K, and an
    /// empty subtree would need two equal keys beside it).
    #[error("an absence proof cannot end at depth 256")]
    AbsenceAtFullDepth,
    /// A presence proof names another key's leaf.
    #[error("a presence proof has no \"other\" leaf")]
    OtherInPresenceProof,
    /// The `other` leaf is K itself.
    #[error("the \"other\" leaf of an absence proof has the proven key")]
    OtherIsSameKey,
    /// The `other` key does not share K's first `d` bits, so its leaf is not on K's path.
    #[error("the \"other\" key does not share the proven key's first {depth} bits")]
    OtherOffPath {
        /// The proof's depth `d`.
        depth: usize,
    },
    /// A value (K's or the other key's) with count 0: such a key is not in the map.
    #[error("a map value with a count of zero")]
    ZeroCount,
    /// The last sibling is an empty subtree: then the path's parent holds at most one key and the
    /// path would end one level higher, so this is not the canonical proof.
    #[error("the last sibling is empty: the path does not end where the canonical tree does")]
    NotCanonical,
    /// The root recomputed from the proof differs from the map leaf's root.
    #[error("map proof does not lead to the given root")]
    RootMismatch,
}

/// Checks the proof's shape (SPEC §9): at most 256 siblings, and a non-empty last sibling.
fn check_shape(siblings: &[Hash]) -> Result<(), MapProofError> {
    if siblings.len() > usize::from(KEY_BITS) {
        return Err(MapProofError::TooManySiblings(siblings.len()));
    }
    if siblings.last() == Some(&EMPTY) {
        return Err(MapProofError::NotCanonical);
    }
    Ok(())
}

/// Hashes from the end of the path upward (SPEC §9): K's bit `i` places the running hash left (0)
/// or right (1) of `siblings[i]`; compares with `root`. `siblings.len() ≤ 256`.
fn fold_to_root(
    th: TreeHash,
    root: &Hash,
    key: &Hash,
    start: Hash,
    siblings: &[Hash],
) -> Result<(), MapProofError> {
    let mut h = start;
    for (i, s) in siblings.iter().enumerate().rev() {
        // i < 256 by check_shape.
        let i = u16::try_from(i).map_err(|_| MapProofError::TooManySiblings(siblings.len()))?;
        h = if bit(key, i) {
            node_hash(th, s, &h)
        } else {
            node_hash(th, &h, s)
        };
    }
    if h == *root {
        Ok(())
    } else {
        Err(MapProofError::RootMismatch)
    }
}

/// Verifies that the map with `root` holds `key` with exactly `value` (SPEC §9, presence): the
/// path ends in K's leaf `H(0x13 ‖ K ‖ u64be(count) ‖ c)`, computed from the value the verifier
/// derived from the leaves it was shown.
pub fn verify_presence(
    th: TreeHash,
    root: &Hash,
    key: &Hash,
    value: &MapValue,
    proof: &MapProof,
) -> Result<(), MapProofError> {
    check_shape(&proof.siblings)?;
    if proof.other.is_some() {
        return Err(MapProofError::OtherInPresenceProof);
    }
    if value.count == 0 {
        return Err(MapProofError::ZeroCount);
    }
    fold_to_root(th, root, key, leaf_hash(th, key, value), &proof.siblings)
}

/// Verifies that the map with `root` does not hold `key` (SPEC §9, absence): the path ends in an
/// empty subtree, or in the leaf of another key sharing K's first `d` bits.
pub fn verify_absence(
    th: TreeHash,
    root: &Hash,
    key: &Hash,
    proof: &MapProof,
) -> Result<(), MapProofError> {
    check_shape(&proof.siblings)?;
    let depth = proof.siblings.len();
    if depth >= usize::from(KEY_BITS) {
        return Err(MapProofError::AbsenceAtFullDepth);
    }
    let start = match &proof.other {
        None => EMPTY,
        Some(other) => {
            if other.key == *key {
                return Err(MapProofError::OtherIsSameKey);
            }
            // depth < 256 here.
            let d = u16::try_from(depth).map_err(|_| MapProofError::AbsenceAtFullDepth)?;
            if !shares_prefix(&other.key, key, d) {
                return Err(MapProofError::OtherOffPath { depth });
            }
            if other.count == 0 {
                return Err(MapProofError::ZeroCount);
            }
            leaf_hash(th, &other.key, &other.value())
        }
    };
    fold_to_root(th, root, key, start, &proof.siblings)
}

#[cfg(test)]
mod tests {
    use super::super::{MapAddition, MapTree};
    use super::*;

    #[test]
    fn proofs_in_the_empty_and_one_key_maps() {
        let th = TreeHash::Blake3;
        let mut m = MapTree::new(th);
        let k = [0x80u8; 32];
        let p = m.prove(&k);
        assert_eq!(p.value, None);
        assert!(p.proof.siblings.is_empty() && p.proof.other.is_none());
        verify_absence(th, &EMPTY, &k, &p.proof).unwrap();

        m.apply(&[MapAddition {
            key: k,
            index: 0,
            leaf_hash: [1; 32],
        }])
        .unwrap();
        let root = m.root();
        let p = m.prove(&k);
        let v = p.value.unwrap();
        verify_presence(th, &root, &k, &v, &p.proof).unwrap();
        assert_eq!(
            verify_absence(th, &root, &k, &p.proof),
            Err(MapProofError::RootMismatch)
        );
        let other = [0u8; 32];
        let q = m.prove(&other);
        assert_eq!(q.proof.other.map(|o| o.key), Some(k));
        verify_absence(th, &root, &other, &q.proof).unwrap();
    }

    #[test]
    fn proof_json_is_the_spec_form() {
        let p = MapProof {
            siblings: vec![[0; 32]],
            other: None,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"siblings":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="],"other":null}"#
        );
        let q = MapProof {
            siblings: vec![],
            other: Some(OtherLeaf {
                key: [0; 32],
                count: 2,
                chain: [0; 32],
            }),
        };
        let s = serde_json::to_string(&q).unwrap();
        assert_eq!(
            s,
            r#"{"siblings":[],"other":{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","count":2,"chain":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#
        );
        assert_eq!(serde_json::from_str::<MapProof>(&s).unwrap(), q);
        assert!(serde_json::from_str::<MapProof>(r#"{"siblings":["AAAA"],"other":null}"#).is_err());
    }
}
