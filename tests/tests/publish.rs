//! `log-server --publish s3://BUCKET/PREFIX` against a real S3 server (`s3s-fs` on 127.0.0.1):
//!
//! - under load (claims from several threads, a small `--publish-max-lag` so backpressure is
//!   exercised), the bucket ends up holding every file of the log's `<data>/public/` byte for byte,
//!   its tiles verify against its checkpoint, and the lag metric returns to 0; after `kill -9` and a
//!   restart, more claims, and the bucket catches up (resume);
//! - while S3 is down the publisher retries (`retrying` in `/v1/info`, upload errors counted) and
//!   the log keeps sequencing; once it is back the bucket catches up;
//! - with `--publish-max-lag 1` the sequencer waits for the publisher after every batch
//!   (backpressure) and the log still takes every claim;
//! - two logs (own data folders and keys) against one prefix: exactly one publishes, whether the
//!   second starts after the first or both start at once; the loser exits at start, non-zero,
//!   saying whose checkpoint is there;
//! - when another writer changes the bucket's checkpoint while the log runs, the next conditional
//!   write fails: the publisher stops and says so in `/v1/info` and `ledger_publish_refused`, and
//!   the log goes on sequencing locally.

use std::path::Path;
use std::time::Duration;

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Role;
use ledger_core::key::SignerKey;
use ledger_core::testkit::test_key;
use ledger_e2e::{
    mail_claim, now, verify_tiles, wait_for, Options, S3Server, TestLog, TEST_ORIGIN,
};

/// How long the bucket may take to catch up.
const CATCH_UP: Duration = Duration::from_secs(60);
/// Submitting threads.
const THREADS: u64 = 4;

fn publish_options(s3: &S3Server, prefix: &str) -> Options {
    publish_options_lag(s3, prefix, 300)
}

fn publish_options_lag(s3: &S3Server, prefix: &str, max_lag: u64) -> Options {
    let mut opts = Options::default()
        .arg("--publish")
        .arg(&s3.bucket_url(prefix))
        .arg("--publish-max-lag")
        .arg(&max_lag.to_string());
    for (k, v) in s3.env() {
        opts = opts.env(&k, &v);
    }
    opts
}

/// `n` claims per thread from [`THREADS`] threads at once.
fn load(log: &TestLog, msp: &SignerKey, tag: &str, n: u64) {
    let t = now();
    std::thread::scope(|scope| {
        for th in 0..THREADS {
            scope.spawn(move || {
                for i in 0..n {
                    log.submit_ok(&mail_claim(msp, &format!("{tag}{th}x"), i, t));
                }
            });
        }
    });
}

/// The value of metric `name` (a line `name value`).
fn metric(log: &TestLog, name: &str) -> Option<f64> {
    let text = log.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The `publish` object of `/v1/info`.
fn publish_info(log: &TestLog) -> serde_json::Value {
    let info: serde_json::Value = log.get("/v1/info").json();
    info.get("publish")
        .cloned()
        .unwrap_or_else(|| panic!("/v1/info has no publish object: {info}"))
}

/// Waits until the bucket's checkpoint is the log's current one and the lag metrics are 0.
fn wait_caught_up(log: &TestLog, s3: &S3Server, prefix: &str) -> SignedCheckpoint {
    let size = log.checkpoint().checkpoint.size;
    wait_for(CATCH_UP, "the bucket to catch up", || {
        let lag = metric(log, "ledger_publish_lag_entries")?;
        let secs = metric(log, "ledger_publish_lag_seconds")?;
        let published = metric(log, "ledger_publish_published_size")?;
        (lag == 0.0 && secs == 0.0 && published == size as f64).then_some(())
    });
    let bytes = s3
        .get(&format!("{prefix}/checkpoint"))
        .expect("the bucket's checkpoint");
    let cp = log.verify_checkpoint(&bytes);
    assert_eq!(cp.checkpoint.size, size, "the bucket's checkpoint size");
    let info = publish_info(log);
    assert_eq!(info["state"], "publishing", "{info}");
    assert_eq!(info["published_size"], size, "{info}");
    assert_eq!(info["lag_entries"], 0, "{info}");
    cp
}

/// Every file under `public` (but temporary ones) equals the bucket's object at the same path;
/// returns how many were compared.
fn assert_public_in_bucket(public: &Path, s3: &S3Server, prefix: &str) -> usize {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read public/").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                let rel = p.strip_prefix(base).expect("under public/");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(public, public, &mut files);
    for rel in &files {
        let local = std::fs::read(public.join(rel)).expect("read a public file");
        let remote = s3
            .get(&format!("{prefix}/{rel}"))
            .unwrap_or_else(|| panic!("the bucket lacks {prefix}/{rel}"));
        assert!(local == remote, "{prefix}/{rel} differs from public/{rel}");
    }
    files.len()
}

/// The bucket copy verifies: its tiles and bundles hash to its checkpoint.
fn verify_bucket(log: &TestLog, s3: &S3Server, prefix: &str, cp: &SignedCheckpoint) {
    let leaves = verify_tiles(log.hash(), cp, |tile| {
        s3.get(&format!("{prefix}/{}", tile.path()))
            .unwrap_or_else(|| panic!("the bucket lacks {prefix}/{}", tile.path()))
    });
    assert_eq!(leaves.len() as u64, cp.checkpoint.size);
}

#[test]
fn publishes_under_load_and_resumes_after_kill9() {
    let s3 = S3Server::start();
    let mut log = TestLog::start(publish_options(&s3, "logs/a"));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    load(&log, &msp, "first", 80);

    let cp = wait_caught_up(&log, &s3, "logs/a");
    assert!(cp.checkpoint.size > 256, "more than one tile");
    verify_bucket(&log, &s3, "logs/a", &cp);
    let n = assert_public_in_bucket(&log.data_dir().join("public"), &s3, "logs/a");
    assert!(n > 5, "only {n} public files");
    assert!(metric(&log, "ledger_publish_uploads_total").unwrap_or(0.0) > 0.0);
    assert_eq!(metric(&log, "ledger_publish_refused"), Some(0.0));
    let state = std::fs::read_to_string(log.data_dir().join("publish-state.json"))
        .expect("the publish state file");
    assert!(
        state.contains(&format!("\"published_size\": {}", cp.checkpoint.size)),
        "{state}"
    );

    // kill -9 under load, restart, more claims: the bucket catches up from its checkpoint.
    let t = now();
    for i in 0..20 {
        log.submit_ok(&mail_claim(&msp, "before-kill", i, t));
    }
    log.kill9();
    log.restart();
    load(&log, &msp, "second", 60);
    let cp2 = wait_caught_up(&log, &s3, "logs/a");
    assert!(cp2.checkpoint.size > cp.checkpoint.size + 240);
    log.assert_consistent(&cp, &cp2);
    verify_bucket(&log, &s3, "logs/a", &cp2);
    assert_public_in_bucket(&log.data_dir().join("public"), &s3, "logs/a");
}

#[test]
fn an_unreachable_bucket_is_retried_and_caught_up() {
    let mut s3 = S3Server::start();
    let log = TestLog::start(publish_options(&s3, "down"));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    load(&log, &msp, "up", 10);
    let cp = wait_caught_up(&log, &s3, "down");

    // S3 goes away: the log keeps taking claims (within the bound), the publisher retries.
    s3.kill9();
    load(&log, &msp, "down", 10);
    let info = wait_for(CATCH_UP, "the publisher to retry", || {
        let info = publish_info(&log);
        (info["state"] == "retrying").then_some(info)
    });
    assert!(info["lag_entries"].as_u64().unwrap_or(0) >= 40, "{info}");
    assert!(metric(&log, "ledger_publish_upload_errors_total").unwrap_or(0.0) > 0.0);
    assert!(log.checkpoint().checkpoint.size > cp.checkpoint.size + 40);

    // It comes back: the bucket catches up by itself.
    s3.restart();
    let cp2 = wait_caught_up(&log, &s3, "down");
    verify_bucket(&log, &s3, "down", &cp2);
    assert_public_in_bucket(&log.data_dir().join("public"), &s3, "down");
    assert_eq!(metric(&log, "ledger_publish_refused"), Some(0.0));
}

#[test]
fn backpressure_holds_sequencing_to_the_bound() {
    // A bound of 1 entry: every batch (its claims and its map leaf) must be in the bucket before
    // the sequencer takes the next one.
    let s3 = S3Server::start();
    let log = TestLog::start(publish_options_lag(&s3, "bp", 1));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    load(&log, &msp, "bp", 30);
    let waits = metric(&log, "ledger_publish_backpressure_waits_total").unwrap_or(0.0);
    assert!(waits > 0.0, "the sequencer never waited for the publisher");
    let cp = wait_caught_up(&log, &s3, "bp");
    verify_bucket(&log, &s3, "bp", &cp);
    assert_public_in_bucket(&log.data_dir().join("public"), &s3, "bp");
}

#[test]
fn one_bucket_prefix_has_one_publisher() {
    let s3 = S3Server::start();

    // One after the other: the second is refused at start, saying whose checkpoint is there.
    let a = TestLog::start(publish_options(&s3, "shared"));
    let msp = test_key("msp-a.example");
    a.enroll(Role::Msp, &msp);
    load(&a, &msp, "a", 10);
    let cp = wait_caught_up(&a, &s3, "shared");
    let mut b = TestLog::stopped(publish_options(&s3, "shared"));
    let exited = b.run_expecting_exit(&publish_options(&s3, "shared"), Duration::from_secs(60));
    assert!(!exited.status.success(), "{}", exited.output);
    let url = s3.bucket_url("shared");
    assert!(
        exited
            .output
            .contains(&format!("refusing to publish to {url}")),
        "{}",
        exited.output
    );
    assert!(
        exited.output.contains("not signed by this log's key")
            && exited.output.contains(&format!("signed by {TEST_ORIGIN}+")),
        "{}",
        exited.output
    );
    assert!(
        exited.output.contains("another prefix"),
        "{}",
        exited.output
    );
    // The bucket is still a's.
    load(&a, &msp, "a-more", 10);
    let cp2 = wait_caught_up(&a, &s3, "shared");
    assert!(cp2.checkpoint.size > cp.checkpoint.size);
    verify_bucket(&a, &s3, "shared", &cp2);
    drop(a);

    // Both at once against a fresh prefix: exactly one claims it; the other exits at start.
    let opts = publish_options(&s3, "race");
    let mut logs = [
        TestLog::stopped(opts.clone()),
        TestLog::stopped(opts.clone()),
    ];
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = logs
            .iter_mut()
            .map(|l| {
                let opts = opts.clone();
                scope.spawn(move || l.try_start_with(&opts))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("start thread"))
            .collect()
    });
    let mut running = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(()) => running.push(i),
            Err(exited) => {
                assert!(!exited.status.success(), "{}", exited.output);
                assert!(
                    exited.output.contains("refusing to publish"),
                    "{}",
                    exited.output
                );
            }
        }
    }
    let bytes = s3.get("race/checkpoint").expect("the race's checkpoint");
    let owners: Vec<usize> = (0..2)
        .filter(|&i| results[i].is_ok() && SignedCheckpoint::verify(&bytes, logs[i].vkey()).is_ok())
        .collect();
    assert_eq!(owners.len(), 1, "exactly one log owns the prefix");
    let owner = owners[0];
    for &i in &running {
        let msp = test_key("msp-a.example");
        logs[i].enroll(Role::Msp, &msp);
        load(&logs[i], &msp, "race", 5);
        if i == owner {
            let cp = wait_caught_up(&logs[i], &s3, "race");
            verify_bucket(&logs[i], &s3, "race", &cp);
        } else {
            // Started (it found the prefix empty) but lost the claim: refused while running.
            let info = wait_for(CATCH_UP, "the loser to be refused", || {
                let info = publish_info(&logs[i]);
                (info["state"] == "refused").then_some(info)
            });
            assert!(info["error"].as_str().is_some(), "{info}");
        }
    }
}

#[test]
fn a_failed_conditional_write_stops_the_publisher_but_not_the_log() {
    let s3 = S3Server::start();
    let mut log = TestLog::start(publish_options(&s3, "cw"));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    load(&log, &msp, "one", 10);
    wait_caught_up(&log, &s3, "cw");

    // Another writer replaces the checkpoint object: the next If-Match write fails.
    let other = test_key(TEST_ORIGIN);
    let foreign = SignedCheckpoint::sign(
        ledger_core::checkpoint::Checkpoint {
            origin: TEST_ORIGIN.to_string(),
            size: 0,
            root: log.hash().empty_root(),
        },
        &other,
    )
    .expect("sign")
    .to_bytes();
    s3.put("cw/checkpoint", &foreign);
    load(&log, &msp, "two", 5);
    let info = wait_for(CATCH_UP, "the publisher to stop", || {
        let info = publish_info(&log);
        (info["state"] == "refused").then_some(info)
    });
    let error = info["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("another writer"), "{info}");
    assert!(error.contains("cw/checkpoint"), "{info}");
    assert_eq!(metric(&log, "ledger_publish_refused"), Some(1.0));
    assert!(
        log.output().contains("stopped publishing"),
        "the refusal is logged: {}",
        log.output()
    );

    // The log goes on sequencing locally (beyond the backlog bound too); the bucket is untouched.
    let before = log.checkpoint().checkpoint.size;
    load(&log, &msp, "three", 100);
    let after = log.checkpoint().checkpoint.size;
    assert!(after >= before + 400, "{before} -> {after}");
    assert_eq!(s3.get("cw/checkpoint").as_deref(), Some(foreign.as_slice()));
    assert!(metric(&log, "ledger_publish_lag_entries").unwrap_or(0.0) >= 400.0);

    // And a restart is refused at start: the checkpoint there is not this log's.
    log.kill9();
    let exited = log.run_expecting_exit(&log.options().clone(), Duration::from_secs(60));
    assert!(!exited.status.success(), "{}", exited.output);
    assert!(
        exited.output.contains("refusing to publish"),
        "{}",
        exited.output
    );
}
