//! The verifiable map (SPEC §9): the real `monitor` binary rebuilds the map from the entries it
//! reads over the C2SP tiles of an in-memory log, and raises `bad-map-root` for a map leaf whose
//! root or size is not what the leaves before it give, and for a checkpoint that does not end in a
//! map leaf; an honest log, sealed after every batch, gives none.

mod common;

use common::{config, kinds, publish, Setup, TileServer};
use ledger_core::entry::{Entry, MapLeaf, Role};
use ledger_core::testkit::{claim, sign_unchecked, test_key, MemLog};
use ledger_core::TreeHash;

const ORIGIN: &str = "example.com/log";

/// Two enrollments in a sealed batch, then `batches` batches of claims of distinct SIIs (one of
/// them a second claim of an earlier SII), each sealed.
fn sealed_log(batches: u64) -> MemLog {
    let mut log = MemLog::new(ORIGIN, TreeHash::Blake3);
    log.enroll(Role::Msp, &test_key("msp-a.example"));
    log.enroll(Role::Msp, &test_key("msp-b.example"));
    log.seal();
    for b in 0..batches {
        claims(&mut log, &format!("b{b}-"), 40 + b * 37);
        log.seal();
    }
    log
}

/// `n` claims of `mailto:<tag><i>@example.com` by msp-a, the last one of an SII claimed before.
fn claims(log: &mut MemLog, tag: &str, n: u64) {
    let msp = test_key("msp-a.example");
    for i in 0..n {
        let sii = if i + 1 == n {
            "mailto:again@example.com".to_string()
        } else {
            format!("mailto:{tag}{i}@example.com")
        };
        let leaf = claim(&msp, &sii, "mimi://msp-a.example/u/x", log.now, &[], None);
        log.submit(leaf.bytes()).expect("admitted");
    }
}

fn setup_for(server: &TileServer, log: &MemLog) -> Setup {
    let s = Setup::new();
    s.write_config(&config(
        &server.url(),
        ORIGIN,
        &log.key.verifier().to_string(),
        "blake3",
        &s.alerts_path(),
        "[rules]\nunattested_claim = \"off\"\n",
    ));
    s
}

/// Runs the monitor once (it must succeed) and returns every alert so far.
fn run(s: &Setup) -> Vec<serde_json::Value> {
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    s.alerts()
}

#[test]
fn honest_sealed_log_gives_no_bad_map_root_as_it_grows() {
    let mut log = sealed_log(3);
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    assert!(run(&s).is_empty(), "{:#?}", s.alerts());
    // Two more batches, across an entry bundle boundary: the map grows from the saved state.
    for b in 0..2 {
        claims(&mut log, &format!("more{b}-"), 150);
        log.seal();
    }
    assert!(log.size() > 512);
    server.set_files(publish(&log));
    let (ok, err) = s.run_once(&["--step-bundles", "1"]);
    assert!(ok, "{err}");
    assert!(s.alerts().is_empty(), "{:#?}", s.alerts());
    assert!(err.contains(&format!("size={}", log.size())), "{err}");
}

#[test]
fn map_leaf_with_a_wrong_root_is_bad_map_root() {
    let mut log = sealed_log(2);
    let stale_root = log.map().root();
    claims(&mut log, "x", 5);
    // The right size, but the root of the map before the last batch.
    let index = log.push(log.map_leaf(log.size(), stale_root));
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let alerts = run(&s);
    assert_eq!(kinds(&alerts), ["bad-map-root"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], index);
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["log"], ORIGIN);
    let detail = alerts[0]["detail"].as_str().expect("detail");
    assert!(detail.contains("says root"), "{detail}");
    assert!(!detail.contains("says size"), "{detail}");
    // Not repeated by the next run.
    assert_eq!(run(&s).len(), 1);
}

#[test]
fn map_leaf_whose_size_is_not_its_index_is_bad_map_root() {
    let mut log = sealed_log(2);
    claims(&mut log, "x", 5);
    // The right root, but the size of the leaf before it.
    let root = log.map().root();
    let index = log.push(log.map_leaf(log.size() - 1, root));
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let alerts = run(&s);
    assert_eq!(kinds(&alerts), ["bad-map-root"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], index);
    let detail = alerts[0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&format!("says size {}, not its own index", index - 1)),
        "{detail}"
    );
    assert!(!detail.contains("says root"), "{detail}");
}

#[test]
fn checkpoint_that_does_not_end_in_a_map_leaf_is_bad_map_root() {
    let mut log = sealed_log(2);
    let sealed_at = log.size() - 1;
    claims(&mut log, "x", 5);
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let alerts = run(&s);
    assert_eq!(kinds(&alerts), ["bad-map-root"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], log.size());
    let detail = alerts[0]["detail"].as_str().expect("detail");
    assert!(detail.contains("does not end in a map leaf"), "{detail}");
    assert!(
        detail.contains(&format!("the last map leaf is at index {sealed_at}")),
        "{detail}"
    );
    // The log seals the batch: its next checkpoint is fine, and nothing is repeated.
    log.seal();
    server.set_files(publish(&log));
    assert_eq!(run(&s).len(), 1, "{:#?}", s.alerts());
}

#[test]
fn log_without_any_map_leaf_is_bad_map_root() {
    let mut log = MemLog::new(ORIGIN, TreeHash::Blake3);
    log.enroll(Role::Msp, &test_key("msp-a.example"));
    claims(&mut log, "x", 3);
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let alerts = run(&s);
    assert_eq!(kinds(&alerts), ["bad-map-root"], "{alerts:#?}");
    assert!(alerts[0]["detail"]
        .as_str()
        .expect("detail")
        .contains("there is no map leaf"));
}

#[test]
fn map_leaf_not_signed_by_the_log_is_bad_entry() {
    let mut log = sealed_log(1);
    claims(&mut log, "x", 3);
    // Right size and root, signed by an MSP: not the log's commitment, and an entry the log
    // should have refused.
    let forged = sign_unchecked(
        Entry::Map(MapLeaf {
            size: log.size(),
            root: log.map().root(),
        }),
        &test_key("msp-a.example"),
    );
    let index = log.push(forged);
    claims(&mut log, "y", 3);
    log.seal();
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let alerts = run(&s);
    assert_eq!(kinds(&alerts), ["bad-entry"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], index);
    assert!(
        alerts[0]["detail"]
            .as_str()
            .expect("detail")
            .contains("a map entry must be signed by example.com/log"),
        "{alerts:#?}"
    );
}
