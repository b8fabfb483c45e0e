//! # monitor
//!
//! Follows mimi-ledger logs over their C2SP tiles, verifies everything a log publishes, and alerts on
//! rogue claims and log misbehaviour (SPEC §8) — the discovery counterpart of a CT monitor.
//!
//! - [`config`]: `monitor.toml` (logs, watchlist, rules, sinks);
//! - [`fetch`]: the C2SP static API reader;
//! - [`verify`]: SPEC §3 verification of entries, batched and parallel;
//! - [`rules`]: the claim rules;
//! - [`rulestate`]: the rules' state in memory, its journal and snapshots;
//! - [`mapstate`]: the verifiable map (SPEC §9) rebuilt from the entries, its journal and
//!   snapshots;
//! - [`engine`]: one log's checkpoint checks, catch-up and tree recomputation;
//! - [`store`]: crash-safe state (sled);
//! - [`sinks`]: stdout, file, exec hook and webhook delivery;
//! - [`metrics`]: the Prometheus endpoint;
//! - [`run`]: the whole monitor, as the binary runs it.
//!
//! All verification is `ledger-core`'s: the monitor checks exactly what the log and clients check.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alert;
mod codec;
pub mod config;
pub mod engine;
pub mod fetch;
pub mod mapstate;
pub mod metrics;
pub mod rules;
pub mod rulestate;
pub mod sinks;
pub mod store;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info};

use crate::config::Config;
use crate::engine::{Ctx, LogMonitor};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::sinks::Sink;
use crate::store::Store;

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Catch up once, deliver, and return (else follow forever).
    pub once: bool,
    /// The state folder.
    pub state_dir: PathBuf,
    /// Serve `/metrics` here.
    pub metrics_listen: Option<SocketAddr>,
    /// Connection cap and client timeouts of the metrics endpoint.
    pub metrics_limits: ledger_serve::Limits,
    /// Entry bundles (256 entries each) verified and committed per step.
    pub step_bundles: u64,
    /// The journal size after which the rule state is snapshotted (at least the last snapshot's
    /// size is always waited for).
    pub snapshot_after_bytes: u64,
    /// Show an `indicatif` progress bar (else plain progress lines).
    pub progress_bar: bool,
}

/// The default for [`RunOptions::snapshot_after_bytes`]: 8 MiB of journal, ~150,000 claims.
pub const DEFAULT_SNAPSHOT_AFTER_BYTES: u64 = 8 << 20;

/// The default state folder.
pub const DEFAULT_STATE_DIR: &str = "./monitor-state";

/// Runs the monitor. With `once`, returns after one round over every log; `Ok(true)` when every
/// log was read and every alert delivered, `Ok(false)` when something failed (it was logged).
/// Without `once`, runs until the process is stopped.
pub fn run(config: &Config, opts: &RunOptions) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&opts.state_dir)?;
    let store = Store::open(&opts.state_dir)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = opts.metrics_listen {
        let bound = metrics::serve(addr, metrics.clone(), opts.metrics_limits)?;
        info!("metrics listening on {bound}");
    }
    let rules = RuleSet {
        watches: config.watches.clone(),
        rules: config.rules.clone(),
    };
    let mut sinks = config
        .effective_sinks()
        .iter()
        .enumerate()
        .map(|(n, s)| Sink::open(n, s, &store))
        .collect::<Result<Vec<_>, _>>()?;
    let mut logs = config
        .log_params()?
        .into_iter()
        .map(|p| LogMonitor::open(p, &store))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cx = Ctx {
        store: &store,
        rules: &rules,
        sinks: &mut sinks,
        metrics: &metrics,
        step_bundles: opts.step_bundles,
        snapshot_after_bytes: opts.snapshot_after_bytes,
        progress_bar: opts.progress_bar,
    };
    // Alerts left pending by an earlier run go out first.
    let mut ok = true;
    if let Err(e) = cx.deliver() {
        error!("delivering pending alerts: {e}");
        ok = false;
    }
    loop {
        for log in logs.iter_mut() {
            if let Err(e) = log.sync(&mut cx) {
                error!(log = %log.name(), "{e}");
                ok = false;
            } else if let Err(e) = log.check_peers(&mut cx) {
                // Only the state or a sink can fail here: an unreachable or lying peer is a
                // warning inside `check_peers`, never an error.
                error!(log = %log.name(), "{e}");
                ok = false;
            }
            if let Err(e) = log.check_stalled(&mut cx) {
                error!(log = %log.name(), "{e}");
                ok = false;
            }
        }
        if let Err(e) = cx.deliver() {
            error!("delivering alerts: {e}");
            ok = false;
        }
        if opts.once {
            return Ok(ok);
        }
        std::thread::sleep(Duration::from_secs(config.poll_interval_s.max(1)));
    }
}
