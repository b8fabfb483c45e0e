//! Crash safety: `kill -9` of the real `monitor` binary during catch-up, restart, and every alert is
//! delivered exactly once (the file sink).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{config, kinds, publish, Setup, TileServer};
use ledger_core::entry::Role;
use ledger_core::testkit::{claim, test_key, MemLog};
use ledger_core::TreeHash;

const ORIGIN: &str = "example.com/log";
const WATCHED: &str = "tel:+14155550100";

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
    for kill_after in [3usize, 14] {
        let mut child = s.spawn(&["--once", "--step-bundles", "1"]);
        s.wait_alerts(Duration::from_secs(120), |a| a.len() >= kill_after);
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "the monitor finished before it was killed; slow the server down"
        );
    }
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
