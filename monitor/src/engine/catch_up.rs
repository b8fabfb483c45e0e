//! Steps 3 to 5 of following a log: the catch-up pipeline — a producer thread fetches and
//! verifies entry bundles in parallel while the engine applies the rules, recomputes the tree,
//! rebuilds the map and checks its map leaves, and commits each step crash-safely before
//! delivering its alerts.

use std::time::Instant;

use ledger_core::admission::KeyRegistry;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Entry;
use ledger_core::tile::{
    cut_from_full, decode_entry_bundle, tile_width_at, Tile, DATA_LEVEL, TILE_WIDTH,
};
use ledger_core::Hash;
use rayon::prelude::*;
use tracing::info;

use crate::alert::{Alert, Kind};
use crate::fetch::{FetchError, TileClient};
use crate::rules::{Alerts, Step};
use crate::store::{Commit, Store};
use crate::verify::{verify_leaves, Verdict};

use super::*;

impl LogMonitor {
    /// Steps 3 to 5: download, verify and hash the entries up to `target`, a step at a time.
    pub(super) fn catch_up(
        &mut self,
        target: &SignedCheckpoint,
        cx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
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
            "catch-up time: fetch {:.2} s, verify {:.2} s, rules and map {:.2} s (map updates {:.2} s), commit and deliver {:.2} s",
            tm.fetch, tm.verify, tm.rules, tm.map, tm.commit
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
        // SPEC §9: every checkpoint of size > 0 ends in a (log-signed) map leaf.
        let mut alerts = Alerts::new(cx.store);
        if size > 0 && self.progress.last_map_leaf != Some(size - 1) {
            let last = match self.progress.last_map_leaf {
                Some(i) => format!("the last map leaf is at index {i}"),
                None => "there is no map leaf".to_string(),
            };
            let a = Alert::new(
                Kind::BadMapRoot,
                &origin,
                Some(size),
                format!(
                    "the checkpoint of size {size} does not end in a map leaf (index {}): {last}",
                    size - 1
                ),
            );
            alerts.raise(a, &format!("checkpoint {}", b64(&target.checkpoint.root)))?;
        }
        self.progress.verified_size = size;
        self.progress.verified_checkpoint =
            String::from_utf8_lossy(&target.to_bytes()).into_owned();
        self.progress.target_checkpoint = None;
        let mut commit = Commit {
            alerts: alerts.into_vec(),
            ..Commit::default()
        };
        self.save_progress(&mut commit);
        cx.store.commit(commit)?;
        info!(log = %self.params.name, size, "verified checkpoint");
        Ok(())
    }

    pub(super) fn reload_registry(&mut self, store: &Store) -> Result<(), EngineError> {
        self.registry = stored_registry(&self.params, store)?;
        Ok(())
    }

    /// Applies the rules to verified entries (indices `from..`), files them in the map and checks
    /// its map leaves, extends the frontier with their leaf hashes, then commits the step and
    /// delivers its alerts.
    pub(super) fn process(
        &mut self,
        from: u64,
        hashes: Vec<Hash>,
        verdicts: &[Verdict],
        cx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        if from != self.frontier.size()
            || from != self.map.position()
            || hashes.len() != verdicts.len()
        {
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
            let origin = &self.params.origin;
            let mut step = Step::new(cx.store, cx.rules, origin, &mut self.rules);
            let mut filing = self.map.filing();
            for (i, (v, leaf_hash)) in verdicts.iter().zip(&hashes).enumerate() {
                let index = from + i as u64;
                step.apply(index, v)?;
                if let Some(bad) = filing.file(leaf_hash, v)? {
                    let a = Alert::new(Kind::BadMapRoot, origin, Some(index), bad.detail());
                    step.raise_with(a, "map leaf")?;
                }
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
            let map = filing.finish()?;
            let (journal, alerts) = step.finish();
            commit.alerts = alerts;
            let end = from + verdicts.len() as u64;
            if !journal.is_empty() {
                self.journal_bytes += journal.len() as u64;
                commit.journal = Some((self.params.name.clone(), end, journal));
            }
            if !map.journal.is_empty() {
                self.journal_bytes += map.journal.len() as u64;
                commit.map_journal = Some((self.params.name.clone(), end, map.journal));
            }
            if let Some(i) = map.last_map_leaf {
                self.progress.last_map_leaf = Some(i);
            }
            self.rules.set_position(end);
        }
        for h in hashes {
            self.frontier.push(h);
        }
        self.progress.entries_verified += verdicts.len() as u64;
        self.save_progress(&mut commit);
        self.timing.rules += t.elapsed().as_secs_f64();
        self.timing.map += self.map.take_update_time().as_secs_f64();
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
}

/// One step of the pipeline, from the producer.
pub(super) enum Produced {
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
pub(super) struct Producer {
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
    pub(super) fn fetch_bundle(&self, t: &Tile) -> Result<Vec<u8>, FetchError> {
        match self.client.get(&t.path()) {
            // A partial bundle the log no longer has: the full one, cut (tlog-tiles).
            Err(FetchError::NotFound { url }) if t.is_partial() => {
                let data = self.client.get(&t.full().path())?;
                cut_from_full(t, data).map_err(|e| FetchError::Failed {
                    url,
                    reason: e.to_string(),
                })
            }
            other => other,
        }
    }

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
