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

use ledger_core::admission::Signers;
use ledger_core::api::Receipt;
use ledger_core::entry::Leaf;
use tokio::sync::{mpsc, oneshot};

use crate::admission::AdmissionPool;
use crate::error::LogError;
use crate::ledger::{Head, Ledger, WriteState};
use crate::sequencer::{Sequenced, SequencerHandle, Submission};

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
    //    error the index (poisoned) refuses every later write, and the store is judged again
    //    only by a restart.
    if ledger.failed() {
        if let Some(refusal) = write_refusal(&ledger.write_state()) {
            return Err(refusal);
        }
    }

    // 1. Idempotence.
    let head = ledger.head();
    if let Some(index) = ledger.existing(&bytes, &leaf_hash, &head)? {
        return already_stored(ledger, index, leaf_hash, &head);
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

    // 4. Sequence; 5. the receipt, once durable.
    let answer = sequence(permit, leaf, leaf_hash, signers);
    receipt_when_durable(ledger, leaf_hash, answer).await
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

/// Submits the leaves of one bundle (`POST /v1/add-bundle`), each as [`submit`] submits one, and
/// answers per leaf in order. The outer error refuses the whole bundle and stores nothing:
///
/// - the log is not writing (`storage-full`, `storage-failed`), checked once before anything: a
///   bulk load against a full disk is refused as a whole, even for leaves it already holds;
/// - not enough free queue slots for every new leaf (`overloaded`): the slots are reserved all
///   or nothing, so a busy log never takes half a bundle and the client simply resends it.
///
/// Otherwise every leaf is judged on its own, by the same steps as [`submit`]: leaves the head
/// already covers get their receipt (idempotence), the others go through the admission pool
/// together (their signatures batch-verified) and, if admitted, to the sequencer **in bundle
/// order** (one task sends them, so a claim and a later revoke of it in one bundle keep their
/// order in the log), and each receipt comes only once its leaf is durable under a signed
/// checkpoint. A leaf refused by admission or by the sequencer's re-check is stored nowhere;
/// the same new leaf twice in one bundle is stored once and both get its receipt.
pub async fn submit_bundle(
    ledger: &Arc<Ledger>,
    sequencer: &SequencerHandle,
    pool: &AdmissionPool,
    leaves: Vec<Vec<u8>>,
) -> Result<Vec<Result<Submitted, LogError>>, LogError> {
    // 0. The log must be writing at all.
    if let Some(refusal) = write_refusal(&ledger.write_state()) {
        return Err(refusal);
    }

    // 1. Idempotence, per leaf, against one head.
    let head = ledger.head();
    let mut answers: Vec<Option<Result<Submitted, LogError>>> = Vec::with_capacity(leaves.len());
    let mut new = Vec::new(); // (position in the bundle, leaf hash, bytes)
    for (at, bytes) in leaves.into_iter().enumerate() {
        let leaf_hash = ledger.tree_hash().leaf_hash(&bytes);
        match ledger.existing(&bytes, &leaf_hash, &head)? {
            Some(index) => answers.push(Some(Ok(already_stored(ledger, index, leaf_hash, &head)?))),
            None => {
                answers.push(None);
                new.push((at, leaf_hash, bytes));
            }
        }
    }

    // 2. A queue slot for every new leaf, or none (dropping the permits frees them).
    let permits = new
        .iter()
        .map(|_| sequencer.reserve())
        .collect::<Result<Vec<_>, _>>()?;

    // 3. Stateless admission of all new leaves on the pool, batch-verified.
    let mut positions = Vec::with_capacity(new.len());
    let mut bytes = Vec::with_capacity(new.len());
    for (at, leaf_hash, b) in new {
        positions.push((at, leaf_hash));
        bytes.push(b);
    }
    let verdicts = pool
        .admit_many(bytes, ledger.registry(), ledger.policy())
        .await
        .ok_or(LogError::NotRunning)?;

    // 4. Sequence the admitted ones, in bundle order.
    let mut waiting = Vec::new();
    for (((at, leaf_hash), verdict), permit) in positions.into_iter().zip(verdicts).zip(permits) {
        match verdict {
            Ok((leaf, signers)) => {
                waiting.push((at, leaf_hash, sequence(permit, leaf, leaf_hash, signers)));
            }
            Err(refusal) => {
                if let Some(slot) = answers.get_mut(at) {
                    *slot = Some(Err(LogError::Refused(refusal)));
                }
            }
        }
    }

    // 5. Receipts, once durable.
    for (at, leaf_hash, answer) in waiting {
        let outcome = receipt_when_durable(ledger, leaf_hash, answer).await;
        if let Some(slot) = answers.get_mut(at) {
            *slot = Some(outcome);
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or(Err(LogError::NotRunning)))
        .collect())
}

/// The receipt of a leaf the head already covers (idempotence), counted as a duplicate.
fn already_stored(
    ledger: &Ledger,
    index: u64,
    leaf_hash: ledger_core::Hash,
    head: &Head,
) -> Result<Submitted, LogError> {
    ledger
        .metrics
        .duplicates
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Submitted {
        receipt: ledger.receipt(index, leaf_hash, head)?,
        duplicate: true,
    })
}

/// Hands an admitted leaf to the sequencer through its reserved slot; the receiver gets the
/// outcome once the leaf is durable (or refused by the sequencer's re-check).
fn sequence(
    permit: mpsc::OwnedPermit<Submission>,
    leaf: Leaf,
    leaf_hash: ledger_core::Hash,
    signers: Signers,
) -> oneshot::Receiver<Result<Sequenced, LogError>> {
    let (reply, answer) = oneshot::channel();
    permit.send(Submission {
        leaf,
        leaf_hash,
        signers,
        reply,
    });
    answer
}

/// The receipt once the sequencer answered; a sequencer that went away answers with why the
/// log stopped writing.
async fn receipt_when_durable(
    ledger: &Ledger,
    leaf_hash: ledger_core::Hash,
    answer: oneshot::Receiver<Result<Sequenced, LogError>>,
) -> Result<Submitted, LogError> {
    let sequenced = answer
        .await
        .map_err(|_| write_refusal(&ledger.write_state()).unwrap_or(LogError::NotRunning))??;
    Ok(Submitted {
        receipt: ledger.receipt(sequenced.index, leaf_hash, &sequenced.head)?,
        duplicate: sequenced.duplicate,
    })
}
