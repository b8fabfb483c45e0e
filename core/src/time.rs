//! The clock: the one place in `ledger-core` that reads the system time.
//!
//! Everything else in the core takes the time as an argument (`now`, Unix seconds), so that
//! verification is a pure function of its inputs and tests can pin the clock. The services and the
//! client read it here rather than each keeping a copy, so that every party agrees on what "now"
//! means (whole seconds since the Unix epoch, and 0 on a clock set before 1970).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current Unix time in whole seconds; 0 if the system clock is before the epoch.
///
/// The only clock read in `ledger-core`.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_after_2024() {
        assert!(super::now_unix() > 1_700_000_000);
    }
}
