//! The admission pool: the stateless checks of every submission (`ledger_core::admission`:
//! syntax, canonical form, policy, clock, signatures), run on a few OS threads, with the
//! signatures of all the submissions pending at once verified in **one batch**
//! (`ledger_core::admission::admit_batch`, the one signature rule of `ledger_core::signature`).
//!
//! Each worker takes every submission waiting (up to [`MAX_BATCH`]) when it becomes free, so a
//! quiet log checks each submission alone, at once, and a busy one checks them in batches at
//! about half a signature check each. The verdicts are exactly those of `admit` one by one:
//! batch and single verification are the same rule, and a failed batch names its bad
//! signatures, so one bad submission never refuses its neighbours.
//!
//! The queue needs no bound of its own: a submission enters only with a reserved sequencer slot
//! (`SequencerHandle::reserve`), which bounds the submissions being checked.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ledger_core::admission::{admit_batch, KeyRegistry, Policy, Refusal, Signers};
use ledger_core::entry::Leaf;
use ledger_core::time::now_unix;
use tokio::sync::oneshot;

/// The most submissions one batch verifies: beyond this the batch equation gains little, and a
/// failed batch's fallback (one check per signature) stays short.
pub const MAX_BATCH: usize = 64;

/// What admission answers for one submission.
pub type Admitted = Result<(Leaf, Signers), Refusal>;

/// One submission waiting for admission.
struct Pending {
    bytes: Vec<u8>,
    registry: Arc<KeyRegistry>,
    policy: Policy,
    reply: oneshot::Sender<Admitted>,
}

/// The admission threads and their queue.
#[derive(Debug, Clone)]
pub struct AdmissionPool {
    tx: mpsc::Sender<Pending>,
}

impl AdmissionPool {
    /// Starts `threads` workers (at least one) named `name-<i>`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<AdmissionPool> {
        let (tx, rx) = mpsc::channel::<Pending>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    // The lock is held only while taking one batch, not while checking it.
                    let batch = match rx.lock() {
                        Ok(guard) => take_batch(&guard),
                        Err(_) => return,
                    };
                    match batch {
                        Some(batch) => admit_pending(batch),
                        None => return, // every sender is gone
                    }
                })?;
        }
        Ok(AdmissionPool { tx })
    }

    /// A pool with one worker per available CPU.
    pub fn per_cpu(name: &str) -> std::io::Result<AdmissionPool> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        AdmissionPool::new(name, n)
    }

    /// Admits `bytes` against `registry` (a snapshot; the sequencer re-checks the stateful parts
    /// at the final index) and `policy` at the clock of the batch. `None` when the pool stopped.
    pub async fn admit(
        &self,
        bytes: Vec<u8>,
        registry: Arc<KeyRegistry>,
        policy: Policy,
    ) -> Option<Admitted> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending {
                bytes,
                registry,
                policy,
                reply,
            })
            .ok()?;
        answer.await.ok()
    }
    /// Admits every leaf of `leaves` (a bundle) as [`AdmissionPool::admit`] admits one: all are
    /// queued before the first answer is awaited, so the workers take them in batches of up to
    /// [`MAX_BATCH`] and batch-verify their signatures. The verdicts come back in `leaves`'
    /// order. `None` when the pool stopped.
    pub async fn admit_many(
        &self,
        leaves: Vec<Vec<u8>>,
        registry: Arc<KeyRegistry>,
        policy: Policy,
    ) -> Option<Vec<Admitted>> {
        let mut answers = Vec::with_capacity(leaves.len());
        for bytes in leaves {
            let (reply, answer) = oneshot::channel();
            self.tx
                .send(Pending {
                    bytes,
                    registry: Arc::clone(&registry),
                    policy,
                    reply,
                })
                .ok()?;
            answers.push(answer);
        }
        let mut verdicts = Vec::with_capacity(answers.len());
        for answer in answers {
            verdicts.push(answer.await.ok()?);
        }
        Some(verdicts)
    }
}

/// Blocks for one submission, then takes every other one already waiting, up to [`MAX_BATCH`].
fn take_batch(rx: &mpsc::Receiver<Pending>) -> Option<Vec<Pending>> {
    let first = rx.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Admits one batch and answers each submission. Submissions of one policy and registry snapshot
/// share a batch call; the queue is FIFO, so the last snapshot is the newest, and a newer
/// snapshot only knows more enrollments (which the sequencer re-checks at the final index).
fn admit_pending(batch: Vec<Pending>) {
    let now = now_unix();
    let Some(last) = batch.last() else {
        return;
    };
    let registry = Arc::clone(&last.registry);
    let policy = last.policy;
    let (same, other): (Vec<Pending>, Vec<Pending>) =
        batch.into_iter().partition(|p| p.policy == policy);
    let bytes: Vec<&[u8]> = same.iter().map(|p| p.bytes.as_slice()).collect();
    let verdicts = admit_batch(&bytes, &registry.at(u64::MAX), &policy, now);
    for (p, v) in same.into_iter().zip(verdicts) {
        let _ = p.reply.send(v);
    }
    // A policy change between two submissions of one batch (not done by this log, but cheap to
    // get right): each of the others alone, with its own.
    for p in other {
        let v = admit_batch(&[&p.bytes], &p.registry.at(u64::MAX), &p.policy, now);
        if let Some(v) = v.into_iter().next() {
            let _ = p.reply.send(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::entry::Role;
    use ledger_core::testkit::taming::shaped_claims;
    use ledger_core::testkit::MemLog;
    use ledger_core::TreeHash;

    /// The edge cases of "Taming the many EdDSAs" as submitted leaves (ledger-core's testkit
    /// `taming`): the log's admission pool gives each the one rule's verdict, whether it is
    /// checked alone or in one batch with all the others, and exactly `admit`'s verdict.
    #[tokio::test]
    async fn taming_shapes_get_the_rules_verdict_from_the_admission_pool() {
        let mut log = MemLog::new("example.com/log", TreeHash::Blake3);
        let claims = shaped_claims(now_unix());
        for c in &claims {
            log.enroll_key(Role::Msp, &c.key.verifier);
        }
        let registry = Arc::new(log.registry().clone());
        let policy = Policy::default();
        // Alone: one worker, one submission at a time.
        let pool = AdmissionPool::new("test-admission", 1).expect("pool");
        for c in &claims {
            let got = pool
                .admit(c.leaf.clone(), Arc::clone(&registry), policy)
                .await
                .expect("pool runs");
            assert_eq!(
                got.is_ok(),
                c.valid,
                "{:?} torsion={}: {got:?}",
                c.shape,
                c.torsion
            );
            let single =
                ledger_core::admission::admit(&c.leaf, &registry.at(u64::MAX), &policy, now_unix());
            assert_eq!(got.map(|(_, s)| s), single.map(|(_, s)| s));
        }
        // Together: every pending submission in one batch of the worker.
        let (batch, answers): (Vec<Pending>, Vec<oneshot::Receiver<Admitted>>) = claims
            .iter()
            .map(|c| {
                let (reply, answer) = oneshot::channel();
                let p = Pending {
                    bytes: c.leaf.clone(),
                    registry: Arc::clone(&registry),
                    policy,
                    reply,
                };
                (p, answer)
            })
            .unzip();
        admit_pending(batch);
        for (c, a) in claims.iter().zip(answers) {
            let got = a.await.expect("answered");
            assert_eq!(got.is_ok(), c.valid, "{:?} in a batch: {got:?}", c.shape);
        }
    }
}
