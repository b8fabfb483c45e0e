//! Offline proof files: C2SP tlog-proof (`c2sp.org/tlog-proof@v1`), SPEC §4.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index <leaf index, decimal without leading zeros>
//! <base64 inclusion proof hash, leaf's sibling first>   (zero or more lines)
//!
//! <the checkpoint note, verbatim: text, empty line, log signature, cosignatures>
//! ```
//!
//! The C2SP format allows an optional `extra <base64>` line after the header; SPEC §4 lists none and
//! this log never writes one, so it is refused ([`ProofFileError::ExtraDataUnsupported`]) rather
//! than silently dropped — dropping it would give one file two meanings for `to_bytes`. Every
//! other field has one encoding, so `to_bytes(parse(b)) == b` for every accepted `b`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::checkpoint::{parse_canonical_u64, CheckpointError, SignedCheckpoint};
use crate::hash::{Hash, TreeHash};
use crate::key::VerifierKey;
use crate::note::MAX_NOTE_BYTES;
use crate::tree::{verify_inclusion, ProofError};

/// The first line of every proof file.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most inclusion proof hashes a file may carry: a tree of at most 2^64 − 1 leaves is at most
/// 64 levels deep.
pub const MAX_PROOF_HASHES: usize = 64;

/// The largest proof file accepted: a maximal checkpoint note plus a maximal header.
pub const MAX_PROOF_FILE_BYTES: usize = MAX_NOTE_BYTES + 4096;

/// Why a proof file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofFileError {
    /// The file is larger than [`MAX_PROOF_FILE_BYTES`].
    #[error("proof file is larger than {MAX_PROOF_FILE_BYTES} bytes")]
    TooLarge,
    /// The lines before the checkpoint are not valid UTF-8.
    #[error("proof file is not valid UTF-8")]
    NotUtf8,
    /// No empty line separates the proof from the checkpoint.
    #[error("proof file has no empty line before the checkpoint")]
    MissingBlankLine,
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("first line must be {HEADER}")]
    BadHeader,
    /// The file carries an `extra` line, which this log does not use (SPEC §4).
    #[error("proof file extra data is not supported")]
    ExtraDataUnsupported,
    /// The `index N` line is missing or N is not a decimal u64 without leading zeros.
    #[error("expected an \"index N\" line with N decimal, no leading zeros")]
    BadIndex,
    /// A proof line is not the canonical standard base64 of 32 bytes.
    #[error("inclusion proof line {0} is not base64 of a 32-byte hash")]
    BadProofHash(usize),
    /// More than [`MAX_PROOF_HASHES`] proof lines.
    #[error("more than {MAX_PROOF_HASHES} inclusion proof hashes")]
    TooManyProofHashes,
    /// The checkpoint is malformed or its log signature does not verify.
    #[error("proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not lead from the leaf to the checkpoint's root (this includes an
    /// index that is not below the checkpoint's size).
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

/// A C2SP tlog-proof: a leaf index, its inclusion proof and the checkpoint it is proven against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofFile {
    /// Zero-based index of the leaf.
    pub index: u64,
    /// RFC 9162 §2.1.3 inclusion proof, from the leaf's sibling up to the root's child.
    pub proof: Vec<Hash>,
    /// The signed (and possibly cosigned) checkpoint.
    pub checkpoint: SignedCheckpoint,
}

impl ProofFile {
    /// The file bytes (tlog-proof "Format").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\nindex {}\n", self.index);
        for h in &self.proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint.to_bytes());
        bytes
    }

    /// Parses a proof file (syntax only; [`ProofFile::verify`] checks signature and inclusion).
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofFileError> {
        if bytes.len() > MAX_PROOF_FILE_BYTES {
            return Err(ProofFileError::TooLarge);
        }
        // The header lines are all non-empty, so the first empty line ends them; the checkpoint
        // note that follows has an empty line of its own.
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or(ProofFileError::MissingBlankLine)?;
        let (head, rest) = bytes.split_at(split + 1);
        let checkpoint_bytes = rest.get(1..).ok_or(ProofFileError::MissingBlankLine)?;
        let head = std::str::from_utf8(head).map_err(|_| ProofFileError::NotUtf8)?;
        let head = head
            .strip_suffix('\n')
            .ok_or(ProofFileError::MissingBlankLine)?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(ProofFileError::BadHeader);
        }
        let index_line = lines.next().ok_or(ProofFileError::BadIndex)?;
        if index_line.starts_with("extra ") {
            return Err(ProofFileError::ExtraDataUnsupported);
        }
        let index = index_line
            .strip_prefix("index ")
            .and_then(parse_canonical_u64)
            .ok_or(ProofFileError::BadIndex)?;
        let mut proof = Vec::new();
        for (i, line) in lines.enumerate() {
            if proof.len() == MAX_PROOF_HASHES {
                return Err(ProofFileError::TooManyProofHashes);
            }
            let raw = B64
                .decode(line)
                .map_err(|_| ProofFileError::BadProofHash(i))?;
            let h: Hash = raw
                .as_slice()
                .try_into()
                .map_err(|_| ProofFileError::BadProofHash(i))?;
            proof.push(h);
        }
        let checkpoint = SignedCheckpoint::parse(checkpoint_bytes)?;
        Ok(ProofFile {
            index,
            proof,
            checkpoint,
        })
    }

    /// Verifies the proof offline: the checkpoint's log signature under `log_key` (whose name must
    /// be the origin), then the RFC 9162 §2.1.3.2 inclusion of `leaf` (hashed with `th`) at
    /// `index` under the checkpoint's root. Witness cosignatures are the caller's policy: see
    /// [`SignedCheckpoint::check_quorum`].
    pub fn verify(
        &self,
        th: TreeHash,
        leaf: &[u8],
        log_key: &VerifierKey,
    ) -> Result<(), ProofFileError> {
        self.checkpoint.verify_signature(log_key)?;
        let cp = &self.checkpoint.checkpoint;
        verify_inclusion(
            th,
            self.index,
            cp.size,
            &th.leaf_hash(leaf),
            &self.proof,
            &cp.root,
        )?;
        Ok(())
    }
}
