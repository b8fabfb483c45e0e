//! The Discovery Provider answer (SPEC §5 `GET /v1/lookup`, verified by clients per §6), built by
//! [`ledger_core::lookup::build_answer`] — the same code the test doubles use — over the store:
//! every leaf for one SII in log order, the current mappings by `state::fold`, every enroll leaf of
//! every signer of those entries and of their attestations, every inclusion proof against ONE
//! checkpoint (the head taken at the start of the request), and the map proofs (SPEC §9) from the
//! map of exactly that checkpoint ([`crate::map::MapStore::prove_at`]).

use ledger_core::entry::Leaf;
use ledger_core::lookup::{build_answer, AnswerSource};
use ledger_core::sii::Sii;
use ledger_core::{api::LookupAnswer, Hash};

use crate::error::LogError;
use crate::ledger::Ledger;

impl AnswerSource for Ledger {
    type Error = LogError;

    fn tree_hash(&self) -> ledger_core::TreeHash {
        Ledger::tree_hash(self)
    }

    fn map_proof(&self, key: &Hash, size: u64) -> Result<ledger_core::map::MapProof, LogError> {
        self.map()
            .prove_at(key, size)
            .map(|p| p.proof)
            .map_err(|e| LogError::Storage(format!("map proof: {e}")))
    }

    fn leaf(&self, index: u64) -> Result<Vec<u8>, LogError> {
        self.storage()
            .leaf(index)?
            .ok_or_else(|| LogError::Storage(format!("leaf {index} is missing")))
    }

    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        Ledger::inclusion(self, index, size)
    }
}

/// Builds the lookup answer for `sii` against the current head, folding at time `now`.
///
/// A lookup that fell more than [`crate::map::KEEP`] batches behind the sequencer while reading
/// the map is answered again against the newest head (once; see [`crate::map`]).
pub fn lookup(ledger: &Ledger, sii: &Sii, now: u64) -> Result<LookupAnswer, LogError> {
    match lookup_at_head(ledger, sii, now) {
        Err(LogError::Storage(_)) if !ledger.failed() => lookup_at_head(ledger, sii, now),
        other => other,
    }
}

fn lookup_at_head(ledger: &Ledger, sii: &Sii, now: u64) -> Result<LookupAnswer, LogError> {
    let head = ledger.head();
    let registry = ledger.registry();
    let indices = ledger.storage().sii_indices(sii.as_str())?;
    let mut entries: Vec<(u64, Leaf)> = Vec::with_capacity(indices.len());
    for index in indices.into_iter().filter(|i| *i < head.size) {
        let bytes = AnswerSource::leaf(ledger, index)?;
        let leaf = Leaf::parse(&bytes)
            .map_err(|e| LogError::Storage(format!("stored leaf {index}: {e}")))?;
        // The index is keyed by a 128-bit digest of the SII (`storage::index`): keep only this
        // SII's entries.
        if leaf.entry().sii() == Some(sii) {
            entries.push((index, leaf));
        }
    }
    build_answer(sii, &entries, &registry, &head.signed, ledger, now)
}
