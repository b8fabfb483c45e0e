//! The witness protocol (C2SP tlog-witness) over the real binary: status codes, atomicity,
//! restart, rollback, and the configuration rules.

mod common;

use std::sync::{Arc, Barrier};

use common::{leaves, FakeLog, TestAuditor};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::cosignature::verify_cosignature;
use ledger_core::note::Note;
use ledger_core::testkit::test_key;
use ledger_core::TreeHash;

const ORIGIN: &str = "witness-test.example/log";

fn setup(n: usize) -> (Arc<FakeLog>, TestAuditor) {
    setup_with_env(n, &[])
}

fn setup_with_env(n: usize, env: &[(&str, &str)]) -> (Arc<FakeLog>, TestAuditor) {
    let log = FakeLog::new(ORIGIN, TreeHash::Sha256);
    log.add_view("a", &leaves("a", 0..n));
    let mut w = TestAuditor::new("w1.example/witness");
    w.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    w.configure(&[log.entry(None)], &[], 60_000);
    w.start();
    (log, w)
}

/// The 200 body must be cosignature lines that verify under the witness key.
fn assert_cosigned(w: &TestAuditor, cp: &SignedCheckpoint, status: u16, body: &str) {
    assert_eq!(status, 200, "body: {body}\n{}", w.output());
    let note = Note::parse(format!("{}\n{body}", cp.note.text()).as_bytes()).expect("lines");
    assert_eq!(note.signatures().len(), 1);
    verify_cosignature(&w.vkey(), cp.note.text(), &note.signatures()[0]).expect("cosig verifies");
}

/// A checkpoint of a log this witness does not know.
fn foreign_checkpoint() -> SignedCheckpoint {
    let stranger = test_key("other.example/log");
    SignedCheckpoint::sign(
        ledger_core::checkpoint::Checkpoint {
            origin: "other.example/log".into(),
            size: 1,
            root: [0; 32],
        },
        &stranger,
    )
    .unwrap()
}

#[test]
fn status_codes_follow_tlog_witness() {
    let (log, w) = setup(20);
    let cp5 = log.checkpoint("a", 5);

    // 404: unknown origin.
    let foreign = foreign_checkpoint();
    assert_eq!(w.add_checkpoint(0, &[], &foreign).0, 404);

    // 403: right origin, signed by another key of the same name.
    let impostor =
        ledger_core::key::SignerKey::from_seed(ORIGIN, ledger_core::key::KeyAlg::Ed25519, [9; 32])
            .unwrap();
    let forged = SignedCheckpoint::sign(cp5.checkpoint.clone(), &impostor).unwrap();
    assert_eq!(w.add_checkpoint(0, &[], &forged).0, 403);

    // 400: malformed bodies, and old size > size.
    assert_eq!(w.add_checkpoint_raw(b"old 01\n\n".to_vec()).0, 400);
    assert_eq!(w.add_checkpoint_raw(b"hello".to_vec()).0, 400);
    let mut no_blank = b"old 0\n".to_vec();
    no_blank.extend_from_slice(&cp5.to_bytes());
    assert_eq!(w.add_checkpoint_raw(no_blank).0, 400);
    assert_eq!(w.add_checkpoint(6, &[], &cp5).0, 400);

    // 422: a non-empty proof from size 0.
    assert_eq!(w.add_checkpoint(0, &[[1; 32]], &cp5).0, 422);

    // 200 from 0, and the gossip endpoint serves it with both signatures.
    assert_eq!(w.gossip(ORIGIN).0, 404, "nothing cosigned yet");
    let (s, ct, body) = w.add_checkpoint(0, &[], &cp5);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_cosigned(&w, &cp5, s, &body);
    let (gs, gossiped) = w.gossip(ORIGIN);
    assert_eq!(gs, 200);
    let g = SignedCheckpoint::verify(gossiped.as_bytes(), &log.key.verifier()).unwrap();
    assert_eq!(g.checkpoint, cp5.checkpoint);
    assert_eq!(g.verify_cosignatures(&[w.vkey()]).len(), 1);

    // 409 with the latest size as text/x.tlog.size.
    let cp9 = log.checkpoint("a", 9);
    let (s, ct, body) = w.add_checkpoint(0, &[], &cp9);
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );
    let (s, ct, body) = w.add_checkpoint(7, &log.proof("a", 7, 9), &cp9);
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );

    // 422: a proof that does not verify (from the wrong size, or tampered).
    assert_eq!(w.add_checkpoint(5, &log.proof("a", 4, 9), &cp9).0, 422);
    let mut bad = log.proof("a", 5, 9);
    bad[0][0] ^= 1;
    assert_eq!(w.add_checkpoint(5, &bad, &cp9).0, 422);
    assert_eq!(w.add_checkpoint(5, &[], &cp9).0, 422);

    // 200 with a good proof.
    let (s, _, body) = w.add_checkpoint(5, &log.proof("a", 5, 9), &cp9);
    assert_cosigned(&w, &cp9, s, &body);

    // Same size: same root is cosigned again; another root is 409.
    let (s, _, body) = w.add_checkpoint(9, &[], &cp9);
    assert_cosigned(&w, &cp9, s, &body);
    log.add_view("other", &leaves("other", 0..9));
    let other9 = log.checkpoint("other", 9);
    let (s, ct, body) = w.add_checkpoint(9, &[], &other9);
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "9\n")
    );

    // A log that pushes a newer checkpoint from a stale old size is told the size to prove from
    // (409), and a proof from that size is cosigned. (The log's own client for this exchange is
    // tested against real auditors in the e2e tests, `tests/tests/witnesses.rs`.)
    let cp12 = log.checkpoint("a", 12);
    let (s, ct, body) = w.add_checkpoint(3, &log.proof("a", 3, 12), &cp12);
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "9\n")
    );
    let (s, _, body) = w.add_checkpoint(9, &log.proof("a", 9, 12), &cp12);
    assert_cosigned(&w, &cp12, s, &body);
    let mut with = cp12.clone();
    let note = Note::parse(format!("{}\n{body}", cp12.note.text()).as_bytes()).expect("lines");
    for sig in note.signatures() {
        with.add_cosignature(sig.clone()).unwrap();
    }
    with.check_quorum(&[w.vkey()], 1, Some(60), ledger_core::time::now_unix())
        .expect("quorum of 1");

    let m = w.metrics();
    assert!(
        m.contains("auditor_add_checkpoint_requests_total{status=\"409\"}"),
        "{m}"
    );
    assert!(m.contains("auditor_logs_witnessed 1"), "{m}");
}

#[test]
fn racing_requests_from_one_old_size_cosign_exactly_once() {
    const N: usize = 100;
    // Every request pauses 400 ms between its checks and its swap, so all of them have passed
    // the old-size check before any writes: only the atomic compare-and-swap keeps this at one.
    let (log, w) = setup_with_env(4 + N, &[("AUDITOR_TEST_DELAY_BEFORE_SWAP_MS", "400")]);
    let cp4 = log.checkpoint("a", 4);
    assert_eq!(w.add_checkpoint(0, &[], &cp4).0, 200);
    let bodies: Vec<Vec<u8>> = (0..N as u64)
        .map(|i| {
            let size = 5 + i;
            ledger_core::witness::format_request(
                4,
                &log.proof("a", 4, size),
                &log.checkpoint("a", size).to_bytes(),
            )
        })
        .collect();
    let barrier = Arc::new(Barrier::new(N));
    let url = format!("{}/add-checkpoint", w.url());
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let barrier = barrier.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                barrier.wait();
                let r = http.post(&url).body(body).send().expect("post");
                (r.status().as_u16(), r.text().unwrap_or_default())
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "exactly one 200: {results:?}");
    assert_eq!(results.iter().filter(|(s, _)| *s == 409).count(), N - 1);
    // Every loser is told the winner's size, and the gossiped state is the winner.
    let (_, g) = w.gossip(ORIGIN);
    let winner = SignedCheckpoint::parse(g.as_bytes())
        .unwrap()
        .checkpoint
        .size;
    assert!((5..5 + N as u64).contains(&winner));
    for (s, body) in &results {
        if *s == 409 {
            assert_eq!(body, &format!("{winner}\n"));
        }
    }
}

#[test]
fn restart_keeps_state_and_rollback_is_refused() {
    let (log, mut w) = setup(30);
    assert_eq!(w.add_checkpoint(0, &[], &log.checkpoint("a", 10)).0, 200);
    let cp20 = log.checkpoint("a", 20);
    assert_eq!(w.add_checkpoint(10, &log.proof("a", 10, 20), &cp20).0, 200);

    w.kill9();
    w.start();
    // The state survived kill -9: from 0 is a conflict at 20.
    let (s, _, body) = w.add_checkpoint(0, &[], &log.checkpoint("a", 25));
    assert_eq!((s, body.as_str()), (409, "20\n"));
    // Rollback: an older checkpoint is refused, whatever old size is claimed.
    let cp15 = log.checkpoint("a", 15);
    assert_eq!(w.add_checkpoint(20, &[], &cp15).0, 400);
    assert_eq!(w.add_checkpoint(10, &log.proof("a", 10, 15), &cp15).0, 409);
    assert_eq!(w.add_checkpoint(0, &[], &cp15).0, 409);
    // Moving forward still works.
    let cp25 = log.checkpoint("a", 25);
    assert_eq!(w.add_checkpoint(20, &log.proof("a", 20, 25), &cp25).0, 200);

    // Removing the log from the configuration and adding it back does not reset it.
    w.kill9();
    w.configure(&[], &[], 60_000);
    w.start();
    assert_eq!(w.add_checkpoint(0, &[], &cp25).0, 404);
    w.kill9();
    w.configure(&[log.entry(None)], &[], 60_000);
    w.start();
    let (s, _, body) = w.add_checkpoint(0, &[], &log.checkpoint("a", 30));
    assert_eq!((s, body.as_str()), (409, "25\n"));

    // A configuration with another key (or hash) for a known origin is refused at start.
    w.kill9();
    let mut changed = log.entry(None);
    changed.vkey =
        ledger_core::key::SignerKey::from_seed(ORIGIN, ledger_core::key::KeyAlg::Ed25519, [7; 32])
            .unwrap()
            .verifier();
    w.configure(&[changed], &[], 60_000);
    let (ok, out) = w.run_expecting_exit();
    assert!(!ok, "must refuse a changed key: {out}");
    assert!(out.contains("already known"), "{out}");
    let mut rehashed = log.entry(None);
    rehashed.hash = TreeHash::Blake3;
    w.configure(&[rehashed], &[], 60_000);
    let (ok, out) = w.run_expecting_exit();
    assert!(!ok, "must refuse a changed hash: {out}");
}

#[test]
fn keygen_writes_a_cosignature_key_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.key");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_auditor"))
            .args(["keygen", "--name", "auditor-9.example", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let key =
        ledger_core::key::SignerKey::parse(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(key.alg(), ledger_core::key::KeyAlg::Cosignature);
    let printed = String::from_utf8(first.stdout).unwrap();
    assert_eq!(printed.trim(), key.verifier().to_string());
    assert!(!run().status.success(), "must not overwrite a key");
}

/// Hardening, item 5: every `add-checkpoint` refusal other than 409 (whose `text/x.tlog.size`
/// body tlog-witness fixes) is RFC 9457 problem+json with the tlog-witness status and a slug.
#[test]
fn refusals_other_than_409_are_problem_json() {
    let (log, w) = setup(20);
    let cp5 = log.checkpoint("a", 5);
    let foreign = foreign_checkpoint();
    let cases = [
        (w.add_checkpoint_raw(b"hello".to_vec()), 400, "malformed"),
        (w.add_checkpoint(6, &[], &cp5), 400, "malformed"),
        (w.add_checkpoint(0, &[], &foreign), 404, "not-found"),
        (w.add_checkpoint(0, &[[1; 32]], &cp5), 422, "bad-request"),
    ];
    for ((status, ct, body), want_status, slug) in cases {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(ct, "application/problem+json", "{body}");
        let p: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(
            p["type"],
            format!("urn:mimi-ledger:problem:{slug}"),
            "{body}"
        );
        assert_eq!(p["status"], want_status, "{body}");
    }
    // A 409 keeps the tlog-witness form.
    assert_eq!(w.add_checkpoint(0, &[], &cp5).0, 200);
    let (status, ct, body) = w.add_checkpoint(0, &[], &log.checkpoint("a", 9));
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );
}
