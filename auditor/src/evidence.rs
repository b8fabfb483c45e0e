//! Evidence of log misbehaviour and the alert lines that announce it (SPEC §7, §8): where they go.
//! The types themselves ([`Evidence`](ledger_core::api::Evidence), [`Alert`]) are `ledger_core::api`'s, shared with the
//! monitor and the client.
//!
//! Evidence is two checkpoints, each validly signed by the log, that cannot both be true:
//! the same size with different roots (`split-view`: self-proving, anyone can check it with the
//! log's key alone), or two sizes for which the log's own consistency proof does not verify
//! (`inconsistent-checkpoint`: anyone can re-check it by asking the log for the proof again; an
//! honest log can always produce one).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use ledger_core::api::{Alert, Observation};
use ledger_core::time::now_unix;

/// An [`Observation`] of `note`, received now from `source`.
pub fn observation(note: &[u8], source: &str) -> Observation {
    Observation {
        note: String::from_utf8_lossy(note).into_owned(),
        source: source.to_string(),
        seen: now_unix(),
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
    use ledger_core::api::{AlertKind, Evidence, EvidenceKind, Severity};
    use ledger_core::checkpoint::Checkpoint;

    fn cp(size: u64, root: u8) -> Checkpoint {
        Checkpoint {
            origin: "log.example/a".into(),
            size,
            root: [root; 32],
        }
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
            kind: AlertKind::SplitView,
            severity: Severity::Critical,
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
