//! Small helpers the tests share: the clock, encodings, test SIIs, a seeded PRNG, signing text.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ledger_core::key::SignerKey;
use ledger_core::Hash;

use crate::*;

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

/// The current Unix time in seconds (the core's one clock).
pub use ledger_core::time::now_unix as now;

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A hash as standard base64.
pub fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// A hash as base64url with padding.
pub fn b64url(h: &Hash) -> String {
    URL_SAFE.encode(h)
}

/// A hash as base64url without padding.
pub fn b64url_nopad(h: &Hash) -> String {
    URL_SAFE_NO_PAD.encode(h)
}

/// A distinct, valid `mailto:` SII per number (bulk tests).
pub fn mail_sii(tag: &str, i: u64) -> String {
    format!("mailto:{tag}{i}@example.com")
}

/// A claim by `msp` of [`mail_sii`]`(tag, i)` for one fixed SSI at `time`, no tags, no
/// attestation: the filler entry of the bulk, crash and damage tests.
pub fn mail_claim(
    msp: &ledger_core::key::SignerKey,
    tag: &str,
    i: u64,
    time: u64,
) -> ledger_core::entry::Leaf {
    ledger_core::testkit::claim(
        msp,
        &mail_sii(tag, i),
        "mimi://msp-a.example/u/x",
        time,
        &[],
        None,
    )
}

/// A small deterministic PRNG (xorshift64*), so that random schedules are reproducible from the
/// printed seed (`LEDGER_E2E_SEED` overrides it).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `LEDGER_E2E_SEED` or the clock; prints the seed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("LEDGER_E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{what}: LEDGER_E2E_SEED={seed}");
        Rng::new(seed)
    }

    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
}

/// Signs arbitrary note text with `key` (for hand-made, possibly invalid, entries).
pub fn sign_text(text: &str, key: &SignerKey) -> Vec<u8> {
    let mut note = ledger_core::note::Note::new(text).expect("note text");
    note.sign(key).expect("sign note");
    note.to_bytes()
}

/// Copies a folder tree (a stopped log's data folder holds only files and folders).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs the `ledger` client with `--trust TRUST` and `args`: no standard input and no
/// `LEDGER_TRUST` from the test's environment.
pub fn ledger_cli(trust: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::workspace_binary("ledger-cli", "client", "ledger"))
        .arg("--trust")
        .arg(trust)
        .args(args)
        .env_remove("LEDGER_TRUST")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ledger")
}

/// The JSON object a command printed on standard output (from its first `{`), or `Null`.
pub fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .find('{')
        .and_then(|at| serde_json::from_str(&stdout[at..]).ok())
        .unwrap_or(serde_json::Value::Null)
}
