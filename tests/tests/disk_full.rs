//! A full disk (hardening issue, items 3 and 4), on a small tmpfs mounted by the test over the
//! log's data folder (skipped, with the reason printed, where the machine refuses the mount):
//!
//! - starting on a disk below the free-space floor refuses, says so, and changes nothing; once
//!   space is freed the log opens with every entry; the empty `snap.*.generating` file that an
//!   interrupted start leaves behind no longer makes the store unopenable;
//! - while running, a disk below the floor refuses writes with 503 `storage-full` and
//!   `Retry-After` while reads go on, and writing resumes by itself once space is freed;
//! - a write on a truly full disk (the floor turned off) meets the batch's tile files first, which
//!   are written before the index that makes them count: it is refused with 503 `storage-full` and
//!   `Retry-After`, nothing of it is stored, reads go on (the files of `public/` still hash to the
//!   served checkpoint), and once space is freed writing resumes with no restart; a restart opens
//!   with every acknowledged entry. (Should sled's own write meet the full disk first, the log
//!   stops writing with `storage-failed` until a restart, as documented: that path is checked
//!   when it happens.)

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use ledger_core::entry::{Leaf, Role};
use ledger_core::key::SignerKey;
use ledger_core::testkit::test_key;
use ledger_e2e::{mail_claim, now, Options, TestLog};

/// A tmpfs mounted over a log's data folder, unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB at `at`, or says why not (then the test is skipped).
    fn mount(at: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mkdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                at: at.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipped: this machine refuses to mount a tmpfs ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the filesystem with `filler` files until at most `leave` bytes are free.
    fn fill_leaving(&self, leave: u64) {
        let free = free_bytes(&self.at);
        let mut f = std::fs::File::create(self.filler()).expect("filler");
        let want = free.saturating_sub(leave);
        let chunk = vec![0x5Au8; 64 * 1024];
        let mut written = 0u64;
        while written + chunk.len() as u64 <= want {
            if f.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len() as u64;
        }
        // The last bytes one page at a time, until the disk refuses (for `leave` = 0).
        let page = vec![0x5Au8; 4096];
        while free_bytes(&self.at) > leave + 4096 {
            if f.write_all(&page).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        if leave == 0 {
            while f.write_all(&page).and_then(|_| f.sync_all()).is_ok() {}
        }
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}

/// Name, size and content of every file under `dir` (to show nothing was changed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            out.extend(snapshot(&entry.path()));
        } else {
            out.insert(entry.path(), std::fs::read(entry.path()).expect("read"));
        }
    }
    out
}

fn claim_n(msp: &SignerKey, tag: &str, i: u64) -> Leaf {
    mail_claim(msp, tag, i, now())
}

/// A stopped log whose data folder is a tmpfs of `mib` MiB, started once and holding an MSP and
/// `n` claims; returns it running.
fn log_on_tmpfs(mib: u64, min_free_mb: u64, n: u64) -> Option<(TestLog, Tmpfs, SignerKey)> {
    let opts = Options::default()
        .arg("--min-free-mb")
        .arg(&min_free_mb.to_string());
    let mut log = TestLog::stopped(opts.clone());
    let fs = Tmpfs::mount(&log.data_dir(), mib)?;
    log.try_start_with(&opts).expect("starts on the tmpfs");
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);
    for i in 0..n {
        log.submit_ok(&claim_n(&msp, "before", i));
    }
    Some((log, fs, msp))
}

#[test]
fn a_start_on_a_full_disk_changes_nothing_and_opens_once_space_is_freed() {
    let Some((mut log, fs, _msp)) = log_on_tmpfs(32, 4, 200) else {
        return;
    };
    let served = log.checkpoint();
    log.sigterm();
    let opts = log.options().clone();
    let db = log.data_dir().join("index");

    // Below the floor: refused, nothing changed.
    fs.fill_leaving(1024 * 1024);
    let before = snapshot(&db);
    let exited = log
        .try_start_with(&opts)
        .expect_err("refused on a full disk");
    assert_eq!(exited.status.code(), Some(1), "{}", exited.output);
    assert!(
        exited.output.contains("must keep free") && exited.output.contains("nothing was changed"),
        "{}",
        exited.output
    );
    assert_eq!(snapshot(&db), before, "the store is exactly as it was");

    // Space freed: every entry is there.
    fs.free();
    log.try_start_with(&opts)
        .expect("starts once space is freed");
    let cp = log.checkpoint();
    assert_eq!(
        (cp.checkpoint.size, cp.checkpoint.root),
        (served.checkpoint.size, served.checkpoint.root)
    );
    log.sigterm();

    // The floor turned off and the disk truly full: the index's own start may fail or not, but
    // after space is freed the store opens with every entry.
    let no_floor = Options::default().arg("--min-free-mb").arg("0");
    fs.fill_leaving(0);
    if let Ok(()) = log.try_start_with(&no_floor) {
        log.kill9();
    }
    fs.free();
    log.try_start_with(&opts)
        .expect("what an interrupted start left does not block the store");
    assert_eq!(log.checkpoint().checkpoint.size, served.checkpoint.size);
    log.sigterm();
}

#[test]
fn below_the_floor_writes_are_refused_and_resume_by_themselves() {
    let Some((mut log, fs, msp)) = log_on_tmpfs(48, 8, 20) else {
        return;
    };
    fs.fill_leaving(4 * 1024 * 1024);
    let refused = log
        .submit(claim_n(&msp, "low", 0).bytes())
        .expect_err("refused below the floor");
    let p = refused.assert_problem(503, "storage-full", "disk below the floor");
    assert!(p.detail.contains("resume"), "{}", p.detail);
    assert!(
        refused.header("retry-after").is_some(),
        "Retry-After is set"
    );
    // A bundle is refused as a whole, the same way (issue #13): nothing of it is stored.
    let bundle: Vec<Vec<u8>> = (0..3)
        .map(|i| claim_n(&msp, "low-bundle", i).bytes().to_vec())
        .collect();
    let framed = ledger_core::bundle::encode_bundle(&bundle).expect("frames");
    let r = log.post("/v1/add-bundle", "application/octet-stream", framed.clone());
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.problem_slug().as_deref(), Some("storage-full"));
    assert!(r.header("retry-after").is_some(), "Retry-After is set");
    let health = log.get("/healthz");
    assert_eq!(health.status, 503);
    assert_eq!(health.problem_slug().as_deref(), Some("storage-full"));
    // Reads go on.
    assert_eq!(log.get("/checkpoint").status, 200);
    // The enrollment and 20 claims, each its own batch closed by a map leaf.
    assert_eq!(log.checkpoint().checkpoint.size, 42);
    let metrics = log.get("/metrics").text();
    assert!(
        metrics.contains("ledger_writes_refused_disk_low 1"),
        "{metrics}"
    );

    fs.free();
    let r = log.submit_ok(&claim_n(&msp, "low", 0));
    assert_eq!(r.index, 42, "writing resumed without a restart");
    assert_eq!(log.get("/healthz").status, 200);
    // … and the same bundle is now taken whole: three receipts, in order.
    let r = log.post("/v1/add-bundle", "application/octet-stream", framed);
    assert_eq!(r.status, 200, "{}", r.text());
    let answers: Vec<serde_json::Value> = r.json();
    assert_eq!(answers.len(), 3);
    let indices: Vec<u64> = answers
        .iter()
        .map(|a| {
            a["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("a receipt: {a}"))
        })
        .collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
    assert!(indices[0] > 42, "{indices:?}");
    log.sigterm();
}

#[test]
fn a_write_on_a_full_disk_is_refused_and_resumes_once_space_is_freed_losing_nothing() {
    let Some((mut log, fs, msp)) = log_on_tmpfs(32, 0, 0) else {
        return;
    };
    let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
    for i in 0..50 {
        let leaf = claim_n(&msp, "acked", i);
        let r = log.submit_ok(&leaf);
        acked.push((r.index, leaf.bytes().to_vec()));
    }
    fs.fill_leaving(0);
    // Until the page cache's and sled's buffers meet the full disk, writes may still succeed:
    // keep the acknowledged ones; within a bounded number a write fails.
    let mut failed = None;
    for i in 0..2000 {
        let leaf = claim_n(&msp, "full", i);
        match log.submit(leaf.bytes()) {
            Ok(r) => acked.push((r.index, leaf.bytes().to_vec())),
            Err(resp) => {
                failed = Some(resp);
                break;
            }
        }
    }
    let resp = failed.expect("a write on a full disk fails");
    let slug = resp.problem_slug();
    if slug.as_deref() == Some("storage-failed") {
        // sled's own write met the full disk first: writing stops until a restart.
        eprintln!("the index's write met the full disk first: checking the restart path");
        fs.free();
        log.submit(claim_n(&msp, "freed", 0).bytes())
            .expect_err("still stopped")
            .assert_problem(503, "storage-failed", "still stopped after space is freed");
        log.restart();
    } else {
        resp.assert_problem(503, "storage-full", "a write on a full disk");
        assert!(resp.header("retry-after").is_some(), "{}", resp.text());
        // Reads go on, and the static files are those of the served checkpoint.
        let cp = log.checkpoint();
        log.verify_public_files(&cp);
        // Still full: still refused, nothing stored.
        log.submit(claim_n(&msp, "still-full", 0).bytes())
            .expect_err("still full")
            .assert_problem(503, "storage-full", "still full");
        assert_eq!(log.checkpoint().checkpoint, cp.checkpoint);
        // Space freed: the next write is taken with no restart.
        fs.free();
        let leaf = claim_n(&msp, "freed", 0);
        let r = log.submit_ok(&leaf);
        assert_eq!(
            r.index, cp.checkpoint.size,
            "writing resumed without a restart"
        );
        acked.push((r.index, leaf.bytes().to_vec()));
        let next = log.checkpoint();
        log.assert_consistent(&cp, &next);
        log.restart();
    }
    let cp = log.checkpoint();
    let leaves = log.verify_public_files(&cp);
    assert_eq!(log.verify_tree(&cp), leaves);
    for (index, bytes) in &acked {
        assert_eq!(
            leaves.get(usize::try_from(*index).expect("index")),
            Some(bytes),
            "acknowledged leaf {index} is at its index after the restart"
        );
    }
    let r = log.submit_ok(&claim_n(&msp, "after-restart", 0));
    assert!(r.index >= acked.len() as u64);
    log.sigterm();
}
