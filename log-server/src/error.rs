//! The log's domain errors: what the ledger, the sequencer, admission, lookups and tile reads can
//! fail with, in the log's own terms. No HTTP type appears here or in those modules (as Sunlight's
//! `ctlog` returns sentinel errors and only `http.go` picks status codes): the one mapping to
//! problem+json is `From<LogError> for ApiError` in [`crate::problem`], at the HTTP edge, which is
//! also where internal failures are logged.

use ledger_core::admission::Refusal;

use crate::disk::DiskLow;

/// Why the log did not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Admission refused the entry (SPEC §3; its problem type is the refusal's).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The submission queue is full; the client may retry shortly.
    #[error("the submission queue is full; retry later")]
    QueueFull,
    /// The sequencer is not running (the server is shutting down).
    #[error("the sequencer is not running")]
    NotRunning,
    /// The disk is below its free-space floor: writes are refused and resume by themselves.
    #[error("{0}; writes resume once space is freed, reads go on")]
    StorageFull(DiskLow),
    /// The sequencer stopped on a storage error (the reason); only a restart brings writes back.
    #[error("the log stopped writing on a storage error ({0}); an operator must restart the log-server (after fixing the cause) to write again")]
    StorageFailed(String),
    /// Writing a batch failed (an I/O error; `full`: the disk is full) and nothing of it was
    /// stored; the log goes on, so the client may retry.
    #[error("writing the batch failed and nothing of it was stored ({reason}); retry later")]
    WriteFailed {
        /// Whether the disk is full.
        full: bool,
        /// The error.
        reason: String,
    },
    /// Reading the store failed, or it holds something it should not.
    #[error("storage: {0}")]
    Storage(String),
    /// A tree hash, root or proof could not be computed from the store.
    #[error("tree: {0}")]
    Tree(String),
    /// Signing a checkpoint or an enroll leaf failed.
    #[error("signing: {0}")]
    Signing(String),
    /// An enrollment request names an invalid role, name or key.
    #[error("{0}")]
    BadEnrollment(String),
    /// An entry the log was asked to build is not a valid entry.
    #[error(transparent)]
    InvalidEntry(#[from] ledger_core::entry::EntryError),
    /// A tile path that does not name a tile of this tree.
    #[error("{0}")]
    NoSuchTile(String),
}

impl LogError {
    /// Whether this is a fault of the server (logged where it is answered), not of the request.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            LogError::Storage(_) | LogError::Tree(_) | LogError::Signing(_)
        )
    }
}

impl From<crate::storage::StorageError> for LogError {
    fn from(e: crate::storage::StorageError) -> LogError {
        LogError::Storage(e.to_string())
    }
}

impl From<ledger_core::tree::TreeError> for LogError {
    fn from(e: ledger_core::tree::TreeError) -> LogError {
        LogError::Tree(e.to_string())
    }
}

impl From<ledger_core::tile::TileError> for LogError {
    fn from(e: ledger_core::tile::TileError) -> LogError {
        LogError::Tree(e.to_string())
    }
}
