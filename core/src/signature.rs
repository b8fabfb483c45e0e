//! The one Ed25519 signature rule of mimi-ledger (protocol §2 "Signature rule"), single and
//! batched.
//!
//! Why one rule, written once: the log admits a leaf, then monitors, auditors and every client
//! check the same signature again. If any two of them disagreed on one signature (the log takes
//! it, a client refuses it), the SII it belongs to would become un-lookable: every answer for it
//! would fail verification. Ed25519 implementations do disagree on edge cases (Chalkias, Garillot
//! and Nikolaenko, "Taming the many EdDSAs", 2020), and, worse, the usual *batch* equation
//! (cofactorless, randomised) accepts signatures the strict single check refuses. So every
//! verifier calls [`verify`] or [`BatchVerifier`] here and nothing else.
//!
//! **The rule.** `sig = R ‖ S` (64 bytes) is valid for message `M` under public key bytes `A` iff
//!
//! 1. `A` is the *canonical* encoding of a curve point that is *not of small order*;
//! 2. `R` is the *canonical* encoding of a curve point;
//! 3. `S`, little-endian, is less than ℓ = 2²⁵² + 27742317777372353535851937790883648493;
//! 4. `[8][S]B = [8]R + [8][k]A` with `k = SHA-512(R ‖ A ‖ M) mod ℓ`, the bytes of `R` and `A` as
//!    given (the cofactored equation).
//!
//! Steps 3 and 4 (with 1 and 2 loosened to "encodes a point, canonical or not") are ZIP-215,
//! implemented by the `ed25519-zebra` crate (Zcash's; `ed25519-consensus` is its fork and the
//! tests check the two agree), whose single and batch verification accept exactly the same
//! signatures; that is why this rule is ZIP-215 and not RFC 8032's
//! implementation-defined choice or ed25519-dalek's `verify_strict` (cofactorless, which no batch
//! equation matches). Steps 1 and 2 are ours, checked on the bytes before any curve arithmetic, in
//! the single and the batch path alike:
//!
//! - a canonical `R` and `A` give each point one byte form, so a signature and a key have exactly
//!   one encoding (with step 3, nobody but the key's holder can make a second accepted byte
//!   string for a (key, message) from a first one);
//! - a small-order `A` verifies signatures for many messages that nobody signed (`[8]A = 0`), so
//!   such keys are refused, as [`crate::key::VerifierKey`] already refuses to parse them.
//!
//! A point encoding is canonical iff its `y` (the low 255 bits) is below p = 2²⁵⁵ − 19 and its
//! sign bit is clear when `x = 0` (`y = 1` or `y = p − 1`), exactly the 32 bytes that compressing
//! the decoded point gives back.
//!
//! Batches: [`BatchVerifier`] checks all its items with one randomised multiscalar equation
//! (ZIP-215's, cofactored); only when that fails does it check each item alone, to name the bad
//! ones. A batch of bad signatures passes with probability at most 2⁻¹²⁸.
//!
//! Why `ed25519-zebra` and not `ed25519-consensus`, which implement the same equation: zebra 5
//! runs on curve25519-dalek 5, whose multiscalar multiplication uses the AVX2 backend where the
//! processor has it (picked at run time), while consensus is built on curve25519-dalek-ng's 64-bit
//! serial backend; the rule's verification was ~20% of the log's CPU under bulk load
//! (docs/benchmarks.md).

use ed25519_zebra::batch;
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};

/// The batch equation's random scalars: a BLAKE3 key stream under a fresh key from the operating
/// system, one per batch (zebra asks for 16 bytes per signature; one system call per batch, not
/// per signature). The scalars must only be unpredictable to whoever made the signatures.
struct BatchRng(blake3::OutputReader);

impl BatchRng {
    fn new() -> BatchRng {
        use rand_core::RngCore;
        let mut key = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut key);
        BatchRng(blake3::Hasher::new_keyed(&key).finalize_xof())
    }
}

impl rand_core10::TryRng for BatchRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core10::TryCryptoRng for BatchRng {}

/// The canonical encodings of the 8 points of small order (the torsion subgroup E[8]): the
/// identity, the point of order 2, the 2 of order 4 and the 4 of order 8. Non-canonical
/// encodings of these points are refused by the canonical check before this list is consulted.
const SMALL_ORDER: [[u8; 32]; 8] = [
    // identity, y = 1
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    // order 2, y = p − 1
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    // order 4, y = 0, both signs of x
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    // order 8, y = ±0x7a03ac92…, both signs of x
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
];

/// 32 bytes from 64 hex digits, at compile time (for [`SMALL_ORDER`]).
const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lowercase hex"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Whether `bytes` is the canonical encoding of its point, if it encodes one: `y < p` and no
/// sign bit on `x = 0`. Pure byte arithmetic: it does not check that the point exists (the
/// equation's decoding does), only that no other 32 bytes decode to the same point.
pub fn is_canonical_point(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] & 0x80 != 0;
    let mut y = *bytes;
    y[31] &= 0x7f;
    // p − 1 = 2²⁵⁵ − 20, little-endian: ec ff … ff 7f.
    const P_MINUS_1: [u8; 32] =
        hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    const ONE: [u8; 32] = hex32("0100000000000000000000000000000000000000000000000000000000000000");
    // y < p ⟺ y ≤ p − 1, compared from the most significant byte down.
    let below_p = y.iter().rev().cmp(P_MINUS_1.iter().rev()) != std::cmp::Ordering::Greater;
    below_p && !(sign && (y == ONE || y == P_MINUS_1))
}

/// Whether `key` may sign under the rule: canonical and not of small order (step 1).
pub fn is_valid_public_key(key: &[u8; 32]) -> bool {
    is_canonical_point(key) && !SMALL_ORDER.contains(key)
}

/// Steps 1–3 on bytes, and the parts the equation needs: the key, the signature, or `None` when
/// the item is refused before any curve arithmetic.
fn precheck(key: &[u8; 32], sig: &[u8]) -> Option<Signature> {
    let sig: [u8; 64] = sig.try_into().ok()?;
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    if !is_valid_public_key(key) || !is_canonical_point(&r) {
        return None;
    }
    // Step 3 (S < ℓ) and step 4 are ed25519-zebra's.
    Some(Signature::from_bytes(&sig))
}

/// Whether `sig` is a valid signature of `msg` by the Ed25519 public key `key` under the rule of
/// this module. The single check: every verifier of a lone signature calls this.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Some(sig) = precheck(key, sig) else {
        return false;
    };
    match VerificationKey::try_from(*key) {
        Ok(vk) => vk.verify(&sig, msg).is_ok(),
        Err(_) => false,
    }
}

/// Signatures that did not verify in a batch: their positions, in queue order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} of the batch's signatures do not verify (positions {:?})", .0.len(), .0)]
pub struct BadSignatures(pub Vec<usize>);

/// Many (key, message, signature) checks at once, under the same rule as [`verify`]: a batch
/// accepts exactly the items that [`verify`] accepts one by one (up to the 2⁻¹²⁸ chance of a
/// batch of bad signatures passing), and costs about half as much per signature.
#[derive(Default)]
pub struct BatchVerifier {
    /// Positions refused by the byte checks (never reach the equation).
    refused: Vec<usize>,
    /// The queued equations, with their positions: kept for the one-by-one fallback.
    items: Vec<(usize, batch::Item)>,
    /// How many were queued in all.
    len: usize,
}

impl std::fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchVerifier")
            .field("len", &self.len)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl BatchVerifier {
    /// An empty batch.
    pub fn new() -> BatchVerifier {
        BatchVerifier::default()
    }

    /// Queues one check and returns its position (0, 1, …): the number [`BadSignatures`] names.
    /// The message is hashed now, so it need not outlive the call.
    pub fn queue(&mut self, key: &[u8; 32], msg: &[u8], sig: &[u8]) -> usize {
        let pos = self.len;
        self.len += 1;
        match precheck(key, sig) {
            Some(sig) => {
                let item = batch::Item::from((VerificationKeyBytes::from(*key), sig, msg));
                self.items.push((pos, item));
            }
            None => self.refused.push(pos),
        }
        pos
    }

    /// How many checks were queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Verifies everything queued: `Ok` when every signature is valid, else the positions of
    /// exactly the invalid ones. One batch equation first; only if it fails, one check per item
    /// (so a good batch never pays for single checks, and a bad one names its culprits).
    pub fn verify(self) -> Result<(), BadSignatures> {
        let BatchVerifier {
            mut refused, items, ..
        } = self;
        let batch_ok = match items.len() {
            0 => true,
            // A batch of one is the single check (the same equation, without the random scalar).
            1 => items
                .iter()
                .all(|(_, item)| item.clone().verify_single().is_ok()),
            _ => {
                let mut v = batch::Verifier::new();
                for (_, item) in &items {
                    v.queue(item.clone());
                }
                v.verify(BatchRng::new()).is_ok()
            }
        };
        if !batch_ok {
            refused.extend(
                items
                    .into_iter()
                    .filter(|(_, item)| item.clone().verify_single().is_err())
                    .map(|(pos, _)| pos),
            );
        }
        if refused.is_empty() {
            Ok(())
        } else {
            refused.sort_unstable();
            Err(BadSignatures(refused))
        }
    }
}

/// [`BatchVerifier`] over a list: whether each `(key, message, signature)` is valid, in order.
pub fn verify_all<'a>(
    items: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8], &'a [u8])>,
) -> Vec<bool> {
    let mut b = BatchVerifier::new();
    for (key, msg, sig) in items {
        b.queue(key, msg, sig);
    }
    let mut ok = vec![true; b.len()];
    if let Err(BadSignatures(bad)) = b.verify() {
        for pos in bad {
            if let Some(slot) = ok.get_mut(pos) {
                *slot = false;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_list_is_the_torsion_subgroup() {
        use ed25519_dalek::VerifyingKey;
        for p in SMALL_ORDER {
            let vk = VerifyingKey::from_bytes(&p).expect("a point");
            assert!(vk.is_weak(), "{p:02x?}");
            assert!(is_canonical_point(&p), "{p:02x?}");
        }
        let mut distinct = SMALL_ORDER.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn canonical_check_refuses_the_known_non_canonical_encodings() {
        // y = p + 1 ≡ 1 (the identity again), y = p − 1 with the sign bit (x = −0), y = 2²⁵⁵ − 1.
        for hex in [
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "0100000000000000000000000000000000000000000000000000000000000080",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            assert!(!is_canonical_point(&hex32(hex)), "{hex}");
        }
        assert!(is_canonical_point(&hex32(
            "ebffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
        )));
    }
}
