//! Steps 1 and 2 of following a log: the checkpoint's signature and witness quorum, and its
//! consistency with the last verified checkpoint (from the log's own hash tiles, each checked
//! before use).

use ledger_core::checkpoint::{compare, Agreement, Contradiction, SignedCheckpoint};
use ledger_core::tile::AuthTileHashReader;
use ledger_core::time::now_unix;
use ledger_core::tree::{prove_consistency, verify_consistency};
use ledger_core::trust::CheckpointRefused;
use ledger_core::Hash;
use tracing::info;

use crate::alert::{Alert, Kind};
use crate::fetch::FetchedTiles;

use super::*;

/// What a consistency check over the log's hash tiles found.
pub(super) enum TileCheck {
    Consistent,
    Inconsistent(String),
    Unavailable(String),
}

impl LogMonitor {
    /// Step 1: the log signature and witness quorum. `None` when the checkpoint is unusable.
    pub(super) fn check_signature(
        &mut self,
        bytes: &[u8],
        digest: &str,
        cx: &mut Ctx<'_>,
    ) -> Result<Option<SignedCheckpoint>, EngineError> {
        let origin = self.params.origin.clone();
        let (size, problem) = match SignedCheckpoint::parse(bytes) {
            Err(e) => (None, format!("the checkpoint does not parse: {e}")),
            Ok(cp) => match self.params.log.verify(&cp, now_unix()) {
                Ok(_) => return Ok(Some(cp)),
                Err(CheckpointRefused::Signature(e)) => (
                    Some(cp.checkpoint.size),
                    format!(
                        "the checkpoint at size {} fails the log signature: {e}",
                        cp.checkpoint.size
                    ),
                ),
                Err(e) => (
                    Some(cp.checkpoint.size),
                    format!(
                        "the checkpoint at size {} lacks its witness quorum: {e}",
                        cp.checkpoint.size
                    ),
                ),
            },
        };
        let alert = Alert::new(Kind::BadCheckpointSignature, &origin, size, problem);
        self.alert_now(cx, alert, digest)?;
        Ok(None)
    }

    /// Step 2 and, when the checkpoint is new and larger, the catch-up.
    pub(super) fn consider(
        &mut self,
        cp: &SignedCheckpoint,
        cx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let origin = self.params.origin.clone();
        let vs = self.progress.verified_size;
        let vroot = self.verified_root()?;
        let (size, root) = (cp.checkpoint.size, cp.checkpoint.root);
        let verified = ledger_core::checkpoint::Checkpoint {
            origin: origin.clone(),
            size: vs,
            root: vroot,
        };
        match compare(self.params.log.hash, &verified, &cp.checkpoint) {
            Ok(Agreement::Consistent) if size <= vs => return Ok(()),
            // From the empty tree: nothing to prove, the entries will tell.
            Ok(Agreement::Consistent) => {}
            Err(Contradiction::SameSizeDifferentRoots { .. }) => {
                let a = Alert::new(
                    Kind::InconsistentCheckpoint,
                    &origin,
                    Some(size),
                    format!(
                        "two checkpoints of size {size} with different roots: {} (verified) and {}",
                        b64(&vroot),
                        b64(&root)
                    ),
                );
                return self.halt(cx, a, &b64(&root));
            }
            Err(e) => {
                let a = Alert::new(
                    Kind::InconsistentCheckpoint,
                    &origin,
                    Some(size),
                    format!("the checkpoint of size {size} is not a prefix of the verified tree of size {vs}: {e}"),
                );
                return self.halt(cx, a, &b64(&root));
            }
            Ok(Agreement::NeedsProof { .. }) if size < vs => {
                if let TileCheck::Inconsistent(why) = self.tile_consistency(size, &root, vs, &vroot)
                {
                    let a = Alert::new(
                        Kind::InconsistentCheckpoint,
                        &origin,
                        Some(size),
                        format!("the checkpoint of size {size} is not a prefix of the verified tree of size {vs}: {why}"),
                    );
                    self.halt(cx, a, &b64(&root))?;
                }
                return Ok(());
            }
            Ok(Agreement::NeedsProof { .. }) => {
                match self.tile_consistency(vs, &vroot, size, &root) {
                    TileCheck::Consistent => {}
                    TileCheck::Inconsistent(why) => {
                        let a = Alert::new(
                            Kind::InconsistentCheckpoint,
                            &origin,
                            Some(size),
                            format!(
                                "the checkpoint of size {size} is inconsistent with the verified one of size {vs}: {why}"
                            ),
                        );
                        return self.halt(cx, a, &b64(&root));
                    }
                    TileCheck::Unavailable(why) => {
                        info!(log = %self.params.name, "no consistency proof from tiles ({why}); the entries will tell");
                    }
                }
            }
        }
        self.catch_up(cp, cx)
    }

    /// A consistency proof between two sizes, computed from the log's hash tiles at the larger
    /// size and verified (RFC 9162 §2.1.4.2). The tiles are only trusted once they reproduce the
    /// larger root (the core's `AuthTileHashReader` checks each one before use).
    pub(super) fn tile_consistency(
        &self,
        old: u64,
        old_root: &Hash,
        new: u64,
        new_root: &Hash,
    ) -> TileCheck {
        // Every hash the proof is made of comes from tiles checked against `new_root` first.
        let tiles = FetchedTiles::new(&self.client);
        let reader = AuthTileHashReader::new(self.params.log.hash, new, *new_root, &tiles);
        let proof = match prove_consistency(self.params.log.hash, old, new, &reader) {
            Ok(p) => p,
            Err(e) => return TileCheck::Unavailable(e.to_string()),
        };
        match verify_consistency(self.params.log.hash, old, new, old_root, new_root, &proof) {
            Ok(()) => TileCheck::Consistent,
            Err(e) => TileCheck::Inconsistent(e.to_string()),
        }
    }
}
