//! Every metric of the auditor, rendered as Prometheus text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters by label value.
#[derive(Default)]
struct Counter(Mutex<BTreeMap<String, u64>>);

impl Counter {
    fn inc(&self, label: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(label.to_string()).or_insert(0) += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The auditor's metrics.
#[derive(Default)]
pub struct Metrics {
    add_checkpoint: Counter,
    audit: Counter,
    polls: Counter,
}

impl Metrics {
    /// Counts one `POST /add-checkpoint` answer by HTTP status.
    pub fn add_checkpoint(&self, status: u16) {
        self.add_checkpoint.inc(&status.to_string());
    }

    /// Counts one `POST /v1/audit` verdict.
    pub fn audit(&self, verdict: &str) {
        self.audit.inc(verdict);
    }

    /// Counts one poll of a log or peer by outcome (`ok`, `error`, or a verdict).
    pub fn poll(&self, outcome: &str) {
        self.polls.inc(outcome);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, logs_witnessed: usize, evidence: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, label: &str, c: &Counter| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (k, v) in c.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
            }
        };
        counter(
            "auditor_add_checkpoint_requests_total",
            "add-checkpoint requests by HTTP status.",
            "status",
            &self.add_checkpoint,
        );
        counter(
            "auditor_audit_requests_total",
            "POST /v1/audit answers by verdict.",
            "verdict",
            &self.audit,
        );
        counter(
            "auditor_polls_total",
            "Checkpoints polled from logs and peers, by verdict or error.",
            "outcome",
            &self.polls,
        );
        let _ = writeln!(
            out,
            "# HELP auditor_logs_witnessed Logs in the configuration."
        );
        let _ = writeln!(out, "# TYPE auditor_logs_witnessed gauge");
        let _ = writeln!(out, "auditor_logs_witnessed {logs_witnessed}");
        let _ = writeln!(out, "# HELP auditor_evidence Pieces of evidence stored.");
        let _ = writeln!(out, "# TYPE auditor_evidence gauge");
        let _ = writeln!(out, "auditor_evidence {evidence}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.add_checkpoint(200);
        m.add_checkpoint(409);
        m.add_checkpoint(409);
        m.audit("consistent");
        let t = m.render(2, 1);
        assert!(t.contains("auditor_add_checkpoint_requests_total{status=\"409\"} 2\n"));
        assert!(t.contains("auditor_add_checkpoint_requests_total{status=\"200\"} 1\n"));
        assert!(t.contains("auditor_audit_requests_total{verdict=\"consistent\"} 1\n"));
        assert!(t.contains("auditor_logs_witnessed 2\n"));
        assert!(t.contains("auditor_evidence 1\n"));
    }
}
