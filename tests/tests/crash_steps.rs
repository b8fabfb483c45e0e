//! Fault injection at every step of the sequencer's commit (the numbered list in
//! `log-server/src/sequencer.rs`, points in `log-server/src/fault.rs`, compiled into test builds):
//! the real `log-server` is made to crash (abort, as `kill -9`) at each step of a batch, then
//! restarted without the fault. After recovery, every acknowledged leaf is at its index, the files
//! of `public/` (what a static server serves) hash to the last signed checkpoint, the map equals a
//! rebuild from the leaves, and every checkpoint served before is consistent with the next; the
//! leaf whose batch crashed is in the log exactly when the crash came after the commit point
//! (step 6), and resubmitting it gets a receipt either way.
//!
//! And I/O errors at the file steps (and a full disk) are refused with 503 and `Retry-After`
//! while the log keeps serving reads, and writing resumes with no restart.

use std::time::Duration;

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Leaf, Role};
use ledger_core::key::SignerKey;
use ledger_core::testkit::{claim, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{assert_map_rebuilds, mail_claim, mail_sii, now, Options, TestLog};

/// Leaves before the faulty batch: a full tile and bundle and partial ones.
const BEFORE: u64 = 300;

/// The crash points in commit order, and whether the batch is durable when the crash hits.
const CRASH_POINTS: [(&str, bool); 8] = [
    ("write-hashes", false),
    ("write-tile", false),
    ("files-written", false),
    ("files-renamed", false),
    ("files-synced", false),
    ("index-committed", true),
    ("locked", true),
    ("checkpoint-published", true),
];

struct Acked {
    index: u64,
    leaf: Vec<u8>,
}

fn fill(log: &TestLog, msp: &SignerKey, tag: &str, n: u64) -> Vec<Acked> {
    let t = now();
    (0..n)
        .map(|i| {
            let leaf = mail_claim(msp, tag, i, t);
            let r = log.submit_ok(&leaf);
            Acked {
                index: r.index,
                leaf: leaf.bytes().to_vec(),
            }
        })
        .collect()
}

/// The checks after recovery: acknowledged leaves at their indices, the files and the HTTP
/// tiles hash to the checkpoint, the map rebuilds, and `before` is consistent with it.
fn check_recovered(log: &TestLog, acked: &[Acked], before: &SignedCheckpoint) -> SignedCheckpoint {
    let cp = log.checkpoint();
    let leaves = log.verify_public_files(&cp);
    assert_eq!(log.verify_tree(&cp), leaves, "HTTP tiles and files differ");
    for a in acked {
        assert_eq!(
            leaves.get(a.index as usize),
            Some(&a.leaf),
            "acknowledged leaf {} is not at its index",
            a.index
        );
    }
    assert_map_rebuilds(log.hash(), &leaves);
    log.assert_consistent(before, &cp);
    cp
}

fn one_claim(msp: &SignerKey, tag: &str) -> Leaf {
    claim(
        msp,
        &mail_sii(tag, 0),
        "mimi://msp-a.example/u/y",
        now(),
        &[],
        None,
    )
}

/// A crash at each step of a batch's commit, then recovery.
#[test]
fn a_crash_at_every_commit_step_recovers_every_acknowledged_leaf() {
    for (point, durable) in CRASH_POINTS {
        let mut log = TestLog::start(Options::new(TreeHash::Sha256));
        let msp = test_key("msp-a.example");
        log.enroll(Role::Msp, &msp);
        let mut acked = fill(&log, &msp, "before", BEFORE);
        let before = log.checkpoint();
        log.sigterm();

        let faulty = log
            .options()
            .clone()
            .env("LEDGER_FAULT", &format!("crash:{point}"));
        log.try_start_with(&faulty)
            .unwrap_or_else(|e| panic!("{point}: start: {}", e.output));
        let leaf = one_claim(&msp, point);
        // The connection breaks when the server crashes: no answer, or no 200.
        let answered = log
            .http()
            .post(format!("{}/v1/add", log.url()))
            .header("content-type", "text/plain")
            .body(leaf.bytes().to_vec())
            .send()
            .map(|r| r.status().as_u16());
        assert!(
            !matches!(answered, Ok(200)),
            "{point}: the crashing batch was answered {answered:?}"
        );
        let status = log
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{point}: the server did not crash"));
        assert!(!status.success(), "{point}: {status}");
        assert!(
            log.output()
                .contains(&format!("fault injection: crashing at {point}")),
            "{point}: crashed elsewhere:\n{}",
            log.output()
        );

        log.restart();
        let cp = check_recovered(&log, &acked, &before);
        let grew = cp.checkpoint.size - before.checkpoint.size;
        assert_eq!(
            grew,
            if durable { 2 } else { 0 },
            "{point}: the crashed batch (a claim and its map leaf) is in the log exactly when the \
             crash came after the commit point"
        );
        // Resubmitting it is answered with a receipt: the same index when it was durable.
        let r = log.submit_ok(&leaf);
        if durable {
            assert_eq!(
                r.index, before.checkpoint.size,
                "{point}: idempotent resubmission"
            );
        }
        acked.push(Acked {
            index: r.index,
            leaf: leaf.bytes().to_vec(),
        });
        acked.extend(fill(&log, &msp, &format!("after-{point}"), 3));
        check_recovered(&log, &acked, &cp);
    }
}

/// I/O errors at the file steps and before the index commit, and a full disk: refused with 503
/// and `Retry-After` (`storage-unavailable`, `storage-full`), reads go on, nothing acknowledged
/// is lost, and the next batch is written with no restart.
#[test]
fn io_errors_while_committing_are_refused_and_writing_resumes_without_a_restart() {
    for (fault, slug) in [
        ("fail:write-hashes:2", "storage-unavailable"),
        ("fail:write-tile:2", "storage-unavailable"),
        ("full:write-tile:1", "storage-full"),
        ("fail:sync-files:1", "storage-unavailable"),
        ("full:sync-files:1", "storage-full"),
        ("fail:index-commit:1", "storage-unavailable"),
    ] {
        let mut log = TestLog::start(Options::new(TreeHash::Blake3));
        let msp = test_key("msp-a.example");
        log.enroll(Role::Msp, &msp);
        let mut acked = fill(&log, &msp, "before", BEFORE);
        let before = log.checkpoint();
        log.sigterm();
        log.try_start_with(&log.options().clone().env("LEDGER_FAULT", fault))
            .unwrap_or_else(|e| panic!("{fault}: start: {}", e.output));

        let failures: u64 = fault
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let leaf = one_claim(&msp, "io");
        for attempt in 0..failures {
            let refused = log
                .submit(leaf.bytes())
                .err()
                .unwrap_or_else(|| panic!("{fault}: attempt {attempt} was not refused"));
            assert_eq!(refused.status, 503, "{fault}: {}", refused.text());
            assert_eq!(
                refused.problem_slug().as_deref(),
                Some(slug),
                "{fault}: {}",
                refused.text()
            );
            assert!(
                refused.header("retry-after").is_some(),
                "{fault}: no Retry-After"
            );
            // Reads go on, at the unchanged head.
            assert_eq!(log.checkpoint().checkpoint, before.checkpoint, "{fault}");
            let cp = log.checkpoint();
            log.verify_public_files(&cp);
        }
        // The next attempt is written, with no restart.
        let r = log.submit_ok(&leaf);
        assert_eq!(r.index, before.checkpoint.size, "{fault}");
        acked.push(Acked {
            index: r.index,
            leaf: leaf.bytes().to_vec(),
        });
        acked.extend(fill(&log, &msp, "after", 300));
        let cp = check_recovered(&log, &acked, &before);
        // And a restart finds the same.
        log.restart();
        check_recovered(&log, &acked, &cp);
    }
}
