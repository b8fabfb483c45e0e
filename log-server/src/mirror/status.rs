//! What a mirror tells its operators and clients about itself: how far it has verified the log,
//! how old its view is, and why it stopped advancing if it did — in `/v1/info`'s `mirror` member,
//! in `/metrics`, and as SPEC §8 alert lines (the monitor's kinds) appended to its alert file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use ledger_core::api::{Alert, AlertKind};
use ledger_core::time::now_unix;
use serde::Serialize;

/// The mirror's state, shared by the follower (writer) and the HTTP handlers (readers).
#[derive(Debug)]
pub struct Status {
    source: String,
    shards: Vec<String>,
    alerts_file: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    verified_size: u64,
    verified_at: Option<u64>,
    origin_size: Option<u64>,
    entries_verified: u64,
    halted: Option<Alert>,
    last_error: Option<String>,
    alerts: BTreeMap<&'static str, u64>,
}

/// The `mirror` member of a mirror's `GET /v1/info` (its `Option`s are always there, `null` when
/// unknown: required in the schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MirrorInfo {
    /// The log followed (`--mirror-of`).
    pub of: String,
    /// The SII prefixes held; empty: every SII.
    pub shards: Vec<String>,
    /// `following` (serving its newest verified view), `catching-up` (no verified view yet) or
    /// `halted` (it stopped advancing: see `halted`; it keeps serving its last good view).
    pub state: &'static str,
    /// The size of the checkpoint served.
    pub verified_size: u64,
    /// When that checkpoint was verified (Unix seconds).
    #[schema(required = true)]
    pub verified_at: Option<u64>,
    /// How old the view served is, in seconds since it was last confirmed current.
    #[schema(required = true)]
    pub age_s: Option<u64>,
    /// The size of the newest checkpoint seen from the log.
    #[schema(required = true)]
    pub origin_size: Option<u64>,
    /// Why the mirror stopped advancing (the alert it raised).
    #[schema(required = true)]
    pub halted: Option<Alert>,
    /// The last transient failure (fetching), if the last poll failed.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Status {
    /// The status of a mirror of `source` holding `shards`, alerting to `alerts_file`.
    pub fn new(source: &str, shards: &[String], alerts_file: PathBuf) -> Status {
        Status {
            source: source.to_string(),
            shards: shards.to_vec(),
            alerts_file,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The follower confirmed (or reached) a verified checkpoint of `size` now.
    pub fn verified(&self, size: u64, entries: u64) {
        let mut g = lock(&self.inner);
        g.verified_size = size;
        g.verified_at = Some(now_unix());
        g.entries_verified += entries;
        g.last_error = None;
    }

    /// The log's newest checkpoint has `size`.
    pub fn seen(&self, size: u64) {
        lock(&self.inner).origin_size = Some(size);
    }

    /// A transient failure (the next poll tries again).
    pub fn failed(&self, error: String) {
        lock(&self.inner).last_error = Some(error);
    }

    /// Whether the mirror stopped advancing.
    pub fn halted(&self) -> bool {
        lock(&self.inner).halted.is_some()
    }

    /// Raises `alert` (the mirror stops advancing when `halt`): appends its SPEC §8 line to the
    /// alert file (synced), logs it and counts it.
    pub fn raise(&self, alert: Alert, halt: bool) {
        tracing::error!(kind = alert.kind.as_str(), index = ?alert.index, detail = %alert.detail, halt, "mirror alert");
        if let Err(e) = append_line(&self.alerts_file, &alert.to_line()) {
            tracing::error!(file = %self.alerts_file.display(), error = %e, "writing the alert file");
        }
        let mut g = lock(&self.inner);
        *g.alerts.entry(alert.kind.as_str()).or_default() += 1;
        if halt && g.halted.is_none() {
            g.halted = Some(alert);
        }
    }

    /// The `mirror` member of `/v1/info`; `serving` says whether a verified view is served.
    pub fn info(&self, serving: bool) -> MirrorInfo {
        let g = lock(&self.inner);
        let state = if g.halted.is_some() {
            "halted"
        } else if serving {
            "following"
        } else {
            "catching-up"
        };
        MirrorInfo {
            of: self.source.clone(),
            shards: self.shards.clone(),
            state,
            verified_size: g.verified_size,
            verified_at: g.verified_at,
            age_s: g.verified_at.map(|t| now_unix().saturating_sub(t)),
            origin_size: g.origin_size,
            halted: g.halted.clone(),
            last_error: g.last_error.clone(),
        }
    }

    /// The mirror's Prometheus metrics.
    pub fn render(&self, out: &mut String, serving: bool) {
        use std::fmt::Write as _;
        let g = lock(&self.inner);
        let age = g.verified_at.map(|t| now_unix().saturating_sub(t));
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_verified_size Size of the log checkpoint this mirror verified and serves.\n\
             # TYPE ledger_mirror_verified_size gauge\nledger_mirror_verified_size {}",
            g.verified_size
        );
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_age_seconds Seconds since the served view was last confirmed current (-1: none yet).\n\
             # TYPE ledger_mirror_age_seconds gauge\nledger_mirror_age_seconds {}",
            age.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX))
        );
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_origin_size Size of the newest checkpoint seen from the log.\n\
             # TYPE ledger_mirror_origin_size gauge\nledger_mirror_origin_size {}",
            g.origin_size.unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_entries_verified_total Entries this mirror verified since it started.\n\
             # TYPE ledger_mirror_entries_verified_total counter\nledger_mirror_entries_verified_total {}",
            g.entries_verified
        );
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_halted 1 when the mirror stopped advancing on an alert.\n\
             # TYPE ledger_mirror_halted gauge\nledger_mirror_halted {}",
            u8::from(g.halted.is_some())
        );
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_serving 1 when the mirror serves a verified view.\n\
             # TYPE ledger_mirror_serving gauge\nledger_mirror_serving {}",
            u8::from(serving)
        );
        let _ = writeln!(
            out,
            "# HELP ledger_mirror_alerts_total Alerts raised, by SPEC 8 kind.\n# TYPE ledger_mirror_alerts_total counter"
        );
        for kind in AlertKind::ALL {
            let n = g.alerts.get(kind.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "ledger_mirror_alerts_total{{kind=\"{}\"}} {n}",
                kind.as_str()
            );
        }
    }
}

/// Appends one line to `path` (created 0600 if missing) and syncs it: an alert is durable before
/// the mirror goes on.
fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}
