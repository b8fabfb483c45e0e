//! Note keys: verifier keys (`vkey`) and signer keys (`PRIVATE+KEY+…`), SPEC §2.
//!
//! The text forms are those of C2SP signed-note and Go's `golang.org/x/mod/sumdb/note`:
//!
//! - verifier key: `<name>+<hex key ID>+<base64(alg ‖ 32-byte Ed25519 public key)>`;
//! - signer key: `PRIVATE+KEY+<name>+<hex key ID>+<base64(alg ‖ 32-byte Ed25519 seed)>`;
//! - key ID = `SHA-256(name ‖ 0x0A ‖ alg ‖ public key)[:4]` (signed-note "Signatures").
//!
//! Two algorithms are supported: plain Ed25519 note signatures (type `0x01`, the log, MSP and prover
//! keys) and timestamped Ed25519 witness cosignatures (type `0x04`, C2SP tlog-cosignature). The
//! algorithm byte is part of the key ID, so one Ed25519 key pair used with both types has two
//! different IDs and signatures of one type can never be taken for the other.
//!
//! Parsing is stricter than Go's in three ways, all so that each key has exactly one text form
//! (SPEC §2: no second encoding of the same content): the hex key ID must be lowercase, the base64
//! must be canonical, and the key name must not contain ASCII control characters. Weak (small-order)
//! Ed25519 public keys and non-canonical point encodings are refused because the signature rule
//! ([`crate::signature`]) refuses every signature by them.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type identifier byte of a note key (C2SP signed-note "Signature types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// `0x01`: Ed25519 signatures over the note text (log, MSP and prover keys).
    Ed25519,
    /// `0x04`: timestamped Ed25519 witness cosignatures (C2SP tlog-cosignature, `cosignature/v1`).
    Cosignature,
}

impl KeyAlg {
    /// The signature type identifier byte that prefixes the key material and enters the key ID.
    pub fn byte(self) -> u8 {
        match self {
            KeyAlg::Ed25519 => 0x01,
            KeyAlg::Cosignature => 0x04,
        }
    }

    /// The algorithm for a signature type byte, or `None` for types this crate does not support.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(KeyAlg::Ed25519),
            0x04 => Some(KeyAlg::Cosignature),
            _ => None,
        }
    }
}

/// A 4-byte key ID: the first four bytes of `SHA-256(name ‖ 0x0A ‖ alg ‖ public key)`.
pub type KeyId = [u8; 4];

/// Why a key text or key construction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key name is empty or contains whitespace, `+` or an ASCII control character.
    #[error("invalid key name: must be non-empty, without whitespace, '+' or control characters")]
    InvalidName,
    /// The text does not have the `<name>+<hex id>+<base64>` (or `PRIVATE+KEY+…`) structure.
    #[error("malformed key text: expected <name>+<8 hex digits>+<base64 key>")]
    Malformed,
    /// A signer key text does not start with `PRIVATE+KEY+`.
    #[error("signer key text must start with PRIVATE+KEY+")]
    NotPrivateKey,
    /// The key ID is not exactly 8 lowercase hex digits.
    #[error("key ID must be exactly 8 lowercase hex digits")]
    BadKeyIdHex,
    /// The key material is not canonical standard base64.
    #[error("key material is not canonical standard base64")]
    BadBase64,
    /// The signature type byte is not one this crate supports (0x01 or 0x04).
    #[error(
        "unsupported key algorithm byte 0x{0:02x}: expected 0x01 (Ed25519) or 0x04 (cosignature)"
    )]
    UnknownAlg(u8),
    /// The key material after the algorithm byte is not 32 bytes long.
    #[error("key material must be 1 algorithm byte and 32 key bytes, got {0} bytes")]
    WrongLength(usize),
    /// The 32 bytes are not a valid Ed25519 public key encoding.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The public key has small order; the signature rule refuses every signature by it.
    #[error("weak (small-order) Ed25519 public key")]
    WeakPublicKey,
    /// The 32 bytes encode a point, but not in its one canonical form (`y ≥ p`, or a sign bit on
    /// `x = 0`): another 32 bytes name the same point, so the key would have two texts.
    #[error("non-canonical Ed25519 public key encoding")]
    NonCanonicalPublicKey,
    /// The key ID in the text does not match the one computed from name, algorithm and public key.
    #[error("key ID {found} does not match the computed key ID {computed}")]
    KeyIdMismatch {
        /// The key ID written in the text.
        found: String,
        /// The key ID computed from the key.
        computed: String,
    },
}

/// Whether `name` is a valid note key name (C2SP signed-note "Format"): non-empty, no Unicode
/// whitespace, no `+`; we also refuse ASCII control characters, which can never appear in a note.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || (c as u32) < 0x20)
}

/// Computes the key ID: `SHA-256(name ‖ 0x0A ‖ alg ‖ public key)[:4]` (C2SP signed-note).
pub fn compute_key_id(name: &str, alg: KeyAlg, public_key: &VerifyingKey) -> KeyId {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, alg.byte()]);
    h.update(public_key.as_bytes());
    let sum = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(&sum[..4]);
    id
}

/// Lowercase hex of a key ID, as written in key texts (`%08x` in Go).
pub fn key_id_hex(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses exactly 8 lowercase hex digits into a key ID.
fn parse_key_id_hex(s: &str) -> Result<KeyId, KeyError> {
    let b = s.as_bytes();
    if b.len() != 8 {
        return Err(KeyError::BadKeyIdHex);
    }
    let nibble = |c: u8| -> Result<u8, KeyError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(KeyError::BadKeyIdHex),
        }
    };
    let mut id = [0u8; 4];
    for (out, pair) in id.iter_mut().zip(b.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *out = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
    }
    Ok(id)
}

/// Splits `<name>+<hex id>+<base64>` and decodes it into (name, id, alg, 32 key bytes).
fn split_key_text(s: &str) -> Result<(&str, KeyId, KeyAlg, [u8; 32]), KeyError> {
    // The name cannot contain '+', so the first two '+' delimit it and the ID; base64 may contain '+'.
    let (name, rest) = s.split_once('+').ok_or(KeyError::Malformed)?;
    let (id_hex, key64) = rest.split_once('+').ok_or(KeyError::Malformed)?;
    if !is_valid_key_name(name) {
        return Err(KeyError::InvalidName);
    }
    let id = parse_key_id_hex(id_hex)?;
    let raw = B64.decode(key64).map_err(|_| KeyError::BadBase64)?;
    let (&alg_byte, key) = raw.split_first().ok_or(KeyError::WrongLength(0))?;
    let alg = KeyAlg::from_byte(alg_byte).ok_or(KeyError::UnknownAlg(alg_byte))?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::WrongLength(raw.len()))?;
    Ok((name, id, alg, key))
}

/// `base64(alg ‖ 32 bytes)`, the key material of both key texts.
fn encode_key_material(alg: KeyAlg, key: &[u8; 32]) -> String {
    let mut buf = Vec::with_capacity(33);
    buf.push(alg.byte());
    buf.extend_from_slice(key);
    B64.encode(buf)
}

/// A public note key: name, algorithm, key ID and Ed25519 public key.
///
/// Its text form (`Display`, `FromStr`, serde) is the C2SP verifier key
/// `<name>+<hex key ID>+<base64(alg ‖ public key)>`; the key ID is always recomputed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    alg: KeyAlg,
    key_id: KeyId,
    public_key: VerifyingKey,
}

impl VerifierKey {
    /// Builds a verifier key from its parts, computing the key ID.
    pub fn new(name: &str, alg: KeyAlg, public_key: VerifyingKey) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName);
        }
        if !crate::signature::is_canonical_point(public_key.as_bytes()) {
            return Err(KeyError::NonCanonicalPublicKey);
        }
        if public_key.is_weak() {
            return Err(KeyError::WeakPublicKey);
        }
        Ok(VerifierKey {
            name: name.to_string(),
            alg,
            key_id: compute_key_id(name, alg, &public_key),
            public_key,
        })
    }

    /// Parses a verifier key text `<name>+<hex key ID>+<base64(alg ‖ pubkey)>` and checks that the
    /// key ID matches the one computed from name, algorithm and public key.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let (name, id, alg, key) = split_key_text(s)?;
        let public_key = VerifyingKey::from_bytes(&key).map_err(|_| KeyError::InvalidPublicKey)?;
        let vk = VerifierKey::new(name, alg, public_key)?;
        if vk.key_id != id {
            return Err(KeyError::KeyIdMismatch {
                found: key_id_hex(&id),
                computed: key_id_hex(&vk.key_id),
            });
        }
        Ok(vk)
    }

    /// The key name (for a log key, the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID that prefixes every signature by this key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature type of this key.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.public_key
    }

    /// Whether `sig` is a valid Ed25519 signature of `msg` by this key under the one signature
    /// rule of every verifier ([`crate::signature::verify`]: ZIP-215 with canonical `R` and `A`).
    /// This is the raw primitive: it does not look at the algorithm byte; callers use
    /// [`crate::note::Note::verify`] or [`crate::cosignature::verify_cosignature`], which build the
    /// right message for the type.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        crate::signature::verify(self.public_key.as_bytes(), msg, sig)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            key_id_hex(&self.key_id),
            encode_key_material(self.alg, self.public_key.as_bytes())
        )
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerifierKey::parse(s)
    }
}

impl serde::Serialize for VerifierKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for VerifierKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        VerifierKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A private note key: name, algorithm and Ed25519 signing key.
///
/// Its text form is Go's signer key `PRIVATE+KEY+<name>+<hex key ID>+<base64(alg ‖ seed)>`.
/// `Debug` prints the name and key ID only, never the seed.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    alg: KeyAlg,
    key_id: KeyId,
    signing_key: SigningKey,
}

impl SignerKey {
    /// Generates a fresh key pair named `name` from a cryptographic RNG.
    pub fn generate(
        name: &str,
        alg: KeyAlg,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Self, KeyError> {
        Self::from_signing_key(name, alg, SigningKey::generate(rng))
    }

    /// Builds the key from a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, alg: KeyAlg, seed: [u8; 32]) -> Result<Self, KeyError> {
        Self::from_signing_key(name, alg, SigningKey::from_bytes(&seed))
    }

    fn from_signing_key(
        name: &str,
        alg: KeyAlg,
        signing_key: SigningKey,
    ) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key_id = compute_key_id(name, alg, &signing_key.verifying_key());
        Ok(SignerKey {
            name: name.to_string(),
            alg,
            key_id,
            signing_key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(alg ‖ seed)>` as Go's `note.NewSigner`,
    /// checking the key ID against the public key derived from the seed.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::NotPrivateKey)?;
        let (name, id, alg, seed) = split_key_text(rest)?;
        let key = Self::from_seed(name, alg, seed)?;
        if key.key_id != id {
            return Err(KeyError::KeyIdMismatch {
                found: key_id_hex(&id),
                computed: key_id_hex(&key.key_id),
            });
        }
        Ok(key)
    }

    /// The signer key text `PRIVATE+KEY+<name>+<hex key ID>+<base64(alg ‖ seed)>`. Secret.
    pub fn to_text(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            key_id_hex(&self.key_id),
            encode_key_material(self.alg, self.signing_key.as_bytes())
        )
    }

    /// The matching public verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            alg: self.alg,
            key_id: self.key_id,
            public_key: self.signing_key.verifying_key(),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature type of this key.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// A raw Ed25519 signature (RFC 8032) of `msg`. Callers build the message for the key's type:
    /// the note text for `Ed25519`, the `cosignature/v1` message for `Cosignature`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing_key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("alg", &self.alg)
            .field("key_id", &key_id_hex(&self.key_id))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    #[test]
    fn go_example_keys_parse_and_match() {
        let vk = VerifierKey::parse(GO_VKEY).unwrap();
        let sk = SignerKey::parse(GO_SKEY).unwrap();
        assert_eq!(sk.verifier(), vk);
        assert_eq!(sk.to_text(), GO_SKEY);
        assert_eq!(vk.to_string(), GO_VKEY);
        assert_eq!(vk.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
    }

    #[test]
    fn debug_does_not_print_the_seed() {
        let sk = SignerKey::parse(GO_SKEY).unwrap();
        let dbg = format!("{sk:?}");
        assert!(dbg.contains("PeterNeumann"));
        assert!(!dbg.contains("AYEKFALV"));
        let seed_hex: String = sk
            .signing_key
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!dbg.contains(&seed_hex));
        assert!(!dbg.contains(&format!("{:?}", sk.signing_key.as_bytes())));
    }

    #[test]
    fn key_names() {
        for ok in ["a", "example.com/log", "ünïcode"] {
            assert!(is_valid_key_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a+b",
            "a\tb",
            "a\u{a0}b",
            "a\u{2028}",
            "a\0b",
            "a\nb",
        ] {
            assert!(!is_valid_key_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn uppercase_key_id_refused() {
        let upper = GO_VKEY.replace("c74f20a3", "C74F20A3");
        assert_eq!(VerifierKey::parse(&upper), Err(KeyError::BadKeyIdHex));
    }
}
