//! Admission (SPEC §3): whether an entry may be appended at a given index.
//!
//! Pure functions over (leaf, the keys enrolled before that index, the log's policy, the clock), so the
//! log, the monitor and the client apply the same rules. The log runs all of them; monitors and clients
//! run [`verify_entry`] (everything but the clock, which only the log can judge at submission time).
//!
//! [`verify_entry`] is [`plan`] then [`Plan::verify`]: the plan holds the signature equations the
//! entry needs and the verdict once they hold, so a verifier of many entries (the monitor) can
//! check the equations of many plans in one batch and still apply these rules, not a copy of them.

use std::collections::BTreeMap;

use crate::entry::{Action, Entry, EntryError, Leaf, Role, SignedAttestation};
use crate::key::VerifierKey;
use crate::note::Note;
use crate::problem::ProblemType;

/// The log's admission policy, published in `/v1/info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Whether every claim must carry a valid attestation (R1).
    pub require_attestation: bool,
    /// The largest accepted |entry time − log clock|, in seconds.
    pub max_skew_s: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_attestation: false,
            max_skew_s: 600,
        }
    }
}

/// Why an entry is refused. Each variant maps to one SPEC §5 problem slug via [`Refusal::problem`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Syntax or canonical-form failure of the leaf (see [`EntryError::problem`] for its slug).
    #[error("{0}")]
    Entry(#[from] EntryError),
    /// No key is enrolled for this name and role before this index.
    #[error("{name} is not enrolled as {role}", role = role.as_str())]
    NotEnrolled {
        /// The signer name.
        name: String,
        /// The role it would need.
        role: Role,
    },
    /// The name is enrolled, but with another key (e.g. an old key after re-enrollment).
    #[error("{name} signed with key {key_id}, which is not its enrolled key")]
    NotEnrolledKey {
        /// The signer name.
        name: String,
        /// The key ID on the signature line, hex.
        key_id: String,
    },
    /// The entry is signed by someone other than who must sign it.
    #[error("a {kind} entry must be signed by {expected}, but is signed by {found}")]
    WrongSigner {
        /// The entry kind.
        kind: &'static str,
        /// Who must sign it.
        expected: String,
        /// Who signed it.
        found: String,
    },
    /// The signature does not verify with the enrolled key.
    #[error("the signature by {name} does not verify")]
    BadSignature {
        /// The signer name.
        name: String,
    },
    /// The log requires an attestation on claims and none was given.
    #[error("this log requires a prover attestation on every claim")]
    AttestationRequired,
    /// The attestation is present but invalid for this entry.
    #[error("attestation: {0}")]
    BadAttestation(String),
    /// A leaf kind only the log itself appends (SPEC §3 `map`): it is never accepted from a
    /// submitter.
    #[error("{kind} leaves are appended by the log itself and cannot be submitted")]
    LogOnly {
        /// The entry kind.
        kind: &'static str,
    },
    /// The entry's time is too far from the log's clock.
    #[error("entry time {time} is {diff} s from the log's clock {now}; the limit is {max} s")]
    ClockSkew {
        /// The entry time.
        time: u64,
        /// The log's clock.
        now: u64,
        /// The difference.
        diff: u64,
        /// The allowed skew.
        max: u64,
    },
}

impl Refusal {
    /// The SPEC §5 problem type this refusal is reported as.
    pub fn problem(&self) -> ProblemType {
        match self {
            Refusal::Entry(e) => e.problem(),
            Refusal::NotEnrolled { .. } | Refusal::NotEnrolledKey { .. } => {
                ProblemType::UnknownSigner
            }
            Refusal::WrongSigner { .. } | Refusal::BadSignature { .. } => ProblemType::BadSignature,
            Refusal::AttestationRequired => ProblemType::AttestationRequired,
            Refusal::BadAttestation(_) => ProblemType::BadAttestation,
            Refusal::ClockSkew { .. } => ProblemType::ClockSkew,
            Refusal::LogOnly { .. } => ProblemType::BadRequest,
        }
    }
}

/// The keys enrolled as of some index: what admission needs to know about earlier enroll leaves.
pub trait KeyLookup {
    /// The log's own verifier key (signs enroll leaves and checkpoints).
    fn log_key(&self) -> &VerifierKey;
    /// The key enrolled for `(role, name)` at the highest enroll index below the index being checked.
    fn enrolled(&self, role: Role, name: &str) -> Option<&VerifierKey>;
}

/// Every enrollment of a log, with its index: answers "which key was valid for this name at index i".
///
/// Enroll leaves are few (one per MSP or prover key), so the log, the monitor and the client keep them
/// in memory; [`KeyRegistry::at`] gives the [`KeyLookup`] view for one index.
#[derive(Clone, Debug)]
pub struct KeyRegistry {
    log_key: VerifierKey,
    by_name: BTreeMap<(Role, String), Vec<(u64, VerifierKey)>>,
}

impl KeyRegistry {
    /// An empty registry for a log with verifier key `log_key`.
    pub fn new(log_key: VerifierKey) -> KeyRegistry {
        KeyRegistry {
            log_key,
            by_name: BTreeMap::new(),
        }
    }

    /// Records an enrollment at `index`. Enrollments of one name must be added in index order.
    pub fn add(&mut self, index: u64, role: Role, key: VerifierKey) {
        let list = self
            .by_name
            .entry((role, key.name().to_string()))
            .or_default();
        let pos = list.partition_point(|(i, _)| *i < index);
        if list.get(pos).map(|(i, _)| *i) != Some(index) {
            list.insert(pos, (index, key));
        }
    }

    /// Records the enroll entry `entry` at `index` (ignores other kinds).
    pub fn add_entry(&mut self, index: u64, entry: &Entry) {
        if let Entry::Enroll(e) = entry {
            self.add(index, e.role, e.key.clone());
        }
    }

    /// The key for `(role, name)` enrolled at the highest index strictly below `index`.
    pub fn key_at(&self, role: Role, name: &str, index: u64) -> Option<&VerifierKey> {
        let list = self.by_name.get(&(role, name.to_string()))?;
        let pos = list.partition_point(|(i, _)| *i < index);
        pos.checked_sub(1).and_then(|p| list.get(p)).map(|(_, k)| k)
    }

    /// The latest key enrolled for `(role, name)`, at any index.
    pub fn latest(&self, role: Role, name: &str) -> Option<&VerifierKey> {
        self.key_at(role, name, u64::MAX)
    }

    /// The index of the enrollment that is in force for `(role, name)` at `index`.
    pub fn enroll_index_at(&self, role: Role, name: &str, index: u64) -> Option<u64> {
        let list = self.by_name.get(&(role, name.to_string()))?;
        let pos = list.partition_point(|(i, _)| *i < index);
        pos.checked_sub(1)
            .and_then(|p| list.get(p))
            .map(|(i, _)| *i)
    }

    /// The indexes of every enrollment of `name`, in any role, in log order: the leaves filed
    /// under the name's map key (SPEC §9), which a lookup answer shows in full.
    pub fn enroll_indices(&self, name: &str) -> Vec<u64> {
        let mut indices: Vec<u64> = [Role::Msp, Role::Prover]
            .iter()
            .filter_map(|role| self.by_name.get(&(*role, name.to_string())))
            .flat_map(|list| list.iter().map(|(i, _)| *i))
            .collect();
        indices.sort_unstable();
        indices
    }

    /// The log's verifier key.
    pub fn log_key(&self) -> &VerifierKey {
        &self.log_key
    }

    /// The view of this registry as of `index` (keys enrolled strictly before it).
    pub fn at(&self, index: u64) -> RegistryAt<'_> {
        RegistryAt {
            registry: self,
            index,
        }
    }
}

/// A [`KeyRegistry`] as seen by the entry at one index.
#[derive(Clone, Copy, Debug)]
pub struct RegistryAt<'a> {
    registry: &'a KeyRegistry,
    index: u64,
}

impl KeyLookup for RegistryAt<'_> {
    fn log_key(&self) -> &VerifierKey {
        &self.registry.log_key
    }

    fn enrolled(&self, role: Role, name: &str) -> Option<&VerifierKey> {
        self.registry.key_at(role, name, self.index)
    }
}

/// The keys that signed an admitted entry: the log re-checks, when sequencing, that they are still the
/// enrolled ones at the final index (a re-enrollment may have landed in between).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signers {
    /// The role of the entry's signer (`None` for the log itself, which signs enroll entries).
    pub role: Option<Role>,
    /// The key that signed the entry.
    pub entry: VerifierKey,
    /// The prover key that signed the attestation, if any.
    pub attestation: Option<VerifierKey>,
}

impl Signers {
    /// Whether these are still the enrolled keys in `keys`.
    pub fn still_enrolled(&self, keys: &impl KeyLookup) -> bool {
        let entry_ok = match self.role {
            None => &self.entry == keys.log_key(),
            Some(role) => keys.enrolled(role, self.entry.name()) == Some(&self.entry),
        };
        let att_ok = match &self.attestation {
            None => true,
            Some(k) => keys.enrolled(Role::Prover, k.name()) == Some(k),
        };
        entry_ok && att_ok
    }
}

/// What a [`SigCheck`] stands for: which refusal its failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigFor {
    /// The entry's own signature: a failure is [`Refusal::BadSignature`].
    Entry,
    /// The signature of the attestation the entry carries: a failure is
    /// [`Refusal::BadAttestation`].
    Attestation,
}

/// One Ed25519 equation that admission needs: `sig` over `msg` by `public_key`.
///
/// Everything about the signature line that is not the equation (there is one, it names the
/// enrolled key by name and key ID) was checked when the [`Plan`] was made, so this is the whole of
/// what is left, in a form a batch verifier can take.
#[derive(Clone, Debug)]
pub struct SigCheck<'a> {
    /// The enrolled key the signature must be by.
    pub public_key: ed25519_dalek::VerifyingKey,
    /// The signed message (the note's text).
    pub msg: &'a [u8],
    /// The signature bytes from the note's signature line.
    pub sig: &'a [u8],
    /// The name on the signature line (for the refusal).
    pub signer: &'a str,
    /// What this signature stands for.
    pub stands_for: SigFor,
}

impl SigCheck<'_> {
    /// Runs the equation alone under the one signature rule ([`crate::signature::verify`]),
    /// exactly [`VerifierKey::verify`].
    pub fn verify(&self) -> bool {
        crate::signature::verify(self.public_key.as_bytes(), self.msg, self.sig)
    }

    /// The refusal a failure of this check is.
    pub fn refusal(&self) -> Refusal {
        let bad = Refusal::BadSignature {
            name: self.signer.to_string(),
        };
        match self.stands_for {
            SigFor::Entry => bad,
            SigFor::Attestation => Refusal::BadAttestation(bad.to_string()),
        }
    }
}

/// The admission of one entry split in two: the signature equations it needs, and what the verdict
/// is once they all hold.
///
/// [`plan`] does every check of §3 that is not a signature equation — who must sign, that they are
/// enrolled with the right role before this index, that the signature line names the enrolled key,
/// the prover-revoke rule, the attestation's action, fields and time window — in the order
/// [`verify_entry`] has always done them, and records the equations it meets on the way instead of
/// running them. A check that fails after an equation was recorded becomes the plan's
/// [`Plan::outcome`], reached only if the earlier equations hold; so [`Plan::verify`], which runs
/// the equations one by one in order, gives exactly the refusal a single pass gives.
///
/// Why: the monitor verifies millions of entries. It batch-verifies the equations of many plans at
/// once and, only when a batch fails, calls [`Plan::verify`] to name the refusal; the rules
/// themselves are written once, here.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    checks: Checks<'a>,
    outcome: Result<Signers, Refusal>,
}

/// The (at most two) equations of a plan, kept inline: no allocation per entry.
#[derive(Clone, Debug, Default)]
struct Checks<'a> {
    entry: Option<SigCheck<'a>>,
    attestation: Option<SigCheck<'a>>,
}

impl<'a> Checks<'a> {
    fn iter(&self) -> impl Iterator<Item = &SigCheck<'a>> {
        self.entry.iter().chain(self.attestation.iter())
    }
}

impl<'a> Plan<'a> {
    /// The signature equations still to check, in the order a single pass checks them (the entry's
    /// own, then the attestation's). At most two; none when a check before any equation failed.
    pub fn checks(&self) -> impl Iterator<Item = &SigCheck<'a>> {
        self.checks.iter()
    }

    /// The verdict once every check of [`Plan::checks`] holds: the signers, or the refusal of a
    /// non-signature check that comes after them.
    pub fn outcome(&self) -> &Result<Signers, Refusal> {
        &self.outcome
    }

    /// [`Plan::outcome`], by value: for a caller that verified [`Plan::checks`] itself (a batch).
    pub fn into_outcome(self) -> Result<Signers, Refusal> {
        self.outcome
    }

    /// Runs the checks one by one under the signature rule and returns the verdict: the first
    /// failing equation's refusal, else [`Plan::outcome`]. This is [`verify_entry`].
    pub fn verify(self) -> Result<Signers, Refusal> {
        if let Some(failed) = self.checks().find(|c| !c.verify()) {
            return Err(failed.refusal());
        }
        self.outcome
    }
}

/// The plan of [`verify_entry`] for `leaf` against the keys enrolled before its index: see [`Plan`].
pub fn plan<'a>(leaf: &'a Leaf, keys: &impl KeyLookup) -> Plan<'a> {
    let mut checks = Checks::default();
    let outcome = plan_entry(leaf, keys, &mut checks);
    Plan { checks, outcome }
}

/// The checks of a single-signature note by `key`, except the equation, which is returned. The
/// errors are the entry's own; [`SigFor::Attestation`] callers wrap them.
fn sig_check<'a>(
    note: &'a Note,
    key: &VerifierKey,
    stands_for: SigFor,
) -> Result<SigCheck<'a>, Refusal> {
    let Some(sig) = note.signatures().first() else {
        return Err(Refusal::BadSignature {
            name: key.name().to_string(),
        });
    };
    if sig.name != key.name() {
        return Err(Refusal::BadSignature {
            name: sig.name.clone(),
        });
    }
    if sig.key_id != key.key_id() {
        return Err(Refusal::NotEnrolledKey {
            name: sig.name.clone(),
            key_id: sig.key_id.iter().map(|b| format!("{b:02x}")).collect(),
        });
    }
    Ok(SigCheck {
        public_key: *key.public_key(),
        msg: note.text().as_bytes(),
        sig: &sig.sig,
        signer: &sig.name,
        stands_for,
    })
}

/// Plans the entry's own signature by the key enrolled for `(role, name)`.
fn plan_signed_by<'a>(
    leaf: &'a Leaf,
    role: Role,
    name: &str,
    keys: &impl KeyLookup,
    plan: &mut Checks<'a>,
) -> Result<VerifierKey, Refusal> {
    let key = keys
        .enrolled(role, name)
        .ok_or_else(|| Refusal::NotEnrolled {
            name: name.to_string(),
            role,
        })?;
    plan.entry = Some(sig_check(leaf.note(), key, SigFor::Entry)?);
    Ok(key.clone())
}

/// Plans an attestation: its action, fields and time window against the entry, its prover enrolled
/// (before the entry's index), and its signature (recorded, not run). Returns the prover's key.
fn plan_attestation<'a>(
    att: &'a SignedAttestation,
    action: Action,
    entry: &Entry,
    keys: &impl KeyLookup,
    plan: &mut Checks<'a>,
) -> Result<VerifierKey, Refusal> {
    let bad = |s: String| Refusal::BadAttestation(s);
    let a = &att.attestation;
    if a.action != action {
        return Err(bad(format!(
            "attestation is for {}, the entry is a {}",
            a.action.as_str(),
            action.as_str()
        )));
    }
    let (sii, msp, ssi) = match entry {
        Entry::Claim(c) => (&c.sii, Some(&c.msp), Some(&c.ssi)),
        Entry::Revoke(r) => (&r.sii, Some(&r.msp), Some(&r.ssi)),
        Entry::Optout(o) => (&o.sii, None, None),
        Entry::Enroll(_) | Entry::Map(_) => {
            return Err(bad(format!(
                "{} entries carry no attestation",
                entry.kind()
            )))
        }
    };
    if &a.sii != sii {
        return Err(bad(format!("attestation is for {}, not {}", a.sii, sii)));
    }
    if a.msp.as_ref() != msp || a.ssi.as_ref() != ssi {
        return Err(bad(
            "attestation names another msp or ssi than the entry".into()
        ));
    }
    let t = entry.time().unwrap_or_default();
    if t < a.time || t > a.expires {
        return Err(bad(format!(
            "entry time {t} is outside the attestation's validity {}..={}",
            a.time, a.expires
        )));
    }
    let name = att.signer_name();
    let key = keys
        .enrolled(Role::Prover, name)
        .ok_or_else(|| bad(format!("{name} is not an enrolled prover")))?;
    plan.attestation =
        Some(sig_check(&att.note, key, SigFor::Attestation).map_err(|e| bad(e.to_string()))?);
    Ok(key.clone())
}

/// The rules of §3 for one entry, with every signature equation recorded in `plan` instead of run.
fn plan_entry<'a>(
    leaf: &'a Leaf,
    keys: &impl KeyLookup,
    plan: &mut Checks<'a>,
) -> Result<Signers, Refusal> {
    let signer = leaf.signer_name();
    let entry = leaf.entry();
    match entry {
        Entry::Enroll(_) | Entry::Map(_) => {
            let log = keys.log_key();
            if signer != log.name() {
                return Err(Refusal::WrongSigner {
                    kind: entry.kind(),
                    expected: log.name().to_string(),
                    found: signer.to_string(),
                });
            }
            plan.entry = Some(sig_check(leaf.note(), log, SigFor::Entry)?);
            Ok(Signers {
                role: None,
                entry: log.clone(),
                attestation: None,
            })
        }
        Entry::Claim(c) => {
            if signer != c.msp.as_str() {
                return Err(Refusal::WrongSigner {
                    kind: "claim",
                    expected: c.msp.to_string(),
                    found: signer.to_string(),
                });
            }
            let key = plan_signed_by(leaf, Role::Msp, signer, keys, plan)?;
            let attestation = c
                .attestation
                .as_ref()
                .map(|a| plan_attestation(a, Action::Claim, entry, keys, plan))
                .transpose()?;
            Ok(Signers {
                role: Some(Role::Msp),
                entry: key,
                attestation,
            })
        }
        Entry::Revoke(r) => {
            if signer == r.msp.as_str() {
                let key = plan_signed_by(leaf, Role::Msp, signer, keys, plan)?;
                let attestation = r
                    .attestation
                    .as_ref()
                    .map(|a| plan_attestation(a, Action::Revoke, entry, keys, plan))
                    .transpose()?;
                Ok(Signers {
                    role: Some(Role::Msp),
                    entry: key,
                    attestation,
                })
            } else if keys.enrolled(Role::Prover, signer).is_some() {
                // A revoke by a prover (not the MSP) stands on the prover's attestation.
                let key = plan_signed_by(leaf, Role::Prover, signer, keys, plan)?;
                let Some(att) = &r.attestation else {
                    return Err(Refusal::AttestationRequired);
                };
                let attestation = Some(plan_attestation(att, Action::Revoke, entry, keys, plan)?);
                Ok(Signers {
                    role: Some(Role::Prover),
                    entry: key,
                    attestation,
                })
            } else {
                Err(Refusal::NotEnrolled {
                    name: signer.to_string(),
                    role: Role::Msp,
                })
            }
        }
        Entry::Optout(o) => {
            let key = plan_signed_by(leaf, Role::Prover, signer, keys, plan)?;
            let attestation = Some(plan_attestation(
                &o.attestation,
                Action::Optout,
                entry,
                keys,
                plan,
            )?);
            Ok(Signers {
                role: Some(Role::Prover),
                entry: key,
                attestation,
            })
        }
    }
}

/// Checks an attestation for an entry: prover enrolled (before the entry's index), signature, the fields
/// equal the entry's, and `time ≤ entry.time ≤ expires`. Returns the prover's key.
pub fn check_attestation(
    att: &SignedAttestation,
    action: Action,
    entry: &Entry,
    keys: &impl KeyLookup,
) -> Result<VerifierKey, Refusal> {
    let mut checks = Checks::default();
    let key = plan_attestation(att, action, entry, keys, &mut checks)?;
    let failed = checks.iter().find(|c| !c.verify()).map(SigCheck::refusal);
    match failed {
        Some(refusal) => Err(refusal),
        None => Ok(key),
    }
}

/// Everything of §3 admission except the clock and the attestation policy: who must sign, that they are
/// enrolled with the right role before this index, that the signature verifies, and that an attestation,
/// when present (or structurally required), is valid. Used by the log, the monitor and the client.
///
/// It is [`plan`] followed by [`Plan::verify`]: one signature check after another, under the one
/// rule of [`crate::signature`]. [`verify_plans`] gives the same verdicts for many entries at once.
pub fn verify_entry(leaf: &Leaf, keys: &impl KeyLookup) -> Result<Signers, Refusal> {
    plan(leaf, keys).verify()
}

/// The verdicts of many plans, their signature equations checked in one batch
/// ([`crate::signature::BatchVerifier`]): for each plan, exactly what [`Plan::verify`] returns
/// (the refusal of its first failing equation in order, else [`Plan::outcome`]), because the
/// batch path and the single path are the same rule and the batch names the exact bad equations.
///
/// Why: the log checks the signatures of every pending submission and the monitor those of every
/// downloaded entry; a batch costs about half a single check per signature.
pub fn verify_plans(plans: Vec<Plan<'_>>) -> Vec<Result<Signers, Refusal>> {
    let mut batch = crate::signature::BatchVerifier::new();
    let positions: Vec<Vec<usize>> = plans
        .iter()
        .map(|p| {
            p.checks()
                .map(|c| batch.queue(c.public_key.as_bytes(), c.msg, c.sig))
                .collect()
        })
        .collect();
    let bad: std::collections::BTreeSet<usize> = match batch.verify() {
        Ok(()) => Default::default(),
        Err(crate::signature::BadSignatures(bad)) => bad.into_iter().collect(),
    };
    plans
        .into_iter()
        .zip(positions)
        .map(|(p, pos)| {
            let failed = p
                .checks()
                .zip(&pos)
                .find(|(_, i)| bad.contains(i))
                .map(|(c, _)| c.refusal());
            match failed {
                Some(refusal) => Err(refusal),
                None => p.into_outcome(),
            }
        })
        .collect()
}

/// [`admit`] for many submissions against the same keys, policy and clock, with the signatures of
/// all of them checked in one batch ([`verify_plans`]): each verdict is exactly [`admit`]'s.
///
/// Why: the log's admission pool takes the pending submissions together (`log-server`'s
/// `admission` module), so a busy log pays about half a signature check per signature.
pub fn admit_batch<B: AsRef<[u8]>>(
    submissions: &[B],
    keys: &impl KeyLookup,
    policy: &Policy,
    now: u64,
) -> Vec<Result<(Leaf, Signers), Refusal>> {
    let leaves: Vec<Result<Leaf, Refusal>> = submissions
        .iter()
        .map(|b| {
            let leaf = Leaf::parse(b.as_ref())?;
            check_policy(&leaf, policy, now)?;
            Ok(leaf)
        })
        .collect();
    let plans: Vec<Plan<'_>> = leaves
        .iter()
        .filter_map(|l| l.as_ref().ok())
        .map(|leaf| plan(leaf, keys))
        .collect();
    // The verdicts own their data: the plans' borrows of the leaves end here.
    let mut verdicts = verify_plans(plans).into_iter();
    leaves
        .into_iter()
        .map(|l| {
            let leaf = l?;
            match verdicts.next() {
                Some(v) => v.map(|signers| (leaf, signers)),
                // verify_plans returns one verdict per plan, one plan per parsed leaf.
                None => verify_entry(&leaf, keys).map(|signers| (leaf, signers)),
            }
        })
        .collect()
}

/// The log-only checks at submission time: no log-appended kind (a `map` leaf), the attestation
/// policy, and the clock skew.
pub fn check_policy(leaf: &Leaf, policy: &Policy, now: u64) -> Result<(), Refusal> {
    let Some(time) = leaf.entry().time() else {
        return Err(Refusal::LogOnly {
            kind: leaf.entry().kind(),
        });
    };
    if policy.require_attestation {
        if let Entry::Claim(c) = leaf.entry() {
            if c.attestation.is_none() {
                return Err(Refusal::AttestationRequired);
            }
        }
    }
    let diff = time.abs_diff(now);
    if diff > policy.max_skew_s {
        return Err(Refusal::ClockSkew {
            time,
            now,
            diff,
            max: policy.max_skew_s,
        });
    }
    Ok(())
}

/// Full §3 admission of submitted bytes: parse, policy and clock, then signatures and attestation.
/// Refuses with the first failing check; on success returns the parsed leaf and who signed it.
pub fn admit(
    bytes: &[u8],
    keys: &impl KeyLookup,
    policy: &Policy,
    now: u64,
) -> Result<(Leaf, Signers), Refusal> {
    let leaf = Leaf::parse(bytes)?;
    check_policy(&leaf, policy, now)?;
    let signers = verify_entry(&leaf, keys)?;
    Ok((leaf, signers))
}
