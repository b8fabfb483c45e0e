//! The auditor: one view per log (its latest cosigned checkpoint), and the check of any other
//! checkpoint against it — from a client (`POST /v1/audit`), from the log's `/checkpoint`, from a
//! peer's gossip, or refused by the witness.
//!
//! Checking a pair (SPEC §7): the other checkpoint must be validly signed by the log; then the same
//! size must mean the same root, and different sizes must be linked by a consistency proof that the
//! log serves (`/v1/proof/consistency`) and that verifies with the log's tree hash. A pair that
//! fails is stored as [`Evidence`] and alerted once. A pair the auditor cannot decide (no log URL,
//! log unreachable or refusing) is `unverifiable`, never evidence.
//!
//! A checkpoint from the log or a peer that is newer than the view and proven consistent with it
//! advances the view, and so the witness state, exactly as `add-checkpoint` would (the same
//! compare-and-swap): the auditor cosigns what it has verified. A log then gets a 409 with the
//! new size and retries from it, as tlog-witness provides. Client audits never change the view.

use std::sync::Arc;

use ledger_core::api::{AuditAnswer, Evidence, EvidenceKind, Observation, Verdict};
use ledger_core::checkpoint::{
    check_consistency, compare, Agreement, Contradiction, SignedCheckpoint,
};
use ledger_core::cosignature::cosign;
use ledger_core::key::SignerKey;
use ledger_core::note::{Note, NoteSignature};
use ledger_core::time::now_unix;

use crate::client::{fetch_consistency, http_client};
use crate::config::{Config, LogConfig};
use crate::evidence::{observation, AlertSink};
use crate::metrics::Metrics;
use crate::store::{LogRecord, Store, StoreError};

/// The shared state of a running auditor.
pub struct Auditor {
    config: Arc<Config>,
    store: Store,
    http: reqwest::Client,
    alerts: AlertSink,
    metrics: Metrics,
}

impl Auditor {
    /// Opens the state store and registers every configured log (refusing a changed key or hash
    /// for a known origin, see [`crate::store`]).
    pub fn open(config: Config) -> Result<Arc<Auditor>, StoreError> {
        let store = Store::open(&config.state_dir)?;
        let now = now_unix();
        for log in &config.logs {
            store.register_log(log, now)?;
        }
        let alerts = AlertSink::new(config.alerts.stdout, config.alerts.file.clone());
        Ok(Arc::new(Auditor {
            config: Arc::new(config),
            store,
            http: http_client(std::time::Duration::from_secs(10)),
            alerts,
            metrics: Metrics::default(),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The witness key.
    pub fn key(&self) -> &SignerKey {
        &self.config.key
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The HTTP client for logs and peers.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The latest cosigned checkpoint note of a configured log, for gossip.
    pub fn latest_note(&self, origin: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.get(origin)?.and_then(|v| v.record.note))
    }

    /// Checks a checkpoint note in the background (used for checkpoints the witness refused).
    pub fn spawn_observe(self: &Arc<Self>, note: Vec<u8>, source: String) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let a = me.observe(&note, &source, false).await;
            tracing::info!(verdict = a.verdict.as_str(), "{source}: {}", a.detail);
        });
    }

    /// Checks `note` (received from `source`) against this auditor's view of its log; stores
    /// evidence and alerts when they contradict; advances the view when `advance` and the note is
    /// newer and proven consistent.
    pub async fn observe(&self, note: &[u8], source: &str, advance: bool) -> AuditAnswer {
        let scp = match SignedCheckpoint::parse(note) {
            Ok(s) => s,
            Err(e) => {
                return AuditAnswer::new(
                    Verdict::Unverifiable,
                    format!("malformed checkpoint: {e}"),
                )
            }
        };
        let Some(log) = self.config.log(&scp.checkpoint.origin).cloned() else {
            return AuditAnswer::new(
                Verdict::UnknownLog,
                format!(
                    "{:?} is not a log this auditor witnesses",
                    scp.checkpoint.origin
                ),
            );
        };
        if let Err(e) = log.log.verify(&scp, now_unix()) {
            return AuditAnswer::new(Verdict::Unverifiable, format!("log signature: {e}"));
        }
        let current = match self.store.get(log.origin()) {
            Ok(Some(v)) => v,
            Ok(None) => return AuditAnswer::new(Verdict::Unverifiable, "log not registered"),
            Err(e) => return AuditAnswer::new(Verdict::Unverifiable, format!("state: {e}")),
        };
        let Some(view_note) = current.record.note.clone() else {
            if advance {
                return self
                    .advance(&log, &scp, current, "first checkpoint seen")
                    .await;
            }
            return AuditAnswer::new(
                Verdict::Unverifiable,
                "the auditor has no cosigned checkpoint of this log yet",
            );
        };
        let view = match SignedCheckpoint::parse(view_note.as_bytes()) {
            Ok(v) => v,
            Err(e) => return AuditAnswer::new(Verdict::Unverifiable, format!("stored view: {e}")),
        };
        let ours = (
            &view.checkpoint,
            Observation {
                note: view_note.clone(),
                source: "witness state".to_string(),
                seen: current.record.updated,
            },
        );
        let theirs = (&scp.checkpoint, observation(note, source));
        match self.check_pair(&log, ours.0, theirs.0).await {
            PairCheck::Consistent => {
                if advance && scp.checkpoint.size > view.checkpoint.size {
                    return self.advance(&log, &scp, current, "proven consistent").await;
                }
                AuditAnswer::new(
                    Verdict::Consistent,
                    format!(
                        "consistent with the cosigned checkpoint of size {}",
                        view.checkpoint.size
                    ),
                )
            }
            PairCheck::Undecided(why) => AuditAnswer::new(Verdict::Unverifiable, why),
            PairCheck::Contradiction(kind, detail) => {
                let e = Evidence::new(kind, ours, theirs, detail.clone(), now_unix());
                let stored = self.record_evidence(e).await;
                AuditAnswer {
                    verdict: Verdict::Inconsistent,
                    evidence: stored,
                    detail,
                }
            }
        }
    }

    /// Stores evidence (once per pair of checkpoints) and alerts when it is new; returns the
    /// stored evidence.
    async fn record_evidence(&self, e: Evidence) -> Option<Evidence> {
        match self.store.insert_evidence(&e) {
            Ok(true) => {
                if let Err(err) = self.store.flush().await {
                    tracing::error!("flushing evidence: {err}");
                }
                tracing::warn!(log = %e.log, id = %e.id, "evidence: {}", e.detail);
                self.alerts.emit(&ledger_core::api::Alert::for_evidence(&e));
                Some(e)
            }
            Ok(false) => self.store.get_evidence(&e.id).ok().flatten().or(Some(e)),
            Err(err) => {
                tracing::error!("storing evidence: {err}");
                Some(e)
            }
        }
    }

    /// Same size → same root; different sizes → the log's consistency proof verifies
    /// ([`compare`], then [`check_consistency`] with the proof the log serves).
    async fn check_pair(
        &self,
        log: &LogConfig,
        a: &ledger_core::checkpoint::Checkpoint,
        b: &ledger_core::checkpoint::Checkpoint,
    ) -> PairCheck {
        let contradiction = |c: Contradiction| {
            let kind = match c {
                Contradiction::SameSizeDifferentRoots { .. } => EvidenceKind::SplitView,
                _ => EvidenceKind::InconsistentCheckpoint,
            };
            let detail = match c {
                Contradiction::BadEmptyRoot => {
                    "a signed checkpoint of size 0 whose root is not the empty tree's".to_string()
                }
                Contradiction::NotConsistent { old, new, reason } => format!(
                    "the log's consistency proof from size {old} to {new} does not verify: {reason}"
                ),
                other => other.to_string(),
            };
            PairCheck::Contradiction(kind, detail)
        };
        let (old, new) = match compare(log.log.hash, a, b) {
            Ok(Agreement::Consistent) => return PairCheck::Consistent,
            Ok(Agreement::NeedsProof { old, new }) => (old, new),
            Err(c) => return contradiction(c),
        };
        let Some(url) = &log.url else {
            return PairCheck::Undecided(format!(
                "sizes {old} and {new} differ and no log URL is configured to fetch a proof"
            ));
        };
        let proof = match fetch_consistency(&self.http, url, old, new).await {
            Ok(p) => p,
            Err(e) => return PairCheck::Undecided(format!("cannot get a consistency proof: {e}")),
        };
        match check_consistency(log.log.hash, a, b, &proof) {
            Ok(()) => PairCheck::Consistent,
            Err(c) => contradiction(c),
        }
    }

    /// The note the witness serves for gossip: the checkpoint text, the log's own signature
    /// line(s), and this auditor's cosignature at `now`. Returns the cosignature and the note
    /// text.
    pub(crate) fn cosigned_note(
        &self,
        scp: &SignedCheckpoint,
        now: u64,
    ) -> Result<(NoteSignature, String), String> {
        let log = self
            .config
            .log(&scp.checkpoint.origin)
            .ok_or("log not configured")?;
        let sig = cosign(self.key(), scp.note.text(), now).map_err(|e| e.to_string())?;
        let mut note = Note::new(scp.note.text()).map_err(|e| e.to_string())?;
        let vkey = &log.log.log_key;
        for s in scp.note.signatures() {
            if s.name == vkey.name() && s.key_id == vkey.key_id() {
                note.add_signature(s.clone()).map_err(|e| e.to_string())?;
            }
        }
        note.add_signature(sig.clone()).map_err(|e| e.to_string())?;
        let text = String::from_utf8(note.to_bytes()).map_err(|e| e.to_string())?;
        Ok((sig, text))
    }

    /// Cosigns `scp` and makes it the view, if the view is still `current` (compare-and-swap);
    /// the caller has verified it is consistent with `current`.
    async fn advance(
        &self,
        log: &LogConfig,
        scp: &SignedCheckpoint,
        current: crate::store::Versioned,
        why: &str,
    ) -> AuditAnswer {
        let now = now_unix();
        let note = match self.cosigned_note(scp, now) {
            Ok((_, n)) => n,
            Err(e) => return AuditAnswer::new(Verdict::Unverifiable, format!("cosigning: {e}")),
        };
        let new = LogRecord {
            size: scp.checkpoint.size,
            root: ledger_core::api::b64::encode_hash(&scp.checkpoint.root),
            note: Some(note),
            updated: now,
            ..current.record.clone()
        };
        match self.store.compare_and_swap(log.origin(), &current, &new) {
            Ok(true) => {
                if let Err(e) = self.store.flush().await {
                    tracing::error!("flushing state: {e}");
                }
                AuditAnswer::new(
                    Verdict::Consistent,
                    format!("{why}; cosigned size {}", scp.checkpoint.size),
                )
            }
            // Someone else advanced the view meanwhile; the next poll re-checks against it.
            Ok(false) => {
                AuditAnswer::new(Verdict::Consistent, format!("{why}; view moved meanwhile"))
            }
            Err(e) => AuditAnswer::new(Verdict::Unverifiable, format!("state: {e}")),
        }
    }
}

/// The outcome of checking two signed checkpoints of one log.
enum PairCheck {
    Consistent,
    Undecided(String),
    Contradiction(EvidenceKind, String),
}
