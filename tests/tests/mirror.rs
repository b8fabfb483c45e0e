//! DP mirrors (issue 14) over the real binaries: a `log-server --mirror-of` follows a log through
//! its tiles alone, verifies everything a monitor verifies, and serves lookups with the log's own
//! checkpoints — answers that verify with the log's trust — while refusing writes; fed tampered
//! tiles (a flipped entry byte, a wrong map root, a checkpoint signed by another key, a fork) it
//! stops advancing with the matching alert, every time, and keeps serving its last good view.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ledger_core::api::{AlertKind, LookupAnswer};
use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::entry::{Entry, Leaf, Role};
use ledger_core::key::SignerKey;
use ledger_core::lookup::{verify_lookup_for, Trust};
use ledger_core::sii::Sii;
use ledger_core::testkit::{claim, test_key, MemLog};
use ledger_core::tile::{decode_entry_bundle, entry_bundles_for_size};
use ledger_core::TreeHash;
use ledger_e2e::{mail_claim, mail_sii, now, publish, Files, Mirror, Options, TestLog, TileServer};

const TH: TreeHash = TreeHash::Sha256;

/// Verifies a lookup answer per SPEC §6 with the log's trust; returns its checkpoint size.
fn verified(answer: &LookupAnswer, sii: &str, trust: &Trust) -> u64 {
    verify_lookup_for(&Sii::parse(sii).expect("sii"), answer, trust, now())
        .unwrap_or_else(|e| panic!("the mirror's answer for {sii} does not verify: {e}"));
    SignedCheckpoint::parse(answer.checkpoint.as_bytes())
        .expect("checkpoint")
        .checkpoint
        .size
}

/// A log with an enrolled MSP and `n` claims (`mail_sii("m", 0..n)`).
fn log_with_claims(n: u64) -> (TestLog, SignerKey) {
    let log = TestLog::start(Options::new(TH));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    claim_more(&log, &msp, 0..n);
    (log, msp)
}

fn claim_more(log: &TestLog, msp: &SignerKey, range: std::ops::Range<u64>) {
    for i in range {
        log.submit_ok(&mail_claim(msp, "m", i, now()));
    }
}

#[test]
fn a_mirror_follows_the_log_over_http_serves_verifying_lookups_and_refuses_writes() {
    let (mut log, msp) = log_with_claims(120);
    let trust = Trust::new(log.vkey().clone(), TH);
    let size = log.checkpoint().checkpoint.size;
    let mut mirror = Mirror::start(&log.url(), log.vkey(), TH, &[], &[]);
    let info = mirror.wait_verified(size);
    assert_eq!(info["origin"], log.info().origin);
    assert_eq!(info["vkey"], log.info().vkey);
    assert_eq!(info["size"].as_u64(), Some(size));
    // The mirror's checkpoint is the log's, byte for byte.
    assert_eq!(mirror.get("/checkpoint").body, log.get("/checkpoint").body);
    for i in [0, 77, 119] {
        let sii = mail_sii("m", i);
        let a = mirror.lookup(&sii);
        assert_eq!(verified(&a, &sii, &trust), size);
        assert_eq!(a.mappings, log.lookup(&sii).mappings, "{sii}");
        assert_eq!(a.entries.len(), 1);
    }
    let none = mail_sii("nobody", 1);
    let a = mirror.lookup(&none);
    verified(&a, &none, &trust);
    assert!(a.entries.is_empty());

    // Writes are refused, naming the log; nothing changes.
    let leaf = mail_claim(&msp, "m", 9_999, now());
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/add", mirror.url()))
        .header("content-type", "text/plain")
        .body(leaf.bytes().to_vec())
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    let body = r.text().expect("body");
    assert!(body.contains("read-only-mirror"), "{body}");
    assert!(body.contains(&log.info().origin), "{body}");
    let r = mirror.get("/v1/admin/enroll");
    assert!(r.status == 405 || r.status == 403, "{}", r.status);

    // It keeps following, span after span, and each answer verifies against the newest
    // checkpoint (the map of the served view is pinned while a span is verified).
    for round in 0..3u64 {
        let from = 120 + round * 40;
        claim_more(&log, &msp, from..from + 40);
        let size = log.checkpoint().checkpoint.size;
        mirror.wait_verified(size);
        let sii = mail_sii("m", from + 39);
        assert_eq!(verified(&mirror.lookup(&sii), &sii, &trust), size);
    }
    // The mirror's tiles are the log's.
    let size = log.checkpoint().checkpoint.size;
    for b in entry_bundles_for_size(size) {
        let path = format!("/{}", b.path());
        assert_eq!(mirror.get(&path).body, log.get(&path).body, "{path}");
    }

    // The log goes away: the mirror keeps answering with its last verified view.
    log.kill9();
    let sii = mail_sii("m", 5);
    assert_eq!(verified(&mirror.lookup(&sii), &sii, &trust), size);
    let info = mirror.info();
    assert_eq!(info["mirror"]["state"], "following");
    // A restarted mirror serves its store at once, before the log is back.
    mirror.service.restart(true);
    assert_eq!(verified(&mirror.lookup(&sii), &sii, &trust), size);
    let metrics = mirror.get("/metrics").text();
    assert!(
        metrics.contains(&format!("ledger_mirror_verified_size {size}")),
        "{metrics}"
    );
}

/// Every file of the log's `public/` folder (its static copy), by path.
fn public_files(log: &TestLog) -> Files {
    fn walk(root: &Path, dir: &Path, out: &mut Files) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let root = log.data_dir().join("public");
    let mut out = HashMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The log's leaves at its checkpoint, from its static copy.
fn leaves_of(files: &Files) -> Vec<Leaf> {
    let cp = SignedCheckpoint::parse(&files["checkpoint"]).expect("checkpoint");
    entry_bundles_for_size(cp.checkpoint.size)
        .iter()
        .flat_map(|b| decode_entry_bundle(&files[&b.path()]).expect("bundle"))
        .map(|bytes| Leaf::parse(&bytes).expect("leaf"))
        .collect()
}

/// The static files of `leaves` with a checkpoint signed by `key` (the log's own key: a
/// dishonest log, not a forger).
fn files_signed_by(key: &SignerKey, leaves: Vec<Leaf>) -> Files {
    let mut mem = MemLog::new(key.name(), TH);
    mem.key = key.clone();
    for l in leaves {
        mem.push(l);
    }
    publish(&mem)
}

fn log_key(log: &TestLog) -> SignerKey {
    let text = std::fs::read_to_string(log.data_dir().join("log.key")).expect("log key");
    SignerKey::parse(text.trim()).expect("signer key")
}

#[test]
fn a_mirror_fed_tampered_tiles_stops_advancing_with_the_matching_alert_and_keeps_its_view() {
    let (log, msp) = log_with_claims(60);
    let trust = Trust::new(log.vkey().clone(), TH);
    let good = public_files(&log);
    let n1 = log.checkpoint().checkpoint.size;
    claim_more(&log, &msp, 60..100);
    let newer = public_files(&log);
    let n2 = log.checkpoint().checkpoint.size;
    let key = log_key(&log);
    let newer_leaves = leaves_of(&newer);

    // One flipped byte in an entry the mirror has not seen: the entries no longer hash to the
    // checkpoint.
    let mut flipped = newer.clone();
    let bundle = entry_bundles_for_size(n2)
        .into_iter()
        .find(|b| b.index * 256 + u64::from(b.width) > n1 + 3)
        .expect("bundle");
    let data = flipped.get_mut(&bundle.path()).expect("bundle file");
    let at = data.len() - 40;
    data[at] ^= 0x01;

    // A map leaf whose root is not the map of the entries before it, in a tree the log signed.
    let mut leaves = newer_leaves.clone();
    let last = leaves.len() - 1;
    leaves[last] = Leaf::sign(
        Entry::Map(ledger_core::entry::MapLeaf {
            size: last as u64,
            root: [7u8; 32],
        }),
        &key,
    )
    .expect("map leaf");
    let bad_map = files_signed_by(&key, leaves);

    // The right tree under a checkpoint signed by another key named like the log.
    let mut other_key = newer.clone();
    let cp = SignedCheckpoint::parse(&newer["checkpoint"]).expect("checkpoint");
    let forged = SignedCheckpoint::sign(
        Checkpoint {
            origin: cp.checkpoint.origin.clone(),
            size: cp.checkpoint.size,
            root: cp.checkpoint.root,
        },
        &test_key(&cp.checkpoint.origin),
    )
    .expect("sign");
    other_key.insert("checkpoint".into(), forged.to_bytes());

    // A fork: the log signs a tree whose first entries differ from the ones the mirror verified.
    let mut leaves = newer_leaves.clone();
    leaves[3] = mail_claim(&msp, "fork", 3, now());
    let fork = files_signed_by(&key, leaves);

    let cases = [
        ("a flipped entry byte", flipped, AlertKind::RootMismatch),
        ("a wrong map root", bad_map, AlertKind::BadMapRoot),
        (
            "a checkpoint signed by another key",
            other_key,
            AlertKind::BadCheckpointSignature,
        ),
        ("a fork", fork, AlertKind::InconsistentCheckpoint),
    ];
    for (what, files, kind) in cases {
        let server = TileServer::start(good.clone());
        let mirror = Mirror::start(&server.url(), log.vkey(), TH, &[], &[]);
        mirror.wait_verified(n1);
        server.set_files(files);
        let alert = mirror.wait_halted();
        assert_eq!(alert.kind, kind, "{what}: {alert:?}");
        assert_eq!(alert.log, log.info().origin);
        let alerts = mirror.alerts();
        assert_eq!(alerts.len(), 1, "{what}: {alerts:?}");
        assert_eq!(alerts[0].kind, kind, "{what}");
        // It keeps serving its last good view, and says how old it is.
        let info = mirror.info();
        assert_eq!(info["size"].as_u64(), Some(n1), "{what}");
        assert_eq!(info["mirror"]["verified_size"].as_u64(), Some(n1), "{what}");
        assert!(info["mirror"]["age_s"].is_u64(), "{what}");
        let sii = mail_sii("m", 10);
        assert_eq!(verified(&mirror.lookup(&sii), &sii, &trust), n1, "{what}");
        assert_eq!(mirror.get("/checkpoint").body, good["checkpoint"], "{what}");
        let metrics = mirror.get("/metrics").text();
        assert!(metrics.contains("ledger_mirror_halted 1"), "{what}");
        assert!(
            metrics.contains(&format!(
                "ledger_mirror_alerts_total{{kind=\"{}\"}} 1",
                kind.as_str()
            )),
            "{what}"
        );
        // The good tiles again: a halted mirror stays halted (an operator restarts it).
        server.set_files(newer.clone());
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            mirror.info()["mirror"]["verified_size"].as_u64(),
            Some(n1),
            "{what}"
        );
    }
}

#[test]
fn a_sharded_mirror_answers_its_prefixes_refuses_others_and_the_client_takes_it_after_a_liar() {
    let log = TestLog::start(Options::new(TH));
    let trust = Trust::new(log.vkey().clone(), TH);
    let (a, b) = (test_key("msp-a.example"), test_key("msp-b.example"));
    log.enroll(Role::Msp, &a);
    log.enroll(Role::Msp, &b);
    let us = ["tel:+14155550101", "tel:+14155550102"];
    let uk = "tel:+442071838750";
    let mail = "mailto:someone@example.com";
    for sii in us.iter().chain([&uk, &mail]) {
        log.submit_ok(&claim(
            &a,
            sii,
            "mimi://msp-a.example/u/1",
            now(),
            &[],
            None,
        ));
    }
    // MSP B claims the first number too, last: the answer has two mappings.
    log.submit_ok(&claim(
        &b,
        us[0],
        "mimi://msp-b.example/u/1",
        now(),
        &[],
        None,
    ));
    let size = log.checkpoint().checkpoint.size;
    let mirror = Mirror::start(&log.url(), log.vkey(), TH, &["--shard", "tel:+1"], &[]);
    let info = mirror.wait_verified(size);
    assert_eq!(info["mirror"]["shards"], serde_json::json!(["tel:+1"]));
    for sii in us {
        let answer = mirror.lookup(sii);
        assert_eq!(verified(&answer, sii, &trust), size);
        assert_eq!(answer.entries.len(), log.lookup(sii).entries.len(), "{sii}");
    }
    for sii in [uk, mail] {
        let r = mirror.get(&format!("/v1/lookup?sii={}", ledger_e2e::url_encode(sii)));
        let p = r.assert_problem(404, "outside-shard", sii);
        assert!(p.detail.contains("tel:+1"), "{}", p.detail);
    }

    // `ledger lookup --dp LIAR --dp SHARD`: the liar's answer (the newest claim hidden) is
    // rejected and reported, the shard's answer is the one taken.
    let mut lie = mirror.lookup(us[0]);
    lie.entries.pop();
    ledger_e2e::LyingDp::refold(&mut lie, now());
    let liar = ledger_e2e::LyingDp::answer(&lie);
    let dir = tempfile::tempdir().expect("tempdir");
    let trust_file = dir.path().join("trust.toml");
    let ledger = |args: &[&str]| ledger_e2e::ledger_cli(&trust_file, args);
    let out = ledger(&["trust", "init", "--log", &log.url()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = ledger(&[
        "lookup",
        us[0],
        "--json",
        "--dp",
        &liar.url,
        "--dp",
        &mirror.url(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json = ledger_e2e::stdout_json(&out);
    assert_eq!(json["dp"], mirror.url(), "{json}");
    assert_eq!(json["skipped"][0]["dp"], liar.url.as_str(), "{json}");
    assert_eq!(json["skipped"][0]["kind"], "rejected", "{json}");
    assert!(stderr.contains("REJECTED"), "{stderr}");
    // Asked for a number outside its shard, the mirror is skipped as `refused` and the log answers.
    let out = ledger(&[
        "lookup",
        uk,
        "--json",
        "--dp",
        &mirror.url(),
        "--dp",
        &log.url(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json = ledger_e2e::stdout_json(&out);
    assert_eq!(json["dp"], log.url(), "{json}");
    assert_eq!(json["skipped"][0]["kind"], "refused", "{json}");
    assert_eq!(json["skipped"][0]["slug"], "outside-shard", "{json}");
}

/// A log publishing to `s3` under the prefix `log`, with an enrolled MSP.
fn publishing_log(s3: &ledger_e2e::S3Server, env: &[(String, String)]) -> (TestLog, SignerKey) {
    let mut opts = Options::new(TH).arg("--publish").arg(&s3.bucket_url("log"));
    for (k, v) in env {
        opts = opts.env(k, v);
    }
    let log = TestLog::start(opts);
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    (log, msp)
}

#[test]
fn two_mirrors_follow_the_bucket_one_the_log_and_all_keep_answering_once_the_log_is_killed() {
    let s3 = ledger_e2e::S3Server::start();
    let env = s3.env();
    let (mut log, msp) = publishing_log(&s3, &env);
    let trust = Trust::new(log.vkey().clone(), TH);
    claim_more(&log, &msp, 0..80);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bucket = s3.bucket_url("log");
    let mirrors = [
        Mirror::start(&bucket, log.vkey(), TH, &[], &env_refs),
        Mirror::start(&bucket, log.vkey(), TH, &[], &env_refs),
        Mirror::start(&log.url(), log.vkey(), TH, &[], &[]),
    ];
    // More claims while they follow, then all three reach the log's checkpoint (the bucket's
    // trails the log's by the publisher's lag, so wait for the log's size).
    claim_more(&log, &msp, 80..160);
    let size = log.checkpoint().checkpoint.size;
    for m in &mirrors {
        let info = m.wait_verified(size);
        assert_eq!(info["mirror"]["origin_size"].as_u64(), Some(size));
    }
    log.kill9();
    for m in &mirrors {
        for i in [0, 99, 159] {
            let sii = mail_sii("m", i);
            assert_eq!(verified(&m.lookup(&sii), &sii, &trust), size, "{}", m.url());
        }
        assert_eq!(m.info()["mirror"]["state"], "following");
    }
    // A mirror of the bucket restarts and serves its store while the log is gone.
    let mut first = mirrors.into_iter().next().expect("mirror");
    first.service.restart(true);
    let sii = mail_sii("m", 42);
    assert_eq!(verified(&first.lookup(&sii), &sii, &trust), size);
}

#[test]
fn a_mirror_that_crashes_while_storing_a_span_serves_nothing_until_it_has_verified_it_again() {
    let (log, msp) = log_with_claims(150);
    let trust = Trust::new(log.vkey().clone(), TH);
    let size = log.checkpoint().checkpoint.size;
    // Commits of about 40 leaves, and a crash right after the third commit's index write: each
    // start stores two more commits of the span, then dies; the next start finds its store ahead
    // of its checkpoint, serves nothing and verifies the rest of the span again.
    let env = [
        ("LEDGER_MIRROR_CHUNK", "40"),
        ("LEDGER_FAULT", "crash:index-committed:3"),
    ];
    let mut mirror = Mirror::start(&log.url(), log.vkey(), TH, &[], &env);
    let mut restarts = 0;
    let info = ledger_e2e::wait_for(
        Duration::from_secs(120),
        "the mirror to finish the span",
        || {
            if !mirror.service.is_running() {
                restarts += 1;
                mirror.service.restart(true);
                // Whatever it holds, it serves no view before the span's checkpoint (it may
                // crash again at any moment: an unreachable mirror serves nothing either).
                if let Some(r) = mirror.try_get("/checkpoint") {
                    assert!(
                        r.status == 503 || r.body == log.get("/checkpoint").body,
                        "{}",
                        r.status
                    );
                }
            }
            let info = mirror.try_info()?;
            (info["mirror"]["verified_size"].as_u64() == Some(size)).then_some(info)
        },
    );
    assert!(restarts >= 2, "the fault did not fire: {restarts} restarts");
    assert_eq!(info["mirror"]["state"], "following");
    for i in [0, 75, 149] {
        let sii = mail_sii("m", i);
        assert_eq!(verified(&mirror.lookup(&sii), &sii, &trust), size);
    }
    // The same mirror then follows spans that a serving mirror keeps until verified whole.
    claim_more(&log, &msp, 150..200);
    let size = log.checkpoint().checkpoint.size;
    loop {
        if !mirror.service.is_running() {
            mirror.service.restart(true);
        }
        if mirror
            .try_info()
            .is_some_and(|i| i["mirror"]["verified_size"].as_u64() == Some(size))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sii = mail_sii("m", 199);
    assert_eq!(verified(&mirror.lookup(&sii), &sii, &trust), size);
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

#[test]
fn a_mirror_of_the_bucket_halts_on_tampered_objects_and_on_a_missing_witness_quorum() {
    let s3 = ledger_e2e::S3Server::start();
    let env = s3.env();
    let (mut log, msp) = publishing_log(&s3, &env);
    let trust = Trust::new(log.vkey().clone(), TH);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    claim_more(&log, &msp, 0..40);
    let n1 = log.checkpoint().checkpoint.size;
    let bucket = s3.bucket_url("log");
    let published = |size: u64| {
        ledger_e2e::wait_for(Duration::from_secs(60), "the bucket to catch up", || {
            let cp = s3.get("log/checkpoint")?;
            (SignedCheckpoint::parse(&cp).ok()?.checkpoint.size == size).then_some(())
        })
    };
    published(n1);
    let mirrors = [
        Mirror::start(&bucket, log.vkey(), TH, &[], &env_refs),
        Mirror::start(&bucket, log.vkey(), TH, &[], &env_refs),
    ];
    for m in &mirrors {
        m.wait_verified(n1);
        signal(m.service.pid().expect("pid"), "STOP");
    }
    claim_more(&log, &msp, 40..80);
    let n2 = log.checkpoint().checkpoint.size;
    published(n2);
    log.kill9();
    // The bucket's objects are files of s3s-fs's folder: one flipped byte in the newest entry
    // bundle, read by the first mirror; then a checkpoint signed by another key, for the second.
    let bundle = entry_bundles_for_size(n2).pop().expect("bundle");
    let path = s3.bucket_dir().join("log").join(bundle.path());
    let mut data = std::fs::read(&path).expect("bundle object");
    let at = data.len() - 40;
    data[at] ^= 0x01;
    std::fs::write(&path, &data).expect("tamper");
    signal(mirrors[0].service.pid().expect("pid"), "CONT");
    let alert = mirrors[0].wait_halted();
    assert_eq!(alert.kind, AlertKind::RootMismatch, "{alert:?}");
    let original = s3.get("log/checkpoint").expect("checkpoint");
    let cp = SignedCheckpoint::parse(&original).expect("cp");
    let forged = SignedCheckpoint::sign(cp.checkpoint.clone(), &test_key(&cp.checkpoint.origin))
        .expect("sign");
    std::fs::write(
        s3.bucket_dir().join("log").join("checkpoint"),
        forged.to_bytes(),
    )
    .expect("forge");
    signal(mirrors[1].service.pid().expect("pid"), "CONT");
    let alert = mirrors[1].wait_halted();
    assert_eq!(alert.kind, AlertKind::BadCheckpointSignature, "{alert:?}");
    for m in &mirrors {
        let sii = mail_sii("m", 7);
        assert_eq!(verified(&m.lookup(&sii), &sii, &trust), n1);
        assert_eq!(m.info()["mirror"]["verified_size"].as_u64(), Some(n1));
    }

    // A trust file that requires a witness the log does not have: the log's (real) checkpoint
    // lacks its quorum, so the mirror never serves a view.
    std::fs::write(s3.bucket_dir().join("log").join("checkpoint"), &original).expect("restore");
    let witness = ledger_core::testkit::test_witness_key("witness.example");
    let trust_toml = format!(
        "{}witnesses = [{:?}]\nquorum = 1\n",
        ledger_e2e::trust_text(log.vkey(), TH),
        witness.verifier().to_string()
    );
    let strict = Mirror::start_with_trust(&bucket, &trust_toml, &[], &env_refs);
    let alert = strict.wait_halted();
    assert_eq!(alert.kind, AlertKind::BadCheckpointSignature, "{alert:?}");
    assert!(alert.detail.contains("quorum"), "{}", alert.detail);
    let r = strict.get("/checkpoint");
    assert_eq!(r.status, 503, "a mirror with no verified view serves none");
    assert_eq!(strict.info()["mirror"]["state"], "halted");
}
