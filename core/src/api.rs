//! The JSON wire types: the log's API (SPEC §5), the auditor's audit answer and evidence (§7), and
//! the alert line that monitors and auditors emit (§8). Shared by the services, the client and
//! tests.
//!
//! Hashes and proofs are standard base64 on the wire; leaves and checkpoints are the note text as a
//! JSON string (notes are UTF-8 by construction). Defining them once keeps server and clients in
//! step, and lets every party compare verdicts and alert kinds as enums, never as strings.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::admission::Policy;
use crate::checkpoint::Checkpoint;
use crate::hash::{to_hex, Hash, TreeHash};
use crate::map::MapProof;
use crate::problem::ProblemType;
use crate::state::Status;

/// Serde adapters for hashes as standard base64 strings.
pub mod b64 {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use crate::hash::Hash;

    /// Decodes one standard-base64 hash of exactly 32 bytes.
    pub fn decode_hash(s: &str) -> Result<Hash, String> {
        let bytes = B64
            .decode(s)
            .map_err(|e| format!("bad base64 hash {s:?}: {e}"))?;
        Hash::try_from(bytes.as_slice())
            .map_err(|_| format!("hash {s:?} is {} bytes, expected 32", bytes.len()))
    }

    /// Encodes a hash as standard base64.
    pub fn encode_hash(h: &Hash) -> String {
        B64.encode(h)
    }

    /// `#[serde(with = "b64::hash")]` for one hash.
    pub mod hash {
        use super::*;

        /// Serializes a hash as base64.
        pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&encode_hash(h))
        }

        /// Deserializes a base64 hash of 32 bytes.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
            let s = String::deserialize(d)?;
            decode_hash(&s).map_err(D::Error::custom)
        }
    }

    /// `#[serde(with = "b64::hashes")]` for a list of hashes (a proof).
    pub mod hashes {
        use super::*;
        use serde::ser::SerializeSeq as _;

        /// Serializes hashes as a list of base64 strings.
        pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(hs.len()))?;
            for h in hs {
                seq.serialize_element(&encode_hash(h))?;
            }
            seq.end()
        }

        /// Deserializes a list of base64 hashes of 32 bytes each.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
            let v = Vec::<String>::deserialize(d)?;
            v.iter()
                .map(|s| decode_hash(s).map_err(D::Error::custom))
                .collect()
        }
    }
}

/// JSON Schemas of the wire forms that serde adapters write, for the log-server's OpenAPI
/// document (the `openapi` feature): the types themselves are byte arrays, their JSON is a string.
#[cfg(feature = "openapi")]
pub mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    /// A 32-byte hash as [`super::b64`] writes it: standard base64 with padding, 44 characters.
    #[derive(Debug, Clone, Copy)]
    pub struct B64Hash;

    /// The pattern of [`B64Hash`]: 43 base64 characters, the last of which carries 2 bits of the
    /// 32nd byte, and one `=`.
    pub const B64_HASH_PATTERN: &str = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";

    impl utoipa::PartialSchema for B64Hash {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "A 32-byte hash, standard base64 (RFC 4648 §4) with padding.",
                ))
                .content_encoding("base64")
                .min_length(Some(44))
                .max_length(Some(44))
                .pattern(Some(B64_HASH_PATTERN))
                .examples(["LJPNbE0kJcuwmoW+3WFUjvo7NR5ra2Iv/WH4P+QS37c="])
                .into()
        }
    }

    impl utoipa::ToSchema for B64Hash {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Hash")
        }
    }
}

/// `POST /v1/add` answer: where the leaf is, and proof that a signed checkpoint covers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The leaf's index.
    pub index: u64,
    /// The leaf hash.
    #[serde(with = "b64::hash")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::api::schema::B64Hash))]
    pub leaf_hash: Hash,
    /// The signed checkpoint note (text) the inclusion proof is against.
    pub checkpoint: String,
    /// The RFC 9162 inclusion proof.
    #[serde(with = "b64::hashes")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::api::schema::B64Hash>))]
    pub inclusion: Vec<Hash>,
}

/// `GET /v1/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Info {
    /// The log origin (also its key name).
    pub origin: String,
    /// The log's verifier key.
    pub vkey: String,
    /// The tree hash.
    pub hash: TreeHash,
    /// The current tree size.
    pub size: u64,
    /// Witness verifier keys.
    pub witnesses: Vec<String>,
    /// How many witness cosignatures the log waits for.
    pub quorum: usize,
    /// The admission policy.
    pub policy: Policy,
}

/// One leaf with its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexedLeaf {
    /// The leaf index.
    pub index: u64,
    /// The leaf note text.
    pub leaf: String,
}

/// `GET /v1/entries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntriesPage {
    /// The leaves, in index order.
    pub entries: Vec<IndexedLeaf>,
}

/// `GET /v1/proof/inclusion`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The RFC 9162 inclusion proof.
    #[serde(with = "b64::hashes")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::api::schema::B64Hash>))]
    pub inclusion: Vec<Hash>,
}

/// `GET /v1/proof/consistency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The RFC 9162 consistency proof.
    #[serde(with = "b64::hashes")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::api::schema::B64Hash>))]
    pub consistency: Vec<Hash>,
}

/// A leaf with its inclusion proof against the answer's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenLeaf {
    /// The leaf index.
    pub index: u64,
    /// The leaf note text.
    pub leaf: String,
    /// The RFC 9162 inclusion proof against the answer's checkpoint.
    #[serde(with = "b64::hashes")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::api::schema::B64Hash>))]
    pub inclusion: Vec<Hash>,
}

/// `GET /v1/lookup` — the Discovery Provider's answer (SPEC §5, verified per §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupAnswer {
    /// The SII asked about (canonical).
    pub sii: String,
    /// The signed (and possibly cosigned) checkpoint note every proof is against.
    pub checkpoint: String,
    /// The status the DP claims.
    pub status: Status,
    /// The indices of the current claims, as the DP claims.
    pub mappings: Vec<u64>,
    /// Every leaf for the SII, in log order.
    pub entries: Vec<ProvenLeaf>,
    /// Every enroll leaf of every signer name of those entries and of their attestations.
    pub keys: Vec<ProvenLeaf>,
    /// The completeness proof (SPEC §9): the map leaf that ends the checkpoint, and the map proofs
    /// of the SII and of each signer name. Absent only against the empty checkpoint (size 0), which
    /// has no map leaf; a client rejects an answer without it at step 5 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub map: Option<LookupMap>,
}

/// The `map` field of a lookup answer (SPEC §5, §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupMap {
    /// The map leaf's index: the checkpoint's size − 1.
    pub index: u64,
    /// The map leaf note text.
    pub leaf: String,
    /// The map leaf's RFC 9162 inclusion proof against the answer's checkpoint.
    #[serde(with = "b64::hashes")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::api::schema::B64Hash>))]
    pub inclusion: Vec<Hash>,
    /// The SII's proof: presence of the chain of `entries`, or absence when there are none.
    pub sii: MapProof,
    /// One presence proof per signer name in `keys`, of the chain of that name's enroll leaves.
    pub signers: Vec<SignerProof>,
}

/// One signer name's map proof in [`LookupMap::signers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignerProof {
    /// The signer (enrolled) name.
    pub name: String,
    /// The presence proof of the chain of the name's enroll leaves.
    pub proof: MapProof,
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `urn:mimi-ledger:problem:<slug>`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = ProblemType))]
    pub type_: String,
    /// A short human title.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly was wrong.
    pub detail: String,
}

impl Problem {
    /// A problem document of type `kind` with `detail`.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Problem {
        Problem {
            type_: kind.uri(),
            title: kind.title().to_string(),
            status: kind.status(),
            detail: detail.into(),
        }
    }

    /// The slug of `type_`, if it is one of ours.
    pub fn kind(&self) -> Option<ProblemType> {
        self.type_
            .strip_prefix("urn:mimi-ledger:problem:")
            .and_then(ProblemType::from_slug)
    }
}

// ---------------------------------------------------------------------------------------------
// SPEC §7: the audit answer and evidence.
// ---------------------------------------------------------------------------------------------

/// The SPEC §7 verdict on a checkpoint someone was shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Validly signed and consistent with the auditor's view.
    Consistent,
    /// Validly signed and contradicting the auditor's view: `evidence` holds both notes.
    Inconsistent,
    /// The origin is not a log this auditor witnesses.
    UnknownLog,
    /// The note is malformed or not signed by the log, or the auditor cannot decide (no view
    /// yet, or no consistency proof could be obtained from the log).
    Unverifiable,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Consistent => "consistent",
            Verdict::Inconsistent => "inconsistent",
            Verdict::UnknownLog => "unknown-log",
            Verdict::Unverifiable => "unverifiable",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of `POST /v1/audit`: `{"verdict", "evidence", "detail"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnswer {
    /// The verdict.
    pub verdict: Verdict,
    /// For `inconsistent`, the evidence (both signed notes); otherwise `null`.
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// Why, in words.
    #[serde(default)]
    pub detail: String,
}

impl AuditAnswer {
    /// An answer without evidence.
    pub fn new(verdict: Verdict, detail: impl Into<String>) -> AuditAnswer {
        AuditAnswer {
            verdict,
            evidence: None,
            detail: detail.into(),
        }
    }
}

/// What kind of contradiction two checkpoints of a piece of evidence show; also its alert kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// Same tree size, different root hashes: the log showed two different trees.
    SplitView,
    /// Different sizes and the log's consistency proof between them does not verify.
    InconsistentCheckpoint,
}

impl EvidenceKind {
    /// The SPEC §8 alert kind.
    pub fn alert_kind(self) -> AlertKind {
        match self {
            EvidenceKind::SplitView => AlertKind::SplitView,
            EvidenceKind::InconsistentCheckpoint => AlertKind::InconsistentCheckpoint,
        }
    }

    /// The SPEC §8 alert kind's wire name.
    pub fn as_str(self) -> &'static str {
        self.alert_kind().as_str()
    }
}

/// One of the two checkpoints of a piece of evidence: the full signed note, and when and from
/// where it was received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The signed checkpoint note, exactly as received (log signature, any cosignatures).
    pub note: String,
    /// Where it came from, e.g. `add-checkpoint`, `log http://…`, `peer http://…`, `audit`,
    /// or `witness state` (the auditor's own cosigned view).
    pub source: String,
    /// When it was received (Unix seconds).
    pub seen: u64,
}

/// Two log-signed checkpoints that cannot both be true (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable ID: hex SHA-256 over the two checkpoint texts (sorted), so that the same
    /// contradiction seen again is stored once (see [`evidence_id`]).
    pub id: String,
    /// The contradiction.
    pub kind: EvidenceKind,
    /// The log's origin.
    pub log: String,
    /// When it was detected (Unix seconds).
    pub detected: u64,
    /// Human-readable explanation.
    pub detail: String,
    /// The two checkpoints.
    pub checkpoints: [Observation; 2],
}

impl Evidence {
    /// Builds evidence from two checkpoints; the ID depends only on the two checkpoint texts.
    pub fn new(
        kind: EvidenceKind,
        a: (&Checkpoint, Observation),
        b: (&Checkpoint, Observation),
        detail: String,
        now: u64,
    ) -> Evidence {
        Evidence {
            id: evidence_id(a.0, b.0),
            kind,
            log: a.0.origin.clone(),
            detected: now,
            detail,
            checkpoints: [a.1, b.1],
        }
    }
}

/// `hex(SHA-256("mimi-ledger evidence\n" ‖ min(text) ‖ max(text)))`.
pub fn evidence_id(a: &Checkpoint, b: &Checkpoint) -> String {
    let (ta, tb) = (a.to_text(), b.to_text());
    let (lo, hi) = if ta <= tb { (ta, tb) } else { (tb, ta) };
    let mut h = Sha256::new();
    h.update(b"mimi-ledger evidence\n");
    h.update(lo.as_bytes());
    h.update(hi.as_bytes());
    to_hex(&h.finalize())
}

// ---------------------------------------------------------------------------------------------
// SPEC §8: the alert line.
// ---------------------------------------------------------------------------------------------

/// The SPEC §8 alert kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
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
    /// A watched SII has a new entry (claim, revoke or opt-out) that no other kind describes: the
    /// plain change an owner watching its own SIIs is told about (`ledger watch`).
    NewEntry,
    /// A map leaf whose `size` is not its own index or whose `root` is not the map of the leaves
    /// before it, or a checkpoint that does not end in a map leaf (SPEC §9).
    BadMapRoot,
}

impl AlertKind {
    /// Every kind, for metrics.
    pub const ALL: [AlertKind; 13] = [
        AlertKind::UnexpectedClaimant,
        AlertKind::ConflictingClaim,
        AlertKind::UnattestedClaim,
        AlertKind::ClaimBurst,
        AlertKind::RevokedByProver,
        AlertKind::BadEntry,
        AlertKind::BadCheckpointSignature,
        AlertKind::RootMismatch,
        AlertKind::InconsistentCheckpoint,
        AlertKind::SplitView,
        AlertKind::LogStalled,
        AlertKind::NewEntry,
        AlertKind::BadMapRoot,
    ];

    /// The wire name (`unexpected-claimant`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::UnexpectedClaimant => "unexpected-claimant",
            AlertKind::ConflictingClaim => "conflicting-claim",
            AlertKind::UnattestedClaim => "unattested-claim",
            AlertKind::ClaimBurst => "claim-burst",
            AlertKind::RevokedByProver => "revoked-by-prover",
            AlertKind::BadEntry => "bad-entry",
            AlertKind::BadCheckpointSignature => "bad-checkpoint-signature",
            AlertKind::RootMismatch => "root-mismatch",
            AlertKind::InconsistentCheckpoint => "inconsistent-checkpoint",
            AlertKind::SplitView => "split-view",
            AlertKind::LogStalled => "log-stalled",
            AlertKind::NewEntry => "new-entry",
            AlertKind::BadMapRoot => "bad-map-root",
        }
    }

    /// How urgent the kind is: log misbehaviour and rogue claimants are critical.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::UnexpectedClaimant
            | AlertKind::BadEntry
            | AlertKind::BadCheckpointSignature
            | AlertKind::RootMismatch
            | AlertKind::InconsistentCheckpoint
            | AlertKind::SplitView
            | AlertKind::BadMapRoot => Severity::Critical,
            AlertKind::ConflictingClaim
            | AlertKind::UnattestedClaim
            | AlertKind::ClaimBurst
            | AlertKind::LogStalled => Severity::Warning,
            AlertKind::RevokedByProver | AlertKind::NewEntry => Severity::Info,
        }
    }
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// When it was raised, Unix seconds.
    pub time: u64,
    /// What happened.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The log's origin.
    pub log: String,
    /// The entry index, or for checkpoint alerts the checkpoint's size.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub index: Option<u64>,
    /// The SII concerned, if any.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub sii: Option<String>,
    /// The MSP concerned, if any.
    #[cfg_attr(feature = "openapi", schema(required = true))]
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
    /// A new alert of `kind` on `log`, raised now ([`crate::time::now_unix`]).
    pub fn new(kind: AlertKind, log: &str, index: Option<u64>, detail: impl Into<String>) -> Alert {
        Alert::at(crate::time::now_unix(), kind, log, index, detail)
    }

    /// A new alert of `kind` on `log`, raised at `time` (Unix seconds), with the kind's severity.
    pub fn at(
        time: u64,
        kind: AlertKind,
        log: &str,
        index: Option<u64>,
        detail: impl Into<String>,
    ) -> Alert {
        Alert {
            time,
            kind,
            severity: kind.severity(),
            log: log.to_string(),
            index,
            sii: None,
            msp: None,
            detail: detail.into(),
        }
    }

    /// The alert for a new piece of evidence: its kind, at its detection time, naming its id.
    pub fn for_evidence(e: &Evidence) -> Alert {
        Alert::at(
            e.detected,
            e.kind.alert_kind(),
            &e.log,
            None,
            format!("{} (evidence {})", e.detail, e.id),
        )
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
        // Serialising a struct of strings, integers and unit enums cannot fail.
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
    to_hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(size: u64, root: u8) -> Checkpoint {
        Checkpoint {
            origin: "log.example/a".into(),
            size,
            root: [root; 32],
        }
    }

    #[test]
    fn evidence_id_is_order_independent_and_content_bound() {
        assert_eq!(
            evidence_id(&cp(3, 1), &cp(3, 2)),
            evidence_id(&cp(3, 2), &cp(3, 1))
        );
        assert_ne!(
            evidence_id(&cp(3, 1), &cp(3, 2)),
            evidence_id(&cp(3, 1), &cp(3, 3))
        );
    }

    #[test]
    fn alert_line_has_exactly_the_spec_members_in_order() {
        let a = Alert::new(AlertKind::UnexpectedClaimant, "log.example", Some(7), "x")
            .sii("tel:+14155550100")
            .msp("rogue.example");
        let line = a.to_line();
        assert!(line.starts_with("{\"time\":"));
        assert!(line.contains("\"kind\":\"unexpected-claimant\",\"severity\":\"critical\""));
        let none = Alert::new(AlertKind::LogStalled, "l", None, "d").to_line();
        assert!(none.contains("\"index\":null,\"sii\":null,\"msp\":null"));
        for k in AlertKind::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
        }
    }

    #[test]
    fn evidence_alert_and_verdicts_use_the_wire_names() {
        let obs = |s: &str| Observation {
            note: s.into(),
            source: "x".into(),
            seen: 1,
        };
        let e = Evidence::new(
            EvidenceKind::SplitView,
            (&cp(3, 1), obs("a")),
            (&cp(3, 2), obs("b")),
            "two roots".into(),
            7,
        );
        let v = serde_json::to_value(Alert::for_evidence(&e)).unwrap();
        assert_eq!(v["kind"], "split-view");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["time"], 7);
        assert!(v["index"].is_null());
        for verdict in [
            Verdict::Consistent,
            Verdict::Inconsistent,
            Verdict::UnknownLog,
            Verdict::Unverifiable,
        ] {
            let s = serde_json::to_string(&verdict).unwrap();
            assert_eq!(s, format!("\"{verdict}\""));
        }
        let a: AuditAnswer = serde_json::from_str(r#"{"verdict":"unknown-log"}"#).unwrap();
        assert_eq!(a, AuditAnswer::new(Verdict::UnknownLog, ""));
    }
}
