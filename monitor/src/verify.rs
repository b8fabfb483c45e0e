//! SPEC §3 verification of downloaded entries as the monitor reports it: the core's batch path
//! ([`ledger_core::batch::check_leaves`], shared with DP mirrors — parsing in parallel, the
//! signatures of many entries checked at once under the one signature rule, single checks only to
//! name a bad one) turned into the monitor's [`Verdict`]s.
//!
//! The batch and the single check are the same rule (ZIP-215 with canonical encodings), so the
//! monitor accepts exactly the signatures the log admits and every client accepts.

use ledger_core::admission::KeyRegistry;
use ledger_core::entry::{Leaf, Role};

pub use ledger_core::batch::{Checked, BATCH};

/// The outcome of verifying one entry.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// The entry passes SPEC §3 (all but the log's clock).
    Good {
        /// The parsed leaf.
        leaf: Leaf,
        /// The role of the signer (`None`: the log, for enrollments).
        signer_role: Option<Role>,
        /// The prover whose valid attestation the entry carries.
        attested_by: Option<String>,
    },
    /// The entry fails: the log should have refused it.
    Bad {
        /// Why, in the core's words.
        reason: String,
        /// The leaf, when it at least parses.
        leaf: Option<Leaf>,
    },
}

impl From<Checked> for Verdict {
    fn from(c: Checked) -> Verdict {
        match (c.leaf, c.result) {
            (Some(leaf), Ok(s)) => Verdict::Good {
                leaf,
                signer_role: s.role,
                attested_by: s.attestation.map(|k| k.name().to_string()),
            },
            (leaf, Err(e)) => Verdict::Bad {
                reason: e.to_string(),
                leaf,
            },
            (None, Ok(_)) => Verdict::Bad {
                reason: "internal: entry not verified".into(),
                leaf: None,
            },
        }
    }
}

/// Verifies `raw` (the leaves at indices `start..`), in order, and adds every valid enrollment
/// to `registry` (which must hold the enrollments of all earlier indices).
pub fn verify_leaves(start: u64, raw: &[Vec<u8>], registry: &mut KeyRegistry) -> Vec<Verdict> {
    check_leaves(start, raw, registry)
        .into_iter()
        .map(Verdict::from)
        .collect()
}

/// [`verify_leaves`] with the core's typed verdicts ([`ledger_core::batch::check_leaves`]): what
/// the tests compare with the core.
pub fn check_leaves(start: u64, raw: &[Vec<u8>], registry: &mut KeyRegistry) -> Vec<Checked> {
    ledger_core::batch::check_leaves(start, raw, registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::admission::{verify_entry, Refusal};
    use ledger_core::entry::Action;
    use ledger_core::entry::Entry;
    use ledger_core::testkit::{attestation, claim, optout, revoke, test_key, MemLog};
    use ledger_core::TreeHash;

    /// Every admission case of the core (`testkit::admission_cases`, the table the core's own
    /// admission tests check `admit` against) gets the core's verdict from the batch path: the same
    /// signers or the same `Refusal`, whether the case is checked alone (its own batch) or among all
    /// the others (one batch that fails and is re-checked one by one). So a rule added to the core
    /// with its case cannot be missed here.
    #[test]
    fn batch_path_gives_the_cores_verdict_on_every_admission_case() {
        use ledger_core::admission::admit;
        use ledger_core::testkit::admission_cases;

        let table = admission_cases();
        let mut registry = KeyRegistry::new(table.log.key.verifier());
        for i in 0..table.index {
            registry.add_entry(i, table.log.leaf(i).entry());
        }
        let core = |bytes: &[u8]| {
            Leaf::parse(bytes)
                .map_err(Refusal::from)
                .and_then(|leaf| verify_entry(&leaf, &registry.at(table.index)))
        };
        let raw: Vec<Vec<u8>> = table.cases.iter().map(|c| c.bytes.clone()).collect();
        // One case per call, all at the same index: each is judged with the keys before it.
        let alone: Vec<Checked> = raw
            .iter()
            .flat_map(|b| check_leaves(table.index, std::slice::from_ref(b), &mut registry.clone()))
            .collect();
        assert_eq!(alone.len(), table.cases.len());
        let mut refused = 0;
        for (c, got) in table.cases.iter().zip(&alone) {
            let want = core(&c.bytes);
            assert_eq!(got.result, want, "{}", c.what);
            assert_eq!(
                got.leaf.is_some(),
                Leaf::parse(&c.bytes).is_ok(),
                "{}",
                c.what
            );
            if !c.log_only {
                let admitted = admit(
                    &c.bytes,
                    &registry.at(table.index),
                    &c.policy,
                    table.log.now,
                );
                assert_eq!(
                    got.result.as_ref().err(),
                    admitted.as_ref().err(),
                    "{}",
                    c.what
                );
                refused += usize::from(admitted.is_err());
            }
        }
        assert!(refused > 40, "the table lost its refusal cases");
        // All in one group, as consecutive leaves: every case is judged at its own index, with the
        // same keys (no case is an enrollment), and the mixed batch falls back case by case.
        let together = check_leaves(table.index, &raw, &mut registry.clone());
        assert_eq!(together.len(), table.cases.len());
        for (i, (c, got)) in table.cases.iter().zip(&together).enumerate() {
            let want = Leaf::parse(&c.bytes)
                .map_err(Refusal::from)
                .and_then(|leaf| verify_entry(&leaf, &registry.at(table.index + i as u64)));
            assert_eq!(got.result, want, "{} (in a mixed batch)", c.what);
        }
    }

    /// The edge cases of "Taming the many EdDSAs" as real leaves (a mixed-order MSP key with a
    /// cofactored-only signature, a small-order R, a non-canonical R, S + ℓ): the monitor's batch
    /// path gives each the one rule's verdict (`Shape::valid`) and the core's, alone and all in
    /// one batch (where the refused ones must be named without spoiling the accepted ones).
    #[test]
    fn taming_shapes_get_the_rules_verdict_alone_and_in_one_batch() {
        use ledger_core::testkit::taming::shaped_claims;
        let mut log = MemLog::new("example.com/log", TreeHash::Blake3);
        let claims = shaped_claims(log.now);
        for c in &claims {
            log.enroll_key(Role::Msp, &c.key.verifier);
        }
        let start = log.size();
        let mut registry = KeyRegistry::new(log.key.verifier());
        for i in 0..start {
            registry.add_entry(i, log.leaf(i).entry());
        }
        let raw: Vec<Vec<u8>> = claims.iter().map(|c| c.leaf.clone()).collect();
        let together = check_leaves(start, &raw, &mut registry.clone());
        for (i, (c, got)) in claims.iter().zip(&together).enumerate() {
            assert_eq!(
                got.result.is_ok(),
                c.valid,
                "{:?} torsion={}: {:?}",
                c.shape,
                c.torsion,
                got.result
            );
            let leaf = Leaf::parse(&c.leaf).expect("parses");
            let core = verify_entry(&leaf, &registry.at(start + i as u64));
            assert_eq!(got.result, core, "{:?}", c.shape);
            let alone = check_leaves(start, std::slice::from_ref(&c.leaf), &mut registry.clone());
            assert_eq!(alone.len(), 1);
            assert_eq!(alone[0].result.is_ok(), c.valid, "{:?} alone", c.shape);
        }
    }

    /// Builds leaves of every kind, good and bad, and checks that the batch path agrees with
    /// `verify_entry` on every one, also when good and bad share a batch.
    #[test]
    fn batch_path_agrees_with_core() {
        let mut log = MemLog::new("example.com/log", TreeHash::Blake3);
        let msp = test_key("msp-a.example");
        let other = test_key("msp-b.example");
        let prover = test_key("prover.example");
        let stranger = test_key("stranger.example");
        log.enroll(Role::Msp, &msp);
        log.enroll(Role::Prover, &prover);
        let t = log.now;
        let ssi = "mimi://msp-a.example/u/a";
        let sii = "tel:+14155550100";
        let good_att = || {
            attestation(
                &prover,
                Action::Claim,
                sii,
                Some(("msp-a.example", ssi)),
                t - 5,
            )
        };
        let mut leaves: Vec<(Leaf, bool)> = vec![
            (claim(&msp, sii, ssi, t, &[], None), true),
            (claim(&msp, sii, ssi, t, &["Work"], Some(good_att())), true),
            // Attestation expired before the entry time.
            (
                claim(&msp, sii, ssi, t + 200_000, &[], Some(good_att())),
                false,
            ),
            // Attestation by a non-prover.
            (
                claim(
                    &msp,
                    sii,
                    ssi,
                    t,
                    &[],
                    Some(attestation(
                        &stranger,
                        Action::Claim,
                        sii,
                        Some(("msp-a.example", ssi)),
                        t - 5,
                    )),
                ),
                false,
            ),
            // Attestation for another SII.
            (
                claim(
                    &msp,
                    sii,
                    ssi,
                    t,
                    &[],
                    Some(attestation(
                        &prover,
                        Action::Claim,
                        "tel:+14155550101",
                        Some(("msp-a.example", ssi)),
                        t - 5,
                    )),
                ),
                false,
            ),
            // Unenrolled MSP.
            (
                claim(&other, sii, "mimi://msp-b.example/u/b", t, &[], None),
                false,
            ),
            (revoke(&msp, "msp-a.example", sii, ssi, t, None), true),
            (
                revoke(
                    &prover,
                    "msp-a.example",
                    sii,
                    ssi,
                    t,
                    Some(attestation(
                        &prover,
                        Action::Revoke,
                        sii,
                        Some(("msp-a.example", ssi)),
                        t - 5,
                    )),
                ),
                true,
            ),
            // A prover's revoke without attestation.
            (revoke(&prover, "msp-a.example", sii, ssi, t, None), false),
            (optout(&prover, sii, t), true),
            (optout(&stranger, sii, t), false),
        ];
        // A tampered signature: flip a bit in the base64 signature text of a good claim.
        let good = claim(&msp, "tel:+14155550199", ssi, t, &[], None);
        let mut bytes = good.bytes().to_vec();
        let pos = bytes.len() - 10;
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        if let Ok(bad) = Leaf::parse(&bytes) {
            leaves.push((bad, false));
        }
        let start = log.size();
        let mut raw: Vec<Vec<u8>> = leaves.iter().map(|(l, _)| l.bytes().to_vec()).collect();
        raw.push(b"not a note".to_vec());
        let mut registry = KeyRegistry::new(log.key.verifier());
        for i in 0..start {
            registry.add_entry(i, log.leaf(i).entry());
        }
        let verdicts = verify_leaves(start, &raw, &mut registry);
        assert_eq!(verdicts.len(), raw.len());
        for (i, ((leaf, expect_good), v)) in leaves.iter().zip(&verdicts).enumerate() {
            let core = verify_entry(leaf, &registry.at(start + i as u64));
            assert_eq!(core.is_ok(), *expect_good, "case {i}: core says {core:?}");
            match v {
                Verdict::Good {
                    signer_role,
                    attested_by,
                    ..
                } => {
                    let s = core.unwrap_or_else(|e| panic!("case {i}: batch good, core {e}"));
                    assert_eq!(*signer_role, s.role, "case {i}");
                    assert_eq!(
                        attested_by.as_deref(),
                        s.attestation.as_ref().map(|k| k.name())
                    );
                }
                Verdict::Bad { reason, .. } => {
                    let e = core.expect_err("batch bad, core good");
                    assert_eq!(reason, &e.to_string(), "case {i}");
                }
            }
        }
        assert!(matches!(
            verdicts.last(),
            Some(Verdict::Bad { leaf: None, .. })
        ));
    }

    /// SPEC §3: a claim whose tags are repeated or out of byte order (validly signed, by an
    /// enrolled MSP) is a second byte form the log must have refused; the monitor's parse is the
    /// core's, so it reports it as bad, with the core's reason, next to the good form.
    #[test]
    fn repeated_or_unordered_tags_are_bad() {
        use ledger_core::entry::Claim;
        use ledger_core::sii::{Name, Sii, Ssi, Tag};
        use ledger_core::testkit::sign_unchecked;

        let mut log = MemLog::new("example.com/log", TreeHash::Blake3);
        let msp = test_key("msp-a.example");
        log.enroll(Role::Msp, &msp);
        let t = log.now;
        let with_tags = |tags: &[&str]| {
            let entry = Entry::Claim(Claim {
                sii: Sii::parse("tel:+14155550100").expect("sii"),
                msp: Name::parse("msp-a.example").expect("name"),
                ssi: Ssi::parse("mimi://msp-a.example/u/alice").expect("ssi"),
                time: t,
                expires: None,
                tags: tags.iter().map(|x| Tag::parse(x).expect("tag")).collect(),
                attestation: None,
            });
            sign_unchecked(entry, &msp).bytes().to_vec()
        };
        let raw = vec![
            with_tags(&["Personal", "Personal"]),
            with_tags(&["Work", "Personal"]),
            with_tags(&["Personal", "Work"]),
        ];
        let mut registry = KeyRegistry::new(log.key.verifier());
        registry.add_entry(0, log.leaf(0).entry());
        let v = verify_leaves(1, &raw, &mut registry);
        for (i, want) in [(0, "appears twice"), (1, "strictly increasing byte order")] {
            match &v[i] {
                Verdict::Bad { leaf: None, reason } => assert!(reason.contains(want), "{reason}"),
                _ => panic!("case {i} must be bad and unparsed"),
            }
        }
        assert!(matches!(v[2], Verdict::Good { .. }), "the set form is good");
    }

    /// An all-good batch takes the batch path and reports the signers.
    #[test]
    fn enrollments_within_the_chunk_count_for_later_entries() {
        let mut log = MemLog::new("example.com/log", TreeHash::Sha256);
        let msp = test_key("msp-a.example");
        log.enroll(Role::Msp, &msp);
        let t = log.now;
        let mut raw = vec![log.leaf(0).bytes().to_vec()];
        for i in 0..200u64 {
            let sii = format!("mailto:user{i}@example.com");
            raw.push(
                claim(&msp, &sii, "mimi://msp-a.example/u/x", t, &[], None)
                    .bytes()
                    .to_vec(),
            );
        }
        // A claim before the enrollment would be bad: check it by putting one first.
        let early = claim(
            &msp,
            "mailto:early@example.com",
            "mimi://msp-a.example/u/x",
            t,
            &[],
            None,
        );
        raw.insert(0, early.bytes().to_vec());
        let mut registry = KeyRegistry::new(log.key.verifier());
        let v = verify_leaves(0, &raw, &mut registry);
        assert!(
            matches!(v[0], Verdict::Bad { .. }),
            "claim before enrollment"
        );
        assert!(
            matches!(
                v[1],
                Verdict::Good {
                    signer_role: None,
                    ..
                }
            ),
            "enroll"
        );
        assert!(v[2..].iter().all(|v| matches!(
            v,
            Verdict::Good {
                signer_role: Some(Role::Msp),
                ..
            }
        )));
    }
}
