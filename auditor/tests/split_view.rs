//! A log that holds one signer key but two diverging trees, showing tree A (size 10) to some
//! callers and tree B (size 12) to others, is caught — every run:
//!
//! - witness W1 cosigns A; B's branch is refused (422 with B's proof, 409 at A's size), and the
//!   same-size refusal is already evidence (split view);
//! - W2 cosigns B and gossips with W1: it fetches A from W1 and the log's proof on B's view does
//!   not link them: evidence (inconsistent checkpoint);
//! - `POST /v1/audit` of the other branch's checkpoint says `inconsistent`;
//! - the evidence holds both log-signed notes, and alert lines are written.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{leaves, wait_for, FakeLog, TestAuditor};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::TreeHash;

const ORIGIN: &str = "split.example/log";

/// Both notes of an evidence object verify under the log key; returns their checkpoints.
fn both_notes(log: &FakeLog, e: &serde_json::Value) -> Vec<SignedCheckpoint> {
    let cps = e["checkpoints"].as_array().expect("checkpoints");
    assert_eq!(cps.len(), 2);
    cps.iter()
        .map(|c| {
            let note = c["note"].as_str().expect("note");
            SignedCheckpoint::verify(note.as_bytes(), &log.key.verifier()).expect("log-signed")
        })
        .collect()
}

#[test]
fn split_view_is_refused_gossiped_audited_and_kept_as_evidence() {
    let log = FakeLog::new(ORIGIN, TreeHash::Blake3);
    // Common prefix of 4 leaves, then the trees diverge.
    let mut a = leaves("common", 0..4);
    a.extend(leaves("A", 4..10));
    let mut b = leaves("common", 0..4);
    b.extend(leaves("B", 4..12));
    log.add_view("a", &a);
    log.add_view("b", &b);
    log.serve();
    let a10 = log.checkpoint("a", 10);
    let b10 = log.checkpoint("b", 10);
    let b12 = log.checkpoint("b", 12);
    assert_ne!(a10.checkpoint.root, b10.checkpoint.root);

    let mut w1 = TestAuditor::new("w1.example/witness");
    w1.configure(&[log.entry(Some("a"))], &[], 100);
    w1.start();
    let mut w2 = TestAuditor::new("w2.example/witness");
    w2.configure(&[log.entry(Some("b"))], &[w1.url()], 100);
    w2.start();

    // The log pushes B to W2, then A to W1. (In this order: W2 gossips with W1, and would
    // otherwise adopt A as its first view before B reached it.)
    assert_eq!(w2.add_checkpoint(0, &[], &b12).0, 200);
    assert_eq!(w1.add_checkpoint(0, &[], &a10).0, 200);

    // W1 refuses the second branch: B's proof from 10 does not start at A's root (422), and B at
    // A's size is a conflict (409).
    assert_eq!(w1.add_checkpoint(10, &log.proof("b", 10, 12), &b12).0, 422);
    let (s, ct, body) = w1.add_checkpoint(10, &[], &b10);
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "10\n")
    );
    // W1's state did not move.
    let (_, g) = w1.gossip(ORIGIN);
    assert_eq!(
        SignedCheckpoint::parse(g.as_bytes()).unwrap().checkpoint,
        a10.checkpoint
    );

    // The refused same-size checkpoint is evidence at W1 (a split view needs no proof).
    let ev1 = wait_for(Duration::from_secs(20), "split-view evidence at W1", || {
        w1.evidence()
            .into_iter()
            .find(|e| e["kind"] == "split-view")
    });
    let cps = both_notes(&log, &ev1);
    let mut roots: Vec<_> = cps.iter().map(|c| c.checkpoint.root).collect();
    roots.sort();
    let mut expect = vec![a10.checkpoint.root, b10.checkpoint.root];
    expect.sort();
    assert_eq!(roots, expect);
    assert!(cps.iter().all(|c| c.checkpoint.size == 10));

    // Gossip: W2 polls W1's checkpoint (A at 10) and asks the log (its view, B) for a proof from
    // 10 to 12; it cannot link A to B.
    log.published.store(true, Ordering::SeqCst);
    let ev2 = wait_for(Duration::from_secs(20), "gossip evidence at W2", || {
        w2.evidence()
            .into_iter()
            .find(|e| e["kind"] == "inconsistent-checkpoint")
    });
    let cps = both_notes(&log, &ev2);
    let got: Vec<_> = cps.iter().map(|c| c.checkpoint.clone()).collect();
    assert!(got.contains(&a10.checkpoint), "{ev2}");
    assert!(got.contains(&b12.checkpoint), "{ev2}");
    let sources: Vec<&str> = ev2["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.iter().any(|s| s.starts_with("peer ")),
        "one note came from the peer: {sources:?}"
    );

    // Client audit of the other branch: inconsistent, with the evidence.
    let v = w2.audit(&a10.to_bytes());
    assert_eq!(v["verdict"], "inconsistent", "{v}");
    assert_eq!(both_notes(&log, &v["evidence"]).len(), 2);
    let v = w1.audit(&b10.to_bytes());
    assert_eq!(v["verdict"], "inconsistent", "{v}");
    // Its own branch is consistent.
    assert_eq!(w1.audit(&a10.to_bytes())["verdict"], "consistent");
    assert_eq!(w2.audit(&b12.to_bytes())["verdict"], "consistent");
    assert_eq!(
        w2.audit(&log.checkpoint("b", 11).to_bytes())["verdict"],
        "consistent"
    );

    // Alerts: SPEC §8 lines on stdout and in the alerts file.
    let alerts = wait_for(Duration::from_secs(10), "alert file", || {
        std::fs::read_to_string(w2.dir.path().join("alerts.jsonl")).ok()
    });
    let line: serde_json::Value =
        serde_json::from_str(alerts.lines().next().expect("one alert")).unwrap();
    assert_eq!(line["kind"], "inconsistent-checkpoint");
    assert_eq!(line["log"], ORIGIN);
    assert_eq!(line["severity"], "critical");
    assert!(
        w1.output().contains("\"kind\":\"split-view\""),
        "{}",
        w1.output()
    );
    // The same contradiction seen again is stored once.
    let n = w2.evidence().len();
    assert_eq!(w2.audit(&a10.to_bytes())["verdict"], "inconsistent");
    assert_eq!(w2.evidence().len(), n);
    assert!(w2.metrics().contains(&format!("auditor_evidence {n}\n")));
}

#[test]
fn audit_verdicts_for_unknown_logs_and_bad_signatures() {
    let log = FakeLog::new(ORIGIN, TreeHash::Sha256);
    log.add_view("a", &leaves("a", 0..5));
    let mut w = TestAuditor::new("w.example/witness");
    w.configure(&[log.entry(None)], &[], 60_000);
    w.start();
    let cp = log.checkpoint("a", 3);
    // No view yet: unverifiable (the auditor cannot tell).
    assert_eq!(w.audit(&cp.to_bytes())["verdict"], "unverifiable");
    assert_eq!(w.add_checkpoint(0, &[], &cp).0, 200);
    assert_eq!(w.audit(&cp.to_bytes())["verdict"], "consistent");
    // A different size without a log URL to fetch a proof from: unverifiable, never evidence.
    assert_eq!(
        w.audit(&log.checkpoint("a", 5).to_bytes())["verdict"],
        "unverifiable"
    );
    let other = FakeLog::new("other.example/log", TreeHash::Sha256);
    other.add_view("a", &leaves("o", 0..2));
    assert_eq!(
        w.audit(&other.checkpoint("a", 2).to_bytes())["verdict"],
        "unknown-log"
    );
    let forged =
        ledger_core::key::SignerKey::from_seed(ORIGIN, ledger_core::key::KeyAlg::Ed25519, [3; 32])
            .unwrap();
    let bad = SignedCheckpoint::sign(cp.checkpoint.clone(), &forged).unwrap();
    assert_eq!(w.audit(&bad.to_bytes())["verdict"], "unverifiable");
    assert_eq!(w.audit(b"not a note")["verdict"], "unverifiable");
    assert!(w.evidence().is_empty());
}
