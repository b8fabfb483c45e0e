//! # auditor
//!
//! The mimi-ledger auditor (SPEC §7): a C2SP tlog-witness that cosigns checkpoints of the logs it
//! is configured for, gossips its view with peer auditors, answers clients who ask whether a
//! checkpoint they were shown is consistent, and keeps evidence when a log shows two views.
//!
//! - [`witness`]: `POST /add-checkpoint` (tlog-witness), with an atomic compare-and-persist.
//! - [`audit`]: the view per log and the check of any other checkpoint against it.
//! - [`gossip`]: polling logs and peers.
//! - [`evidence`]: where evidence alerts (SPEC §8 lines) go.
//! - [`client`]: reads from logs and peers.
//! - [`store`], [`config`], [`metrics`], [`server`]: the rest.
//!
//! The wire formats are `ledger-core`'s: the tlog-witness codec (`ledger_core::witness`), the
//! audit answer, evidence and alert line (`ledger_core::api`), and checkpoint-vs-checkpoint
//! (`ledger_core::checkpoint::compare`).
//!
//! Modules import one another in one direction only: `server` → `witness` → `audit` →
//! (`client`, `evidence`, `store`, `config`, `metrics`); `gossip` → `audit`, `client`.
//!
//! See `docs/auditor.md` for the trust model and operations.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod client;
pub mod config;
pub mod evidence;
pub mod gossip;
pub mod metrics;
pub mod server;
pub mod store;
pub mod witness;

use std::net::SocketAddr;

pub use audit::Auditor;
pub use config::Config;
pub use ledger_core::api::Verdict;

/// Opens the state, binds `listen` (or the configured address, or `127.0.0.1:8090`), prints
/// `listening on <addr>` on stdout, runs the gossip loop and serves until SIGINT/SIGTERM under
/// `config.limits` (connection cap, client timeouts, drain: see `ledger-serve`).
pub async fn run(config: Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let addr = listen
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8090)));
    std::fs::create_dir_all(&config.state_dir)?;
    let limits = config.limits.resolve()?;
    let aud = Auditor::open(config)?;
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {local}")?;
        out.flush()?;
    }
    tracing::info!(
        witness = %aud.key().verifier(),
        logs = aud.config().logs.len(),
        peers = aud.config().peers.len(),
        "auditor started"
    );
    let gossip = tokio::spawn(gossip::run(aud.clone()));
    ledger_serve::serve(
        listener,
        server::router(aud.clone()),
        limits,
        None,
        ledger_serve::shutdown_signal(),
    )
    .await?;
    gossip.abort();
    aud.store().flush().await?;
    Ok(())
}
