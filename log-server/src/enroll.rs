//! Enrollment by the log operator (SPEC §3 `enroll`, `POST /v1/admin/enroll`): the request, the
//! log-signed enroll leaf it becomes, and the rule that enrolling the key already in force appends
//! nothing (so an admin call can be repeated safely) but answers the receipt of the leaf that put
//! it in force.

use ledger_core::api::Receipt;
use ledger_core::entry::{Enroll, Entry, Leaf, Role};
use ledger_core::key::{KeyAlg, SignerKey, VerifierKey};
use ledger_core::sii::Name;
use serde::Deserialize;

use crate::error::LogError;
use crate::ledger::Ledger;

/// `POST /v1/admin/enroll` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// `msp` or `prover`.
    pub role: String,
    /// The MSP or prover name.
    pub name: String,
    /// The verifier key to enroll; its name must equal `name`.
    pub key: String,
}

/// Builds the log-signed enroll leaf for an admin request. `Leaf::sign` writes the one canonical
/// byte form, and admission parses it once more when it is submitted.
pub fn enroll_leaf(req: &EnrollRequest, signer: &SignerKey, time: u64) -> Result<Leaf, LogError> {
    let bad = LogError::BadEnrollment;
    let role = Role::parse(&req.role)
        .ok_or_else(|| bad(format!("role {:?}: expected msp or prover", req.role)))?;
    let name = Name::parse(&req.name).map_err(|e| bad(format!("name {:?}: {e}", req.name)))?;
    let key = VerifierKey::parse(&req.key).map_err(|e| bad(format!("key: {e}")))?;
    if key.alg() != KeyAlg::Ed25519 {
        return Err(bad("key: must be an Ed25519 (type 0x01) note key".into()));
    }
    if key.name() != name.as_str() {
        return Err(bad(format!(
            "key is named {:?}, but name is {:?}",
            key.name(),
            req.name
        )));
    }
    Leaf::sign(
        Entry::Enroll(Enroll {
            role,
            name,
            key,
            time,
        }),
        signer,
    )
    .map_err(LogError::from)
}

/// When `leaf` enrolls the key already in force for its role and name, a receipt for the enroll
/// leaf that put it in force, against the current head.
pub fn current_enrollment(ledger: &Ledger, leaf: &Leaf) -> Result<Option<Receipt>, LogError> {
    let Entry::Enroll(e) = leaf.entry() else {
        return Ok(None);
    };
    let registry = ledger.registry();
    if registry.latest(e.role, e.name.as_str()) != Some(&e.key) {
        return Ok(None);
    }
    let head = ledger.head();
    let Some(index) = registry
        .enroll_index_at(e.role, e.name.as_str(), u64::MAX)
        .filter(|i| *i < head.size)
    else {
        return Ok(None);
    };
    let Some(bytes) = ledger.storage().leaf(index)? else {
        return Ok(None);
    };
    let leaf_hash = ledger.tree_hash().leaf_hash(&bytes);
    ledger.receipt(index, leaf_hash, &head).map(Some)
}
