//! Witness cosignatures (C2SP tlog-witness, SPEC §7): after the sequencer has made a batch durable
//! and published its log-signed checkpoint, the *collector* asks every configured witness, in
//! parallel and each within the configured timeout, to cosign it (`POST <witness>/add-checkpoint`,
//! with a consistency proof from the size the witness cosigned last, retrying from the witness's
//! size on `409`). The checkpoint is then republished as the same note plus the `cosignature/v1`
//! lines that verify under each witness key, so `/checkpoint`, receipts and lookups carry it.
//!
//! **Quorum not met.** A witness that is down, slow or refusing never holds the log back for
//! longer than the timeout: the waiters of the batch get their receipts with the cosignatures that
//! did arrive (possibly fewer than the quorum, possibly none). The collector keeps asking the
//! missing witnesses in the background (every [`WitnessConfig::retry`]) and republishes the
//! checkpoint as soon as more cosignatures arrive, so the next `/checkpoint`, lookup or receipt
//! carries them. A client that requires the quorum refuses a checkpoint with fewer cosignatures at
//! its witness step (SPEC §6 step 1) and can simply retry later.
//!
//! Cosigning runs in its own task, one round at a time (a witness accepts checkpoints of one log
//! only in order); when batches are committed faster than witnesses answer, the collector cosigns
//! only the newest head and answers every waiter with it (each waiter's leaf is covered by it).
//! With no witness configured no collector runs and the sequencer answers at once, as before.

use std::sync::Arc;
use std::time::Duration;

pub mod client;

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::key::VerifierKey;
use ledger_core::note::NoteSignature;
use ledger_core::time::now_unix;
use ledger_core::tree::prove_consistency;
use ledger_core::trust::{parse_witness_key, TrustedLog};
use serde::Deserialize;
use tokio::sync::mpsc;

use self::client::{
    cosignature_from_gossip, http_client, request_cosignature_with_retry, WitnessClientError,
};
use crate::ledger::{Head, Ledger};

/// Default time one witness gets to answer one round (including 409 retries), in ms.
pub const DEFAULT_WITNESS_TIMEOUT_MS: u64 = 2000;
/// Most `add-checkpoint` requests per witness per round (the first, then 409 retries).
pub const MAX_ATTEMPTS: usize = 3;

/// One witness: where to reach it and the key its cosignatures must verify under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessSpec {
    /// Base URL; `add-checkpoint` is posted to `<url>/add-checkpoint`.
    pub url: String,
    /// Its Ed25519 cosignature (`0x04`) verifier key.
    pub vkey: VerifierKey,
}

/// A `[[witness]]` table of the TOML file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessEntry {
    /// See [`WitnessSpec::url`].
    pub url: String,
    /// See [`WitnessSpec::vkey`], as the verifier key string.
    pub vkey: String,
}

impl WitnessSpec {
    /// Checks a URL and verifier key: the URL is `http(s)://…`, the key a cosignature key.
    pub fn new(url: &str, vkey: &str) -> Result<WitnessSpec, String> {
        let url = url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "witness URL {url:?} must start with http:// or https://"
            ));
        }
        let key = parse_witness_key(vkey).map_err(|e| e.to_string())?;
        Ok(WitnessSpec {
            url: url.to_string(),
            vkey: key,
        })
    }

    /// Parses the `--witness URL=VKEY` flag (split at the first `=`: the URL must not hold one).
    pub fn parse_flag(s: &str) -> Result<WitnessSpec, String> {
        let (url, vkey) = s
            .split_once('=')
            .ok_or_else(|| format!("--witness {s:?}: expected URL=VKEY"))?;
        WitnessSpec::new(url, vkey)
    }
}

/// The witnesses a log asks, how many cosignatures it aims for, and how long it waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessConfig {
    /// The witnesses, in configuration order (also the order of `/v1/info`).
    pub witnesses: Vec<WitnessSpec>,
    /// How many cosignatures a checkpoint should carry (published in `/v1/info`; clients copy it
    /// into their trust file). At most `witnesses.len()`.
    pub quorum: usize,
    /// The longest one witness may take per round; a witness that does not answer in time is
    /// skipped for that round and retried in the background.
    pub timeout: Duration,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        WitnessConfig {
            witnesses: Vec::new(),
            quorum: 0,
            timeout: Duration::from_millis(DEFAULT_WITNESS_TIMEOUT_MS),
        }
    }
}

impl WitnessConfig {
    /// The log as a client that copies `/v1/info` into its trust file trusts it: the collector
    /// checks its cosigned checkpoints with the same SPEC §6 step 1 as that client.
    pub fn trusted_log(&self, log_key: VerifierKey, hash: ledger_core::TreeHash) -> TrustedLog {
        TrustedLog {
            log_key,
            hash,
            witnesses: self.witnesses.iter().map(|w| w.vkey.clone()).collect(),
            quorum: self.quorum,
            max_age_s: None,
        }
    }

    /// The pause between background rounds while some witness's cosignature is missing.
    pub fn retry(&self) -> Duration {
        self.timeout.max(Duration::from_millis(500))
    }
}

/// What the collector does with the cosigned head: answer the batch's waiters.
pub type Answer = Box<dyn FnOnce(Arc<Head>) + Send>;

struct Job {
    head: Arc<Head>,
    answer: Answer,
}

/// The sequencer's side of the collector.
#[derive(Clone, Debug)]
pub struct CosignerHandle {
    tx: mpsc::UnboundedSender<Job>,
}

impl CosignerHandle {
    /// Hands a durable, published head and its waiters to the collector. If the collector has
    /// stopped, the waiters are answered at once with `head` as it is.
    pub fn submit(&self, head: Arc<Head>, answer: Answer) {
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { head, answer }) {
            (job.answer)(job.head);
        }
    }
}

/// One witness's state as the log knows it.
struct WitnessState {
    spec: WitnessSpec,
    /// The size this witness cosigned last (0 before the first; learnt from 409s too).
    last_size: u64,
}

/// The checkpoint being cosigned and the cosignatures gathered so far (one slot per witness).
struct Round {
    base: SignedCheckpoint,
    sigs: Vec<Option<Vec<NoteSignature>>>,
}

/// Starts the collector for `config.witnesses` (which must not be empty). It first cosigns the
/// current head, then every head handed to it; it stops when every handle is dropped (after
/// answering what is queued).
pub fn spawn(
    ledger: Arc<Ledger>,
    config: WitnessConfig,
) -> (CosignerHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = CosignerHandle { tx };
    handle.submit(ledger.head(), Box::new(|_| {}));
    let task = tokio::spawn(run(ledger, config, rx));
    (handle, task)
}

async fn run(ledger: Arc<Ledger>, config: WitnessConfig, mut rx: mpsc::UnboundedReceiver<Job>) {
    let http = http_client(config.timeout);
    let trusted = config.trusted_log(ledger.vkey().clone(), ledger.tree_hash());
    let mut witnesses: Vec<WitnessState> = config
        .witnesses
        .iter()
        .map(|spec| WitnessState {
            spec: spec.clone(),
            last_size: 0,
        })
        .collect();
    let mut round: Option<Round> = None;
    let mut carried: Vec<Job> = Vec::new();
    loop {
        let incomplete = round
            .as_ref()
            .is_some_and(|r| r.sigs.iter().any(Option::is_none));
        let mut jobs = std::mem::take(&mut carried);
        if jobs.is_empty() {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(j) => jobs.push(j),
                    None => break,
                },
                _ = tokio::time::sleep(config.retry()), if incomplete => {}
            }
        }
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        if let Some(newest) = jobs.iter().map(|j| &j.head).max_by_key(|h| h.size) {
            let newer = round
                .as_ref()
                .is_none_or(|r| newest.size > r.base.checkpoint.size);
            if newer {
                round = Some(Round {
                    base: newest.signed.clone(),
                    sigs: vec![None; witnesses.len()],
                });
            }
        }
        let Some(r) = round.as_mut() else {
            continue;
        };
        let gained = if jobs.is_empty() {
            // A background retry gives way at once to a new head, whose waiters must not wait
            // for a witness that is still down.
            tokio::select! {
                g = collect(&ledger, &http, &config, &mut witnesses, r) => g,
                job = rx.recv() => match job {
                    Some(j) => {
                        carried.push(j);
                        continue;
                    }
                    None => break,
                },
            }
        } else {
            collect(&ledger, &http, &config, &mut witnesses, r).await
        };
        let cosigned = cosigned_checkpoint(r);
        let have = r.sigs.iter().filter(|s| s.is_some()).count();
        let quorum_met = trusted.verify(&cosigned, now_unix()).is_ok();
        let head = if gained || !jobs.is_empty() {
            ledger.publish_cosigned(cosigned.clone())
        } else {
            None
        };
        if gained {
            tracing::info!(
                size = r.base.checkpoint.size,
                cosignatures = have,
                quorum = config.quorum,
                "published the cosigned checkpoint"
            );
        }
        if !quorum_met && !jobs.is_empty() {
            tracing::warn!(
                size = r.base.checkpoint.size,
                cosignatures = have,
                quorum = config.quorum,
                "witness quorum not met; answering with the cosignatures gathered and retrying in the background"
            );
        }
        if jobs.is_empty() {
            continue;
        }
        let head = match head {
            Some(h) => h,
            None => match Head::from_signed(cosigned) {
                Some(h) => Arc::new(h),
                None => ledger.head(),
            },
        };
        for job in jobs {
            // Every job's head is at most as large as the round's, which covers its leaves.
            if job.head.size <= head.size {
                (job.answer)(Arc::clone(&head));
            } else {
                (job.answer)(job.head);
            }
        }
    }
}

/// The round's checkpoint with every cosignature gathered so far.
fn cosigned_checkpoint(r: &Round) -> SignedCheckpoint {
    let mut cp = r.base.clone();
    for sig in r.sigs.iter().flatten().flatten() {
        if let Err(e) = cp.add_cosignature(sig.clone()) {
            tracing::warn!(error = %e, "dropping a witness cosignature that does not fit");
        }
    }
    cp
}

/// Asks every witness still missing from `r`, in parallel, each within the timeout. Returns
/// whether any new cosignature arrived.
async fn collect(
    ledger: &Arc<Ledger>,
    http: &reqwest::Client,
    config: &WitnessConfig,
    witnesses: &mut [WitnessState],
    r: &mut Round,
) -> bool {
    let mut set = tokio::task::JoinSet::new();
    for (i, w) in witnesses.iter().enumerate() {
        if r.sigs.get(i).is_some_and(Option::is_some) {
            continue;
        }
        let ledger = Arc::clone(ledger);
        let http = http.clone();
        let spec = w.spec.clone();
        let cp = r.base.clone();
        let last = w.last_size;
        let timeout = config.timeout;
        set.spawn(async move {
            let res = tokio::time::timeout(timeout, ask(&ledger, &http, &spec, &cp, last)).await;
            (i, res)
        });
    }
    let size = r.base.checkpoint.size;
    let mut gained = false;
    while let Some(joined) = set.join_next().await {
        let Ok((i, res)) = joined else {
            continue;
        };
        let (Some(w), Some(slot)) = (witnesses.get_mut(i), r.sigs.get_mut(i)) else {
            continue;
        };
        match res {
            Err(_) => {
                tracing::warn!(witness = %w.spec.url, size, "witness did not answer in time");
            }
            Ok(Ok(sigs)) => {
                w.last_size = size;
                *slot = Some(sigs);
                gained = true;
            }
            Ok(Err((theirs, e))) => {
                if let Some(s) = theirs {
                    w.last_size = s;
                    if s > size {
                        // Only a checkpoint this key signed can have been cosigned: the log
                        // signed size `s` before and now stands below it. Stop signing.
                        let reason = format!(
                            "witness {} has cosigned size {s} of this log, but the log is at size {size}: the store lost entries",
                            w.spec.url
                        );
                        tracing::error!("{reason}; the log stops writing");
                        ledger.set_failed(reason);
                    }
                }
                tracing::warn!(witness = %w.spec.url, size, error = %e, "witness did not cosign");
            }
        }
    }
    gained
}

/// Why the log must not start signing: a witness is ahead of it, or finds it inconsistent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessCheckError {
    /// The witness cosigned a larger checkpoint of this log than the store holds.
    #[error("witness {url} has cosigned a checkpoint of size {theirs} of this log, but the store holds only {ours} entries: the store lost entries (damaged, or restored from an older backup). Signing now would fork the log, so it does not start; restore the data folder from a backup holding at least {theirs} entries")]
    Ahead {
        /// The witness.
        url: String,
        /// Its cosigned size.
        theirs: u64,
        /// The store's size.
        ours: u64,
    },
    /// The witness refused the log's consistency proof: the store holds another tree than the
    /// one it cosigned.
    #[error("witness {url} refuses this log's current checkpoint as inconsistent with the one it cosigned ({detail}): the store holds another tree than the one this log signed before. The log does not start; restore the data folder from a backup of this log")]
    Inconsistent {
        /// The witness.
        url: String,
        /// What it answered.
        detail: String,
    },
}

/// The start-up check against the witnesses (SPEC §4, §7): before the log signs anything, every
/// witness that answers within the timeout is asked to cosign the current head from size 0; a
/// witness that has cosigned a *larger* checkpoint answers 409 with its size, which proves the
/// store went backwards, and one that finds the head inconsistent answers 422. Either refuses
/// the start. Unreachable witnesses are logged and skipped (they cannot be checked, and the
/// checkpoint lock remains the first line of defence).
pub async fn check_not_behind(
    ledger: &Arc<Ledger>,
    config: &WitnessConfig,
) -> Result<(), WitnessCheckError> {
    let http = http_client(config.timeout);
    let head = ledger.head();
    let mut set = tokio::task::JoinSet::new();
    for spec in &config.witnesses {
        let (ledger, http, spec, cp) = (
            Arc::clone(ledger),
            http.clone(),
            spec.clone(),
            head.signed.clone(),
        );
        let timeout = config.timeout;
        set.spawn(async move {
            let res = tokio::time::timeout(timeout, ask(&ledger, &http, &spec, &cp, 0)).await;
            (spec.url, res)
        });
    }
    let ours = head.size;
    while let Some(joined) = set.join_next().await {
        let Ok((url, res)) = joined else { continue };
        match res {
            Err(_) => {
                tracing::warn!(witness = %url, "witness did not answer the start-up check in time; not checked")
            }
            Ok(Ok(_)) => {}
            Ok(Err((Some(theirs), _))) if theirs > ours => {
                return Err(WitnessCheckError::Ahead { url, theirs, ours })
            }
            Ok(Err((_, WitnessClientError::Refused { status: 422, body }))) => {
                return Err(WitnessCheckError::Inconsistent { url, detail: body })
            }
            Ok(Err((_, e))) => {
                tracing::warn!(witness = %url, error = %e, "witness start-up check inconclusive")
            }
        }
    }
    Ok(())
}

/// One witness exchange: `add-checkpoint` with 409 retries; when the witness already cosigned this
/// very checkpoint (e.g. it polled `/checkpoint` first), its cosignature is taken from its gossip
/// endpoint `GET <witness>/<hex sha256(origin)>/checkpoint`. On failure, returns the witness's size
/// if a 409 told it.
async fn ask(
    ledger: &Arc<Ledger>,
    http: &reqwest::Client,
    spec: &WitnessSpec,
    cp: &SignedCheckpoint,
    last: u64,
) -> Result<Vec<NoteSignature>, (Option<u64>, WitnessClientError)> {
    let size = cp.checkpoint.size;
    let proof_for = |old: u64, new: u64| {
        let ledger = Arc::clone(ledger);
        async move {
            prove_consistency(ledger.tree_hash(), old, new, &ledger.reader())
                .map_err(|e| e.to_string())
        }
    };
    // A witness ahead of this checkpoint answers 409 with its size whatever we send; from 0 the
    // request needs no proof.
    let start = if last > size { 0 } else { last };
    match request_cosignature_with_retry(
        http,
        &spec.url,
        &spec.vkey,
        cp,
        start,
        proof_for,
        MAX_ATTEMPTS,
    )
    .await
    {
        Ok((_, sigs)) => Ok(sigs),
        Err(WitnessClientError::Conflict { size: theirs }) if theirs == size => {
            cosignature_from_gossip(http, &spec.url, &spec.vkey, cp)
                .await
                .map_err(|e| (Some(theirs), e))
        }
        Err(WitnessClientError::Conflict { size: theirs }) => {
            Err((Some(theirs), WitnessClientError::Conflict { size: theirs }))
        }
        Err(e) => Err((None, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::{test_key, test_witness_key};

    #[test]
    fn witness_flag_parses_and_checks_the_key() {
        let w = test_witness_key("w.example/1").verifier().to_string();
        let spec = WitnessSpec::parse_flag(&format!("http://127.0.0.1:9/={w}")).expect("parses");
        assert_eq!(spec.url, "http://127.0.0.1:9");
        assert_eq!(spec.vkey.to_string(), w);
        assert!(WitnessSpec::parse_flag(&w).is_err(), "no URL");
        assert!(WitnessSpec::parse_flag(&format!("ftp://x={w}")).is_err());
        let log = test_key("log.example").verifier().to_string();
        let err = WitnessSpec::parse_flag(&format!("http://x={log}")).unwrap_err();
        assert!(err.contains("cosignature"), "{err}");
    }
}
