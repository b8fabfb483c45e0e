//! Client verification of a Discovery Provider's lookup answer (SPEC §6, normative).
//!
//! A DP is not trusted: everything it says is checked against the log's signed checkpoint (and the
//! witnesses' cosignatures), the inclusion proofs, the enroll leaves and the signatures — then the SII
//! state is recomputed by [`crate::state::fold`] and must equal what the DP claims. Any failure rejects
//! the whole answer and names the step, so a user can tell *what* the DP got wrong.
//!
//! ```
//! use ledger_core::lookup::{verify_lookup_at, Step, Trust};
//! # use ledger_core::api::LookupAnswer;
//! # fn answer() -> (Trust, LookupAnswer) { ledger_core::testkit::example_answer() }
//! let (trust, answer) = answer();
//! let verified = verify_lookup_at(&answer, &trust, 1_764_158_500).expect("verifies");
//! assert_eq!(verified.mappings.len(), 1);
//! assert_eq!(verified.mappings[0].msp.as_str(), "msp-a.example");
//!
//! // One flipped bit anywhere and the answer is rejected, naming the step that failed.
//! let mut bad = answer.clone();
//! bad.entries[0].inclusion[0][0] ^= 1;
//! let err = verify_lookup_at(&bad, &trust, 1_764_158_500).unwrap_err();
//! assert_eq!(err.step(), Step::Inclusion);
//! ```

use crate::admission::{verify_entry, KeyRegistry};
use crate::api::{LookupAnswer, LookupMap, ProvenLeaf, SignerProof};
use crate::checkpoint::SignedCheckpoint;
use crate::entry::{Entry, Leaf};
use crate::hash::TreeHash;
use crate::key::VerifierKey;
use crate::map::{self, MapProof, MapValue};
use crate::problem::ProblemType;
use crate::sii::Sii;
use crate::state::{fold, Mapping, SiiState, Status};
use crate::time::now_unix;
use crate::tree::verify_inclusion;
use crate::trust::{CheckpointRefused, TrustedLog};

/// What a client trusts (the content of a trust file): the log, as every verifier pins it, and what
/// only a client adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// The log: key, tree hash, witnesses, quorum and maximum age (SPEC §6 step 1).
    pub log: TrustedLog,
    /// When non-empty, attestations count only when signed by one of these prover keys.
    pub provers: Vec<VerifierKey>,
    /// Whether every current mapping must carry a valid attestation.
    pub require_attestation: bool,
    /// The largest checkpoint size this client has already seen; a smaller one is a rollback.
    pub min_size: u64,
}

impl Trust {
    /// A trust for a log with no witnesses, no prover pinning and no freshness requirement.
    pub fn new(log_key: VerifierKey, hash: TreeHash) -> Trust {
        Trust::for_log(TrustedLog::new(log_key, hash))
    }

    /// A trust for `log` with no prover pinning, no attestation requirement and no size seen yet.
    pub fn for_log(log: TrustedLog) -> Trust {
        Trust {
            log,
            provers: Vec::new(),
            require_attestation: false,
            min_size: 0,
        }
    }

    /// The log origin (the log key's name).
    pub fn origin(&self) -> &str {
        self.log.origin()
    }

    /// Step 1's rollback check: a checkpoint of `size` is not older than one this client has
    /// already seen ([`Trust::min_size`]).
    pub fn check_not_rolled_back(&self, size: u64) -> Result<(), Rejection> {
        if size < self.min_size {
            return Err(Rejection::new(
                Step::Rollback,
                format!(
                    "checkpoint size {size} is below the size {} this client has already seen",
                    self.min_size
                ),
            ));
        }
        Ok(())
    }
}

/// The §6 step at which an answer was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The answer does not even parse (bad SII, leaf or checkpoint syntax).
    Malformed,
    /// Step 1: the checkpoint's log signature (or origin) is wrong.
    Checkpoint,
    /// Step 1: not enough witness cosignatures, or they are too old.
    Witnesses,
    /// Step 1: the checkpoint is older than one this client has already seen.
    Rollback,
    /// Step 2: an inclusion proof does not verify.
    Inclusion,
    /// Step 3: a key leaf is not a log-signed enroll.
    Keys,
    /// Step 3: an entry is for another SII, badly signed, out of order, or its attestation is invalid.
    Entries,
    /// Step 4: folding the entries does not give the claimed status and mappings.
    Fold,
    /// Step 5: the map (SPEC §9) does not show that `entries` are all of the SII's entries and
    /// `keys` all of its signers' enrollments: a missing, misplaced or forged map leaf, or a map
    /// proof that does not reach its root from what the answer shows.
    Completeness,
}

impl Step {
    /// A stable name for output (`ledger lookup` prints it on failure).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Malformed => "malformed-answer",
            Step::Checkpoint => "checkpoint-signature",
            Step::Witnesses => "witness-quorum",
            Step::Rollback => "stale-checkpoint",
            Step::Inclusion => "inclusion-proof",
            Step::Keys => "key-leaves",
            Step::Entries => "entries",
            Step::Fold => "state-fold",
            Step::Completeness => "completeness",
        }
    }

    /// The SPEC §6 step number (0 for a malformed answer).
    pub fn number(self) -> u8 {
        match self {
            Step::Malformed => 0,
            Step::Checkpoint | Step::Witnesses | Step::Rollback => 1,
            Step::Inclusion => 2,
            Step::Keys | Step::Entries => 3,
            Step::Fold => 4,
            Step::Completeness => 5,
        }
    }
}

/// A rejected answer: the step that failed and what exactly was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("lookup answer rejected at step {} ({}): {detail}", step.number(), step.as_str())]
pub struct Rejection {
    step: Step,
    detail: String,
    problem: Option<ProblemType>,
}

impl Rejection {
    fn new(step: Step, detail: impl Into<String>) -> Rejection {
        Rejection {
            step,
            detail: detail.into(),
            problem: None,
        }
    }

    /// A rejection caused by one leaf that admission refuses: it keeps the SPEC §5 problem type, so
    /// that a client refuses an entry for the same reason the log would have (e.g. `non-canonical`).
    fn refused(step: Step, detail: impl Into<String>, problem: ProblemType) -> Rejection {
        Rejection {
            problem: Some(problem),
            ..Rejection::new(step, detail)
        }
    }

    /// The SPEC §5 problem type of the admission refusal behind this rejection, when a key leaf or
    /// an entry of the answer is one the log must not have admitted (bad form, signer or
    /// attestation); `None` when the answer is wrong in another way (proofs, order, fold…).
    pub fn problem(&self) -> Option<ProblemType> {
        self.problem
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        self.step
    }

    /// What exactly was wrong.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// A verified answer: what the sender may rely on.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The SII the answer is about.
    pub sii: Sii,
    /// The checkpoint every proof was checked against.
    pub checkpoint: SignedCheckpoint,
    /// The witnesses whose cosignatures verified, with their timestamps.
    pub cosigners: Vec<(VerifierKey, u64)>,
    /// The status.
    pub status: Status,
    /// The current mappings.
    pub mappings: Vec<Mapping>,
    /// Every entry for the SII, in log order.
    pub entries: Vec<(u64, Entry)>,
    /// The index of the map leaf that proved the answer complete (step 5): the checkpoint's size
    /// − 1. `None` only for the empty checkpoint, which holds nothing to hide.
    pub map_index: Option<u64>,
}

/// Verifies a lookup answer per SPEC §6 with the system clock. See [`verify_lookup_at`].
pub fn verify_lookup(answer: &LookupAnswer, trust: &Trust) -> Result<Verified, Rejection> {
    verify_lookup_at(answer, trust, now_unix())
}

/// Verifies `answer` for the SII `query` (the canonical identifier the client asked about).
pub fn verify_lookup_for(
    query: &Sii,
    answer: &LookupAnswer,
    trust: &Trust,
    now: u64,
) -> Result<Verified, Rejection> {
    if answer.sii != query.as_str() {
        return Err(Rejection::new(
            Step::Entries,
            format!("asked about {query}, the answer is about {}", answer.sii),
        ));
    }
    verify_lookup_at(answer, trust, now)
}

/// Verifies a lookup answer per SPEC §6 at time `now` (Unix seconds).
///
/// The caller must also check that `answer.sii` is the SII it asked about (or use
/// [`verify_lookup_for`]).
pub fn verify_lookup_at(
    answer: &LookupAnswer,
    trust: &Trust,
    now: u64,
) -> Result<Verified, Rejection> {
    let sii = Sii::parse(&answer.sii)
        .map_err(|e| Rejection::new(Step::Malformed, format!("sii: {e}")))?;

    // Step 1: the checkpoint.
    let (checkpoint, cosigners) = trust
        .log
        .verify_note(answer.checkpoint.as_bytes(), now)
        .map_err(|e| match e {
            CheckpointRefused::Signature(e) => Rejection::new(Step::Checkpoint, e.to_string()),
            CheckpointRefused::Witnesses(e) => Rejection::new(Step::Witnesses, e.to_string()),
        })?;
    let size = checkpoint.checkpoint.size;
    trust.check_not_rolled_back(size)?;
    let root = checkpoint.checkpoint.root;

    // Step 2: every leaf is in the tree the checkpoint commits to.
    let prove = |what: &str, p: &ProvenLeaf| -> Result<(), Rejection> {
        let leaf_hash = trust.log.hash.leaf_hash(p.leaf.as_bytes());
        verify_inclusion(
            trust.log.hash,
            p.index,
            size,
            &leaf_hash,
            &p.inclusion,
            &root,
        )
        .map_err(|e| Rejection::new(Step::Inclusion, format!("{what} at index {}: {e}", p.index)))
    };
    for k in &answer.keys {
        prove("key leaf", k)?;
    }
    for e in &answer.entries {
        prove("entry", e)?;
    }

    // Step 3a: key leaves are log-signed enrolls; they form the key registry.
    let mut registry = KeyRegistry::new(trust.log.log_key.clone());
    let mut keys: Vec<(u64, Leaf)> = Vec::with_capacity(answer.keys.len());
    for k in &answer.keys {
        let leaf = Leaf::parse(k.leaf.as_bytes()).map_err(|e| {
            Rejection::refused(
                Step::Keys,
                format!("key leaf {}: {e}", k.index),
                e.problem(),
            )
        })?;
        if !matches!(leaf.entry(), Entry::Enroll(_)) {
            return Err(Rejection::new(
                Step::Keys,
                format!(
                    "key leaf {} is a {}, not an enroll",
                    k.index,
                    leaf.entry().kind()
                ),
            ));
        }
        verify_entry(&leaf, &registry.at(k.index)).map_err(|e| {
            Rejection::refused(
                Step::Keys,
                format!("key leaf {}: {e}", k.index),
                e.problem(),
            )
        })?;
        keys.push((k.index, leaf));
    }
    keys.sort_by_key(|(i, _)| *i);
    for (i, leaf) in &keys {
        registry.add_entry(*i, leaf.entry());
    }

    // Step 3b: entries name the SII, are in log order, signed per key validity, attestations valid.
    let mut entries: Vec<(u64, Entry)> = Vec::with_capacity(answer.entries.len());
    let mut previous: Option<u64> = None;
    for p in &answer.entries {
        let bad = |d: String| Rejection::new(Step::Entries, format!("entry {}: {d}", p.index));
        let refused = |d: String, problem| {
            Rejection::refused(Step::Entries, format!("entry {}: {d}", p.index), problem)
        };
        if previous.is_some_and(|prev| p.index <= prev) {
            return Err(bad(
                "entries are not in strictly increasing log order".into()
            ));
        }
        previous = Some(p.index);
        let leaf =
            Leaf::parse(p.leaf.as_bytes()).map_err(|e| refused(e.to_string(), e.problem()))?;
        if leaf.entry().sii() != Some(&sii) {
            return Err(bad(format!(
                "a {} entry that is not about {sii}",
                leaf.entry().kind()
            )));
        }
        let view = registry.at(p.index);
        let signers =
            verify_entry(&leaf, &view).map_err(|e| refused(e.to_string(), e.problem()))?;
        if let Some(prover) = &signers.attestation {
            if !trust.provers.is_empty() && !trust.provers.contains(prover) {
                return Err(bad(format!(
                    "attestation by {}, which this client does not trust",
                    prover.name()
                )));
            }
        }
        if trust.require_attestation {
            if let Entry::Claim(c) = leaf.entry() {
                // Present attestations were checked by `verify_entry` above.
                if c.attestation.is_none() {
                    return Err(bad(
                        "claim without the attestation this client requires".into()
                    ));
                }
            }
        }
        entries.push((p.index, leaf.into_entry()));
    }

    // Step 4: the fold gives exactly the claimed status and mappings.
    let state = check_fold(answer, &entries, now)?;

    // Step 5: completeness, by the map.
    let map_index = check_completeness(answer, trust, &sii, &keys, size, &root)?;
    Ok(Verified {
        sii,
        checkpoint,
        cosigners,
        status: state.status,
        mappings: state.mappings,
        entries,
        map_index,
    })
}

/// Step 4: folding `entries` gives exactly the answer's status and mappings.
fn check_fold(
    answer: &LookupAnswer,
    entries: &[(u64, Entry)],
    now: u64,
) -> Result<SiiState, Rejection> {
    let state = fold(entries.iter().map(|(i, e)| (*i, e)), now);
    if state.status != answer.status {
        return Err(Rejection::new(
            Step::Fold,
            format!(
                "the entries give status {}, the answer says {}",
                state.status.as_str(),
                answer.status.as_str()
            ),
        ));
    }
    if state.mapping_indices() != answer.mappings {
        return Err(Rejection::new(
            Step::Fold,
            format!(
                "the entries give mappings {:?}, the answer says {:?}",
                state.mapping_indices(),
                answer.mappings
            ),
        ));
    }
    Ok(state)
}

/// Step 5 (SPEC §6, §9): the map leaf ends the checkpoint, is log-signed, and is included; the SII's
/// chain computed from `entries` reaches its root (absence when there are none); and so does each
/// signer name's chain computed from its enroll leaves in `keys`, with exactly one proof per name.
/// Returns the map leaf's index (`None` for the empty checkpoint).
fn check_completeness(
    answer: &LookupAnswer,
    trust: &Trust,
    sii: &Sii,
    keys: &[(u64, Leaf)],
    size: u64,
    root: &crate::hash::Hash,
) -> Result<Option<u64>, Rejection> {
    let th = trust.log.hash;
    let bad = |d: String| Rejection::new(Step::Completeness, d);
    let Some(m) = &answer.map else {
        if size == 0 {
            // Nothing is in the log: the (necessarily empty) answer is complete.
            return Ok(None);
        }
        return Err(bad(
            "the answer has no map proof, so it may not hold every entry".into(),
        ));
    };
    if m.index.checked_add(1) != Some(size) {
        return Err(bad(format!(
            "the map leaf is at index {}, not at the checkpoint's last index {}",
            m.index,
            size.saturating_sub(1)
        )));
    }
    let leaf = Leaf::parse(m.leaf.as_bytes()).map_err(|e| bad(format!("map leaf: {e}")))?;
    let Entry::Map(map_leaf) = leaf.entry() else {
        return Err(bad(format!(
            "the checkpoint's last leaf is a {}, not a map leaf",
            leaf.entry().kind()
        )));
    };
    if map_leaf.size != m.index {
        return Err(bad(format!(
            "the map leaf at index {} says size {}",
            m.index, map_leaf.size
        )));
    }
    verify_entry(
        &leaf,
        &KeyRegistry::new(trust.log.log_key.clone()).at(m.index),
    )
    .map_err(|e| bad(format!("map leaf: {e}")))?;
    verify_inclusion(
        th,
        m.index,
        size,
        &th.leaf_hash(m.leaf.as_bytes()),
        &m.inclusion,
        root,
    )
    .map_err(|e| bad(format!("map leaf at index {}: {e}", m.index)))?;
    let map_root = map_leaf.root;

    // The SII: the chain of every entry shown, or absence.
    let hashes: Vec<(u64, crate::hash::Hash)> = answer
        .entries
        .iter()
        .map(|p| (p.index, th.leaf_hash(p.leaf.as_bytes())))
        .collect();
    let chain = MapValue::of_leaves(th, hashes.iter().map(|(i, h)| (*i, h)))
        .map_err(|e| bad(e.to_string()))?;
    let key = map::sii_key(th, sii.as_str());
    let proven = if chain.count == 0 {
        map::verify_absence(th, &map_root, &key, &m.sii)
    } else {
        map::verify_presence(th, &map_root, &key, &chain, &m.sii)
    };
    proven.map_err(|e| {
        bad(format!(
            "the SII's map proof for the {} entries shown: {e} (an entry is hidden, or the proof is wrong)",
            chain.count
        ))
    })?;

    // Each signer name: the chain of its enroll leaves shown in `keys` (in log order).
    let mut by_name: std::collections::BTreeMap<&str, Vec<(u64, crate::hash::Hash)>> =
        std::collections::BTreeMap::new();
    for (index, leaf) in keys {
        if let Entry::Enroll(e) = leaf.entry() {
            by_name
                .entry(e.name.as_str())
                .or_default()
                .push((*index, th.leaf_hash(leaf.bytes())));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &m.signers {
        if !seen.insert(s.name.as_str()) {
            return Err(bad(format!("two map proofs for signer {}", s.name)));
        }
        let Some(leaves) = by_name.get(s.name.as_str()) else {
            return Err(bad(format!(
                "a map proof for signer {}, who has no enroll leaf in the answer",
                s.name
            )));
        };
        let value = MapValue::of_leaves(th, leaves.iter().map(|(i, h)| (*i, h)))
            .map_err(|e| bad(e.to_string()))?;
        map::verify_presence(th, &map_root, &map::signer_key(th, &s.name), &value, &s.proof)
            .map_err(|e| {
                bad(format!(
                    "signer {}'s map proof for the {} enroll leaves shown: {e} (an enrollment is hidden, or the proof is wrong)",
                    s.name, value.count
                ))
            })?;
    }
    if let Some(name) = by_name.keys().find(|n| !seen.contains(*n)) {
        return Err(bad(format!(
            "no map proof for signer {name}, so its enrollments may not all be shown"
        )));
    }
    Ok(Some(m.index))
}

/// Where [`build_answer`] gets leaf bytes, inclusion proofs and map proofs (the log's storage).
pub trait AnswerSource {
    /// The storage error.
    type Error;
    /// The log's tree hash (which the map hashes with too).
    fn tree_hash(&self) -> TreeHash;
    /// The leaf at `index`.
    fn leaf(&self, index: u64) -> Result<Vec<u8>, Self::Error>;
    /// The inclusion proof of `index` in the tree of `size` leaves.
    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<crate::hash::Hash>, Self::Error>;
    /// The map proof for `key` in the map committed by the map leaf at `size − 1` (the map as of
    /// the checkpoint of `size` leaves), for `size > 0`.
    fn map_proof(&self, key: &crate::hash::Hash, size: u64) -> Result<MapProof, Self::Error>;
}

/// Builds the honest DP answer (SPEC §5 `/v1/lookup`) for `sii`: all its entries in log order, the
/// current mappings by [`fold`], every enroll leaf of every signer name of those entries and of
/// their attestations, every inclusion proof against `checkpoint`, and the map proofs of §9 that
/// show nothing was left out.
///
/// `entries` are the SII's leaves with their indices, in log order, all below the checkpoint's size;
/// `registry` holds at least the enrollments below it (later ones are left out). Written once here
/// so that the log server and test doubles answer exactly alike.
pub fn build_answer<S: AnswerSource>(
    sii: &Sii,
    entries: &[(u64, Leaf)],
    registry: &KeyRegistry,
    checkpoint: &SignedCheckpoint,
    source: &S,
    now: u64,
) -> Result<LookupAnswer, S::Error> {
    let size = checkpoint.checkpoint.size;
    let th = source.tree_hash();
    let mut names = std::collections::BTreeSet::new();
    for (_, leaf) in entries {
        if leaf.signer_role().is_some() {
            names.insert(leaf.signer_name().to_string());
        }
        if let Some(att) = leaf.entry().attestation() {
            names.insert(att.signer_name().to_string());
        }
    }
    let prove = |index: u64, leaf: String| -> Result<ProvenLeaf, S::Error> {
        Ok(ProvenLeaf {
            index,
            leaf,
            inclusion: source.inclusion(index, size)?,
        })
    };
    let mut key_indices = std::collections::BTreeSet::new();
    let mut signer_names = Vec::with_capacity(names.len());
    for name in names {
        let indices: Vec<u64> = registry
            .enroll_indices(&name)
            .into_iter()
            .filter(|i| *i < size)
            .collect();
        if !indices.is_empty() {
            key_indices.extend(indices);
            signer_names.push(name);
        }
    }
    let mut keys = Vec::with_capacity(key_indices.len());
    for i in key_indices {
        let bytes = source.leaf(i)?;
        keys.push(prove(i, String::from_utf8_lossy(&bytes).into_owned())?);
    }
    let mut proven = Vec::with_capacity(entries.len());
    for (i, leaf) in entries {
        proven.push(prove(
            *i,
            String::from_utf8_lossy(leaf.bytes()).into_owned(),
        )?);
    }
    let map = match size.checked_sub(1) {
        None => None,
        Some(index) => {
            let mut signers = Vec::with_capacity(signer_names.len());
            for name in signer_names {
                let proof = source.map_proof(&map::signer_key(th, &name), size)?;
                signers.push(SignerProof { name, proof });
            }
            let leaf = String::from_utf8_lossy(&source.leaf(index)?).into_owned();
            Some(LookupMap {
                index,
                leaf,
                inclusion: source.inclusion(index, size)?,
                sii: source.map_proof(&map::sii_key(th, sii.as_str()), size)?,
                signers,
            })
        }
    };
    let state = fold(entries.iter().map(|(i, l)| (*i, l.entry())), now);
    Ok(LookupAnswer {
        sii: sii.to_string(),
        checkpoint: String::from_utf8_lossy(&checkpoint.to_bytes()).into_owned(),
        status: state.status,
        mappings: state.mapping_indices(),
        entries: proven,
        keys,
        map,
    })
}
