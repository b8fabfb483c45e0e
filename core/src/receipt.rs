//! Receipts: the log's promise that a leaf is at an index under a signed checkpoint.

use crate::api::Receipt;
use crate::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::hash::TreeHash;
use crate::key::VerifierKey;
use crate::proof_file::ProofFile;
use crate::tree::{verify_inclusion, ProofError};

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The checkpoint does not parse or its log signature does not verify.
    #[error("receipt checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The receipt's leaf hash is not the hash of the submitted leaf.
    #[error("the receipt's leaf hash is not the hash of this leaf")]
    LeafHash,
    /// The inclusion proof does not verify against the checkpoint.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

impl Receipt {
    /// Verifies that `leaf` is at `self.index` under the log-signed checkpoint; returns the checkpoint.
    pub fn verify(
        &self,
        leaf: &[u8],
        hash: TreeHash,
        log_key: &VerifierKey,
    ) -> Result<SignedCheckpoint, ReceiptError> {
        let cp = SignedCheckpoint::verify(self.checkpoint.as_bytes(), log_key)?;
        if hash.leaf_hash(leaf) != self.leaf_hash {
            return Err(ReceiptError::LeafHash);
        }
        verify_inclusion(
            hash,
            self.index,
            cp.checkpoint.size,
            &self.leaf_hash,
            &self.inclusion,
            &cp.checkpoint.root,
        )?;
        Ok(cp)
    }

    /// The receipt as a C2SP tlog-proof file, for offline verification (`ledger verify-receipt`).
    pub fn to_proof_file(&self) -> Result<ProofFile, ReceiptError> {
        Ok(ProofFile {
            index: self.index,
            proof: self.inclusion.clone(),
            checkpoint: SignedCheckpoint::parse(self.checkpoint.as_bytes())?,
        })
    }
}
