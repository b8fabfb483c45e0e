//! Gossip: every poll interval, fetch each log's `/checkpoint` and each peer's
//! `/<hex sha256(origin)>/checkpoint`, and check each against this auditor's view
//! ([`Auditor::observe`]).

use std::sync::Arc;

use ledger_core::witness::gossip_path;

use crate::audit::Auditor;
use crate::client::{get_bytes, FetchError};

/// Polls logs and peers forever.
pub async fn run(aud: Arc<Auditor>) {
    let mut tick = tokio::time::interval(aud.config().poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        poll_once(&aud).await;
    }
}

/// One round: every log's own checkpoint, then every peer's view of every log.
pub async fn poll_once(aud: &Arc<Auditor>) {
    let cfg = aud.config();
    for log in &cfg.logs {
        if let Some(url) = &log.url {
            let source = format!("log {url}");
            fetch_and_observe(aud, &format!("{url}/checkpoint"), &source).await;
        }
    }
    for peer in &cfg.peers {
        for log in &cfg.logs {
            let url = format!("{}{}", peer.url, gossip_path(log.origin()));
            let source = format!("peer {}", peer.url);
            fetch_and_observe(aud, &url, &source).await;
        }
    }
}

async fn fetch_and_observe(aud: &Arc<Auditor>, url: &str, source: &str) {
    match get_bytes(aud.http(), url).await {
        Ok(note) => {
            let a = aud.observe(&note, source, true).await;
            aud.metrics().poll(a.verdict.as_str());
            tracing::debug!(verdict = a.verdict.as_str(), "{url}: {}", a.detail);
        }
        // A peer that has not cosigned this log yet.
        Err(FetchError::Status { status: 404, .. }) => aud.metrics().poll("not-found"),
        Err(e) => {
            aud.metrics().poll("error");
            tracing::debug!("{e}");
        }
    }
}
