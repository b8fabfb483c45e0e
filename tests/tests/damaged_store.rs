//! A damaged store never leads to a forked signature (hardening issue, item 1): on a cleanly
//! stopped log, each kind of damage an outside test found — bytes flipped near the start or the
//! end of the index's journal (fjall's, under `index/`: a log of this size has all its index
//! records there), its tail cut, the file truncated to 0 or to half, `index/` deleted, an empty
//! data folder started with the key of the existing log — either makes the real `log-server`
//! refuse to start (exit 1, a message that names the problem, the checkpoint lock unchanged), or
//! the log opens with exactly the checkpoint it served before and signs only checkpoints
//! consistent with it. The cases that lose entries must refuse. The checkpoint lock itself is
//! checked too: missing (refused unless `--adopt-store`), foreign (refused), and a second
//! process signing with the same key and lock is stopped.

use std::path::Path;

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Role;
use ledger_core::key::SignerKey;
use ledger_core::testkit::{claim, test_key};
use ledger_core::tile::Tile;
use ledger_e2e::{copy_dir, mail_claim, mail_sii, now, Options, TestLog};

/// Entries in the log before it is damaged (enough for the index journal to pass 64 KiB).
const ENTRIES: u64 = 1500;
/// Submitting threads while filling the log.
const THREADS: u64 = 6;

/// Fills `log` with `ENTRIES` claims (one MSP), from several threads.
fn fill(log: &TestLog, msp: &SignerKey, tag: &str) {
    log.enroll(Role::Msp, msp);
    let t = now();
    std::thread::scope(|s| {
        for th in 0..THREADS {
            s.spawn(move || {
                for i in (th..ENTRIES).step_by(THREADS as usize) {
                    let leaf = mail_claim(msp, tag, i, t);
                    log.submit_ok(&leaf);
                }
            });
        }
    });
}

/// One way of damaging the index's journal.
type Damage = Box<dyn Fn(&Path)>;

/// The data folder of a file under its `index/`.
fn data_of(file: &Path) -> std::path::PathBuf {
    file.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "index"))
        .and_then(Path::parent)
        .expect("data/index/…")
        .to_path_buf()
}

/// The largest file under `dir` (the index's journal, in a log this small).
fn largest_file(dir: &Path) -> std::path::PathBuf {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::metadata(&p).expect("metadata");
            if meta.is_dir() {
                todo.push(p);
            } else if best.as_ref().is_none_or(|(len, _)| meta.len() > *len) {
                best = Some((meta.len(), p));
            }
        }
    }
    best.expect("a file under index/").1
}

/// Where the written data ends in `db` (the file may be longer, padded with zeros).
fn data_end(db: &Path) -> u64 {
    let bytes = std::fs::read(db).expect("read db");
    bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1)
}

fn flip16(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = usize::try_from(offset).expect("offset");
    for b in bytes.iter_mut().skip(at).take(16) {
        *b ^= 0xA5;
    }
    std::fs::write(path, bytes).expect("write");
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .expect("truncate");
}

/// The outcome the safety rule allows: refused with one of `reasons` named, or opened with the
/// served checkpoint and signing consistently on top of it. Returns whether it refused.
fn check_outcome(
    log: &mut TestLog,
    case: &str,
    served: &SignedCheckpoint,
    lock: &Path,
    msp: &SignerKey,
    reasons: &[&str],
) -> bool {
    let lock_before = std::fs::read(lock).ok();
    let opts = log.options().clone();
    match log.try_start_with(&opts) {
        Err(exited) => {
            assert_eq!(
                exited.status.code(),
                Some(1),
                "{case}: a refusal exits 1 (not a panic); output:\n{}",
                exited.output
            );
            assert!(
                reasons.iter().any(|r| exited.output.contains(r)),
                "{case}: the refusal names the problem (one of {reasons:?}); output:\n{}",
                exited.output
            );
            assert_eq!(
                std::fs::read(lock).ok(),
                lock_before,
                "{case}: a refused start leaves the checkpoint lock as it was"
            );
            true
        }
        Ok(()) => {
            let now_cp = log.checkpoint();
            assert_eq!(
                (now_cp.checkpoint.size, now_cp.checkpoint.root),
                (served.checkpoint.size, served.checkpoint.root),
                "{case}: a log that opens over a damaged store serves exactly the checkpoint it served before"
            );
            let leaf = claim(
                msp,
                &mail_sii(
                    &format!(
                        "after-{}",
                        case.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                    ),
                    0,
                ),
                "mimi://msp-a.example/u/y",
                now(),
                &[],
                None,
            );
            log.submit_ok(&leaf);
            let next = log.checkpoint();
            log.assert_consistent(served, &next);
            log.kill9();
            false
        }
    }
}

#[test]
fn damaged_stores_are_refused_or_served_unchanged_never_forked() {
    let mut log = TestLog::start(Options::default());
    let msp = test_key("msp-a.example");
    fill(&log, &msp, "damage");
    let served = log.checkpoint();
    assert_eq!(log.entry_count(), ENTRIES + 1);
    log.sigterm();

    let data = log.data_dir();
    let db = largest_file(&data.join("index"));
    let lock = data.join("log.key.checkpoint");
    assert!(lock.exists(), "the checkpoint lock is beside the key");
    let pristine = tempfile::tempdir().expect("tempdir");
    copy_dir(&data, pristine.path());
    let restore = |data: &Path| {
        std::fs::remove_dir_all(data).expect("rm data");
        copy_dir(pristine.path(), data);
    };
    let len = std::fs::metadata(&db).expect("db").len();
    let end = data_end(&db);
    assert!(
        end > 64 * 1024 + 16,
        "the index wrote {end} bytes to {}",
        db.display()
    );

    const LOST: &[&str] = &["the store lost entries", "is damaged", "do not hash"];
    // The head's rightmost level-0 tile and bundle (partial, unless the size is a multiple of 256).
    let (head_index, head_width) = (
        served.checkpoint.size / 256,
        (served.checkpoint.size % 256) as u16,
    );
    assert!(head_width > 0, "the head ends in a partial tile");
    let mut refused = Vec::new();
    // Flips near the start and near the end of what the index wrote, and cut tails.
    let damages: Vec<(String, Damage)> = vec![
        ("flip@512".into(), Box::new(|p: &Path| flip16(p, 512))),
        ("flip@64KiB".into(), Box::new(|p: &Path| flip16(p, 65536))),
        (
            "flip@end-4KiB".into(),
            Box::new(move |p: &Path| flip16(p, end - 4096)),
        ),
        (
            "flip@end-64".into(),
            Box::new(move |p: &Path| flip16(p, end - 64)),
        ),
        (
            "cut last 10 KiB of the file".into(),
            Box::new(move |p: &Path| truncate(p, len - 10240)),
        ),
        // Partial hash tiles are rewritten from `hashes` at start (they are not synced before
        // the commit point): either outcome is allowed, and the log must not fork.
        (
            "flip a hash in the head's partial level-0 tile".into(),
            Box::new(move |p: &Path| {
                let tile = Tile::new(0, head_index, head_width).expect("tile");
                flip16(&data_of(p).join("public").join(tile.path()), 0);
            }),
        ),
    ];
    for (case, damage) in &damages {
        restore(&data);
        damage(&db);
        let was_refused = check_outcome(&mut log, case, &served, &lock, &msp, LOST);
        eprintln!(
            "{case}: {}",
            if was_refused {
                "refused"
            } else {
                "opened unchanged"
            }
        );
        if was_refused {
            refused.push(case.clone());
        }
    }

    // Damage that loses entries for sure must be refused.
    let must_refuse: Vec<(&str, Damage, &[&str])> = vec![
        (
            "cut the last 10 KiB of the data",
            Box::new(move |p: &Path| truncate(p, end - 10240)),
            LOST,
        ),
        (
            "truncate to 0",
            Box::new(|p: &Path| truncate(p, 0)),
            &[
                "the store is empty, but this log's key already signed",
                "the store lost entries",
                "is damaged",
            ],
        ),
        (
            // Half of what was written (the journal file is preallocated, so half of its length
            // would cut only zeros).
            "truncate to half of the data",
            Box::new(move |p: &Path| truncate(p, end / 2)),
            &[
                "the store is empty, but this log's key already signed",
                "the store lost entries",
                "is damaged",
            ],
        ),
        (
            "delete index/",
            Box::new(|p: &Path| std::fs::remove_dir_all(data_of(p).join("index")).expect("rm")),
            &[
                "the store is empty, but this log's key already signed",
                "the index was lost",
            ],
        ),
        // The tree's files (`hashes`, `public/`) beside the index.
        (
            "delete hashes",
            Box::new(|p: &Path| std::fs::remove_file(data_of(p).join("hashes")).expect("rm")),
            LOST,
        ),
        (
            "cut the last KiB of hashes",
            Box::new(|p: &Path| {
                let h = data_of(p).join("hashes");
                truncate(&h, std::fs::metadata(&h).expect("hashes").len() - 1024)
            }),
            LOST,
        ),
        (
            "cut the last byte of map-journal",
            Box::new(|p: &Path| {
                let j = data_of(p).join("map-journal");
                truncate(&j, std::fs::metadata(&j).expect("map-journal").len() - 1)
            }),
            LOST,
        ),
        (
            "delete public/",
            Box::new(|p: &Path| std::fs::remove_dir_all(data_of(p).join("public")).expect("rm")),
            LOST,
        ),
        (
            "delete the head's partial entry bundle",
            Box::new(move |p: &Path| {
                let bundle = Tile::entry_bundle(head_index, head_width).expect("bundle");
                std::fs::remove_file(data_of(p).join("public").join(bundle.path())).expect("rm")
            }),
            LOST,
        ),
    ];
    for (case, damage, reasons) in &must_refuse {
        restore(&data);
        damage(&db);
        assert!(
            check_outcome(&mut log, case, &served, &lock, &msp, reasons),
            "{case}: must be refused"
        );
    }
    assert!(
        refused.len() + must_refuse.len() >= 4,
        "the refusals were exercised"
    );

    // The intact copy opens with every entry.
    restore(&data);
    assert!(!check_outcome(
        &mut log, "intact", &served, &lock, &msp, LOST
    ));
}

#[test]
fn an_empty_folder_with_the_key_of_a_log_that_signed_is_refused_unless_forking_is_asked_for() {
    let mut old = TestLog::start(Options::default());
    let msp = test_key("msp-a.example");
    old.enroll(Role::Msp, &msp);
    old.sigterm();
    let key = old.data_dir().join("log.key");

    let opts = Options::default()
        .arg("--key")
        .arg(&key.display().to_string());
    let mut fresh = TestLog::stopped(opts.clone());
    let exited = fresh
        .try_start_with(&opts)
        .expect_err("an empty store under a key that signed is refused");
    assert_eq!(exited.status.code(), Some(1), "{}", exited.output);
    assert!(
        exited.output.contains(
            "the store is empty, but this log's key already signed a checkpoint of size 2"
        ),
        "{}",
        exited.output
    );
    assert!(
        exited.output.contains("--allow-new-tree"),
        "{}",
        exited.output
    );

    // Asked for explicitly, the fork starts (and the lock now follows the new tree).
    let forking = opts.clone().arg("--allow-new-tree");
    fresh
        .try_start_with(&forking)
        .expect("--allow-new-tree starts");
    assert_eq!(fresh.checkpoint().checkpoint.size, 0);
    assert!(
        fresh.output().contains("this is a fork"),
        "{}",
        fresh.output()
    );
    fresh.enroll(Role::Msp, &test_key("msp-b.example"));
    fresh.kill9();
    // The key's lock now holds the new tree's checkpoint of size 1, which the old store's first
    // entry does not hash to: the old log is refused.
    let exited = old
        .try_start_with(&old.options().clone())
        .expect_err("the old store no longer matches the key's lock");
    assert!(
        exited.output.contains("do not hash") || exited.output.contains("lost entries"),
        "{}",
        exited.output
    );
}

#[test]
fn the_checkpoint_lock_is_required_checked_and_not_shared() {
    let mut log = TestLog::start(Options::default());
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    log.submit_ok(&claim(
        &msp,
        "tel:+14155550100",
        "mimi://msp-a.example/u/a",
        now(),
        &[],
        None,
    ));
    let served = log.checkpoint();
    log.sigterm();
    let lock = log.data_dir().join("log.key.checkpoint");
    let saved = std::fs::read(&lock).expect("lock");

    // Missing: refused, unless the operator adopts the store as it is.
    std::fs::remove_file(&lock).expect("rm lock");
    let opts = log.options().clone();
    let exited = log.try_start_with(&opts).expect_err("no lock");
    assert!(
        exited.output.contains("no checkpoint lock"),
        "{}",
        exited.output
    );
    assert!(exited.output.contains("--adopt-store"), "{}", exited.output);
    assert!(!lock.exists(), "a refused start writes no lock");
    log.try_start_with(&opts.clone().arg("--adopt-store"))
        .expect("adopted");
    assert_eq!(log.checkpoint().checkpoint.root, served.checkpoint.root);
    log.sigterm();
    assert_eq!(
        std::fs::read(&lock).expect("lock"),
        saved,
        "the lock is recreated from the store"
    );

    // Foreign (signed by another key): refused.
    let other = TestLog::start(Options::default());
    let other_lock = std::fs::read(other.data_dir().join("log.key.checkpoint")).expect("lock");
    std::fs::write(&lock, &other_lock).expect("write lock");
    let exited = log.try_start_with(&opts).expect_err("foreign lock");
    assert!(
        exited.output.contains("checkpoint lock"),
        "{}",
        exited.output
    );
    assert!(
        exited.output.contains("not a checkpoint signed by"),
        "{}",
        exited.output
    );
    std::fs::write(&lock, &saved).expect("restore lock");

    // A second process with the same key and lock (another data folder): whichever signs second
    // finds the lock changed and stops writing instead of interleaving two trees.
    log.try_start_with(&opts).expect("starts again");
    let key = log.data_dir().join("log.key");
    let twin_opts = Options::default()
        .arg("--key")
        .arg(&key.display().to_string())
        .arg("--allow-new-tree");
    let mut twin = TestLog::stopped(twin_opts.clone());
    twin.try_start_with(&twin_opts)
        .expect("twin starts (forking, as asked)");
    let r = log.submit(
        claim(
            &msp,
            "tel:+14155550101",
            "mimi://msp-a.example/u/b",
            now(),
            &[],
            None,
        )
        .bytes(),
    );
    let resp = r.expect_err("the first log's lock was moved by the twin");
    resp.assert_problem(503, "storage-failed", "lock changed");
    let health = log.get("/healthz");
    assert_eq!(health.status, 503);
    assert!(
        health.text().contains("changed by someone else"),
        "{}",
        health.text()
    );
    twin.kill9();
}
