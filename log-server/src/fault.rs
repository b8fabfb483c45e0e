//! Fault injection at the sequencer's commit steps, compiled into test builds only (builds with
//! debug assertions, which `cargo test` makes), as Sunlight's failure-injection tests do: the
//! end-to-end tests make the real binary crash at a named step, or see an I/O error there, and
//! then check what recovery makes of it (`tests/tests/crash_steps.rs`). Release builds compile
//! every point to nothing.
//!
//! `LEDGER_FAULT=<action>:<point>[:<n>]`, read once at the first point reached:
//! - `crash:<point>[:<n>]` aborts the process (as `kill -9` would: no destructor, no flush) the
//!   `n`-th time (default 1st) the point is reached;
//! - `fail:<point>[:<n>]` makes the point return an I/O error the first `n` times (default 1), then
//!   pass (a transient error: the log must refuse those writes and go on);
//! - `full:<point>[:<n>]` likewise with `ENOSPC` (a full disk).

/// A point where a crash may be injected (and nothing else).
pub fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    let _ = inject::at(point, false);
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// A point where a crash or an I/O error may be injected.
pub fn point(point: &str) -> std::io::Result<()> {
    #[cfg(debug_assertions)]
    return inject::at(point, true);
    #[cfg(not(debug_assertions))]
    {
        let _ = point;
        Ok(())
    }
}

#[cfg(debug_assertions)]
mod inject {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    #[derive(Debug)]
    struct Fault {
        action: String,
        point: String,
        n: u64,
        seen: AtomicU64,
    }

    fn fault() -> Option<&'static Fault> {
        static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
        FAULT
            .get_or_init(|| {
                let spec = std::env::var("LEDGER_FAULT").ok()?;
                let mut parts = spec.splitn(3, ':');
                let action = parts.next()?.to_string();
                let point = parts.next()?.to_string();
                let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                tracing::warn!(%action, %point, n, "fault injection armed (test build)");
                Some(Fault {
                    action,
                    point,
                    n,
                    seen: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    pub(super) fn at(point: &str, may_fail: bool) -> std::io::Result<()> {
        let Some(f) = fault() else {
            return Ok(());
        };
        if f.point != point {
            return Ok(());
        }
        let seen = f.seen.fetch_add(1, Ordering::SeqCst) + 1;
        match f.action.as_str() {
            "crash" if seen == f.n => {
                eprintln!("fault injection: crashing at {point}");
                std::process::abort();
            }
            "fail" if may_fail && seen <= f.n => Err(std::io::Error::other(format!(
                "injected I/O error at {point}"
            ))),
            "full" if may_fail && seen <= f.n => Err(std::io::Error::from_raw_os_error(28)),
            _ => Ok(()),
        }
    }
}
