//! Evidence of log misbehaviour and the alert lines that announce it (SPEC §7, §8).
//!
//! Evidence is two checkpoints, each validly signed by the log, that cannot both be true:
//! the same size with different roots (`split-view`: self-proving, anyone can check it with the
//! log's key alone), or two sizes for which the log's own consistency proof does not verify
//! (`inconsistent-checkpoint`: anyone can re-check it by asking the log for the proof again; an
//! honest log can always produce one).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use ledger_core::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What kind of contradiction the two checkpoints show; also the alert kind (SPEC §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// Same tree size, different root hashes: the log showed two different trees.
    SplitView,
    /// Different sizes and the log's consistency proof between them does not verify.
    InconsistentCheckpoint,
}

impl EvidenceKind {
    /// The SPEC §8 alert kind.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::SplitView => "split-view",
            EvidenceKind::InconsistentCheckpoint => "inconsistent-checkpoint",
        }
    }
}

/// One of the two checkpoints of a piece of evidence: the full signed note, and when and from
/// where the auditor got it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The signed checkpoint note, exactly as received (log signature, any cosignatures).
    pub note: String,
    /// Where it came from, e.g. `add-checkpoint`, `log http://…`, `peer http://…`, `audit`,
    /// or `witness state` (the auditor's own cosigned view).
    pub source: String,
    /// When the auditor received it (Unix seconds).
    pub seen: u64,
}

/// Two log-signed checkpoints that cannot both be true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable ID: hex SHA-256 over the two checkpoint texts (sorted), so that the same
    /// contradiction seen again is stored once.
    pub id: String,
    /// The contradiction.
    pub kind: EvidenceKind,
    /// The log's origin.
    pub log: String,
    /// When it was detected (Unix seconds).
    pub detected: u64,
    /// Human-readable explanation.
    pub detail: String,
    /// The two checkpoints.
    pub checkpoints: [Observation; 2],
}

impl Evidence {
    /// Builds evidence from two checkpoints; the ID depends only on the two checkpoint texts.
    pub fn new(
        kind: EvidenceKind,
        a: (&Checkpoint, Observation),
        b: (&Checkpoint, Observation),
        detail: String,
        now: u64,
    ) -> Evidence {
        Evidence {
            id: evidence_id(a.0, b.0),
            kind,
            log: a.0.origin.clone(),
            detected: now,
            detail,
            checkpoints: [a.1, b.1],
        }
    }
}

/// `hex(SHA-256("mimi-ledger evidence\n" ‖ min(text) ‖ max(text)))`.
pub fn evidence_id(a: &Checkpoint, b: &Checkpoint) -> String {
    let (ta, tb) = (a.to_text(), b.to_text());
    let (lo, hi) = if ta <= tb { (ta, tb) } else { (tb, ta) };
    let mut h = Sha256::new();
    h.update(b"mimi-ledger evidence\n");
    h.update(lo.as_bytes());
    h.update(hi.as_bytes());
    hex::encode(h.finalize())
}

/// One alert line, SPEC §8: `{"time","kind","severity","log","index","sii","msp","detail"}`.
/// `time` is Unix seconds; `index`, `sii` and `msp` are `null` for log-level alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When (Unix seconds).
    pub time: u64,
    /// `split-view` or `inconsistent-checkpoint`.
    pub kind: String,
    /// Always `critical` for evidence.
    pub severity: String,
    /// The log's origin.
    pub log: String,
    /// Not applicable to checkpoint evidence.
    pub index: Option<u64>,
    /// Not applicable to checkpoint evidence.
    pub sii: Option<String>,
    /// Not applicable to checkpoint evidence.
    pub msp: Option<String>,
    /// What was seen, with the evidence ID (`GET /v1/evidence`).
    pub detail: String,
}

impl Alert {
    /// The alert for a new piece of evidence.
    pub fn for_evidence(e: &Evidence) -> Alert {
        Alert {
            time: e.detected,
            kind: e.kind.as_str().to_string(),
            severity: "critical".to_string(),
            log: e.log.clone(),
            index: None,
            sii: None,
            msp: None,
            detail: format!("{} (evidence {})", e.detail, e.id),
        }
    }
}

/// Where alert lines go: stdout and/or a file (appended, one JSON object per line).
pub struct AlertSink {
    stdout: bool,
    file: Option<(PathBuf, Mutex<()>)>,
}

impl AlertSink {
    /// A sink writing to stdout when `stdout`, and appending to `file` when set.
    pub fn new(stdout: bool, file: Option<PathBuf>) -> AlertSink {
        AlertSink {
            stdout,
            file: file.map(|f| (f, Mutex::new(()))),
        }
    }

    /// Emits one alert line to every sink; a failing file sink is logged, not fatal (the
    /// evidence itself is already persisted and served).
    pub fn emit(&self, alert: &Alert) {
        let line = match serde_json::to_string(alert) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot serialise alert: {e}");
                return;
            }
        };
        if self.stdout {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if let Some((path, lock)) = &self.file {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| {
                    writeln!(f, "{line}")?;
                    f.sync_data()
                });
            if let Err(e) = res {
                tracing::error!("cannot append alert to {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(size: u64, root: u8) -> Checkpoint {
        Checkpoint {
            origin: "log.example/a".into(),
            size,
            root: [root; 32],
        }
    }

    #[test]
    fn id_is_order_independent_and_content_bound() {
        assert_eq!(
            evidence_id(&cp(3, 1), &cp(3, 2)),
            evidence_id(&cp(3, 2), &cp(3, 1))
        );
        assert_ne!(
            evidence_id(&cp(3, 1), &cp(3, 2)),
            evidence_id(&cp(3, 1), &cp(3, 3))
        );
    }

    #[test]
    fn alert_line_has_exactly_the_spec_fields() {
        let obs = |s: &str| Observation {
            note: s.into(),
            source: "x".into(),
            seen: 1,
        };
        let e = Evidence::new(
            EvidenceKind::SplitView,
            (&cp(3, 1), obs("a")),
            (&cp(3, 2), obs("b")),
            "two roots".into(),
            7,
        );
        let v = serde_json::to_value(Alert::for_evidence(&e)).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["detail", "index", "kind", "log", "msp", "severity", "sii", "time"]
        );
        assert_eq!(v["kind"], "split-view");
        assert_eq!(v["time"], 7);
        assert!(v["index"].is_null());
    }

    #[test]
    fn file_sink_appends_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let sink = AlertSink::new(false, Some(path.clone()));
        let a = Alert {
            time: 1,
            kind: "split-view".into(),
            severity: "critical".into(),
            log: "l".into(),
            index: None,
            sii: None,
            msp: None,
            detail: "d".into(),
        };
        sink.emit(&a);
        sink.emit(&a);
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let back: Alert = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
