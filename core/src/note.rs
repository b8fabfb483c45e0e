//! C2SP signed notes (c2sp.org/signed-note), SPEC §2.
//!
//! A signed note is a text ending in `\n`, one empty line, then one or more signature lines
//! `— <key name> <base64(key ID ‖ signature)>\n` (U+2014 EM DASH). Every leaf, attestation and
//! checkpoint of mimi-ledger is one.
//!
//! [`Note::parse`] checks syntax only and keeps the exact byte form: [`Note::to_bytes`] gives back
//! the parsed bytes, and anything this module serialises parses again. To make that hold, parsing
//! is slightly stricter than Go's `note.Open`: signatures must be *canonical* standard base64
//! (Go accepts non-zero padding bits, which would give one signature two encodings), and a note is
//! at most [`MAX_NOTE_BYTES`] long. [`Note::verify`] then follows the verification rules of the
//! spec (and `note.Open`): signatures by unknown keys are ignored, a signature by a known key
//! that fails is an error, and at least one must verify.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::key::{is_valid_key_name, KeyAlg, KeyId, SignerKey, VerifierKey};

/// The largest note accepted, in bytes. Leaves are limited further (8,192 bytes, SPEC §3); this
/// bound leaves room for a checkpoint carrying [`MAX_SIGNATURES`] cosignatures.
pub const MAX_NOTE_BYTES: usize = 65_536;

/// The most signature lines a note may carry (signed-note: verifiers SHOULD limit, MUST accept 16;
/// Go's `note.Open` refuses more than 100).
pub const MAX_SIGNATURES: usize = 100;

/// The prefix of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// One signature line of a note, verified or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name written on the line.
    pub name: String,
    /// The first four decoded bytes: the ID of the key that (purportedly) signed.
    pub key_id: KeyId,
    /// The decoded bytes after the key ID: the signature proper (for a cosignature, the 8-byte
    /// timestamp followed by the Ed25519 signature). Never empty.
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// The signature line `— <name> <base64(key ID ‖ sig)>\n`.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.sig.len());
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&self.sig);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Parses one signature line without its final newline (signed-note "Format").
    fn parse_line(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(NoteError::BadSignatureLine)?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::BadSignatureLine)?;
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let raw = B64.decode(b64).map_err(|_| NoteError::BadBase64)?;
        match raw.split_first_chunk::<4>() {
            Some((id, sig)) if !sig.is_empty() => Ok(NoteSignature {
                name: name.to_string(),
                key_id: *id,
                sig: sig.to_vec(),
            }),
            _ => Err(NoteError::SignatureTooShort),
        }
    }

    /// Checks the parts that [`NoteSignature::to_line`] relies on to produce a parseable line.
    fn validate(&self) -> Result<(), NoteError> {
        if !is_valid_key_name(&self.name) {
            return Err(NoteError::InvalidKeyName);
        }
        if self.sig.is_empty() {
            return Err(NoteError::SignatureTooShort);
        }
        Ok(())
    }
}

/// Why a note was refused: its syntax (`parse`, `new`), or its signatures (`verify`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is longer than [`MAX_NOTE_BYTES`].
    #[error("note is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8")]
    NotUtf8,
    /// The note contains an ASCII control character other than `\n` (e.g. `\r`, `\t`, NUL).
    #[error("note contains an ASCII control character other than newline")]
    ControlCharacter,
    /// No empty line separates the text from the signatures.
    #[error("note has no empty line before its signatures")]
    MissingBlankLine,
    /// The text, or the whole note, does not end in `\n`.
    #[error("note text or signature block does not end in a newline")]
    MissingFinalNewline,
    /// The signature block after the empty line is empty.
    #[error("note has no signature lines")]
    MissingSignature,
    /// A signature line is not `— <name> <base64>` (U+2014, space, name, space, base64).
    #[error("malformed signature line: expected \"\u{2014} <name> <base64>\"")]
    BadSignatureLine,
    /// A key name in a signature line is empty or contains whitespace, `+` or a control character.
    #[error("invalid key name in signature line")]
    InvalidKeyName,
    /// A signature is not canonical standard base64.
    #[error("signature is not canonical standard base64")]
    BadBase64,
    /// A signature decodes to fewer than 5 bytes (4-byte key ID and at least one signature byte).
    #[error("signature is shorter than a 4-byte key ID and one signature byte")]
    SignatureTooShort,
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// The key cannot sign plain notes (a cosignature key signs through `cosignature::cosign`).
    #[error("key algorithm cannot sign a plain note")]
    UnsupportedKeyAlg,
    /// Two different known keys share the signature's name and key ID.
    #[error("ambiguous key {name}: two known keys share its name and key ID")]
    AmbiguousKey {
        /// The shared key name.
        name: String,
    },
    /// A signature by a known key (same name and key ID) does not verify.
    #[error("invalid signature by known key {name}")]
    BadSignature {
        /// The signing key's name.
        name: String,
    },
    /// No signature is by a known key: the note's text must not be trusted.
    #[error("note has no signature by a known key")]
    UnverifiedNote,
}

/// Checks the note-wide character rule: no ASCII control character but `\n` (signed-note "Format").
fn check_chars(s: &str) -> Result<(), NoteError> {
    if s.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

/// A signed note: its text and its signature lines, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note (syntax only; see [`Note::verify`]).
    ///
    /// Steps (signed-note "Format", as Go's `note.Open`): size bound; valid UTF-8; no control
    /// characters but `\n`; split at the *last* empty line (text keeps its final `\n`); the
    /// signature block is non-empty and ends in `\n`; each line is `— <name> <base64>` with a
    /// valid name and at least 5 decoded bytes; at most [`MAX_SIGNATURES`] lines.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        check_chars(s)?;
        let split = s.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
        let text = s.get(..split + 1).ok_or(NoteError::MissingBlankLine)?;
        let block = s.get(split + 2..).ok_or(NoteError::MissingBlankLine)?;
        if block.is_empty() {
            return Err(NoteError::MissingSignature);
        }
        let lines = block
            .strip_suffix('\n')
            .ok_or(NoteError::MissingFinalNewline)?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// An unsigned note with the given text, which must end in `\n`, contain no control
    /// characters but `\n`, and fit in [`MAX_NOTE_BYTES`]. Sign it with [`Note::sign`] (or add
    /// signatures) before serialising: a note without signatures does not parse.
    pub fn new(text: &str) -> Result<Note, NoteError> {
        if text.len() + 1 > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        check_chars(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        Ok(Note {
            text: text.to_string(),
            signatures: Vec::new(),
        })
    }

    /// The note text, including its final newline, excluding the empty line and signatures. This
    /// is exactly the message an Ed25519 note signature covers.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in note order, verified or not.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Appends a signature line as is (no verification). Fails when the name is invalid, the
    /// signature empty, or the note would exceed [`MAX_SIGNATURES`] or [`MAX_NOTE_BYTES`].
    pub fn add_signature(&mut self, s: NoteSignature) -> Result<(), NoteError> {
        s.validate()?;
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        if self.encoded_len() + s.to_line().len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        self.signatures.push(s);
        Ok(())
    }

    /// Signs the text with an Ed25519 (`0x01`) key and appends the signature line. As Go's
    /// `note.Sign`, an existing signature by the same key (name and key ID) is replaced.
    pub fn sign(&mut self, key: &SignerKey) -> Result<(), NoteError> {
        if key.alg() != KeyAlg::Ed25519 {
            return Err(NoteError::UnsupportedKeyAlg);
        }
        let sig = NoteSignature {
            name: key.name().to_string(),
            key_id: key.key_id(),
            sig: key.sign(self.text.as_bytes()).to_vec(),
        };
        let before = self.signatures.clone();
        self.signatures
            .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
        if let Err(e) = self.add_signature(sig) {
            self.signatures = before;
            return Err(e);
        }
        Ok(())
    }

    /// Length of [`Note::to_bytes`] without building it.
    fn encoded_len(&self) -> usize {
        self.text.len()
            + 1
            + self
                .signatures
                .iter()
                .map(|s| s.to_line().len())
                .sum::<usize>()
    }

    /// The exact serialisation: text, empty line, signature lines. For bytes `b` accepted by
    /// [`Note::parse`], `to_bytes(parse(b)) == b`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(self.text.as_bytes());
        out.push(b'\n');
        for s in &self.signatures {
            out.extend_from_slice(s.to_line().as_bytes());
        }
        out
    }

    /// Verifies the note against trusted keys (signed-note "Signatures", as Go's `note.Open`).
    ///
    /// Only Ed25519 (`0x01`) keys are considered; cosignatures are checked with
    /// [`crate::cosignature::verify_cosignature`]. A signature whose (name, key ID) matches no key
    /// is ignored, even if it shares one of the two with a known key. A signature by a known key
    /// must verify, else [`NoteError::BadSignature`] — this includes a repeated signature line.
    /// Returns the distinct keys that signed, in signature order; none is
    /// [`NoteError::UnverifiedNote`].
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<Vec<VerifierKey>, NoteError> {
        let mut verified: Vec<VerifierKey> = Vec::new();
        for s in &self.signatures {
            let mut matching = keys.iter().filter(|k| {
                k.alg() == KeyAlg::Ed25519 && k.name() == s.name && k.key_id() == s.key_id
            });
            let Some(key) = matching.next() else {
                continue;
            };
            if matching.any(|other| other != key) {
                return Err(NoteError::AmbiguousKey {
                    name: s.name.clone(),
                });
            }
            if !key.verify(self.text.as_bytes(), &s.sig) {
                return Err(NoteError::BadSignature {
                    name: s.name.clone(),
                });
            }
            if !verified.contains(key) {
                verified.push(key.clone());
            }
        }
        if verified.is_empty() {
            return Err(NoteError::UnverifiedNote);
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_may_contain_empty_lines_split_is_at_the_last() {
        let b = b"a\n\nb\n\n\xe2\x80\x94 k AAAAAAA=\n";
        let n = Note::parse(b).unwrap();
        assert_eq!(n.text(), "a\n\nb\n");
        assert_eq!(n.signatures().len(), 1);
        assert_eq!(n.signatures()[0].sig, vec![0]);
        assert_eq!(n.to_bytes(), b.to_vec());
    }

    #[test]
    fn sign_replaces_same_key() {
        let k = SignerKey::from_seed("k", KeyAlg::Ed25519, [7; 32]).unwrap();
        let mut n = Note::new("hello\n").unwrap();
        n.sign(&k).unwrap();
        n.sign(&k).unwrap();
        assert_eq!(n.signatures().len(), 1);
        assert_eq!(n.verify(&[k.verifier()]).unwrap(), vec![k.verifier()]);
    }

    #[test]
    fn cosignature_key_cannot_sign_plain_note() {
        let k = SignerKey::from_seed("w", KeyAlg::Cosignature, [7; 32]).unwrap();
        let mut n = Note::new("hello\n").unwrap();
        assert_eq!(n.sign(&k), Err(NoteError::UnsupportedKeyAlg));
    }
}
