//! Durable storage of the log behind a narrow trait, so the sequencer and the HTTP layer do not
//! know about files or sled: [`tiled::TiledStorage`], the data folder, puts the tree in files
//! ([`files`]) and the rest in an index ([`index`]).
//!
//! What is stored (SPEC §3–§4, tlog "stored hash index" layout):
//! - leaves: as C2SP entry bundles under `public/tile/entries/` (written once, never changed);
//! - tree hashes: as C2SP hash tiles under `public/tile/<L>/`, and every stored hash in the flat
//!   file `hashes` (the tree is never rebuilt);
//! - leaf hash → index (idempotent resubmission, `?leaf_hash=` proofs);
//! - SII → indices (DP lookups);
//! - enroll indices (to rebuild the key registry at start);
//! - the verifiable map (SPEC §9): a journal of its keys' values (count and chain), one record per
//!   batch with the new values of the keys it touched, written in the same commit as the batch
//!   whose map leaf commits them (the map's nodes are derived from the values and kept in memory:
//!   [`crate::map`]);
//! - the latest signed checkpoint and the tree size it covers;
//! - meta: origin, tree hash, log verifier key, creation time (fixed for the log's life).
//!
//! [`Storage::commit`] writes everything of one sequencer batch and syncs it before it returns;
//! the batch counts once the index's head names its size, so after a crash the store holds either
//! the whole batch with its checkpoint or none of it (files beyond the head are removed at start).

pub mod files;
pub mod index;
pub mod journal;
pub mod tiled;

use ledger_core::map::MapValue;
use ledger_core::tile::Tile;
use ledger_core::{Hash, TreeHash};
use serde::{Deserialize, Serialize};

/// A storage failure. The log cannot go on safely after one (see [`crate::sequencer`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database failed (I/O, corruption).
    #[error("database: {0}")]
    Db(String),
    /// A value has the wrong shape (a bug or corruption).
    #[error("corrupt value for {key}: {reason}")]
    Corrupt {
        /// Which key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored tree hash that must exist is missing.
    #[error("stored hash {0} is missing")]
    MissingHash(u64),
    /// The log was already created.
    #[error("the log is already created")]
    AlreadyCreated,
    /// Writing or reading the tree's files failed. From [`Storage::commit`] it means nothing of
    /// the batch counts (the index was not touched): the write may be tried again.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Whether the disk is full (`ENOSPC`).
        full: bool,
        /// The error.
        error: String,
    },
}

/// The log's fixed identity, written once at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The log origin (checkpoint first line and log key name).
    pub origin: String,
    /// The tree hash.
    pub hash: TreeHash,
    /// The log's verifier key text.
    pub vkey: String,
    /// Creation time, Unix seconds.
    pub created: u64,
}

/// One new leaf of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLeaf {
    /// Its index.
    pub index: u64,
    /// The exact leaf bytes.
    pub bytes: Vec<u8>,
    /// `H(0x00 ‖ bytes)`.
    pub leaf_hash: Hash,
    /// The SII it is about (claims, revokes, opt-outs).
    pub sii: Option<String>,
    /// Whether it is an enroll leaf.
    pub enroll: bool,
}

/// Everything one sequencer batch writes, in one atomic commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The new leaves, at consecutive indices starting at the old size.
    pub leaves: Vec<NewLeaf>,
    /// The stored-hash index of `hashes[0]` (= stored hash count of the old size).
    pub hashes_start: u64,
    /// The new stored hashes, at consecutive stored-hash indices.
    pub hashes: Vec<Hash>,
    /// The new tree size.
    pub size: u64,
    /// The signed checkpoint note for `size`.
    pub checkpoint: Vec<u8>,
    /// The new values of the map keys the batch files leaves under: after the commit the stored
    /// values are those of the map the batch's map leaf commits.
    pub map: Vec<(Hash, MapValue)>,
}

/// The log's durable store.
pub trait Storage: Send + Sync + 'static {
    /// The log's meta, or `None` for an empty store.
    fn meta(&self) -> Result<Option<Meta>, StorageError>;
    /// Creates the log: writes meta and the signed checkpoint of the empty tree, and syncs.
    fn create(&self, meta: &Meta, checkpoint: &[u8]) -> Result<(), StorageError>;
    /// The stored tree size and the signed checkpoint note for it (written together).
    fn head(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError>;
    /// Brings the tree's files to the checked head `size` (removing what an interrupted commit
    /// left beyond it) and checks the head's own files; reads of leaves and tiles are answered
    /// from then on. Called once at start, after the head was checked against the lock.
    fn recover(&self, size: u64) -> Result<(), StorageError>;
    /// The leaf at `index`.
    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// The leaves at `start..end` in order (fewer if the store ends earlier).
    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StorageError>;
    /// The stored hashes at `indexes` (tlog stored-hash indices), in the same order.
    fn hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StorageError>;
    /// The stored hashes at stored-hash indices `start..end`, in order.
    fn hash_range(&self, start: u64, end: u64) -> Result<Vec<Hash>, StorageError>;
    /// The data of hash tile or entry bundle `tile`, which the stored head covers.
    fn tile(&self, tile: &Tile) -> Result<Vec<u8>, StorageError>;
    /// The index of the leaf with this leaf hash.
    fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, StorageError>;
    /// The indices of the leaves about `sii`, in log order.
    fn sii_indices(&self, sii: &str) -> Result<Vec<u64>, StorageError>;
    /// The indices of all enroll leaves, in log order.
    fn enrollments(&self) -> Result<Vec<u64>, StorageError>;
    /// Every map key with its value as of the stored head, in key order (read at start: the
    /// journal replayed, later values winning).
    fn map_values(&self) -> Result<Vec<(Hash, MapValue)>, StorageError>;
    /// Writes a batch atomically and syncs it to disk before returning. [`StorageError::Io`]
    /// means nothing of it was stored (it may be retried); any other error leaves the store in a
    /// state only a restart's recovery may judge.
    fn commit(&self, commit: &Commit) -> Result<(), StorageError>;
    /// After the checkpoint `checkpoint` of a committed batch (from `old_size` to `new_size`) is
    /// in the checkpoint lock: publishes it beside the tiles and removes what the new size made
    /// redundant (partial tiles that are full now). Nothing depends on it for safety.
    fn publish(&self, checkpoint: &[u8], old_size: u64, new_size: u64) -> Result<(), StorageError>;
    /// Syncs everything to disk.
    fn flush(&self) -> Result<(), StorageError>;
    /// Bytes the store uses on disk.
    fn size_on_disk(&self) -> Result<u64, StorageError>;
}
