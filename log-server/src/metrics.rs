//! Every metric of the server, in one place, exposed as Prometheus text (format 0.0.4).
//!
//! Hand-written on atomics and one small mutex (the request counters), because the set is small and
//! fixed: requests by route, status and result (`ok` or the problem slug), tree size, queue depth,
//! sequencing duration and batch sizes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the sequencing duration histogram.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds (entries) of the batch size histogram.
pub const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A fixed-bucket histogram.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    /// Non-cumulative counts per bucket; one extra for +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// A histogram with these (increasing) upper bounds.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            state: Mutex::new(HistogramState {
                counts: vec![0; bounds.len() + 1],
                ..HistogramState::default()
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let bucket = self.bounds.partition_point(|b| *b < v);
        if let Ok(mut s) = self.state.lock() {
            if let Some(c) = s.counts.get_mut(bucket) {
                *c += 1;
            }
            s.sum += v;
            s.count += 1;
        }
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.state.lock().map(|s| s.count).unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let Ok(s) = self.state.lock() else { return };
        let mut cumulative = 0;
        for (bound, c) in self.bounds.iter().zip(&s.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum {}", s.sum);
        let _ = writeln!(out, "{name}_count {}", s.count);
    }
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16, &'static str), u64>>,
    /// The tree size of the latest signed checkpoint.
    pub tree_size: AtomicU64,
    /// Leaves appended since start.
    pub appended: AtomicU64,
    /// Submissions answered with an existing index (idempotent resubmissions).
    pub duplicates: AtomicU64,
    /// Batches refused because writing their files failed (I/O error, full disk); the log went on.
    pub write_failures: AtomicU64,
    /// Time from a batch's first entry being taken to all its waiters being answerable.
    pub sequencing: Histogram,
    /// Entries (appended, refused or duplicate) per batch.
    pub batch_size: Histogram,
    /// Whether writes are being refused because the disk is below its free-space floor.
    pub disk_low: AtomicBool,
    /// Whether the sequencer stopped on a storage error (a restart is needed).
    pub failed: AtomicBool,
    /// The object-storage publisher's progress, when `--publish` is set (see [`crate::publish`]).
    pub publish: std::sync::OnceLock<std::sync::Arc<crate::publish::PublishStatus>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            tree_size: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            sequencing: Histogram::new(&DURATION_BUCKETS),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            disk_low: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            publish: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Counts one answered request. `route` is the matched route template (bounded label set).
    pub fn request(&self, route: &'static str, status: u16, result: &'static str) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status, result)).or_insert(0) += 1;
        }
    }

    /// The count for one label set (tests).
    pub fn request_count(&self, route: &str, status: u16, result: &str) -> u64 {
        self.requests
            .lock()
            .ok()
            .and_then(|m| m.get(&(route, status, result)).copied())
            .unwrap_or(0)
    }

    /// Records one committed batch.
    pub fn batch(&self, entries: usize, took: Duration) {
        self.batch_size.observe(entries as f64);
        self.sequencing.observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition, with the current queue depth and bytes on disk.
    pub fn render(&self, queue_depth: u64, disk_bytes: Option<u64>) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP ledger_http_requests_total HTTP requests by route, status and result (ok or problem slug).\n\
             # TYPE ledger_http_requests_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((route, status, result), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "ledger_http_requests_total{{route=\"{route}\",code=\"{status}\",result=\"{result}\"}} {n}"
                );
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "ledger_tree_size",
            "Tree size of the latest signed checkpoint.",
            "gauge",
            self.tree_size.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_queue_depth",
            "Submissions being checked or waiting for the sequencer.",
            "gauge",
            queue_depth,
        );
        gauge(
            &mut out,
            "ledger_entries_appended_total",
            "Leaves appended since start.",
            "counter",
            self.appended.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_duplicate_submissions_total",
            "Submissions of an existing leaf, answered with its index.",
            "counter",
            self.duplicates.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_batch_write_failures_total",
            "Batches refused because writing their files failed (nothing of them was stored; the log went on).",
            "counter",
            self.write_failures.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_writes_refused_disk_low",
            "1 while writes are refused because the disk is below its free-space floor (they resume by themselves).",
            "gauge",
            u64::from(self.disk_low.load(Ordering::Relaxed)),
        );
        gauge(
            &mut out,
            "ledger_sequencer_failed",
            "1 once the sequencer stopped on a storage error (a restart is needed to write again).",
            "gauge",
            u64::from(self.failed.load(Ordering::Relaxed)),
        );
        if let Some(b) = disk_bytes {
            gauge(
                &mut out,
                "ledger_storage_bytes",
                "Bytes the store uses on disk.",
                "gauge",
                b,
            );
        }
        if let Some(p) = self.publish.get() {
            p.render(&mut out);
        }
        self.sequencing.render(
            &mut out,
            "ledger_sequencing_duration_seconds",
            "Time to sequence, store, sync and sign one batch.",
        );
        self.batch_size.render(
            &mut out,
            "ledger_batch_size",
            "Submissions per sequencer batch.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_metric_with_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v1/add", 200, "ok");
        m.request("/v1/add", 200, "ok");
        m.request("/v1/add", 422, "clock-skew");
        m.batch(3, Duration::from_millis(2));
        m.batch(300, Duration::from_millis(40));
        m.tree_size.store(42, Ordering::Relaxed);
        let text = m.render(7, Some(1000));
        assert!(text.contains(
            "ledger_http_requests_total{route=\"/v1/add\",code=\"200\",result=\"ok\"} 2\n"
        ));
        assert!(text.contains("result=\"clock-skew\"} 1\n"));
        assert!(text.contains("ledger_tree_size 42\n"));
        assert!(text.contains("ledger_queue_depth 7\n"));
        assert!(text.contains("ledger_storage_bytes 1000\n"));
        assert!(text.contains("ledger_batch_size_bucket{le=\"4\"} 1\n"));
        assert!(text.contains("ledger_batch_size_bucket{le=\"256\"} 1\n"));
        assert!(text.contains("ledger_batch_size_bucket{le=\"512\"} 2\n"));
        assert!(text.contains("ledger_batch_size_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("ledger_sequencing_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("ledger_sequencing_duration_seconds_count 2\n"));
        assert_eq!(m.request_count("/v1/add", 200, "ok"), 2);
    }
}
