//! The trust file: what this client trusts about one log (TOML, written by `ledger trust init`).
//!
//! It pins the log's origin, verifier key and tree hash, the witnesses and their quorum, an optional
//! maximum checkpoint age, the provers whose attestations count, and whether attestations are
//! required — the inputs of SPEC §6. It also remembers the largest checkpoint size a verified lookup
//! has shown, so that a Discovery Provider cannot later roll this client back to an older view of the
//! log (`Trust::min_size`).

use std::path::Path;

use anyhow::{bail, Context as _};
use ledger_core::key::VerifierKey;
use ledger_core::lookup::Trust;
use ledger_core::trust::TrustedLog;
use ledger_core::TreeHash;
use serde::{Deserialize, Serialize};

use crate::util::replace_file;

/// The on-disk form of a trust file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// The log's base URL, used when a command gets no `--log`/`--dp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The log origin; must equal the name of `log_vkey`.
    pub origin: String,
    /// The log's verifier key (`<origin>+<key id>+<base64>`).
    pub log_vkey: String,
    /// The tree hash (`blake3` or `sha256`).
    pub hash: TreeHash,
    /// Witness verifier keys (`cosignature/v1`).
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// How many distinct witness cosignatures a checkpoint needs (0 = none).
    #[serde(default)]
    pub quorum: usize,
    /// The newest witness cosignature must be at most this many seconds old, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
    /// When non-empty, only attestations by these prover keys count.
    #[serde(default)]
    pub provers: Vec<String>,
    /// Whether every claim must carry a valid attestation.
    #[serde(default)]
    pub require_attestation: bool,
    /// The largest checkpoint size a verified lookup has shown; a smaller one is a rollback.
    #[serde(default)]
    pub last_seen_size: u64,
    /// The log's OHTTP gateway key configuration list (`/ohttp-keys`, base64), pinned for
    /// `ledger lookup --relay` (see docs/privacy.md); absent in older trust files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ohttp_keys: Option<String>,
}

const HEADER: &str = "\
# mimi-ledger client trust file (see docs/client.md).
# Everything `ledger` verifies is checked against these values: review them before relying on them.
# last_seen_size is updated by `ledger lookup` after each verified answer (rollback protection).
";

impl TrustFile {
    /// Reads and checks a trust file.
    pub fn load(path: &Path) -> anyhow::Result<TrustFile> {
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

    /// Writes the trust file crash-safely ([`replace_file`]: temporary file, sync, rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let body = toml::to_string(self).context("cannot serialize the trust file")?;
        replace_file(path, format!("{HEADER}\n{body}").as_bytes())
            .with_context(|| format!("cannot save the trust file {}", path.display()))
    }

    /// The SPEC §6 trust inputs, after checking that the file is consistent.
    pub fn trust(&self) -> anyhow::Result<Trust> {
        // The log's key, witnesses and quorum are checked as every verifier checks them (a
        // witness key of the wrong type is refused here, by name).
        let log = TrustedLog::parse(
            &self.origin,
            &self.log_vkey,
            self.hash,
            &self.witnesses,
            self.quorum,
            self.max_age_s,
        )?;
        let provers = self
            .provers
            .iter()
            .map(|k| VerifierKey::parse(k).map_err(|e| anyhow::anyhow!("prover key {k:?}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Trust {
            log,
            provers,
            require_attestation: self.require_attestation,
            min_size: self.last_seen_size,
        })
    }

    /// The log URL: the one given on the command line, else the trust file's.
    pub fn url(&self, given: Option<&str>, flag: &str) -> anyhow::Result<String> {
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

    fn sample() -> TrustFile {
        TrustFile {
            log_url: Some("http://127.0.0.1:1".into()),
            origin: "log.example".into(),
            log_vkey: test_key("log.example").verifier().to_string(),
            hash: TreeHash::Blake3,
            witnesses: vec![],
            quorum: 0,
            max_age_s: None,
            provers: vec![test_key("prover.example").verifier().to_string()],
            require_attestation: true,
            last_seen_size: 7,
            ohttp_keys: None,
        }
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

    #[test]
    fn rejects_inconsistent_files() {
        let mut t = sample();
        t.origin = "other.example".into();
        assert!(t.trust().unwrap_err().to_string().contains("origin"));
        let mut t = sample();
        t.quorum = 1;
        assert!(t.trust().unwrap_err().to_string().contains("quorum"));
        let mut t = sample();
        t.provers = vec!["nonsense".into()];
        assert!(t.trust().unwrap_err().to_string().contains("prover key"));
        let mut t = sample();
        let ed25519 = test_key("w.example/1").verifier().to_string();
        t.witnesses = vec![ed25519.clone()];
        let err = t.trust().unwrap_err().to_string();
        assert!(
            err.contains(&ed25519) && err.contains("cosignature/v1"),
            "{err}"
        );
        let err = toml::from_str::<TrustFile>("origin = 1").unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
