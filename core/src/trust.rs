//! The trusted log: what every party pins about one log, and SPEC §6 step 1 — the one check that
//! a checkpoint is the log's and, when witnesses are required, cosigned and fresh.
//!
//! The client (trust file), the monitor and the auditor (their configuration files) and the log's
//! witness collector all describe a log the same way: its origin, its Ed25519 verifier key named
//! after that origin, its tree hash, the `cosignature/v1` keys of its witnesses with a quorum, and
//! an optional maximum age of the newest cosignature. [`TrustedLog::parse`] checks such a
//! description once, at load, so that a mistake is refused with a message naming the bad value —
//! in particular a witness key of the wrong type, whose cosignatures would otherwise be skipped
//! without a word and a quorum could never be met. [`TrustedLog::verify`] is then the only place
//! where step 1 is written.

use crate::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::hash::TreeHash;
use crate::key::{KeyAlg, VerifierKey};

/// Why a log description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The log's verifier key does not parse.
    #[error("log vkey {vkey:?}: {reason}")]
    BadLogKey {
        /// The key as given.
        vkey: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The log's verifier key is not an Ed25519 (`0x01`) key (SPEC §2, §4).
    #[error("log vkey {vkey:?} is not an Ed25519 (0x01) key")]
    LogKeyNotEd25519 {
        /// The key as given.
        vkey: String,
    },
    /// The log's verifier key is not named after the origin (the checkpoint's first line).
    #[error("log vkey is named {key_name:?} but origin is {origin:?}; a log's key is named after its origin")]
    LogKeyNotForOrigin {
        /// The configured origin.
        origin: String,
        /// The name in the key.
        key_name: String,
    },
    /// A witness key does not parse.
    #[error("witness key {vkey:?}: {reason}")]
    BadWitnessKey {
        /// The key as given.
        vkey: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A witness key is not a `cosignature/v1` (`0x04`) key: no cosignature could ever verify
    /// under it.
    #[error("witness key {vkey:?} is not a cosignature/v1 (0x04) key")]
    NotWitnessKey {
        /// The key as given.
        vkey: String,
    },
    /// The quorum is larger than the number of witnesses.
    #[error("quorum {quorum} is more than the {witnesses} witness keys listed")]
    QuorumTooLarge {
        /// The quorum.
        quorum: usize,
        /// The number of witness keys.
        witnesses: usize,
    },
}

/// Why a checkpoint fails SPEC §6 step 1; displays as the underlying [`CheckpointError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointRefused {
    /// It does not parse, or is not validly signed by the log's key.
    #[error("{0}")]
    Signature(CheckpointError),
    /// Too few witnesses cosigned it, or the newest cosignature is too old.
    #[error("{0}")]
    Witnesses(CheckpointError),
}

impl CheckpointRefused {
    /// The checkpoint error behind the refusal.
    pub fn error(&self) -> &CheckpointError {
        match self {
            CheckpointRefused::Signature(e) | CheckpointRefused::Witnesses(e) => e,
        }
    }
}

/// A log as a verifier trusts it (SPEC §6 inputs, step 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedLog {
    /// The log's verifier key; its name is the log origin.
    pub log_key: VerifierKey,
    /// The log's tree hash.
    pub hash: TreeHash,
    /// Witness verifier keys (`cosignature/v1`).
    pub witnesses: Vec<VerifierKey>,
    /// How many distinct witness cosignatures a checkpoint needs (0 = none).
    pub quorum: usize,
    /// The newest cosignature must be at most this old (seconds), when set and `quorum > 0`.
    pub max_age_s: Option<u64>,
}

/// Parses a witness verifier key and refuses one that is not a `cosignature/v1` (`0x04`) key,
/// naming it.
pub fn parse_witness_key(vkey: &str) -> Result<VerifierKey, TrustError> {
    let key = VerifierKey::parse(vkey.trim()).map_err(|e| TrustError::BadWitnessKey {
        vkey: vkey.to_string(),
        reason: e.to_string(),
    })?;
    if key.alg() != KeyAlg::Cosignature {
        return Err(TrustError::NotWitnessKey {
            vkey: vkey.to_string(),
        });
    }
    Ok(key)
}

/// Parses a log's verifier key and checks it is an Ed25519 (`0x01`) key named `origin`.
pub fn parse_log_key(origin: &str, vkey: &str) -> Result<VerifierKey, TrustError> {
    let key = VerifierKey::parse(vkey.trim()).map_err(|e| TrustError::BadLogKey {
        vkey: vkey.to_string(),
        reason: e.to_string(),
    })?;
    if key.name() != origin {
        return Err(TrustError::LogKeyNotForOrigin {
            origin: origin.to_string(),
            key_name: key.name().to_string(),
        });
    }
    if key.alg() != KeyAlg::Ed25519 {
        return Err(TrustError::LogKeyNotEd25519 {
            vkey: vkey.to_string(),
        });
    }
    Ok(key)
}

impl TrustedLog {
    /// A log with no witnesses and no freshness requirement (step 1 is then the log signature).
    pub fn new(log_key: VerifierKey, hash: TreeHash) -> TrustedLog {
        TrustedLog {
            log_key,
            hash,
            witnesses: Vec::new(),
            quorum: 0,
            max_age_s: None,
        }
    }

    /// Parses and checks a log description as written in a trust or configuration file: the log
    /// key is an Ed25519 key named `origin`, every witness key a `cosignature/v1` key, and the
    /// quorum at most the number of witnesses.
    pub fn parse(
        origin: &str,
        vkey: &str,
        hash: TreeHash,
        witnesses: &[String],
        quorum: usize,
        max_age_s: Option<u64>,
    ) -> Result<TrustedLog, TrustError> {
        let log_key = parse_log_key(origin, vkey)?;
        let witnesses = witnesses
            .iter()
            .map(|w| parse_witness_key(w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut log = TrustedLog::new(log_key, hash).with_witnesses(witnesses, quorum)?;
        log.max_age_s = max_age_s;
        Ok(log)
    }

    /// Sets the witnesses and quorum, refusing a key that is not a `cosignature/v1` key and a
    /// quorum larger than the witnesses.
    pub fn with_witnesses(
        mut self,
        witnesses: Vec<VerifierKey>,
        quorum: usize,
    ) -> Result<TrustedLog, TrustError> {
        if let Some(w) = witnesses.iter().find(|w| w.alg() != KeyAlg::Cosignature) {
            return Err(TrustError::NotWitnessKey {
                vkey: w.to_string(),
            });
        }
        if quorum > witnesses.len() {
            return Err(TrustError::QuorumTooLarge {
                quorum,
                witnesses: witnesses.len(),
            });
        }
        self.witnesses = witnesses;
        self.quorum = quorum;
        Ok(self)
    }

    /// The log origin (the log key's name).
    pub fn origin(&self) -> &str {
        self.log_key.name()
    }

    /// SPEC §6 step 1 on a parsed checkpoint at time `now` (Unix seconds): the log's signature
    /// verifies; and, when `quorum > 0`, at least `quorum` distinct witnesses cosigned and the
    /// newest cosignature is within `max_age_s` when set. Returns the witnesses whose cosignature
    /// verifies, with their newest timestamps (possibly some even when `quorum` is 0).
    pub fn verify(
        &self,
        checkpoint: &SignedCheckpoint,
        now: u64,
    ) -> Result<Vec<(VerifierKey, u64)>, CheckpointRefused> {
        checkpoint
            .verify_signature(&self.log_key)
            .map_err(CheckpointRefused::Signature)?;
        if self.quorum > 0 {
            checkpoint
                .check_quorum(&self.witnesses, self.quorum, self.max_age_s, now)
                .map_err(CheckpointRefused::Witnesses)?;
        }
        Ok(checkpoint.verify_cosignatures(&self.witnesses))
    }

    /// [`TrustedLog::verify`] on note bytes: parses them first (a parse failure is a
    /// [`CheckpointRefused::Signature`]).
    pub fn verify_note(
        &self,
        bytes: &[u8],
        now: u64,
    ) -> Result<(SignedCheckpoint, Vec<(VerifierKey, u64)>), CheckpointRefused> {
        let checkpoint = SignedCheckpoint::parse(bytes).map_err(CheckpointRefused::Signature)?;
        let cosigners = self.verify(&checkpoint, now)?;
        Ok((checkpoint, cosigners))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::cosignature::cosign;
    use crate::testkit::{test_key, test_witness_key};

    const ORIGIN: &str = "log.example/t";

    fn signed() -> SignedCheckpoint {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: 4,
            root: [4; 32],
        };
        SignedCheckpoint::sign(cp, &test_key(ORIGIN)).unwrap()
    }

    #[test]
    fn parse_refuses_wrong_keys_naming_them() {
        let vkey = test_key(ORIGIN).verifier().to_string();
        let w = test_witness_key("w.example/1").verifier().to_string();
        let ok = TrustedLog::parse(
            ORIGIN,
            &vkey,
            TreeHash::Blake3,
            std::slice::from_ref(&w),
            1,
            Some(60),
        )
        .unwrap();
        assert_eq!(
            (ok.origin(), ok.quorum, ok.max_age_s),
            (ORIGIN, 1, Some(60))
        );

        let ed = test_key("w.example/ed").verifier().to_string();
        let err = TrustedLog::parse(
            ORIGIN,
            &vkey,
            TreeHash::Blake3,
            std::slice::from_ref(&ed),
            0,
            None,
        )
        .unwrap_err();
        assert_eq!(err, TrustError::NotWitnessKey { vkey: ed.clone() });
        assert!(err.to_string().contains(&ed), "{err}");

        let err = TrustedLog::parse("other", &vkey, TreeHash::Blake3, &[], 0, None).unwrap_err();
        assert!(matches!(err, TrustError::LogKeyNotForOrigin { .. }));
        let err = TrustedLog::parse("w.example/1", &w, TreeHash::Blake3, &[], 0, None).unwrap_err();
        assert!(matches!(err, TrustError::LogKeyNotEd25519 { .. }));
        let err = TrustedLog::parse(ORIGIN, &vkey, TreeHash::Blake3, &[w], 2, None).unwrap_err();
        assert!(err.to_string().contains("quorum"));
    }

    #[test]
    fn verify_is_signature_then_quorum_then_age() {
        let w1 = test_witness_key("w.example/1");
        let w2 = test_witness_key("w.example/2");
        let mut log = TrustedLog::new(test_key(ORIGIN).verifier(), TreeHash::Blake3)
            .with_witnesses(vec![w1.verifier(), w2.verifier()], 1)
            .unwrap();
        let mut cp = signed();
        assert!(matches!(
            log.verify(&cp, 100),
            Err(CheckpointRefused::Witnesses(
                CheckpointError::QuorumNotMet { have: 0, need: 1 }
            ))
        ));
        cp.add_cosignature(cosign(&w1, cp.note.text(), 100).unwrap())
            .unwrap();
        assert_eq!(log.verify(&cp, 100).unwrap().len(), 1);
        log.max_age_s = Some(10);
        assert!(matches!(
            log.verify(&cp, 200),
            Err(CheckpointRefused::Witnesses(CheckpointError::TooOld { .. }))
        ));
        let other = TrustedLog::new(test_key("other").verifier(), TreeHash::Blake3);
        assert!(matches!(
            other.verify(&cp, 100),
            Err(CheckpointRefused::Signature(_))
        ));
        assert!(matches!(
            log.verify_note(b"not a note", 100),
            Err(CheckpointRefused::Signature(_))
        ));
    }
}
