//! Tree hash functions and RFC 6962 domain separation.
//!
//! A log fixes its hash at creation: BLAKE3 by default (fast), SHA-256 when it must interoperate with
//! C2SP / Certificate Transparency tooling. Leaves and interior nodes are domain-separated (0x00 / 0x01)
//! so that a leaf can never be passed off as a node (second-preimage resistance, RFC 6962 §2.1).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// A 32-byte tree hash (leaf, node or root).
pub type Hash = [u8; 32];

/// The hash function a log's Merkle tree uses; published in `/v1/info` and fixed for the log's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TreeHash {
    /// BLAKE3 (the default).
    #[default]
    Blake3,
    /// SHA-256, as in RFC 6962 and C2SP tlog.
    Sha256,
}

/// An unknown tree hash name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tree hash {0:?}: expected \"blake3\" or \"sha256\"")]
pub struct UnknownTreeHash(pub String);

impl TreeHash {
    /// The name used in `/v1/info`, configuration and trust files.
    pub fn name(self) -> &'static str {
        match self {
            TreeHash::Blake3 => "blake3",
            TreeHash::Sha256 => "sha256",
        }
    }

    /// Hashes the concatenation of `parts` (the RFC 6962 hashes and the map's, SPEC §9).
    ///
    /// Most inputs are short (tree and map nodes are 65 bytes, map leaves and chain steps 73):
    /// those are copied into one stack buffer and hashed in one call, which costs about half of
    /// an incremental hasher's set-up, updates and finalization for inputs of this size (the map's
    /// batch update and every proof verification are mostly such hashes).
    pub(crate) fn digest(self, parts: &[&[u8]]) -> Hash {
        const SHORT: usize = 128;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= SHORT {
            let mut buf = [0u8; SHORT];
            let mut at = 0;
            for p in parts {
                buf[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            return self.hash_bytes(&buf[..at]);
        }
        match self {
            TreeHash::Blake3 => {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                *h.finalize().as_bytes()
            }
            TreeHash::Sha256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }

    /// `H(bytes)` in one call.
    fn hash_bytes(self, bytes: &[u8]) -> Hash {
        match self {
            TreeHash::Blake3 => *blake3::hash(bytes).as_bytes(),
            TreeHash::Sha256 => sha2::Sha256::digest(bytes).into(),
        }
    }

    /// `H(0x00 ‖ leaf)` — RFC 9162 §2.1.1 leaf hash.
    pub fn leaf_hash(self, leaf: &[u8]) -> Hash {
        self.digest(&[&[0x00], leaf])
    }

    /// `H(0x01 ‖ left ‖ right)` — RFC 9162 §2.1.1 interior node hash.
    pub fn node_hash(self, left: &Hash, right: &Hash) -> Hash {
        self.digest(&[&[0x01], left, right])
    }

    /// `H("")` — the root of the empty tree.
    pub fn empty_root(self) -> Hash {
        self.digest(&[])
    }
}

impl fmt::Display for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TreeHash {
    type Err = UnknownTreeHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blake3" => Ok(TreeHash::Blake3),
            "sha256" => Ok(TreeHash::Sha256),
            other => Err(UnknownTreeHash(other.to_string())),
        }
    }
}

/// Lowercase hex of `bytes` (gossip paths, evidence and alert ids).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_roots_are_the_published_ones() {
        assert_eq!(
            hex(&TreeHash::Sha256.empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&TreeHash::Blake3.empty_root()),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for h in [TreeHash::Blake3, TreeHash::Sha256] {
            assert_eq!(h.name().parse::<TreeHash>().unwrap(), h);
        }
        assert!("SHA256".parse::<TreeHash>().is_err());
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }
}
