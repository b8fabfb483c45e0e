//! Crash safety: `kill -9` of the real `monitor` binary during catch-up, restart, and every alert is
//! delivered exactly once (the file sink); the state the rules and the map (SPEC §9) keep in memory
//! is restored from its snapshots and journals, so a resumed monitor raises exactly what an
//! uninterrupted one does.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{config, kinds, publish, Setup, TileServer};
use ledger_core::entry::Role;
use ledger_core::testkit::{claim, revoke, test_key, MemLog};
use ledger_core::TreeHash;

const ORIGIN: &str = "example.com/log";
const WATCHED: &str = "tel:+14155550100";

/// Runs `monitor --once <args>` and kills it (SIGKILL) once it has delivered `after[0]` alerts,
/// then again at `after[1]`: both runs must have been killed, not finished.
fn kill_during_catch_up(s: &Setup, args: &[&str], after: [usize; 2]) {
    for kill_after in after {
        let mut child = s.spawn(&[&["--once"][..], args].concat());
        s.wait_alerts(Duration::from_secs(120), |a| a.len() >= kill_after);
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "the monitor finished before it was killed; slow the server down"
        );
    }
}

#[test]
fn kill_9_during_catch_up_loses_and_repeats_no_alert() {
    let mut log = MemLog::new(ORIGIN, TreeHash::Sha256);
    let msp = test_key("msp-a.example");
    let rogue = test_key("rogue.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Msp, &rogue);
    let t = log.now;
    let mut expected = BTreeSet::new();
    for i in 0..3000u64 {
        // Batches of 100, each sealed with its map leaf.
        if i % 100 == 0 {
            log.seal();
        }
        let leaf = if i % 100 == 50 {
            claim(
                &rogue,
                WATCHED,
                &format!("mimi://rogue.example/u/{i}"),
                t,
                &[],
                None,
            )
        } else {
            claim(
                &msp,
                &format!("mailto:u{i}@example.com"),
                "mimi://msp-a.example/u/x",
                t,
                &[],
                None,
            )
        };
        let index = log.push(leaf);
        if i % 100 == 50 {
            expected.insert(index);
        }
    }
    log.seal();
    let server = TileServer::start(publish(&log));
    server.set_delay(Duration::from_millis(40));
    let s = Setup::new();
    s.write_config(&config(
        &server.url(),
        ORIGIN,
        &log.key.verifier().to_string(),
        "sha256",
        &s.alerts_path(),
        &format!("[[watch]]\nsii = \"{WATCHED}\"\nallowed = [\"msp-a.example\"]\n\n[rules]\nunattested_claim = \"off\"\n"),
    ));
    // Two crashes at different points, then a clean run to the end.
    kill_during_catch_up(&s, &["--step-bundles", "1"], [3, 14]);
    server.set_delay(Duration::ZERO);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    let alerts = s.alerts();
    assert!(
        kinds(&alerts).iter().all(|k| k == "unexpected-claimant"),
        "{alerts:#?}"
    );
    let indices: Vec<u64> = alerts
        .iter()
        .map(|a| a["index"].as_u64().unwrap())
        .collect();
    let unique: BTreeSet<u64> = indices.iter().copied().collect();
    assert_eq!(
        indices.len(),
        unique.len(),
        "duplicated alerts: {indices:?}"
    );
    assert_eq!(unique, expected, "missed alerts");
    // And a further run repeats nothing.
    assert!(s.run_once(&[]).0);
    assert_eq!(s.alerts().len(), expected.len());
}

/// What an alert says, without its delivery time.
fn essence(a: &serde_json::Value) -> (String, u64, String) {
    (
        a["kind"].as_str().unwrap_or("").to_string(),
        a["index"].as_u64().unwrap_or(u64::MAX),
        a["detail"].as_str().unwrap_or("").to_string(),
    )
}

/// The stateful rules (`conflicting-claim`, `claim-burst`) and the rebuilt map keep their state in
/// memory, journaled with each step and snapshotted: killed twice mid-run (with snapshots forced
/// often), the monitor must deliver exactly what an uninterrupted run delivers — among it the
/// `bad-map-root` of the dishonest map leaves (a wrong root, a wrong size), which the log hides
/// among honest batches of every size, most of them after the kills, and no other (a map restored
/// wrongly would contradict the honest map leaves after the restart, or miss the bad ones).
#[test]
fn kill_9_with_stateful_rules_matches_an_uninterrupted_run() {
    let mut log = MemLog::new(ORIGIN, TreeHash::Sha256);
    let a = test_key("msp-a.example");
    let b = test_key("msp-b.example");
    log.enroll(Role::Msp, &a);
    log.enroll(Role::Msp, &b);
    let t = log.now;
    let number = |i: u64| format!("tel:+1415555{i:04}");
    let ssi = |i: u64| format!("mimi://msp-a.example/u/{i}");
    let mut conflicts = BTreeSet::new();
    let mut bad_map_leaves = BTreeSet::new();
    let mut a_claims = 0u64;
    // Batches of 1 to 97 rounds of the loop below (1 to 3 entries each), each sealed with its map
    // leaf; now and then a map leaf with a wrong root or a wrong size in the middle of a batch.
    let batch_rounds = [1u64, 3, 17, 60, 97, 41];
    let (mut rounds_left, mut batches) = (0, 0);
    for i in 0..4000u64 {
        if rounds_left == 0 {
            log.seal();
            rounds_left = batch_rounds[batches % batch_rounds.len()];
            batches += 1;
        }
        rounds_left -= 1;
        if i % 613 == 300 {
            let root = if i % 2 == 0 {
                [7; 32]
            } else {
                log.map().root()
            };
            let size = if i % 2 == 0 {
                log.size()
            } else {
                log.size() + 1
            };
            bad_map_leaves.insert(log.push(log.map_leaf(size, root)));
        }
        log.push(claim(&a, &number(i), &ssi(i), t, &[], None));
        a_claims += 1;
        if i >= 50 && i % 50 == 25 {
            let target = i - 25;
            // Every other time A revokes first: B's claim then conflicts with nothing.
            let revoked = i % 100 == 25;
            if revoked {
                log.push(revoke(
                    &a,
                    "msp-a.example",
                    &number(target),
                    &ssi(target),
                    t,
                    None,
                ));
            }
            let index = log.push(claim(
                &b,
                &number(target),
                "mimi://msp-b.example/u/1",
                t,
                &[],
                None,
            ));
            if !revoked {
                conflicts.insert(index);
            }
        }
    }
    log.seal();
    let server = TileServer::start(publish(&log));
    let rules = "[rules]\nconflicting_claim = \"all\"\nunattested_claim = \"off\"\n\
                 claim_burst = { max_siis = 300, window_s = 100000 }\n";
    let write = |s: &Setup| {
        s.write_config(&config(
            &server.url(),
            ORIGIN,
            &log.key.verifier().to_string(),
            "sha256",
            &s.alerts_path(),
            rules,
        ))
    };

    // The reference: one uninterrupted run.
    let reference = Setup::new();
    write(&reference);
    let (ok, err) = reference.run_once(&[]);
    assert!(ok, "{err}");
    let want: Vec<_> = reference.alerts().iter().map(essence).collect();
    let got_conflicts: BTreeSet<u64> = want
        .iter()
        .filter(|(k, _, _)| k == "conflicting-claim")
        .map(|(_, i, _)| *i)
        .collect();
    assert_eq!(
        got_conflicts, conflicts,
        "conflicting-claim where A still maps the SII"
    );
    let bursts = want.iter().filter(|(k, _, _)| k == "claim-burst").count() as u64;
    assert_eq!(
        bursts,
        a_claims / 301,
        "one claim-burst per 301 distinct SIIs of A"
    );
    assert!(want.iter().all(
        |(_, _, d)| !d.contains("msp-b.example claimed") || d.contains("msp-a.example (index")
    ));
    let got_bad_map: BTreeSet<u64> = want
        .iter()
        .filter(|(k, _, _)| k == "bad-map-root")
        .map(|(_, i, _)| *i)
        .collect();
    assert_eq!(
        got_bad_map, bad_map_leaves,
        "bad-map-root exactly at the dishonest map leaves"
    );
    assert!(bad_map_leaves.len() >= 6, "{bad_map_leaves:?}");

    // Killed twice, with snapshots every few KiB of journal, then run to the end.
    let s = Setup::new();
    write(&s);
    server.set_delay(Duration::from_millis(40));
    let snap = ["--step-bundles", "1", "--snapshot-after-bytes", "4096"];
    kill_during_catch_up(&s, &snap, [4, 16]);
    server.set_delay(Duration::ZERO);
    let (ok, err) = s.run_once(&snap);
    assert!(ok, "{err}");
    let got: Vec<_> = s.alerts().iter().map(essence).collect();
    assert_eq!(got, want, "the crashed runs delivered something else");
    for folder in ["rules", "map"] {
        let snapshots = std::fs::read_dir(s.state().join(folder))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(snapshots, 1, "a {folder} snapshot was written");
    }
    assert!(s.run_once(&snap).0);
    assert_eq!(
        s.alerts().len(),
        want.len(),
        "a further run repeats nothing"
    );
}
