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
use ledger_core::entry::{Entry, Leaf, Role};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::tree::{stored_hash_count, stored_hashes, Frontier, HashReader, TreeError};
use ledger_core::Hash;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::BatchConfig;
use crate::ledger::{sign_checkpoint, Head, Ledger, StoreReader};
use crate::problem::ApiError;
use crate::storage::{Commit, NewLeaf, StorageError};

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
    pub reply: oneshot::Sender<Result<Sequenced, ApiError>>,
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
    pub fn reserve(&self) -> Result<mpsc::OwnedPermit<Submission>, ApiError> {
        self.tx.clone().try_reserve_owned().map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                ApiError::overloaded("the submission queue is full; retry later")
            }
            mpsc::error::TrySendError::Closed(_) => {
                ApiError::overloaded("the sequencer is not running")
            }
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
) -> Result<(SequencerHandle, tokio::task::JoinHandle<()>), ApiError> {
    let (tx, rx) = mpsc::channel(config.queue);
    let sequencer = Sequencer::new(ledger, signer)?;
    let task = tokio::spawn(sequencer.run(rx, config, shutdown));
    Ok((SequencerHandle { tx }, task))
}

/// The single writer: in-memory tree state and registry as of the last durable head.
pub struct Sequencer {
    ledger: Arc<Ledger>,
    signer: Arc<SignerKey>,
    frontier: Frontier,
    registry: KeyRegistry,
}

/// A waiter and what to tell it.
type Reply = (oneshot::Sender<Result<Sequenced, ApiError>>, Outcome);

/// One submission's fate within a batch.
enum Outcome {
    /// Appended at this index (new leaf).
    Appended(u64),
    /// Already stored, or earlier in this batch, at this index.
    Duplicate(u64),
    /// Refused by the stateful checks.
    Refused(ApiError),
}

/// Hashes of this batch not yet in the store, over the store: what [`stored_hashes`] reads while
/// the batch is being built.
struct Overlay<'a> {
    store: StoreReader<'a>,
    start: u64,
    new: &'a [Hash],
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
    pub fn new(ledger: Arc<Ledger>, signer: Arc<SignerKey>) -> Result<Sequencer, ApiError> {
        let head = ledger.head();
        let frontier = Frontier::from_reader(ledger.tree_hash(), head.size, &ledger.reader())
            .map_err(ApiError::internal)?;
        let registry = (*ledger.registry()).clone();
        Ok(Sequencer {
            ledger,
            signer,
            frontier,
            registry,
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
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    _ => break,
                }
            }
            let n = batch.len();
            match self.commit_off_runtime(batch).await {
                Some(me) => {
                    self = me;
                    self.ledger.metrics.batch(n, started.elapsed());
                }
                None => {
                    // Fail-stop: answer everything still queued and refuse new work.
                    rx.close();
                    while let Ok(s) = rx.try_recv() {
                        let _ = s
                            .reply
                            .send(Err(ApiError::overloaded("the log stopped on a storage error")));
                    }
                    return;
                }
            }
        }
    }

    /// Runs [`Sequencer::commit`] on a blocking thread (it syncs to disk) and answers the waiters.
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
                ledger.set_failed();
                return None;
            }
        };
        match outcome {
            Ok(head) => {
                for (reply, result) in replies {
                    let answer = match result {
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
                Some(me)
            }
            Err(e) => {
                tracing::error!(error = %e, "storage failed while committing a batch; the log stops sequencing");
                ledger.set_failed();
                for (reply, _) in replies {
                    let _ = reply.send(Err(ApiError::overloaded(
                        "the log stopped on a storage error",
                    )));
                }
                None
            }
        }
    }

    /// Sequences one batch and commits it. Returns each waiter with its outcome, and the head to
    /// answer against (the new one, or the unchanged one when nothing was appended).
    ///
    /// Crash safety, step by step (a crash can happen between any two steps):
    ///
    /// 1. Order and re-check the batch in memory (duplicates, key validity at the final index,
    ///    enrollments earlier in the batch). *Crash: nothing was written; no waiter was answered,
    ///    so clients retry; the store still ends at the last signed checkpoint.*
    /// 2. Compute the new leaves' stored hashes (reading earlier ones through an overlay of this
    ///    batch over the store) and the new root, in memory. *Crash: as in step 1.*
    /// 3. Sign the checkpoint for the new size and root, in memory. *Crash: the signed checkpoint
    ///    was never stored nor shown to anyone, so no one can hold a checkpoint the store lacks.*
    /// 4. Write leaves, hashes, leaf-hash and SII indices, enrollments and the checkpoint in ONE
    ///    atomic sled batch. *Crash: sled recovers either the whole batch or none of it, so the
    ///    stored tree always hashes to the stored checkpoint; no waiter was answered yet.*
    /// 5. Sync the store to disk (`flush`). *Crash before it returns: as in step 4 — the batch is
    ///    atomic; if it survived, the log simply has leaves nobody got a receipt for, which a
    ///    resubmission of the same bytes finds (idempotence).*
    /// 6. Publish the new head and registry in memory, then (in the caller) answer the waiters.
    ///    *Crash: every answered receipt is durable; restart recovers the same head from disk.*
    ///
    /// On a storage error in step 4 or 5 the sequencer stops for good (fail-stop): the in-memory
    /// state may no longer match the store, and the only safe continuation is a restart, which
    /// re-reads and re-checks the store.
    fn sequence(
        &mut self,
        batch: Vec<Submission>,
    ) -> (Vec<Reply>, Result<Arc<Head>, StorageError>) {
        let th = self.ledger.tree_hash();
        let old_size = self.frontier.size();
        let storage = self.ledger.storage();

        // Step 1: order and re-check.
        let mut replies = Vec::with_capacity(batch.len());
        let mut leaves: Vec<NewLeaf> = Vec::new();
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut pending: Vec<(u64, Role, VerifierKey)> = Vec::new();
        for sub in batch {
            if let Some(&i) = in_batch.get(&sub.leaf_hash) {
                replies.push((sub.reply, Outcome::Duplicate(i)));
                continue;
            }
            match storage.leaf_index(&sub.leaf_hash) {
                Err(e) => {
                    replies.push((sub.reply, Outcome::Refused(ApiError::overloaded("storage error"))));
                    return (replies, Err(e));
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

        // Step 2: stored hashes and the new root.
        let hashes_start = stored_hash_count(old_size);
        let mut new_hashes: Vec<Hash> = Vec::with_capacity(leaves.len() * 2 + 8);
        let mut frontier = self.frontier.clone();
        for leaf in &leaves {
            let overlay = Overlay {
                store: StoreReader(storage),
                start: hashes_start,
                new: &new_hashes,
            };
            match stored_hashes(th, leaf.index, &leaf.leaf_hash, &overlay) {
                Ok(hs) => new_hashes.extend(hs),
                Err(e) => {
                    return (replies, Err(StorageError::Db(format!("tree hashes: {e}"))));
                }
            }
            frontier.push(leaf.leaf_hash);
        }
        let new_size = frontier.size();
        let root = frontier.root();

        // Step 3: sign the checkpoint.
        let checkpoint = match sign_checkpoint(&self.signer, new_size, root) {
            Ok(c) => c,
            Err(e) => return (replies, Err(StorageError::Db(format!("signing: {}", e.detail)))),
        };

        // Steps 4 and 5: one atomic batch, then sync.
        let commit = Commit {
            leaves,
            hashes_start,
            hashes: new_hashes,
            size: new_size,
            checkpoint: checkpoint.as_bytes().to_vec(),
        };
        if let Err(e) = storage.commit(&commit) {
            return (replies, Err(e));
        }

        // Step 6: publish.
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
        };
        self.ledger.publish(head, registry);
        self.ledger.metrics.appended.fetch_add(
            new_size - old_size,
            std::sync::atomic::Ordering::Relaxed,
        );
        (replies, Ok(self.ledger.head()))
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
