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
//! 4. the entries' root, recomputed from the frontier, equals the checkpoint's (`root-mismatch`).
//!
//! After 2's fork or 4's mismatch the log is *halted*: its state no longer describes a tree the log
//! signed, so the monitor stops following it (and says so) until its state is reset.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::admission::KeyRegistry;
use ledger_core::checkpoint::{compare, Agreement, Contradiction, SignedCheckpoint};
use ledger_core::entry::Entry;
use ledger_core::tile::{
    decode_entry_bundle, tile_width_at, try_encode_entry_bundle, AuthTileHashReader, Tile,
    DATA_LEVEL, TILE_WIDTH,
};
use ledger_core::time::now_unix;
use ledger_core::tree::{prove_consistency, verify_consistency, Frontier};
use ledger_core::trust::CheckpointRefused;
use ledger_core::Hash;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::alert::{Alert, Kind};
use crate::config::LogParams;
use crate::fetch::{FetchError, FetchedTiles, TileClient};
use crate::metrics::Metrics;
use crate::rules::{Alerts, RuleSet, Step};
use crate::rulestate::RuleState;
use crate::sinks::{deliver_pending, Sink, SinkError};
use crate::store::{Commit, Progress, Store, StoreError};
use crate::verify::{verify_leaves, Verdict};

mod gossip;

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
    /// Journal bytes written since the last snapshot, and that snapshot's size: a snapshot is
    /// written once the journal has grown as large (bytes written stay linear in the log).
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
    journal_bytes: u64,
    snapshot_bytes: u64,
}

/// Where catch-up time goes (seconds), reported when a catch-up finishes.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    fetch: f64,
    verify: f64,
    rules: f64,
    commit: f64,
}

/// What a consistency check over the log's hash tiles found.
enum TileCheck {
    Consistent,
    Inconsistent(String),
    Unavailable(String),
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
        let progress = store.progress(&params.name)?.unwrap_or_default();
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
        for (pos, record) in store.journal(&params.name, rules.position())? {
            if pos > size {
                return Err(bad(format!(
                    "a rule-state journal record at {pos} is beyond the {size} entries verified"
                )));
            }
            rules.replay(&record, pos).map_err(|e| bad(e.to_string()))?;
            journal_bytes += record.len() as u64;
        }
        rules.set_position(size);
        Ok(Loaded {
            progress,
            frontier,
            registry,
            rules,
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

    /// Step 1: the log signature and witness quorum. `None` when the checkpoint is unusable.
    fn check_signature(
        &mut self,
        bytes: &[u8],
        digest: &str,
        cx: &mut Ctx<'_>,
    ) -> Result<Option<SignedCheckpoint>, EngineError> {
        let origin = self.params.origin.clone();
        let (size, problem) = match SignedCheckpoint::parse(bytes) {
            Err(e) => (None, format!("the checkpoint does not parse: {e}")),
            Ok(cp) => match self.params.log.verify(&cp, now_unix()) {
                Ok(_) => return Ok(Some(cp)),
                Err(CheckpointRefused::Signature(e)) => (
                    Some(cp.checkpoint.size),
                    format!(
                        "the checkpoint at size {} fails the log signature: {e}",
                        cp.checkpoint.size
                    ),
                ),
                Err(e) => (
                    Some(cp.checkpoint.size),
                    format!(
                        "the checkpoint at size {} lacks its witness quorum: {e}",
                        cp.checkpoint.size
                    ),
                ),
            },
        };
        let alert = Alert::new(Kind::BadCheckpointSignature, &origin, size, problem);
        self.alert_now(cx, alert, digest)?;
        Ok(None)
    }

    /// Step 2 and, when the checkpoint is new and larger, the catch-up.
    fn consider(&mut self, cp: &SignedCheckpoint, cx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let origin = self.params.origin.clone();
        let vs = self.progress.verified_size;
        let vroot = self.verified_root()?;
        let (size, root) = (cp.checkpoint.size, cp.checkpoint.root);
        let verified = ledger_core::checkpoint::Checkpoint {
            origin: origin.clone(),
            size: vs,
            root: vroot,
        };
        match compare(self.params.log.hash, &verified, &cp.checkpoint) {
            Ok(Agreement::Consistent) if size <= vs => return Ok(()),
            // From the empty tree: nothing to prove, the entries will tell.
            Ok(Agreement::Consistent) => {}
            Err(Contradiction::SameSizeDifferentRoots { .. }) => {
                let a = Alert::new(
                    Kind::InconsistentCheckpoint,
                    &origin,
                    Some(size),
                    format!(
                        "two checkpoints of size {size} with different roots: {} (verified) and {}",
                        b64(&vroot),
                        b64(&root)
                    ),
                );
                return self.halt(cx, a, &b64(&root));
            }
            Err(e) => {
                let a = Alert::new(
                    Kind::InconsistentCheckpoint,
                    &origin,
                    Some(size),
                    format!("the checkpoint of size {size} is not a prefix of the verified tree of size {vs}: {e}"),
                );
                return self.halt(cx, a, &b64(&root));
            }
            Ok(Agreement::NeedsProof { .. }) if size < vs => {
                if let TileCheck::Inconsistent(why) = self.tile_consistency(size, &root, vs, &vroot)
                {
                    let a = Alert::new(
                        Kind::InconsistentCheckpoint,
                        &origin,
                        Some(size),
                        format!("the checkpoint of size {size} is not a prefix of the verified tree of size {vs}: {why}"),
                    );
                    self.halt(cx, a, &b64(&root))?;
                }
                return Ok(());
            }
            Ok(Agreement::NeedsProof { .. }) => {
                match self.tile_consistency(vs, &vroot, size, &root) {
                    TileCheck::Consistent => {}
                    TileCheck::Inconsistent(why) => {
                        let a = Alert::new(
                            Kind::InconsistentCheckpoint,
                            &origin,
                            Some(size),
                            format!(
                                "the checkpoint of size {size} is inconsistent with the verified one of size {vs}: {why}"
                            ),
                        );
                        return self.halt(cx, a, &b64(&root));
                    }
                    TileCheck::Unavailable(why) => {
                        info!(log = %self.params.name, "no consistency proof from tiles ({why}); the entries will tell");
                    }
                }
            }
        }
        self.catch_up(cp, cx)
    }

    /// A consistency proof between two sizes, computed from the log's hash tiles at the larger
    /// size and verified (RFC 9162 §2.1.4.2). The tiles are only trusted once they reproduce the
    /// larger root (the core's `AuthTileHashReader` checks each one before use).
    fn tile_consistency(&self, old: u64, old_root: &Hash, new: u64, new_root: &Hash) -> TileCheck {
        // Every hash the proof is made of comes from tiles checked against `new_root` first.
        let tiles = FetchedTiles::new(&self.client);
        let reader = AuthTileHashReader::new(self.params.log.hash, new, *new_root, &tiles);
        let proof = match prove_consistency(self.params.log.hash, old, new, &reader) {
            Ok(p) => p,
            Err(e) => return TileCheck::Unavailable(e.to_string()),
        };
        match verify_consistency(self.params.log.hash, old, new, old_root, new_root, &proof) {
            Ok(()) => TileCheck::Consistent,
            Err(e) => TileCheck::Inconsistent(e.to_string()),
        }
    }

    /// Steps 3 and 4: download, verify and hash the entries up to `target`, a step at a time.
    fn catch_up(&mut self, target: &SignedCheckpoint, cx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let origin = self.params.origin.clone();
        let size = target.checkpoint.size;
        if self.frontier.size() > size {
            return Err(EngineError::BadState {
                log: self.params.name.clone(),
                reason: format!(
                    "{} leaves hashed, beyond the checkpoint being caught up to ({size})",
                    self.frontier.size()
                ),
            });
        }
        self.progress.target_checkpoint =
            Some(String::from_utf8_lossy(&target.to_bytes()).into_owned());
        let mut ui = Ui::new(
            cx.progress_bar,
            &self.params.name,
            self.frontier.size(),
            size,
        );
        // A pipeline of two threads: the producer fetches, decodes, hashes and verifies step after
        // step (verification only depends on earlier enrollments, which it tracks itself); this
        // thread applies the rules, extends the frontier, commits and delivers. The producer owns
        // the key registry meanwhile.
        let producer = Producer {
            client: self.client.clone(),
            hash: self.params.log.hash,
            size,
            step_bundles: cx.step_bundles.max(1),
        };
        let mut registry = std::mem::replace(
            &mut self.registry,
            KeyRegistry::new(self.params.log.log_key.clone()),
        );
        let start = self.frontier.size();
        let outcome = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Produced>(2);
            let handle = s.spawn(move || {
                producer.run(start, &mut registry, &tx);
                registry
            });
            let mut outcome: Result<Option<String>, EngineError> = Ok(None);
            for item in rx.iter() {
                match item {
                    Produced::Step {
                        from,
                        hashes,
                        verdicts,
                        fetch_s,
                        verify_s,
                    } => {
                        self.timing.fetch += fetch_s;
                        self.timing.verify += verify_s;
                        if let Err(e) = self.process(from, hashes, &verdicts, cx) {
                            outcome = Err(e);
                            break;
                        }
                        ui.set(self.frontier.size());
                    }
                    Produced::Malformed(detail) => {
                        outcome = Ok(Some(detail));
                        break;
                    }
                    Produced::Failed(e) => {
                        outcome = Err(e.into());
                        break;
                    }
                }
            }
            drop(rx);
            let registry = handle.join();
            (outcome, registry)
        });
        match outcome {
            (Ok(_), Ok(registry)) => self.registry = registry,
            // After a failure the producer may have verified past what was committed: rebuild
            // the registry from the committed enrollments.
            _ => self.reload_registry(cx.store)?,
        }
        if let Some(detail) = outcome.0? {
            let a = Alert::new(Kind::RootMismatch, &origin, Some(size), detail);
            return self.halt(cx, a, &b64(&target.checkpoint.root));
        }
        ui.finish();
        let tm = std::mem::take(&mut self.timing);
        info!(
            log = %self.params.name,
            "catch-up time: fetch {:.2} s, verify {:.2} s, rules {:.2} s, commit and deliver {:.2} s",
            tm.fetch, tm.verify, tm.rules, tm.commit
        );
        let root = self.frontier.root();
        if root != target.checkpoint.root {
            let a = Alert::new(
                Kind::RootMismatch,
                &origin,
                Some(size),
                format!(
                    "the {size} entries hash to {}, but the checkpoint says {}",
                    b64(&root),
                    b64(&target.checkpoint.root)
                ),
            );
            return self.halt(cx, a, &b64(&target.checkpoint.root));
        }
        self.progress.verified_size = size;
        self.progress.verified_checkpoint =
            String::from_utf8_lossy(&target.to_bytes()).into_owned();
        self.progress.target_checkpoint = None;
        let mut commit = Commit::default();
        self.save_progress(&mut commit);
        cx.store.commit(commit)?;
        info!(log = %self.params.name, size, "verified checkpoint");
        Ok(())
    }

    fn reload_registry(&mut self, store: &Store) -> Result<(), EngineError> {
        self.registry = stored_registry(&self.params, store)?;
        Ok(())
    }

    /// Applies the rules to verified entries (indices `from..`), extends the frontier with their
    /// leaf hashes, then commits the step and delivers its alerts.
    fn process(
        &mut self,
        from: u64,
        hashes: Vec<Hash>,
        verdicts: &[Verdict],
        cx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        if from != self.frontier.size() || hashes.len() != verdicts.len() {
            return Err(EngineError::BadState {
                log: self.params.name.clone(),
                reason: format!(
                    "step at {from} does not follow {} leaves",
                    self.frontier.size()
                ),
            });
        }
        let t = Instant::now();
        let mut commit = Commit::default();
        // From here until the commit the in-memory state is ahead of the store.
        self.stale = true;
        {
            let mut step = Step::new(cx.store, cx.rules, &self.params.origin, &mut self.rules);
            for (i, v) in verdicts.iter().enumerate() {
                let index = from + i as u64;
                step.apply(index, v)?;
                if let Verdict::Good { leaf, .. } = v {
                    if let Entry::Enroll(e) = leaf.entry() {
                        commit.enrolls.push((
                            self.params.name.clone(),
                            index,
                            e.role,
                            e.key.clone(),
                        ));
                    }
                }
            }
            let (journal, alerts) = step.finish();
            commit.alerts = alerts;
            let end = from + verdicts.len() as u64;
            if !journal.is_empty() {
                self.journal_bytes += journal.len() as u64;
                commit.journal = Some((self.params.name.clone(), end, journal));
            }
            self.rules.set_position(end);
        }
        for h in hashes {
            self.frontier.push(h);
        }
        self.progress.entries_verified += verdicts.len() as u64;
        self.save_progress(&mut commit);
        self.timing.rules += t.elapsed().as_secs_f64();
        let t = Instant::now();
        cx.store.commit(commit)?;
        self.stale = false;
        if self.journal_bytes > self.snapshot_bytes.max(cx.snapshot_after_bytes) {
            self.snapshot(cx.store)?;
        }
        cx.metrics.set_log(
            &self.params.name,
            self.progress.entries_verified,
            self.frontier.size(),
        );
        cx.deliver()?;
        self.timing.commit += t.elapsed().as_secs_f64();
        Ok(())
    }

    /// Writes a snapshot of the rule state (which matches the committed progress) and drops the
    /// journal records it covers.
    fn snapshot(&mut self, store: &Store) -> Result<(), EngineError> {
        let path = store.rules_snapshot_path(&self.params.name);
        let bytes = self
            .rules
            .write_snapshot(&path)
            .map_err(|e| EngineError::BadState {
                log: self.params.name.clone(),
                reason: e.to_string(),
            })?;
        store.prune_journal(&self.params.name, self.rules.position())?;
        info!(
            log = %self.params.name,
            position = self.rules.position(),
            bytes,
            siis = self.rules.mapped_siis(),
            "rule state snapshot written"
        );
        self.snapshot_bytes = bytes;
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

/// One step of the pipeline, from the producer.
enum Produced {
    /// Verified entries `from..from + verdicts.len()` and their leaf hashes.
    Step {
        from: u64,
        hashes: Vec<Hash>,
        verdicts: Vec<Verdict>,
        fetch_s: f64,
        verify_s: f64,
    },
    /// An entry bundle is malformed (a `root-mismatch`): what is wrong.
    Malformed(String),
    /// A bundle could not be fetched.
    Failed(FetchError),
}

/// The fetching and verifying half of the catch-up pipeline.
struct Producer {
    client: TileClient,
    hash: ledger_core::TreeHash,
    size: u64,
    step_bundles: u64,
}

impl Producer {
    /// Produces steps from `start` to `size`, until done, failed, or the consumer hung up.
    fn run(
        &self,
        start: u64,
        registry: &mut KeyRegistry,
        tx: &std::sync::mpsc::SyncSender<Produced>,
    ) {
        let width = u64::from(TILE_WIDTH);
        let mut from = start;
        while from < self.size {
            let first_bundle = from / width;
            let last_bundle = (self.size - 1) / width;
            let end_bundle = last_bundle.min(first_bundle + self.step_bundles - 1);
            let bundles: Vec<Tile> = (first_bundle..=end_bundle)
                .map(|n| Tile {
                    level: DATA_LEVEL,
                    index: n,
                    width: tile_width_at(DATA_LEVEL, n, self.size),
                })
                .collect();
            let t = Instant::now();
            let fetched = match self.fetch_bundles(&bundles) {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Produced::Failed(e));
                    return;
                }
            };
            let fetch_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut leaves: Vec<Vec<u8>> = Vec::new();
            for (tile, data) in bundles.iter().zip(fetched) {
                let entries = match decode_entry_bundle(&data) {
                    Ok(e) if e.len() == usize::from(tile.width) => e,
                    Ok(e) => {
                        let _ = tx.send(Produced::Malformed(format!(
                            "/{} holds {} entries, not {}",
                            tile.path(),
                            e.len(),
                            tile.width
                        )));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Produced::Malformed(format!(
                            "/{} is not an entry bundle: {e}",
                            tile.path()
                        )));
                        return;
                    }
                };
                let skip = if tile.index == first_bundle {
                    (from % width) as usize
                } else {
                    0
                };
                leaves.extend(entries.into_iter().skip(skip));
            }
            let th = self.hash;
            let hashes: Vec<Hash> = leaves.par_iter().map(|l| th.leaf_hash(l)).collect();
            let verdicts = verify_leaves(from, &leaves, registry);
            let n = leaves.len() as u64;
            let step = Produced::Step {
                from,
                hashes,
                verdicts,
                fetch_s,
                verify_s: t.elapsed().as_secs_f64(),
            };
            if tx.send(step).is_err() {
                return;
            }
            from += n;
        }
    }

    /// Fetches one entry bundle. A partial bundle may be gone once the log filled it
    /// (tlog-tiles lets logs delete them): then the full bundle is fetched and cut to the width.
    fn fetch_bundle(&self, t: &Tile) -> Result<Vec<u8>, FetchError> {
        match self.client.get(&t.path()) {
            Err(FetchError::NotFound { url }) if t.width < TILE_WIDTH => {
                let full = Tile {
                    width: TILE_WIDTH,
                    ..*t
                };
                let data = self.client.get(&full.path())?;
                // A full bundle that does not decode is passed on as is: the caller reports it.
                let Ok(entries) = decode_entry_bundle(&data) else {
                    return Ok(data);
                };
                let head: Vec<&[u8]> = entries
                    .iter()
                    .take(usize::from(t.width))
                    .map(Vec::as_slice)
                    .collect();
                try_encode_entry_bundle(&head).map_err(|e| FetchError::Failed {
                    url,
                    reason: e.to_string(),
                })
            }
            other => other,
        }
    }

    /// Fetches entry bundles concurrently (a few connections), in order.
    fn fetch_bundles(&self, bundles: &[Tile]) -> Result<Vec<Vec<u8>>, FetchError> {
        const CONNECTIONS: usize = 8;
        let per = bundles.len().div_ceil(CONNECTIONS).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = bundles
                .chunks(per)
                .map(|group| {
                    s.spawn(move || {
                        group
                            .iter()
                            .map(|t| self.fetch_bundle(t))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(bundles.len());
            for h in handles {
                match h.join() {
                    Ok(r) => out.extend(r?),
                    Err(_) => {
                        return Err(FetchError::Failed {
                            url: "(entry bundles)".into(),
                            reason: "fetch thread panicked".into(),
                        })
                    }
                }
            }
            Ok(out)
        })
    }
}

/// Catch-up progress: an `indicatif` bar on a terminal, plain lines every few seconds otherwise.
struct Ui {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    start: Instant,
    start_pos: u64,
    last_line: Instant,
}

impl Ui {
    fn new(bar: bool, name: &str, pos: u64, total: u64) -> Ui {
        let bar = bar.then(|| {
            let b = ProgressBar::new(total);
            b.set_position(pos);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(name.to_string());
            b
        });
        Ui {
            bar,
            name: name.to_string(),
            total,
            start: Instant::now(),
            start_pos: pos,
            last_line: Instant::now(),
        }
    }

    fn set(&mut self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        } else if self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            info!(log = %self.name, "catch-up: {pos}/{} entries ({:.0}/s)", self.total, self.rate(pos));
        }
    }

    fn rate(&self, pos: u64) -> f64 {
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        (pos.saturating_sub(self.start_pos)) as f64 / secs
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        let done = self.total.saturating_sub(self.start_pos);
        if done > 0 {
            info!(
                log = %self.name,
                "caught up {done} entries in {:.1} s ({:.0}/s)",
                self.start.elapsed().as_secs_f64(),
                self.rate(self.total)
            );
        }
    }
}
