//! # idprover — an example identity prover for mimi-ledger
//!
//! A neutral service in the spirit of draft-peterson-mimi-idprover: it proves that someone controls
//! an SII (a phone number or e-mail address) with a one-time code, then signs an attestation note
//! (SPEC §3) — the recipient's authorization of a mapping (MIMI R1), of its removal (R10), or of an
//! opt-out (R5). Logs admit, and clients verify, attestations from enrolled provers only.
//!
//! - The `store` module: challenges (random, single-use, expiring, try-limited, constant-time
//!   compared codes) and per-SII / per-client rate limits.
//! - The `sender` module: how codes are delivered (an outbox folder, an HTTP webhook, or your own
//!   `Sender`).
//! - The `server` module: the HTTP API, with RFC 9457 problem documents like the log's.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod sender;
pub mod server;
pub mod store;

pub use sender::{Message, OutboxSender, Sender, WebhookSender};
pub use server::{router, AppState, Config};
pub use store::{Limits, Store};

/// Parses a duration such as `500ms`, `90s`, `5m`, `24h` or `7d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: expected a number and a unit (ms, s, m, h, d)"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "duration {s:?}: unknown unit {other:?} (ms, s, m, h, d)"
            ))
        }
    };
    n.checked_mul(ms)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Parses a rate `N/DURATION` such as `5/15m`.
pub fn parse_rate(s: &str) -> Result<(u32, std::time::Duration), String> {
    let (n, d) = s
        .split_once('/')
        .ok_or_else(|| format!("rate {s:?}: expected COUNT/DURATION, e.g. 5/15m"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("rate {s:?}: {n:?} is not a count"))?;
    let d = parse_duration(d)?;
    if d.is_zero() {
        return Err(format!("rate {s:?}: the window must be longer than 0"));
    }
    Ok((n, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("5y").unwrap_err().contains("unit"));
        assert_eq!(parse_rate("5/15m").unwrap(), (5, Duration::from_secs(900)));
        assert!(parse_rate("5").unwrap_err().contains("COUNT/DURATION"));
        assert!(parse_rate("5/0s").is_err());
    }
}
