//! The state of one SII (SPEC §3 fold): its current mappings and whether its owner opted out.
//!
//! One pure function, [`fold`], used by the log's DP lookup, the monitor and the client's verification,
//! so that everyone derives the same answer from the same entries.

use crate::entry::Entry;
use crate::sii::{Name, Ssi, Tag};

/// The lookup status of an SII (R5: "no mapping" is distinct from "opted out").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// At least one current mapping.
    Mapped,
    /// No current mapping and no opt-out.
    None,
    /// The owner opted out and no claim has mapped it since.
    OptedOut,
}

impl Status {
    /// The wire form (`mapped`, `none`, `opted-out`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Mapped => "mapped",
            Status::None => "none",
            Status::OptedOut => "opted-out",
        }
    }
}

/// A current mapping of an SII to an MSP user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The index of the claim that set it.
    pub index: u64,
    /// The MSP.
    pub msp: Name,
    /// The user at the MSP.
    pub ssi: Ssi,
    /// Preference tags (R2).
    pub tags: Vec<Tag>,
    /// The claim's time.
    pub time: u64,
    /// When the mapping stops being current, if ever.
    pub expires: Option<u64>,
    /// The prover whose attestation the claim carries, if any.
    pub attested_by: Option<String>,
}

/// The folded state of one SII.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiiState {
    /// The lookup status.
    pub status: Status,
    /// The current mappings, in the index order of their claims.
    pub mappings: Vec<Mapping>,
}

impl SiiState {
    /// The indices of the current claims (the `mappings` member of a lookup answer).
    pub fn mapping_indices(&self) -> Vec<u64> {
        self.mappings.iter().map(|m| m.index).collect()
    }
}

/// Folds the entries of one SII, in log order, into its state as of `now` (Unix seconds).
///
/// `claim` sets mapping (msp, ssi), replacing an earlier one with the same pair, and clears opt-out;
/// `revoke` removes (msp, ssi); `optout` removes all and sets opted-out. A mapping whose `expires` is
/// before `now` is not current. Enroll and map leaves are ignored. The caller passes only entries that name
/// the SII and that it has verified.
pub fn fold<'a>(entries: impl IntoIterator<Item = (u64, &'a Entry)>, now: u64) -> SiiState {
    let mut mappings: Vec<Mapping> = Vec::new();
    let mut opted_out = false;
    for (index, entry) in entries {
        match entry {
            Entry::Claim(c) => {
                mappings.retain(|m| !(m.msp == c.msp && m.ssi == c.ssi));
                mappings.push(Mapping {
                    index,
                    msp: c.msp.clone(),
                    ssi: c.ssi.clone(),
                    tags: c.tags.clone(),
                    time: c.time,
                    expires: c.expires,
                    attested_by: c.attestation.as_ref().map(|a| a.signer_name().to_string()),
                });
                opted_out = false;
            }
            Entry::Revoke(r) => mappings.retain(|m| !(m.msp == r.msp && m.ssi == r.ssi)),
            Entry::Optout(_) => {
                mappings.clear();
                opted_out = true;
            }
            // Enroll and map leaves are no SII's entries (SPEC §3 "State of an SII").
            Entry::Enroll(_) | Entry::Map(_) => {}
        }
    }
    mappings.retain(|m| m.expires.is_none_or(|e| e >= now));
    let status = if !mappings.is_empty() {
        Status::Mapped
    } else if opted_out {
        Status::OptedOut
    } else {
        Status::None
    };
    SiiState { status, mappings }
}
