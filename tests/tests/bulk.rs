//! Bulk onboarding (issue #13) against the real `log-server` and `ledger` binaries:
//! `POST /v1/add-bundle` judges each leaf as `POST /v1/add` would (same receipt, same slug and
//! status), stores the good ones in bundle order and nothing refused; a bundle that is not well
//! framed, too long or too large is refused as a whole and stores nothing; `ledger claim --bulk`
//! reports refused rows, exits 4, and after a crash at the worst moment resumes without storing
//! any row twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ledger_core::api::Receipt;
use ledger_core::bundle::{encode_bundle, BundleItem, MAX_BUNDLE_BYTES, MAX_BUNDLE_LEAVES};
use ledger_core::entry::{Action, Entry, Leaf, Role};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::testkit::{attestation, claim, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{is_map_leaf, mail_sii, now, wait_for, workspace_binary, Options, TestLog};

const BUNDLE: &str = "application/octet-stream";

fn add_bundle(log: &TestLog, leaves: &[Vec<u8>]) -> ledger_e2e::Response {
    log.post(
        "/v1/add-bundle",
        BUNDLE,
        encode_bundle(leaves).expect("frames"),
    )
}

/// The claim leaves (not map leaves) of the whole log, by index.
fn claims(log: &TestLog) -> BTreeMap<u64, String> {
    let size = log.checkpoint().checkpoint.size;
    log.all_entries(size)
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !is_map_leaf(l.as_bytes()))
        .map(|(i, l)| (i as u64, l))
        .collect()
}

/// A leaf of the mixed bundle: what it is, its bytes, and `None` (admitted) or the refusal's
/// status and slug.
type Case = (&'static str, Vec<u8>, Option<(u16, &'static str)>);

fn flip_sig_byte(leaf: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(leaf.to_vec()).expect("utf-8");
    let (body, sig) = text.rsplit_once(' ').expect("signature line");
    // Change one base64 character of the signature (not the key ID) and keep it canonical.
    let mut sig: Vec<char> = sig.chars().collect();
    let at = 20;
    sig[at] = if sig[at] == 'A' { 'B' } else { 'A' };
    format!("{body} {}", sig.into_iter().collect::<String>()).into_bytes()
}

#[test]
fn a_bundle_judges_each_leaf_as_the_single_route_does() {
    let log = TestLog::start(Options::new(TreeHash::Blake3));
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    log.enroll(Role::Msp, &msp_a);
    log.enroll(Role::Msp, &msp_b);
    let t = now();
    let good = |i: u64, m: &SignerKey| {
        claim(
            m,
            &mail_sii("bulk", i),
            &format!("mimi://{}/u/{i}", m.name()),
            t,
            &["Personal"],
            None,
        )
        .bytes()
        .to_vec()
    };
    // One leaf already in the log before the bundle.
    let existing = good(100, &msp_a);
    let existing_receipt = log
        .submit(&existing)
        .unwrap_or_else(|r| panic!("{}", r.text()));
    let before = claims(&log);
    let impostor = SignerKey::from_seed("msp-a.example", KeyAlg::Ed25519, [7u8; 32]).unwrap();
    let msp_z = test_key("msp-z.example");
    let skewed = claim(
        &msp_a,
        &mail_sii("bulk", 7),
        "mimi://a/u/7",
        t - 100_000,
        &[],
        None,
    );

    // (leaf, expected: None = admitted, Some((status, slug)) = refused)
    let cases: Vec<Case> = vec![
        ("good 0", good(0, &msp_a), None),
        (
            "flipped signature",
            flip_sig_byte(&good(1, &msp_a)),
            Some((403, "bad-signature")),
        ),
        (
            "unenrolled MSP",
            good(2, &msp_z),
            Some((403, "unknown-signer")),
        ),
        (
            "right name, wrong key",
            good(3, &impostor),
            Some((403, "unknown-signer")),
        ),
        ("not a note", b"hello\n".to_vec(), Some((400, "malformed"))),
        ("good 1", good(4, &msp_b), None),
        (
            "clock skew",
            skewed.bytes().to_vec(),
            Some((422, "clock-skew")),
        ),
        ("too large", vec![b'a'; 8193], Some((413, "too-large"))),
        ("good 0 again in the bundle", good(0, &msp_a), None),
        ("already in the log", existing.clone(), None),
        ("good 2", good(5, &msp_a), None),
    ];
    let leaves: Vec<Vec<u8>> = cases.iter().map(|c| c.1.clone()).collect();
    let r = add_bundle(&log, &leaves);
    assert_eq!(r.status, 200, "{}", r.text());
    let items: Vec<BundleItem> = r.json();
    assert_eq!(items.len(), cases.len(), "one answer per leaf");

    let mut receipts: Vec<(&str, Receipt)> = Vec::new();
    for ((what, leaf, expected), item) in cases.iter().zip(&items) {
        match (expected, item) {
            (None, BundleItem::Receipt(rc)) => {
                rc.verify(leaf, log.hash(), log.vkey())
                    .unwrap_or_else(|e| panic!("{what}: receipt does not verify: {e}"));
                receipts.push((what, rc.clone()));
            }
            (Some((status, slug)), BundleItem::Problem(p)) => {
                assert_eq!(p.status, *status, "{what}: {p:?}");
                assert_eq!(
                    p.type_,
                    format!("urn:mimi-ledger:problem:{slug}"),
                    "{what}: {p:?}"
                );
            }
            (e, got) => panic!("{what}: expected {e:?}, got {got:?}"),
        }
    }
    let index_of = |what: &str| {
        receipts
            .iter()
            .find(|(w, _)| *w == what)
            .map(|(_, r)| r.index)
            .expect("receipt")
    };
    // The same new leaf twice is stored once; an existing leaf keeps its index.
    assert_eq!(index_of("good 0"), index_of("good 0 again in the bundle"));
    assert_eq!(index_of("already in the log"), existing_receipt.index);
    // New leaves are stored in bundle order.
    assert!(index_of("good 0") < index_of("good 1"));
    assert!(index_of("good 1") < index_of("good 2"));

    // Exactly the three new claims were stored, at their receipts' indices, nothing refused.
    let after = claims(&log);
    assert_eq!(after.len(), before.len() + 3, "{after:#?}");
    for what in ["good 0", "good 1", "good 2"] {
        let (_, leaf, _) = cases.iter().find(|c| c.0 == what).expect("case");
        assert_eq!(
            after.get(&index_of(what)).map(String::as_bytes),
            Some(leaf.as_slice()),
            "{what} at its index"
        );
    }
    let cp = log.checkpoint();
    log.verify_tree(&cp);

    // The single route gives each leaf the same verdict now (and the same receipts' indices).
    for (what, leaf, expected) in &cases {
        let single = log.add_raw(leaf.clone());
        match expected {
            None => {
                assert_eq!(single.status, 200, "{what}: {}", single.text());
                let rc: Receipt = single.json();
                assert_eq!(rc.index, index_of(what), "{what}");
            }
            Some((status, slug)) => {
                single.assert_problem(*status, slug, what);
            }
        }
    }
    assert_eq!(
        claims(&log).len(),
        after.len(),
        "resubmission stored nothing"
    );
}

#[test]
fn a_malformed_or_oversized_bundle_is_refused_whole() {
    let log = TestLog::start(Options::new(TreeHash::Sha256));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    let t = now();
    let leaves: Vec<Vec<u8>> = (0..(MAX_BUNDLE_LEAVES as u64 + 1))
        .map(|i| {
            claim(
                &msp,
                &mail_sii("whole", i),
                "mimi://msp-a.example/u/x",
                t,
                &[],
                None,
            )
            .bytes()
            .to_vec()
        })
        .collect();
    let size = log.checkpoint().checkpoint.size;
    let two = encode_bundle(&leaves[..2]).expect("frames");

    let truncated_leaf = two[..two.len() - 1].to_vec();
    let mut truncated_length = two.clone();
    truncated_length.push(0);
    let mut too_many = encode_bundle(&leaves[..MAX_BUNDLE_LEAVES]).expect("frames");
    too_many.extend_from_slice(&encode_bundle(&leaves[MAX_BUNDLE_LEAVES..]).expect("frames"));
    let bad: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", Vec::new(), 400, "bad-bundle"),
        ("ends inside a leaf", truncated_leaf, 400, "bad-bundle"),
        ("ends inside a length", truncated_length, 400, "bad-bundle"),
        ("1,001 leaves", too_many, 400, "bad-bundle"),
    ];
    for (what, body, status, slug) in bad {
        let r = log.post("/v1/add-bundle", BUNDLE, body);
        r.assert_problem(status, slug, what);
        assert_eq!(
            log.checkpoint().checkpoint.size,
            size,
            "{what} stored something"
        );
    }
    // Too large: declared, or sent chunked without a length (cut off at the limit, unread).
    let r = log.raw_request(
        &format!(
            "POST /v1/add-bundle HTTP/1.1\r\nContent-Type: {BUNDLE}\r\nContent-Length: {}",
            MAX_BUNDLE_BYTES + 1
        ),
        &two,
    );
    r.assert_problem(413, "too-large", "declared length over the limit");
    let mut chunked = Vec::new();
    let chunk = vec![0u8; 65_536];
    while chunked.len() <= MAX_BUNDLE_BYTES + 65_536 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = log.raw_request(
        &format!(
            "POST /v1/add-bundle HTTP/1.1\r\nContent-Type: {BUNDLE}\r\nTransfer-Encoding: chunked"
        ),
        &chunked,
    );
    r.assert_problem(413, "too-large", "chunked body over the limit");
    assert_eq!(log.checkpoint().checkpoint.size, size);
    let r = log.post("/v1/add-bundle", "text/plain", two.clone());
    r.assert_problem(415, "bad-request", "wrong content type");
    assert_eq!(log.checkpoint().checkpoint.size, size);

    // Exactly 1,000 leaves are taken, in order.
    let r = add_bundle(&log, &leaves[..MAX_BUNDLE_LEAVES]);
    assert_eq!(r.status, 200, "{}", r.text());
    let items: Vec<BundleItem> = r.json();
    let mut last = None;
    for (leaf, item) in leaves.iter().zip(&items) {
        let BundleItem::Receipt(rc) = item else {
            panic!("refused: {item:?}")
        };
        rc.verify(leaf, log.hash(), log.vkey()).expect("receipt");
        assert!(last < Some(rc.index), "bundle order");
        last = Some(rc.index);
    }
    let stored = claims(&log);
    assert_eq!(
        stored.len(),
        1 + MAX_BUNDLE_LEAVES,
        "one enroll and the bundle"
    );
}

// -------------------------------------------------------------------------------------------------
// ledger claim --bulk
// -------------------------------------------------------------------------------------------------

fn ledger(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(workspace_binary("ledger-cli", "client", "ledger"));
    c.current_dir(dir)
        .arg("--trust")
        .arg(dir.join("trust.toml"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ledger")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The SIIs of the log's claims, with how many claims each has.
fn claimed_siis(log: &TestLog) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for leaf in claims(log).values() {
        if let Ok(l) = Leaf::parse(leaf.as_bytes()) {
            if let Entry::Claim(c) = l.entry() {
                *out.entry(c.sii.as_str().to_string()).or_default() += 1;
            }
        }
    }
    out
}

#[test]
fn ledger_claim_bulk_reports_refused_rows_and_resumes_without_duplicates() {
    let log = TestLog::start(Options::new(TreeHash::Blake3));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    std::fs::write(dir.join("msp-a.key"), msp.to_text()).expect("key file");
    let o = ledger(dir, &["trust", "init", "--log", &log.url()], &[]);
    assert!(o.status.success(), "{}", text(&o));

    // An attestation by a prover the log does not know: the client cannot tell, the log refuses.
    let rogue = test_key("rogue-prover.example");
    let att_sii = mail_sii("csv-att", 0);
    let att = attestation(
        &rogue,
        Action::Claim,
        &att_sii,
        Some(("msp-a.example", "mimi://msp-a.example/u/att")),
        now() - 10,
    );
    std::fs::write(dir.join("att.note"), att.note.to_bytes()).expect("attestation file");

    let mut csv = String::from("sii,ssi,tags,attestation\n");
    let mut good = Vec::new();
    let mut bad_lines = BTreeMap::new();
    for i in 0..23u64 {
        let line = csv.lines().count() + 1;
        match i {
            3 => {
                csv.push_str("not a number,mimi://msp-a.example/u/x,\n");
                bad_lines.insert(line, "bad-row");
            }
            8 => {
                csv.push_str(&format!(
                    "{},mimi://msp-a.example/u/{i},no/slash\n",
                    mail_sii("csv", i)
                ));
                bad_lines.insert(line, "bad-row");
            }
            12 => {
                csv.push_str("only,two\n");
                bad_lines.insert(line, "bad-row");
            }
            17 => {
                csv.push_str(&format!("{att_sii},mimi://msp-a.example/u/att,,att.note\n"));
                bad_lines.insert(line, "bad-attestation");
            }
            _ => {
                let sii = mail_sii("csv", i);
                csv.push_str(&format!("{sii},mimi://msp-a.example/u/{i},Work;Personal\n"));
                good.push(sii);
            }
        }
    }
    std::fs::write(dir.join("users.csv"), &csv).expect("csv");
    let args = [
        "claim",
        "--key",
        "msp-a.key",
        "--bulk",
        "users.csv",
        "--bundle-size",
        "4",
    ];

    // 1. Crash right after the second bundle was answered, before the state recorded it.
    let o = ledger(dir, &args, &[("LEDGER_BULK_CRASH_AFTER_BUNDLES", "2")]);
    assert_eq!(o.status.code(), Some(101), "{}", text(&o));
    let partial = claimed_siis(&log);
    assert!(
        !partial.is_empty() && partial.len() < good.len(),
        "{partial:?}"
    );
    assert!(dir.join("users.csv.state").exists());

    // 2. Run again, in a later second (so a client that signed the rows again would make new
    //    bytes, hence duplicates): resumes, resends the in-flight bundle byte for byte, finishes.
    let crashed_at = now();
    wait_for(Duration::from_secs(5), "the clock to tick", || {
        (now() > crashed_at).then_some(())
    });
    let o = ledger(dir, &args, &[]);
    assert_eq!(o.status.code(), Some(4), "some rows refused: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resuming"),
        "{}",
        text(&o)
    );
    let siis = claimed_siis(&log);
    for sii in &good {
        assert_eq!(siis.get(sii), Some(&1), "{sii} exactly once: {siis:#?}");
    }
    assert_eq!(
        siis.len(),
        good.len(),
        "nothing refused was stored: {siis:#?}"
    );

    // The report names every refused row, with the slug.
    let report = std::fs::read_to_string(dir.join("users.csv.refused")).expect("report");
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some("row,sii,slug,detail"));
    let rows: BTreeMap<usize, String> = lines
        .map(|l| {
            let mut f = l.splitn(4, ',');
            let row = f.next().and_then(|r| r.parse().ok()).expect("row number");
            let _sii = f.next();
            (row, f.next().expect("slug").to_string())
        })
        .collect();
    let expected: BTreeMap<usize, String> =
        bad_lines.iter().map(|(l, s)| (*l, s.to_string())).collect();
    assert_eq!(rows, expected, "{report}");

    // 3. A third run has nothing left to do and stores nothing.
    let size = log.checkpoint().checkpoint.size;
    let o = ledger(dir, &args, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(log.checkpoint().checkpoint.size, size);

    // 4. A CSV of good rows only exits 0, with an empty report.
    let mut ok_csv = String::new();
    for i in 0..5u64 {
        ok_csv.push_str(&format!(
            "{},mimi://msp-a.example/u/ok{i},\n",
            mail_sii("ok", i)
        ));
    }
    std::fs::write(dir.join("ok.csv"), ok_csv).expect("csv");
    let o = ledger(
        dir,
        &["claim", "--key", "msp-a.key", "--bulk", "ok.csv"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("ok.csv.refused")).expect("report"),
        "row,sii,slug,detail\n"
    );
    assert_eq!(claimed_siis(&log).len(), good.len() + 5);
}
