//! The one signature rule (core/src/signature.rs, protocol §2 "Signature rule") on the 12 edge
//! cases of "Taming the many EdDSAs" (ed25519-speccheck, `tests/vectors/ed25519_speccheck.json`)
//! and on real leaves signed in those shapes: the single check, the batch verifier (alone and in
//! mixed batches), the admission checks, note keys and `verify_lookup` must all give the verdict
//! of `SPECCHECK_EXPECTED` / `Shape::valid`, so a verifier that drifts from the rule fails here.

use ledger_core::admission::{admit, admit_batch, SigCheck, SigFor};
use ledger_core::entry::Role;
use ledger_core::key::KeyError;
use ledger_core::lookup::{verify_lookup_at, Step};
use ledger_core::signature::{self, BadSignatures, BatchVerifier};
use ledger_core::testkit::taming::{
    shaped_claims, speccheck_cases, CraftedKey, Shape, SPECCHECK_EXPECTED, SPECCHECK_ZIP215,
};
use ledger_core::testkit::{sii, test_key, MemLog};
use ledger_core::TreeHash;

/// Good signatures to mix the edge cases with.
fn good(n: usize) -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    (0..n)
        .map(|i| {
            let k = test_key(&format!("good-{i}.example"));
            let msg = format!("message {i}").into_bytes();
            let sig = k.sign(&msg);
            (*k.verifier().public_key().as_bytes(), msg, sig)
        })
        .collect()
}

#[test]
fn the_vectors_are_the_papers_and_the_expected_verdicts_add_canonical_checks_to_zip215() {
    let cases = speccheck_cases();
    assert_eq!(cases.len(), 12);
    for c in &cases {
        // The bare ZIP-215 equation of ed25519-consensus gives the published "Zebra" verdicts…
        let zip215 = ed25519_consensus::VerificationKey::try_from(c.key)
            .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(c.sig), &c.message))
            .is_ok();
        assert_eq!(
            zip215, SPECCHECK_ZIP215[c.index],
            "case {}: {}",
            c.index, c.condition
        );
        // …and ours refuses exactly those of them with a non-canonical or small-order A or a
        // non-canonical R.
        let mut r = [0u8; 32];
        r.copy_from_slice(&c.sig[..32]);
        let encodings_ok =
            signature::is_valid_public_key(&c.key) && signature::is_canonical_point(&r);
        assert_eq!(
            SPECCHECK_EXPECTED[c.index],
            zip215 && encodings_ok,
            "case {}: {}",
            c.index,
            c.condition
        );
    }
}

#[test]
fn single_rule_gives_the_expected_verdict_on_every_speccheck_case() {
    for c in speccheck_cases() {
        assert_eq!(
            signature::verify(&c.key, &c.message, &c.sig),
            c.valid,
            "case {}: {}",
            c.index,
            c.condition
        );
    }
}

#[test]
fn batch_verifier_names_exactly_the_refused_speccheck_cases() {
    let cases = speccheck_cases();
    // Each case alone, and each case among 8 good signatures (at position 3).
    for c in &cases {
        let mut alone = BatchVerifier::new();
        alone.queue(&c.key, &c.message, &c.sig);
        assert_eq!(alone.verify().is_ok(), c.valid, "case {} alone", c.index);

        let goods = good(8);
        let mut mixed = BatchVerifier::new();
        for (i, (k, m, s)) in goods.iter().enumerate() {
            if i == 3 {
                assert_eq!(mixed.queue(&c.key, &c.message, &c.sig), 3);
            }
            mixed.queue(k, m, s);
        }
        let want = if c.valid {
            Ok(())
        } else {
            Err(BadSignatures(vec![3]))
        };
        assert_eq!(mixed.verify(), want, "case {} among good ones", c.index);
    }
    // All 12 and the good ones together: the bad positions are exactly the refused cases.
    let goods = good(5);
    let mut all = BatchVerifier::new();
    let mut want_bad = Vec::new();
    for c in &cases {
        let pos = all.queue(&c.key, &c.message, &c.sig);
        if !c.valid {
            want_bad.push(pos);
        }
    }
    for (k, m, s) in &goods {
        all.queue(k, m, s);
    }
    assert_eq!(all.len(), 17);
    assert_eq!(all.verify(), Err(BadSignatures(want_bad)));
    // Only the accepted cases: the batch equation itself passes (no fallback needed).
    let verdicts = signature::verify_all(
        cases
            .iter()
            .filter(|c| c.valid)
            .map(|c| (&c.key, c.message.as_slice(), c.sig.as_slice())),
    );
    assert_eq!(verdicts, vec![true; 4]);
}

#[test]
fn admission_checks_and_note_keys_give_the_expected_verdicts() {
    for c in speccheck_cases() {
        // Admission's equation (what the log and the monitor check, alone or batched).
        let Ok(public_key) = ed25519_dalek::VerifyingKey::from_bytes(&c.key) else {
            panic!("case {}: every speccheck key decodes", c.index);
        };
        let check = SigCheck {
            public_key,
            msg: &c.message,
            sig: &c.sig,
            signer: "x.example",
            stands_for: SigFor::Entry,
        };
        assert_eq!(check.verify(), c.valid, "case {} SigCheck", c.index);
        // Notes, checkpoints, cosignatures and verify_lookup verify through VerifierKey: a key
        // the rule refuses cannot even be held, and a held one verifies by the rule.
        match CraftedKey::verifier_for_bytes("x.example", &c.key) {
            Ok(vk) => {
                assert!(signature::is_valid_public_key(&c.key), "case {}", c.index);
                assert_eq!(
                    vk.verify(&c.message, &c.sig),
                    c.valid,
                    "case {} key",
                    c.index
                );
            }
            Err(e) => {
                assert!(
                    !c.valid,
                    "case {}: valid but its key is refused: {e}",
                    c.index
                );
                assert!(
                    matches!(e, KeyError::WeakPublicKey | KeyError::NonCanonicalPublicKey),
                    "case {}: {e}",
                    c.index
                );
            }
        }
    }
}

#[test]
fn hand_made_shapes_get_the_rules_verdict_and_differ_from_verify_strict_where_expected() {
    let plain = CraftedKey::new("plain.example", false);
    let mixed = CraftedKey::new("mixed.example", true);
    let msg = b"mimi-ledger/v1 claim\n";
    for shape in Shape::ALL {
        for (key, torsion) in [(&plain, false), (&mixed, true)] {
            if shape == Shape::CofactoredOnly && !torsion {
                continue;
            }
            let sig = key.sign(msg, shape);
            let a = key.verifier.public_key().as_bytes();
            assert_eq!(signature::verify(a, msg, &sig), shape.valid(), "{shape:?}");
            assert_eq!(key.verifier.verify(msg, &sig), shape.valid(), "{shape:?}");
            // The old rule (ed25519-dalek verify_strict) refuses the valid torsion shapes: the
            // reason the log and a batch could disagree.
            let strict = key
                .verifier
                .public_key()
                .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok();
            if matches!(shape, Shape::CofactoredOnly | Shape::SmallR) {
                assert!(!strict, "{shape:?}: verify_strict accepts");
            }
        }
    }
}

#[test]
fn shaped_leaves_get_the_same_verdict_from_admit_admit_batch_and_verify_lookup() {
    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    let claims = shaped_claims(log.now);
    assert!(claims.iter().any(|c| c.valid) && claims.iter().any(|c| !c.valid));
    for c in &claims {
        log.enroll_key(Role::Msp, &c.key.verifier);
    }
    let index = log.size();
    let keys = log.registry().clone();
    // Batched admission (the log's pool) agrees with single admission on every claim, alone and
    // all together.
    let raw: Vec<&[u8]> = claims.iter().map(|c| c.leaf.as_slice()).collect();
    let together = admit_batch(&raw, &keys.at(index), &log.policy, log.now);
    for (c, batched) in claims.iter().zip(&together) {
        let single = admit(&c.leaf, &keys.at(index), &log.policy, log.now);
        assert_eq!(
            single.is_ok(),
            c.valid,
            "{:?} torsion={}: {single:?}",
            c.shape,
            c.torsion
        );
        assert_eq!(
            batched.as_ref().map(|(_, s)| s),
            single.as_ref().map(|(_, s)| s),
            "{:?} torsion={}",
            c.shape,
            c.torsion
        );
        let alone = admit_batch(&[&c.leaf], &keys.at(index), &log.policy, log.now);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].is_ok(), c.valid);
    }
    // Into the log: the valid ones as admitted, the refused ones pushed by a dishonest log.
    for c in &claims {
        match log.submit(&c.leaf) {
            Ok(_) => assert!(c.valid),
            Err(_) => {
                assert!(!c.valid);
                let leaf = ledger_core::entry::Leaf::parse(&c.leaf).expect("the leaf parses");
                log.push(leaf);
            }
        }
    }
    log.seal();
    for c in &claims {
        let answer = log.lookup(&sii(&c.sii));
        let verdict = verify_lookup_at(&answer, &log.trust(), log.now);
        match verdict {
            Ok(_) => assert!(
                c.valid,
                "{:?}: verify_lookup accepts a refused leaf",
                c.shape
            ),
            Err(r) => {
                assert!(!c.valid, "{:?}: verify_lookup refuses: {r:?}", c.shape);
                assert_eq!(r.step(), Step::Entries, "{:?}", c.shape);
            }
        }
    }
}

#[test]
fn canonical_check_is_exactly_the_decode_encode_round_trip() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let mut inputs: Vec<[u8; 32]> = Vec::new();
    // Every y in [0, 40) and in [p − 20, 2²⁵⁵), both signs: all encodings with y ≥ p and the
    // x = 0 points y = 1 and y = p − 1.
    for lo in 0u8..40 {
        for sign in [0u8, 0x80] {
            let mut small = [0u8; 32];
            small[0] = lo;
            small[31] = sign;
            inputs.push(small);
            let mut high = [0xffu8; 32];
            high[0] = 0xd8 + lo;
            high[31] = 0x7f | sign;
            inputs.push(high);
        }
    }
    // And pseudo-random bytes.
    for i in 0..2000u32 {
        inputs.push(TreeHash::Sha256.leaf_hash(&i.to_le_bytes()));
    }
    let mut points = 0;
    for b in inputs {
        if let Some(p) = CompressedEdwardsY(b).decompress() {
            points += 1;
            assert_eq!(
                signature::is_canonical_point(&b),
                p.compress().to_bytes() == b,
                "{b:02x?}"
            );
        }
    }
    assert!(points > 1000);
}

/// The rule's equation is ed25519-zebra's; ed25519-consensus is an independent implementation of
/// ZIP-215 (a fork that moved to another curve library). On good signatures, on every single-byte
/// change of a signature, key or message, and on the 12 edge cases, the rule must say what
/// consensus plus the rule's encoding checks says, alone and in batches.
#[test]
fn the_rules_equation_agrees_with_an_independent_zip215_implementation() {
    fn consensus(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        let mut r = [0u8; 32];
        r.copy_from_slice(&sig[..32]);
        signature::is_valid_public_key(key)
            && signature::is_canonical_point(&r)
            && ed25519_consensus::VerificationKey::try_from(*key)
                .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(*sig), msg))
                .is_ok()
    }
    let mut cases: Vec<([u8; 32], Vec<u8>, [u8; 64])> = speccheck_cases()
        .into_iter()
        .map(|c| (c.key, c.message.clone(), c.sig))
        .collect();
    for (i, (key, msg, sig)) in good(6).into_iter().enumerate() {
        cases.push((key, msg.clone(), sig));
        // One byte changed, at a different place in each part for each good signature.
        for at in [i, 31 - i, 32 + i, 63 - i] {
            let mut s = sig;
            s[at] ^= 1 << (i % 8);
            cases.push((key, msg.clone(), s));
        }
        let mut k = key;
        k[i * 5] ^= 0x40;
        cases.push((k, msg.clone(), sig));
        let mut m = msg.clone();
        m[0] ^= 1;
        cases.push((key, m, sig));
    }
    let expected: Vec<bool> = cases.iter().map(|(k, m, s)| consensus(k, m, s)).collect();
    assert!(
        expected.iter().filter(|ok| **ok).count() >= 6,
        "the good ones verify"
    );
    assert!(
        expected.iter().filter(|ok| !**ok).count() >= 36,
        "the changed ones do not"
    );
    for (c, want) in cases.iter().zip(&expected) {
        assert_eq!(
            signature::verify(&c.0, &c.1, &c.2),
            *want,
            "single: {c:02x?}"
        );
    }
    let batch = signature::verify_all(cases.iter().map(|(k, m, s)| (k, &m[..], &s[..])));
    assert_eq!(batch, expected, "one batch of all of them");
}
