//! `/v1/lookup` against the real `log-server` (issue 3, SPEC §5 lookup and §6 client verification):
//! answers for zero, one and many mappings, after MSP and prover revocations, an opt-out, a claim
//! after the opt-out and a key rotation all pass `ledger_core::lookup::verify_lookup_at` — all five
//! steps, so each answer is complete as of its checkpoint (SPEC §9) — with the status and mappings
//! this test expects from what it submitted; a non-canonical `sii` query gets the right problem.

use ledger_core::api::LookupAnswer;
use ledger_core::entry::{Action, Leaf, Role};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::lookup::{verify_lookup_at, verify_lookup_for, Step, Trust, Verified};
use ledger_core::sii::Sii;
use ledger_core::state::Status;
use ledger_core::testkit::{attestation, claim, optout, revoke, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{now, Options, TestLog};

/// Asks for `sii`, verifies the answer per SPEC §6 and checks it against what the test expects.
fn check(
    log: &TestLog,
    trust: &Trust,
    sii: &str,
    status: Status,
    mappings: &[u64],
    entries: &[u64],
) -> (LookupAnswer, Verified) {
    let answer = log.lookup(sii);
    let query = Sii::parse(sii).unwrap();
    let verified = verify_lookup_for(&query, &answer, trust, now())
        .unwrap_or_else(|e| panic!("lookup {sii} does not verify: {e}\n{answer:#?}"));
    assert_eq!(answer.status, status, "{sii}: status");
    assert_eq!(verified.status, status, "{sii}: verified status");
    assert_eq!(answer.mappings, mappings, "{sii}: mappings");
    assert_eq!(
        verified
            .mappings
            .iter()
            .map(|m| m.index)
            .collect::<Vec<_>>(),
        mappings,
        "{sii}: verified mappings"
    );
    assert_eq!(
        answer.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        entries,
        "{sii}: entries"
    );
    // The answer's checkpoint is the log's, and not older than anything submitted so far.
    let cp = log.verify_checkpoint(answer.checkpoint.as_bytes());
    let last = entries.last().copied().unwrap_or(0);
    assert!(
        cp.checkpoint.size > last || entries.is_empty(),
        "{sii}: stale checkpoint"
    );
    // Complete as of that checkpoint (SPEC §6 step 5): the log ends every batch with a map leaf,
    // so the map leaf that proved it is the checkpoint's last leaf.
    assert_eq!(
        verified.map_index,
        Some(cp.checkpoint.size - 1),
        "{sii}: completeness"
    );
    assert_eq!(answer.map.as_ref().map(|m| m.index), verified.map_index);
    (answer, verified)
}

fn index(log: &TestLog, leaf: &Leaf) -> u64 {
    log.submit_ok(leaf).index
}

#[test]
fn lookup_answers_verify_through_claims_revokes_and_optouts() {
    let th = TreeHash::Sha256;
    let log = TestLog::start(Options::new(th));
    let trust = Trust::new(log.vkey().clone(), th);
    assert_eq!(trust.log.log_key.to_string(), log.info().vkey);

    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let prover = test_key("prover.example");
    let e_a = log
        .enroll(Role::Msp, &msp_a)
        .expect("enroll answers an index");
    let e_b = log
        .enroll(Role::Msp, &msp_b)
        .expect("enroll answers an index");
    let e_p = log
        .enroll(Role::Prover, &prover)
        .expect("enroll answers an index");
    let t = now();

    // ---- zero: an SII nobody claimed is `none` with no entries (SPEC §5: no entry is 200 none).
    let (answer, _) = check(
        &log,
        &trust,
        "mailto:nobody@example.com",
        Status::None,
        &[],
        &[],
    );
    assert!(answer.keys.is_empty(), "no entries need no keys");
    check(&log, &trust, "tel:+41446681800", Status::None, &[], &[]);

    // ---- one mapping.
    let one = "tel:+14155550100";
    let alice = "mimi://msp-a.example/u/alice";
    let c1 = index(&log, &claim(&msp_a, one, alice, t, &["Personal"], None));
    let (answer, verified) = check(&log, &trust, one, Status::Mapped, &[c1], &[c1]);
    assert_eq!(verified.mappings[0].msp.as_str(), "msp-a.example");
    assert_eq!(verified.mappings[0].ssi.as_str(), alice);
    assert_eq!(verified.mappings[0].tags.len(), 1);
    assert_eq!(
        answer.keys.iter().map(|k| k.index).collect::<Vec<_>>(),
        vec![e_a],
        "keys: msp-a's enroll"
    );

    // ---- many mappings: two MSPs, one attested, one with two users.
    let many = "mailto:carol@example.org";
    let carol_a = "mimi://msp-a.example/u/carol";
    let carol_a2 = "mimi://msp-a.example/u/carol-work";
    let carol_b = "mimi://msp-b.example/u/carol";
    let att = attestation(
        &prover,
        Action::Claim,
        many,
        Some(("msp-a.example", carol_a)),
        t - 60,
    );
    let m1 = index(
        &log,
        &claim(&msp_a, many, carol_a, t, &["Personal"], Some(att)),
    );
    let m2 = index(&log, &claim(&msp_b, many, carol_b, t, &[], None));
    let m3 = index(
        &log,
        &claim(&msp_a, many, carol_a2, t, &["Work", "Business"], None),
    );
    let (answer, verified) = check(
        &log,
        &trust,
        many,
        Status::Mapped,
        &[m1, m2, m3],
        &[m1, m2, m3],
    );
    let mut keys: Vec<u64> = answer.keys.iter().map(|k| k.index).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![e_a, e_b, e_p],
        "keys: both MSPs and the attesting prover"
    );
    assert_eq!(
        verified.mappings[0].attested_by.as_deref(),
        Some("prover.example")
    );
    // A client that requires attestations refuses this answer (two claims are unattested).
    let strict = Trust {
        require_attestation: true,
        ..trust.clone()
    };
    let err = verify_lookup_at(&answer, &strict, now())
        .expect_err("unattested claims under a strict client");
    assert_eq!(err.step(), Step::Entries);
    // Honest answers are not accepted blindly: drop one entry and the fold no longer matches.
    let mut lie = answer.clone();
    lie.entries.remove(1);
    let err = verify_lookup_at(&lie, &trust, now()).expect_err("an answer with a hidden entry");
    assert_eq!(err.step(), Step::Fold);

    // ---- revoke by the MSP.
    let r1 = index(
        &log,
        &revoke(&msp_a, "msp-a.example", many, carol_a2, t, None),
    );
    check(
        &log,
        &trust,
        many,
        Status::Mapped,
        &[m1, m2],
        &[m1, m2, m3, r1],
    );

    // ---- revoke by a prover, with a revoke attestation (R10).
    let ratt = attestation(
        &prover,
        Action::Revoke,
        many,
        Some(("msp-b.example", carol_b)),
        t - 30,
    );
    let r2 = index(
        &log,
        &revoke(&prover, "msp-b.example", many, carol_b, t, Some(ratt)),
    );
    check(
        &log,
        &trust,
        many,
        Status::Mapped,
        &[m1],
        &[m1, m2, m3, r1, r2],
    );

    // ---- revoking the only mapping: `none`, but with entries.
    let r3 = index(&log, &revoke(&msp_a, "msp-a.example", one, alice, t, None));
    check(&log, &trust, one, Status::None, &[], &[c1, r3]);

    // ---- opt-out: `opted-out` (R5), distinct from `none`.
    let o1 = index(&log, &optout(&prover, many, t));
    let (_, verified) = check(
        &log,
        &trust,
        many,
        Status::OptedOut,
        &[],
        &[m1, m2, m3, r1, r2, o1],
    );
    assert!(verified.mappings.is_empty());
    // An opt-out of an SII that was never claimed.
    let lonely = "mailto:lonely@example.net";
    let o2 = index(&log, &optout(&prover, lonely, t));
    check(&log, &trust, lonely, Status::OptedOut, &[], &[o2]);

    // ---- a claim after the opt-out maps it again.
    let back = "mimi://msp-b.example/u/carol-again";
    let c2 = index(&log, &claim(&msp_b, many, back, t, &[], None));
    check(
        &log,
        &trust,
        many,
        Status::Mapped,
        &[c2],
        &[m1, m2, m3, r1, r2, o1, c2],
    );

    // ---- key rotation: msp-a enrolls a new key; claims need the key enrolled at their index.
    let msp_a2 = SignerKey::from_seed("msp-a.example", KeyAlg::Ed25519, [42u8; 32]).unwrap();
    let e_a2 = log
        .enroll(Role::Msp, &msp_a2)
        .expect("enroll answers an index");
    let rotated = "tel:+442071838750";
    let old_key_claim = claim(&msp_a, rotated, alice, t, &[], None);
    log.add_raw(old_key_claim.bytes().to_vec()).assert_problem(
        403,
        "unknown-signer",
        "claim with msp-a's rotated-out key",
    );
    let c3 = index(&log, &claim(&msp_a2, rotated, alice, t, &[], None));
    let (answer, _) = check(&log, &trust, rotated, Status::Mapped, &[c3], &[c3]);
    let keys: Vec<u64> = answer.keys.iter().map(|k| k.index).collect();
    assert!(
        keys.contains(&e_a2),
        "keys must hold the new enroll leaf {e_a2}, have {keys:?}"
    );
    // The earlier answer for `one` (signed with the old key) still verifies with the new registry.
    check(&log, &trust, one, Status::None, &[], &[c1, r3]);
}

#[test]
fn lookup_query_problems() {
    let log = TestLog::start(Options::default());
    log.lookup_raw("mailto:Alice@EXAMPLE.COM").assert_problem(
        422,
        "non-canonical",
        "upper-case mailto domain",
    );
    log.lookup_raw("tel:+1 (415) 555-0100").assert_problem(
        422,
        "non-canonical",
        "formatted phone number",
    );
    log.lookup_raw("TEL:+14155550100")
        .assert_problem(422, "non-canonical", "upper-case scheme");
    log.lookup_raw("tel:+1415")
        .assert_problem(422, "invalid-sii", "too-short phone number");
    log.lookup_raw("xmpp:alice@example.com")
        .assert_problem(422, "invalid-sii", "unknown scheme");
    log.get("/v1/lookup")
        .assert_problem(400, "bad-request", "no sii parameter");
}
