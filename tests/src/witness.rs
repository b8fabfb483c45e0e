//! A real `auditor` witnessing [`TEST_ORIGIN`], for tests whose log needs cosigned checkpoints:
//! its own folder and witness key, no log URL and a long poll interval, so it learns checkpoints
//! only from the log's `add-checkpoint` requests (start the log with `--witness URL=VKEY`).

use std::ffi::OsStr;

use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::testkit::test_witness_key;
use ledger_core::TreeHash;

use crate::{workspace_binary, Service, TEST_ORIGIN};

/// A running witness (killed on drop, with its folder).
pub struct Auditor {
    _dir: tempfile::TempDir,
    /// Its witness key (`test_witness_key(name)`).
    pub key: SignerKey,
    /// The process.
    pub svc: Service,
}

impl Auditor {
    /// Starts an auditor named `name` that witnesses the log `log_key` with tree hash `hash`.
    pub fn start(name: &str, log_key: &VerifierKey, hash: TreeHash) -> Auditor {
        let dir = tempfile::Builder::new()
            .prefix("ledger-witness-")
            .tempdir()
            .expect("tempdir");
        let key = test_witness_key(name);
        std::fs::write(dir.path().join("witness.key"), key.to_text()).expect("witness.key");
        let config = dir.path().join("auditor.toml");
        std::fs::write(
            &config,
            format!(
                "key_file = \"witness.key\"\nstate_dir = \"state\"\npoll_interval_ms = 600000\n\
                 [alerts]\nstdout = true\n\
                 [[log]]\norigin = \"{TEST_ORIGIN}\"\nvkey = \"{log_key}\"\nhash = \"{}\"\n",
                hash.name()
            ),
        )
        .expect("auditor.toml");
        let bin = workspace_binary("auditor", "auditor", "auditor");
        let svc = Service::start(
            name,
            &bin,
            &[
                OsStr::new("--config"),
                config.as_os_str(),
                OsStr::new("--listen"),
                OsStr::new("127.0.0.1:0"),
            ],
            &[],
            true,
        );
        Auditor {
            _dir: dir,
            key,
            svc,
        }
    }

    /// Its witness verifier key (what the log's `--witness URL=VKEY` and trust files name).
    pub fn vkey(&self) -> VerifierKey {
        self.key.verifier()
    }

    /// The `--witness` argument of a log that this auditor witnesses.
    pub fn witness_arg(&self) -> String {
        format!("{}={}", self.svc.url(), self.vkey())
    }

    /// Sends `sig` to the process (`SIGSTOP` makes it the worst kind of down: it accepts
    /// connections and never answers).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.svc.pid().expect("auditor runs");
        let pid = libc::pid_t::try_from(pid).expect("pid fits");
        // SAFETY: plain kill(2) on a child process this test started and still owns.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }
}
