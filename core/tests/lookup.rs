//! SPEC §6: honest answers verify; every single lie is rejected at the right step.

use ledger_core::api::LookupAnswer;
use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::cosignature::cosign;
use ledger_core::entry::{Action, Claim, Entry, Role};
use ledger_core::lookup::{verify_lookup_at, verify_lookup_for, Step, Trust};
use ledger_core::problem::ProblemType;
use ledger_core::sii::{Name, Ssi, Tag};
use ledger_core::state::Status;
use ledger_core::testkit::{
    attestation, claim, optout, revoke, sign_unchecked, sii, test_key, test_witness_key, MemLog,
};
use ledger_core::TreeHash;

const T: u64 = 1_764_158_400;
const ALICE: &str = "tel:+14155550100";
const BOB: &str = "tel:+14155550199";
const A_SSI: &str = "mimi://msp-a.example/u/alice";

struct World {
    log: MemLog,
}

fn world(hash: TreeHash) -> World {
    let mut log = MemLog::new("localhost/mimi-ledger", hash);
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp_a);
    log.enroll(Role::Msp, &msp_b);
    log.enroll(Role::Prover, &prover);
    let att = attestation(
        &prover,
        Action::Claim,
        ALICE,
        Some(("msp-a.example", A_SSI)),
        T - 60,
    );
    log.submit(claim(&msp_a, ALICE, A_SSI, T, &["Personal"], Some(att)).bytes())
        .unwrap();
    // Noise for other SIIs, so proofs are non-trivial.
    for i in 0..20u64 {
        let s = format!("tel:+1415555{:04}", 1000 + i);
        log.submit(claim(&msp_b, &s, "mimi://msp-b.example/u/x", T, &[], None).bytes())
            .unwrap();
    }
    log.submit(
        claim(
            &msp_a,
            BOB,
            "mimi://msp-a.example/u/bob",
            T,
            &["Work"],
            None,
        )
        .bytes(),
    )
    .unwrap();
    log.submit(
        claim(
            &msp_b,
            BOB,
            "mimi://msp-b.example/u/bob",
            T,
            &["Personal"],
            None,
        )
        .bytes(),
    )
    .unwrap();
    World { log }
}

fn check(
    w: &World,
    who: &str,
) -> Result<ledger_core::lookup::Verified, ledger_core::lookup::Rejection> {
    verify_lookup_at(&w.log.lookup(&sii(who)), &w.log.trust(), T)
}

#[test]
fn honest_answers_verify_for_none_one_and_many() {
    for hash in [TreeHash::Blake3, TreeHash::Sha256] {
        let w = world(hash);
        let none = check(&w, "tel:+14155550142").unwrap();
        assert_eq!(none.status, Status::None);
        assert!(none.mappings.is_empty() && none.entries.is_empty());

        let one = check(&w, ALICE).unwrap();
        assert_eq!(one.status, Status::Mapped);
        assert_eq!(one.mappings.len(), 1);
        assert_eq!(one.mappings[0].msp.as_str(), "msp-a.example");
        assert_eq!(
            one.mappings[0].attested_by.as_deref(),
            Some("prover.example")
        );
        assert_eq!(one.mappings[0].tags[0].as_str(), "Personal");

        let many = check(&w, BOB).unwrap();
        assert_eq!(many.mappings.len(), 2);
        let msps: Vec<&str> = many.mappings.iter().map(|m| m.msp.as_str()).collect();
        assert_eq!(msps, ["msp-a.example", "msp-b.example"]);
    }
}

#[test]
fn revokes_and_optouts_fold_and_verify() {
    let mut w = world(TreeHash::Blake3);
    let msp_a = test_key("msp-a.example");
    let prover = test_key("prover.example");
    w.log
        .submit(
            revoke(
                &msp_a,
                "msp-a.example",
                BOB,
                "mimi://msp-a.example/u/bob",
                T + 1,
                None,
            )
            .bytes(),
        )
        .unwrap();
    let v = check(&w, BOB).unwrap();
    assert_eq!(v.mappings.len(), 1);
    assert_eq!(v.mappings[0].msp.as_str(), "msp-b.example");

    w.log.submit(optout(&prover, ALICE, T + 2).bytes()).unwrap();
    let v = check(&w, ALICE).unwrap();
    assert_eq!(v.status, Status::OptedOut);
    assert!(v.mappings.is_empty());
    assert_eq!(v.entries.len(), 2);

    // A later attested claim maps again.
    let att = attestation(
        &prover,
        Action::Claim,
        ALICE,
        Some(("msp-a.example", A_SSI)),
        T + 2,
    );
    w.log
        .submit(claim(&msp_a, ALICE, A_SSI, T + 3, &[], Some(att)).bytes())
        .unwrap();
    let v = check(&w, ALICE).unwrap();
    assert_eq!(v.status, Status::Mapped);

    // Prover revocation (R10).
    let ratt = attestation(
        &prover,
        Action::Revoke,
        ALICE,
        Some(("msp-a.example", A_SSI)),
        T + 3,
    );
    w.log
        .submit(revoke(&prover, "msp-a.example", ALICE, A_SSI, T + 4, Some(ratt)).bytes())
        .unwrap();
    let v = check(&w, ALICE).unwrap();
    assert_eq!(v.status, Status::None);
}

/// SPEC §3/§6: an answer that carries a claim with repeated or unordered tags (a second byte form
/// of a claim, which an honest log refuses) is rejected at the entries step, with the same
/// `non-canonical` problem type the log gives, even though the signature and proofs are valid.
#[test]
fn an_entry_with_repeated_or_unordered_tags_is_refused_as_non_canonical() {
    let tag = |t: &str| Tag::parse(t).unwrap();
    for (what, tags) in [
        ("repeated", vec![tag("Personal"), tag("Personal")]),
        ("unordered", vec![tag("Work"), tag("Personal")]),
    ] {
        let mut w = world(TreeHash::Blake3);
        let msp_a = test_key("msp-a.example");
        let carol = "tel:+14155550177";
        let entry = Entry::Claim(Claim {
            sii: sii(carol),
            msp: Name::parse("msp-a.example").unwrap(),
            ssi: Ssi::parse("mimi://msp-a.example/u/carol").unwrap(),
            time: T,
            expires: None,
            tags,
            attestation: None,
        });
        // A dishonest log stores it (an honest one refuses it: see tests/entries.rs).
        w.log.push(sign_unchecked(entry, &msp_a));
        let answer = w.log.lookup(&sii(carol));
        assert_eq!(answer.entries.len(), 1, "{what}");
        let err = verify_lookup_at(&answer, &w.log.trust(), T).expect_err(what);
        assert_eq!(err.step(), Step::Entries, "{what}: {err}");
        assert_eq!(
            err.problem(),
            Some(ProblemType::NonCanonical),
            "{what}: {err}"
        );

        // Control: the same claim with its tags as a set verifies.
        let honest = claim(
            &msp_a,
            carol,
            "mimi://msp-a.example/u/carol2",
            T,
            &["Work", "Personal"],
            None,
        );
        let mut w = world(TreeHash::Blake3);
        w.log.submit(honest.bytes()).expect("admitted");
        let ok = verify_lookup_at(&w.log.lookup(&sii(carol)), &w.log.trust(), T).expect("verifies");
        assert_eq!(ok.mappings.len(), 1);
    }
    // Rejections that are not about an entry's admission carry no problem type.
    let w = world(TreeHash::Blake3);
    let mut a = w.log.lookup(&sii(ALICE));
    a.entries[0].inclusion[0][0] ^= 1;
    let err = verify_lookup_at(&a, &w.log.trust(), T).unwrap_err();
    assert_eq!((err.step(), err.problem()), (Step::Inclusion, None));
}

fn reject(answer: &LookupAnswer, trust: &Trust) -> Step {
    verify_lookup_at(answer, trust, T)
        .expect_err("must be rejected")
        .step()
}

#[test]
fn every_lie_is_rejected_at_its_step() {
    let w = world(TreeHash::Blake3);
    let trust = w.log.trust();
    let honest = w.log.lookup(&sii(BOB));
    assert!(verify_lookup_at(&honest, &trust, T).is_ok());

    // A dropped entry: the mappings no longer follow.
    let mut a = honest.clone();
    a.entries.remove(0);
    assert_eq!(reject(&a, &trust), Step::Fold);

    // An extra entry for another SII (with a valid proof).
    let mut a = honest.clone();
    let other = w.log.lookup(&sii(ALICE));
    a.entries.insert(0, other.entries[0].clone());
    assert_eq!(reject(&a, &trust), Step::Entries);

    // A flipped proof byte, in an entry and in a key leaf.
    let mut a = honest.clone();
    a.entries[1].inclusion[2][7] ^= 0x10;
    assert_eq!(reject(&a, &trust), Step::Inclusion);
    let mut a = honest.clone();
    a.keys[0].inclusion[0][0] ^= 1;
    assert_eq!(reject(&a, &trust), Step::Inclusion);

    // A checkpoint signed by another key with the same name.
    let mut a = honest.clone();
    let cp = SignedCheckpoint::parse(honest.checkpoint.as_bytes()).unwrap();
    let mut other_key = ledger_core::key::SignerKey::from_seed(
        "localhost/mimi-ledger",
        ledger_core::key::KeyAlg::Ed25519,
        [3; 32],
    )
    .unwrap();
    a.checkpoint = String::from_utf8(
        SignedCheckpoint::sign(cp.checkpoint.clone(), &other_key)
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(reject(&a, &trust), Step::Checkpoint);
    other_key = test_key("other-log.example");
    let mut moved = cp.checkpoint.clone();
    moved.origin = "other-log.example".into();
    a.checkpoint = String::from_utf8(
        SignedCheckpoint::sign(moved, &other_key)
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(reject(&a, &trust), Step::Checkpoint);

    // A stale checkpoint below what this client has seen.
    let mut t2 = trust.clone();
    t2.min_size = cp.checkpoint.size + 1;
    assert_eq!(reject(&honest, &t2), Step::Rollback);

    // Mappings and status that disagree with the entries.
    let mut a = honest.clone();
    a.mappings.pop();
    assert_eq!(reject(&a, &trust), Step::Fold);
    let mut a = honest.clone();
    a.status = Status::OptedOut;
    assert_eq!(reject(&a, &trust), Step::Fold);
    let mut a = honest.clone();
    a.mappings.reverse();
    assert_eq!(reject(&a, &trust), Step::Fold);

    // A missing key leaf: the signer cannot be checked.
    let mut a = honest.clone();
    a.keys.pop();
    assert_eq!(reject(&a, &trust), Step::Entries);

    // A claim passed off as a key leaf.
    let mut a = honest.clone();
    a.keys.push(a.entries[0].clone());
    assert_eq!(reject(&a, &trust), Step::Keys);

    // Entries out of order / duplicated.
    let mut a = honest.clone();
    a.entries.swap(0, 1);
    assert_eq!(reject(&a, &trust), Step::Entries);
    let mut a = honest.clone();
    let dup = a.entries[0].clone();
    a.entries.insert(0, dup);
    assert_eq!(reject(&a, &trust), Step::Entries);

    // A leaf text changed (the inclusion proof then fails).
    let mut a = honest.clone();
    a.entries[0].leaf = a.entries[0].leaf.replace("Work", "Home");
    assert_eq!(reject(&a, &trust), Step::Inclusion);

    // An answer about another SII than the one asked.
    let err = verify_lookup_for(&sii(ALICE), &honest, &trust, T).unwrap_err();
    assert_eq!(err.step(), Step::Entries);
    // A non-canonical SII in the answer.
    let mut a = honest.clone();
    a.sii = "tel:+1 415 555 0199".into();
    assert_eq!(reject(&a, &trust), Step::Malformed);
}

#[test]
fn client_policy_attestations_and_trusted_provers() {
    let w = world(TreeHash::Blake3);
    let mut trust = w.log.trust();
    trust.require_attestation = true;
    // Alice's claim is attested; Bob's are not.
    assert!(check_with(&w, ALICE, &trust).is_ok());
    assert_eq!(
        check_with(&w, BOB, &trust).unwrap_err().step(),
        Step::Entries
    );
    trust.provers = vec![test_key("other-prover.example").verifier()];
    assert_eq!(
        check_with(&w, ALICE, &trust).unwrap_err().step(),
        Step::Entries
    );
    trust.provers = vec![test_key("prover.example").verifier()];
    assert!(check_with(&w, ALICE, &trust).is_ok());
}

fn check_with(
    w: &World,
    who: &str,
    trust: &Trust,
) -> Result<ledger_core::lookup::Verified, ledger_core::lookup::Rejection> {
    verify_lookup_at(&w.log.lookup(&sii(who)), trust, T)
}

#[test]
fn witness_quorum_and_age() {
    let w = world(TreeHash::Blake3);
    let witnesses: Vec<_> = ["w1.example", "w2.example", "w3.example"]
        .map(test_witness_key)
        .into();
    let honest = w.log.lookup(&sii(ALICE));
    let mut cp = SignedCheckpoint::parse(honest.checkpoint.as_bytes()).unwrap();
    let text = cp.checkpoint.to_text();
    for (i, wk) in witnesses.iter().take(2).enumerate() {
        cp.add_cosignature(cosign(wk, &text, T - 100 + i as u64).unwrap())
            .unwrap();
    }
    let mut answer = honest.clone();
    answer.checkpoint = String::from_utf8(cp.to_bytes()).unwrap();

    let mut trust = w.log.trust();
    trust.log.witnesses = witnesses.iter().map(|k| k.verifier()).collect();
    trust.log.quorum = 2;
    let v = verify_lookup_at(&answer, &trust, T).unwrap();
    assert_eq!(v.cosigners.len(), 2);
    trust.log.quorum = 3;
    assert_eq!(reject(&answer, &trust), Step::Witnesses);
    trust.log.quorum = 2;
    trust.log.max_age_s = Some(50);
    assert_eq!(reject(&answer, &trust), Step::Witnesses);
    trust.log.max_age_s = Some(500);
    assert!(verify_lookup_at(&answer, &trust, T).is_ok());
    // The uncosigned checkpoint fails a quorum of 1.
    trust.log.quorum = 1;
    assert_eq!(reject(&honest, &trust), Step::Witnesses);
    let _ = Checkpoint::parse_text(&text).unwrap();
}
