//! Checkpoints: C2SP tlog-checkpoint, signed by the log and cosigned by witnesses (SPEC §4, §6.1).
//!
//! A checkpoint's note text is exactly three lines — origin, tree size, base64 root hash — each
//! ending in `\n`. SPEC §4 allows no extension lines, and every field has one encoding (decimal
//! size without leading zeros, canonical base64 of 32 bytes), so a tree head has exactly one text.
//! The log signs it with its Ed25519 key, whose name must equal the origin; witnesses append
//! `cosignature/v1` lines ([`crate::cosignature`]).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::cosignature::{verify_cosignature, COSIGNATURE_LEN};
use crate::hash::{Hash, TreeHash};
use crate::key::{is_valid_key_name, KeyAlg, SignerKey, VerifierKey};
use crate::note::{Note, NoteError, NoteSignature};
use crate::tree::{verify_consistency, ProofError};

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note around the checkpoint is malformed or its log signature does not verify.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint text does not end in a newline.
    #[error("checkpoint text must end in a newline")]
    MissingFinalNewline,
    /// The text has fewer than three lines.
    #[error("checkpoint text must have exactly three lines: origin, size, root")]
    MissingLines,
    /// The text has lines after the root hash; SPEC §4 allows no extension lines.
    #[error("checkpoint has extension lines, which this log does not allow")]
    ExtensionLines,
    /// The origin is empty or contains whitespace, `+` or a control character (it must be usable
    /// as the log key's name).
    #[error("invalid checkpoint origin")]
    InvalidOrigin,
    /// The size is not an ASCII decimal u64 without leading zeros.
    #[error("checkpoint size must be a decimal number without leading zeros")]
    BadSize,
    /// The root hash is not canonical standard base64.
    #[error("checkpoint root hash is not canonical standard base64")]
    BadRootBase64,
    /// The root hash does not decode to 32 bytes.
    #[error("checkpoint root hash must be 32 bytes, got {0}")]
    BadRootLength(usize),
    /// The log key's name is not the checkpoint origin.
    #[error("log key name {key_name:?} is not the checkpoint origin {origin:?}")]
    OriginMismatch {
        /// The checkpoint's origin line.
        origin: String,
        /// The log key's name.
        key_name: String,
    },
    /// The log key is not an Ed25519 (`0x01`) note key.
    #[error("log key must be an Ed25519 (0x01) key")]
    NotLogKey,
    /// The note's text is not the text of the checkpoint it is paired with.
    #[error("note text does not match the checkpoint")]
    TextMismatch,
    /// A signature added as a cosignature is not `cosignature/v1`-shaped (8 + 64 bytes).
    #[error("not a cosignature: expected {COSIGNATURE_LEN} signature bytes, got {0}")]
    NotCosignature(usize),
    /// Fewer distinct witnesses than the quorum have a valid cosignature.
    #[error("only {have} of the required {need} witness cosignatures verify")]
    QuorumNotMet {
        /// Distinct witnesses with a valid cosignature.
        have: usize,
        /// The quorum.
        need: usize,
    },
    /// A maximum age is set but no valid cosignature gives a time.
    #[error("no valid cosignature shows the checkpoint is fresh")]
    NoFreshness,
    /// The newest valid cosignature is older than the maximum age.
    #[error("newest cosignature is {age_s} s old, more than the allowed {max_age_s} s")]
    TooOld {
        /// Seconds between the newest cosignature and now.
        age_s: u64,
        /// The maximum age.
        max_age_s: u64,
    },
}

/// A tree head: the three lines of a C2SP checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (also its key name).
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The Merkle tree root hash at `size`.
    pub root: Hash,
}

/// Parses an ASCII decimal u64 with no sign and no leading zeros (except `0` itself), the one
/// encoding C2SP uses for sizes, indices and timestamps.
pub(crate) fn parse_canonical_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl Checkpoint {
    /// Parses a checkpoint note text strictly (tlog-checkpoint "Note text", SPEC §4): exactly the
    /// lines origin, size, root, each ending in `\n`; no extension lines.
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::MissingLines);
        };
        if lines.next().is_some() {
            return Err(CheckpointError::ExtensionLines);
        }
        if !is_valid_key_name(origin) {
            return Err(CheckpointError::InvalidOrigin);
        }
        let size = parse_canonical_u64(size).ok_or(CheckpointError::BadSize)?;
        let raw = B64
            .decode(root)
            .map_err(|_| CheckpointError::BadRootBase64)?;
        let root: Hash = raw
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::BadRootLength(raw.len()))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// The note text `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }
}

/// A checkpoint and the signed note that carries it (log signature and any cosignatures).
///
/// The constructors keep `note.text() == checkpoint.to_text()`; the verifiers re-check it, since
/// the fields are public.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed tree head.
    pub checkpoint: Checkpoint,
    /// The note: checkpoint text and signature lines.
    pub note: Note,
}

impl SignedCheckpoint {
    /// Signs a checkpoint with the log key, whose name must be the origin (SPEC §4).
    pub fn sign(cp: Checkpoint, log_key: &SignerKey) -> Result<Self, CheckpointError> {
        if log_key.alg() != KeyAlg::Ed25519 {
            return Err(CheckpointError::NotLogKey);
        }
        if log_key.name() != cp.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: cp.origin,
                key_name: log_key.name().to_string(),
            });
        }
        let text = cp.to_text();
        // Refuse what parse_text would refuse, so that every signed checkpoint parses again.
        let checked = Checkpoint::parse_text(&text)?;
        let mut note = Note::new(&text)?;
        note.sign(log_key)?;
        Ok(SignedCheckpoint {
            checkpoint: checked,
            note,
        })
    }

    /// Parses a checkpoint note (syntax only: note syntax and strict checkpoint text).
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let note = Note::parse(bytes)?;
        let checkpoint = Checkpoint::parse_text(note.text())?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// Parses a checkpoint note and verifies the log's signature (the log key's name must be the
    /// origin). Cosignatures are not checked here; see [`SignedCheckpoint::check_quorum`].
    pub fn verify(bytes: &[u8], log_key: &VerifierKey) -> Result<Self, CheckpointError> {
        let scp = Self::parse(bytes)?;
        scp.verify_signature(log_key)?;
        Ok(scp)
    }

    /// Verifies the log's signature on an already parsed checkpoint: the key is an Ed25519 key
    /// named as the origin, the note text is the checkpoint's, and the note verifies under it
    /// (signed-note rules: other signers are ignored).
    pub fn verify_signature(&self, log_key: &VerifierKey) -> Result<(), CheckpointError> {
        if log_key.alg() != KeyAlg::Ed25519 {
            return Err(CheckpointError::NotLogKey);
        }
        if log_key.name() != self.checkpoint.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.checkpoint.origin.clone(),
                key_name: log_key.name().to_string(),
            });
        }
        if self.note.text() != self.checkpoint.to_text() {
            return Err(CheckpointError::TextMismatch);
        }
        self.note.verify(std::slice::from_ref(log_key))?;
        Ok(())
    }

    /// The note bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.note.to_bytes()
    }

    /// Appends a witness cosignature line (syntax only: it must have the 8 + 64 byte shape).
    pub fn add_cosignature(&mut self, sig: NoteSignature) -> Result<(), CheckpointError> {
        if sig.sig.len() != COSIGNATURE_LEN {
            return Err(CheckpointError::NotCosignature(sig.sig.len()));
        }
        self.note.add_signature(sig)?;
        Ok(())
    }

    /// The trusted witnesses with a valid cosignature on this checkpoint, each with its newest
    /// valid timestamp.
    ///
    /// Only `0x04` keys count. Witnesses are distinct by *public key*: `cosignature/v1` does not
    /// sign the cosigner's name, so one key listed under two names would otherwise count twice
    /// for one signature. Repeated cosignature lines by one witness count once; lines that match
    /// no witness, or do not verify, are ignored. Order follows `witnesses`.
    pub fn verify_cosignatures(&self, witnesses: &[VerifierKey]) -> Vec<(VerifierKey, u64)> {
        let mut out: Vec<(VerifierKey, u64)> = Vec::new();
        if self.note.text() != self.checkpoint.to_text() {
            return out;
        }
        for w in witnesses {
            if w.alg() != KeyAlg::Cosignature
                || out.iter().any(|(k, _)| k.public_key() == w.public_key())
            {
                continue;
            }
            let newest = self
                .note
                .signatures()
                .iter()
                .filter_map(|s| verify_cosignature(w, self.note.text(), s).ok())
                .max();
            if let Some(ts) = newest {
                out.push((w.clone(), ts));
            }
        }
        out
    }

    /// SPEC §6 step 1 (witness part): at least `quorum` distinct witnesses cosigned, and — when
    /// `max_age_s` is set — the newest valid cosignature is at most `max_age_s` seconds older than
    /// `now` (Unix seconds; a cosignature from the future counts as age 0).
    pub fn check_quorum(
        &self,
        witnesses: &[VerifierKey],
        quorum: usize,
        max_age_s: Option<u64>,
        now: u64,
    ) -> Result<(), CheckpointError> {
        let valid = self.verify_cosignatures(witnesses);
        if valid.len() < quorum {
            return Err(CheckpointError::QuorumNotMet {
                have: valid.len(),
                need: quorum,
            });
        }
        if let Some(max_age_s) = max_age_s {
            let newest = valid
                .iter()
                .map(|(_, ts)| *ts)
                .max()
                .ok_or(CheckpointError::NoFreshness)?;
            let age_s = now.saturating_sub(newest);
            if age_s > max_age_s {
                return Err(CheckpointError::TooOld { age_s, max_age_s });
            }
        }
        Ok(())
    }
}

/// Two checkpoints of one log that can both be true, as far as they alone show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// They agree: the same tree head, or the older is the empty tree.
    Consistent,
    /// The sizes differ and neither is empty: only an RFC 9162 consistency proof from `old` to
    /// `new` can tell (see [`check_consistency`]).
    NeedsProof {
        /// The smaller size.
        old: u64,
        /// The larger size.
        new: u64,
    },
}

/// Two checkpoints of one log that cannot both be true (SPEC §4: a log never signs two
/// checkpoints that are inconsistent with each other). Signed by the log, they are evidence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Contradiction {
    /// The same size with different roots: two trees, provable with the log's key alone.
    #[error("two checkpoints of size {size} with different roots")]
    SameSizeDifferentRoots {
        /// The common size.
        size: u64,
    },
    /// A checkpoint of size 0 whose root is not the empty tree's (no proof starts at 0).
    #[error("a checkpoint of size 0 whose root is not the empty tree's")]
    BadEmptyRoot,
    /// The consistency proof from the smaller to the larger size does not verify.
    #[error("the consistency proof from size {old} to {new} does not verify: {reason}")]
    NotConsistent {
        /// The smaller size.
        old: u64,
        /// The larger size.
        new: u64,
        /// Why the proof fails.
        reason: ProofError,
    },
}

/// Checkpoint against checkpoint, the part that needs no proof: the same size must mean the same
/// root, and a size-0 checkpoint must have the empty root; otherwise the two need a consistency
/// proof. The order of `a` and `b` does not matter. Both must be of one log (same origin, tree
/// hash `hash`); checking their signatures is the caller's business.
pub fn compare(hash: TreeHash, a: &Checkpoint, b: &Checkpoint) -> Result<Agreement, Contradiction> {
    let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
    if old.size == new.size {
        return if old.root == new.root {
            Ok(Agreement::Consistent)
        } else {
            Err(Contradiction::SameSizeDifferentRoots { size: old.size })
        };
    }
    if old.size == 0 {
        return if old.root == hash.empty_root() {
            Ok(Agreement::Consistent)
        } else {
            Err(Contradiction::BadEmptyRoot)
        };
    }
    Ok(Agreement::NeedsProof {
        old: old.size,
        new: new.size,
    })
}

/// Checkpoint against checkpoint, in full: [`compare`], then, when the sizes need it, `proof`
/// (RFC 9162 §2.1.4.2, from the smaller size to the larger) must verify with the log's tree hash.
/// `proof` is not looked at when [`compare`] decides alone.
pub fn check_consistency(
    hash: TreeHash,
    a: &Checkpoint,
    b: &Checkpoint,
    proof: &[Hash],
) -> Result<(), Contradiction> {
    match compare(hash, a, b)? {
        Agreement::Consistent => Ok(()),
        Agreement::NeedsProof { old, new } => {
            let (o, n) = if a.size <= b.size { (a, b) } else { (b, a) };
            verify_consistency(hash, old, new, &o.root, &n.root, proof)
                .map_err(|reason| Contradiction::NotConsistent { old, new, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{prove_consistency, tree_root, MemoryHashStore};

    fn cp(size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: "log.example".into(),
            size,
            root,
        }
    }

    #[test]
    fn same_size_and_empty_tree_need_no_proof() {
        let th = TreeHash::Blake3;
        assert_eq!(
            compare(th, &cp(3, [1; 32]), &cp(3, [1; 32])),
            Ok(Agreement::Consistent)
        );
        assert_eq!(
            compare(th, &cp(3, [1; 32]), &cp(3, [2; 32])),
            Err(Contradiction::SameSizeDifferentRoots { size: 3 })
        );
        assert_eq!(
            compare(th, &cp(5, [1; 32]), &cp(0, th.empty_root())),
            Ok(Agreement::Consistent)
        );
        assert_eq!(
            compare(th, &cp(0, [9; 32]), &cp(5, [1; 32])),
            Err(Contradiction::BadEmptyRoot)
        );
        assert_eq!(
            compare(th, &cp(7, [1; 32]), &cp(5, [2; 32])),
            Ok(Agreement::NeedsProof { old: 5, new: 7 })
        );
    }

    #[test]
    fn proofs_decide_the_rest() {
        let th = TreeHash::Sha256;
        let mut mem = MemoryHashStore::new(th);
        for i in 0..7u8 {
            mem.append_leaf(&[i]);
        }
        let (r4, r7) = (
            tree_root(th, 4, &mem).unwrap(),
            tree_root(th, 7, &mem).unwrap(),
        );
        let proof = prove_consistency(th, 4, 7, &mem).unwrap();
        assert_eq!(
            check_consistency(th, &cp(7, r7), &cp(4, r4), &proof),
            Ok(())
        );
        assert!(matches!(
            check_consistency(th, &cp(4, [0; 32]), &cp(7, r7), &proof),
            Err(Contradiction::NotConsistent { old: 4, new: 7, .. })
        ));
    }
}
