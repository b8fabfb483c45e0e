//! Bad input against the real `log-server` (issue 3 "Bad input", SPEC §3 admission and §5 problems):
//! each refusal has the expected HTTP status and `application/problem+json` body with type
//! `urn:mimi-ledger:problem:<slug>`; every §5 slug that can be provoked is provoked at least once;
//! nothing refused is stored (`/v1/info` size and the checkpoint are unchanged afterwards).

use std::collections::BTreeSet;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ledger_core::entry::{Action, Attestation, Enroll, Entry, Leaf, Role, SignedAttestation};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::sii::{Name, Sii, Ssi};
use ledger_core::testkit::{attestation, claim, revoke, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{b64url_nopad, now, sign_text, url_encode, Options, Response, TestLog};

/// One bad request and what it must get.
struct Case {
    name: &'static str,
    status: u16,
    slug: &'static str,
    response: Response,
}

/// Collects cases and checks them all, reporting every mismatch at once.
#[derive(Default)]
struct Cases {
    cases: Vec<Case>,
}

impl Cases {
    fn add(&mut self, name: &'static str, status: u16, slug: &'static str, response: Response) {
        self.cases.push(Case {
            name,
            status,
            slug,
            response,
        });
    }

    fn check(&self) -> BTreeSet<&'static str> {
        let mut failures = Vec::new();
        let mut slugs = BTreeSet::new();
        let mut names = BTreeSet::new();
        for c in &self.cases {
            assert!(names.insert(c.name), "duplicate case name {}", c.name);
            let r = &c.response;
            let ct = r.header("content-type").unwrap_or_default();
            let body: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
            let ty = body
                .as_ref()
                .and_then(|b| b.get("type"))
                .and_then(|t| t.as_str());
            let status_member = body
                .as_ref()
                .and_then(|b| b.get("status"))
                .and_then(|t| t.as_u64());
            let title = body
                .as_ref()
                .and_then(|b| b.get("title"))
                .and_then(|t| t.as_str());
            let detail = body
                .as_ref()
                .and_then(|b| b.get("detail"))
                .and_then(|t| t.as_str());
            let want_type = format!("urn:mimi-ledger:problem:{}", c.slug);
            let ok = r.status == c.status
                && ct.starts_with("application/problem+json")
                && ty == Some(want_type.as_str())
                && status_member == Some(u64::from(c.status))
                && title.is_some_and(|t| !t.is_empty())
                && detail.is_some();
            if ok {
                slugs.insert(c.slug);
            } else {
                failures.push(format!(
                    "  {}: expected {} {}, got {} ({ct}) {}",
                    c.name,
                    c.status,
                    c.slug,
                    r.status,
                    r.text().chars().take(300).collect::<String>()
                ));
            }
        }
        eprintln!("{} bad-input cases checked", self.cases.len());
        assert!(
            failures.is_empty(),
            "{} of {} bad-input cases got the wrong answer:\n{}",
            failures.len(),
            self.cases.len(),
            failures.join("\n")
        );
        slugs
    }
}

/// A claim body (unsigned text) from field lines, in the given order.
fn body(kind: &str, fields: &[(&str, String)]) -> String {
    let mut s = format!("mimi-ledger/v1 {kind}\n");
    for (k, v) in fields {
        s.push_str(k);
        s.push(' ');
        s.push_str(v);
        s.push('\n');
    }
    s
}

fn claim_fields(sii: &str, msp: &str, ssi: &str, time: u64) -> Vec<(&'static str, String)> {
    vec![
        ("sii", sii.to_string()),
        ("msp", msp.to_string()),
        ("ssi", ssi.to_string()),
        ("time", time.to_string()),
    ]
}

/// A claim carrying an arbitrary attestation, signed by `msp`.
fn claim_with(msp: &SignerKey, sii: &str, ssi: &str, time: u64, att: SignedAttestation) -> Leaf {
    claim(msp, sii, ssi, time, &[], Some(att))
}

/// An attestation with every field chosen by the caller.
fn make_att(
    prover: &SignerKey,
    action: Action,
    sii: &str,
    msp_ssi: Option<(&str, &str)>,
    time: u64,
    expires: u64,
) -> SignedAttestation {
    let a = Attestation {
        action,
        sii: Sii::parse(sii).unwrap(),
        msp: msp_ssi.map(|(m, _)| Name::parse(m).unwrap()),
        ssi: msp_ssi.map(|(_, s)| Ssi::parse(s).unwrap()),
        method: "sms-otp".to_string(),
        time,
        expires,
    };
    SignedAttestation::sign(a, prover).unwrap()
}

/// Flips one bit in the signature (not the key ID) of the last signature line of a note.
fn flip_sig_byte(note: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(note).unwrap();
    let trimmed = text.strip_suffix('\n').unwrap();
    let cut = trimmed.rfind('\n').unwrap() + 1;
    let (head, line) = trimmed.split_at(cut);
    let (prefix, sig_b64) = line.rsplit_once(' ').unwrap();
    let mut sig = B64.decode(sig_b64).unwrap();
    sig[4 + 10] ^= 0x01;
    format!("{head}{prefix} {}\n", B64.encode(sig)).into_bytes()
}

#[test]
fn bad_submissions_get_the_right_problem_and_store_nothing() {
    let log = TestLog::start(Options::new(TreeHash::Blake3));
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp_a);
    log.enroll(Role::Msp, &msp_b);
    log.enroll(Role::Prover, &prover);

    let t = now();
    let ssi = "mimi://msp-a.example/u/alice";
    let sii = "tel:+14155550100";
    // Controls: well-formed entries are admitted (so the refusals below are about the mutations).
    let good = claim(&msp_a, sii, ssi, t, &["Personal"], None);
    log.submit_ok(&good);
    let good_attested = claim(
        &msp_a,
        sii,
        "mimi://msp-a.example/u/alice2",
        t,
        &[],
        Some(attestation(
            &prover,
            Action::Claim,
            sii,
            Some(("msp-a.example", "mimi://msp-a.example/u/alice2")),
            t - 60,
        )),
    );
    log.submit_ok(&good_attested);
    // Tags given in any order are built as the set the log accepts (the refusals are below).
    let tagged = claim(
        &msp_a,
        sii,
        "mimi://msp-a.example/u/alice3",
        t,
        &["Work", "Personal"],
        None,
    );
    assert!(tagged.note().text().contains("tag Personal\ntag Work\n"));
    log.submit_ok(&tagged);

    let before = log.info().size;
    let cp_before = log.checkpoint();
    let mut c = Cases::default();
    let fresh = |n: u32| format!("mailto:bad{n}@example.com");

    // ---- malformed (400)
    c.add(
        "garbage bytes",
        400,
        "malformed",
        log.add_raw(vec![0xff, 0xfe, 0x00, 0x13, 0x37, 0x80, 0xc3]),
    );
    c.add("empty body", 400, "malformed", log.add_raw(Vec::new()));
    let g = claim(&msp_a, &fresh(1), ssi, t, &[], None);
    c.add(
        "truncated note",
        400,
        "malformed",
        log.add_raw(g.bytes()[..g.bytes().len() / 2].to_vec()),
    );
    c.add(
        "note without signature",
        400,
        "malformed",
        log.add_raw(g.note().text().to_string() + "\n"),
    );
    c.add("plain text", 400, "malformed", log.add_raw("hello world\n"));
    // A map leaf is appended by the log itself (SPEC §3, §9), never submitted; the exact bytes
    // of one the log appended are a resubmission of an existing leaf (its receipt, nothing new).
    let size_now = log.info().size;
    let map_text = format!(
        "mimi-ledger/v1 map\nsize {size_now}\nroot {}\n",
        ledger_e2e::b64(&[0u8; 32])
    );
    c.add(
        "a submitted map leaf",
        400,
        "bad-request",
        log.add_raw(sign_text(&map_text, &msp_a)),
    );
    let last = log.entries(size_now - 1, 1).entries.remove(0);
    assert!(ledger_e2e::is_map_leaf(last.leaf.as_bytes()));
    let again = log
        .submit(last.leaf.as_bytes())
        .expect("an existing leaf's bytes");
    assert_eq!(again.index, size_now - 1);
    c.add(
        "unknown entry kind",
        400,
        "malformed",
        log.add_raw(sign_text(
            &body("hello", &claim_fields(&fresh(2), "msp-a.example", ssi, t)),
            &msp_a,
        )),
    );
    let mut f = claim_fields(&fresh(3), "msp-a.example", ssi, t);
    f.push(("color", "blue".to_string()));
    c.add(
        "unknown field",
        400,
        "malformed",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );
    let mut f = claim_fields(&fresh(4), "msp-a.example", ssi, t);
    f.remove(2);
    c.add(
        "missing ssi",
        400,
        "malformed",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );

    // ---- non-canonical (422)
    let mut f = claim_fields(&fresh(5), "msp-a.example", ssi, t);
    f.swap(0, 1);
    c.add(
        "reordered fields",
        422,
        "non-canonical",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );
    let text = body("claim", &claim_fields(&fresh(6), "msp-a.example", ssi, t))
        .replacen("msp ", "msp  ", 1);
    c.add(
        "double space",
        422,
        "non-canonical",
        log.add_raw(sign_text(&text, &msp_a)),
    );
    let f = claim_fields(&fresh(7), "msp-a.example", ssi, t);
    let text = body("claim", &f).replace(&format!("time {t}"), &format!("time 0{t}"));
    c.add(
        "leading zero time",
        422,
        "non-canonical",
        log.add_raw(sign_text(&text, &msp_a)),
    );
    let mut f = claim_fields(&fresh(8), "msp-a.example", ssi, t);
    f.insert(2, ("msp", "msp-a.example".to_string()));
    c.add(
        "repeated field",
        422,
        "non-canonical",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );
    let text = body("claim", &claim_fields(&fresh(9), "msp-a.example", ssi, t))
        .replace("msp msp-a.example\n", "msp msp-a.example \n");
    c.add(
        "trailing space",
        422,
        "non-canonical",
        log.add_raw(sign_text(&text, &msp_a)),
    );
    // Tags are a set in strictly increasing byte order (SPEC §3): a repeat or another order is a
    // second byte form of the same claim.
    let mut f = claim_fields(&fresh(21), "msp-a.example", ssi, t);
    f.push(("tag", "Personal".to_string()));
    f.push(("tag", "Personal".to_string()));
    c.add(
        "duplicate tags",
        422,
        "non-canonical",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );
    let mut f = claim_fields(&fresh(22), "msp-a.example", ssi, t);
    f.push(("tag", "Work".to_string()));
    f.push(("tag", "Personal".to_string()));
    c.add(
        "unordered tags",
        422,
        "non-canonical",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );
    let text = body("claim", &claim_fields(&fresh(10), "msp-a.example", ssi, t));
    let mut note = ledger_core::note::Note::new(&text).unwrap();
    note.sign(&msp_a).unwrap();
    note.sign(&msp_b).unwrap();
    c.add(
        "two signatures",
        422,
        "non-canonical",
        log.add_raw(note.to_bytes()),
    );
    let text = body(
        "claim",
        &claim_fields("mailto:alice@EXAMPLE.com", "msp-a.example", ssi, t),
    );
    c.add(
        "non-canonical mailto SII",
        422,
        "non-canonical",
        log.add_raw(sign_text(&text, &msp_a)),
    );
    let text = body(
        "claim",
        &claim_fields("tel:+1-415-555-0100", "msp-a.example", ssi, t),
    );
    c.add(
        "non-canonical tel SII",
        422,
        "non-canonical",
        log.add_raw(sign_text(&text, &msp_a)),
    );

    // ---- invalid-sii (422)
    for (name, bad) in [
        ("invalid phone number", "tel:+1415"),
        ("mailto without @", "mailto:nobody"),
        ("unknown SII scheme", "sms:+14155550100"),
    ] {
        let text = body("claim", &claim_fields(bad, "msp-a.example", ssi, t));
        c.add(
            name,
            422,
            "invalid-sii",
            log.add_raw(sign_text(&text, &msp_a)),
        );
    }

    // ---- unknown-signer (403)
    let msp_z = test_key("msp-z.example");
    c.add(
        "unenrolled MSP",
        403,
        "unknown-signer",
        log.add_raw(
            claim(&msp_z, &fresh(11), "mimi://msp-z.example/u/z", t, &[], None)
                .bytes()
                .to_vec(),
        ),
    );
    let impostor = SignerKey::from_seed("msp-a.example", KeyAlg::Ed25519, [7u8; 32]).unwrap();
    c.add(
        "right name, wrong key",
        403,
        "unknown-signer",
        log.add_raw(
            claim(&impostor, &fresh(12), ssi, t, &[], None)
                .bytes()
                .to_vec(),
        ),
    );
    // An opt-out signed by an MSP (not an enrolled prover).
    let optout_text = body(
        "optout",
        &[
            ("sii", fresh(13)),
            ("time", t.to_string()),
            (
                "attestation",
                make_att(&msp_a, Action::Optout, &fresh(13), None, t - 10, t + 100).to_base64(),
            ),
        ],
    );
    c.add(
        "optout signed by an MSP",
        403,
        "unknown-signer",
        log.add_raw(sign_text(&optout_text, &msp_a)),
    );
    let fake_log = SignerKey::from_seed(&log.options().origin, KeyAlg::Ed25519, [9u8; 32]).unwrap();
    let enroll_z = Leaf::sign(
        Entry::Enroll(Enroll {
            role: Role::Msp,
            name: Name::parse("msp-z.example").unwrap(),
            key: msp_z.verifier(),
            time: t,
        }),
        &fake_log,
    )
    .unwrap();
    c.add(
        "enroll signed by a fake log key",
        403,
        "unknown-signer",
        log.add_raw(enroll_z.bytes().to_vec()),
    );

    // ---- bad-signature (403)
    let text = body("claim", &claim_fields(&fresh(14), "msp-a.example", ssi, t));
    c.add(
        "claim signed by another MSP's key",
        403,
        "bad-signature",
        log.add_raw(sign_text(&text, &msp_b)),
    );
    let g = claim(&msp_a, &fresh(15), ssi, t, &[], None);
    c.add(
        "flipped signature byte",
        403,
        "bad-signature",
        log.add_raw(flip_sig_byte(g.bytes())),
    );
    let enroll_by_msp = Leaf::sign(
        Entry::Enroll(Enroll {
            role: Role::Msp,
            name: Name::parse("msp-z.example").unwrap(),
            key: msp_z.verifier(),
            time: t,
        }),
        &msp_a,
    )
    .unwrap();
    c.add(
        "enroll signed by an MSP",
        403,
        "bad-signature",
        log.add_raw(enroll_by_msp.bytes().to_vec()),
    );
    let g = claim(&msp_a, &fresh(16), ssi, t, &[], None);
    let edited = String::from_utf8(g.bytes().to_vec())
        .unwrap()
        .replace("/u/alice", "/u/mallory");
    c.add(
        "text edited after signing",
        403,
        "bad-signature",
        log.add_raw(edited),
    );

    // ---- attestation-required (422): a prover's revoke must carry one, whatever the policy.
    c.add(
        "prover revoke without attestation",
        422,
        "attestation-required",
        log.add_raw(
            revoke(&prover, "msp-a.example", sii, ssi, t, None)
                .bytes()
                .to_vec(),
        ),
    );

    // ---- bad-attestation (422)
    let s17 = fresh(17);
    let fake_prover = test_key("fake-prover.example");
    let forged = make_att(
        &fake_prover,
        Action::Claim,
        &s17,
        Some(("msp-a.example", ssi)),
        t - 60,
        t + 3600,
    );
    c.add(
        "attestation by an unenrolled prover",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, forged).bytes().to_vec()),
    );
    let prover_impostor =
        SignerKey::from_seed("prover.example", KeyAlg::Ed25519, [5u8; 32]).unwrap();
    let forged = make_att(
        &prover_impostor,
        Action::Claim,
        &s17,
        Some(("msp-a.example", ssi)),
        t - 60,
        t + 3600,
    );
    c.add(
        "attestation forged with the prover's name",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, forged).bytes().to_vec()),
    );
    let expired = make_att(
        &prover,
        Action::Claim,
        &s17,
        Some(("msp-a.example", ssi)),
        t - 7200,
        t - 3600,
    );
    c.add(
        "expired attestation",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, expired).bytes().to_vec()),
    );
    let future = make_att(
        &prover,
        Action::Claim,
        &s17,
        Some(("msp-a.example", ssi)),
        t + 300,
        t + 3600,
    );
    c.add(
        "attestation issued after the entry",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, future).bytes().to_vec()),
    );
    let other_sii = make_att(
        &prover,
        Action::Claim,
        &fresh(18),
        Some(("msp-a.example", ssi)),
        t - 60,
        t + 3600,
    );
    c.add(
        "attestation for another SII",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, other_sii).bytes().to_vec()),
    );
    let other_msp = make_att(
        &prover,
        Action::Claim,
        &s17,
        Some(("msp-b.example", ssi)),
        t - 60,
        t + 3600,
    );
    c.add(
        "attestation for another MSP",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, other_msp).bytes().to_vec()),
    );
    let other_ssi = make_att(
        &prover,
        Action::Claim,
        &s17,
        Some(("msp-a.example", "mimi://msp-a.example/u/eve")),
        t - 60,
        t + 3600,
    );
    c.add(
        "attestation for another SSI",
        422,
        "bad-attestation",
        log.add_raw(claim_with(&msp_a, &s17, ssi, t, other_ssi).bytes().to_vec()),
    );
    let wrong_action = make_att(
        &prover,
        Action::Revoke,
        &s17,
        Some(("msp-a.example", ssi)),
        t - 60,
        t + 3600,
    );
    c.add(
        "attestation for another action",
        422,
        "bad-attestation",
        log.add_raw(
            claim_with(&msp_a, &s17, ssi, t, wrong_action)
                .bytes()
                .to_vec(),
        ),
    );
    let good_att = make_att(
        &prover,
        Action::Claim,
        &s17,
        Some(("msp-a.example", ssi)),
        t - 60,
        t + 3600,
    );
    let flipped = B64.encode(flip_sig_byte(&good_att.note.to_bytes()));
    let mut f = claim_fields(&s17, "msp-a.example", ssi, t);
    f.push(("attestation", flipped));
    c.add(
        "attestation with a flipped signature byte",
        422,
        "bad-attestation",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );
    let mut f = claim_fields(&s17, "msp-a.example", ssi, t);
    f.push(("attestation", B64.encode(b"hello\n")));
    c.add(
        "attestation that is not a note",
        422,
        "bad-attestation",
        log.add_raw(sign_text(&body("claim", &f), &msp_a)),
    );

    // ---- clock-skew (422), default skew 600 s
    c.add(
        "time an hour in the past",
        422,
        "clock-skew",
        log.add_raw(
            claim(&msp_a, &fresh(19), ssi, t - 3600, &[], None)
                .bytes()
                .to_vec(),
        ),
    );
    c.add(
        "time an hour in the future",
        422,
        "clock-skew",
        log.add_raw(
            claim(&msp_a, &fresh(20), ssi, t + 3600, &[], None)
                .bytes()
                .to_vec(),
        ),
    );

    // ---- too-large (413)
    c.add(
        "1 MiB body",
        413,
        "too-large",
        log.add_raw(vec![b'a'; 1 << 20]),
    );
    c.add(
        "leaf just over 8 KiB",
        413,
        "too-large",
        log.add_raw(vec![b'a'; 8193 + 100]),
    );
    // Refused before being read whole: a chunked body that never ends, and a Content-Length of
    // 100 MB with only a few bytes sent (the answer must come without waiting for the rest).
    let mut chunks = Vec::new();
    for _ in 0..16 {
        chunks.extend_from_slice(b"1000\r\n");
        chunks.extend_from_slice(&[b'a'; 0x1000]);
        chunks.extend_from_slice(b"\r\n");
    }
    c.add(
        "endless chunked body",
        413,
        "too-large",
        log.raw_request(
            "POST /v1/add HTTP/1.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked",
            &chunks,
        ),
    );
    c.add(
        "100 MB Content-Length, 10 bytes sent",
        413,
        "too-large",
        log.raw_request(
            "POST /v1/add HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 100000000",
            b"aaaaaaaaaa",
        ),
    );

    // ---- bad-request (400; 415 for a wrong content type, 405 for a wrong method)
    c.add(
        "wrong content type",
        415,
        "bad-request",
        log.post("/v1/add", "application/json", good.bytes().to_vec()),
    );
    c.add(
        "wrong method on /v1/add",
        405,
        "bad-request",
        log.get("/v1/add"),
    );
    c.add(
        "entries: start not a number",
        400,
        "bad-request",
        log.get("/v1/entries?start=abc&count=1"),
    );
    c.add(
        "entries: count over 1000",
        400,
        "bad-request",
        log.get("/v1/entries?start=0&count=1001"),
    );
    c.add(
        "entries: count 0",
        400,
        "bad-request",
        log.get("/v1/entries?start=0&count=0"),
    );
    c.add(
        "entries: no parameters",
        400,
        "bad-request",
        log.get("/v1/entries"),
    );
    c.add(
        "entries: negative start",
        400,
        "bad-request",
        log.get("/v1/entries?start=-1&count=1"),
    );
    c.add(
        "entries: start beyond u64",
        400,
        "bad-request",
        log.get("/v1/entries?start=18446744073709551616&count=1"),
    );
    // The largest start is no error: the page past the end is empty (it once overflowed the
    // handler's index counter and dropped the connection).
    let last = log.get(&format!("/v1/entries?start={}&count=10", u64::MAX));
    assert_eq!(last.status, 200, "start=u64::MAX: {last:?}");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&last.body).ok(),
        Some(serde_json::json!({"entries": []})),
        "start=u64::MAX"
    );
    c.add(
        "inclusion: neither index nor leaf_hash",
        400,
        "bad-request",
        log.get(&format!("/v1/proof/inclusion?size={before}")),
    );
    c.add(
        "inclusion: bad leaf_hash",
        400,
        "bad-request",
        log.get("/v1/proof/inclusion?leaf_hash=***&size=1"),
    );
    c.add(
        "inclusion: 16-byte leaf_hash",
        400,
        "bad-request",
        log.get(&format!(
            "/v1/proof/inclusion?leaf_hash={}&size=1",
            URL_SAFE_NO_PAD.encode([7u8; 16])
        )),
    );
    c.add(
        "inclusion: index beyond size",
        400,
        "bad-request",
        log.get(&format!("/v1/proof/inclusion?index={before}&size={before}")),
    );
    c.add(
        "inclusion: size beyond the tree",
        400,
        "bad-request",
        log.get(&format!("/v1/proof/inclusion?index=0&size={}", before + 1)),
    );
    c.add(
        "consistency: from 0",
        400,
        "bad-request",
        log.get("/v1/proof/consistency?from=0&to=1"),
    );
    c.add(
        "consistency: from > to",
        400,
        "bad-request",
        log.get("/v1/proof/consistency?from=3&to=2"),
    );
    c.add(
        "consistency: to beyond the tree",
        400,
        "bad-request",
        log.get(&format!("/v1/proof/consistency?from=1&to={}", before + 5)),
    );
    c.add("lookup: no sii", 400, "bad-request", log.get("/v1/lookup"));
    let token = log.admin_token();
    c.add(
        "enroll: bad JSON",
        400,
        "bad-request",
        log.post_admin("/v1/admin/enroll", Some(&token), "{not json".to_string()),
    );
    let vk = test_key("msp-y.example").verifier().to_string();
    c.add(
        "enroll: unknown role",
        400,
        "bad-request",
        log.post_admin(
            "/v1/admin/enroll",
            Some(&token),
            serde_json::json!({"role": "king", "name": "msp-y.example", "key": vk}).to_string(),
        ),
    );
    c.add(
        "enroll: key is not a verifier key",
        400,
        "bad-request",
        log.post_admin(
            "/v1/admin/enroll",
            Some(&token),
            serde_json::json!({"role": "msp", "name": "msp-y.example", "key": "nope"}).to_string(),
        ),
    );
    c.add(
        "enroll: key named differently",
        400,
        "bad-request",
        log.post_admin(
            "/v1/admin/enroll",
            Some(&token),
            serde_json::json!({"role": "msp", "name": "msp-x.example", "key": vk}).to_string(),
        ),
    );

    // ---- unauthorized (401)
    let enroll_body =
        serde_json::json!({"role": "msp", "name": "msp-y.example", "key": vk}).to_string();
    c.add(
        "enroll without a token",
        401,
        "unauthorized",
        log.post_admin("/v1/admin/enroll", None, enroll_body.clone()),
    );
    c.add(
        "enroll with a wrong token",
        401,
        "unauthorized",
        log.post_admin(
            "/v1/admin/enroll",
            Some("not-the-token"),
            enroll_body.clone(),
        ),
    );
    c.add(
        "enroll with a token prefix",
        401,
        "unauthorized",
        log.post_admin(
            "/v1/admin/enroll",
            Some(&token[..token.len() - 1]),
            enroll_body.clone(),
        ),
    );
    let basic = log
        .http()
        .post(format!("{}/v1/admin/enroll", log.url()))
        .header("content-type", "application/json")
        .header(
            "authorization",
            format!("Basic {}", B64.encode(format!("admin:{token}"))),
        )
        .body(enroll_body)
        .send()
        .unwrap();
    let (status, headers) = (basic.status().as_u16(), basic.headers().clone());
    c.add(
        "enroll with Basic auth",
        401,
        "unauthorized",
        Response {
            status,
            headers,
            body: basic.bytes().unwrap().to_vec(),
        },
    );

    // ---- not-found (404)
    c.add("unknown route", 404, "not-found", log.get("/v2/nothing"));
    c.add(
        "full tile beyond the tree",
        404,
        "not-found",
        log.get("/tile/0/000"),
    );
    c.add(
        "partial tile wider than the tree",
        404,
        "not-found",
        log.get(&format!("/tile/0/000.p/{}", before + 1)),
    );
    c.add(
        "entry bundle beyond the tree",
        404,
        "not-found",
        log.get("/tile/entries/001"),
    );
    c.add(
        "level-1 tile beyond the tree",
        404,
        "not-found",
        log.get("/tile/1/000.p/1"),
    );
    c.add(
        "non-canonical tile path",
        404,
        "not-found",
        log.get("/tile/0/0.p/1"),
    );
    let unknown = TreeHash::Blake3.leaf_hash(b"never submitted");
    c.add(
        "inclusion: unknown leaf hash",
        404,
        "not-found",
        log.get(&format!(
            "/v1/proof/inclusion?leaf_hash={}&size={before}",
            b64url_nopad(&unknown)
        )),
    );

    // ---- lookup query problems
    c.add(
        "lookup: non-canonical sii",
        422,
        "non-canonical",
        log.get(&format!(
            "/v1/lookup?sii={}",
            url_encode("tel:+1 (415) 555-0100")
        )),
    );
    c.add(
        "lookup: invalid sii",
        422,
        "invalid-sii",
        log.get(&format!("/v1/lookup?sii={}", url_encode("tel:+1415"))),
    );

    let slugs = c.check();
    assert!(
        c.cases.len() >= 30,
        "at least 30 distinct bad requests, have {}",
        c.cases.len()
    );
    for slug in [
        "malformed",
        "non-canonical",
        "invalid-sii",
        "unknown-signer",
        "bad-signature",
        "attestation-required",
        "bad-attestation",
        "clock-skew",
        "too-large",
        "bad-request",
        "not-found",
        "unauthorized",
    ] {
        assert!(slugs.contains(slug), "no case provoked {slug}");
    }

    // Nothing refused was stored.
    assert_eq!(
        log.info().size,
        before,
        "/v1/info size changed after refused submissions"
    );
    assert_eq!(
        log.checkpoint().checkpoint,
        cp_before.checkpoint,
        "checkpoint changed"
    );
}

#[test]
fn policy_flags_require_attestation_and_max_skew() {
    let log = TestLog::start(
        Options::new(TreeHash::Sha256)
            .require_attestation()
            .max_skew(30),
    );
    let info = log.info();
    assert!(
        info.policy.require_attestation,
        "/v1/info policy.require_attestation"
    );
    assert_eq!(info.policy.max_skew_s, 30, "/v1/info policy.max_skew_s");
    let msp = test_key("msp-a.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Prover, &prover);
    let t = now();
    let sii = "mailto:attested@example.com";
    let ssi = "mimi://msp-a.example/u/attested";

    // Control: an attested claim within the skew is admitted.
    let att = attestation(
        &prover,
        Action::Claim,
        sii,
        Some(("msp-a.example", ssi)),
        t - 20,
    );
    log.submit_ok(&claim(&msp, sii, ssi, t, &[], Some(att)));
    let before = log.info().size;

    let mut c = Cases::default();
    c.add(
        "claim without attestation",
        422,
        "attestation-required",
        log.add_raw(
            claim(&msp, "mailto:bare@example.com", ssi, t, &[], None)
                .bytes()
                .to_vec(),
        ),
    );
    let att = attestation(
        &prover,
        Action::Claim,
        sii,
        Some(("msp-a.example", "mimi://msp-a.example/u/late")),
        t - 200,
    );
    c.add(
        "attested claim outside a 30 s skew",
        422,
        "clock-skew",
        log.add_raw(
            claim(
                &msp,
                sii,
                "mimi://msp-a.example/u/late",
                t - 120,
                &[],
                Some(att),
            )
            .bytes()
            .to_vec(),
        ),
    );
    let slugs = c.check();
    assert_eq!(slugs.len(), 2);
    assert_eq!(
        log.info().size,
        before,
        "refused submissions stored nothing"
    );
}

#[test]
fn overloaded_when_the_queue_is_full() {
    // A queue of one slot and many concurrent submitters: some must be told `503 overloaded` with
    // `Retry-After`, and only the admitted ones are stored.
    let log = TestLog::start(Options::new(TreeHash::Blake3).arg("--queue-size").arg("1"));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    let t = now();
    let leaves: Vec<Leaf> = (0..256u64)
        .map(|i| {
            claim(
                &msp,
                &format!("mailto:load{i}@example.com"),
                "mimi://msp-a.example/u/x",
                t,
                &[],
                None,
            )
        })
        .collect();
    let results: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = leaves
            .chunks(8)
            .map(|chunk| {
                let log = &log;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|l| log.add_raw(l.bytes().to_vec()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let ok = results.iter().filter(|r| r.status == 200).count() as u64;
    let overloaded: Vec<&Response> = results.iter().filter(|r| r.status == 503).collect();
    let other: Vec<String> = results
        .iter()
        .filter(|r| r.status != 200 && r.status != 503)
        .map(|r| format!("{} {}", r.status, r.text()))
        .collect();
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    eprintln!(
        "queue size 1, 32 concurrent clients: {ok} admitted, {} overloaded",
        overloaded.len()
    );
    assert!(
        !overloaded.is_empty(),
        "no submission was refused as overloaded with a queue of one slot"
    );
    for r in &overloaded {
        r.assert_problem(503, "overloaded", "full queue");
        let retry = r.header("retry-after").unwrap_or_default();
        assert!(
            retry.parse::<u64>().is_ok(),
            "Retry-After {retry:?} is not delta-seconds"
        );
    }
    assert_eq!(
        log.entry_count(),
        1 + ok,
        "only admitted submissions are stored"
    );
}

/// Sends requests built by `send(i)` back to back until one is refused with 429 (at most `max`);
/// returns how many were admitted (200) before, and the refusal.
fn until_rate_limited(max: usize, send: impl Fn(usize) -> Response) -> (Vec<usize>, Response) {
    let mut admitted = Vec::new();
    for i in 0..max {
        let r = send(i);
        match r.status {
            200 => admitted.push(i),
            429 => return (admitted, r),
            s => panic!("request {i}: unexpected {s} {}", r.text()),
        }
    }
    panic!("{max} back-to-back requests and none was rate-limited");
}

/// Checks a `rate-limited` refusal: 429, the §5 slug, and `Retry-After` in whole seconds ≥ 1.
fn assert_rate_limited(r: &Response, what: &str) -> u64 {
    r.assert_problem(429, "rate-limited", what);
    let retry = r.header("retry-after").unwrap_or_default();
    let secs: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?} is not delta-seconds"));
    assert!(secs >= 1, "{what}: Retry-After {secs} must be at least 1");
    secs
}

#[test]
fn rate_limited_writes_get_429_with_retry_after_and_store_nothing() {
    // One write per second per client, burst 2: back-to-back writes from 127.0.0.1 run out fast.
    let log = TestLog::start(
        Options::new(TreeHash::Blake3)
            .arg("--rate-limit-per-s")
            .arg("1")
            .arg("--rate-limit-burst")
            .arg("2"),
    );
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    let t = now();
    let leaves: Vec<Leaf> = (0..40u64)
        .map(|i| {
            claim(
                &msp,
                &format!("mailto:rate{i}@example.com"),
                "mimi://msp-a.example/u/x",
                t,
                &[],
                None,
            )
        })
        .collect();

    // POST /v1/add.
    let (claims_ok, refused) =
        until_rate_limited(leaves.len(), |i| log.add_raw(leaves[i].bytes().to_vec()));
    let retry = assert_rate_limited(&refused, "add over the limit");
    let refused_leaf = &leaves[claims_ok.len()];
    // Reads are not limited, and the refused leaf is not in the log.
    let r = log.get(&format!(
        "/v1/proof/inclusion?leaf_hash={}",
        b64url_nopad(&TreeHash::Blake3.leaf_hash(refused_leaf.bytes()))
    ));
    assert_eq!(
        r.status,
        404,
        "a rate-limited leaf was stored: {}",
        r.text()
    );

    // POST /v1/admin/enroll shares the client's bucket.
    let provers: Vec<SignerKey> = (0..40)
        .map(|i| test_key(&format!("prover{i}.example")))
        .collect();
    let (enrolls_ok, refused) = until_rate_limited(provers.len(), |i| {
        log.enroll_raw(Role::Prover, &provers[i].verifier())
    });
    assert_rate_limited(&refused, "enroll over the limit");

    let size = log.info().size;
    assert_eq!(
        log.entry_count(),
        1 + claims_ok.len() as u64 + enrolls_ok.len() as u64,
        "only admitted writes are stored"
    );

    // After Retry-After the client may write again (poll with a deadline; the machine is shared).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(retry));
        let r = log.add_raw(refused_leaf.bytes().to_vec());
        if r.status == 200 {
            break;
        }
        assert_rate_limited(&r, "retry after Retry-After");
        assert!(
            std::time::Instant::now() < deadline,
            "still rate-limited 20 s after Retry-After"
        );
    }
    // The leaf and its batch's map leaf.
    assert_eq!(log.info().size, size + 2);
}
