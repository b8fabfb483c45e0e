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
//! 5. Only now is anything stored: the span in commits of whole log batches (at most [`CHUNK`]
//!    leaves each unless one batch is larger), each one atomic as the log's own commits are,
//!    recording the new checkpoint as the one being caught up to. Then `public/checkpoint` is
//!    written and the new head, registry and map version are served.
//!
//! An alert at steps 1–4 stops the mirror advancing for good (until an operator restarts it):
//! nothing of the span was stored, and it keeps serving its last good view, saying how old it is.
//! A crash at step 5 leaves a store ahead of its served checkpoint: at restart the mirror serves
//! nothing until it has verified the rest of the span again ([`crate::ledger::Ledger::open_mirror`]).
//! A failed fetch is no alert: the next poll tries again.
//!
//! A span is held in memory until it is stored (its leaves, ~0.4 KB each with their hashes and map
//! values): a mirror that starts far behind a large log needs that much memory once.

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
use ledger_core::tree::{stored_hash_count, stored_hashes, tree_root, Frontier};
use ledger_core::trust::{CheckpointRefused, TrustedLog};
use ledger_core::Hash;
use rayon::prelude::*;

use super::source::{SourceError, TileSource};
use super::status::Status;
use super::Shards;
use crate::ledger::{Head, Ledger};
use crate::sequencer::Overlay;
use crate::storage::{Commit, NewLeaf};

/// The most leaves one storage commit of a span holds (whole log batches; one larger batch is
/// committed alone): bounds a commit's size and what recovery removes after a crash in one.
pub const CHUNK: usize = 16_384;

/// How many entry bundles one fetch step reads (in parallel).
const STEP_BUNDLES: u64 = 64;

/// How many bundles are fetched at once.
const CONNECTIONS: usize = 8;

/// The follower's state: the stored tree and registry (which may be ahead of the served head
/// after a crash in the middle of a span's commits).
pub struct Follower {
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
        let size = ledger.storage().head()?.map_or(0, |(s, _)| s);
        let frontier = Frontier::from_reader(ledger.tree_hash(), size, &ledger.reader())
            .map_err(|e| anyhow::anyhow!("reading the stored tree: {e}"))?;
        let mut registry = KeyRegistry::new(trust.log_key.clone());
        for index in ledger.storage().enrollments()? {
            let bytes = ledger
                .storage()
                .leaf(index)?
                .ok_or_else(|| anyhow::anyhow!("enroll leaf {index} is missing"))?;
            let leaf = ledger_core::entry::Leaf::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("enroll leaf {index}: {e}"))?;
            registry.add_entry(index, leaf.entry());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if ledger.serving() {
            status.verified(ledger.head().size, 0);
        }
        Ok(Follower {
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

    /// Steps 1 to 5 of the module doc for the span up to `cp`. Everything that can fail for a
    /// transient reason (fetching) comes before anything changes (the map is advanced only once
    /// the whole span is fetched and its tree verified), so a retry starts the span afresh.
    fn span(&mut self, cp: &SignedCheckpoint) -> Result<(), SpanError> {
        let th = self.ledger.tree_hash();
        let old = self.frontier.size();
        let n = cp.checkpoint.size;
        let began = Instant::now();
        let hashes_start = stored_hash_count(old);
        let mut frontier = self.frontier.clone();
        let mut registry = self.registry.clone();
        let mut span_hashes: Vec<Hash> = Vec::new();
        let mut raw: Vec<Vec<u8>> = Vec::new();
        let mut hashes: Vec<Hash> = Vec::new();
        let width = u64::from(TILE_WIDTH);
        let mut from = old;
        while from < n {
            // Step 1.
            let first = from / width;
            let last = ((n - 1) / width).min(first + STEP_BUNDLES - 1);
            let bundles: Vec<Tile> = (first..=last)
                .map(|i| Tile {
                    level: DATA_LEVEL,
                    index: i,
                    width: tile_width_at(DATA_LEVEL, i, n),
                })
                .collect();
            let fetched = self.rt.block_on(fetch_bundles(&self.source, &bundles))?;
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
            // Step 2 (the tree first: entries that are not the checkpoint's are `root-mismatch`,
            // whatever else is wrong with them).
            let leaf_hashes: Vec<Hash> = leaves.par_iter().map(|l| th.leaf_hash(l)).collect();
            for (k, leaf_hash) in leaf_hashes.into_iter().enumerate() {
                let index = from + k as u64;
                let overlay = Overlay {
                    store: self.ledger.reader(),
                    start: hashes_start,
                    new: &span_hashes,
                };
                let new = stored_hashes(th, index, &leaf_hash, &overlay)
                    .map_err(|e| SpanError::Fatal(format!("hashing entry {index}: {e}")))?;
                span_hashes.extend(new);
                frontier.push(leaf_hash);
                hashes.push(leaf_hash);
            }
            raw.extend(leaves);
            from = frontier.size();
        }
        // Step 2's check, then step 3: nothing has changed yet.
        if frontier.root() != cp.checkpoint.root {
            return Err(self.mismatch(cp, old));
        }
        let checked = check_leaves(old, &raw, &mut registry);
        drop(raw);
        let mut span: Vec<(Hash, Leaf)> = Vec::with_capacity(checked.len());
        for (k, (verdict, leaf_hash)) in checked.into_iter().zip(hashes).enumerate() {
            let index = old + k as u64;
            match (verdict.leaf, verdict.result) {
                (Some(leaf), Ok(_)) => span.push((leaf_hash, leaf)),
                (_, Err(e)) => {
                    return Err(self.alert(
                        AlertKind::BadEntry,
                        Some(index),
                        format!("entry {index} fails SPEC §3: {e}"),
                    ))
                }
                (None, Ok(_)) => {
                    return Err(self.alert(
                        AlertKind::BadEntry,
                        Some(index),
                        format!("entry {index} was not verified"),
                    ))
                }
            }
        }
        if !matches!(span.last(), Some((_, l)) if matches!(l.entry(), Entry::Map(_))) {
            return Err(self.alert(
                AlertKind::BadMapRoot,
                Some(n),
                format!(
                    "the checkpoint of size {n} does not end in a map leaf (index {})",
                    n - 1
                ),
            ));
        }
        // Step 4.
        let (chunks, chunk_values) = self.file_in_map(old, span)?;
        // Step 5.
        let verified = began.elapsed();
        let checkpoint = cp.to_bytes();
        let mut hash_offset = 0usize;
        for (leaves, values) in chunks.into_iter().zip(chunk_values) {
            let (Some(first), Some(last)) = (leaves.first(), leaves.last()) else {
                continue;
            };
            let start = stored_hash_count(first.index);
            let size = last.index + 1;
            let count = usize::try_from(stored_hash_count(size) - start)
                .map_err(|e| SpanError::Fatal(e.to_string()))?;
            let hashes = span_hashes
                .get(hash_offset..hash_offset + count)
                .ok_or_else(|| SpanError::Fatal("span hashes out of range".into()))?
                .to_vec();
            hash_offset += count;
            let commit = Commit {
                leaves,
                hashes_start: start,
                hashes,
                size,
                checkpoint: checkpoint.clone(),
                map: values,
            };
            self.ledger
                .storage()
                .commit(&commit)
                .map_err(|e| SpanError::Fatal(format!("committing up to {size}: {e}")))?;
            self.ledger
                .cache_hashes(commit.hashes_start, &commit.hashes);
        }
        self.frontier = frontier;
        self.registry = registry;
        self.serve(cp, old)?;
        self.status.verified(n, n - old);
        tracing::info!(
            from = old,
            to = n,
            verify_ms = verified.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "mirror verified and stored a span"
        );
        Ok(())
    }

    /// Step 4: files the span's entries (from index `old`) in the map, a log batch at a time,
    /// checking each map leaf; returns the span's leaves as storage commits of whole batches
    /// (at most [`CHUNK`] leaves unless one batch is larger) with the map values each commits.
    #[allow(clippy::type_complexity)]
    fn file_in_map(
        &self,
        old: u64,
        span: Vec<(Hash, Leaf)>,
    ) -> Result<(Vec<Vec<NewLeaf>>, Vec<Vec<(Hash, MapValue)>>), SpanError> {
        let th = self.ledger.tree_hash();
        let served = self.ledger.serving().then(|| self.ledger.head().size);
        let mut chunks: Vec<Vec<NewLeaf>> = Vec::new();
        let mut chunk_values: Vec<Vec<(Hash, MapValue)>> = Vec::new();
        let mut chunk: Vec<NewLeaf> = Vec::new();
        let mut values: BTreeMap<Hash, MapValue> = BTreeMap::new();
        let mut additions: Vec<MapAddition> = Vec::new();
        for (k, (leaf_hash, leaf)) in span.into_iter().enumerate() {
            let index = old + k as u64;
            let entry = leaf.entry();
            let is_map = if let Entry::Map(m) = entry {
                if m.size != index {
                    return Err(self.alert(
                        AlertKind::BadMapRoot,
                        Some(index),
                        format!("the map leaf at index {index} says size {}", m.size),
                    ));
                }
                let staged = self
                    .ledger
                    .map()
                    .stage(&additions)
                    .map_err(|e| SpanError::Fatal(format!("the map: {e}")))?;
                if staged.root() != m.root {
                    return Err(self.alert(
                        AlertKind::BadMapRoot,
                        Some(index),
                        format!(
                            "the map leaf at index {index} commits root {}, but the entries before it give {}",
                            b64(&m.root),
                            b64(&staged.root())
                        ),
                    ));
                }
                values.extend(staged.values().iter().copied());
                let to = index + 1;
                let advanced = match served {
                    Some(pinned) => self.ledger.map().advance_pinned(staged, to, pinned),
                    None => self.ledger.map().advance(staged, to),
                };
                advanced.map_err(|e| SpanError::Fatal(format!("the map: {e}")))?;
                additions.clear();
                true
            } else {
                additions.extend(map::addition(th, index, &leaf_hash, entry));
                false
            };
            chunk.push(NewLeaf {
                index,
                leaf_hash,
                sii: entry
                    .sii()
                    .filter(|s| self.shards.holds(s.as_str()))
                    .map(|s| s.as_str().to_string()),
                enroll: matches!(entry, Entry::Enroll(_)),
                bytes: leaf.bytes().to_vec(),
            });
            if is_map && chunk.len() >= CHUNK {
                chunks.push(std::mem::take(&mut chunk));
                chunk_values.push(std::mem::take(&mut values).into_iter().collect());
            }
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
            chunk_values.push(values.into_iter().collect());
        }
        Ok((chunks, chunk_values))
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
async fn fetch_bundles(source: &TileSource, bundles: &[Tile]) -> Result<Vec<Vec<u8>>, SourceError> {
    use futures::stream::{self, StreamExt as _, TryStreamExt as _};
    stream::iter(bundles.iter().map(|t| fetch_bundle(source, t)))
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

fn b64(h: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}
