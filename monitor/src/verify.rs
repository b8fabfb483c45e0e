//! SPEC §3 verification of downloaded entries, fast: parsing in parallel (rayon), and the Ed25519
//! signatures of many entries checked at once with `ed25519_dalek::verify_batch`.
//!
//! The authority is `ledger_core::admission::verify_entry`. The batch path re-does its non-signature
//! checks ([`prepare`]) and collects the signatures instead of checking them one by one; when a
//! batch fails, or [`prepare`] refuses, every entry of the group is checked again with
//! `verify_entry`, which names the exact refusal. So a bad entry is always reported with the core's
//! reason, and a good one costs about half a signature check.
//!
//! One known difference: batch verification uses the randomized cofactorless equation, while the
//! core uses `verify_strict`. A signature that only the key's holder could make (a valid one plus a
//! small-torsion component) may pass a batch while `verify_strict` refuses it. No one else can
//! produce such a signature, so this never turns a forgery into an accepted entry.

use ed25519_dalek::{Signature, VerifyingKey};
use ledger_core::admission::{verify_entry, KeyLookup, KeyRegistry};
use ledger_core::entry::{Action, Entry, Leaf, Role, SignedAttestation};
use ledger_core::key::VerifierKey;
use ledger_core::note::Note;
use rayon::prelude::*;

/// How many entries share one batch (and are re-checked one by one when it fails).
pub const BATCH: usize = 128;

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

/// An entry as parsed, with the verdict on it when it is an enrollment (decided in order).
type Item = (usize, Result<Leaf, String>, Option<Result<(), String>>);

/// One signature to check: message, signature, key.
struct SigCheck<'a> {
    msg: &'a [u8],
    sig: Signature,
    key: VerifyingKey,
}

/// What [`prepare`] found: who signed, and the signatures still to check.
struct Prepared<'a> {
    signer_role: Option<Role>,
    attested_by: Option<String>,
    sigs: Vec<SigCheck<'a>>,
}

/// Verifies `raw` (the leaves at indices `start..`), in order, and adds every valid enrollment
/// to `registry` (which must hold the enrollments of all earlier indices).
pub fn verify_leaves(start: u64, raw: &[Vec<u8>], registry: &mut KeyRegistry) -> Vec<Verdict> {
    // 1. Parse in parallel.
    let parsed: Vec<Result<Leaf, String>> = raw
        .par_iter()
        .map(|b| Leaf::parse(b).map_err(|e| e.to_string()))
        .collect();
    // 2. Enrollments, in order: they change which keys later entries are checked against. Few,
    //    and signed by the log, so checked one by one with the core.
    let mut enroll_ok: Vec<Option<Result<(), String>>> = vec![None; parsed.len()];
    for (i, p) in parsed.iter().enumerate() {
        if let Ok(leaf) = p {
            if let Entry::Enroll(_) = leaf.entry() {
                let index = start + i as u64;
                let r = verify_entry(leaf, &registry.at(index)).map_err(|e| e.to_string());
                if r.is_ok() {
                    registry.add_entry(index, leaf.entry());
                }
                if let Some(slot) = enroll_ok.get_mut(i) {
                    *slot = Some(r.map(|_| ()));
                }
            }
        }
    }
    // 3. Everything else, by groups of BATCH, in parallel.
    let registry: &KeyRegistry = registry;
    let items: Vec<Item> = parsed
        .into_iter()
        .zip(enroll_ok)
        .enumerate()
        .map(|(i, (p, e))| (i, p, e))
        .collect();
    items
        .par_chunks(BATCH)
        .flat_map_iter(|group| verify_group(start, group, registry))
        .collect()
}

/// Verifies one group: enrollments as already decided, the others by one batch.
fn verify_group(start: u64, group: &[Item], registry: &KeyRegistry) -> Vec<Verdict> {
    let mut out: Vec<Option<Verdict>> = vec![None; group.len()];
    let mut batch: Vec<SigCheck<'_>> = Vec::new();
    let mut batched: Vec<(usize, Option<Role>, Option<String>)> = Vec::new();
    for (slot, (i, parsed, enroll)) in group.iter().enumerate() {
        let index = start + *i as u64;
        let verdict = match (parsed, enroll) {
            (Err(reason), _) => Some(Verdict::Bad {
                reason: reason.clone(),
                leaf: None,
            }),
            (Ok(leaf), Some(Ok(()))) => Some(Verdict::Good {
                leaf: leaf.clone(),
                signer_role: None,
                attested_by: None,
            }),
            (Ok(leaf), Some(Err(reason))) => Some(Verdict::Bad {
                reason: reason.clone(),
                leaf: Some(leaf.clone()),
            }),
            (Ok(leaf), None) => match prepare(leaf, &registry.at(index)) {
                Some(p) => {
                    batch.extend(p.sigs);
                    batched.push((slot, p.signer_role, p.attested_by));
                    None
                }
                None => Some(single(leaf, index, registry)),
            },
        };
        if let Some(s) = out.get_mut(slot) {
            *s = verdict;
        }
    }
    if !batch.is_empty() {
        let msgs: Vec<&[u8]> = batch.iter().map(|c| c.msg).collect();
        let sigs: Vec<Signature> = batch.iter().map(|c| c.sig).collect();
        let keys: Vec<VerifyingKey> = batch.iter().map(|c| c.key).collect();
        let all_good = ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok();
        for (slot, signer_role, attested_by) in batched {
            let Some((i, Ok(leaf), _)) = group.get(slot) else {
                continue;
            };
            let verdict = if all_good {
                Verdict::Good {
                    leaf: leaf.clone(),
                    signer_role,
                    attested_by,
                }
            } else {
                single(leaf, start + *i as u64, registry)
            };
            if let Some(s) = out.get_mut(slot) {
                *s = Some(verdict);
            }
        }
    }
    out.into_iter()
        .map(|v| {
            v.unwrap_or_else(|| Verdict::Bad {
                reason: "internal: entry not verified".into(),
                leaf: None,
            })
        })
        .collect()
}

/// The core's verdict on one entry.
fn single(leaf: &Leaf, index: u64, registry: &KeyRegistry) -> Verdict {
    match verify_entry(leaf, &registry.at(index)) {
        Ok(s) => Verdict::Good {
            leaf: leaf.clone(),
            signer_role: s.role,
            attested_by: s.attestation.map(|k| k.name().to_string()),
        },
        Err(e) => Verdict::Bad {
            reason: e.to_string(),
            leaf: Some(leaf.clone()),
        },
    }
}

/// The checks of `verify_entry` for a non-enroll entry, except the signature equations, which are
/// returned for batching. `None` when any check fails (the caller then asks the core why).
fn prepare<'a>(leaf: &'a Leaf, keys: &impl KeyLookup) -> Option<Prepared<'a>> {
    let signer = leaf.signer_name();
    let entry = leaf.entry();
    let mut sigs = Vec::with_capacity(2);
    let (role, att, action) = match entry {
        Entry::Enroll(_) => return None,
        Entry::Claim(c) => {
            if signer != c.msp.as_str() {
                return None;
            }
            (Role::Msp, c.attestation.as_ref(), Action::Claim)
        }
        Entry::Revoke(r) => {
            if signer == r.msp.as_str() {
                (Role::Msp, r.attestation.as_ref(), Action::Revoke)
            } else if keys.enrolled(Role::Prover, signer).is_some() {
                // A prover's revoke must carry an attestation.
                (Role::Prover, Some(r.attestation.as_ref()?), Action::Revoke)
            } else {
                return None;
            }
        }
        Entry::Optout(o) => (Role::Prover, Some(&o.attestation), Action::Optout),
    };
    let key = keys.enrolled(role, signer)?;
    sigs.push(single_sig(leaf.note(), key)?);
    let attested_by = match att {
        None => None,
        Some(a) => {
            let (check, name) = prepare_attestation(a, action, entry, keys)?;
            sigs.push(check);
            Some(name)
        }
    };
    Some(Prepared {
        signer_role: Some(role),
        attested_by,
        sigs,
    })
}

/// `check_attestation` without the signature equation.
fn prepare_attestation<'a>(
    att: &'a SignedAttestation,
    action: Action,
    entry: &Entry,
    keys: &impl KeyLookup,
) -> Option<(SigCheck<'a>, String)> {
    let a = &att.attestation;
    if a.action != action {
        return None;
    }
    let (sii, msp, ssi) = match entry {
        Entry::Claim(c) => (&c.sii, Some(&c.msp), Some(&c.ssi)),
        Entry::Revoke(r) => (&r.sii, Some(&r.msp), Some(&r.ssi)),
        Entry::Optout(o) => (&o.sii, None, None),
        Entry::Enroll(_) => return None,
    };
    if &a.sii != sii || a.msp.as_ref() != msp || a.ssi.as_ref() != ssi {
        return None;
    }
    let t = entry.time();
    if t < a.time || t > a.expires {
        return None;
    }
    let name = att.signer_name();
    let key = keys.enrolled(Role::Prover, name)?;
    Some((single_sig(&att.note, key)?, name.to_string()))
}

/// `verify_single` without the signature equation: the note's first signature names `key` (name
/// and key ID) and has the Ed25519 length.
fn single_sig<'a>(note: &'a Note, key: &VerifierKey) -> Option<SigCheck<'a>> {
    let s = note.signatures().first()?;
    if s.name != key.name() || s.key_id != key.key_id() {
        return None;
    }
    let bytes = <[u8; 64]>::try_from(s.sig.as_slice()).ok()?;
    Some(SigCheck {
        msg: note.text().as_bytes(),
        sig: Signature::from_bytes(&bytes),
        key: *key.public_key(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::{attestation, claim, optout, revoke, test_key, MemLog};
    use ledger_core::TreeHash;

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
