//! Admission (SPEC §3): whether an entry may be appended at a given index.
//!
//! Pure functions over (leaf, the keys enrolled before that index, the log's policy, the clock), so the
//! log, the monitor and the client apply the same rules. The log runs all of them; monitors and clients
//! run [`verify_entry`] (everything but the clock, which only the log can judge at submission time).

use std::collections::BTreeMap;

use crate::entry::{Action, Entry, EntryError, Leaf, Role, SignedAttestation};
use crate::key::VerifierKey;
use crate::problem::ProblemType;

/// The log's admission policy, published in `/v1/info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Checks the single signature of `leaf` against the key enrolled for `(role, name)`.
fn check_signed_by(
    leaf: &Leaf,
    role: Role,
    name: &str,
    keys: &impl KeyLookup,
) -> Result<VerifierKey, Refusal> {
    let key = keys
        .enrolled(role, name)
        .ok_or_else(|| Refusal::NotEnrolled {
            name: name.to_string(),
            role,
        })?;
    verify_single(leaf.note(), key)?;
    Ok(key.clone())
}

/// Verifies that `note`'s single signature is `key`'s.
fn verify_single(note: &crate::note::Note, key: &VerifierKey) -> Result<(), Refusal> {
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
    if !key.verify(note.text().as_bytes(), &sig.sig) {
        return Err(Refusal::BadSignature {
            name: sig.name.clone(),
        });
    }
    Ok(())
}

/// Checks an attestation for an entry: prover enrolled (before the entry's index), signature, the fields
/// equal the entry's, and `time ≤ entry.time ≤ expires`. Returns the prover's key.
pub fn check_attestation(
    att: &SignedAttestation,
    action: Action,
    entry: &Entry,
    keys: &impl KeyLookup,
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
        Entry::Enroll(_) => return Err(bad("enroll entries carry no attestation".into())),
    };
    if &a.sii != sii {
        return Err(bad(format!("attestation is for {}, not {}", a.sii, sii)));
    }
    if a.msp.as_ref() != msp || a.ssi.as_ref() != ssi {
        return Err(bad(
            "attestation names another msp or ssi than the entry".into()
        ));
    }
    let t = entry.time();
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
    verify_single(&att.note, key).map_err(|e| bad(e.to_string()))?;
    Ok(key.clone())
}

/// Everything of §3 admission except the clock and the attestation policy: who must sign, that they are
/// enrolled with the right role before this index, that the signature verifies, and that an attestation,
/// when present (or structurally required), is valid. Used by the log, the monitor and the client.
pub fn verify_entry(leaf: &Leaf, keys: &impl KeyLookup) -> Result<Signers, Refusal> {
    let signer = leaf.signer_name().to_string();
    let entry = leaf.entry();
    match entry {
        Entry::Enroll(_) => {
            let log = keys.log_key();
            if signer != log.name() {
                return Err(Refusal::WrongSigner {
                    kind: "enroll",
                    expected: log.name().to_string(),
                    found: signer,
                });
            }
            verify_single(leaf.note(), log)?;
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
                    found: signer,
                });
            }
            let key = check_signed_by(leaf, Role::Msp, &signer, keys)?;
            let attestation = c
                .attestation
                .as_ref()
                .map(|a| check_attestation(a, Action::Claim, entry, keys))
                .transpose()?;
            Ok(Signers {
                role: Some(Role::Msp),
                entry: key,
                attestation,
            })
        }
        Entry::Revoke(r) => {
            if signer == r.msp.as_str() {
                let key = check_signed_by(leaf, Role::Msp, &signer, keys)?;
                let attestation = r
                    .attestation
                    .as_ref()
                    .map(|a| check_attestation(a, Action::Revoke, entry, keys))
                    .transpose()?;
                Ok(Signers {
                    role: Some(Role::Msp),
                    entry: key,
                    attestation,
                })
            } else if keys.enrolled(Role::Prover, &signer).is_some() {
                let key = check_signed_by(leaf, Role::Prover, &signer, keys)?;
                let Some(att) = &r.attestation else {
                    return Err(Refusal::AttestationRequired);
                };
                let attestation = Some(check_attestation(att, Action::Revoke, entry, keys)?);
                Ok(Signers {
                    role: Some(Role::Prover),
                    entry: key,
                    attestation,
                })
            } else {
                Err(Refusal::NotEnrolled {
                    name: signer,
                    role: Role::Msp,
                })
            }
        }
        Entry::Optout(o) => {
            let key = check_signed_by(leaf, Role::Prover, &signer, keys)?;
            let attestation = Some(check_attestation(
                &o.attestation,
                Action::Optout,
                entry,
                keys,
            )?);
            Ok(Signers {
                role: Some(Role::Prover),
                entry: key,
                attestation,
            })
        }
    }
}

/// The log-only checks: the attestation policy and the clock skew at submission time.
pub fn check_policy(leaf: &Leaf, policy: &Policy, now: u64) -> Result<(), Refusal> {
    if policy.require_attestation {
        if let Entry::Claim(c) = leaf.entry() {
            if c.attestation.is_none() {
                return Err(Refusal::AttestationRequired);
            }
        }
    }
    let time = leaf.entry().time();
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
