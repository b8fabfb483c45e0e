//! Alerts (SPEC §8): one JSON object per line, `{"time","kind","severity","log","index","sii","msp",
//! "detail"}`, and the stable id that makes delivery at-least-once without repeats.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SPEC §8 alert kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A watched SII claimed by an MSP not allowed for it.
    UnexpectedClaimant,
    /// Two MSPs map one SII.
    ConflictingClaim,
    /// A claim without a valid attestation by a trusted prover.
    UnattestedClaim,
    /// One MSP claims more than N distinct SIIs within a window.
    ClaimBurst,
    /// A prover revoked a mapping (R10).
    RevokedByProver,
    /// An entry that fails SPEC §3: the log should have refused it.
    BadEntry,
    /// A checkpoint whose log signature (or witness quorum) does not verify.
    BadCheckpointSignature,
    /// The entries do not hash to the checkpoint's root.
    RootMismatch,
    /// Two checkpoints that cannot both be true.
    InconsistentCheckpoint,
    /// Different views of the log were shown to different parties.
    SplitView,
    /// No new checkpoint for longer than configured.
    LogStalled,
}

impl Kind {
    /// Every kind, for metrics.
    pub const ALL: [Kind; 11] = [
        Kind::UnexpectedClaimant,
        Kind::ConflictingClaim,
        Kind::UnattestedClaim,
        Kind::ClaimBurst,
        Kind::RevokedByProver,
        Kind::BadEntry,
        Kind::BadCheckpointSignature,
        Kind::RootMismatch,
        Kind::InconsistentCheckpoint,
        Kind::SplitView,
        Kind::LogStalled,
    ];

    /// The wire name (`unexpected-claimant`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UnexpectedClaimant => "unexpected-claimant",
            Kind::ConflictingClaim => "conflicting-claim",
            Kind::UnattestedClaim => "unattested-claim",
            Kind::ClaimBurst => "claim-burst",
            Kind::RevokedByProver => "revoked-by-prover",
            Kind::BadEntry => "bad-entry",
            Kind::BadCheckpointSignature => "bad-checkpoint-signature",
            Kind::RootMismatch => "root-mismatch",
            Kind::InconsistentCheckpoint => "inconsistent-checkpoint",
            Kind::SplitView => "split-view",
            Kind::LogStalled => "log-stalled",
        }
    }

    /// How urgent the kind is: log misbehaviour and rogue claimants are critical.
    pub fn severity(self) -> Severity {
        match self {
            Kind::UnexpectedClaimant
            | Kind::BadEntry
            | Kind::BadCheckpointSignature
            | Kind::RootMismatch
            | Kind::InconsistentCheckpoint
            | Kind::SplitView => Severity::Critical,
            Kind::ConflictingClaim
            | Kind::UnattestedClaim
            | Kind::ClaimBurst
            | Kind::LogStalled => Severity::Warning,
            Kind::RevokedByProver => Severity::Info,
        }
    }
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone should look now.
    Critical,
    /// Someone should look.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One alert, in SPEC §8 field order (the JSON line is exactly these eight members).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When the monitor raised it, Unix seconds.
    pub time: u64,
    /// What happened.
    pub kind: Kind,
    /// How urgent.
    pub severity: Severity,
    /// The log's origin.
    pub log: String,
    /// The entry index, or for checkpoint alerts the checkpoint's size.
    pub index: Option<u64>,
    /// The SII concerned, if any.
    pub sii: Option<String>,
    /// The MSP concerned, if any.
    pub msp: Option<String>,
    /// A human-readable explanation.
    pub detail: String,
}

/// An alert with its stable id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identified {
    /// The stable id (see [`alert_id`]).
    pub id: String,
    /// The alert.
    pub alert: Alert,
}

impl Alert {
    /// A new alert of `kind` on `log`, raised now.
    pub fn new(kind: Kind, log: &str, index: Option<u64>, detail: impl Into<String>) -> Alert {
        Alert {
            time: now_unix(),
            kind,
            severity: kind.severity(),
            log: log.to_string(),
            index,
            sii: None,
            msp: None,
            detail: detail.into(),
        }
    }

    /// Sets the SII.
    pub fn sii(mut self, sii: impl Into<String>) -> Alert {
        self.sii = Some(sii.into());
        self
    }

    /// Sets the MSP.
    pub fn msp(mut self, msp: impl Into<String>) -> Alert {
        self.msp = Some(msp.into());
        self
    }

    /// The SPEC §8 JSON line (without the final newline).
    pub fn to_line(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Gives the alert its stable id, from what identifies the event (never the time it was
    /// noticed): `discriminator` separates distinct events with equal fields (e.g. the
    /// checkpoint root of a `root-mismatch`).
    pub fn identify(self, discriminator: &str) -> Identified {
        Identified {
            id: alert_id(&self, discriminator),
            alert: self,
        }
    }
}

/// The stable id of an alert: the first 16 bytes, hex, of SHA-256 over the log, kind, index, SII,
/// MSP and a discriminator. The same event found again (after a crash, a restart, or a second
/// check that sees it) gets the same id, so it is delivered once.
pub fn alert_id(a: &Alert, discriminator: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"mimi-ledger monitor alert v1\n");
    for part in [
        a.log.as_str(),
        a.kind.as_str(),
        &a.index.map(|i| i.to_string()).unwrap_or_default(),
        a.sii.as_deref().unwrap_or(""),
        a.msp.as_deref().unwrap_or(""),
        discriminator,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The current Unix time in seconds.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_exactly_the_spec_members_in_order() {
        let a = Alert::new(Kind::UnexpectedClaimant, "log.example", Some(7), "x")
            .sii("tel:+14155550100")
            .msp("rogue.example");
        let line = a.to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = vec![
            "time", "kind", "severity", "log", "index", "sii", "msp", "detail",
        ];
        assert!(line.starts_with("{\"time\":"));
        assert!(line.contains("\"kind\":\"unexpected-claimant\",\"severity\":\"critical\""));
        sorted.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, sorted);
        assert_eq!(v["index"], 7);
        let none = Alert::new(Kind::LogStalled, "l", None, "d").to_line();
        assert!(none.contains("\"index\":null,\"sii\":null,\"msp\":null"));
    }

    #[test]
    fn ids_are_stable_and_ignore_time() {
        let mut a = Alert::new(Kind::BadEntry, "l", Some(1), "d");
        let id1 = a.clone().identify("").id;
        a.time += 100;
        a.detail = "other words".into();
        assert_eq!(a.clone().identify("").id, id1);
        assert_ne!(a.clone().identify("root").id, id1);
        a.index = Some(2);
        assert_ne!(a.identify("").id, id1);
        for k in Kind::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
        }
    }
}
