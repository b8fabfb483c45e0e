//! The JSON wire types of the log's API (SPEC §5), shared by the server, the client and tests.
//!
//! Hashes and proofs are standard base64 on the wire; leaves and checkpoints are the note text as a
//! JSON string (notes are UTF-8 by construction). Defining them once keeps server and clients in step.

use serde::{Deserialize, Serialize};

use crate::admission::Policy;
use crate::hash::{Hash, TreeHash};
use crate::problem::ProblemType;
use crate::state::Status;

/// Serde adapters for hashes as standard base64 strings.
pub mod b64 {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use crate::hash::Hash;

    /// Decodes one standard-base64 hash of exactly 32 bytes.
    pub fn decode_hash(s: &str) -> Result<Hash, String> {
        let bytes = B64
            .decode(s)
            .map_err(|e| format!("bad base64 hash {s:?}: {e}"))?;
        Hash::try_from(bytes.as_slice())
            .map_err(|_| format!("hash {s:?} is {} bytes, expected 32", bytes.len()))
    }

    /// Encodes a hash as standard base64.
    pub fn encode_hash(h: &Hash) -> String {
        B64.encode(h)
    }

    /// `#[serde(with = "b64::hash")]` for one hash.
    pub mod hash {
        use super::*;

        /// Serializes a hash as base64.
        pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&encode_hash(h))
        }

        /// Deserializes a base64 hash of 32 bytes.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
            let s = String::deserialize(d)?;
            decode_hash(&s).map_err(D::Error::custom)
        }
    }

    /// `#[serde(with = "b64::hashes")]` for a list of hashes (a proof).
    pub mod hashes {
        use super::*;
        use serde::ser::SerializeSeq as _;

        /// Serializes hashes as a list of base64 strings.
        pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(hs.len()))?;
            for h in hs {
                seq.serialize_element(&encode_hash(h))?;
            }
            seq.end()
        }

        /// Deserializes a list of base64 hashes of 32 bytes each.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
            let v = Vec::<String>::deserialize(d)?;
            v.iter()
                .map(|s| decode_hash(s).map_err(D::Error::custom))
                .collect()
        }
    }
}

/// `POST /v1/add` answer: where the leaf is, and proof that a signed checkpoint covers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The leaf's index.
    pub index: u64,
    /// The leaf hash.
    #[serde(with = "b64::hash")]
    pub leaf_hash: Hash,
    /// The signed checkpoint note (text) the inclusion proof is against.
    pub checkpoint: String,
    /// The RFC 9162 inclusion proof.
    #[serde(with = "b64::hashes")]
    pub inclusion: Vec<Hash>,
}

/// `GET /v1/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The log origin (also its key name).
    pub origin: String,
    /// The log's verifier key.
    pub vkey: String,
    /// The tree hash.
    pub hash: TreeHash,
    /// The current tree size.
    pub size: u64,
    /// Witness verifier keys.
    pub witnesses: Vec<String>,
    /// How many witness cosignatures the log waits for.
    pub quorum: usize,
    /// The admission policy.
    pub policy: Policy,
}

/// One leaf with its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedLeaf {
    /// The leaf index.
    pub index: u64,
    /// The leaf note text.
    pub leaf: String,
}

/// `GET /v1/entries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntriesPage {
    /// The leaves, in index order.
    pub entries: Vec<IndexedLeaf>,
}

/// `GET /v1/proof/inclusion`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The RFC 9162 inclusion proof.
    #[serde(with = "b64::hashes")]
    pub inclusion: Vec<Hash>,
}

/// `GET /v1/proof/consistency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The RFC 9162 consistency proof.
    #[serde(with = "b64::hashes")]
    pub consistency: Vec<Hash>,
}

/// A leaf with its inclusion proof against the answer's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenLeaf {
    /// The leaf index.
    pub index: u64,
    /// The leaf note text.
    pub leaf: String,
    /// The RFC 9162 inclusion proof against the answer's checkpoint.
    #[serde(with = "b64::hashes")]
    pub inclusion: Vec<Hash>,
}

/// `GET /v1/lookup` — the Discovery Provider's answer (SPEC §5, verified per §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupAnswer {
    /// The SII asked about (canonical).
    pub sii: String,
    /// The signed (and possibly cosigned) checkpoint note every proof is against.
    pub checkpoint: String,
    /// The status the DP claims.
    pub status: Status,
    /// The indices of the current claims, as the DP claims.
    pub mappings: Vec<u64>,
    /// Every leaf for the SII, in log order.
    pub entries: Vec<ProvenLeaf>,
    /// The enroll leaves of every signer of those entries and of their attestations.
    pub keys: Vec<ProvenLeaf>,
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:mimi-ledger:problem:<slug>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short human title.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly was wrong.
    pub detail: String,
}

impl Problem {
    /// A problem document of type `kind` with `detail`.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Problem {
        Problem {
            type_: kind.uri(),
            title: kind.title().to_string(),
            status: kind.status(),
            detail: detail.into(),
        }
    }

    /// The slug of `type_`, if it is one of ours.
    pub fn kind(&self) -> Option<ProblemType> {
        self.type_
            .strip_prefix("urn:mimi-ledger:problem:")
            .and_then(ProblemType::from_slug)
    }
}
