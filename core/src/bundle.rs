//! Submission bundles (`POST /v1/add-bundle`, bulk onboarding): many leaves in one request, framed
//! exactly as C2SP tlog-tiles entry bundles frame them (each leaf as a big-endian `u16` length and
//! its bytes, concatenated; see [`crate::tile::decode_entry_bundle`]), so a client that can read
//! `/tile/entries/…` can write a bundle, and a bundle of leaves copied out of one log's entry
//! bundles can be replayed into another.
//!
//! The framing is checked here, once, for the log and the client alike; each leaf is then
//! admitted on its own by the one admission rule ([`crate::admission`]), so a bundle refuses
//! nothing a single submission would admit, and admits nothing it would refuse. The answer is a
//! JSON array with one [`BundleItem`] per leaf, in order.

use serde::{Deserialize, Serialize};

use crate::api::{Problem, Receipt};
use crate::entry::MAX_LEAF_BYTES;

/// The most leaves one bundle may carry (as `/v1/entries` pages at most 1,000 entries): large
/// enough that a bulk onboarding of a million SIIs is a thousand requests, small enough that one
/// request holds at most ~8 MB and its answer is bounded.
pub const MAX_BUNDLE_LEAVES: usize = 1000;

/// The largest bundle body: [`MAX_BUNDLE_LEAVES`] leaves of [`MAX_LEAF_BYTES`] with their 2-byte
/// length prefixes. A larger body is refused unread (`too-large`, 413).
pub const MAX_BUNDLE_BYTES: usize = MAX_BUNDLE_LEAVES * (2 + MAX_LEAF_BYTES);

/// Why bytes are not a well-framed submission bundle (problem slug `bad-bundle`, 400). A leaf
/// longer than [`MAX_LEAF_BYTES`] is *not* a framing error: it is refused on its own
/// (`too-large`), like the same leaf sent to `POST /v1/add`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// No leaf at all (an empty body).
    #[error("the bundle holds no leaf")]
    Empty,
    /// More than [`MAX_BUNDLE_LEAVES`] leaves.
    #[error("the bundle holds more than {MAX_BUNDLE_LEAVES} leaves")]
    TooManyLeaves,
    /// The data ends inside the length prefix or the bytes of the leaf starting at `offset`.
    #[error("the bundle ends inside the length or the bytes of leaf {index} (at byte {offset})")]
    Truncated {
        /// The 0-based number of the truncated leaf.
        index: usize,
        /// Where its length prefix starts.
        offset: usize,
    },
    /// A leaf too long for a `u16` length prefix (when encoding).
    #[error("leaf {index} is {len} bytes, more than a u16 length prefix can frame")]
    LeafTooLong {
        /// The 0-based number of the leaf.
        index: usize,
        /// Its length.
        len: usize,
    },
}

/// Splits a bundle into its leaves (borrowed, in order). Refuses an empty bundle, more than
/// [`MAX_BUNDLE_LEAVES`] leaves and data ending inside a length prefix or a leaf; the leaves
/// themselves are not looked at.
pub fn decode_bundle(data: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    if data.is_empty() {
        return Err(BundleError::Empty);
    }
    let mut leaves = Vec::new();
    let mut rest = data;
    let mut offset = 0;
    while !rest.is_empty() {
        if leaves.len() == MAX_BUNDLE_LEAVES {
            return Err(BundleError::TooManyLeaves);
        }
        let truncated = BundleError::Truncated {
            index: leaves.len(),
            offset,
        };
        let (len, tail) = rest.split_first_chunk::<2>().ok_or(truncated.clone())?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (leaf, tail) = tail.split_at_checked(len).ok_or(truncated)?;
        leaves.push(leaf);
        offset += 2 + len;
        rest = tail;
    }
    Ok(leaves)
}

/// Frames `leaves` as a bundle. Refuses none or more than [`MAX_BUNDLE_LEAVES`], and a leaf over
/// 65,535 bytes; a leaf over [`MAX_LEAF_BYTES`] is framed (the log refuses it on its own).
pub fn encode_bundle<L: AsRef<[u8]>>(leaves: &[L]) -> Result<Vec<u8>, BundleError> {
    if leaves.is_empty() {
        return Err(BundleError::Empty);
    }
    if leaves.len() > MAX_BUNDLE_LEAVES {
        return Err(BundleError::TooManyLeaves);
    }
    let total: usize = leaves.iter().map(|l| l.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for (index, leaf) in leaves.iter().enumerate() {
        let leaf = leaf.as_ref();
        let len = u16::try_from(leaf.len()).map_err(|_| BundleError::LeafTooLong {
            index,
            len: leaf.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(leaf);
    }
    Ok(out)
}

/// One element of the `POST /v1/add-bundle` answer: the receipt `POST /v1/add` would give for
/// that leaf, or the problem document it would give (same slug and status), in the array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum BundleItem {
    /// The leaf is stored (or was already): its receipt.
    Receipt(Receipt),
    /// The leaf was refused and nothing of it stored.
    Problem(Problem),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemType;
    use crate::tile::encode_entry_bundle;

    #[test]
    fn the_framing_is_the_entry_bundles() {
        let leaves: Vec<&[u8]> = vec![b"one", b"", b"three"];
        let tile = encode_entry_bundle(&leaves);
        assert_eq!(encode_bundle(&leaves), Ok(tile.clone()));
        assert_eq!(decode_bundle(&tile), Ok(leaves));
    }

    #[test]
    fn malformed_bundles_are_refused() {
        assert_eq!(decode_bundle(b""), Err(BundleError::Empty));
        assert_eq!(
            decode_bundle(&[0]),
            Err(BundleError::Truncated {
                index: 0,
                offset: 0
            })
        );
        assert_eq!(
            decode_bundle(&[0, 1, b'a', 0, 5, b'x']),
            Err(BundleError::Truncated {
                index: 1,
                offset: 3
            })
        );
        let many = vec![[0u8, 0]; MAX_BUNDLE_LEAVES + 1].concat();
        assert_eq!(decode_bundle(&many), Err(BundleError::TooManyLeaves));
        assert_eq!(
            decode_bundle(&many[2..]).map(|l| l.len()),
            Ok(MAX_BUNDLE_LEAVES)
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(encode_bundle(&none), Err(BundleError::Empty));
        let big = vec![0u8; 70_000];
        assert_eq!(
            encode_bundle(&[big.as_slice()]),
            Err(BundleError::LeafTooLong {
                index: 0,
                len: 70_000
            })
        );
    }

    #[test]
    fn items_round_trip_as_receipt_or_problem() {
        let p = BundleItem::Problem(Problem::new(ProblemType::BadSignature, "no"));
        let r = BundleItem::Receipt(Receipt {
            index: 7,
            leaf_hash: [3; 32],
            checkpoint: "x\n".into(),
            inclusion: vec![[4; 32]],
        });
        let json = serde_json::to_string(&vec![r.clone(), p.clone()]).expect("json");
        assert!(
            json.contains("urn:mimi-ledger:problem:bad-signature"),
            "{json}"
        );
        let back: Vec<BundleItem> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, vec![r, p]);
    }
}
