//! Entries (SPEC §3): one byte form, strict parsing, and admission reasons that map to SPEC §5 slugs.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_core::admission::{admit, verify_entry, KeyRegistry, Policy, Refusal};
use ledger_core::entry::{tag_set, Action, Entry, EntryError, Leaf, Role, MAX_LEAF_BYTES};
use ledger_core::key::SignerKey;
use ledger_core::problem::ProblemType;
use ledger_core::sii::Tag;
use ledger_core::testkit::{
    attestation, claim, claim_syntax_cases, optout, revoke, test_key, MemLog,
};
use ledger_core::TreeHash;
use proptest::prelude::*;

const T: u64 = 1_764_158_400;
const ALICE: &str = "tel:+14155550100";
const ALICE_SSI: &str = "mimi://msp-a.example/u/alice";

/// Signs arbitrary body text as a note, bypassing every check of ours (to build bad leaves).
fn raw_note(text: &str, key: &SignerKey) -> Vec<u8> {
    let sig = key.sign(text.as_bytes());
    let mut blob = key.key_id().to_vec();
    blob.extend_from_slice(&sig);
    format!("{text}\n\u{2014} {} {}\n", key.name(), B64.encode(blob)).into_bytes()
}

struct World {
    log: MemLog,
    msp_a: SignerKey,
    msp_b: SignerKey,
    prover: SignerKey,
}

fn world() -> World {
    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    log.now = T;
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp_a);
    log.enroll(Role::Msp, &msp_b);
    log.enroll(Role::Prover, &prover);
    World {
        log,
        msp_a,
        msp_b,
        prover,
    }
}

fn claim_text(lines: &[&str]) -> String {
    let mut s = String::from("mimi-ledger/v1 claim\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn good_claim_lines() -> Vec<String> {
    vec![
        format!("sii {ALICE}"),
        "msp msp-a.example".into(),
        format!("ssi {ALICE_SSI}"),
        format!("time {T}"),
        "tag Personal".into(),
    ]
}

fn submit_text(w: &mut World, text: &str) -> Result<u64, Refusal> {
    let bytes = raw_note(text, &w.msp_a);
    w.log.submit(&bytes)
}

fn slug_of(r: Result<u64, Refusal>) -> &'static str {
    r.expect_err("must be refused").problem().slug()
}

#[test]
fn a_good_claim_is_admitted_and_has_one_byte_form() {
    let mut w = world();
    let lines = good_claim_lines();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let text = claim_text(&refs);
    let bytes = raw_note(&text, &w.msp_a);
    let leaf = Leaf::parse(&bytes).unwrap();
    assert_eq!(leaf.entry().to_text(), text);
    assert_eq!(Entry::parse_text(&text).unwrap(), *leaf.entry());
    assert_eq!(leaf.note().to_bytes(), bytes);
    assert_eq!(w.log.submit(&bytes).unwrap(), 3);
}

#[test]
fn every_kind_round_trips() {
    let w = world();
    let att = attestation(
        &w.prover,
        Action::Claim,
        ALICE,
        Some(("msp-a.example", ALICE_SSI)),
        T - 5,
    );
    let ratt = attestation(
        &w.prover,
        Action::Revoke,
        ALICE,
        Some(("msp-a.example", ALICE_SSI)),
        T - 5,
    );
    let leaves = vec![
        claim(
            &w.msp_a,
            ALICE,
            ALICE_SSI,
            T,
            &["Personal", "work_2"],
            Some(att),
        ),
        claim(
            &w.msp_b,
            "mailto:bob@example.com",
            "mimi://msp-b.example/u/bob",
            T,
            &[],
            None,
        ),
        revoke(&w.msp_a, "msp-a.example", ALICE, ALICE_SSI, T, None),
        revoke(&w.prover, "msp-a.example", ALICE, ALICE_SSI, T, Some(ratt)),
        optout(&w.prover, ALICE, T),
        w.log.leaf(0).clone(),
    ];
    for leaf in leaves {
        let bytes = leaf.bytes().to_vec();
        let parsed = Leaf::parse(&bytes).unwrap();
        assert_eq!(parsed, leaf);
        assert_eq!(parsed.note().to_bytes(), bytes);
        assert_eq!(
            Entry::parse_text(&parsed.entry().to_text()).unwrap(),
            *parsed.entry()
        );
    }
}

#[test]
fn non_canonical_inputs_are_refused_with_the_right_reason() {
    // The parser's refusals (second byte forms of a claim, and things that are not claims), from
    // the one table the monitor's batch path is checked against too.
    let mut w = world();
    for (what, bytes, slug) in claim_syntax_cases(&w.msp_a, &w.msp_b, T) {
        let got = slug_of(w.log.submit(&bytes));
        assert_eq!(got, slug, "{what}: {:?}", String::from_utf8_lossy(&bytes));
    }
    assert_eq!(w.log.size(), 3, "nothing refused was stored");
}

/// SPEC §3: tags are a set written in strictly increasing byte order. A repeated or reordered tag
/// would be a second byte form of the same claim (a second leaf hash for one claim), so both are
/// refused as `non-canonical` by the strict parser (hence by admission and by every verifier), and
/// no builder of ours can sign one.
#[test]
fn repeated_or_unordered_tags_are_non_canonical() {
    let mut w = world();
    let with_tags = |tags: &[&str]| {
        let mut l = good_claim_lines();
        l.retain(|line| !line.starts_with("tag "));
        l.extend(tags.iter().map(|t| format!("tag {t}")));
        claim_text(&l.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let duplicates: [&[&str]; 2] = [&["Personal", "Personal"], &["Family", "Work", "Work"]];
    for tags in duplicates {
        let r = submit_text(&mut w, &with_tags(tags));
        assert!(
            matches!(r, Err(Refusal::Entry(EntryError::DuplicateTag { .. }))),
            "{tags:?}: {r:?}"
        );
        assert_eq!(slug_of(r), "non-canonical", "{tags:?}");
    }
    // Byte order, not alphabetical or case-folded: `P` (0x50) sorts before `p` (0x70) and `W`
    // before `a`.
    let unordered: [&[&str]; 3] = [
        &["Work", "Personal"],
        &["personal", "Personal"],
        &["a", "Work"],
    ];
    for tags in unordered {
        let r = submit_text(&mut w, &with_tags(tags));
        assert!(
            matches!(r, Err(Refusal::Entry(EntryError::TagOutOfOrder { .. }))),
            "{tags:?}: {r:?}"
        );
        assert_eq!(slug_of(r), "non-canonical", "{tags:?}");
    }
    // The monitor and the client parse leaves with the same parser: same refusal, same slug.
    let raw = raw_note(&with_tags(&["Work", "Personal"]), &w.msp_a);
    assert_eq!(
        Leaf::parse(&raw).unwrap_err().problem(),
        ProblemType::NonCanonical
    );
    assert_eq!(w.log.size(), 3, "nothing refused was stored");

    // Controls: the same tags as a set in byte order are admitted.
    for tags in [
        &["Personal", "Work"][..],
        &["Personal", "personal"],
        &["Work", "a"],
    ] {
        submit_text(&mut w, &with_tags(tags)).unwrap_or_else(|e| panic!("{tags:?}: {e}"));
    }

    // Builders: `tag_set` sorts and dedupes; the testkit builder uses it; `Leaf::sign` refuses to
    // sign tags in any other order, so no honest caller produces a refused leaf.
    let set = tag_set(["Work", "Personal", "Work"].map(|t| Tag::parse(t).unwrap()));
    assert_eq!(
        set.iter().map(Tag::as_str).collect::<Vec<_>>(),
        ["Personal", "Work"]
    );
    let built = claim(
        &w.msp_a,
        ALICE,
        ALICE_SSI,
        T + 1,
        &["Work", "Personal", "Work"],
        None,
    );
    assert!(built.note().text().ends_with("tag Personal\ntag Work\n"));
    w.log
        .submit(built.bytes())
        .expect("a built claim is admitted");
    let Entry::Claim(mut c) = built.into_entry() else {
        panic!("a claim")
    };
    c.tags.reverse();
    assert!(matches!(
        Leaf::sign(Entry::Claim(c.clone()), &w.msp_a),
        Err(EntryError::TagOutOfOrder { .. })
    ));
    c.tags = vec![Tag::parse("Personal").unwrap(); 2];
    assert!(matches!(
        Leaf::sign(Entry::Claim(c), &w.msp_a),
        Err(EntryError::DuplicateTag { .. })
    ));
}

#[test]
fn signature_and_enrollment_refusals() {
    let mut w = world();
    let t = T;
    // Right name, wrong key.
    let impostor =
        SignerKey::from_seed("msp-a.example", ledger_core::key::KeyAlg::Ed25519, [7; 32]).unwrap();
    let r = w
        .log
        .submit(claim(&impostor, ALICE, ALICE_SSI, t, &[], None).bytes());
    assert!(matches!(r, Err(Refusal::NotEnrolledKey { .. })), "{r:?}");
    assert_eq!(slug_of(r), "unknown-signer");
    // Unenrolled MSP.
    let rogue = test_key("rogue.example");
    let r = w
        .log
        .submit(claim(&rogue, ALICE, "mimi://rogue.example/u/x", t, &[], None).bytes());
    assert_eq!(slug_of(r), "unknown-signer");
    // A claim for msp-a signed by msp-b's key.
    let text = claim_text(
        &good_claim_lines()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let r = w.log.submit(&raw_note(&text, &w.msp_b));
    assert!(matches!(r, Err(Refusal::WrongSigner { .. })), "{r:?}");
    assert_eq!(slug_of(r), "bad-signature");
    // A flipped signature byte.
    let mut bytes = claim(&w.msp_a, ALICE, ALICE_SSI, t, &[], None)
        .bytes()
        .to_vec();
    let n = bytes.len();
    bytes[n - 6] = if bytes[n - 6] == b'A' { b'B' } else { b'A' };
    assert_eq!(slug_of(w.log.submit(&bytes)), "bad-signature");
    // A prover may not claim; an MSP may not opt out.
    let r = w
        .log
        .submit(claim(&w.prover, ALICE, "mimi://prover.example/u/x", t, &[], None).bytes());
    assert_eq!(slug_of(r), "unknown-signer");
    let text = optout(&w.prover, ALICE, t).entry().to_text();
    assert_eq!(
        slug_of(w.log.submit(&raw_note(&text, &w.msp_a))),
        "unknown-signer"
    );
    // The log key signs enrolls; an MSP may not.
    let enroll_text = w.log.leaf(0).entry().to_text();
    assert_eq!(
        slug_of(w.log.submit(&raw_note(&enroll_text, &w.msp_a))),
        "bad-signature"
    );
    assert_eq!(w.log.size(), 3);
}

#[test]
fn attestation_refusals() {
    let mut w = world();
    let t = T;
    let pair = Some(("msp-a.example", ALICE_SSI));
    let good = attestation(&w.prover, Action::Claim, ALICE, pair, t - 60);
    let cases = vec![
        (
            "wrong action",
            attestation(&w.prover, Action::Revoke, ALICE, pair, t - 60),
        ),
        (
            "other SII",
            attestation(&w.prover, Action::Claim, "tel:+14155550101", pair, t - 60),
        ),
        (
            "other MSP",
            attestation(
                &w.prover,
                Action::Claim,
                ALICE,
                Some(("msp-b.example", ALICE_SSI)),
                t - 60,
            ),
        ),
        (
            "other SSI",
            attestation(
                &w.prover,
                Action::Claim,
                ALICE,
                Some(("msp-a.example", "mimi://msp-a.example/u/eve")),
                t - 60,
            ),
        ),
        (
            "issued after the entry",
            attestation(&w.prover, Action::Claim, ALICE, pair, t + 1),
        ),
        (
            "expired",
            attestation(&w.prover, Action::Claim, ALICE, pair, t - 86_401),
        ),
        (
            "unenrolled prover",
            attestation(
                &test_key("fake-prover.example"),
                Action::Claim,
                ALICE,
                pair,
                t - 60,
            ),
        ),
        (
            "signed by an MSP",
            attestation(&w.msp_a, Action::Claim, ALICE, pair, t - 60),
        ),
    ];
    for (what, att) in cases {
        let r = w
            .log
            .submit(claim(&w.msp_a, ALICE, ALICE_SSI, t, &[], Some(att)).bytes());
        assert_eq!(slug_of(r), "bad-attestation", "{what}");
    }
    // Garbage inside the attestation field.
    let mut lines = good_claim_lines();
    lines.push(format!("attestation {}", B64.encode("not a note")));
    let text = claim_text(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(slug_of(submit_text(&mut w, &text)), "bad-attestation");
    // Non-canonical base64 (missing padding) is a second encoding of the same attestation.
    let b64 = good.to_base64();
    let unpadded = b64.trim_end_matches('=');
    if unpadded != b64 {
        let mut lines = good_claim_lines();
        lines.push(format!("attestation {unpadded}"));
        let text = claim_text(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(slug_of(submit_text(&mut w, &text)), "non-canonical");
    }
    // Policy: required attestation.
    w.log.policy.require_attestation = true;
    let r = w
        .log
        .submit(claim(&w.msp_a, ALICE, ALICE_SSI, t, &[], None).bytes());
    assert_eq!(slug_of(r), "attestation-required");
    // A prover revoke needs an attestation.
    let r = w
        .log
        .submit(revoke(&w.prover, "msp-a.example", ALICE, ALICE_SSI, t, None).bytes());
    assert_eq!(slug_of(r), "attestation-required");
    assert_eq!(w.log.size(), 3);
    // And the good one is admitted.
    let ok = w
        .log
        .submit(claim(&w.msp_a, ALICE, ALICE_SSI, t, &[], Some(good)).bytes());
    assert_eq!(ok.unwrap(), 3);
}

#[test]
fn clock_skew_and_size_limits() {
    let mut w = world();
    let policy = Policy::default();
    let skewed = claim(
        &w.msp_a,
        ALICE,
        ALICE_SSI,
        T + policy.max_skew_s + 1,
        &[],
        None,
    );
    assert_eq!(slug_of(w.log.submit(skewed.bytes())), "clock-skew");
    let past = claim(
        &w.msp_a,
        ALICE,
        ALICE_SSI,
        T - policy.max_skew_s - 1,
        &[],
        None,
    );
    assert_eq!(slug_of(w.log.submit(past.bytes())), "clock-skew");
    let edge = claim(&w.msp_a, ALICE, ALICE_SSI, T + policy.max_skew_s, &[], None);
    assert!(w.log.submit(edge.bytes()).is_ok());
    let big = vec![b'a'; MAX_LEAF_BYTES + 1];
    let r = Leaf::parse(&big).unwrap_err();
    assert_eq!(
        r,
        EntryError::TooLarge {
            len: MAX_LEAF_BYTES + 1
        }
    );
    assert_eq!(r.problem(), ProblemType::TooLarge);
    assert_eq!(slug_of(w.log.submit(b"\xff\xfe garbage")), "malformed");
    assert_eq!(slug_of(w.log.submit(b"")), "malformed");
}

#[test]
fn key_validity_follows_reenrollment() {
    let mut w = world();
    let old = w.msp_a.clone();
    let new =
        SignerKey::from_seed("msp-a.example", ledger_core::key::KeyAlg::Ed25519, [9; 32]).unwrap();
    let before = w
        .log
        .submit(claim(&old, ALICE, ALICE_SSI, T, &[], None).bytes())
        .unwrap();
    let re = w.log.enroll(Role::Msp, &new);
    assert!(re > before);
    let r = w
        .log
        .submit(claim(&old, "tel:+14155550101", ALICE_SSI, T, &[], None).bytes());
    assert_eq!(slug_of(r), "unknown-signer");
    assert!(w
        .log
        .submit(claim(&new, "tel:+14155550101", ALICE_SSI, T, &[], None).bytes())
        .is_ok());

    // The registry answers by index: the old key stays valid for entries before the re-enrollment.
    let mut reg = KeyRegistry::new(w.log.key.verifier());
    for i in 0..w.log.size() {
        reg.add_entry(i, w.log.leaf(i).entry());
    }
    let leaf = w.log.leaf(before).clone();
    assert!(verify_entry(&leaf, &reg.at(before)).is_ok());
    assert!(verify_entry(&leaf, &reg.at(re + 1)).is_err());
    assert!(admit(leaf.bytes(), &reg.at(re), &w.log.policy, T).is_ok());
}

/// The world, one attested claim and the key registry, built once for the mutation property.
fn mutation_fixture() -> &'static (World, Leaf, KeyRegistry) {
    static FIXTURE: std::sync::OnceLock<(World, Leaf, KeyRegistry)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let w = world();
        let att = attestation(
            &w.prover,
            Action::Claim,
            ALICE,
            Some(("msp-a.example", ALICE_SSI)),
            T - 5,
        );
        let leaf = claim(&w.msp_a, ALICE, ALICE_SSI, T, &["Personal"], Some(att));
        let mut reg = KeyRegistry::new(w.log.key.verifier());
        for i in 0..w.log.size() {
            reg.add_entry(i, w.log.leaf(i).entry());
        }
        (w, leaf, reg)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Parsers never panic, and whatever they accept has exactly one byte form.
    #[test]
    fn leaf_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(leaf) = Leaf::parse(&bytes) {
            prop_assert_eq!(leaf.note().to_bytes(), bytes);
            prop_assert_eq!(Entry::parse_text(&leaf.entry().to_text()).unwrap(), leaf.entry().clone());
        }
    }

    /// Mutating one byte of a valid leaf gives a refusal or (rarely) another valid leaf, never a panic,
    /// and never a second encoding of the same entry.
    #[test]
    fn mutated_leaves_keep_one_byte_form(pos in 0usize..2000, byte in any::<u8>()) {
        let (w, leaf, reg) = mutation_fixture();
        let mut bytes = leaf.bytes().to_vec();
        let pos = pos % bytes.len();
        prop_assume!(bytes[pos] != byte);
        bytes[pos] = byte;
        if let Ok(other) = Leaf::parse(&bytes) {
            prop_assert_eq!(other.note().to_bytes(), bytes);
            if other.entry() == leaf.entry() {
                // Same entry, other bytes: only the signature line may differ, and it must not verify.
                prop_assert!(verify_entry(&other, &reg.at(w.log.size())).is_err());
            }
        }
    }

    /// Entry text parsing never panics on arbitrary line soup built from real field names.
    #[test]
    fn entry_text_never_panics(lines in proptest::collection::vec(
        prop_oneof![
            Just("sii tel:+14155550100".to_string()), Just("msp msp-a.example".to_string()),
            Just("ssi mimi://a/b".to_string()), Just("time 1".to_string()), Just("tag x".to_string()),
            Just("expires 5".to_string()), Just("attestation AAAA".to_string()), Just("role msp".to_string()),
            "[a-z]{0,6} ?[ -~]{0,12}",
        ], 0..10), kind in prop_oneof![Just("claim"), Just("revoke"), Just("optout"), Just("enroll"), Just("attestation")]) {
        let mut text = format!("mimi-ledger/v1 {kind}\n");
        for l in &lines { text.push_str(l); text.push('\n'); }
        if let Ok(e) = Entry::parse_text(&text) {
            prop_assert_eq!(e.to_text(), text);
        }
    }
}

/// The shared table of admission cases (`testkit::admission_cases`, which the monitor's batch path
/// is checked against too) holds what the tests above assert: each case is refused by `admit`
/// with its slug, or admitted; `verify_entry` (what verifiers run) agrees except on the cases only
/// the log's policy and clock refuse; and `plan` + `Plan::verify` is `verify_entry`.
#[test]
fn every_admission_case_gets_its_verdict_from_admit_and_from_the_plan() {
    use ledger_core::admission::plan;
    use ledger_core::testkit::admission_cases;

    let table = admission_cases();
    let keys = table.log.registry().at(table.index);
    assert!(table.cases.len() > 50, "the table lost cases");
    for c in &table.cases {
        let admitted = admit(&c.bytes, &keys, &c.policy, table.log.now);
        let slug = admitted.as_ref().err().map(|e| e.problem().slug());
        assert_eq!(slug, c.slug, "{}: {admitted:?}", c.what);
        let verified = Leaf::parse(&c.bytes)
            .map_err(Refusal::from)
            .and_then(|leaf| verify_entry(&leaf, &keys));
        if c.log_only {
            assert!(verified.is_ok(), "{}: {verified:?}", c.what);
        } else {
            assert_eq!(
                verified.as_ref().err(),
                admitted.as_ref().err(),
                "{}",
                c.what
            );
        }
        if let Ok(leaf) = Leaf::parse(&c.bytes) {
            let p = plan(&leaf, &keys);
            assert!(p.checks().count() <= 2);
            assert_eq!(p.verify(), verify_entry(&leaf, &keys), "{}", c.what);
        }
    }
}

/// SPEC §3 `map`: one byte form (strict fields, canonical decimal and base64), log-signed, never
/// admitted from a submitter, and ignored by the fold.
#[test]
fn map_leaves_have_one_byte_form_are_log_signed_and_never_admitted() {
    let mut w = world();
    let root = B64.encode([7u8; 32]);
    let good = format!("mimi-ledger/v1 map\nsize 3\nroot {root}\n");
    let log_key = w.log.key.clone();
    let bytes = raw_note(&good, &log_key);
    let leaf = Leaf::parse(&bytes).expect("a map leaf parses");
    match leaf.entry() {
        Entry::Map(m) => assert_eq!((m.size, m.root), (3, [7u8; 32])),
        other => panic!("parsed as {}", other.kind()),
    }
    assert_eq!(leaf.entry().to_text(), good);
    assert_eq!(leaf.entry().sii(), None);
    assert_eq!(leaf.entry().time(), None);
    assert_eq!(leaf.signer_role(), None);
    // Log-signed: it verifies under the log key, and not under anyone else's.
    let registry = KeyRegistry::new(log_key.verifier());
    assert!(verify_entry(&leaf, &registry.at(3)).is_ok());
    let forged = Leaf::parse(&raw_note(&good, &w.msp_a)).unwrap();
    assert!(matches!(
        verify_entry(&forged, &registry.at(3)),
        Err(Refusal::WrongSigner { kind: "map", .. })
    ));
    // Never admitted, even signed by the log: the log appends map leaves itself.
    let r = admit(&bytes, &registry.at(3), &Policy::default(), T);
    assert!(matches!(r, Err(Refusal::LogOnly { kind: "map" })), "{r:?}");
    assert_eq!(slug_of(w.log.submit(&bytes).map(|_| 0)), "bad-request");
    // Other byte forms of the same leaf are refused as non-canonical or malformed.
    let short = B64.encode([7u8; 31]);
    let unpadded = root.trim_end_matches('=').to_string();
    for (text, slug) in [
        (
            format!("mimi-ledger/v1 map\nsize 03\nroot {root}\n"),
            "non-canonical",
        ),
        (
            format!("mimi-ledger/v1 map\nroot {root}\nsize 3\n"),
            "non-canonical",
        ),
        (
            format!("mimi-ledger/v1 map\nsize 3\nroot {unpadded}\n"),
            "non-canonical",
        ),
        (
            format!("mimi-ledger/v1 map\nsize 3\nroot {short}\n"),
            "non-canonical",
        ),
        ("mimi-ledger/v1 map\nsize 3\n".to_string(), "malformed"),
        (
            format!("mimi-ledger/v1 map\nsize 3\nroot {root}\ntime {T}\n"),
            "malformed",
        ),
        (
            format!("mimi-ledger/v1 map\nsize 3\nsize 4\nroot {root}\n"),
            "non-canonical",
        ),
    ] {
        let r = Leaf::parse(&raw_note(&text, &log_key));
        let e = r.expect_err(&text);
        assert_eq!(e.problem().slug(), slug, "{text}: {e}");
    }
    // The fold ignores map leaves.
    let state = ledger_core::state::fold([(3, leaf.entry())], T);
    assert_eq!(state.status, ledger_core::state::Status::None);
}
