//! Small helpers: durations (`365d`), UTC times, the prover outbox file naming, the exit-2 error,
//! and replacing a file crash-safely.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// A verification failure: `ledger` exits with status 2 and prints the failed step.
#[derive(Debug, thiserror::Error)]
#[error("VERIFICATION FAILED{}: {detail}", step.as_ref().map(|s| format!(" at step {s}")).unwrap_or_default())]
pub struct VerificationFailed {
    /// The SPEC §6 step name (`Step::as_str`), or `None` for receipts.
    pub step: Option<String>,
    /// What exactly failed.
    pub detail: String,
}

/// The current Unix time in seconds (the core's one clock).
pub use ledger_core::time::now_unix as now;

/// Parses a duration such as `90s`, `15m`, `24h`, `365d` or `2w` into seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let Ok(n) = num.parse::<u64>() else {
        bail!("duration {s:?}: expected a number followed by s, m, h, d or w (e.g. 365d)");
    };
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => bail!("duration {s:?}: unknown unit {other:?} (use s, m, h, d or w)"),
    };
    match n.checked_mul(mult) {
        Some(v) => Ok(v),
        None => bail!("duration {s:?} is too large"),
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn utc(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The file name the example identity prover's outbox uses for an SII: every byte outside
/// `[A-Za-z0-9.+@_-]` percent-encoded, so that the name is injective and safe on any file system.
/// (`examples/idprover` uses the same rule.)
pub fn outbox_file_name(sii: &str) -> String {
    let mut out = String::with_capacity(sii.len() + 8);
    for b in sii.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'@' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".txt");
    out
}

/// Replaces `path` with `contents` crash-safely: written to `<path>.tmp`, synced, renamed over
/// `path`, then the folder is synced. A crash (even `kill -9`) at any point leaves either the old
/// file or the new one, never a mix or a truncated file; a stale `.tmp` from such a crash is simply
/// overwritten next time. (The client's trust file and `ledger watch`'s state file; the log's
/// checkpoint lock and the monitor's snapshots follow the same steps in their own crates.)
pub fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = {
        let mut s = path.as_os_str().to_os_string();
        s.push(".tmp");
        PathBuf::from(s)
    };
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    sync_parent(path)
}

/// Syncs the folder holding `path`, so that a rename into it survives a crash.
#[cfg(unix)]
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", parent.display()))
}

/// Other systems cannot open a folder to sync it; the file itself was synced.
#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_replaces_and_ignores_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace_file(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        // What a crash while writing the temporary file leaves behind.
        std::fs::write(dir.path().join("state.json.tmp"), b"half of a fi").unwrap();
        replace_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!dir.path().join("state.json.tmp").exists());
        let err = replace_file(&dir.path().join("missing/state.json"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("365d").unwrap(), 365 * 86_400);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86_400);
        assert!(parse_duration("d")
            .unwrap_err()
            .to_string()
            .contains("number"));
        assert!(parse_duration("5y")
            .unwrap_err()
            .to_string()
            .contains("unit"));
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_764_158_400), "2025-11-26T12:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn outbox_names() {
        assert_eq!(
            outbox_file_name("tel:+14155550100"),
            "tel%3A+14155550100.txt"
        );
        assert_eq!(
            outbox_file_name("mailto:a/b@x.example"),
            "mailto%3Aa%2Fb@x.example.txt"
        );
    }
}
