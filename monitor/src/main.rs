//! `monitor --config monitor.toml [--once] [--state DIR] [--metrics-listen ADDR]`: follows the
//! configured logs over their C2SP tiles and alerts (SPEC §8). See `docs/monitor.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use monitor::config::Config;
use monitor::{run, RunOptions, DEFAULT_STATE_DIR};

/// Follow mimi-ledger logs, verify everything, alert on rogue claims and log misbehaviour.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The configuration file (logs, watchlist, rules, sinks).
    #[arg(long, env = "MONITOR_CONFIG")]
    config: PathBuf,
    /// Catch up, deliver the alerts and exit (for cron and CI); exit status 1 if a log could not
    /// be read or an alert not delivered.
    #[arg(long)]
    once: bool,
    /// The state folder (default: the config's `state_dir`, else ./monitor-state).
    #[arg(long, env = "MONITOR_STATE")]
    state: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464) at /metrics.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Entry bundles (256 entries each) verified and committed per step.
    #[arg(long, default_value_t = 16)]
    step_bundles: u64,
    /// Write a snapshot of the rule state once its journal has grown past this many bytes and
    /// past the last snapshot's size (a restart replays at most that much journal).
    #[arg(long, default_value_t = monitor::DEFAULT_SNAPSHOT_AFTER_BYTES)]
    snapshot_after_bytes: u64,
    /// Never show a progress bar (plain progress lines instead).
    #[arg(long)]
    no_progress: bool,
    /// Connection cap and client timeouts of the metrics endpoint (see docs/operations.md).
    #[command(flatten)]
    metrics_limits: ledger_serve::LimitSettings,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(monitor::engine::stderr_is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_env_filter(ledger_serve::log_filter())
        .init();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("monitor: {e}");
            return ExitCode::from(2);
        }
    };
    let state_dir = args
        .state
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let metrics_limits = match args.metrics_limits.resolve() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("monitor: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        once: args.once,
        state_dir,
        metrics_listen: args.metrics_listen,
        metrics_limits,
        step_bundles: args.step_bundles.max(1),
        snapshot_after_bytes: args.snapshot_after_bytes,
        progress_bar: !args.no_progress && monitor::engine::stderr_is_terminal(),
    };
    match run(&config, &opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("monitor: {e:#}");
            ExitCode::from(2)
        }
    }
}
