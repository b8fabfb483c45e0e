//! The trust file: what this client trusts about one log (TOML, written by `ledger trust init`).
//!
//! It pins the log's origin, verifier key and tree hash, the witnesses and their quorum, an optional
//! maximum checkpoint age, the provers whose attestations count, and whether attestations are
//! required — the inputs of SPEC §6. It also remembers the largest checkpoint size a verified lookup
//! has shown, so that a Discovery Provider cannot later roll this client back to an older view of the
//! log (`Trust::min_size`).

use std::path::Path;

use anyhow::{bail, Context as _};
pub use ledger_core::trust_file::TrustFile;

use crate::util::replace_file;

const HEADER: &str = "\
# mimi-ledger client trust file (see docs/client.md).
# Everything `ledger` verifies is checked against these values: review them before relying on them.
# last_seen_size is updated by `ledger lookup` after each verified answer (rollback protection).
";

/// What the CLI adds to the trust file of `ledger_core::trust_file`: reading and writing it as
/// TOML on disk, and the log URL a command falls back to.
pub trait TrustFileExt: Sized {
    /// Reads and checks a trust file.
    fn load(path: &Path) -> anyhow::Result<Self>;
    /// Writes the trust file crash-safely ([`replace_file`]: temporary file, sync, rename).
    fn save(&self, path: &Path) -> anyhow::Result<()>;
    /// The log URL: the one given on the command line, else the trust file's.
    fn url(&self, given: Option<&str>, flag: &str) -> anyhow::Result<String>;
}

impl TrustFileExt for TrustFile {
    fn load(path: &Path) -> anyhow::Result<TrustFile> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the trust file {} (create one with `ledger trust init --log URL`)",
                path.display()
            )
        })?;
        let file: TrustFile = toml::from_str(&text)
            .with_context(|| format!("trust file {} is not valid", path.display()))?;
        file.trust()
            .with_context(|| format!("trust file {} is not valid", path.display()))?;
        Ok(file)
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let body = toml::to_string(self).context("cannot serialize the trust file")?;
        replace_file(path, format!("{HEADER}\n{body}").as_bytes())
            .with_context(|| format!("cannot save the trust file {}", path.display()))
    }

    fn url(&self, given: Option<&str>, flag: &str) -> anyhow::Result<String> {
        match given.or(self.log_url.as_deref()) {
            Some(u) => Ok(u.trim_end_matches('/').to_string()),
            None => bail!("no {flag} given and the trust file has no log_url"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::test_key;
    use ledger_core::trust::TrustedLog;
    use ledger_core::TreeHash;

    fn sample() -> TrustFile {
        let log = TrustedLog::new(test_key("log.example").verifier(), TreeHash::Blake3);
        let mut t = TrustFile::for_log(Some("http://127.0.0.1:1".into()), &log);
        t.provers = vec![test_key("prover.example").verifier().to_string()];
        t.require_attestation = true;
        t.last_seen_size = 7;
        t
    }

    #[test]
    fn round_trips_and_converts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.toml");
        let t = sample();
        t.save(&path).unwrap();
        let back = TrustFile::load(&path).unwrap();
        assert_eq!(back, t);
        let trust = back.trust().unwrap();
        assert_eq!(trust.min_size, 7);
        assert!(trust.require_attestation);
        assert_eq!(trust.provers.len(), 1);
        assert_eq!(trust.origin(), "log.example");
    }
}
