//! The real `monitor` binary against a test server that serves the C2SP tiles of an in-memory log,
//! honest or with one change each: the matching alert, every time.

mod common;

use base64::Engine as _;
use common::{attested_log, config, kinds, publish, publish_leaves, Setup, TileServer};
use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::testkit::{claim, test_key, MemLog};
use ledger_core::tile::{decode_entry_bundle, encode_entry_bundle, Tile, DATA_LEVEL};

const ORIGIN: &str = "example.com/log";

/// An honest log: two enrollments and `claims` attested claims of distinct SIIs by one MSP, sealed
/// after every batch.
fn honest_log(claims: u64, tag: &str) -> MemLog {
    attested_log(ORIGIN, claims, |_| tag.to_string())
}

fn setup_for(server: &TileServer, log: &MemLog) -> Setup {
    let s = Setup::new();
    s.write_config(&config(
        &server.url(),
        ORIGIN,
        &log.key.verifier().to_string(),
        "blake3",
        &s.alerts_path(),
        "",
    ));
    s
}

#[test]
fn honest_log_gives_no_alert_and_growth_is_followed() {
    let log = honest_log(300, "a");
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    assert!(
        s.alerts().is_empty(),
        "alerts on an honest log: {:#?}",
        s.alerts()
    );
    assert!(err.contains("verified checkpoint"), "{err}");
    // The log grows past the partial bundle: incremental catch-up, consistency from the tiles.
    let mut log = log;
    let msp = test_key("msp-a.example");
    for i in 0..250u64 {
        let leaf = claim(
            &msp,
            &format!("mailto:b{i}@example.com"),
            "mimi://msp-a.example/u/b",
            log.now,
            &[],
            None,
        );
        log.submit(leaf.bytes()).expect("admitted");
    }
    log.seal();
    server.set_files(publish(&log));
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    assert!(
        s.alerts().is_empty(),
        "alerts on an honest log: {:#?}",
        s.alerts()
    );
    assert!(err.contains(&format!("size={}", log.size())), "{err}");
}

#[test]
fn tampered_entry_byte_gives_root_mismatch_and_bad_entry() {
    let log = honest_log(300, "a");
    let mut files = publish(&log);
    // Change one byte of entry 260 (in bundle 1, a claim): a letter of its SSI.
    let bundle = Tile {
        level: DATA_LEVEL,
        index: 1,
        width: (log.size() - 256) as u16,
    };
    let mut entries = decode_entry_bundle(&files[&bundle.path()]).unwrap();
    let e = &mut entries[4];
    let pos = e
        .windows(4)
        .position(|w| w == b"/u/a")
        .expect("ssi in entry")
        + 3;
    e[pos] = b'z';
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    files.insert(bundle.path(), encode_entry_bundle(&refs));
    let server = TileServer::start(files);
    let s = setup_for(&server, &log);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    let alerts = s.alerts();
    let k = kinds(&alerts);
    assert!(k.contains(&"root-mismatch".to_string()), "{alerts:#?}");
    let bad: Vec<_> = alerts.iter().filter(|a| a["kind"] == "bad-entry").collect();
    assert_eq!(bad.len(), 1, "{alerts:#?}");
    assert_eq!(bad[0]["index"], 260);
    // Halted: a second run raises nothing new.
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert_eq!(s.alerts().len(), alerts.len(), "no repeats");
}

#[test]
fn checkpoint_root_not_matching_the_entries_gives_root_mismatch() {
    let log = honest_log(20, "a");
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: log.size(),
        root: [7u8; 32],
    };
    let signed = SignedCheckpoint::sign(cp, &log.key).unwrap();
    let leaves: Vec<Vec<u8>> = (0..log.size())
        .map(|i| log.leaf(i).bytes().to_vec())
        .collect();
    let server = TileServer::start(publish_leaves(&log, &leaves, signed.to_bytes()));
    let s = setup_for(&server, &log);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    let alerts = s.alerts();
    assert_eq!(kinds(&alerts), vec!["root-mismatch"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], log.size());
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["log"], ORIGIN);
}

#[test]
fn bad_checkpoint_signature_is_reported_once() {
    let log = honest_log(5, "a");
    let mut files = publish(&log);
    let text = String::from_utf8(files["checkpoint"].clone()).unwrap();
    let (body, sigline) = text.split_once("\n\n").unwrap();
    let b64 = sigline.trim_end().rsplit(' ').next().unwrap();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    raw[10] ^= 1;
    let bad = sigline.replace(b64, &base64::engine::general_purpose::STANDARD.encode(raw));
    files.insert("checkpoint".into(), format!("{body}\n\n{bad}").into_bytes());
    let server = TileServer::start(files);
    let s = setup_for(&server, &log);
    for _ in 0..2 {
        let (ok, err) = s.run_once(&[]);
        assert!(ok, "{err}");
    }
    let alerts = s.alerts();
    assert_eq!(
        kinds(&alerts),
        vec!["bad-checkpoint-signature"],
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["index"], log.size());
}

#[test]
fn second_checkpoint_inconsistent_with_the_first() {
    let first = honest_log(300, "a");
    let server = TileServer::start(publish(&first));
    let s = setup_for(&server, &first);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert!(s.alerts().is_empty());
    // A fork: same log key, other history, larger.
    let fork = honest_log(600, "fork");
    server.set_files(publish(&fork));
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    let alerts = s.alerts();
    assert_eq!(
        kinds(&alerts),
        vec!["inconsistent-checkpoint"],
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["index"], fork.size());

    // Same size, other root.
    let s2 = setup_for(&server, &first);
    server.set_files(publish(&first));
    assert!(s2.run_once(&[]).0);
    let same_size = honest_log(300, "other");
    server.set_files(publish(&same_size));
    assert!(s2.run_once(&[]).0);
    assert_eq!(
        kinds(&s2.alerts()),
        vec!["inconsistent-checkpoint"],
        "{:#?}",
        s2.alerts()
    );
}

#[test]
fn entry_signed_by_an_unenrolled_key_gives_bad_entry() {
    let mut log = honest_log(10, "a");
    let rogue = test_key("rogue.example");
    let leaf = claim(
        &rogue,
        "tel:+14155550100",
        "mimi://rogue.example/u/x",
        log.now,
        &[],
        None,
    );
    let index = log.push(leaf);
    log.seal();
    let server = TileServer::start(publish(&log));
    let s = setup_for(&server, &log);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    let alerts = s.alerts();
    assert_eq!(kinds(&alerts), vec!["bad-entry"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], index);
    assert_eq!(alerts[0]["sii"], "tel:+14155550100");
    assert_eq!(alerts[0]["msp"], "rogue.example");
    assert!(
        alerts[0]["detail"]
            .as_str()
            .unwrap()
            .contains("not enrolled"),
        "{alerts:#?}"
    );
}

#[test]
fn partial_bundles_gone_once_full_are_read_from_the_full_bundle() {
    // The checkpoint is of size 307 (bundle 1 partial, width 51), but the tiles are of a log that
    // has grown to 608: only the full bundle 1 exists.
    let small = honest_log(298, "a");
    let mut big = honest_log(298, "a");
    let msp = test_key("msp-a.example");
    for i in 0..300u64 {
        let leaf = claim(
            &msp,
            &format!("mailto:c{i}@example.com"),
            "mimi://msp-a.example/u/c",
            big.now,
            &[],
            None,
        );
        big.submit(leaf.bytes()).expect("admitted");
    }
    big.seal();
    let mut files = publish(&big);
    files.insert("checkpoint".into(), small.checkpoint().to_bytes());
    let server = TileServer::start(files);
    let s = setup_for(&server, &small);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert!(s.alerts().is_empty(), "{:#?}", s.alerts());
    assert_eq!(small.size(), 307);
    assert!(err.contains("size=307"), "{err}");
    // Then the new checkpoint: consistency from the tiles, the rest of the entries.
    server.set_files(publish(&big));
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert!(s.alerts().is_empty(), "{:#?}", s.alerts());
    assert!(err.contains(&format!("size={}", big.size())), "{err}");
}
