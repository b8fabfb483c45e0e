//! The trust file: what a client trusts about one log, in the form `ledger trust init` writes it
//! (TOML on disk, any serde format in memory).
//!
//! It pins the log's origin, verifier key and tree hash, the witnesses and their quorum, an optional
//! maximum checkpoint age, the provers whose attestations count, and whether attestations are
//! required — the inputs of SPEC §6 — and remembers the largest checkpoint size a verified lookup
//! has shown, so that a Discovery Provider cannot roll a client back to an older view of the log
//! ([`Trust::min_size`]).
//!
//! The type lives here, not in the client, because three readers must agree on it: the `ledger`
//! CLI, DP mirrors (`log-server --mirror-of … --trust FILE`) and the web explorer, which loads the
//! very same file in the browser through `ledger-wasm`. Reading the file (TOML, paths) stays with
//! each reader; what the fields mean and how they are checked is written once, in
//! [`TrustFile::trust`].

use serde::{Deserialize, Serialize};

use crate::hash::TreeHash;
use crate::key::VerifierKey;
use crate::lookup::Trust;
use crate::trust::{TrustError, TrustedLog};

/// The fields of a trust file.
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

/// Why a trust file's content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustFileError {
    /// The log description (origin, key, witnesses, quorum) is wrong.
    #[error(transparent)]
    Log(#[from] TrustError),
    /// A prover key does not parse.
    #[error("prover key {key:?}: {reason}")]
    BadProverKey {
        /// The key as written.
        key: String,
        /// Why it does not parse.
        reason: String,
    },
}

impl TrustFile {
    /// A trust file for `log` as it describes itself (trust on first use): no provers, no
    /// attestation requirement, no size seen yet.
    pub fn for_log(log_url: Option<String>, log: &TrustedLog) -> TrustFile {
        TrustFile {
            log_url,
            origin: log.origin().to_string(),
            log_vkey: log.log_key.to_string(),
            hash: log.hash,
            witnesses: log.witnesses.iter().map(ToString::to_string).collect(),
            quorum: log.quorum,
            max_age_s: log.max_age_s,
            provers: Vec::new(),
            require_attestation: false,
            last_seen_size: 0,
            ohttp_keys: None,
        }
    }

    /// The log as this file describes it, checked as every verifier checks it (a witness key of
    /// the wrong type is refused by name).
    pub fn log(&self) -> Result<TrustedLog, TrustError> {
        TrustedLog::parse(
            &self.origin,
            &self.log_vkey,
            self.hash,
            &self.witnesses,
            self.quorum,
            self.max_age_s,
        )
    }

    /// The SPEC §6 trust inputs, after checking that the file is consistent.
    pub fn trust(&self) -> Result<Trust, TrustFileError> {
        let log = self.log()?;
        let provers = self
            .provers
            .iter()
            .map(|k| {
                VerifierKey::parse(k).map_err(|e| TrustFileError::BadProverKey {
                    key: k.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            log,
            provers,
            require_attestation: self.require_attestation,
            min_size: self.last_seen_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{test_key, test_witness_key};

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
    fn converts_to_the_section_6_inputs() {
        let trust = sample().trust().unwrap();
        assert_eq!(trust.min_size, 7);
        assert!(trust.require_attestation);
        assert_eq!(trust.provers.len(), 1);
        assert_eq!(trust.origin(), "log.example");
    }

    #[test]
    fn refuses_inconsistent_files_naming_the_value() {
        let mut t = sample();
        t.origin = "other.example".into();
        assert!(t.trust().unwrap_err().to_string().contains("origin"));
        let mut t = sample();
        t.quorum = 1;
        assert!(t.trust().unwrap_err().to_string().contains("quorum"));
        let mut t = sample();
        t.provers = vec!["nonsense".into()];
        let err = t.trust().unwrap_err();
        assert!(
            matches!(&err, TrustFileError::BadProverKey { key, .. } if key == "nonsense"),
            "{err}"
        );
        let mut t = sample();
        let ed25519 = test_key("w.example/1").verifier().to_string();
        t.witnesses = vec![ed25519.clone()];
        let err = t.trust().unwrap_err().to_string();
        assert!(
            err.contains(&ed25519) && err.contains("cosignature/v1"),
            "{err}"
        );
    }

    #[test]
    fn a_file_for_a_log_describes_that_log() {
        let w = test_witness_key("w.example/1").verifier();
        let log = TrustedLog::new(test_key("log.example").verifier(), TreeHash::Sha256)
            .with_witnesses(vec![w], 1)
            .unwrap();
        let file = TrustFile::for_log(None, &log);
        assert_eq!(file.log().unwrap(), log);
        assert_eq!(file.trust().unwrap().min_size, 0);
    }
}
