//! The Discovery Provider answer (SPEC §5 `GET /v1/lookup`, verified by clients per §6): every leaf
//! for one SII in log order, the current mappings by [`ledger_core::state::fold`], the enroll leaves
//! in force for every signer of those entries and of their attestations, and every inclusion proof
//! against ONE checkpoint.

use std::collections::BTreeSet;

use ledger_core::api::{LookupAnswer, ProvenLeaf};
use ledger_core::entry::{Entry, Leaf, Role};
use ledger_core::sii::Sii;
use ledger_core::state::fold;

use crate::ledger::Ledger;
use crate::problem::ApiError;

/// The role whose enrollment signs `leaf` (SPEC §3): MSPs sign claims and their own revokes,
/// provers sign opt-outs and revokes of other MSPs' mappings, the log signs enrolls.
pub fn signer_role(leaf: &Leaf) -> Option<Role> {
    match leaf.entry() {
        Entry::Enroll(_) => None,
        Entry::Claim(_) => Some(Role::Msp),
        Entry::Revoke(r) if r.msp.as_str() == leaf.signer_name() => Some(Role::Msp),
        Entry::Revoke(_) | Entry::Optout(_) => Some(Role::Prover),
    }
}

fn leaf_text(index: u64, bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|_| ApiError::internal(format!("leaf {index} is not UTF-8")))
}

/// Builds the lookup answer for `sii` against the current head, folding at time `now`.
pub fn lookup(ledger: &Ledger, sii: &Sii, now: u64) -> Result<LookupAnswer, ApiError> {
    let head = ledger.head();
    let registry = ledger.registry();
    let storage = ledger.storage();
    let indices = storage
        .sii_indices(sii.as_str())
        .map_err(ApiError::internal)?;

    let mut entries: Vec<(u64, Leaf)> = Vec::with_capacity(indices.len());
    for index in indices.into_iter().filter(|i| *i < head.size) {
        let bytes = storage
            .leaf(index)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal(format!("leaf {index} is missing")))?;
        let leaf = Leaf::parse(&bytes)
            .map_err(|e| ApiError::internal(format!("stored leaf {index}: {e}")))?;
        entries.push((index, leaf));
    }
    let state = fold(entries.iter().map(|(i, l)| (*i, l.entry())), now);

    // The enrollment in force at each entry's index, for its signer and its attestation's prover.
    let mut key_indices = BTreeSet::new();
    for (index, leaf) in &entries {
        if let Some(role) = signer_role(leaf) {
            if let Some(k) = registry.enroll_index_at(role, leaf.signer_name(), *index) {
                key_indices.insert(k);
            }
        }
        if let Some(att) = leaf.entry().attestation() {
            if let Some(k) = registry.enroll_index_at(Role::Prover, att.signer_name(), *index) {
                key_indices.insert(k);
            }
        }
    }

    let mut keys = Vec::with_capacity(key_indices.len());
    for index in key_indices {
        let bytes = storage
            .leaf(index)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal(format!("enroll leaf {index} is missing")))?;
        keys.push(ProvenLeaf {
            index,
            leaf: leaf_text(index, bytes)?,
            inclusion: ledger.inclusion(index, head.size)?,
        });
    }
    let mut proven = Vec::with_capacity(entries.len());
    for (index, leaf) in entries {
        proven.push(ProvenLeaf {
            index,
            inclusion: ledger.inclusion(index, head.size)?,
            leaf: leaf_text(index, leaf.bytes().to_vec())?,
        });
    }
    Ok(LookupAnswer {
        sii: sii.as_str().to_string(),
        checkpoint: head.checkpoint.to_string(),
        status: state.status,
        mappings: state.mapping_indices(),
        entries: proven,
        keys,
    })
}
