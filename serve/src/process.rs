//! What every server process shares besides the server loop: the shutdown signal it drains on,
//! and the one variable that sets its log filter (`LEDGER_LOG`, an `EnvFilter` directive such as
//! `info` or `log_server=debug`; default [`DEFAULT_FILTER`]), so that the log-server, the auditor,
//! the identity prover and the monitor are configured the same way.

/// The environment variable holding the log filter of every mimi-ledger binary.
pub const LOG_FILTER_VAR: &str = "LEDGER_LOG";

/// The filter when [`LOG_FILTER_VAR`] is unset: `info`, but the log-server's index (fjall and its
/// LSM tree) only from `warn` — at `info` it reports every table flush and every keyspace it
/// recovers.
pub const DEFAULT_FILTER: &str = "info,fjall=warn,lsm_tree=warn";

/// The log filter from [`LOG_FILTER_VAR`], or [`DEFAULT_FILTER`] when it is unset or does not
/// parse.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env(LOG_FILTER_VAR)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER))
}

/// Resolves on SIGTERM or SIGINT (whichever comes first); a signal that cannot be listened for is
/// logged and ignored.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {},
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        },
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}
