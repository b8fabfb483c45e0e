//! The JSON shapes the explorer reads: what each export found, in words a page can show.
//!
//! They are reports, not protocol: a page renders them and never re-derives a verdict from the
//! raw answer. Each verdict (`ok`) is the one `ledger-core` computed; a failed verification
//! carries no mappings or history, so a page cannot show unverified data as verified by mistake.

use ledger_core::api::b64::encode_hash;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Entry, Leaf};
use ledger_core::key::VerifierKey;
use ledger_core::lookup::Step;
use ledger_core::state::Mapping;
use ledger_core::trust_file::TrustFile;
use serde::Serialize;

/// Every step of SPEC §6 in the order `verify_lookup` runs them.
pub const LOOKUP_STEPS: [Step; 8] = [
    Step::Checkpoint,
    Step::Witnesses,
    Step::Rollback,
    Step::Inclusion,
    Step::Keys,
    Step::Entries,
    Step::Fold,
    Step::Completeness,
];

/// What a step checks, for a person.
pub fn step_title(step: Step) -> &'static str {
    match step {
        Step::Malformed => "The answer is well-formed",
        Step::Checkpoint => "The checkpoint is signed by the log",
        Step::Witnesses => "Enough witnesses cosigned the checkpoint, recently enough",
        Step::Rollback => "The checkpoint is not older than one already seen",
        Step::Inclusion => "Every entry and key is in the log (inclusion proofs)",
        Step::Keys => "The signers' keys were enrolled by the log",
        Step::Entries => "Every entry is about this identifier and validly signed",
        Step::Fold => "The entries give exactly the claimed status and mappings",
        Step::Completeness => "Nothing was left out: the map proves these are all the entries (§9)",
    }
}

/// One verification step and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The SPEC §6 step number (0 for a malformed answer).
    pub number: u8,
    /// The stable step name (as `ledger lookup` prints it).
    pub name: &'static str,
    /// What the step checks.
    pub title: &'static str,
    /// `ok`, `failed` or `not-reached`.
    pub result: &'static str,
    /// Why it failed (empty otherwise).
    pub detail: String,
}

/// The steps of `all`, each `ok` before `failed`, the failed one with its detail, the rest
/// not reached. A failure at a step outside `all` (a malformed answer) is listed first.
pub fn steps(all: &[Step], failed: Option<(Step, &str)>) -> Vec<StepReport> {
    let mut out = Vec::new();
    let report = |s: Step, result: &'static str, detail: &str| StepReport {
        number: s.number(),
        name: s.as_str(),
        title: step_title(s),
        result,
        detail: detail.to_string(),
    };
    let mut reached_failure = false;
    if let Some((s, detail)) = failed {
        if !all.contains(&s) {
            out.push(report(s, "failed", detail));
            reached_failure = true;
        }
    }
    for &s in all {
        match failed {
            _ if reached_failure => out.push(report(s, "not-reached", "")),
            Some((f, detail)) if f == s => {
                out.push(report(s, "failed", detail));
                reached_failure = true;
            }
            _ => out.push(report(s, "ok", "")),
        }
    }
    out
}

/// The failed step, when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The SPEC §6 step number.
    pub number: u8,
    /// The stable step name.
    pub name: &'static str,
    /// What exactly was wrong.
    pub detail: String,
}

/// A checkpoint's tree head.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointReport {
    /// The log origin.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash, base64.
    pub root_hash: String,
}

impl From<&SignedCheckpoint> for CheckpointReport {
    fn from(c: &SignedCheckpoint) -> Self {
        CheckpointReport {
            origin: c.checkpoint.origin.clone(),
            size: c.checkpoint.size,
            root_hash: encode_hash(&c.checkpoint.root),
        }
    }
}

/// A witness cosignature that verified.
#[derive(Debug, Clone, Serialize)]
pub struct Cosigner {
    /// The witness name.
    pub name: String,
    /// The witness verifier key.
    pub key: String,
    /// When it cosigned (Unix seconds).
    pub timestamp: u64,
    /// How long ago, at the verification's `now` (0 if in the future).
    pub age_s: u64,
}

/// The cosigners as reports, at time `now`.
pub fn cosigners(list: &[(VerifierKey, u64)], now: u64) -> Vec<Cosigner> {
    list.iter()
        .map(|(k, t)| Cosigner {
            name: k.name().to_string(),
            key: k.to_string(),
            timestamp: *t,
            age_s: now.saturating_sub(*t),
        })
        .collect()
}

/// A current mapping.
#[derive(Debug, Clone, Serialize)]
pub struct MappingReport {
    /// The index of the claim that set it.
    pub index: u64,
    /// The MSP.
    pub msp: String,
    /// The user at the MSP.
    pub ssi: String,
    /// Preference tags.
    pub tags: Vec<String>,
    /// The prover whose attestation the claim carries.
    pub attested_by: Option<String>,
    /// The claim's time (Unix seconds).
    pub since: u64,
    /// When it stops being current, if ever.
    pub expires: Option<u64>,
}

impl From<&Mapping> for MappingReport {
    fn from(m: &Mapping) -> Self {
        MappingReport {
            index: m.index,
            msp: m.msp.as_str().to_string(),
            ssi: m.ssi.as_str().to_string(),
            tags: m.tags.iter().map(|t| t.as_str().to_string()).collect(),
            attested_by: m.attested_by.clone(),
            since: m.time,
            expires: m.expires,
        }
    }
}

/// One entry, described (parsing only; whether it was verified is said by who returns it).
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    /// `enroll`, `claim`, `revoke`, `optout` or `map`.
    pub kind: &'static str,
    /// The SII, for claims, revokes and opt-outs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sii: Option<String>,
    /// The MSP (claims, revokes) or the enrolled name (enrolls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msp: Option<String>,
    /// The SSI (claims, revokes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssi: Option<String>,
    /// The tags (claims).
    pub tags: Vec<String>,
    /// The entry's time (Unix seconds); absent for map leaves.
    pub time: Option<u64>,
    /// The name of the leaf's signer.
    pub signer: String,
    /// The prover whose attestation the entry carries, if any.
    pub attested_by: Option<String>,
    /// One line for a person.
    pub summary: String,
}

/// Describes `entry`, signed by `signer`.
pub fn describe(entry: &Entry, signer: &str) -> EntryReport {
    let mut r = EntryReport {
        kind: entry.kind(),
        sii: entry.sii().map(|s| s.as_str().to_string()),
        msp: None,
        ssi: None,
        tags: Vec::new(),
        time: entry.time(),
        signer: signer.to_string(),
        attested_by: entry.attestation().map(|a| a.signer_name().to_string()),
        summary: String::new(),
    };
    r.summary = match entry {
        Entry::Enroll(e) => {
            r.msp = Some(e.name.as_str().to_string());
            format!("the log enrolls {} as {}", e.name.as_str(), e.role.as_str())
        }
        Entry::Claim(c) => {
            r.msp = Some(c.msp.as_str().to_string());
            r.ssi = Some(c.ssi.as_str().to_string());
            r.tags = c.tags.iter().map(|t| t.as_str().to_string()).collect();
            format!(
                "{} claims {} for {}",
                c.msp.as_str(),
                c.sii.as_str(),
                c.ssi.as_str()
            )
        }
        Entry::Revoke(v) => {
            r.msp = Some(v.msp.as_str().to_string());
            r.ssi = Some(v.ssi.as_str().to_string());
            format!(
                "{} is no longer mapped to {} at {}",
                v.sii.as_str(),
                v.ssi.as_str(),
                v.msp.as_str()
            )
        }
        Entry::Optout(o) => format!("{} opted out of discovery", o.sii.as_str()),
        Entry::Map(m) => format!(
            "the log commits to the map of its first {} leaves (root {})",
            m.size,
            encode_hash(&m.root)
        ),
    };
    r
}

/// Describes a parsed leaf.
pub fn describe_leaf(leaf: &Leaf) -> EntryReport {
    describe(leaf.entry(), leaf.signer_name())
}

/// A trust file's content as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TrustReport {
    /// The log origin.
    pub origin: String,
    /// The log's verifier key.
    pub log_vkey: String,
    /// The tree hash.
    pub hash: String,
    /// Witness verifier keys.
    pub witnesses: Vec<String>,
    /// Cosignatures needed.
    pub quorum: usize,
    /// Maximum age of the newest cosignature, if set.
    pub max_age_s: Option<u64>,
    /// Provers whose attestations count (all when empty).
    pub provers: Vec<String>,
    /// Whether every mapping must be attested.
    pub require_attestation: bool,
    /// The largest size already seen.
    pub last_seen_size: u64,
}

impl From<&TrustFile> for TrustReport {
    fn from(t: &TrustFile) -> Self {
        TrustReport {
            origin: t.origin.clone(),
            log_vkey: t.log_vkey.clone(),
            hash: t.hash.to_string(),
            witnesses: t.witnesses.clone(),
            quorum: t.quorum,
            max_age_s: t.max_age_s,
            provers: t.provers.clone(),
            require_attestation: t.require_attestation,
            last_seen_size: t.last_seen_size,
        }
    }
}
