//! The sequencer (in the manner of Sunlight's `internal/ctlog`): submissions that passed the
//! stateless checks wait in a bounded queue; one task takes them in batches, applies the stateful
//! checks in log order, appends leaves and tree hashes, signs the new checkpoint, writes everything in
//! one atomic batch, syncs it, and only then publishes the new head and answers the waiters.
//!
//! A submission is accepted into the queue only with a reserved slot ([`SequencerHandle::reserve`]),
//! so the queue bound also bounds the submissions being checked: when it is full, `/v1/add` answers
//! `503 overloaded` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ledger_core::admission::{verify_entry, KeyLookup, KeyRegistry, Refusal, Signers};
use ledger_core::entry::{Entry, Leaf, MapLeaf, Role};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::map::{self, MapAddition};
use ledger_core::tree::{stored_hash_count, stored_hashes, Frontier, HashReader, TreeError};
use ledger_core::Hash;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::BatchConfig;
use crate::disk::DiskLow;
use crate::error::LogError;
use crate::ledger::{sign_checkpoint, Head, Ledger, StoreReader};
use crate::lock::LockError;
use crate::publish::PublishStatus;
use crate::storage::{Commit, NewLeaf, StorageError};
use crate::witness::CosignerHandle;

/// A submission that passed the stateless checks (syntax, policy, clock, signatures against the
/// registry snapshot), waiting to be sequenced.
#[derive(Debug)]
pub struct Submission {
    /// The parsed leaf.
    pub leaf: Leaf,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// The keys that signed it, as of the snapshot; re-checked at the final index.
    pub signers: Signers,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Sequenced, LogError>>,
}

/// Where a submission ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// The leaf's index.
    pub index: u64,
    /// A durable, signed head that covers it.
    pub head: Arc<Head>,
    /// Whether the leaf was already in the log (or earlier in the same batch).
    pub duplicate: bool,
}

/// The submitting side of the sequencer.
#[derive(Clone, Debug)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Submission>,
}

impl SequencerHandle {
    /// Reserves a queue slot before the (expensive) stateless checks; `overloaded` when full.
    pub fn reserve(&self) -> Result<mpsc::OwnedPermit<Submission>, LogError> {
        self.tx.clone().try_reserve_owned().map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LogError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => LogError::NotRunning,
        })
    }

    /// Submissions being checked or waiting (reserved or queued slots).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }
}

/// Starts the sequencer task. It stops when `shutdown` turns true (after committing what is
/// queued) or when every handle is dropped.
pub fn spawn(
    ledger: Arc<Ledger>,
    signer: Arc<SignerKey>,
    config: BatchConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(SequencerHandle, tokio::task::JoinHandle<()>), LogError> {
    spawn_with_cosigner(ledger, signer, config, shutdown, None)
}

/// [`spawn`], handing every new durable head to the witness collector (see [`crate::witness`]),
/// which answers the batch's waiters once the witnesses answered or timed out.
pub fn spawn_with_cosigner(
    ledger: Arc<Ledger>,
    signer: Arc<SignerKey>,
    config: BatchConfig,
    shutdown: watch::Receiver<bool>,
    cosigner: Option<CosignerHandle>,
) -> Result<(SequencerHandle, tokio::task::JoinHandle<()>), LogError> {
    spawn_with_publisher(ledger, signer, config, shutdown, cosigner, None)
}

/// [`spawn_with_cosigner`], telling the object-storage publisher (see [`crate::publish`]) of every
/// new durable head and waiting for it before a batch while the bucket is more than its bound
/// behind (backpressure).
pub fn spawn_with_publisher(
    ledger: Arc<Ledger>,
    signer: Arc<SignerKey>,
    config: BatchConfig,
    shutdown: watch::Receiver<bool>,
    cosigner: Option<CosignerHandle>,
    publisher: Option<Arc<PublishStatus>>,
) -> Result<(SequencerHandle, tokio::task::JoinHandle<()>), LogError> {
    let (tx, rx) = mpsc::channel(config.queue);
    let mut sequencer = Sequencer::new(ledger, signer)?;
    sequencer.cosigner = cosigner;
    sequencer.publisher = publisher;
    let task = tokio::spawn(sequencer.run(rx, config, shutdown));
    Ok((SequencerHandle { tx }, task))
}

/// The single writer: in-memory tree state and registry as of the last durable head.
pub struct Sequencer {
    ledger: Arc<Ledger>,
    signer: Arc<SignerKey>,
    frontier: Frontier,
    registry: KeyRegistry,
    cosigner: Option<CosignerHandle>,
    publisher: Option<Arc<PublishStatus>>,
}

/// Why a batch was not committed.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// The disk is below its free-space floor: nothing was written, the sequencer goes on and
    /// refuses writes until space returns.
    #[error(transparent)]
    DiskLow(DiskLow),
    /// Writing the tree's files failed (an I/O error, a full disk) before the index was touched:
    /// nothing of the batch counts and the in-memory state is unchanged, so the sequencer refuses
    /// this batch and goes on; the next batch writes the same places again.
    #[error("{0}")]
    WriteFailed(StorageError),
    /// The store failed: the sequencer stops (fail-stop).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored map could not be read or is corrupt: the sequencer stops (fail-stop).
    #[error("the map: {0}")]
    Map(String),
    /// The checkpoint lock could not be written (or another process changed it): fail-stop, the
    /// batch is durable but its checkpoint is not published.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The log was already stopped (a storage failure, or a witness ahead of it): nothing was
    /// written.
    #[error("the log was stopped")]
    Stopped,
    /// The new tree hashes could not be computed from the store: fail-stop.
    #[error("tree hashes: {0}")]
    Tree(String),
    /// The checkpoint could not be signed: fail-stop.
    #[error("signing the checkpoint: {0}")]
    Signing(String),
}

/// A waiter and what to tell it.
type Reply = (oneshot::Sender<Result<Sequenced, LogError>>, Outcome);

/// One submission's fate within a batch.
enum Outcome {
    /// Appended at this index (new leaf).
    Appended(u64),
    /// Already stored, or earlier in this batch, at this index.
    Duplicate(u64),
    /// Refused by the stateful checks.
    Refused(LogError),
}

/// Hashes of this batch not yet in the store, over the store: what [`stored_hashes`] reads while
/// the batch is being built (and a DP mirror while it verifies a span).
pub(crate) struct Overlay<'a> {
    /// The store (with its hash cache).
    pub(crate) store: StoreReader<'a>,
    /// The stored-hash index of `new[0]`.
    pub(crate) start: u64,
    /// The new hashes, from stored index `start` on.
    pub(crate) new: &'a [Hash],
}

impl HashReader for Overlay<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        let mut out = Vec::with_capacity(indexes.len());
        let mut missing = Vec::new();
        for &i in indexes {
            match i.checked_sub(self.start) {
                Some(off) => {
                    let h = usize::try_from(off)
                        .ok()
                        .and_then(|o| self.new.get(o))
                        .ok_or(TreeError::MissingHash { index: i })?;
                    out.push(Some(*h));
                }
                None => {
                    missing.push(i);
                    out.push(None);
                }
            }
        }
        let mut stored = self.store.read_hashes(&missing)?.into_iter();
        out.into_iter()
            .map(|h| {
                h.or_else(|| stored.next())
                    .ok_or(TreeError::WrongHashCount {
                        requested: indexes.len(),
                        returned: 0,
                    })
            })
            .collect()
    }
}

/// The registry as seen at `index`, including enrollments earlier in the batch being built.
struct BatchKeys<'a> {
    registry: &'a KeyRegistry,
    pending: &'a [(u64, Role, VerifierKey)],
    index: u64,
}

impl KeyLookup for BatchKeys<'_> {
    fn log_key(&self) -> &VerifierKey {
        self.registry.log_key()
    }

    fn enrolled(&self, role: Role, name: &str) -> Option<&VerifierKey> {
        self.pending
            .iter()
            .rev()
            .find(|(i, r, k)| *i < self.index && *r == role && k.name() == name)
            .map(|(_, _, k)| k)
            .or_else(|| self.registry.key_at(role, name, self.index))
    }
}

impl Sequencer {
    /// Loads the in-memory state for the ledger's current head.
    pub fn new(ledger: Arc<Ledger>, signer: Arc<SignerKey>) -> Result<Sequencer, LogError> {
        let head = ledger.head();
        let frontier = Frontier::from_reader(ledger.tree_hash(), head.size, &ledger.reader())?;
        let registry = (*ledger.registry()).clone();
        Ok(Sequencer {
            ledger,
            signer,
            frontier,
            registry,
            cosigner: None,
            publisher: None,
        })
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Submission>,
        config: BatchConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let first = tokio::select! {
                biased;
                s = rx.recv() => match s {
                    Some(s) => s,
                    None => break,
                },
                _ = shutdown.changed() => {
                    // Commit what is already queued, then stop.
                    rx.close();
                    let mut rest = Vec::new();
                    while let Ok(s) = rx.try_recv() {
                        rest.push(s);
                    }
                    if !rest.is_empty() {
                        let _ = self.commit_off_runtime(rest).await;
                    }
                    break;
                }
            };
            let started = Instant::now();
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + config.max_wait;
            while batch.len() < config.max_entries {
                match rx.try_recv() {
                    Ok(s) => {
                        batch.push(s);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                // Wait for more only while submissions are being checked (they hold reserved
                // slots): a lone submission is committed at once, and under load the batch
                // takes in what is about to arrive instead of paying one sync per few entries.
                if rx.max_capacity() == rx.capacity() {
                    break;
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    _ => break,
                }
            }
            let n = batch.len();
            // Backpressure: the bucket may not fall more than its bound behind (shutdown still
            // commits locally).
            if let Some(p) = &self.publisher {
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = p.wait_for_room(self.frontier.size()) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            match self.commit_off_runtime(batch).await {
                Some(me) => {
                    self = me;
                    self.ledger.metrics.batch(n, started.elapsed());
                }
                None => {
                    // Fail-stop: answer everything still queued and refuse new work.
                    rx.close();
                    while let Ok(s) = rx.try_recv() {
                        let _ = s.reply.send(Err(stopped_error()));
                    }
                    return;
                }
            }
        }
    }

    /// Runs `Sequencer::sequence` on a blocking thread (it syncs to disk) and answers the waiters.
    /// Returns the sequencer, or `None` after a storage failure (the ledger is marked failed).
    async fn commit_off_runtime(self, batch: Vec<Submission>) -> Option<Sequencer> {
        let ledger = Arc::clone(&self.ledger);
        let joined = tokio::task::spawn_blocking(move || {
            let mut me = self;
            let (replies, outcome) = me.sequence(batch);
            (me, replies, outcome)
        })
        .await;
        let (me, replies, outcome) = match joined {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "sequencer batch panicked; stopping");
                ledger.set_failed(format!("the sequencer panicked: {e}"));
                return None;
            }
        };
        match outcome {
            Ok(head) => {
                if ledger
                    .metrics
                    .disk_low
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!("the data folder's disk has space again; writing resumed");
                }
                let appended = replies
                    .iter()
                    .any(|(_, o)| matches!(o, Outcome::Appended(_)));
                if let (Some(p), true) = (&me.publisher, appended) {
                    p.head(head.size);
                }
                match &me.cosigner {
                    // A new head: answer once the witnesses cosigned it (or timed out). The batch
                    // is already durable and published; only the answer waits.
                    Some(c) if appended => {
                        c.submit(head, Box::new(move |head| answer(replies, &head)));
                    }
                    _ => answer(replies, &head),
                }
                Some(me)
            }
            Err(BatchError::DiskLow(low)) => {
                // Nothing was written and the in-memory state is unchanged: refuse this batch's
                // new leaves and go on; the next batch checks the disk again.
                if !ledger
                    .metrics
                    .disk_low
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(error = %low, "refusing writes until space is freed on the data folder's disk");
                }
                // Step 0 refused every submission of the batch.
                for (reply, outcome) in replies {
                    if let Outcome::Refused(e) = outcome {
                        let _ = reply.send(Err(e));
                    }
                }
                Some(me)
            }
            Err(BatchError::WriteFailed(e)) => {
                // Nothing was stored and nothing changed in memory: refuse the batch's new
                // leaves (503, retry) and go on.
                ledger
                    .metrics
                    .write_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "writing a batch failed; it was refused and nothing of it was stored");
                let full = matches!(e, StorageError::Io { full: true, .. });
                let head = ledger.head();
                let failed = || LogError::WriteFailed {
                    full,
                    reason: e.to_string(),
                };
                for (reply, outcome) in replies {
                    let _ = reply.send(match outcome {
                        Outcome::Refused(r) => Err(r),
                        // Already durable under the unchanged head: that receipt still holds.
                        Outcome::Duplicate(index) if index < head.size => Ok(Sequenced {
                            index,
                            head: Arc::clone(&head),
                            duplicate: true,
                        }),
                        Outcome::Duplicate(_) | Outcome::Appended(_) => Err(failed()),
                    });
                }
                Some(me)
            }
            Err(BatchError::Stopped) => {
                // Already failed (the reason is recorded); the batch was refused in step 0.
                for (reply, _) in replies {
                    let _ = reply.send(Err(stopped_error()));
                }
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "storage failed while committing a batch; the log stops sequencing until it is restarted");
                ledger.set_failed(e.to_string());
                for (reply, _) in replies {
                    let _ = reply.send(Err(stopped_error()));
                }
                None
            }
        }
    }

    /// Appends `leaves` (consecutive, after the tree of `frontier`) to `frontier`, pushing their
    /// stored hashes onto `new_hashes` (the batch's hashes so far, from stored index
    /// `hashes_start`), reading earlier ones through an overlay of the batch over the store.
    fn hash_leaves(
        &self,
        leaves: &[NewLeaf],
        hashes_start: u64,
        mut new_hashes: Vec<Hash>,
        mut frontier: Frontier,
    ) -> Result<(Vec<Hash>, Frontier), TreeError> {
        let th = self.ledger.tree_hash();
        new_hashes.reserve(leaves.len() * 2 + 8);
        for leaf in leaves {
            let overlay = Overlay {
                store: self.ledger.reader(),
                start: hashes_start,
                new: &new_hashes,
            };
            new_hashes.extend(stored_hashes(th, leaf.index, &leaf.leaf_hash, &overlay)?);
            frontier.push(leaf.leaf_hash);
        }
        Ok((new_hashes, frontier))
    }

    /// Sequences one batch and commits it. Returns each waiter with its outcome, and the head to
    /// answer against (the new one, or the unchanged one when nothing was appended).
    ///
    /// Crash safety, step by step (a crash can happen between any two steps):
    ///
    /// 0. Check the data folder's disk has its free-space floor; if not, refuse the batch's new
    ///    leaves with `storage-full` and write nothing (the next batch checks again, so writing
    ///    resumes by itself when space is freed). *Crash: nothing was written.*
    /// 1. Order and re-check the batch in memory (duplicates, key validity at the final index,
    ///    enrollments earlier in the batch). *Crash: nothing was written; no waiter was answered,
    ///    so clients retry; the store still ends at the last signed checkpoint.*
    /// 2. File the new leaves in the map (SPEC §9: [`crate::map::MapStore::stage`] over the
    ///    in-memory nodes, the map of the stored head, which changes nothing) while computing their stored hashes on this
    ///    thread (reading earlier ones through an overlay of this batch over the store); then sign
    ///    the map leaf committing the map's new root at its own index, the batch's last, and hash
    ///    it in; the new root, in memory. *Crash: as in step 1.*
    /// 3. Sign the checkpoint for the new size and root, in memory. *Crash: the signed checkpoint
    ///    was never stored nor shown to anyone, so no one can hold a checkpoint the store lacks.*
    /// 4. Write the batch's tree to files ([`crate::storage::files`]): its stored hashes at their
    ///    offsets in `hashes`, the touched map keys' new values as one record at the end of
    ///    `map-journal`, and every hash tile and entry bundle the new size completes or
    ///    extends to a temporary file beside its final name under `public/tile/`. *Crash: the
    ///    index's head is the old one, so nothing refers to these bytes; at start recovery cuts
    ///    `hashes` and `map-journal` back to the head and removes every tile and temporary file
    ///    beyond it. An I/O
    ///    error (a full disk too): the same is done at once, the batch's new leaves are refused
    ///    with 503 `storage-full` or `storage-unavailable` (`Retry-After`), the in-memory state
    ///    was never changed, and the next batch writes the same places again.* Crash point
    ///    `files-written`; fault points `write-hashes`, `write-tile`.
    /// 5. Sync `hashes`, `map-journal` and the temporary files (all but partial hash tiles, which
    ///    start rewrites from `hashes` when lost), rename them into place, sync their folders.
    ///    *Crash or I/O error: as in step 4 (a full tile renamed into place is beyond the head
    ///    until step 6, and the next batch that completes it writes it again).* Crash points
    ///    `files-renamed`, `files-synced`; fault point `sync-files`.
    /// 6. Write the leaf-hash and SII indices, enrollments and the new head (size, the map
    ///    journal's length and the signed checkpoint) in ONE atomic index batch, and sync it (fjall:
    ///    one journal record, fsynced). This is the commit point. *Crash: the index's recovery
    ///    replays whole batches and drops a torn last one, so it has the whole batch or none of
    ///    it. None: as in
    ///    step 4. All: every file the head covers was synced in step 5, so the stored tree hashes
    ///    to the stored checkpoint, and the journal up to the head's length holds the map values
    ///    its last map leaf commits
    ///    (the nodes are rebuilt from them and checked against that leaf at start); the log has
    ///    leaves nobody got a receipt for, which a resubmission of the same bytes finds
    ///    (idempotence).* Crash point `index-committed`; fault point `index-commit` (an error
    ///    before the index is called: as in step 4). An error from the index itself stops the
    ///    sequencer (below): fjall is poisoned by a failed journal write or sync and refuses
    ///    every later write.
    /// 7. Record the new checkpoint in the checkpoint lock ([`crate::lock`]: compare, temp file,
    ///    sync, rename, sync the folder). *Crash before the rename: the store is ahead of the lock
    ///    by this batch, whose checkpoint nobody was shown; at start the store's tree is checked
    ///    to hash to the lock's checkpoint at the lock's size and the lock is moved up to the
    ///    store's. Crash after: lock and store agree.* From here on, a store that ever holds
    ///    less than this checkpoint, or other leaves under it, is refused at start. Crash point
    ///    `locked`.
    /// 8. Write `public/checkpoint` (temp file, rename; not synced: the lock and the index hold
    ///    it durably) and delete the partial files of tiles that are now full. *Crash: the static layout shows the previous
    ///    checkpoint (consistent with this one) and keeps redundant partials; start writes the
    ///    head's checkpoint and removes them. An error is logged and the batch stands (the next
    ///    batch writes the file again).* Crash point `checkpoint-published`.
    /// 9. Commit the map's staged nodes in memory (keeping the version they overwrite, for
    ///    lookups still on the old head: [`crate::map`]), publish the new head and registry, then
    ///    (in the caller) answer the waiters.
    ///    *Crash: every answered receipt is durable; restart recovers the same head from disk.*
    ///
    /// On an index error in step 6, or a lock error in step 7, the sequencer stops for good
    /// (fail-stop): the in-memory state may no longer match the store, and the only safe
    /// continuation is a restart, which re-reads and re-checks the store against the lock.
    fn sequence(&mut self, batch: Vec<Submission>) -> (Vec<Reply>, Result<Arc<Head>, BatchError>) {
        let began = Instant::now();
        let th = self.ledger.tree_hash();
        let old_size = self.frontier.size();
        let storage = self.ledger.storage();
        let mut replies = Vec::with_capacity(batch.len());

        // Step 0: still allowed to write (a witness may have shown the log is behind), and the
        // disk's free-space floor.
        if self.ledger.failed() {
            for sub in batch {
                replies.push((sub.reply, Outcome::Refused(stopped_error())));
            }
            return (replies, Err(BatchError::Stopped));
        }
        if let Err(low) = self.ledger.disk_ok() {
            for sub in batch {
                replies.push((sub.reply, Outcome::Refused(LogError::StorageFull(low))));
            }
            return (replies, Err(BatchError::DiskLow(low)));
        }

        // Step 1: order and re-check.
        let mut leaves: Vec<NewLeaf> = Vec::new();
        let mut additions: Vec<MapAddition> = Vec::new();
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut pending: Vec<(u64, Role, VerifierKey)> = Vec::new();
        for sub in batch {
            if let Some(&i) = in_batch.get(&sub.leaf_hash) {
                replies.push((sub.reply, Outcome::Duplicate(i)));
                continue;
            }
            match storage.leaf_index(&sub.leaf_hash) {
                Err(e) => {
                    replies.push((sub.reply, Outcome::Refused(stopped_error())));
                    return (replies, Err(e.into()));
                }
                Ok(Some(i)) if i < old_size => {
                    replies.push((sub.reply, Outcome::Duplicate(i)));
                    continue;
                }
                Ok(_) => {}
            }
            let index = old_size + leaves.len() as u64;
            let keys = BatchKeys {
                registry: &self.registry,
                pending: &pending,
                index,
            };
            if let Err(refusal) = recheck(&sub.leaf, &sub.signers, &keys) {
                replies.push((sub.reply, Outcome::Refused(refusal.into())));
                continue;
            }
            if let Entry::Enroll(e) = sub.leaf.entry() {
                pending.push((index, e.role, e.key.clone()));
            }
            in_batch.insert(sub.leaf_hash, index);
            additions.extend(map::addition(th, index, &sub.leaf_hash, sub.leaf.entry()));
            leaves.push(NewLeaf {
                index,
                bytes: sub.leaf.bytes().to_vec(),
                leaf_hash: sub.leaf_hash,
                sii: sub.leaf.entry().sii().map(|s| s.as_str().to_string()),
                enroll: matches!(sub.leaf.entry(), Entry::Enroll(_)),
            });
            replies.push((sub.reply, Outcome::Appended(index)));
        }
        let dups = replies
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Duplicate(_)))
            .count() as u64;
        self.ledger
            .metrics
            .duplicates
            .fetch_add(dups, std::sync::atomic::Ordering::Relaxed);
        if leaves.is_empty() {
            return (replies, Ok(self.ledger.head()));
        }

        // Step 2: the map update and the entries' stored hashes side by side (they read disjoint
        // state: the map's nodes, the tree's hashes), then the map leaf and its hash.
        let hashes_start = stored_hash_count(old_size);
        let map_store = self.ledger.map();
        let (staged, hashed) = std::thread::scope(|scope| {
            let map_job = scope.spawn(|| map_store.stage(&additions));
            let hashed = self.hash_leaves(&leaves, hashes_start, Vec::new(), self.frontier.clone());
            let staged = match map_job.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the map update panicked".to_string()),
            };
            (staged, hashed)
        });
        let staged = match staged {
            Ok(u) => u,
            Err(e) => return (replies, Err(BatchError::Map(e))),
        };
        let (new_hashes, frontier) = match hashed {
            Ok(h) => h,
            Err(e) => return (replies, Err(BatchError::Tree(e.to_string()))),
        };
        let map_values = staged.values().to_vec();
        let map_index = old_size + leaves.len() as u64;
        let map_leaf = match Leaf::sign(
            Entry::Map(MapLeaf {
                size: map_index,
                root: staged.root(),
            }),
            &self.signer,
        ) {
            Ok(l) => l,
            Err(e) => return (replies, Err(BatchError::Signing(e.to_string()))),
        };
        let map_new_leaf = NewLeaf {
            index: map_index,
            leaf_hash: th.leaf_hash(map_leaf.bytes()),
            bytes: map_leaf.bytes().to_vec(),
            sii: None,
            enroll: false,
        };
        let (new_hashes, frontier) = match self.hash_leaves(
            std::slice::from_ref(&map_new_leaf),
            hashes_start,
            new_hashes,
            frontier,
        ) {
            Ok(h) => h,
            Err(e) => return (replies, Err(BatchError::Tree(e.to_string()))),
        };
        leaves.push(map_new_leaf);
        let new_size = frontier.size();
        let root = frontier.root();

        // Step 3: sign the checkpoint.
        let (signed, checkpoint) = match sign_checkpoint(&self.signer, new_size, root) {
            Ok(c) => c,
            Err(e) => return (replies, Err(BatchError::Signing(e.to_string()))),
        };

        // Steps 4 to 6: the files, written and synced, then the index with the new head.
        let commit = Commit {
            leaves,
            hashes_start,
            hashes: new_hashes,
            size: new_size,
            checkpoint: checkpoint.as_bytes().to_vec(),
            map: map_values,
        };
        let prepared = Instant::now();
        match storage.commit(&commit) {
            Ok(()) => {}
            Err(e @ StorageError::Io { .. }) => return (replies, Err(BatchError::WriteFailed(e))),
            Err(e) => return (replies, Err(e.into())),
        }
        let committed = Instant::now();

        // Step 7: the checkpoint lock.
        if let Err(e) = self.ledger.lock_checkpoint(&commit.checkpoint) {
            return (replies, Err(e.into()));
        }
        crate::fault::crash_point("locked");

        // Step 8: the static layout's checkpoint file, and partial tiles that are full now.
        if let Err(e) = storage.publish(&commit.checkpoint, old_size, new_size) {
            tracing::warn!(error = %e, "publishing the checkpoint file (the next batch writes it again)");
        }
        crate::fault::crash_point("checkpoint-published");
        tracing::debug!(
            entries = commit.leaves.len(),
            prepare_us = prepared.duration_since(began).as_micros() as u64,
            commit_us = committed.duration_since(prepared).as_micros() as u64,
            publish_us = committed.elapsed().as_micros() as u64,
            "batch committed"
        );

        // Step 9: commit the map's staged nodes (lookups on the old head keep reading its map,
        // a kept version), then publish.
        if let Err(e) = self.ledger.map().advance(staged, new_size) {
            return (replies, Err(BatchError::Map(e.to_string())));
        }
        self.ledger
            .cache_hashes(commit.hashes_start, &commit.hashes);
        self.frontier = frontier;
        let registry = if pending.is_empty() {
            None
        } else {
            for (index, role, key) in pending {
                self.registry.add(index, role, key);
            }
            Some(self.registry.clone())
        };
        let head = Head {
            size: new_size,
            root,
            checkpoint: checkpoint.into(),
            signed,
        };
        self.ledger.publish(head, registry);
        self.ledger
            .metrics
            .appended
            .fetch_add(new_size - old_size, std::sync::atomic::Ordering::Relaxed);
        (replies, Ok(self.ledger.head()))
    }
}

/// What a submission is told once the sequencer has stopped on a storage error.
fn stopped_error() -> LogError {
    LogError::StorageFailed("see /healthz for the error".into())
}

/// Answers each waiter of a batch against `head` (which covers every appended leaf).
fn answer(replies: Vec<Reply>, head: &Arc<Head>) {
    for (reply, result) in replies {
        let answer = match result {
            Outcome::Appended(index) => Ok(Sequenced {
                index,
                head: Arc::clone(head),
                duplicate: false,
            }),
            Outcome::Duplicate(index) => Ok(Sequenced {
                index,
                head: Arc::clone(head),
                duplicate: true,
            }),
            Outcome::Refused(e) => Err(e),
        };
        let _ = reply.send(answer);
    }
}

/// The stateful admission re-check at the final index: the keys that signed the entry must still be
/// the enrolled ones (a re-enrollment may have landed since the snapshot); when they are not, the
/// entry is verified again against the keys in force at `index`.
fn recheck(leaf: &Leaf, signers: &Signers, keys: &BatchKeys<'_>) -> Result<(), Refusal> {
    if signers.still_enrolled(keys) {
        return Ok(());
    }
    verify_entry(leaf, keys).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::storage::tiled::TiledStorage;
    use crate::storage::Storage;
    use ledger_core::admission::{admit, Policy};
    use ledger_core::entry::Enroll;
    use ledger_core::problem::ProblemType;
    use ledger_core::sii::Name;
    use ledger_core::testkit::{claim, test_key};
    use ledger_core::tree::{tree_root, verify_inclusion};
    use ledger_core::TreeHash;

    const ORIGIN: &str = "example.org/log";

    /// A ledger over a store in `dir`, and a sequencer for it.
    fn setup(hash: TreeHash, dir: &tempfile::TempDir) -> (Arc<Ledger>, Sequencer, Arc<SignerKey>) {
        let storage: Arc<dyn Storage> =
            Arc::new(TiledStorage::open(dir.path(), 1 << 20, false).expect("store"));
        let signer = Arc::new(test_key(ORIGIN));
        let ledger = Arc::new(
            Ledger::open(
                storage,
                &signer,
                Some(hash),
                Policy::default(),
                Arc::new(Metrics::default()),
                crate::ledger::Safeguards::default(),
            )
            .expect("open"),
        );
        let seq = Sequencer::new(Arc::clone(&ledger), Arc::clone(&signer)).expect("sequencer");
        (ledger, seq, signer)
    }

    fn enroll_leaf(log: &SignerKey, role: Role, key: &SignerKey, time: u64) -> Leaf {
        Leaf::sign(
            Entry::Enroll(Enroll {
                role,
                name: Name::parse(key.name()).expect("name"),
                key: key.verifier(),
                time,
            }),
            log,
        )
        .expect("sign")
    }

    /// A submission as the HTTP path would make it, with the signers admission found (or, for
    /// `signers`, those given explicitly — to model a snapshot taken before a re-enrollment).
    fn submission(
        ledger: &Ledger,
        leaf: &Leaf,
        signers: Signers,
    ) -> (Submission, oneshot::Receiver<Result<Sequenced, LogError>>) {
        let (reply, rx) = oneshot::channel();
        (
            Submission {
                leaf: leaf.clone(),
                leaf_hash: ledger.tree_hash().leaf_hash(leaf.bytes()),
                signers,
                reply,
            },
            rx,
        )
    }

    fn log_signers(ledger: &Ledger) -> Signers {
        Signers {
            role: None,
            entry: ledger.vkey().clone(),
            attestation: None,
        }
    }

    fn msp_signers(key: &SignerKey) -> Signers {
        Signers {
            role: Some(Role::Msp),
            entry: key.verifier(),
            attestation: None,
        }
    }

    fn run(seq: &mut Sequencer, subs: Vec<Submission>) -> Arc<Head> {
        let (replies, head) = seq.sequence(subs);
        let head = head.expect("commit");
        for (reply, outcome) in replies {
            let answer = match outcome {
                Outcome::Appended(index) => Ok(Sequenced {
                    index,
                    head: Arc::clone(&head),
                    duplicate: false,
                }),
                Outcome::Duplicate(index) => Ok(Sequenced {
                    index,
                    head: Arc::clone(&head),
                    duplicate: true,
                }),
                Outcome::Refused(e) => Err(e),
            };
            let _ = reply.send(answer);
        }
        head
    }

    fn answer(rx: oneshot::Receiver<Result<Sequenced, LogError>>) -> Result<Sequenced, LogError> {
        rx.blocking_recv().expect("answered")
    }

    #[test]
    fn enrollment_earlier_in_the_same_batch_counts_and_replaced_keys_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ledger, mut seq, log) = setup(TreeHash::Blake3, &dir);
        let t = ledger_core::time::now_unix();
        let k1 = test_key("msp-a.example");
        let k2 = test_key("msp-b.example");
        let k1b = SignerKey::generate(
            "msp-a.example",
            ledger_core::key::KeyAlg::Ed25519,
            &mut rand_core::OsRng,
        )
        .expect("key");

        // Batch 1: enroll k1, then a claim by k1 — in the same batch.
        let e1 = enroll_leaf(&log, Role::Msp, &k1, t);
        let c1 = claim(
            &k1,
            "tel:+14155550100",
            "mimi://msp-a.example/u/a",
            t,
            &[],
            None,
        );
        let (s1, r1) = submission(&ledger, &e1, log_signers(&ledger));
        let (s2, r2) = submission(&ledger, &c1, msp_signers(&k1));
        // A claim by k2, which is never enrolled.
        let c2 = claim(
            &k2,
            "tel:+14155550101",
            "mimi://msp-b.example/u/b",
            t,
            &[],
            None,
        );
        let (s3, r3) = submission(&ledger, &c2, msp_signers(&k2));
        // The same claim twice in one batch.
        let (s4, r4) = submission(&ledger, &c1, msp_signers(&k1));
        let head = run(&mut seq, vec![s1, s2, s3, s4]);
        // Two leaves and the batch's map leaf.
        assert_eq!(head.size, 3);
        assert_eq!(answer(r1).expect("enroll").index, 0);
        let a2 = answer(r2).expect("claim");
        assert_eq!((a2.index, a2.duplicate), (1, false));
        assert_eq!(
            crate::problem::ApiError::from(answer(r3).expect_err("unenrolled")).kind,
            ProblemType::UnknownSigner
        );
        let a4 = answer(r4).expect("duplicate");
        assert_eq!((a4.index, a4.duplicate), (1, true));

        // Batch 2: re-enroll msp-a with k1b; a claim by the old k1 later in the batch is refused,
        // one by k1b is accepted, and a resubmission of a stored leaf answers its index.
        let e2 = enroll_leaf(&log, Role::Msp, &k1b, t + 1);
        let old = claim(
            &k1,
            "tel:+14155550102",
            "mimi://msp-a.example/u/c",
            t,
            &[],
            None,
        );
        let new = claim(
            &k1b,
            "tel:+14155550102",
            "mimi://msp-a.example/u/c",
            t,
            &[],
            None,
        );
        let (s1, r1) = submission(&ledger, &e2, log_signers(&ledger));
        let (s2, r2) = submission(&ledger, &old, msp_signers(&k1));
        let (s3, r3) = submission(&ledger, &new, msp_signers(&k1b));
        let (s4, r4) = submission(&ledger, &c1, msp_signers(&k1));
        let head = run(&mut seq, vec![s1, s2, s3, s4]);
        assert_eq!(head.size, 6);
        assert_eq!(answer(r1).expect("re-enroll").index, 3);
        assert_eq!(
            crate::problem::ApiError::from(answer(r2).expect_err("old key")).kind,
            ProblemType::UnknownSigner
        );
        assert_eq!(answer(r3).expect("new key").index, 4);
        let a4 = answer(r4).expect("stored duplicate");
        assert_eq!((a4.index, a4.duplicate), (1, true));

        // The published registry now has both enrollments, by index.
        let reg = ledger.registry();
        assert_eq!(
            reg.key_at(Role::Msp, "msp-a.example", 3),
            Some(&k1.verifier())
        );
        assert_eq!(
            reg.key_at(Role::Msp, "msp-a.example", 4),
            Some(&k1b.verifier())
        );
        // And admission against the new snapshot refuses the old key outright.
        let again = claim(
            &k1,
            "tel:+14155550103",
            "mimi://msp-a.example/u/d",
            t,
            &[],
            None,
        );
        assert!(admit(again.bytes(), &reg.at(u64::MAX), &Policy::default(), t).is_err());
    }

    #[tokio::test]
    async fn a_full_queue_is_overloaded_and_a_lone_submission_is_committed_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ledger, seq, log) = setup(TreeHash::Blake3, &dir);
        let (tx, rx) = mpsc::channel(2);
        let handle = SequencerHandle { tx };
        let (_stop, stop_rx) = watch::channel(false);
        let config = BatchConfig {
            max_entries: 256,
            // Far longer than the test may take: a lone submission must not wait for it.
            max_wait: std::time::Duration::from_secs(60),
            queue: 2,
        };
        let task = tokio::spawn(seq.run(rx, config, stop_rx));

        let p1 = handle.reserve().expect("first slot");
        let p2 = handle.reserve().expect("second slot");
        assert_eq!(handle.depth(), 2);
        let full = crate::problem::ApiError::from(handle.reserve().expect_err("queue full"));
        assert_eq!(full.kind, ProblemType::Overloaded);
        assert_eq!(full.retry_after, Some(1));
        drop((p1, p2));
        assert_eq!(handle.depth(), 0);

        let t = ledger_core::time::now_unix();
        let e = enroll_leaf(&log, Role::Msp, &test_key("msp-a.example"), t);
        let (sub, answer) = submission(&ledger, &e, log_signers(&ledger));
        let started = Instant::now();
        handle.reserve().expect("slot").send(sub);
        let done = tokio::time::timeout(std::time::Duration::from_secs(20), answer)
            .await
            .expect("answered in time")
            .expect("sent")
            .expect("appended");
        assert_eq!((done.index, done.head.size), (0, 2));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        drop(handle);
        task.await
            .expect("sequencer ends when every handle is gone");
    }

    #[test]
    fn batches_extend_the_stored_tree_and_the_head_is_durable() {
        for hash in [TreeHash::Blake3, TreeHash::Sha256] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (ledger, mut seq, log) = setup(hash, &dir);
            let t = ledger_core::time::now_unix();
            let msp = test_key("msp-a.example");
            let e = enroll_leaf(&log, Role::Msp, &msp, t);
            let (s, _r) = submission(&ledger, &e, log_signers(&ledger));
            run(&mut seq, vec![s]);
            let map_leaf = |size: u64| {
                Leaf::parse(
                    &ledger
                        .storage()
                        .leaf(size - 1)
                        .expect("read")
                        .expect("stored"),
                )
                .expect("parses")
            };
            let mut leaves = vec![e.clone(), map_leaf(2)];
            // Batches of uneven sizes, so that subtrees complete inside and across batches.
            for (b, n) in [1usize, 2, 3, 5, 8, 13, 21, 40].into_iter().enumerate() {
                let mut subs = Vec::new();
                for i in 0..n {
                    let c = claim(
                        &msp,
                        &format!("tel:+1415555{:04}", b * 100 + i),
                        "mimi://msp-a.example/u/x",
                        t,
                        &[],
                        None,
                    );
                    leaves.push(c.clone());
                    subs.push(submission(&ledger, &c, msp_signers(&msp)).0);
                }
                let head = run(&mut seq, subs);
                leaves.push(map_leaf(head.size));
                assert_eq!(head.size, leaves.len() as u64);
                // Every batch ends in a map leaf at its own index, whose root is the map rebuilt
                // from scratch from every leaf before it, and the stored nodes are that map's.
                let mut rebuilt = ledger_core::map::MapTree::new(hash);
                for (i, l) in leaves.iter().enumerate() {
                    let lh = hash.leaf_hash(l.bytes());
                    if let Some(a) = ledger_core::map::addition(hash, i as u64, &lh, l.entry()) {
                        rebuilt.apply(&[a]).expect("rebuild");
                    }
                }
                let Entry::Map(m) = leaves.last().expect("leaf").entry() else {
                    panic!("the batch does not end in a map leaf");
                };
                assert_eq!((m.size, m.root), (head.size - 1, rebuilt.root()));
                assert_eq!(ledger.map().root_at(head.size).expect("root"), m.root);
                assert_eq!(ledger.map().values(), rebuilt.values());
                // … and the stored values rebuild it.
                let (_, root) = crate::map::MapStore::load(
                    hash,
                    &ledger.storage().map_values().expect("values"),
                    head.size,
                )
                .expect("load");
                assert_eq!(root, m.root);
                // The root from the stored hashes equals a fresh in-memory tree's.
                let mut mem = ledger_core::tree::MemoryHashStore::new(hash);
                for l in &leaves {
                    mem.append_leaf(l.bytes());
                }
                assert_eq!(head.root, mem.root());
                assert_eq!(
                    tree_root(hash, head.size, &ledger.reader()).expect("root"),
                    head.root
                );
                assert_eq!(head.signed.checkpoint.root, head.root);
                let stored = ledger.storage().head().expect("head").expect("some");
                assert_eq!(stored.0, head.size);
                assert_eq!(stored.1, head.checkpoint.as_bytes());
                // The hash cache agrees with the store, both as extended batch by batch and as
                // loaded afresh.
                let count = stored_hash_count(head.size);
                let all: Vec<u64> = (0..count).collect();
                let plain = StoreReader(ledger.storage(), None)
                    .read_hashes(&all)
                    .expect("plain");
                assert_eq!(ledger.reader().read_hashes(&all).expect("cached"), plain);
                let fresh =
                    crate::ledger::HashCache::load(ledger.storage(), head.size).expect("load");
                assert_eq!(
                    StoreReader(ledger.storage(), Some(&fresh))
                        .read_hashes(&all)
                        .expect("loaded"),
                    plain
                );
                // Every leaf has a valid inclusion proof against the new head.
                for (i, l) in leaves.iter().enumerate() {
                    let proof = ledger.inclusion(i as u64, head.size).expect("proof");
                    verify_inclusion(
                        hash,
                        i as u64,
                        head.size,
                        &hash.leaf_hash(l.bytes()),
                        &proof,
                        &head.root,
                    )
                    .expect("verifies");
                }
            }
        }
    }
}
