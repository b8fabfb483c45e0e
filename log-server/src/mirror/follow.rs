//! The follower: polls the log's checkpoint, verifies every new span of entries as a monitor does,
//! stores it and only then serves the new checkpoint.
//!
//! **One span, step by step.** A span is everything between the checkpoint the mirror serves
//! (size `old`) and the log's newest one (size `n`), which must verify under the trust file
//! (log signature, witness quorum) or the mirror raises `bad-checkpoint-signature`.
//!
//! 1. Fetch the entry bundles of `old..n` (a partial one the log deleted once full: the full one,
//!    cut), a step of bundles at a time; a bundle that does not decode to its width is
//!    `root-mismatch`.
//! 2. Hash them into the mirror's own tree (its stored hashes of `0..old`, then the new ones): the
//!    tree of `n` leaves must hash to the checkpoint's root. A mismatch is
//!    `inconsistent-checkpoint` when the log's own hash tiles, authenticated against the new
//!    checkpoint, give another root for the `old` leaves the mirror verified before (a fork or a
//!    split view); otherwise `root-mismatch` (entries that are not the checkpoint's).
//! 3. Verify the entries with the core's batch path ([`ledger_core::batch::check_leaves`], the one
//!    signature rule, the monitor's exact rules): one that fails is `bad-entry`.
//! 4. File them in the map; at each map leaf the map's root must be the leaf's root and its size
//!    the leaf's index, and the span must end in a map leaf (`bad-map-root`). The map is advanced
//!    in memory batch by batch, with the served checkpoint's version pinned
//!    ([`crate::map::MapStore::advance_pinned`]), so lookups on the served view go on reading
//!    exactly its map.
//! 5. Store the span in commits of whole log batches (at most [`COMMIT_LEAVES`] leaves each
//!    unless one batch is larger), each one atomic as the log's own commits are, recording the
//!    new checkpoint as the one being caught up to. Then `public/checkpoint` is written and the
//!    new head, registry and map version are served.
//!
//! The steps run as a pipeline ([`Follower::span`]): the fetcher hashes step by step and hands on
//! parts of [`CHUNK`] leaves, which are verified, filed and stored behind it. Nothing is stored
//! before the whole span's tree has hashed to the checkpoint's root; a mirror that serves a view
//! stores nothing before the whole span passed steps 3 and 4 too, while one that serves none yet
//! (catching up from empty, or after a crash in a span) stores each verified commit at once, as
//! it has no view to protect and serves nothing before the span's end.
//!
//! An alert at steps 1–4 stops the mirror advancing for good (until an operator restarts it):
//! nothing of the span is served, and it keeps serving its last good view, saying how old it is.
//! A crash at step 5 leaves a store ahead of its served checkpoint: at restart the mirror serves
//! nothing until it has verified the rest of the span again ([`crate::ledger::Ledger::open_mirror`]).
//! A failed fetch is no alert: the next poll tries again.
//!
//! The fetcher does not wait for the checkers, so the part of a span not yet stored is held in
//! memory (its leaves, ~0.4 KB of data each with their hashes; a 1M catch-up from empty peaked at
//! ~700 MiB RSS): a mirror that starts far behind a large log needs that much memory once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::admission::KeyRegistry;
use ledger_core::api::{Alert, AlertKind};
use ledger_core::batch::check_leaves;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Entry, Leaf};
use ledger_core::map::{self, MapAddition, MapValue};
use ledger_core::tile::{
    cut_from_full, decode_entry_bundle, tile_width_at, AuthTileHashReader, Tile, TileError,
    TileReader, DATA_LEVEL, TILE_WIDTH,
};
use ledger_core::time::now_unix;
use ledger_core::tree::{stored_hash_count, tree_root, Frontier};
use ledger_core::trust::{CheckpointRefused, TrustedLog};
use ledger_core::{Hash, TreeHash};
use rayon::prelude::*;

use super::source::{SourceError, TileSource};
use super::status::Status;
use super::Shards;
use crate::ledger::{Head, Ledger};
use crate::storage::{Commit, NewLeaf};

/// The part of a span verified at once (a checker's unit of work, sent on by the fetcher as
/// soon as it is hashed): small enough that verifying starts early in a span and the filer and
/// the committer keep pace behind it, large enough that each part is a few batch equations per
/// core.
pub const CHUNK: usize = 2_048;

/// The most leaves one storage commit of a span holds (whole log batches; one larger batch is
/// committed alone): bounds a commit's size and what recovery removes after a crash in one.
/// Each commit pays its fsyncs (the files', then the index's): 2,048-leaf commits spent 5 s of a
/// 1M catch-up's 24 in them, 16,384-leaf ones 2 s, at the same peak RSS (~700 MiB).
pub const COMMIT_LEAVES: usize = 16_384;

/// How many entry bundles one fetch step reads (in parallel).
const STEP_BUNDLES: u64 = 64;

/// How many bundles are fetched at once. An object store answers each GET after tens of
/// milliseconds whatever its size, so throughput needs many in flight: from s3s-fs, 8 took 17 s
/// to fetch 1M entries, 64 took 3.6 s (and a log-server's default allows 512 connections).
const CONNECTIONS: usize = 64;

/// The follower's state: the stored tree and registry (which may be ahead of the served head
/// after a crash in the middle of a span's commits).
pub struct Follower {
    /// Leaves per verified part ([`CHUNK`]) and per storage commit ([`COMMIT_LEAVES`]); both
    /// `LEDGER_MIRROR_CHUNK` in debug builds, so tests split small spans into many of each.
    chunk: usize,
    commit_leaves: usize,
    ledger: Arc<Ledger>,
    source: TileSource,
    trust: TrustedLog,
    shards: Shards,
    status: Arc<Status>,
    frontier: Frontier,
    registry: KeyRegistry,
    rt: tokio::runtime::Runtime,
}

/// Why a span was not taken: an alert (the mirror halts) or a failure to try again.
enum SpanError {
    Alert(Box<Alert>),
    Retry(String),
    /// The store failed while committing: the in-memory state may be ahead of it; the follower
    /// stops (fail-stop) and a restart recovers.
    Fatal(String),
}

impl From<SourceError> for SpanError {
    fn from(e: SourceError) -> SpanError {
        SpanError::Retry(e.to_string())
    }
}

impl Follower {
    /// The follower of `source` for `ledger`, whose stored tree it continues.
    pub fn new(
        ledger: Arc<Ledger>,
        source: TileSource,
        trust: TrustedLog,
        shards: Shards,
        status: Arc<Status>,
    ) -> anyhow::Result<Follower> {
        // The ledger's head is the stored tree (an unserved head too: see `Ledger::open_mirror`),
        // and its registry holds every stored enrollment.
        let frontier =
            Frontier::from_reader(ledger.tree_hash(), ledger.head().size, &ledger.reader())
                .map_err(|e| anyhow::anyhow!("reading the stored tree: {e}"))?;
        let registry = (*ledger.registry()).clone();
        // One worker: fetches run there, beside the follower's own thread.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mirror-fetch")
            .enable_all()
            .build()?;
        if ledger.serving() {
            status.verified(ledger.head().size, 0);
        }
        let test_chunk = if cfg!(debug_assertions) {
            std::env::var("LEDGER_MIRROR_CHUNK")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&c: &usize| c > 0)
        } else {
            None
        };
        let (chunk, commit_leaves) = test_chunk.map_or((CHUNK, COMMIT_LEAVES), |c| (c, c));
        Ok(Follower {
            chunk,
            commit_leaves,
            ledger,
            source,
            trust,
            shards,
            status,
            frontier,
            registry,
            rt,
        })
    }

    /// Polls every `interval` until `stop` is set, the mirror halts on an alert, or the store
    /// fails. Runs on its own thread (it blocks on the store and on its own runtime's fetches).
    pub fn run(mut self, interval: Duration, stop: &std::sync::atomic::AtomicBool) {
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::Relaxed) {
            let began = Instant::now();
            match self.poll() {
                Ok(()) => {}
                Err(SpanError::Retry(e)) => {
                    tracing::warn!(error = %e, "mirror poll failed; trying again");
                    self.status.failed(e);
                }
                Err(SpanError::Alert(a)) => {
                    self.status.raise(*a, true);
                    tracing::error!("the mirror stopped advancing; it keeps serving its last verified view (restart it once the cause is understood)");
                    return;
                }
                Err(SpanError::Fatal(e)) => {
                    tracing::error!(error = %e, "the mirror's store failed; it stopped advancing (restart it)");
                    self.ledger
                        .set_failed(format!("the mirror's store failed: {e}"));
                    self.status.failed(e);
                    return;
                }
            }
            let rest = interval.saturating_sub(began.elapsed());
            let until = Instant::now() + rest;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(rest.min(Duration::from_millis(50)));
            }
        }
    }

    fn alert(&self, kind: AlertKind, index: Option<u64>, detail: String) -> SpanError {
        SpanError::Alert(Box::new(Alert::new(
            kind,
            self.trust.origin(),
            index,
            detail,
        )))
    }

    /// One poll: the log's checkpoint, and the span up to it if it grew.
    fn poll(&mut self) -> Result<(), SpanError> {
        let note = self.rt.block_on(self.source.get("checkpoint"))?;
        let cp = match self.trust.verify_note(&note, now_unix()) {
            Ok((cp, _)) => cp,
            Err(e) => {
                let what = match e {
                    CheckpointRefused::Signature(_) => "is not signed by the log's key",
                    CheckpointRefused::Witnesses(_) => "lacks its witness quorum",
                    _ => "is refused",
                };
                return Err(self.alert(
                    AlertKind::BadCheckpointSignature,
                    None,
                    format!(
                        "the checkpoint at {}/checkpoint {what}: {e}",
                        self.source.url()
                    ),
                ));
            }
        };
        let n = cp.checkpoint.size;
        self.status.seen(n);
        let stored = self.frontier.size();
        let th = self.ledger.tree_hash();
        if n < stored {
            // An older checkpoint (a stale cache, a lagging copy): it must be a prefix of ours.
            let ours = tree_root(th, n, &self.ledger.reader())
                .map_err(|e| SpanError::Fatal(e.to_string()))?;
            if ours != cp.checkpoint.root {
                return Err(self.alert(
                    AlertKind::InconsistentCheckpoint,
                    Some(n),
                    format!("the log's checkpoint of size {n} is not a prefix of the {stored} entries verified before (another root at that size)"),
                ));
            }
            return Ok(());
        }
        if n == stored {
            if self.frontier.root() != cp.checkpoint.root {
                return Err(self.alert(
                    AlertKind::InconsistentCheckpoint,
                    Some(n),
                    format!("the log's checkpoint of size {n} has another root than the one verified before at that size (a split view)"),
                ));
            }
            if !self.ledger.serving() || self.ledger.head().checkpoint.as_bytes() != note.as_slice()
            {
                // The same tree: serve this note (new cosignatures, or the end of a span
                // interrupted by a crash).
                self.serve(&cp, n)?;
            }
            self.status.verified(n, 0);
            return Ok(());
        }
        self.span(&cp)
    }

    /// Steps 1 to 5 of the module doc for the span up to `cp`, as a pipeline of four threads: this
    /// one fetches and hashes (steps 1–2) and hands on parts of [`CHUNK`] leaves; a checker
    /// verifies each part (step 3, on all cores); a filer files it in the map (step 4) and makes
    /// the storage commits; a committer stores them (step 5). So fetching, verifying, filing and
    /// storing overlap, while the order of the module doc still holds where it matters:
    ///
    /// - nothing is filed in the map or stored before the whole span's tree has hashed to the
    ///   checkpoint's root (the filer waits for that verdict; the checker verifies ahead of it),
    ///   and a mirror that serves a view stores nothing before the whole span is verified;
    /// - verdicts are taken in index order, and a span whose tree does not hash to the root is
    ///   `root-mismatch` (or `inconsistent-checkpoint`) whatever else is wrong with its entries;
    /// - everything that can fail for a transient reason (fetching) is decided before anything
    ///   changes, so a retry starts the span afresh.
    fn span(&mut self, cp: &SignedCheckpoint) -> Result<(), SpanError> {
        let old = self.frontier.size();
        let n = cp.checkpoint.size;
        let began = Instant::now();
        let serving = self.ledger.serving();
        let checkpoint = cp.to_bytes();
        let mut frontier = self.frontier.clone();
        let registry = self.registry.clone();
        let this: &Follower = self;
        let ledger: &Ledger = &self.ledger;
        let checkpoint_ref = &checkpoint;
        let spawned = |e: std::io::Error| SpanError::Fatal(format!("starting a thread: {e}"));
        let (outcome, registry, hashed) = std::thread::scope(|scope| -> Result<_, SpanError> {
            let (part_tx, part_rx) = std::sync::mpsc::channel::<Part>();
            let (checked_tx, checked_rx) = std::sync::mpsc::channel::<Checked>();
            let (root_tx, root_rx) = std::sync::mpsc::sync_channel::<bool>(1);
            let (commit_tx, commit_rx) = std::sync::mpsc::sync_channel::<Commit>(2);
            let committer = named("mirror-store")
                .spawn_scoped(scope, move || -> Result<(), SpanError> {
                    for commit in commit_rx {
                        store(ledger, &commit)?;
                    }
                    Ok(())
                })
                .map_err(spawned)?;
            let checker = named("mirror-check")
                .spawn_scoped(scope, move || -> KeyRegistry {
                    let mut registry = registry;
                    for part in part_rx {
                        let checked = this.check(part, &mut registry);
                        let failed = matches!(checked, Checked::Refused(_));
                        if checked_tx.send(checked).is_err() || failed {
                            break;
                        }
                    }
                    registry
                })
                .map_err(spawned)?;
            let filer = named("mirror-file")
                .spawn_scoped(scope, move || -> Result<Duration, SpanError> {
                    let checkpoint = checkpoint_ref;
                    // Nothing changes (the map) and nothing is stored before the whole span's
                    // tree is the checkpoint's: a fetch that fails half-way leaves the map as it
                    // was, for the retry.
                    if root_rx.recv() != Ok(true) {
                        return Ok(Duration::ZERO);
                    }
                    let mut filing = Filing::new(old, n);
                    let mut held: Vec<Commit> = Vec::new();
                    for checked in checked_rx {
                        let (mut part, filed) = match checked {
                            Checked::Refused(e) => return Err(e),
                            Checked::Part(part, filed) => (part, filed),
                        };
                        for commit in this.file_in_map(&mut filing, filed, &mut part, checkpoint)? {
                            if serving {
                                held.push(commit);
                            } else if commit_tx.send(commit).is_err() {
                                return Ok(Duration::ZERO); // the committer stopped: see its outcome
                            }
                        }
                    }
                    if filing.next != n {
                        return Ok(Duration::ZERO); // the fetch stopped short: see its outcome
                    }
                    if filing.pending() {
                        return Err(this.alert(
                            AlertKind::BadMapRoot,
                            Some(n),
                            format!(
                                "the checkpoint of size {n} does not end in a map leaf (index {})",
                                n - 1
                            ),
                        ));
                    }
                    let verified = began.elapsed();
                    for commit in held.drain(..) {
                        if commit_tx.send(commit).is_err() {
                            break;
                        }
                    }
                    Ok(verified)
                })
                .map_err(spawned)?;
            // Steps 1 and 2 here, then the verdict on the tree.
            let fetched = this.fetch_and_hash(cp, &mut frontier, part_tx);
            let hashed = began.elapsed();
            let fetched = fetched.and_then(|()| {
                if frontier.root() == cp.checkpoint.root {
                    Ok(())
                } else {
                    Err(this.mismatch(cp, old))
                }
            });
            let _ = root_tx.send(fetched.is_ok());
            let filed = filer
                .join()
                .unwrap_or_else(|_| Err(SpanError::Fatal("the filer panicked".into())));
            let registry = checker.join();
            let committed = committer
                .join()
                .unwrap_or_else(|_| Err(SpanError::Fatal("the committer panicked".into())));
            // A store failure first (the in-memory state may be ahead of the store), then the
            // tree's verdict, then the entries' and the map's.
            Ok((committed.and(fetched).and(filed), registry, hashed))
        })?;
        let verified = outcome?;
        let registry =
            registry.map_err(|_| SpanError::Fatal("the entry checker panicked".into()))?;
        self.frontier = frontier;
        self.registry = registry;
        self.serve(cp, old)?;
        self.status.verified(n, n - old);
        tracing::info!(
            from = old,
            to = n,
            fetch_hash_ms = hashed.as_millis() as u64,
            verify_ms = verified.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "mirror verified and stored a span"
        );
        Ok(())
    }

    /// Steps 1 and 2: fetches the span's entry bundles, a step ahead of the hashing, hashes them
    /// into `frontier` and sends them on in parts of [`Follower::chunk`] leaves (the last one
    /// shorter), each with its leaf hashes and the tree hashes it stores.
    fn fetch_and_hash(
        &self,
        cp: &SignedCheckpoint,
        frontier: &mut Frontier,
        parts: std::sync::mpsc::Sender<Part>,
    ) -> Result<(), SpanError> {
        let th = self.ledger.tree_hash();
        let old = frontier.size();
        let n = cp.checkpoint.size;
        let width = u64::from(TILE_WIDTH);
        let all: Vec<Tile> = (old / width..=(n - 1) / width)
            .map(|i| Tile {
                level: DATA_LEVEL,
                index: i,
                width: tile_width_at(DATA_LEVEL, i, n),
            })
            .collect();
        let steps: Vec<Vec<Tile>> = all
            .chunks(STEP_BUNDLES as usize)
            .map(<[Tile]>::to_vec)
            .collect();
        let fetch = |step: Option<&Vec<Tile>>| {
            step.map(|b| self.rt.spawn(fetch_bundles(self.source.clone(), b.clone())))
        };
        let mut pending = fetch(steps.first());
        let mut part = Part::new(old);
        for (k, bundles) in steps.iter().enumerate() {
            let from = frontier.size();
            let first = from / width;
            let fetched = match pending.take() {
                Some(task) => self
                    .rt
                    .block_on(task)
                    .map_err(|e| SpanError::Retry(format!("fetching bundles: {e}")))??,
                None => Vec::new(),
            };
            pending = fetch(steps.get(k + 1));
            let mut leaves: Vec<Vec<u8>> = Vec::new();
            for (tile, data) in bundles.iter().zip(fetched) {
                let entries = match decode_entry_bundle(&data) {
                    Ok(e) if e.len() == usize::from(tile.width) => e,
                    Ok(e) => {
                        return Err(self.alert(
                            AlertKind::RootMismatch,
                            Some(n),
                            format!(
                                "/{} holds {} entries, not {}",
                                tile.path(),
                                e.len(),
                                tile.width
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(self.alert(
                            AlertKind::RootMismatch,
                            Some(n),
                            format!("/{} is not an entry bundle: {e}", tile.path()),
                        ))
                    }
                };
                let skip = if tile.index == first {
                    (from % width) as usize
                } else {
                    0
                };
                leaves.extend(entries.into_iter().skip(skip));
            }
            let leaf_hashes: Vec<Hash> = leaves.par_iter().map(|l| th.leaf_hash(l)).collect();
            for (leaf, leaf_hash) in leaves.into_iter().zip(leaf_hashes) {
                let index = frontier.size();
                frontier.push_collect(leaf_hash, &mut part.stored);
                part.leaves.push(leaf);
                part.leaf_hashes.push(leaf_hash);
                if part.leaves.len() == self.chunk {
                    let next = Part::new(index + 1);
                    // The checker stopped (a refused entry): the tree's verdict still comes first.
                    let _ = parts.send(std::mem::replace(&mut part, next));
                }
            }
        }
        if !part.leaves.is_empty() {
            let _ = parts.send(part);
        }
        Ok(())
    }

    /// Step 3 for one part: its verdicts under SPEC §3, the first refused entry as an alert.
    fn check(&self, part: Part, registry: &mut KeyRegistry) -> Checked {
        let th = self.ledger.tree_hash();
        let checked = check_leaves(part.start, &part.leaves, registry);
        let mut filed: Vec<Filed> = Vec::with_capacity(checked.len());
        for (k, verdict) in checked.into_iter().enumerate() {
            let index = part.start + k as u64;
            let leaf = match (verdict.leaf, verdict.result) {
                (Some(leaf), Ok(_)) => leaf,
                (_, Err(e)) => {
                    return Checked::Refused(self.alert(
                        AlertKind::BadEntry,
                        Some(index),
                        format!("entry {index} fails SPEC §3: {e}"),
                    ))
                }
                (None, Ok(_)) => {
                    return Checked::Refused(self.alert(
                        AlertKind::BadEntry,
                        Some(index),
                        format!("entry {index} was not verified"),
                    ))
                }
            };
            let leaf_hash = part.leaf_hashes[k];
            filed.push(Filed::of(th, index, &leaf_hash, &leaf, &self.shards));
        }
        Checked::Part(part, filed)
    }

    /// Step 4 for one part: files its entries in the map, a log batch at a time, checking each
    /// map leaf, and returns the storage commits of the whole log batches it completes (at most
    /// [`CHUNK`] leaves each unless one batch is larger), the leaves' bytes moved out of `part`.
    fn file_in_map(
        &self,
        filing: &mut Filing,
        filed: Vec<Filed>,
        part: &mut Part,
        checkpoint: &[u8],
    ) -> Result<Vec<Commit>, SpanError> {
        let served = self.ledger.serving().then(|| self.ledger.head().size);
        filing.span_hashes.append(&mut part.stored);
        let mut commits = Vec::new();
        for ((f, bytes), leaf_hash) in filed
            .into_iter()
            .zip(part.leaves.iter_mut())
            .zip(part.leaf_hashes.iter().copied())
        {
            let index = filing.next;
            filing.next += 1;
            let is_map = match f.map {
                MapItem::Leaf { size, root } => {
                    if size != index {
                        return Err(self.alert(
                            AlertKind::BadMapRoot,
                            Some(index),
                            format!("the map leaf at index {index} says size {size}"),
                        ));
                    }
                    let staged = self
                        .ledger
                        .map()
                        .stage(&filing.additions)
                        .map_err(|e| SpanError::Fatal(format!("the map: {e}")))?;
                    if staged.root() != root {
                        return Err(self.alert(
                            AlertKind::BadMapRoot,
                            Some(index),
                            format!(
                                "the map leaf at index {index} commits root {}, but the entries before it give {}",
                                b64(&root),
                                b64(&staged.root())
                            ),
                        ));
                    }
                    filing.values.extend(staged.values().iter().copied());
                    let to = index + 1;
                    let advanced = match served {
                        Some(pinned) => self.ledger.map().advance_pinned(staged, to, pinned),
                        None => self.ledger.map().advance(staged, to),
                    };
                    advanced.map_err(|e| SpanError::Fatal(format!("the map: {e}")))?;
                    filing.additions.clear();
                    true
                }
                MapItem::Add(a) => {
                    filing.additions.push(a);
                    false
                }
                MapItem::None => false,
            };
            filing.last_was_map = is_map;
            filing.leaves.push(NewLeaf {
                index,
                bytes: std::mem::take(bytes),
                leaf_hash,
                sii: f.sii,
                enroll: f.enroll,
            });
            if is_map && filing.leaves.len() >= self.commit_leaves {
                commits.push(filing.commit(checkpoint)?);
            }
        }
        // The span's last part ends in its last map leaf: what is left is one last commit.
        if filing.next == filing.end && !filing.pending() && !filing.leaves.is_empty() {
            commits.push(filing.commit(checkpoint)?);
        }
        Ok(commits)
    }

    /// Writes `public/checkpoint` and serves `cp` (whose tree is stored), with the registry.
    fn serve(&self, cp: &SignedCheckpoint, old: u64) -> Result<(), SpanError> {
        let head = Head::from_signed(cp.clone())
            .ok_or_else(|| SpanError::Retry("the checkpoint note is not UTF-8".into()))?;
        if let Err(e) = self
            .ledger
            .storage()
            .publish(head.checkpoint.as_bytes(), old, head.size)
        {
            tracing::warn!(error = %e, "writing public/checkpoint (the next span writes it again)");
        }
        self.ledger.publish_mirrored(head, self.registry.clone());
        Ok(())
    }

    /// Step 2's alert: `inconsistent-checkpoint` when the log's hash tiles, authenticated against
    /// `cp`, give the first `old` leaves another root than the mirror's; else `root-mismatch`.
    fn mismatch(&self, cp: &SignedCheckpoint, old: u64) -> SpanError {
        let th = self.ledger.tree_hash();
        let n = cp.checkpoint.size;
        let ours = tree_root(th, old, &self.ledger.reader()).ok();
        let reader = Tiles {
            source: &self.source,
            rt: &self.rt,
        };
        let auth = AuthTileHashReader::new(th, n, cp.checkpoint.root, &reader);
        match tree_root(th, old, &auth) {
            Ok(theirs) if old > 0 && Some(theirs) != ours => self.alert(
                AlertKind::InconsistentCheckpoint,
                Some(n),
                format!("the log's checkpoint of size {n} does not contain the {old} entries verified before: its tiles give them root {}, the mirror's tree {} (a fork or a split view)", b64(&theirs), ours.map(|h| b64(&h)).unwrap_or_default()),
            ),
            _ => self.alert(
                AlertKind::RootMismatch,
                Some(n),
                format!("the entries {old}..{n} served at {} do not hash to the checkpoint's root {}", self.source.url(), b64(&cp.checkpoint.root)),
            ),
        }
    }
}

/// Step 4's state across the parts of a span: the next index, the additions since the last map
/// leaf, and the leaves, map values and tree hashes of the commit being gathered.
struct Filing {
    old: u64,
    /// The span's end (the checkpoint's size).
    end: u64,
    next: u64,
    additions: Vec<MapAddition>,
    values: BTreeMap<Hash, MapValue>,
    leaves: Vec<NewLeaf>,
    /// The tree hashes of the span not yet in a commit, from stored index `hashes_base` on.
    span_hashes: Vec<Hash>,
    hashes_base: u64,
    last_was_map: bool,
}

impl Filing {
    fn new(old: u64, end: u64) -> Filing {
        Filing {
            old,
            end,
            next: old,
            additions: Vec::new(),
            values: BTreeMap::new(),
            leaves: Vec::new(),
            span_hashes: Vec::new(),
            hashes_base: stored_hash_count(old),
            last_was_map: false,
        }
    }

    /// Whether entries after the last map leaf are waiting (a span must end in a map leaf).
    fn pending(&self) -> bool {
        self.next > self.old && !self.last_was_map
    }

    /// The commit of the gathered leaves (whole log batches), with their stored hashes.
    fn commit(&mut self, checkpoint: &[u8]) -> Result<Commit, SpanError> {
        let leaves = std::mem::take(&mut self.leaves);
        let (Some(first), Some(last)) = (leaves.first(), leaves.last()) else {
            return Err(SpanError::Fatal("an empty commit".into()));
        };
        let start = stored_hash_count(first.index);
        let size = last.index + 1;
        let end = stored_hash_count(size);
        if start != self.hashes_base {
            return Err(SpanError::Fatal("span hashes out of order".into()));
        }
        let count = usize::try_from(end - start).map_err(|e| SpanError::Fatal(e.to_string()))?;
        if count > self.span_hashes.len() {
            return Err(SpanError::Fatal("span hashes out of range".into()));
        }
        let hashes: Vec<Hash> = self.span_hashes.drain(..count).collect();
        self.hashes_base = end;
        Ok(Commit {
            leaves,
            hashes_start: start,
            hashes,
            size,
            checkpoint: checkpoint.to_vec(),
            map: std::mem::take(&mut self.values).into_iter().collect(),
        })
    }
}

/// A part of a span on its way from the fetcher to the checker and the filer: its leaves (from
/// index `start`), their leaf hashes, and the tree hashes they store.
struct Part {
    start: u64,
    leaves: Vec<Vec<u8>>,
    leaf_hashes: Vec<Hash>,
    stored: Vec<Hash>,
}

impl Part {
    fn new(start: u64) -> Part {
        Part {
            start,
            leaves: Vec::new(),
            leaf_hashes: Vec::new(),
            stored: Vec::new(),
        }
    }
}

/// A part the checker verified, or the alert of its first refused entry.
enum Checked {
    Part(Part, Vec<Filed>),
    Refused(SpanError),
}

/// What the map and the index need of one verified entry (the parsed leaf is not kept).
struct Filed {
    map: MapItem,
    /// The SII to index, when the mirror's shards hold it.
    sii: Option<String>,
    enroll: bool,
}

/// An entry's part in the map (SPEC §9).
enum MapItem {
    /// A map leaf: the map of the entries before it.
    Leaf { size: u64, root: Hash },
    /// An entry filed under a key.
    Add(MapAddition),
    /// Neither.
    None,
}

impl Filed {
    fn of(th: TreeHash, index: u64, leaf_hash: &Hash, leaf: &Leaf, shards: &Shards) -> Filed {
        let entry = leaf.entry();
        let map = match entry {
            Entry::Map(m) => MapItem::Leaf {
                size: m.size,
                root: m.root,
            },
            _ => map::addition(th, index, leaf_hash, entry).map_or(MapItem::None, MapItem::Add),
        };
        Filed {
            map,
            sii: entry
                .sii()
                .filter(|s| shards.holds(s.as_str()))
                .map(|s| s.as_str().to_string()),
            enroll: matches!(entry, Entry::Enroll(_)),
        }
    }
}

/// Writes one commit of a span and caches its hashes.
fn store(ledger: &Ledger, commit: &Commit) -> Result<(), SpanError> {
    ledger
        .storage()
        .commit(commit)
        .map_err(|e| SpanError::Fatal(format!("committing up to {}: {e}", commit.size)))?;
    ledger.cache_hashes(commit.hashes_start, &commit.hashes);
    Ok(())
}

/// The log's hash tiles, read synchronously for [`AuthTileHashReader`].
struct Tiles<'a> {
    source: &'a TileSource,
    rt: &'a tokio::runtime::Runtime,
}

impl TileReader for Tiles<'_> {
    fn read_tiles(&self, tiles: &[Tile]) -> Vec<Result<Vec<u8>, TileError>> {
        tiles
            .iter()
            .map(|t| match self.rt.block_on(self.source.get(&t.path())) {
                Ok(b) => Ok(b),
                Err(SourceError::NotFound { .. }) => Err(TileError::NotFound { path: t.path() }),
                Err(e) => Err(TileError::Unreadable {
                    path: t.path(),
                    reason: e.to_string(),
                }),
            })
            .collect()
    }
}

/// Fetches entry bundles, [`CONNECTIONS`] at a time, in order. A partial bundle the log no
/// longer has (tlog-tiles lets logs delete them once full) is read as the full one, cut.
async fn fetch_bundles(
    source: TileSource,
    bundles: Vec<Tile>,
) -> Result<Vec<Vec<u8>>, SourceError> {
    use futures::stream::{self, StreamExt as _, TryStreamExt as _};
    stream::iter(bundles.into_iter().map(move |t| {
        let source = source.clone();
        async move { fetch_bundle(&source, &t).await }
    }))
    .buffered(CONNECTIONS)
    .try_collect()
    .await
}

async fn fetch_bundle(source: &TileSource, t: &Tile) -> Result<Vec<u8>, SourceError> {
    match source.get(&t.path()).await {
        Err(SourceError::NotFound { url }) if t.is_partial() => {
            let full = source.get(&t.full().path()).await?;
            cut_from_full(t, full).map_err(|e| SourceError::Failed {
                url,
                reason: e.to_string(),
            })
        }
        other => other,
    }
}

/// A thread of the span's pipeline, named for profiles and `top -H`.
fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.into())
}

fn b64(h: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}
