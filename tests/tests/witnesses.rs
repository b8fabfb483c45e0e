//! Witness cosignatures on the log side (issue 6), with the real binaries on 127.0.0.1: three
//! `auditor`s witness one `log-server` (`--witness URL=VKEY` ×3, `--quorum 2`). Receipts, lookups
//! and `/checkpoint` carry their cosignatures; `ledger trust init` records the witnesses and quorum
//! from `/v1/info`; `ledger lookup` verifies with quorum 2 and `--audit` gets `consistent`. With one
//! auditor paused (`SIGSTOP`: it accepts connections and never answers, the worst kind of down), a
//! lone add still answers within the witness timeout plus slack, its receipt carries the two other
//! cosignatures, `ledger lookup` with a quorum-3 trust file fails (exit 2) at the witness step; once
//! the auditor resumes, the log's background retry republishes the same checkpoint with all three
//! cosignatures, without any new entry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Role;
use ledger_core::key::VerifierKey;
use ledger_core::testkit::{claim, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{
    copy_dir, now, wait_for, workspace_binary, Auditor, Options, TestLog, TEST_ORIGIN,
};

/// `--witness-timeout-ms` of the log under test.
const WITNESS_TIMEOUT: Duration = Duration::from_millis(1000);
/// What a lone add may take beyond the witness timeout (debug build, 2 shared cores).
const SLACK: Duration = Duration::from_millis(1500);
/// How long to wait for something that should happen soon.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `ledger --trust <trust> args…`.
fn ledger(trust: &Path, args: &[&str]) -> Output {
    Command::new(workspace_binary("ledger-cli", "client", "ledger"))
        .arg("--trust")
        .arg(trust)
        .args(args)
        .output()
        .expect("run ledger")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The witnesses (of `keys`) whose cosignature on `note` verifies.
fn cosigners(note: &str, keys: &[VerifierKey]) -> Vec<String> {
    let cp = SignedCheckpoint::parse(note.as_bytes()).expect("checkpoint parses");
    cp.verify_cosignatures(keys)
        .into_iter()
        .map(|(k, _)| k.name().to_string())
        .collect()
}

#[test]
fn three_auditors_witness_one_log() {
    let th = TreeHash::Blake3;
    let tmp = tempfile::Builder::new()
        .prefix("ledger-witnesses-")
        .tempdir()
        .expect("tempdir");
    // The log key exists before the log, so the auditors can be configured with it first.
    let log_key = test_key(TEST_ORIGIN);
    let key_file: PathBuf = tmp.path().join("log.key");
    std::fs::write(&key_file, log_key.to_text()).expect("log.key");
    let auditors: Vec<Auditor> = ["w1.example", "w2.example", "w3.example"]
        .iter()
        .map(|n| Auditor::start(n, &log_key.verifier(), th))
        .collect();
    let keys: Vec<VerifierKey> = auditors.iter().map(Auditor::vkey).collect();

    let mut opts = Options::new(th)
        .arg("--key")
        .arg(&key_file.display().to_string())
        .arg("--quorum")
        .arg("2")
        .arg("--witness-timeout-ms")
        .arg(&WITNESS_TIMEOUT.as_millis().to_string());
    for a in &auditors {
        opts = opts.arg("--witness").arg(&a.witness_arg());
    }
    let log = TestLog::start(opts);

    // /v1/info lists the witnesses (in configuration order) and the quorum.
    let info = log.info();
    assert_eq!(
        info.witnesses,
        keys.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    assert_eq!(info.quorum, 2);

    // ---- all three up: receipts, lookups and /checkpoint carry their cosignatures.
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp).expect("enroll");
    let alice = "tel:+14155550100";
    let r = log.submit_ok(&claim(
        &msp,
        alice,
        "mimi://msp-a.example/u/alice",
        now(),
        &[],
        None,
    ));
    let on_receipt = cosigners(&r.checkpoint, &keys);
    assert!(
        on_receipt.len() >= 2,
        "the receipt carries {on_receipt:?}\n{}",
        log.output()
    );
    let answer = log.lookup(alice);
    let on_lookup = cosigners(&answer.checkpoint, &keys);
    assert!(on_lookup.len() >= 2, "the lookup carries {on_lookup:?}");
    let cp_size = SignedCheckpoint::parse(answer.checkpoint.as_bytes())
        .expect("parses")
        .checkpoint
        .size;
    assert!(
        cp_size > r.index,
        "the lookup's checkpoint covers the claim"
    );

    // `ledger trust init` records the witnesses and quorum; `ledger lookup` verifies with them.
    let trust2 = tmp.path().join("trust.toml");
    let out = ledger(&trust2, &["trust", "init", "--log", &log.url()]);
    assert!(out.status.success(), "trust init: {}", text(&out));
    let trust_text = std::fs::read_to_string(&trust2).expect("trust file");
    assert!(trust_text.contains("quorum = 2"), "{trust_text}");
    for k in &keys {
        assert!(trust_text.contains(&k.to_string()), "{trust_text}");
    }
    let out = ledger(&trust2, &["lookup", alice]);
    assert!(out.status.success(), "lookup with quorum 2: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mimi://msp-a.example/u/alice"),
        "{}",
        text(&out)
    );

    // `--audit` sends the verified checkpoint to an auditor that cosigned it.
    let witness = auditors
        .iter()
        .find(|a| on_lookup.iter().any(|n| n == a.key.name()))
        .expect("a cosigner");
    let out = ledger(&trust2, &["lookup", alice, "--audit", &witness.svc.url()]);
    assert!(out.status.success(), "lookup --audit: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("audit by {}: consistent", witness.svc.url())),
        "{}",
        text(&out)
    );

    // ---- one auditor paused: it accepts connections but never answers.
    let down = &auditors[2];
    down.signal(libc::SIGSTOP);
    let bob = "tel:+14155550199";
    let started = Instant::now();
    let r2 = log.submit_ok(&claim(
        &msp,
        bob,
        "mimi://msp-a.example/u/bob",
        now(),
        &[],
        None,
    ));
    let took = started.elapsed();
    assert!(
        took < WITNESS_TIMEOUT + SLACK,
        "a lone add took {took:?} with a witness down (timeout {WITNESS_TIMEOUT:?})"
    );
    let on_receipt = cosigners(&r2.checkpoint, &keys);
    assert!(
        on_receipt.len() >= 2 && !on_receipt.iter().any(|n| n == down.key.name()),
        "with w3 paused the receipt carries {on_receipt:?}"
    );
    let size2 = SignedCheckpoint::parse(r2.checkpoint.as_bytes())
        .expect("parses")
        .checkpoint
        .size;

    // Quorum 2 still verifies; a client requiring all three fails at the witness step.
    let out = ledger(&trust2, &["lookup", bob]);
    assert!(out.status.success(), "lookup with quorum 2: {}", text(&out));
    let trust3 = tmp.path().join("trust3.toml");
    let trust_text = std::fs::read_to_string(&trust2).expect("trust file");
    std::fs::write(&trust3, trust_text.replace("quorum = 2", "quorum = 3")).expect("trust3");
    let out = ledger(&trust3, &["lookup", bob]);
    assert_eq!(out.status.code(), Some(2), "quorum 3: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VERIFICATION FAILED") && stderr.contains("witness-quorum"),
        "{}",
        text(&out)
    );

    // ---- the auditor resumes: the background retry republishes the SAME checkpoint with all
    // three cosignatures, without any new entry; the quorum-3 client now verifies.
    down.signal(libc::SIGCONT);
    let note = wait_for(DEADLINE, "the third cosignature on /checkpoint", || {
        let body = log.get("/checkpoint").text();
        (cosigners(&body, &keys).len() == 3).then_some(body)
    });
    let cp = log.verify_checkpoint(note.as_bytes());
    assert_eq!(cp.checkpoint.size, size2, "no new checkpoint was needed");
    let out = ledger(&trust3, &["lookup", bob]);
    assert!(out.status.success(), "lookup with quorum 3: {}", text(&out));
}

/// Hardening, item 1: an old backup of the data folder restored *together with* the checkpoint
/// lock of that time gets past the lock, but not past the witnesses: before the log accepts any
/// submission it asks them, and one that has cosigned a larger checkpoint makes the start fail
/// (exit 1, naming the witness and both sizes) instead of signing a fork.
#[test]
fn a_rolled_back_store_and_lock_are_refused_by_the_witnesses() {
    let th = TreeHash::Blake3;
    let tmp = tempfile::Builder::new()
        .prefix("ledger-rollback-")
        .tempdir()
        .expect("tempdir");
    let log_key = test_key(TEST_ORIGIN);
    let key_file: PathBuf = tmp.path().join("log.key");
    std::fs::write(&key_file, log_key.to_text()).expect("log.key");
    let lock_file = tmp.path().join("log.key.checkpoint");
    let auditor = Auditor::start("w1.example", &log_key.verifier(), th);
    let opts = Options::new(th)
        .arg("--key")
        .arg(&key_file.display().to_string())
        .arg("--quorum")
        .arg("1")
        .arg("--witness-timeout-ms")
        .arg(&WITNESS_TIMEOUT.as_millis().to_string())
        .arg("--witness")
        .arg(&format!("{}={}", auditor.svc.url(), auditor.vkey()));
    let mut log = TestLog::start(opts.clone());
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    let t = now();
    let add = |log: &TestLog, i: u32| {
        log.submit_ok(&claim(
            &msp,
            &format!("tel:+1415555{i:04}"),
            "mimi://msp-a.example/u/x",
            t,
            &[],
            None,
        ))
    };
    for i in 0..3 {
        add(&log, i);
    }
    log.sigterm();
    let backup = tmp.path().join("backup");
    copy_dir(&log.data_dir(), &backup.join("data"));
    let old_lock = std::fs::read(&lock_file).expect("lock");

    log.restart();
    for i in 3..6 {
        add(&log, i);
    }
    let newest = log.checkpoint().checkpoint.size;
    // The witness has cosigned the newest checkpoint.
    wait_for(
        DEADLINE,
        "the witness cosigned the newest checkpoint",
        || {
            let note = log.get("/checkpoint").text();
            (cosigners(&note, &[auditor.vkey()]).len() == 1
                && log.checkpoint().checkpoint.size == newest)
                .then_some(())
        },
    );
    log.sigterm();

    // Roll back the data folder and the lock together.
    std::fs::remove_dir_all(log.data_dir()).expect("rm data");
    copy_dir(&backup.join("data"), &log.data_dir());
    std::fs::write(&lock_file, &old_lock).expect("old lock");
    let exited = log
        .try_start_with(&opts)
        .expect_err("a witness has cosigned more than the store holds");
    assert_eq!(exited.status.code(), Some(1), "{}", exited.output);
    assert!(
        exited.output.contains(&format!(
            "has cosigned a checkpoint of size {newest} of this log, but the store holds only 8 entries"
        )),
        "{}",
        exited.output
    );
    assert_eq!(
        std::fs::read(&lock_file).expect("lock"),
        old_lock,
        "nothing new was signed into the lock"
    );
}
