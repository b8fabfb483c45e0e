//! `/metrics` (Prometheus text format): entries verified and position per log, alerts delivered by
//! kind, and the age of each log's newest checkpoint. Served on `--metrics-listen` by the shared
//! server loop (`ledger-serve`: timeouts, connection cap, problem+json refusals), on its own
//! thread and runtime so that the blocking follow loop never delays a scrape.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use ledger_core::time::now_unix;

use crate::alert::Kind;

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, u64>,
    position: BTreeMap<String, u64>,
    last_checkpoint: BTreeMap<String, u64>,
    alerts: BTreeMap<Kind, u64>,
}

/// The monitor's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut g) = self.inner.lock() {
            f(&mut g);
        }
    }

    /// Sets a log's verified-entry count and position (leaves hashed).
    pub fn set_log(&self, log: &str, entries_verified: u64, position: u64) {
        self.with(|m| {
            m.entries.insert(log.to_string(), entries_verified);
            m.position.insert(log.to_string(), position);
        });
    }

    /// Records when a log's checkpoint last changed (Unix seconds).
    pub fn set_last_checkpoint(&self, log: &str, unix: u64) {
        self.with(|m| {
            m.last_checkpoint.insert(log.to_string(), unix);
        });
    }

    /// Counts one delivered alert.
    pub fn alert(&self, kind: Kind) {
        self.with(|m| *m.alerts.entry(kind).or_default() += 1);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let Ok(m) = self.inner.lock() else {
            return String::new();
        };
        let now = now_unix();
        let mut out = String::new();
        out.push_str("# HELP monitor_entries_verified_total Entries verified against SPEC §3.\n");
        out.push_str("# TYPE monitor_entries_verified_total counter\n");
        for (log, n) in &m.entries {
            out.push_str(&format!(
                "monitor_entries_verified_total{{log=\"{}\"}} {n}\n",
                esc(log)
            ));
        }
        out.push_str("# HELP monitor_log_position Leaves downloaded and hashed, per log.\n");
        out.push_str("# TYPE monitor_log_position gauge\n");
        for (log, n) in &m.position {
            out.push_str(&format!(
                "monitor_log_position{{log=\"{}\"}} {n}\n",
                esc(log)
            ));
        }
        out.push_str("# HELP monitor_alerts_total Alerts delivered, by kind.\n");
        out.push_str("# TYPE monitor_alerts_total counter\n");
        for k in Kind::ALL {
            let n = m.alerts.get(&k).copied().unwrap_or(0);
            out.push_str(&format!(
                "monitor_alerts_total{{kind=\"{}\"}} {n}\n",
                k.as_str()
            ));
        }
        out.push_str("# HELP monitor_checkpoint_age_seconds Seconds since the log's checkpoint last changed.\n");
        out.push_str("# TYPE monitor_checkpoint_age_seconds gauge\n");
        for (log, t) in &m.last_checkpoint {
            out.push_str(&format!(
                "monitor_checkpoint_age_seconds{{log=\"{}\"}} {}\n",
                esc(log),
                now.saturating_sub(*t)
            ));
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `addr` under `limits` in a background thread; returns the bound
/// address. Anything else is answered 404 problem+json.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    limits: ledger_serve::Limits,
) -> std::io::Result<SocketAddr> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use ledger_core::problem::ProblemType;

    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = metrics.render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
        .fallback(|| async {
            ledger_serve::problem::response(
                ProblemType::NotFound,
                StatusCode::NOT_FOUND,
                "only GET /metrics is served here",
            )
            .into_response()
        })
        .method_not_allowed_fallback(|| async {
            ledger_serve::problem::response(
                ProblemType::BadRequest,
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET /metrics is served here",
            )
            .into_response()
        });
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let served = runtime.block_on(ledger_serve::serve(
                listener,
                app,
                limits,
                None,
                std::future::pending(),
            ));
            if let Err(e) = served {
                tracing::error!("metrics endpoint: {e}");
            }
        })?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_serves() {
        let m = Arc::new(Metrics::default());
        m.set_log("a/log", 10, 12);
        m.alert(Kind::BadEntry);
        m.set_last_checkpoint("a/log", now_unix());
        let text = m.render();
        assert!(text.contains("monitor_entries_verified_total{log=\"a/log\"} 10\n"));
        assert!(text.contains("monitor_log_position{log=\"a/log\"} 12\n"));
        assert!(text.contains("monitor_alerts_total{kind=\"bad-entry\"} 1\n"));
        assert!(text.contains("monitor_checkpoint_age_seconds{log=\"a/log\"} "));
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            m,
            ledger_serve::Limits::default(),
        )
        .unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(
            &mut s,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut resp = String::new();
        std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK"));
        assert!(resp.contains("monitor_alerts_total{kind=\"bad-entry\"} 1"));
    }
}
