//! The real `monitor` binary against a real `log-server` (started by the `ledger-e2e` harness):
//! honest traffic gives no alert; a rogue claimant, a burst, a conflict, an unattested claim and a
//! prover's revocation each give their kind, naming the entry.

mod common;

use common::{config, kinds, Setup};
use ledger_core::entry::{Action, Role};
use ledger_core::testkit::{attestation, claim, revoke, test_key};
use ledger_e2e::{now, Options, TestLog, TEST_ORIGIN};

const WATCHED: &str = "tel:+14155550100";

/// Runs the monitor once and returns the alerts it added.
fn new_alerts(s: &Setup, seen: &mut usize) -> Vec<serde_json::Value> {
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    let all = s.alerts();
    let fresh = all[*seen..].to_vec();
    *seen = all.len();
    fresh
}

#[test]
fn rules_fire_on_a_real_log_and_honest_traffic_is_quiet() {
    let tl = TestLog::start(Options::default());
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let msp_c = test_key("msp-c.example");
    let rogue = test_key("rogue.example");
    let burst = test_key("burst.example");
    let prover = test_key("prover.example");
    for k in [&msp_a, &msp_b, &msp_c, &rogue, &burst] {
        tl.enroll(Role::Msp, k);
    }
    tl.enroll(Role::Prover, &prover);
    let t = now();
    let ssi_a = "mimi://msp-a.example/u/alice";
    let att = attestation(
        &prover,
        Action::Claim,
        WATCHED,
        Some(("msp-a.example", ssi_a)),
        t - 60,
    );
    tl.submit_ok(&claim(&msp_a, WATCHED, ssi_a, t, &["Personal"], Some(att)));
    tl.submit_ok(&claim(
        &msp_b,
        "mailto:bob@example.com",
        "mimi://msp-b.example/u/bob",
        t,
        &[],
        None,
    ));
    for i in 0..5 {
        tl.submit_ok(&claim(
            &burst,
            &format!("mailto:b{i}@example.com"),
            "mimi://burst.example/u/x",
            t,
            &[],
            None,
        ));
    }

    let s = Setup::new();
    s.write_config(&config(
        &tl.url(),
        TEST_ORIGIN,
        &tl.vkey().to_string(),
        "blake3",
        &s.alerts_path(),
        &format!(
            "[[watch]]\nsii = \"{WATCHED}\"\nallowed = [\"msp-a.example\"]\n\n\
             [[watch]]\nprefix = \"mailto:watched-\"\nallowed = [\"msp-a.example\"]\n\n\
             [rules]\ntrusted_provers = [\"prover.example\"]\nclaim_burst = {{ max_siis = 5, window_s = 3600 }}\n"
        ),
    ));
    let mut seen = 0;
    let fresh = new_alerts(&s, &mut seen);
    assert!(fresh.is_empty(), "honest traffic: {fresh:#?}");

    // A rogue MSP claims the watched number: exactly one unexpected-claimant, naming the index.
    let r = tl.submit_ok(&claim(
        &rogue,
        WATCHED,
        "mimi://rogue.example/u/mallory",
        t,
        &[],
        None,
    ));
    let fresh = new_alerts(&s, &mut seen);
    let unexpected: Vec<_> = fresh
        .iter()
        .filter(|a| a["kind"] == "unexpected-claimant")
        .collect();
    assert_eq!(unexpected.len(), 1, "{fresh:#?}");
    assert_eq!(unexpected[0]["index"], r.index);
    assert_eq!(unexpected[0]["sii"], WATCHED);
    assert_eq!(unexpected[0]["msp"], "rogue.example");
    assert_eq!(unexpected[0]["severity"], "critical");
    assert!(fresh.iter().all(|a| a["index"] == r.index), "{fresh:#?}");

    // A sixth distinct SII by one MSP within the window: claim-burst.
    let r = tl.submit_ok(&claim(
        &burst,
        "mailto:b5@example.com",
        "mimi://burst.example/u/x",
        t,
        &[],
        None,
    ));
    let fresh = new_alerts(&s, &mut seen);
    assert_eq!(kinds(&fresh), vec!["claim-burst"], "{fresh:#?}");
    assert_eq!(fresh[0]["index"], r.index);
    assert_eq!(fresh[0]["msp"], "burst.example");

    // A second MSP maps bob's address: conflicting-claim.
    let r = tl.submit_ok(&claim(
        &msp_c,
        "mailto:bob@example.com",
        "mimi://msp-c.example/u/bob",
        t,
        &[],
        None,
    ));
    let fresh = new_alerts(&s, &mut seen);
    assert_eq!(kinds(&fresh), vec!["conflicting-claim"], "{fresh:#?}");
    assert_eq!(fresh[0]["index"], r.index);
    assert_eq!(fresh[0]["sii"], "mailto:bob@example.com");
    assert!(fresh[0]["detail"]
        .as_str()
        .unwrap()
        .contains("msp-b.example"));

    // The allowed MSP claims a watched address without an attestation: unattested-claim.
    let r = tl.submit_ok(&claim(
        &msp_a,
        "mailto:watched-1@example.com",
        "mimi://msp-a.example/u/w",
        t,
        &[],
        None,
    ));
    let fresh = new_alerts(&s, &mut seen);
    assert_eq!(kinds(&fresh), vec!["unattested-claim"], "{fresh:#?}");
    assert_eq!(fresh[0]["index"], r.index);

    // A prover revokes msp-c's mapping (R10): revoked-by-prover.
    let ssi_c = "mimi://msp-c.example/u/bob";
    let att = attestation(
        &prover,
        Action::Revoke,
        "mailto:bob@example.com",
        Some(("msp-c.example", ssi_c)),
        t - 60,
    );
    let r = tl.submit_ok(&revoke(
        &prover,
        "msp-c.example",
        "mailto:bob@example.com",
        ssi_c,
        t,
        Some(att),
    ));
    let fresh = new_alerts(&s, &mut seen);
    assert_eq!(kinds(&fresh), vec!["revoked-by-prover"], "{fresh:#?}");
    assert_eq!(fresh[0]["index"], r.index);

    // Nothing new: nothing repeated.
    assert!(new_alerts(&s, &mut seen).is_empty());
}
