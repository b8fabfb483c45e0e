//! # ledger-core
//!
//! The shared foundation of mimi-ledger: identifiers (SPEC §1), signed notes and keys (§2), log entries
//! and their admission rules (§3), the Merkle tree, tiles, checkpoints and proofs (§4), the SII state fold,
//! the trusted log and checkpoint verification (§6 step 1), the client's verification of a Discovery
//! Provider's lookup answer (§6), the C2SP tlog-witness wire format (§7), and the audit answer and
//! alert line (§7, §8).
//!
//! No I/O and no async (the one clock read is [`time::now_unix`]): the log server, monitor, auditor
//! and client all call the same code, so that every party checks exactly the same rules.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod api;
pub mod batch;
pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod hash;
pub mod key;
pub mod lookup;
pub mod map;
pub mod note;
pub mod problem;
pub mod proof_file;
pub mod receipt;
pub mod signature;
pub mod sii;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tile;
pub mod time;
pub mod tree;
pub mod trust;
pub mod trust_file;
pub mod witness;

pub use hash::{Hash, TreeHash};
