//! Following one log: fetch and verify its checkpoint, check it against the last verified one,
//! download the new entry bundles, verify every entry, recompute the tree incrementally with the
//! compact [`Frontier`], apply the rules, and commit each step crash-safely before delivering its
//! alerts.
//!
//! Verification per log, in order (each failure is an alert of its SPEC §8 kind):
//! 1. the checkpoint's log signature, and the witness quorum when configured
//!    (`bad-checkpoint-signature`);
//! 2. against the last verified checkpoint: same size with another root, a smaller one that is
//!    not a prefix, or a larger one whose consistency proof, computed from the log's own hash
//!    tiles, fails (`inconsistent-checkpoint`);
//! 3. every entry against SPEC §3 with the keys enrolled before its index (`bad-entry`), and the
//!    claim rules;
//! 4. the entries' root, recomputed from the frontier, equals the checkpoint's (`root-mismatch`);
//! 5. the map (SPEC §9), rebuilt from the entries in log order: every log-signed map leaf states
//!    its own index as `size` and the rebuilt root of the leaves below it as `root`, and every
//!    verified checkpoint of size > 0 ends in one (`bad-map-root`).
//!
//! After 2's fork or 4's mismatch the log is *halted*: its state no longer describes a tree the log
//! signed, so the monitor stops following it (and says so) until its state is reset.//!
//! Files: this one holds the lifecycle (open, load, sync, snapshots, stalls); `checkpoint`
//! steps 1–2 (signature, quorum, consistency with the last verified checkpoint); `catch_up`
//! steps 3–5 (the pipeline from entry bundles to committed steps); `progress` the catch-up UI;
//! `gossip` the split-view checks against auditors and peers.

use std::io::IsTerminal as _;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_core::admission::KeyRegistry;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::time::now_unix;
use ledger_core::tree::Frontier;
use ledger_core::Hash;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::alert::{Alert, Kind};
use crate::config::LogParams;
use crate::fetch::{FetchError, TileClient};
use crate::mapstate::{MapState, MapStateError};
use crate::metrics::Metrics;
use crate::rules::{Alerts, RuleSet};
use crate::rulestate::RuleState;
use crate::sinks::{deliver_pending, Sink, SinkError};
use crate::store::{Commit, Journal, Progress, Store, StoreError};

mod catch_up;
mod checkpoint;
mod gossip;
mod progress;

use checkpoint::TileCheck;
use progress::Ui;

/// Why a sync step could not finish (the log's misbehaviour is not an error: it is an alert).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The log (or mirror) could not be read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An alert could not be delivered (it stays pending).
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The rebuilt map could not be updated or saved.
    #[error(transparent)]
    Map(#[from] MapStateError),
    /// The saved state is unusable.
    #[error("log {log}: saved state is unusable: {reason}")]
    BadState {
        /// The log.
        log: String,
        /// Why.
        reason: String,
    },
}

/// What the engine shares between logs.
pub struct Ctx<'a> {
    /// The state.
    pub store: &'a Store,
    /// The rules.
    pub rules: &'a RuleSet,
    /// The sinks.
    pub sinks: &'a mut [Sink],
    /// The metrics.
    pub metrics: &'a Metrics,
    /// Entry bundles per committed step.
    pub step_bundles: u64,
    /// The journal size after which the rule state is snapshotted.
    pub snapshot_after_bytes: u64,
    /// Show an `indicatif` bar (terminal) or plain progress lines.
    pub progress_bar: bool,
}

impl Ctx<'_> {
    /// Delivers everything pending.
    pub fn deliver(&mut self) -> Result<usize, EngineError> {
        Ok(deliver_pending(self.store, self.sinks, self.metrics)?)
    }
}

/// Whether stderr is a terminal (for the progress display).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The monitor of one log.
pub struct LogMonitor {
    params: LogParams,
    client: TileClient,
    registry: KeyRegistry,
    progress: Progress,
    frontier: Frontier,
    timing: Timing,
    peers: gossip::Peers,
    rules: RuleState,
    map: MapState,
    /// Journal bytes (rule state and map) written since the last snapshots, and those snapshots'
    /// size: snapshots are written once the journals have grown as large (bytes written stay
    /// linear in the log).
    journal_bytes: u64,
    snapshot_bytes: u64,
    /// Set when a step failed after changing the in-memory state: reload before going on.
    stale: bool,
}

/// A log's durable state, as loaded from the store.
struct Loaded {
    progress: Progress,
    frontier: Frontier,
    registry: KeyRegistry,
    rules: RuleState,
    map: MapState,
    journal_bytes: u64,
    snapshot_bytes: u64,
}

/// Where catch-up time goes (seconds), reported when a catch-up finishes.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    fetch: f64,
    verify: f64,
    /// The rules and the map (of which `map` in the map's batch updates).
    rules: f64,
    map: f64,
    commit: f64,
}

fn b64(h: &Hash) -> String {
    B64.encode(h)
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The log's key registry as of its committed enrollments.
fn stored_registry(params: &LogParams, store: &Store) -> Result<KeyRegistry, EngineError> {
    let mut registry = KeyRegistry::new(params.log.log_key.clone());
    for (index, role, key) in store.enrollments(&params.name)? {
        registry.add(index, role, key);
    }
    Ok(registry)
}

impl LogMonitor {
    /// Loads the log's saved state (or starts from the empty tree).
    pub fn open(params: LogParams, store: &Store) -> Result<LogMonitor, EngineError> {
        let l = Self::load(&params, store)?;
        let client = TileClient::new(&params.url)?;
        Ok(LogMonitor {
            peers: gossip::Peers::new(&params)?,
            params,
            client,
            registry: l.registry,
            progress: l.progress,
            frontier: l.frontier,
            timing: Timing::default(),
            rules: l.rules,
            map: l.map,
            journal_bytes: l.journal_bytes,
            snapshot_bytes: l.snapshot_bytes,
            stale: false,
        })
    }

    fn load(params: &LogParams, store: &Store) -> Result<Loaded, EngineError> {
        let bad = |reason: String| EngineError::BadState {
            log: params.name.clone(),
            reason,
        };
        let mut progress = store.progress(&params.name)?.unwrap_or_default();
        let hashes = progress
            .frontier
            .iter()
            .map(|h| {
                B64.decode(h)
                    .ok()
                    .and_then(|v| <Hash>::try_from(v.as_slice()).ok())
                    .ok_or_else(|| bad("frontier hash is not base64 of 32 bytes".into()))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        let frontier = Frontier::from_parts(params.log.hash, progress.frontier_size, hashes)
            .map_err(|e| bad(e.to_string()))?;
        let registry = stored_registry(params, store)?;
        // The rule state: the last snapshot, then the journal of the steps committed since.
        let path = store.rules_snapshot_path(&params.name);
        let snapshot_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut rules = RuleState::read_snapshot(&path)
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or_default();
        let size = progress.frontier_size;
        if rules.position() > size {
            return Err(bad(format!(
                "the rule-state snapshot {} is at {}, beyond the {size} entries verified",
                path.display(),
                rules.position()
            )));
        }
        let mut journal_bytes = 0;
        for (pos, record) in store.journal(&params.name, Journal::Rules, rules.position())? {
            if pos > size {
                return Err(bad(format!(
                    "a rule-state journal record at {pos} is beyond the {size} entries verified"
                )));
            }
            rules.replay(&record, pos).map_err(|e| bad(e.to_string()))?;
            journal_bytes += record.len() as u64;
        }
        rules.set_position(size);
        // The map, the same way: its last snapshot, then the journal of the steps since.
        if size == 0 {
            progress.map_rebuilt = true;
        } else if !progress.map_rebuilt {
            return Err(bad(format!(
                "{size} leaves were verified by a monitor that did not rebuild the map (SPEC §9), \
                 so their map leaves cannot be checked; move the state folder away to start over"
            )));
        }
        let path = store.map_snapshot_path(&params.name);
        let snapshot_bytes =
            snapshot_bytes + std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut map = MapState::read_snapshot(&path, params.log.hash)
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or_else(|| MapState::new(params.log.hash));
        if map.position() > size {
            return Err(bad(format!(
                "the map snapshot {} is at {}, beyond the {size} entries verified",
                path.display(),
                map.position()
            )));
        }
        for (pos, record) in store.journal(&params.name, Journal::Map, map.position())? {
            if pos > size {
                return Err(bad(format!(
                    "a map journal record at {pos} is beyond the {size} entries verified"
                )));
            }
            map.replay(&record, pos).map_err(|e| bad(e.to_string()))?;
            journal_bytes += record.len() as u64;
        }
        map.set_position(size);
        // The replay's time is not catch-up time.
        map.take_update_time();
        Ok(Loaded {
            progress,
            frontier,
            registry,
            rules,
            map,
            journal_bytes,
            snapshot_bytes,
        })
    }

    /// Drops the in-memory state for what the store holds (after a step failed half-way).
    fn reload(&mut self, store: &Store) -> Result<(), EngineError> {
        let l = Self::load(&self.params, store)?;
        self.progress = l.progress;
        self.frontier = l.frontier;
        self.registry = l.registry;
        self.rules = l.rules;
        self.map = l.map;
        self.journal_bytes = l.journal_bytes;
        self.snapshot_bytes = l.snapshot_bytes;
        self.stale = false;
        Ok(())
    }

    /// The saved progress.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The state name of the log.
    pub fn name(&self) -> &str {
        &self.params.name
    }

    fn verified_root(&self) -> Result<Hash, EngineError> {
        if self.progress.verified_size == 0 {
            return Ok(self.params.log.hash.empty_root());
        }
        SignedCheckpoint::parse(self.progress.verified_checkpoint.as_bytes())
            .map(|c| c.checkpoint.root)
            .map_err(|e| EngineError::BadState {
                log: self.params.name.clone(),
                reason: format!("saved checkpoint: {e}"),
            })
    }

    fn save_progress(&mut self, commit: &mut Commit) {
        // `load` refuses a state whose map does not cover its leaves, so from here on it does.
        self.progress.map_rebuilt = true;
        self.progress.frontier_size = self.frontier.size();
        self.progress.frontier = self.frontier.hashes().iter().map(b64).collect();
        commit.progress = Some((self.params.name.clone(), self.progress.clone()));
    }

    /// Commits an alert (unless known) and the current progress, then delivers.
    fn alert_now(&mut self, cx: &mut Ctx<'_>, alert: Alert, disc: &str) -> Result<(), EngineError> {
        let mut alerts = Alerts::new(cx.store);
        alerts.raise(alert, disc)?;
        let mut commit = Commit {
            alerts: alerts.into_vec(),
            ..Commit::default()
        };
        self.save_progress(&mut commit);
        cx.store.commit(commit)?;
        cx.deliver()?;
        Ok(())
    }

    fn halt(&mut self, cx: &mut Ctx<'_>, alert: Alert, disc: &str) -> Result<(), EngineError> {
        warn!(log = %self.params.name, "halting: {}", alert.detail);
        self.progress.halted = Some(alert.detail.clone());
        self.alert_now(cx, alert, disc)
    }

    /// One round: read the checkpoint, verify, catch up to it. Alerts are committed and delivered
    /// before it returns.
    pub fn sync(&mut self, cx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self.stale {
            self.reload(cx.store)?;
        }
        if let Some(why) = &self.progress.halted {
            warn!(log = %self.params.name, "not following a halted log ({why}); reset its state to start over");
            return Ok(());
        }
        let bytes = self.client.get("checkpoint")?;
        let digest = sha256_hex(&bytes);
        if digest != self.progress.last_checkpoint_sha256 {
            self.progress.last_checkpoint_sha256 = digest.clone();
            self.progress.last_new_checkpoint = now_unix();
        }
        cx.metrics
            .set_last_checkpoint(&self.params.name, self.progress.last_new_checkpoint);
        let Some(cp) = self.check_signature(&bytes, &digest, cx)? else {
            return Ok(());
        };
        if let Some(text) = self.progress.target_checkpoint.clone() {
            match SignedCheckpoint::parse(text.as_bytes()) {
                Ok(target) => {
                    self.catch_up(&target, cx)?;
                    if self.progress.halted.is_some() {
                        return Ok(());
                    }
                }
                Err(_) => self.progress.target_checkpoint = None,
            }
        }
        self.consider(&cp, cx)?;
        let mut commit = Commit::default();
        self.save_progress(&mut commit);
        cx.store.commit(commit)?;
        cx.deliver()?;
        Ok(())
    }

    /// Writes snapshots of the rule state and of the map (which match the committed progress)
    /// and drops the journal records they cover. Each journal is pruned only once its own
    /// snapshot is durable, so a crash in between leaves each state its snapshot and the journal
    /// records after it.
    fn snapshot(&mut self, store: &Store) -> Result<(), EngineError> {
        let path = store.rules_snapshot_path(&self.params.name);
        let bytes = self
            .rules
            .write_snapshot(&path)
            .map_err(|e| EngineError::BadState {
                log: self.params.name.clone(),
                reason: e.to_string(),
            })?;
        store.prune_journal(&self.params.name, Journal::Rules, self.rules.position())?;
        info!(
            log = %self.params.name,
            position = self.rules.position(),
            bytes,
            siis = self.rules.mapped_siis(),
            "rule state snapshot written"
        );
        let map_path = store.map_snapshot_path(&self.params.name);
        let map_bytes = self.map.write_snapshot(&map_path)?;
        store.prune_journal(&self.params.name, Journal::Map, self.map.position())?;
        info!(
            log = %self.params.name,
            position = self.map.position(),
            bytes = map_bytes,
            keys = self.map.keys(),
            "map snapshot written"
        );
        self.snapshot_bytes = bytes + map_bytes;
        self.journal_bytes = 0;
        Ok(())
    }

    /// Raises `log-stalled` when no new checkpoint was seen for longer than configured. One alert
    /// per stall (its id names the time of the last new checkpoint).
    pub fn check_stalled(&mut self, cx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let Some(limit) = self.params.stall_after_s else {
            return Ok(());
        };
        let last = self.progress.last_new_checkpoint;
        // A halted log is not read any more: its silence is ours, not the log's.
        if last == 0 || self.progress.halted.is_some() {
            return Ok(());
        }
        let age = now_unix().saturating_sub(last);
        if age > limit {
            let a = Alert::new(
                Kind::LogStalled,
                &self.params.origin,
                Some(self.progress.verified_size),
                format!(
                    "no new checkpoint for {age} s (limit {limit} s); the last is at size {}",
                    self.progress.verified_size
                ),
            );
            self.alert_now(cx, a, &last.to_string())?;
        }
        Ok(())
    }
}
