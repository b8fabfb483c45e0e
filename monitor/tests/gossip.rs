//! `split-view` (SPEC §8): the real `monitor` binary compares its verified view of a log with the
//! checkpoints its peers serve — an auditor's gossip endpoint (`<base>/<hex sha256(origin)>/checkpoint`)
//! or a plain checkpoint URL — each peer a test server on 127.0.0.1.

mod common;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::{attested_log, kinds, publish, Files, KillOnDrop, Setup, TileServer};
use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::testkit::{test_key, MemLog};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "example.com/log";

/// A log of two enrollments and `claims` attested claims of distinct SIIs, sealed after every
/// batch (`common::attested_log`: a log of a multiple of 50 claims is a prefix of every longer
/// one); with `odd = Some(i)`, claim `i` is of another SII (so the tree differs from the honest
/// one from that entry on). Same origin, so the same log key: both trees are validly signed by
/// "the log".
fn log_with(claims: u64, odd: Option<u64>) -> MemLog {
    attested_log(ORIGIN, claims, |i| {
        if odd == Some(i) { "odd" } else { "a" }.to_string()
    })
}

/// The auditor gossip path of the test origin.
fn gossip_path() -> String {
    format!("{}/checkpoint", hex(&Sha256::digest(ORIGIN.as_bytes())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A peer server that serves `note` at `path`.
fn peer(path: &str, note: Vec<u8>) -> TileServer {
    TileServer::start(Files::from([(path.to_string(), note)]))
}

/// A `monitor.toml` for the test log with peers, and a file sink.
fn write_config(s: &Setup, log_url: &str, auditors: &[String], peers: &[String]) {
    let vkey = test_key(ORIGIN).verifier();
    s.write_config(&format!(
        "poll_interval_s = 1\n\n[[log]]\nurl = \"{log_url}\"\norigin = \"{ORIGIN}\"\nvkey = \"{vkey}\"\n\
         hash = \"blake3\"\nauditors = {auditors:?}\npeer_checkpoints = {peers:?}\n\n\
         [[sink]]\ntype = \"file\"\npath = \"{}\"\n",
        s.alerts_path().display()
    ));
}

fn b64_root(cp: &SignedCheckpoint) -> String {
    B64.encode(cp.checkpoint.root)
}

#[test]
fn peers_with_the_same_checkpoint_give_no_alert() {
    let log = log_with(300, None);
    let server = TileServer::start(publish(&log));
    let auditor = peer(&gossip_path(), log.checkpoint().to_bytes());
    let s = Setup::new();
    write_config(
        &s,
        &server.url(),
        &[auditor.url()],
        &[format!("{}/checkpoint", server.url())],
    );
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    assert!(err.contains(&format!("size={}", log.size())), "{err}");
    assert!(s.alerts().is_empty(), "{:#?}", s.alerts());
    assert!(!err.contains("peer"), "no peer warning expected:\n{err}");
}

#[test]
fn same_size_other_root_is_one_split_view_and_not_a_halt() {
    let log = log_with(300, None);
    let fork = log_with(300, Some(100));
    assert_eq!(log.size(), fork.size());
    let server = TileServer::start(publish(&log));
    let auditor = peer(&gossip_path(), fork.checkpoint().to_bytes());
    let s = Setup::new();
    write_config(&s, &server.url(), &[auditor.url()], &[]);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    let alerts = s.alerts();
    assert_eq!(kinds(&alerts), vec!["split-view"], "{alerts:#?}");
    let a = &alerts[0];
    let size = log.size();
    assert_eq!(a["index"], size);
    assert_eq!(a["log"], ORIGIN);
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["sii"], serde_json::Value::Null);
    let detail = a["detail"].as_str().unwrap();
    let peer_url = format!("{}/{}", auditor.url(), gossip_path());
    for part in [
        format!(
            "peer {peer_url} was shown a log-signed checkpoint of size {size} with root {}",
            b64_root(&fork.checkpoint())
        ),
        format!(
            "this monitor verified size {size} with root {}",
            b64_root(&log.checkpoint())
        ),
        "failed check: same size, different roots".to_string(),
        format!(
            "peer note (base64): {}",
            B64.encode(fork.checkpoint().to_bytes())
        ),
    ] {
        assert!(detail.contains(&part), "{part:?} not in {detail:?}");
    }
    assert!(!detail.contains('\n'));

    // The same evidence again, after a restart: no new alert.
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert_eq!(s.alerts().len(), 1, "{:#?}", s.alerts());

    // Not a halt: the log grows and is followed. The fork, now smaller than the verified view, is
    // found not to be a prefix — the same evidence, so still no new alert.
    let grown = log_with(550, None);
    server.set_files(publish(&grown));
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("size={}", grown.size())),
        "followed after split-view:\n{err}"
    );
    assert!(
        err.contains("failed check: not a prefix of the verified tree"),
        "checked against the grown view:\n{err}"
    );
    assert_eq!(s.alerts().len(), 1, "{:#?}", s.alerts());
}

#[test]
fn smaller_peer_checkpoint_must_be_a_prefix() {
    let log = log_with(300, None);
    let prefix = log_with(200, None);
    let not_prefix = log_with(200, Some(50));
    let server = TileServer::start(publish(&log));
    let good = peer("cp", prefix.checkpoint().to_bytes());
    let bad = peer("cp", not_prefix.checkpoint().to_bytes());
    let (good_url, bad_url) = (format!("{}/cp", good.url()), format!("{}/cp", bad.url()));
    let s = Setup::new();
    write_config(&s, &server.url(), &[], &[good_url.clone(), bad_url.clone()]);
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    let alerts = s.alerts();
    assert_eq!(kinds(&alerts), vec!["split-view"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], prefix.size());
    let detail = alerts[0]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("peer {bad_url} ")), "{detail}");
    assert!(!detail.contains(&good_url), "{detail}");
    assert!(
        detail.contains("failed check: not a prefix of the verified tree"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("root {}", b64_root(&not_prefix.checkpoint()))),
        "{detail}"
    );
}

#[test]
fn unverifiable_unknown_or_unreachable_peers_are_skipped_without_alert() {
    let log = log_with(18, None);
    let fork = log_with(18, Some(3));
    let server = TileServer::start(publish(&log));

    // The fork's checkpoint with one signature byte flipped.
    let text = String::from_utf8(fork.checkpoint().to_bytes()).unwrap();
    let (body, sigline) = text.split_once("\n\n").unwrap();
    let sig = sigline.trim_end().rsplit(' ').next().unwrap();
    let mut raw = B64.decode(sig).unwrap();
    raw[10] ^= 1;
    let flipped = format!("{body}\n\n{}", sigline.replace(sig, &B64.encode(raw)));
    // Signed by another key that carries the origin's name.
    let impostor = SignerKey::from_seed(ORIGIN, KeyAlg::Ed25519, [9u8; 32]).unwrap();
    let forged = SignedCheckpoint::sign(fork.checkpoint().checkpoint, &impostor).unwrap();
    // Validly signed, but of another log.
    let other_origin = "other.example/log";
    let other = SignedCheckpoint::sign(
        Checkpoint {
            origin: other_origin.into(),
            size: log.size(),
            root: [1; 32],
        },
        &test_key(other_origin),
    )
    .unwrap();

    let peers = TileServer::start(Files::from([
        ("flipped".to_string(), flipped.into_bytes()),
        ("forged".to_string(), forged.to_bytes()),
        ("other".to_string(), other.to_bytes()),
        ("garbage".to_string(), b"hello\n".to_vec()),
    ]));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = Setup::new();
    let p = |path: &str| format!("{}/{path}", peers.url());
    write_config(
        &s,
        &server.url(),
        // An auditor that never cosigned this log: 404.
        &[peers.url()],
        &[
            p("flipped"),
            p("forged"),
            p("other"),
            p("garbage"),
            format!("http://{closed}/checkpoint"),
        ],
    );
    let started = Instant::now();
    let (ok, err) = s.run_once(&[]);
    // An unreachable or lying peer is not the log's misbehaviour and not a failure to read the
    // log: exit status 0, no alert.
    assert!(ok, "exit status must be 0:\n{err}");
    assert!(s.alerts().is_empty(), "{:#?}", s.alerts());
    let size = log.size();
    assert!(
        err.contains(&format!("size={size}")),
        "the log itself was verified:\n{err}"
    );
    for expected in [
        format!(
            "peer {}/{}: no checkpoint of this log (404)",
            peers.url(),
            gossip_path()
        ),
        format!(
            "peer {}: the checkpoint at size {size} has no valid log signature",
            p("flipped")
        ),
        format!(
            "peer {}: the checkpoint at size {size} has no valid log signature",
            p("forged")
        ),
        format!(
            "peer {}: the checkpoint is of origin \"{other_origin}\"",
            p("other")
        ),
        format!("peer {}: not a checkpoint note", p("garbage")),
        format!("peer could not be read, skipped: GET http://{closed}/checkpoint"),
    ] {
        assert!(err.contains(&expected), "{expected:?} not logged:\n{err}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "peers must not hold the monitor up"
    );
}

/// Runs the monitor in follow mode with stderr to a file (to see what it did).
fn follow(s: &Setup) -> (Child, std::path::PathBuf) {
    let log_path = s.dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("--config")
        .arg(s.dir.path().join("monitor.toml"))
        .arg("--state")
        .arg(s.state())
        .arg("--no-progress")
        .env("LEDGER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn monitor");
    (child, log_path)
}

fn wait_stderr(path: &std::path::Path, needle: &str, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    loop {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(path) {
            let _ = f.read_to_string(&mut text);
        }
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < end,
            "{needle:?} not logged within {deadline:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn peer_ahead_of_the_view_is_checked_once_the_log_reaches_its_size() {
    let small = log_with(300, None);
    let big = log_with(500, None);
    // Agrees with `small` (the difference is after its last entry), not with `big`.
    let fork_big = log_with(500, Some(400));
    let server = TileServer::start(publish(&small));
    let mirror = peer("checkpoint", fork_big.checkpoint().to_bytes());
    let mirror_url = format!("{}/checkpoint", mirror.url());
    let s = Setup::new();
    write_config(&s, &server.url(), &[], std::slice::from_ref(&mirror_url));
    let (child, stderr) = follow(&s);
    let _guard = KillOnDrop(child);
    wait_stderr(
        &stderr,
        &format!(
            "peer {mirror_url}: size {} is ahead of the verified size {}",
            big.size(),
            small.size()
        ),
        Duration::from_secs(30),
    );
    // The mirror stops serving it: only the remembered checkpoint can reveal the split.
    mirror.set_files(Files::new());
    wait_stderr(
        &stderr,
        "no checkpoint of this log (404)",
        Duration::from_secs(30),
    );
    assert!(s.alerts().is_empty(), "{:#?}", s.alerts());
    server.set_files(publish(&big));
    let alerts = s.wait_alerts(Duration::from_secs(30), |a| !a.is_empty());
    assert_eq!(kinds(&alerts), vec!["split-view"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], big.size());
    let detail = alerts[0]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("peer {mirror_url} ")), "{detail}");
    assert!(
        detail.contains(&format!(
            "this monitor verified size {} with root {}",
            big.size(),
            b64_root(&big.checkpoint())
        )),
        "{detail}"
    );
    assert!(
        detail.contains("failed check: same size, different roots"),
        "{detail}"
    );
    // Checked once: a few more rounds raise nothing new.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.alerts().len(), 1, "{:#?}", s.alerts());
}
