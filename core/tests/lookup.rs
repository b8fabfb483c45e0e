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
    log.seal();
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
    w.log.seal();
    let v = check(&w, BOB).unwrap();
    assert_eq!(v.mappings.len(), 1);
    assert_eq!(v.mappings[0].msp.as_str(), "msp-b.example");

    w.log.submit(optout(&prover, ALICE, T + 2).bytes()).unwrap();
    w.log.seal();
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
    w.log.seal();
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
    w.log.seal();
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
        w.log.seal();
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
        w.log.seal();
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

/// Re-folds `a` from its (edited) entries, as a lying DP would, so that steps 1–4 still pass.
fn refold(a: &mut LookupAnswer) {
    let entries: Vec<(u64, Entry)> = a
        .entries
        .iter()
        .map(|p| {
            let leaf = ledger_core::entry::Leaf::parse(p.leaf.as_bytes()).unwrap();
            (p.index, leaf.into_entry())
        })
        .collect();
    let state = ledger_core::state::fold(entries.iter().map(|(i, e)| (*i, e)), T);
    a.status = state.status;
    a.mappings = state.mapping_indices();
}

/// SPEC §6 step 5 / §9: hiding the newest entry (with status and mappings fixed up to what the
/// rest folds to), answering "none" for a mapped number, and hiding a signer's enrollment are each
/// rejected at `completeness` — before the map, every one of these answers verified.
#[test]
fn hidden_entries_fake_none_and_hidden_enrollments_fail_completeness() {
    for hash in [TreeHash::Blake3, TreeHash::Sha256] {
        let mut w = world(hash);
        let msp_a = test_key("msp-a.example");
        let prover = test_key("prover.example");
        w.log.submit(optout(&prover, ALICE, T + 2).bytes()).unwrap();
        w.log.seal();
        let trust = w.log.trust();
        let honest = w.log.lookup(&sii(ALICE));
        let v = verify_lookup_at(&honest, &trust, T).unwrap();
        assert_eq!(v.status, Status::OptedOut);
        assert_eq!(v.map_index, Some(w.log.size() - 1));

        // The newest entry (the opt-out) dropped, status and mappings fixed: steps 1–4 pass.
        let mut a = honest.clone();
        a.entries.pop();
        refold(&mut a);
        assert_eq!(a.status, Status::Mapped);
        let err = verify_lookup_at(&a, &trust, T).unwrap_err();
        assert_eq!(err.step(), Step::Completeness, "{err}");
        assert_eq!(err.step().as_str(), "completeness");
        assert_eq!(err.step().number(), 5);

        // "none" for a mapped number, with no entries and no keys.
        let mapped = w.log.lookup(&sii(BOB));
        let mut a = mapped.clone();
        a.entries.clear();
        a.keys.clear();
        refold(&mut a);
        a.map.as_mut().unwrap().signers.clear();
        assert_eq!(a.status, Status::None);
        assert_eq!(reject(&a, &trust), Step::Completeness);
        // … even with the absence proof of a number that really is unmapped.
        let none = w.log.lookup(&sii("tel:+14155550142"));
        assert!(verify_lookup_at(&none, &trust, T).is_ok());
        a.map.as_mut().unwrap().sii = none.map.as_ref().unwrap().sii.clone();
        assert_eq!(reject(&a, &trust), Step::Completeness);

        // msp-a rotates its key after a compromise; a dishonest log then takes a claim signed with
        // the old key. Shown in full, the answer fails at the entries (the old key is no longer
        // valid there); a DP that hides the re-enrollment fails at completeness instead.
        let msp_a2 = ledger_core::key::SignerKey::from_seed(
            "msp-a.example",
            ledger_core::key::KeyAlg::Ed25519,
            [9; 32],
        )
        .unwrap();
        let reenroll = w.log.enroll(Role::Msp, &msp_a2);
        w.log.push(claim(
            &msp_a,
            ALICE,
            "mimi://msp-a.example/u/mallory",
            T + 3,
            &[],
            None,
        ));
        w.log.seal();
        let honest = w.log.lookup(&sii(ALICE));
        assert!(honest.keys.iter().any(|k| k.index == reenroll));
        assert_eq!(reject(&honest, &trust), Step::Entries);
        let mut a = honest.clone();
        a.keys.retain(|k| k.index != reenroll);
        let err = verify_lookup_at(&a, &trust, T).unwrap_err();
        assert_eq!(err.step(), Step::Completeness, "{err}");
        assert!(err.detail().contains("msp-a.example"), "{err}");
    }
}

/// Every part of the `map` field is checked: its presence, the map leaf's place, kind, size,
/// signature and inclusion, and each proof's siblings and signer list.
#[test]
fn every_map_lie_is_rejected_at_completeness() {
    let mut w = world(TreeHash::Blake3);
    let trust = w.log.trust();
    let honest = w.log.lookup(&sii(BOB));
    let m = honest.map.clone().unwrap();
    assert!(!m.signers.is_empty());
    let lie = |f: &dyn Fn(&mut LookupAnswer)| {
        let mut a = honest.clone();
        f(&mut a);
        reject(&a, &trust)
    };
    assert_eq!(lie(&|a| a.map = None), Step::Completeness);
    assert_eq!(
        lie(&|a| a.map.as_mut().unwrap().index -= 1),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| a.map.as_mut().unwrap().inclusion[0][3] ^= 1),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| a.map.as_mut().unwrap().sii.siblings[0][0] ^= 1),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| {
            a.map.as_mut().unwrap().sii.siblings.pop();
        }),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| a.map.as_mut().unwrap().signers[0].proof.siblings[1][31] ^= 0x80),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| {
            a.map.as_mut().unwrap().signers.pop();
        }),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| {
            let s = a.map.as_ref().unwrap().signers[0].clone();
            a.map.as_mut().unwrap().signers.push(s);
        }),
        Step::Completeness
    );
    assert_eq!(
        lie(&|a| a.map.as_mut().unwrap().signers[0].name = "prover.example".into()),
        Step::Completeness
    );
    // A claim passed off as the map leaf (with its valid inclusion proof).
    assert_eq!(
        lie(&|a| {
            let e = a.entries[0].clone();
            let m = a.map.as_mut().unwrap();
            m.leaf = e.leaf;
            m.inclusion = e.inclusion;
        }),
        Step::Completeness
    );

    // A map leaf signed by another key, or one whose size is not its index: append such a leaf
    // to a dishonest log and answer against that checkpoint.
    let sealed = w.log.size();
    let bogus = ledger_core::testkit::sign_unchecked(
        Entry::Map(ledger_core::entry::MapLeaf {
            size: sealed,
            root: [0; 32],
        }),
        &test_key("localhost/mimi-ledger-not"),
    );
    let mut w2 = world(TreeHash::Blake3);
    w2.log.push(bogus);
    assert_eq!(
        reject(&w2.log.lookup(&sii(BOB)), &trust),
        Step::Completeness
    );
    let mut w3 = world(TreeHash::Blake3);
    let root = w3.log.map().root();
    let leaf = w3.log.map_leaf(w3.log.size() + 1, root);
    w3.log.push(leaf);
    assert_eq!(
        reject(&w3.log.lookup(&sii(BOB)), &trust),
        Step::Completeness
    );
    // A log that did not end its batch with a map leaf.
    w.log
        .submit(
            claim(
                &test_key("msp-b.example"),
                BOB,
                "mimi://msp-b.example/u/b2",
                T,
                &[],
                None,
            )
            .bytes(),
        )
        .unwrap();
    let err = verify_lookup_at(&w.log.lookup(&sii(BOB)), &trust, T).unwrap_err();
    assert_eq!(err.step(), Step::Completeness);
    assert!(err.detail().contains("not a map leaf"), "{err}");
}

/// The empty log's checkpoint (size 0) has no map leaf, and "none" against it is complete.
#[test]
fn the_empty_checkpoint_needs_no_map() {
    let log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    let a = log.lookup(&sii(ALICE));
    assert!(a.map.is_none());
    let v = verify_lookup_at(&a, &log.trust(), T).unwrap();
    assert_eq!((v.status, v.map_index), (Status::None, None));
}
