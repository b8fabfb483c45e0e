//! The witness: C2SP tlog-witness `POST /add-checkpoint`, answering with a `cosignature/v1`
//! (C2SP tlog-cosignature) by the auditor's key.
//!
//! The request and answer bytes are `ledger_core::witness`'s (shared with the log's client); what
//! this module adds is the witness's decision. The checks run in the order of the specification,
//! each with its status code:
//!
//! 1. the body is an old size line, at most 63 proof lines, an empty line and a checkpoint
//!    note, else **400**;
//! 2. the checkpoint's origin is a configured log, else **404**;
//! 3. the log's signature verifies (signatures by unknown keys are ignored), else **403**;
//! 4. old size ≤ checkpoint size, else **400**;
//! 5. old size = the size of the latest checkpoint cosigned for this origin (0 if none), else
//!    **409** with that size as `text/x.tlog.size`;
//! 6. same size: same root, else **409**; otherwise the RFC 6962 consistency proof from the
//!    stored checkpoint verifies with the log's tree hash (and is empty from size 0), else **422**;
//! 7. the new state is written with a compare-and-swap against the exact record checked in 5–6,
//!    and flushed to disk, before the **200** answer. If the swap loses a race, the request is
//!    re-checked from step 5 against the winner's state (and so ends in 409).

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::time::now_unix;
use ledger_core::tree::verify_consistency;
use ledger_core::witness::parse_request;
use std::sync::Arc;

use crate::audit::Auditor;
use crate::store::LogRecord;

/// Why an `add-checkpoint` request was refused; [`WitnessError::status`] is the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The body is not `old N`, proof lines, an empty line and a checkpoint note (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The checkpoint origin is not a log this witness is configured for (404).
    #[error("unknown log origin {0:?}")]
    UnknownLog(String),
    /// No signature verifies against the log's key (403).
    #[error("checkpoint signature does not verify: {0}")]
    BadSignature(String),
    /// The old size is larger than the checkpoint size (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// The request's old size.
        old: u64,
        /// The checkpoint size.
        size: u64,
    },
    /// The old size is not the size of the latest cosigned checkpoint (409).
    #[error("old size {old} does not match the latest cosigned size {latest}")]
    OldSizeMismatch {
        /// The request's old size.
        old: u64,
        /// The latest cosigned size (the 409 body).
        latest: u64,
    },
    /// Same size as the latest cosigned checkpoint but a different root (409).
    #[error("checkpoint of size {latest} has a different root than the one cosigned")]
    RootMismatch {
        /// The latest cosigned size (the 409 body).
        latest: u64,
    },
    /// The consistency proof does not verify (422).
    #[error("consistency proof does not verify: {0}")]
    BadProof(String),
    /// A storage or signing failure (500); nothing was cosigned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WitnessError {
    /// The HTTP status code of tlog-witness for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) | WitnessError::OldSizeTooLarge { .. } => 400,
            WitnessError::BadSignature(_) => 403,
            WitnessError::UnknownLog(_) => 404,
            WitnessError::OldSizeMismatch { .. } | WitnessError::RootMismatch { .. } => 409,
            WitnessError::BadProof(_) => 422,
            WitnessError::Internal(_) => 500,
        }
    }

    /// For a 409, the latest cosigned size (the `text/x.tlog.size` body without its newline).
    pub fn conflict_size(&self) -> Option<u64> {
        match self {
            WitnessError::OldSizeMismatch { latest, .. }
            | WitnessError::RootMismatch { latest } => Some(*latest),
            _ => None,
        }
    }
}

/// The outcome of a successful request: the cosignature line(s) to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The response body: one `— <name> <base64>` line per cosignature.
    pub body: String,
    /// The cosigned checkpoint size.
    pub size: u64,
}

/// Handles one `add-checkpoint` request body (see the module docs for the steps).
///
/// A refused checkpoint that is validly signed by the log (409 with a different root, 422) is
/// handed to the auditor as an observation, so that a second branch becomes evidence.
pub async fn add_checkpoint(aud: &Arc<Auditor>, body: &[u8]) -> Result<Cosigned, WitnessError> {
    // Step 1.
    let req = parse_request(body).map_err(|e| WitnessError::Malformed(e.to_string()))?;
    let scp = SignedCheckpoint::parse(&req.checkpoint)
        .map_err(|e| WitnessError::Malformed(format!("checkpoint: {e}")))?;
    let origin = scp.checkpoint.origin.clone();
    // Step 2.
    let log = aud
        .config()
        .log(&origin)
        .ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?
        .clone();
    // Step 3.
    log.log
        .verify(&scp, now_unix())
        .map_err(|e| WitnessError::BadSignature(e.to_string()))?;
    let size = scp.checkpoint.size;
    // Step 4.
    if req.old_size > size {
        return Err(WitnessError::OldSizeTooLarge {
            old: req.old_size,
            size,
        });
    }
    let internal = |e: &dyn std::fmt::Display| WitnessError::Internal(e.to_string());
    loop {
        let current = aud
            .store()
            .get(&origin)
            .map_err(|e| internal(&e))?
            .ok_or_else(|| WitnessError::Internal(format!("log {origin:?} is not registered")))?;
        let stored = &current.record;
        // Step 5.
        if req.old_size != stored.size {
            if size == stored.size && stored.root_hash().ok() != Some(scp.checkpoint.root) {
                // Same size, another root: a second branch, provable without the network.
                aud.spawn_observe(
                    req.checkpoint.clone(),
                    "add-checkpoint (refused)".to_string(),
                );
            }
            return Err(WitnessError::OldSizeMismatch {
                old: req.old_size,
                latest: stored.size,
            });
        }
        // Step 6.
        let stored_root = stored.root_hash().map_err(|e| internal(&e))?;
        let result = if req.old_size == 0 {
            if req.proof.is_empty() {
                Ok(())
            } else {
                Err(WitnessError::BadProof(
                    "the proof must be empty from size 0".into(),
                ))
            }
        } else if req.old_size == size {
            if scp.checkpoint.root != stored_root {
                Err(WitnessError::RootMismatch { latest: size })
            } else if !req.proof.is_empty() {
                Err(WitnessError::BadProof(
                    "the proof must be empty between equal sizes".into(),
                ))
            } else {
                Ok(())
            }
        } else {
            verify_consistency(
                log.log.hash,
                req.old_size,
                size,
                &stored_root,
                &scp.checkpoint.root,
                &req.proof,
            )
            .map_err(|e| WitnessError::BadProof(e.to_string()))
        };
        if let Err(e) = result {
            if matches!(
                e,
                WitnessError::RootMismatch { .. } | WitnessError::BadProof(_)
            ) {
                // Possible proof of log misbehaviour (tlog-witness: the witness MAY log it).
                aud.spawn_observe(
                    req.checkpoint.clone(),
                    "add-checkpoint (refused)".to_string(),
                );
            }
            return Err(e);
        }
        // Step 7: cosign, swap atomically against the record checked above, flush, answer.
        if let Some(delay) = delay_before_swap() {
            // Test-only fault injection: widen the window between check and swap so that the
            // atomicity test really races (see `AUDITOR_TEST_DELAY_BEFORE_SWAP_MS`).
            tokio::time::sleep(delay).await;
        }
        let now = now_unix();
        let (sig, note) = aud
            .cosigned_note(&scp, now)
            .map_err(WitnessError::Internal)?;
        let new = LogRecord {
            size,
            root: ledger_core::api::b64::encode_hash(&scp.checkpoint.root),
            note: Some(note),
            updated: now,
            ..stored.clone()
        };
        if aud
            .store()
            .compare_and_swap(&origin, &current, &new)
            .map_err(|e| internal(&e))?
        {
            aud.store().flush().await.map_err(|e| internal(&e))?;
            return Ok(Cosigned {
                body: sig.to_line(),
                size,
            });
        }
        // Lost a race: re-check against the state that won (this ends in 409 unless the winner
        // stored exactly this checkpoint's size and root).
    }
}

/// `AUDITOR_TEST_DELAY_BEFORE_SWAP_MS`: a pause between the checks and the compare-and-swap,
/// for tests only — it makes every concurrent request pass its checks before any swaps, so a
/// non-atomic check-then-write would let several requests succeed. Unset in production.
fn delay_before_swap() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("AUDITOR_TEST_DELAY_BEFORE_SWAP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
    })
}

/// A fresh `cosignature/v1` witness key named `name`, from the OS RNG.
pub fn generate_key(name: &str) -> Result<ledger_core::key::SignerKey, ledger_core::key::KeyError> {
    ledger_core::key::SignerKey::generate(
        name,
        ledger_core::key::KeyAlg::Cosignature,
        &mut rand_core::OsRng,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_tlog_witness() {
        assert_eq!(WitnessError::UnknownLog("x".into()).status(), 404);
        assert_eq!(WitnessError::BadSignature("x".into()).status(), 403);
        assert_eq!(
            WitnessError::OldSizeTooLarge { old: 2, size: 1 }.status(),
            400
        );
        let c = WitnessError::OldSizeMismatch { old: 1, latest: 5 };
        assert_eq!((c.status(), c.conflict_size()), (409, Some(5)));
        assert_eq!(
            WitnessError::RootMismatch { latest: 3 }.conflict_size(),
            Some(3)
        );
        assert_eq!(WitnessError::BadProof("x".into()).status(), 422);
    }
}
