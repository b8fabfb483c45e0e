//! A read-only Discovery Provider mirror of a log (`log-server --mirror-of URL --trust FILE`).
//!
//! Reads scale out because any number of untrusted DPs can serve answers that verify against the
//! one log: a mirror follows the log through its C2SP tiles alone ([`source`]: its HTTP tile API,
//! a static copy, or the object store it publishes to), verifies everything a monitor verifies —
//! checkpoint signature and witness quorum, every entry under SPEC §3, the tree, every map leaf
//! ([`follow`]) — stores it in its own data folder with the log's own layout and indexes, and
//! serves the read API and `/v1/lookup` with the *log's* checkpoints. So its answers verify with
//! the log's trust file, exactly as the log's own do; it has no signing key and signs nothing.
//!
//! It refuses writes (`read-only-mirror`, naming the log), never serves a view it could not
//! verify (it stops advancing, raises the monitor's alert kinds, and keeps serving its last good
//! view, whose age `/v1/info` and `ledger_mirror_age_seconds` report), and serves nothing at all
//! until it has verified its first checkpoint (503).
//!
//! **Shards.** With `--shard PREFIX` (repeatable) a mirror indexes only the SIIs under those
//! prefixes: lookups of other SIIs are refused with `outside-shard` (404), whose detail and
//! `/v1/info` list the shards. Its map proofs are the log's (they do not depend on the shard):
//! a map root commits to every key, so the mirror still verifies — and keeps — the whole map, and
//! it keeps every entry too (the tiles it serves, and the enroll leaves every answer needs).

pub mod follow;
pub mod source;
pub mod status;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;
use ledger_core::trust::TrustedLog;

pub use status::{MirrorInfo, Status};

/// The SII prefixes a mirror holds (none: every SII).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shards(Vec<String>);

impl Shards {
    /// The shards of these prefixes.
    pub fn new(prefixes: &[String]) -> Shards {
        Shards(prefixes.to_vec())
    }

    /// Whether the canonical SII `sii` is held.
    pub fn holds(&self, sii: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| sii.starts_with(p.as_str()))
    }

    /// The prefixes (empty: every SII).
    pub fn prefixes(&self) -> &[String] {
        &self.0
    }
}

/// Reads and checks the trust file of the mirrored log.
pub fn load_trust(path: &Path) -> anyhow::Result<TrustedLog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the trust file {}", path.display()))?;
    let t: ledger_core::trust_file::TrustFile = toml::from_str(&text)
        .with_context(|| format!("the trust file {} is not a trust file", path.display()))?;
    let mut log = t
        .log()
        .with_context(|| format!("the trust file {}", path.display()))?;
    // Freshness is a client's question about *now*; a mirror verifies the log's history, whose
    // older checkpoints carry older cosignatures, so it checks signatures and quorum only.
    log.max_age_s = None;
    Ok(log)
}

/// A running follower: its status, and the flag that stops it.
#[derive(Debug, Clone)]
pub struct Running {
    /// What `/v1/info` and `/metrics` report.
    pub status: Arc<Status>,
    /// The shards held.
    pub shards: Shards,
    /// Set to stop the follower.
    pub stop: Arc<AtomicBool>,
}
