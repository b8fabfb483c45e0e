//! Against the real `log-server` binary (through the `ledger-e2e` harness): the auditor polls an
//! honest log and cosigns it, the log's checkpoints pushed as a log pushes them are cosigned
//! (handling 409), client audits of old and new checkpoints are `consistent`, and
//! there is no evidence.

mod common;

use std::time::Duration;

use common::{wait_for, LogEntry, TestAuditor};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Role;
use ledger_core::testkit::test_key;
use ledger_core::TreeHash;
use ledger_e2e::{Options, TestLog};

#[test]
fn honest_log_is_witnessed_and_audited_consistent() {
    let log = TestLog::start(Options::new(TreeHash::Blake3));
    log.enroll(Role::Msp, &test_key("msp-a.example"));
    let first = log.checkpoint();
    assert!(first.checkpoint.size >= 1);

    let mut w = TestAuditor::new("auditor-1.example");
    let origin = first.checkpoint.origin.clone();
    w.configure(
        &[LogEntry {
            origin: origin.clone(),
            vkey: log.vkey().clone(),
            hash: log.hash(),
            url: Some(log.url()),
        }],
        &[],
        100,
    );
    w.start();
    // Polling adopts the log's checkpoint and cosigns it.
    let seen = wait_for(Duration::from_secs(20), "first checkpoint cosigned", || {
        let (s, note) = w.gossip(&origin);
        (s == 200).then_some(note)
    });
    let seen = SignedCheckpoint::verify(seen.as_bytes(), log.vkey()).unwrap();
    assert_eq!(seen.verify_cosignatures(&[w.vkey()]).len(), 1);

    // The log grows; push its new checkpoint as a log would, starting from a stale old size
    // (0), so the witness answers 409 and the client retries from the size it names.
    log.enroll(Role::Msp, &test_key("msp-b.example"));
    log.enroll(Role::Prover, &test_key("prover.example"));
    let latest = log.checkpoint();
    assert!(latest.checkpoint.size > first.checkpoint.size);
    // As a log would: from 0 the witness answers 409 with its size, then a proof from that size
    // (fetched from the log) is cosigned.
    let (s, ct, body) = w.add_checkpoint(0, &[], &latest);
    assert_eq!((s, ct.as_str()), (409, "text/x.tlog.size"), "{body}");
    let old_used: u64 = body.trim().parse().expect("a size");
    assert!(
        old_used > 0,
        "the stale old size 0 must have been corrected by a 409"
    );
    let proof = log
        .consistency(old_used, latest.checkpoint.size)
        .consistency;
    let (s, _, body) = w.add_checkpoint(old_used, &proof, &latest);
    assert_eq!(s, 200, "{body}\n{}", w.output());
    let note = ledger_core::note::Note::parse(format!("{}\n{body}", latest.note.text()).as_bytes())
        .expect("cosignature lines");
    let mut cosigned = latest.clone();
    for sig in note.signatures() {
        cosigned.add_cosignature(sig.clone()).unwrap();
    }
    cosigned
        .check_quorum(&[w.vkey()], 1, Some(300), ledger_core::time::now_unix())
        .expect("cosigned");

    // Client audits: the old and the new checkpoint are consistent (the old one via a proof
    // fetched from the log).
    assert_eq!(w.audit(&latest.to_bytes())["verdict"], "consistent");
    let v = w.audit(&first.to_bytes());
    assert_eq!(v["verdict"], "consistent", "{v}");
    assert!(w.evidence().is_empty());
}
