//! The edge cases of "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko, SSR 2020), for the
//! tests of every verifier: the 12 vectors of ed25519-speccheck with their verdicts under the one
//! signature rule ([`crate::signature`]), and hand-made keys and leaves of the same shapes, so
//! that a test can push a real leaf signed that way through the log, the monitor and the client.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use sha2::{Digest, Sha512};

use crate::entry::Entry;
use crate::key::{KeyAlg, KeyError, VerifierKey};
use crate::note::{Note, NoteSignature};

/// The vectors, verbatim from ed25519-speccheck's `cases.json` (source and commit in the file).
const SPECCHECK_JSON: &str = include_str!("../../tests/vectors/ed25519_speccheck.json");

/// The verdict of the mimi-ledger rule on speccheck case *i*, and why. Cases 0–1: small-order A
/// (refused: step 1); 2–5: valid under ZIP-215 with canonical encodings (small or mixed-order R,
/// mixed-order A, cofactored-only equations); 6–7: S ≥ ℓ (step 3); 8: R non-canonical (step 2;
/// ZIP-215 refuses it too, its hash is over other bytes); 9: R non-canonical (step 2; ZIP-215
/// alone would accept); 10–11: A non-canonical and of small order (step 1; ZIP-215 alone accepts).
pub const SPECCHECK_EXPECTED: [bool; 12] = [
    false, false, true, true, true, true, false, false, false, false, false, false,
];

/// ZIP-215's verdicts on the same cases (the "Zebra" row of speccheck's results table): what the
/// bare `ed25519-consensus` equation gives, before the canonical-encoding checks.
pub const SPECCHECK_ZIP215: [bool; 12] = [
    true, true, true, true, true, true, false, false, false, true, true, true,
];

/// One speccheck vector.
#[derive(Clone, Debug)]
pub struct SpecCase {
    /// Its position in `cases.json` (0–11).
    pub index: usize,
    /// The README's condition for it.
    pub condition: String,
    /// The signed message.
    pub message: Vec<u8>,
    /// The public key bytes `A`.
    pub key: [u8; 32],
    /// The signature `R ‖ S`.
    pub sig: [u8; 64],
    /// [`SPECCHECK_EXPECTED`] for it.
    pub valid: bool,
}

fn unhex(s: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("vector is not lowercase hex"),
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| (digit(p[0]) << 4) | digit(p[1]))
        .collect()
}

/// The 12 vectors, in order.
pub fn speccheck_cases() -> Vec<SpecCase> {
    let v: serde_json::Value = serde_json::from_str(SPECCHECK_JSON).expect("vector file is JSON");
    let cases = v["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 12, "speccheck has 12 cases");
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            assert_eq!(c["index"].as_u64(), Some(i as u64));
            let field = |k: &str| unhex(c[k].as_str().expect("hex field"));
            SpecCase {
                index: i,
                condition: c["condition"].as_str().unwrap_or_default().to_string(),
                message: field("message"),
                key: field("pub_key").try_into().expect("32-byte key"),
                sig: field("signature").try_into().expect("64-byte signature"),
                valid: SPECCHECK_EXPECTED[i],
            }
        })
        .collect()
}

/// The shapes of signature a key's holder can make on purpose, after the speccheck cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An ordinary RFC 8032 signature (case 3 when the key has a torsion component).
    Plain,
    /// By a key with a torsion component, valid only under the cofactored equation (case 4):
    /// `verify_strict` refuses it, ZIP-215 and our rule accept it.
    CofactoredOnly,
    /// `R` of small order (order 8), canonical (case 2): accepted.
    SmallR,
    /// `R` the identity in the non-canonical encoding `y = p + 1` (case 9): ZIP-215 accepts it,
    /// our rule refuses it (step 2).
    NonCanonicalR,
    /// A valid signature with `S + ℓ` in place of `S` (case 6): refused (step 3).
    SPlusL,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 5] = [
        Shape::Plain,
        Shape::CofactoredOnly,
        Shape::SmallR,
        Shape::NonCanonicalR,
        Shape::SPlusL,
    ];

    /// Whether the rule accepts a signature of this shape.
    pub fn valid(self) -> bool {
        matches!(self, Shape::Plain | Shape::CofactoredOnly | Shape::SmallR)
    }
}

/// The order-8 point `c7176a70…037a` (a generator of the torsion subgroup).
fn order8() -> EdwardsPoint {
    CompressedEdwardsY(
        unhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
            .try_into()
            .expect("32 bytes"),
    )
    .decompress()
    .expect("order-8 point")
}

/// A key made by hand: secret scalar `a`, public point `aB`, or `aB + T` with `T` of order 8
/// (a mixed-order key, which only its holder can make and use).
#[derive(Clone, Debug)]
pub struct CraftedKey {
    a: Scalar,
    point: EdwardsPoint,
    /// The key as every verifier holds it.
    pub verifier: VerifierKey,
}

fn h512(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

impl CraftedKey {
    /// The key named `name` derived from the name, with a torsion component when `torsion`.
    pub fn new(name: &str, torsion: bool) -> CraftedKey {
        let a = h512(&[b"crafted key ", name.as_bytes()]);
        let mut point = EdwardsPoint::mul_base(&a);
        if torsion {
            point += order8();
        }
        let vk =
            ed25519_dalek::VerifyingKey::from_bytes(&point.compress().to_bytes()).expect("a point");
        let verifier = VerifierKey::new(name, KeyAlg::Ed25519, vk).expect("a valid crafted key");
        CraftedKey { a, point, verifier }
    }

    /// A verifier key with these exact 32 bytes (e.g. a small-order or non-canonical `A`): what
    /// key parsing, and so enrollment, says about it.
    pub fn verifier_for_bytes(name: &str, bytes: &[u8; 32]) -> Result<VerifierKey, KeyError> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| KeyError::InvalidPublicKey)?;
        VerifierKey::new(name, KeyAlg::Ed25519, vk)
    }

    /// A signature of `msg` of the given shape. [`Shape::CofactoredOnly`] needs a key made with
    /// a torsion component.
    pub fn sign(&self, msg: &[u8], shape: Shape) -> [u8; 64] {
        let a_bytes = self.point.compress().to_bytes();
        let (r_bytes, s) = match shape {
            Shape::Plain | Shape::SPlusL | Shape::CofactoredOnly => {
                let mut counter = 0u64;
                loop {
                    let r = h512(&[b"nonce", self.a.as_bytes(), &counter.to_le_bytes(), msg]);
                    let r_bytes = EdwardsPoint::mul_base(&r).compress().to_bytes();
                    let k = h512(&[&r_bytes, &a_bytes, msg]);
                    // The key's torsion component T; the cofactorless equation holds iff k·T = 0.
                    let t = self.point - EdwardsPoint::mul_base(&self.a);
                    if shape != Shape::CofactoredOnly || !(k * t).is_identity() {
                        break (r_bytes, r + k * self.a);
                    }
                    counter += 1;
                }
            }
            Shape::SmallR => {
                let r_bytes = order8().compress().to_bytes();
                let k = h512(&[&r_bytes, &a_bytes, msg]);
                (r_bytes, k * self.a)
            }
            Shape::NonCanonicalR => {
                // y = p + 1 ≡ 1: the identity, encoded with y ≥ p.
                let r_bytes: [u8; 32] =
                    unhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
                        .try_into()
                        .expect("32 bytes");
                let k = h512(&[&r_bytes, &a_bytes, msg]);
                (r_bytes, k * self.a)
            }
        };
        let mut s_bytes = s.to_bytes();
        if shape == Shape::SPlusL {
            // ℓ little-endian; S + ℓ < 2²⁵⁶ because S < ℓ < 2²⁵³.
            let l = unhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
            let mut carry = 0u16;
            for (x, y) in s_bytes.iter_mut().zip(l) {
                let t = u16::from(*x) + u16::from(y) + carry;
                *x = (t & 0xff) as u8;
                carry = t >> 8;
            }
        }
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(&s_bytes);
        sig
    }

    /// The leaf bytes of `entry` signed by this key with a signature of `shape` (one signature
    /// line, as every leaf). The name on the line is the key's.
    pub fn leaf(&self, entry: &Entry, shape: Shape) -> Vec<u8> {
        let mut note = Note::new(&entry.to_text()).expect("entry text is a note text");
        let sig = self.sign(note.text().as_bytes(), shape);
        note.add_signature(NoteSignature {
            name: self.verifier.name().to_string(),
            key_id: self.verifier.key_id(),
            sig: sig.to_vec(),
        })
        .expect("one signature fits");
        note.to_bytes()
    }
}

/// A claim of `sii` → `ssi` at `time` by the MSP `key` (its name is the MSP's), signed with a
/// signature of `shape`: the leaf bytes a submitter would send.
pub fn shaped_claim(key: &CraftedKey, sii: &str, ssi: &str, time: u64, shape: Shape) -> Vec<u8> {
    let entry = Entry::Claim(crate::entry::Claim {
        sii: super::sii(sii),
        msp: crate::sii::Name::parse(key.verifier.name()).expect("crafted key names are DNS names"),
        ssi: crate::sii::Ssi::parse(ssi).expect("ssi"),
        time,
        expires: None,
        tags: Vec::new(),
        attestation: None,
    });
    key.leaf(&entry, shape)
}

/// The MSP names, SIIs and keys of [`shaped_claims`]: one MSP per shape and key kind.
#[derive(Clone, Debug)]
pub struct ShapedClaim {
    /// The signing key (enroll `verifier` as an MSP before submitting).
    pub key: CraftedKey,
    /// The signature's shape.
    pub shape: Shape,
    /// Whether the key has a torsion component.
    pub torsion: bool,
    /// The claimed SII (one per claim, so each lookup shows one leaf).
    pub sii: String,
    /// The leaf bytes.
    pub leaf: Vec<u8>,
    /// Whether every verifier must accept it: [`Shape::valid`].
    pub valid: bool,
}

/// One claim per (shape, key kind) that makes sense (`CofactoredOnly` only with a torsion key),
/// each by its own MSP `shape-<n>.example` and for its own SII `tel:+1415555020<n>`, at `time`.
pub fn shaped_claims(time: u64) -> Vec<ShapedClaim> {
    let mut out = Vec::new();
    for torsion in [false, true] {
        for shape in Shape::ALL {
            if shape == Shape::CofactoredOnly && !torsion {
                continue;
            }
            let n = out.len();
            let key = CraftedKey::new(&format!("shape-{n}.example"), torsion);
            let sii = format!("tel:+1415555020{n}");
            let ssi = format!("mimi://shape-{n}.example/u/a");
            let leaf = shaped_claim(&key, &sii, &ssi, time, shape);
            out.push(ShapedClaim {
                key,
                shape,
                torsion,
                sii,
                leaf,
                valid: shape.valid(),
            });
        }
    }
    out
}
