//! One submission from bytes to receipt (SPEC §3 admission, §5 `POST /v1/add`):
//!
//! 1. exact bytes of a leaf already covered by the head → receipt for the stored index at once
//!    (idempotence; no re-check, the leaf was admitted when it was stored);
//! 2. reserve a queue slot (`503 overloaded` when full);
//! 3. stateless admission (`ledger_core::admission::admit_batch`: syntax, canonical form, policy,
//!    clock, signatures against a registry snapshot) on the admission pool, off the async runtime,
//!    with the signatures of all pending submissions batch-verified (see [`crate::admission`]);
//! 4. the sequencer re-checks the stateful parts at the final index and commits durably;
//! 5. receipt: index, leaf hash, the signed checkpoint and the inclusion proof against it.

use std::sync::Arc;

use ledger_core::api::Receipt;
use tokio::sync::oneshot;

use crate::admission::AdmissionPool;
use crate::error::LogError;
use crate::ledger::{Ledger, WriteState};
use crate::sequencer::{SequencerHandle, Submission};

/// The outcome of a submission that was not refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The receipt.
    pub receipt: Receipt,
    /// Whether the leaf was already in the log.
    pub duplicate: bool,
}

/// Submits leaf bytes; answers only once the leaf is durably stored under a signed checkpoint.
pub async fn submit(
    ledger: &Arc<Ledger>,
    sequencer: &SequencerHandle,
    pool: &AdmissionPool,
    bytes: Vec<u8>,
) -> Result<Submitted, LogError> {
    let leaf_hash = ledger.tree_hash().leaf_hash(&bytes);

    // 0. A log whose store failed answers no submission, not even a resubmission: after an I/O
    //    error sled refuses every later operation, reads included.
    if ledger.failed() {
        if let Some(refusal) = write_refusal(&ledger.write_state()) {
            return Err(refusal);
        }
    }

    // 1. Idempotence.
    let head = ledger.head();
    if let Some(index) = ledger.existing(&bytes, &leaf_hash, &head)? {
        ledger
            .metrics
            .duplicates
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(Submitted {
            receipt: ledger.receipt(index, leaf_hash, &head)?,
            duplicate: true,
        });
    }

    // 2. The log must be writing, and a queue slot, before spending CPU on signatures.
    if let Some(refusal) = write_refusal(&ledger.write_state()) {
        return Err(refusal);
    }
    let permit = sequencer.reserve()?;

    // 3. Stateless admission on the worker pool.
    let registry = ledger.registry();
    let policy = ledger.policy();
    let (leaf, signers) = pool
        .admit(bytes, registry, policy)
        .await
        .ok_or(LogError::NotRunning)??;

    // 4. Sequence.
    let (reply, answer) = oneshot::channel();
    permit.send(Submission {
        leaf,
        leaf_hash,
        signers,
        reply,
    });
    let sequenced = answer
        .await
        .map_err(|_| write_refusal(&ledger.write_state()).unwrap_or(LogError::NotRunning))??;

    // 5. Receipt.
    Ok(Submitted {
        receipt: ledger.receipt(sequenced.index, leaf_hash, &sequenced.head)?,
        duplicate: sequenced.duplicate,
    })
}

/// The refusal for a write while the log is not writing (`None` while it is): `storage-full`
/// while the disk is below its floor (writing resumes by itself), `storage-failed` once the
/// sequencer stopped on a storage error (only a restart helps). `/healthz` answers the same.
pub fn write_refusal(state: &WriteState) -> Option<LogError> {
    match state {
        WriteState::Ok => None,
        WriteState::DiskLow(low) => Some(LogError::StorageFull(*low)),
        WriteState::Failed(reason) => Some(LogError::StorageFailed(reason.clone())),
    }
}
