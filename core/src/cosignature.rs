//! Witness cosignatures: C2SP tlog-cosignature, `cosignature/v1` (Ed25519, signature type `0x04`).
//!
//! A cosignature is an extra signature line on a checkpoint note. Its signed message is
//!
//! ```text
//! cosignature/v1
//! time <timestamp, ASCII decimal without leading zeros>
//! <the checkpoint note text, with its final newline>
//! ```
//!
//! and the bytes after the key ID in the note signature are the `timestamped_signature`:
//! the 8-byte big-endian timestamp (POSIX seconds, at most 2^63 − 1) followed by the 64-byte
//! Ed25519 signature. The message does not commit to the cosigner's name, which is why a client
//! must count cosignatures per public key, not per name (see
//! [`crate::checkpoint::SignedCheckpoint::verify_cosignatures`]).

use crate::key::{KeyAlg, SignerKey, VerifierKey};
use crate::note::NoteSignature;

/// Length of the signature bytes after the key ID: 8-byte timestamp ‖ 64-byte Ed25519 signature.
pub const COSIGNATURE_LEN: usize = 8 + 64;

/// The largest timestamp a cosignature may carry (tlog-cosignature: MUST NOT exceed 2^63 − 1).
pub const MAX_TIMESTAMP: u64 = (1 << 63) - 1;

/// Why a cosignature could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The key is not a cosignature (`0x04`) key.
    #[error("key is not a cosignature (0x04) key")]
    NotCosignatureKey,
    /// The signature line's name or key ID is not the key's.
    #[error("signature is not by this key (name or key ID differ)")]
    KeyMismatch,
    /// The signature bytes are not 8 + 64 bytes long.
    #[error("cosignature must be {COSIGNATURE_LEN} bytes after the key ID, got {0}")]
    WrongLength(usize),
    /// The timestamp exceeds 2^63 − 1.
    #[error("cosignature timestamp exceeds 2^63-1")]
    TimestampOutOfRange,
    /// The checkpoint text does not end in a newline.
    #[error("checkpoint text must end in a newline")]
    TextMissingNewline,
    /// The Ed25519 signature over the `cosignature/v1` message does not verify.
    #[error("cosignature does not verify")]
    BadSignature,
}

/// The signed message: `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint text
/// (tlog-cosignature "Ed25519 signed message").
pub fn cosigned_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// Cosigns a checkpoint text (the note text, ending in `\n`) at `timestamp` with a `0x04` key,
/// giving the note signature to append to the checkpoint.
pub fn cosign(
    key: &SignerKey,
    checkpoint_text: &str,
    timestamp: u64,
) -> Result<NoteSignature, CosignatureError> {
    if key.alg() != KeyAlg::Cosignature {
        return Err(CosignatureError::NotCosignatureKey);
    }
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampOutOfRange);
    }
    if !checkpoint_text.ends_with('\n') {
        return Err(CosignatureError::TextMissingNewline);
    }
    let sig = key.sign(&cosigned_message(checkpoint_text, timestamp));
    let mut bytes = Vec::with_capacity(COSIGNATURE_LEN);
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&sig);
    Ok(NoteSignature {
        name: key.name().to_string(),
        key_id: key.key_id(),
        sig: bytes,
    })
}

/// Verifies that `sig` is a `cosignature/v1` by `key` over `checkpoint_text`; returns its
/// timestamp. The key must be a `0x04` key and the line's name and key ID must be the key's.
pub fn verify_cosignature(
    key: &VerifierKey,
    checkpoint_text: &str,
    sig: &NoteSignature,
) -> Result<u64, CosignatureError> {
    if key.alg() != KeyAlg::Cosignature {
        return Err(CosignatureError::NotCosignatureKey);
    }
    if sig.name != key.name() || sig.key_id != key.key_id() {
        return Err(CosignatureError::KeyMismatch);
    }
    let Some((ts, ed_sig)) = sig.sig.split_first_chunk::<8>() else {
        return Err(CosignatureError::WrongLength(sig.sig.len()));
    };
    if ed_sig.len() != 64 {
        return Err(CosignatureError::WrongLength(sig.sig.len()));
    }
    let timestamp = u64::from_be_bytes(*ts);
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampOutOfRange);
    }
    if !key.verify(&cosigned_message(checkpoint_text, timestamp), ed_sig) {
        return Err(CosignatureError::BadSignature);
    }
    Ok(timestamp)
}
