//! Test support: a runner for the real `monitor` binary, and logs for it to follow; the small HTTP
//! server that serves C2SP tiles built from a `MemLog` (optionally with one change) is
//! `ledger_e2e::TileServer`, re-exported here.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ledger_core::entry::{Action, Role};
use ledger_core::testkit::{attestation, claim, test_key, MemLog};
use ledger_core::TreeHash;

// The static C2SP tile server (also a gossip peer) and the publishing of a `MemLog`'s tiles are
// the harness's, shared with the scenario tests.
#[allow(unused_imports)] // each test file uses some of them
pub use ledger_e2e::{publish, publish_leaves, Files, KillOnDrop, TileServer};

/// A `monitor.toml` for one log, with a file sink at `alerts` and `extra` TOML appended.
pub fn config(
    url: &str,
    origin: &str,
    vkey: &str,
    hash: &str,
    alerts: &Path,
    extra: &str,
) -> String {
    format!(
        "poll_interval_s = 1\n\n[[log]]\nurl = \"{url}\"\norigin = \"{origin}\"\nvkey = \"{vkey}\"\nhash = \"{hash}\"\n\n\
         [[sink]]\ntype = \"file\"\npath = \"{}\"\n\n{extra}\n",
        alerts.display()
    )
}

/// A temporary folder with a config, a state folder and an alert file.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::Builder::new()
                .prefix("monitor-test-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("monitor.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_monitor"));
        cmd.arg("--config")
            .arg(self.dir.path().join("monitor.toml"))
            .arg("--state")
            .arg(self.state())
            .arg("--no-progress")
            .args(extra)
            .env("LEDGER_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `monitor --once`; returns (success, stderr).
    pub fn run_once(&self, extra: &[&str]) -> (bool, String) {
        let out = self
            .command(&["--once"])
            .args(extra)
            .output()
            .expect("run monitor");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts the monitor (follow mode unless `--once` is in `extra`).
    pub fn spawn(&self, extra: &[&str]) -> Child {
        self.command(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn monitor")
    }

    /// The alert lines delivered so far.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.alerts_path()).unwrap_or_default();
        // Only complete lines: the monitor may be writing one right now.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line {l:?}: {e}")))
            .collect()
    }

    /// Polls until `f(alerts)` holds, or panics after `deadline`.
    pub fn wait_alerts(
        &self,
        deadline: Duration,
        f: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let end = Instant::now() + deadline;
        loop {
            let a = self.alerts();
            if f(&a) {
                return a;
            }
            assert!(
                Instant::now() < end,
                "condition not met within {deadline:?}; alerts: {a:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The kinds of `alerts`, in order.
pub fn kinds(alerts: &[serde_json::Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Claims per batch in [`attested_log`].
pub const BATCH_CLAIMS: u64 = 50;

/// An honest log: two enrollments (`msp-a.example`, `prover.example`) and `claims` attested claims
/// of distinct SIIs `mailto:<tag(i)><i>@example.com` by `msp-a.example`, sealed (a map leaf
/// appended, SPEC §9) as a log server seals its batches: after the enrollments, after every
/// [`BATCH_CLAIMS`] claims, and at the end. So a log of a multiple of [`BATCH_CLAIMS`] claims is a
/// prefix of every longer one. Two logs built with the same origin are signed by the same key, so
/// a different `tag` for one index makes a fork.
pub fn attested_log(origin: &str, claims: u64, tag: impl Fn(u64) -> String) -> MemLog {
    let mut log = MemLog::new(origin, TreeHash::Blake3);
    let msp = test_key("msp-a.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Prover, &prover);
    log.seal();
    let t = log.now;
    for i in 0..claims {
        if i > 0 && i % BATCH_CLAIMS == 0 {
            log.seal();
        }
        let tag = tag(i);
        let sii = format!("mailto:{tag}{i}@example.com");
        let ssi = format!("mimi://msp-a.example/u/{tag}{i}");
        let att = attestation(
            &prover,
            Action::Claim,
            &sii,
            Some(("msp-a.example", &ssi)),
            t - 5,
        );
        let leaf = claim(&msp, &sii, &ssi, t, &[], Some(att));
        log.submit(leaf.bytes()).expect("admitted");
    }
    log.seal();
    log
}
