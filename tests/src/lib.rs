//! Harness for end-to-end tests over the real binaries.
//!
//! [`TestLog::start`] runs the real `log-server` binary on `127.0.0.1:0` with a fresh temporary data
//! folder, learns its port from the `listening on <addr>` line it prints, and polls `/healthz` with a
//! deadline (never a bare sleep). The handle kills the server on drop, can `kill -9` it, restart it on
//! the same data folder, or stop it with SIGTERM. The HTTP helpers speak SPEC §5 and hand back the
//! `ledger_core::api` wire types, and [`TestLog::verify_tree`] recomputes a checkpoint's root from the
//! C2SP tiles and entry bundles, twice, independently.
//!
//! Everything here panics on failure, with the server's output attached: it is test support.
//!
//! The server gets none of the test's `LEDGER_*` variables. Knobs for debugging:
//! `LEDGER_E2E_LOG_SERVER=<path>` tests that binary (no build); `LEDGER_E2E_SEED=<n>` replays a
//! random schedule (each test prints its seed); `LEDGER_E2E_ECHO=1` echoes the server's output
//! live; `LEDGER_E2E_LOG=<filter>` sets the server's `LEDGER_LOG` filter.
//!
//! The test doubles and start-up helpers the crates' tests share (a static C2SP tile server, a
//! lying Discovery Provider, the identity prover, polling with a deadline) are in [`doubles`].
//!
//! One module per thing it holds: `test_log` (the log-server process: options, start, restart,
//! signals, output), `log_api` (its HTTP helpers and tree verification), `mirror` (the log-server
//! as a DP mirror, and trust files), `tamper` (a lying DP proxy for the explorer's browser
//! tests), `response` (answers, problems, a raw HTTP/1.1 response parser), `s3` (a real S3
//! server, `s3s-fs`, for `--publish` and mirrors), `s3_gate` (the proxy that makes its conditional
//! writes atomic), `service` (the other workspace binaries run as services), `witness` (a real
//! auditor witnessing a test log), `binaries` (locating and building binaries), `util` (clock,
//! encodings, PRNG).

use std::time::Duration;

pub use ledger_core;

mod binaries;
pub mod doubles;
mod log_api;
mod mirror;
mod response;
mod s3;
mod s3_gate;
mod service;
mod tamper;
mod test_log;
mod util;
mod witness;

pub use binaries::{server_binary, workspace_binary};
pub use doubles::{
    idprover_binary, publish, publish_leaves, read_request_head, wait_for, Files, IdProver,
    KillOnDrop, LyingDp, RequestHead, TileServer,
};
pub use log_api::{assert_map_rebuilds, is_map_leaf, verify_tiles};
pub use mirror::{trust_text, write_trust_file, Mirror};
pub use response::Response;
pub(crate) use response::*;
pub use s3::{s3s_fs_binary, S3Server, S3S_FS_VERSION, S3_BUCKET};
pub use service::Service;
pub use tamper::TamperingDp;
pub(crate) use test_log::*;
pub use test_log::{parse_listening, Exited, Options, TestLog};
pub use util::{
    b64, b64url, b64url_nopad, copy_dir, ledger_cli, mail_claim, mail_sii, now, sign_text,
    stdout_json, url_encode, Rng,
};
pub use witness::Auditor;

/// How long a server may take to print its address and answer `/healthz`.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to drain and exit.
pub const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// The default origin of test logs.
pub const TEST_ORIGIN: &str = "e2e.example/log";
/// The problem type URI prefix of SPEC §5.
pub const PROBLEM_PREFIX: &str = "urn:mimi-ledger:problem:";
