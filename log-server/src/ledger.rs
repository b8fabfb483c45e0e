//! The open log: its store, identity, the latest signed checkpoint and the key registry, shared by
//! the sequencer (the only writer) and the HTTP handlers (readers).
//!
//! Readers never look past [`Head::size`]: the sequencer publishes a new head only after the batch
//! it covers is synced to disk, so everything a reader can see is durable and covered by the
//! checkpoint it is handed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ledger_core::admission::{verify_entry, KeyRegistry, Policy};
use ledger_core::api::Receipt;
use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::entry::{Entry, Leaf};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::map;
use ledger_core::time::now_unix;
use ledger_core::tree::{
    prove_inclusion, split_stored_hash_index, stored_hash_count, tree_root, HashReader, TreeError,
};
use ledger_core::{Hash, TreeHash};

use crate::disk::DiskLow;
use crate::error::LogError;
use crate::lock::{CheckpointLock, LockError};
use crate::map::MapStore;
use crate::metrics::Metrics;
use crate::storage::{Meta, Storage, StorageError};

/// The latest signed tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Tree size.
    pub size: u64,
    /// Root hash at `size`.
    pub root: Hash,
    /// The signed checkpoint note, as text.
    pub checkpoint: Arc<str>,
    /// The same checkpoint, parsed.
    pub signed: SignedCheckpoint,
}

impl Head {
    /// The head of a (possibly cosigned) checkpoint; `None` if its note is not UTF-8.
    pub fn from_signed(signed: SignedCheckpoint) -> Option<Head> {
        let text = String::from_utf8(signed.to_bytes()).ok()?;
        Some(Head {
            size: signed.checkpoint.size,
            root: signed.checkpoint.root,
            checkpoint: text.into(),
            signed,
        })
    }
}

/// The witnesses a log asks for cosignatures, as `/v1/info` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessInfo {
    /// The witness verifier keys.
    pub keys: Vec<String>,
    /// How many cosignatures the log aims for.
    pub quorum: usize,
}

/// Why the log cannot be opened. Each names what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The origin asked for is not the one the log was created with.
    #[error("this log was created with origin {stored:?}; it cannot be changed to {given:?} (omit --origin, or use another --data folder)")]
    OriginMismatch {
        /// The stored origin.
        stored: String,
        /// The origin asked for.
        given: String,
    },
    /// The tree hash asked for is not the one the log was created with.
    #[error("this log was created with tree hash {stored}; it cannot be changed to {given} (omit --hash, or use another --data folder)")]
    HashMismatch {
        /// The stored hash.
        stored: TreeHash,
        /// The hash asked for.
        given: TreeHash,
    },
    /// The signer key is not the key the log was created with.
    #[error("the signer key's verifier key is {given}, but this log was created with {stored}")]
    KeyMismatch {
        /// The stored verifier key.
        stored: String,
        /// The given key's verifier key.
        given: String,
    },
    /// The stored state is inconsistent (the checkpoint does not match the stored tree).
    #[error("the stored log is inconsistent: {0}; the store is damaged: restore the data folder from a backup that holds every entry of the last checkpoint this log signed")]
    Inconsistent(String),
    /// The checkpoint lock cannot be read or written.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The checkpoint lock holds something that is not a checkpoint signed by this log's key.
    #[error("checkpoint lock {path}: {reason}; it must hold the latest checkpoint signed by this log's key (restore it, or point --checkpoint-lock at the right file)")]
    BadLock {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store is empty but the key already signed a checkpoint: starting would fork the log.
    #[error("the store is empty, but this log's key already signed a checkpoint of size {lock_size} (checkpoint lock {path}). Starting a new tree under the same key would fork the log, so the log does not start. If the data folder was lost or damaged, restore it from a backup holding at least {lock_size} entries. Only to deliberately start a new tree with this key — a fork that every witness and monitor that saw the old checkpoints will prove — pass --allow-new-tree")]
    KeyAlreadySigned {
        /// The lock file.
        path: PathBuf,
        /// The size of the checkpoint it holds.
        lock_size: u64,
    },
    /// The store is smaller than the latest checkpoint the log signed: it lost entries.
    #[error("the store holds {store_size} entries, but this log already signed a checkpoint of size {lock_size} (checkpoint lock {path}): the store lost entries (damaged, cut, or restored from an older backup). Signing now would fork the log, so it does not start. Restore the data folder from a backup holding at least {lock_size} entries; nothing was changed")]
    StoreBehind {
        /// The lock file.
        path: PathBuf,
        /// The size of the checkpoint it holds.
        lock_size: u64,
        /// The store's size.
        store_size: u64,
    },
    /// The store's tree at the lock's size does not hash to the lock's root.
    #[error("the store's first {lock_size} entries do not hash to the checkpoint of size {lock_size} this log signed before (checkpoint lock {path}): the store is damaged or holds another tree. Signing over it would fork the log, so it does not start. Restore the data folder from a backup of this log; nothing was changed")]
    StoreDiverged {
        /// The lock file.
        path: PathBuf,
        /// The size of the checkpoint it holds.
        lock_size: u64,
    },
    /// The store has entries but there is no checkpoint lock to check it against.
    #[error("the store holds a log of {store_size} entries, but there is no checkpoint lock at {path} to check it against (it is kept beside the key file unless --checkpoint-lock says otherwise). Restore the lock file, or point --checkpoint-lock at it. Only if this data folder was written by a log-server without checkpoint locks, or the lock is lost for good and you are sure the store holds every entry this log ever signed, start once with --adopt-store")]
    NoLock {
        /// Where the lock was looked for.
        path: PathBuf,
        /// The store's size.
        store_size: u64,
    },
}

/// What [`Ledger::open`] checks the store against, and how the sequencer guards what it writes.
#[derive(Debug, Default)]
pub struct Safeguards {
    /// The checkpoint lock file and its content as read at start (`None`: no lock, for in-memory
    /// tests only).
    pub lock: Option<(PathBuf, Option<Vec<u8>>)>,
    /// Start a new tree even though the lock shows the key has signed before (a fork).
    pub allow_new_tree: bool,
    /// Accept an existing store that has no lock, and create the lock from it.
    pub adopt_store: bool,
    /// The data folder and the free bytes its disk must keep; writes are refused below it.
    pub disk: Option<(PathBuf, u64)>,
}

/// Why the sequencer stopped writing, as `/healthz` and `/v1/add` report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteState {
    /// Writing.
    Ok,
    /// Writes are refused while the disk is below its free-space floor; they resume by themselves.
    DiskLow(DiskLow),
    /// The sequencer stopped on a storage error; only a restart brings it back.
    Failed(String),
}

/// The lowest tree level whose stored hashes are also kept in memory by [`HashCache`].
///
/// Levels ≥ 2 hold half as many hashes as there are leaves (16 bytes per leaf), and every
/// inclusion or consistency proof then needs at most two hashes from the store instead of
/// O(log n).
pub const CACHED_MIN_LEVEL: u8 = 2;

/// An in-memory copy of the stored hashes of tree levels ≥ [`CACHED_MIN_LEVEL`], in the order the
/// tree appends them. Stored hashes never change, so a cached hash is always right; a hash not (yet)
/// cached is read from the store.
#[derive(Debug, Default)]
pub struct HashCache {
    /// `levels[l - CACHED_MIN_LEVEL][n]` = the node at level `l`, position `n`.
    levels: RwLock<Vec<Vec<Hash>>>,
}

impl HashCache {
    /// Loads the cached levels for a stored tree of `size` leaves.
    pub fn load(storage: &dyn Storage, size: u64) -> Result<HashCache, StorageError> {
        let cache = HashCache::default();
        // One pass over the stored hashes in their order, in large reads.
        let count = stored_hash_count(size);
        let mut start = 0;
        while start < count {
            let end = (start + (1 << 16)).min(count);
            cache.extend(start, &storage.hash_range(start, end)?);
            start = end;
        }
        Ok(cache)
    }

    /// Appends newly stored hashes (stored indices `start..`), keeping those of cached levels.
    pub fn extend(&self, start: u64, hashes: &[Hash]) {
        let Ok(mut levels) = self.levels.write() else {
            return;
        };
        for (index, h) in (start..).zip(hashes) {
            let (level, n) = split_stored_hash_index(index);
            let Some(slot) = level.checked_sub(CACHED_MIN_LEVEL) else {
                continue;
            };
            let slot = usize::from(slot);
            while levels.len() <= slot {
                levels.push(Vec::new());
            }
            if let Some(v) = levels.get_mut(slot) {
                // Appends arrive in order; anything else is left to the store.
                if v.len() as u64 == n {
                    v.push(*h);
                }
            }
        }
    }

    /// The cached hash at stored index `index`, if any.
    fn get(levels: &[Vec<Hash>], index: u64) -> Option<Hash> {
        let (level, n) = split_stored_hash_index(index);
        let slot = usize::from(level.checked_sub(CACHED_MIN_LEVEL)?);
        levels.get(slot)?.get(usize::try_from(n).ok()?).copied()
    }
}

/// A [`HashReader`] over the store, through the [`HashCache`] when one is given.
pub struct StoreReader<'a>(pub &'a dyn Storage, pub Option<&'a HashCache>);

impl HashReader for StoreReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        let map_err = |e| match e {
            StorageError::MissingHash(index) => TreeError::MissingHash { index },
            other => TreeError::Storage(other.to_string()),
        };
        let Some(cache) = self.1 else {
            return self.0.hashes(indexes).map_err(map_err);
        };
        let mut out: Vec<Option<Hash>> = match cache.levels.read() {
            Ok(levels) => indexes
                .iter()
                .map(|&i| HashCache::get(&levels, i))
                .collect(),
            Err(_) => vec![None; indexes.len()],
        };
        let missing: Vec<u64> = indexes
            .iter()
            .zip(&out)
            .filter(|(_, h)| h.is_none())
            .map(|(i, _)| *i)
            .collect();
        if !missing.is_empty() {
            let mut stored = self.0.hashes(&missing).map_err(map_err)?.into_iter();
            for slot in out.iter_mut().filter(|h| h.is_none()) {
                *slot = stored.next();
            }
        }
        out.into_iter()
            .map(|h| {
                h.ok_or(TreeError::WrongHashCount {
                    requested: indexes.len(),
                    returned: 0,
                })
            })
            .collect()
    }
}

/// The open log.
pub struct Ledger {
    storage: Arc<dyn Storage>,
    meta: Meta,
    vkey: VerifierKey,
    policy: Policy,
    head: RwLock<Arc<Head>>,
    registry: RwLock<Arc<KeyRegistry>>,
    failed: AtomicBool,
    /// False while a DP mirror has no verified checkpoint to serve (see [`Ledger::open_mirror`]).
    serving: AtomicBool,
    failure: RwLock<Option<String>>,
    lock: Option<CheckpointLock>,
    disk: Option<(PathBuf, u64)>,
    cache: HashCache,
    map: MapStore,
    witnesses: std::sync::OnceLock<WitnessInfo>,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.meta.origin)
            .field("size", &self.head().size)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the log in `storage`, creating it (origin and hash as given, or the defaults) when the
    /// store is empty, and checks that the stored tree hashes to the stored checkpoint and reaches
    /// the checkpoint lock of `guards` (see [`check_against_lock`]).
    pub fn open(
        storage: Arc<dyn Storage>,
        signer: &SignerKey,
        hash: Option<TreeHash>,
        policy: Policy,
        metrics: Arc<Metrics>,
        guards: Safeguards,
    ) -> Result<Ledger, OpenError> {
        let vkey = signer.verifier();
        let locked = match &guards.lock {
            Some((path, Some(bytes))) => Some(verify_lock(path, bytes, &vkey, signer.name())?),
            _ => None,
        };
        let stored_meta = storage.meta()?;
        if stored_meta.is_none() {
            if let (Some((path, _)), Some(cp)) = (&guards.lock, &locked) {
                // An empty tree again under the same key forks nothing.
                if !guards.allow_new_tree && cp.checkpoint.size > 0 {
                    return Err(OpenError::KeyAlreadySigned {
                        path: path.clone(),
                        lock_size: cp.checkpoint.size,
                    });
                }
                tracing::warn!(
                    lock = %path.display(),
                    lock_size = cp.checkpoint.size,
                    "--allow-new-tree: starting a new tree with a key that signed a checkpoint before; this is a fork"
                );
            }
        }
        let meta = match stored_meta {
            Some(meta) => {
                if meta.origin != signer.name() {
                    return Err(OpenError::OriginMismatch {
                        stored: meta.origin,
                        given: signer.name().to_string(),
                    });
                }
                if let Some(given) = hash.filter(|h| *h != meta.hash) {
                    return Err(OpenError::HashMismatch {
                        stored: meta.hash,
                        given,
                    });
                }
                if meta.vkey != vkey.to_string() {
                    return Err(OpenError::KeyMismatch {
                        stored: meta.vkey,
                        given: vkey.to_string(),
                    });
                }
                meta
            }
            None => {
                let meta = Meta {
                    origin: signer.name().to_string(),
                    hash: hash.unwrap_or_default(),
                    vkey: vkey.to_string(),
                    created: now_unix(),
                };
                let (_, cp) = sign_checkpoint(signer, 0, meta.hash.empty_root())
                    .map_err(|e| OpenError::Inconsistent(format!("signing the empty tree: {e}")))?;
                storage.create(&meta, cp.as_bytes())?;
                meta
            }
        };
        let head = recover_head(storage.as_ref(), &meta, &vkey)?;
        let lock = match guards.lock.clone() {
            None => None,
            Some((path, current)) => {
                let lock = CheckpointLock::new(path, current);
                check_against_lock(
                    storage.as_ref(),
                    &meta,
                    &head,
                    locked.as_ref(),
                    &lock,
                    &guards,
                )?;
                Some(lock)
            }
        };
        // Only a head that passed the lock's check may have files beyond it removed.
        storage.recover(head.size)?;
        if let Some(lock) = &lock {
            lock.store(head.checkpoint.as_bytes())?;
        }
        Ledger::assemble(
            storage,
            meta,
            vkey,
            policy,
            metrics,
            head,
            lock,
            guards.disk,
            true,
        )
    }

    /// Opens a DP mirror's store ([`crate::mirror`]): the log's identity is the trust file's
    /// (`log_key`, `hash`), there is no signer key and no checkpoint lock (a mirror signs
    /// nothing, so it can fork nothing). A new store is created empty and holds no checkpoint
    /// until the mirror has verified one. Returns the ledger and, when the store is not at a
    /// checkpoint it verified — a new store, or a crash in the middle of committing a span — the
    /// checkpoint being caught up to (`None` for a new store): until the mirror reaches a
    /// checkpoint again it serves no view at all ([`Ledger::serving`] is false).
    pub fn open_mirror(
        storage: Arc<dyn Storage>,
        log_key: &VerifierKey,
        hash: TreeHash,
        metrics: Arc<Metrics>,
        disk: Option<(PathBuf, u64)>,
    ) -> Result<(Ledger, Option<SignedCheckpoint>), OpenError> {
        let meta = match storage.meta()? {
            Some(meta) => {
                if meta.origin != log_key.name() {
                    return Err(OpenError::OriginMismatch {
                        stored: meta.origin,
                        given: log_key.name().to_string(),
                    });
                }
                if meta.hash != hash {
                    return Err(OpenError::HashMismatch {
                        stored: meta.hash,
                        given: hash,
                    });
                }
                if meta.vkey != log_key.to_string() {
                    return Err(OpenError::KeyMismatch {
                        stored: meta.vkey,
                        given: log_key.to_string(),
                    });
                }
                meta
            }
            None => {
                let meta = Meta {
                    origin: log_key.name().to_string(),
                    hash,
                    vkey: log_key.to_string(),
                    created: now_unix(),
                };
                storage.create(&meta, b"")?;
                meta
            }
        };
        let bad = |s: String| OpenError::Inconsistent(s);
        let (size, bytes) = storage
            .head()?
            .ok_or_else(|| bad("no stored head".into()))?;
        let (head, serving, target) = if bytes.is_empty() {
            if size != 0 {
                return Err(bad(format!("stored size {size} without a checkpoint")));
            }
            (
                unserved_head(&meta, size, meta.hash.empty_root())?,
                false,
                None,
            )
        } else {
            let cp = SignedCheckpoint::verify(&bytes, log_key)
                .map_err(|e| bad(format!("stored checkpoint: {e}")))?;
            if cp.checkpoint.size == size {
                (recover_head(storage.as_ref(), &meta, log_key)?, true, None)
            } else if cp.checkpoint.size > size {
                let root = tree_root(meta.hash, size, &StoreReader(storage.as_ref(), None))
                    .map_err(|e| bad(format!("recomputing the root of size {size}: {e}")))?;
                (unserved_head(&meta, size, root)?, false, Some(cp))
            } else {
                return Err(bad(format!(
                    "stored size {size} is beyond its checkpoint's size {}",
                    cp.checkpoint.size
                )));
            }
        };
        storage.recover(head.size)?;
        let ledger = Ledger::assemble(
            storage,
            meta,
            log_key.clone(),
            Policy::default(),
            metrics,
            head,
            None,
            disk,
            serving,
        )?;
        Ok((ledger, target))
    }

    /// The rest of opening, once the head is known and the store recovered to it: the key
    /// registry, the hash cache and the map, checked against the head's map leaf.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        storage: Arc<dyn Storage>,
        meta: Meta,
        vkey: VerifierKey,
        policy: Policy,
        metrics: Arc<Metrics>,
        head: Head,
        lock: Option<CheckpointLock>,
        disk: Option<(PathBuf, u64)>,
        serving: bool,
    ) -> Result<Ledger, OpenError> {
        let mut registry = KeyRegistry::new(vkey.clone());
        for index in storage.enrollments()? {
            if index >= head.size {
                return Err(OpenError::Inconsistent(format!(
                    "enroll index {index} is beyond the checkpoint size {}",
                    head.size
                )));
            }
            let bytes = storage.leaf(index)?.ok_or_else(|| {
                OpenError::Inconsistent(format!("enroll leaf {index} is missing"))
            })?;
            let leaf = Leaf::parse(&bytes)
                .map_err(|e| OpenError::Inconsistent(format!("enroll leaf {index}: {e}")))?;
            registry.add_entry(index, leaf.entry());
        }
        metrics.tree_size.store(head.size, Ordering::Relaxed);
        let cache = HashCache::load(storage.as_ref(), head.size)?;
        let (map, map_root) = MapStore::load(meta.hash, &storage.map_values()?, head.size)?;
        check_map(storage.as_ref(), &vkey, head.size, &map_root)?;
        // The store passed every check: its head is what the static layout shows (a crash
        // before the last commit's step 8 left the one before).
        if serving {
            storage.publish(head.checkpoint.as_bytes(), head.size, head.size)?;
        }
        Ok(Ledger {
            storage,
            meta,
            vkey,
            policy,
            head: RwLock::new(Arc::new(head)),
            registry: RwLock::new(Arc::new(registry)),
            failed: AtomicBool::new(false),
            serving: AtomicBool::new(serving),
            failure: RwLock::new(None),
            lock,
            disk,
            cache,
            map,
            witnesses: std::sync::OnceLock::new(),
            metrics,
        })
    }

    /// Whether the log serves a view: always for the log itself; for a DP mirror, once it has
    /// verified a checkpoint (see [`Ledger::open_mirror`]).
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// A mirror publishes a verified checkpoint's head (and with it starts serving).
    pub(crate) fn publish_mirrored(&self, head: Head, registry: KeyRegistry) {
        self.publish(head, Some(registry));
        self.serving.store(true, Ordering::Release);
    }

    /// The store.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The map (SPEC §9) in memory, with the versions of the last batches (see [`crate::map`]):
    /// lookups read the version of their head's size.
    pub fn map(&self) -> &MapStore {
        &self.map
    }

    /// A hash reader over the store and the in-memory hash cache.
    pub fn reader(&self) -> StoreReader<'_> {
        StoreReader(self.storage.as_ref(), Some(&self.cache))
    }

    /// Records hashes the sequencer just stored durably (stored indices `start..`).
    pub(crate) fn cache_hashes(&self, start: u64, hashes: &[Hash]) {
        self.cache.extend(start, hashes);
    }

    /// The log origin.
    pub fn origin(&self) -> &str {
        &self.meta.origin
    }

    /// The tree hash.
    pub fn tree_hash(&self) -> TreeHash {
        self.meta.hash
    }

    /// The log's verifier key.
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// The admission policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The fixed identity stored at creation.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The latest published head.
    pub fn head(&self) -> Arc<Head> {
        match self.head.read() {
            Ok(h) => Arc::clone(&h),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key registry as of the latest published head.
    pub fn registry(&self) -> Arc<KeyRegistry> {
        match self.registry.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Publishes a new head (and registry) — called by the sequencer after the batch is durable.
    pub(crate) fn publish(&self, head: Head, registry: Option<KeyRegistry>) {
        self.metrics.tree_size.store(head.size, Ordering::Relaxed);
        if let Some(r) = registry {
            match self.registry.write() {
                Ok(mut g) => *g = Arc::new(r),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(r),
            }
        }
        match self.head.write() {
            Ok(mut g) => *g = Arc::new(head),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(head),
        }
    }

    /// Republishes the current head as `signed` (the same checkpoint with witness cosignature
    /// lines added), if the head is still that checkpoint. Returns the new head, or `None` when a
    /// newer head was published meanwhile (or the note is not UTF-8).
    pub(crate) fn publish_cosigned(&self, signed: SignedCheckpoint) -> Option<Arc<Head>> {
        let head = Arc::new(Head::from_signed(signed)?);
        let mut g = match self.head.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if g.size != head.size || g.root != head.root {
            return None;
        }
        *g = Arc::clone(&head);
        drop(g);
        // The static copy shows the cosignatures too (best effort: the next batch writes it again).
        if let Err(e) = self
            .storage
            .publish(head.checkpoint.as_bytes(), head.size, head.size)
        {
            tracing::warn!(error = %e, "writing the cosigned checkpoint file");
        }
        Some(head)
    }

    /// Records the witnesses and quorum for `/v1/info` (once, at start).
    pub fn set_witnesses(&self, info: WitnessInfo) {
        let _ = self.witnesses.set(info);
    }

    /// The witnesses and quorum (none and 0 when no witness is configured).
    pub fn witnesses(&self) -> WitnessInfo {
        self.witnesses.get().cloned().unwrap_or_default()
    }

    /// Marks the log as failed: the sequencer hit a storage error and stopped (fail-stop, so that
    /// nothing is signed over a store in an unknown state). `/healthz` reports it with `reason`.
    pub(crate) fn set_failed(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut g = match self.failure.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // The first reason is the one that matters; later ones follow from it.
        if g.is_none() {
            *g = Some(reason);
        }
        drop(g);
        self.failed.store(true, Ordering::SeqCst);
        self.metrics.failed.store(true, Ordering::Relaxed);
    }

    /// Whether the sequencer has stopped on an error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Whether the log can write now: failed for good, refusing while the disk is low, or ok.
    pub fn write_state(&self) -> WriteState {
        if self.failed() {
            let reason = match self.failure.read() {
                Ok(g) => g.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            return WriteState::Failed(reason.unwrap_or_else(|| "storage error".into()));
        }
        match self.disk_ok() {
            Ok(()) => WriteState::Ok,
            Err(low) => WriteState::DiskLow(low),
        }
    }

    /// Whether the data folder's disk has its configured free space (always, without a floor).
    pub fn disk_ok(&self) -> Result<(), DiskLow> {
        match &self.disk {
            Some((dir, min)) => crate::disk::check_free(dir, *min),
            None => Ok(()),
        }
    }

    /// Records `checkpoint` (the log-signed note of a batch that is durable in the store) in the
    /// checkpoint lock, before it is published. Without a lock (in-memory tests) it does nothing.
    pub(crate) fn lock_checkpoint(&self, checkpoint: &[u8]) -> Result<(), LockError> {
        match &self.lock {
            Some(lock) => lock.store(checkpoint),
            None => Ok(()),
        }
    }

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(prove_inclusion(
            self.meta.hash,
            index,
            size,
            &self.reader(),
        )?)
    }

    /// A receipt for leaf `index` (with `leaf_hash`) against `head`.
    pub fn receipt(&self, index: u64, leaf_hash: Hash, head: &Head) -> Result<Receipt, LogError> {
        Ok(Receipt {
            index,
            leaf_hash,
            checkpoint: head.checkpoint.to_string(),
            inclusion: self.inclusion(index, head.size)?,
        })
    }

    /// If `bytes` are exactly the bytes of a leaf covered by the current head, its index.
    pub fn existing(
        &self,
        bytes: &[u8],
        leaf_hash: &Hash,
        head: &Head,
    ) -> Result<Option<u64>, LogError> {
        let Some(index) = self.storage.leaf_index(leaf_hash)? else {
            return Ok(None);
        };
        if index >= head.size {
            // Stored by a batch whose head is not published yet; the sequencer answers it.
            return Ok(None);
        }
        let stored = self.storage.leaf(index)?;
        Ok((stored.as_deref() == Some(bytes)).then_some(index))
    }
}

/// Signs the checkpoint `<origin>\n<size>\n<root>\n` with the log key (C2SP tlog-checkpoint);
/// returns it parsed and as note text.
pub fn sign_checkpoint(
    signer: &SignerKey,
    size: u64,
    root: Hash,
) -> Result<(SignedCheckpoint, String), LogError> {
    let cp = SignedCheckpoint::sign(
        Checkpoint {
            origin: signer.name().to_string(),
            size,
            root,
        },
        signer,
    )
    .map_err(|e| LogError::Signing(e.to_string()))?;
    let text = String::from_utf8(cp.to_bytes()).map_err(|e| LogError::Signing(e.to_string()))?;
    Ok((cp, text))
}

/// The checkpoint in the lock file at `path`, verified with the log key.
fn verify_lock(
    path: &Path,
    bytes: &[u8],
    vkey: &VerifierKey,
    origin: &str,
) -> Result<SignedCheckpoint, OpenError> {
    let bad = |reason: String| OpenError::BadLock {
        path: path.to_path_buf(),
        reason,
    };
    let cp = SignedCheckpoint::verify(bytes, vkey)
        .map_err(|e| bad(format!("not a checkpoint signed by {vkey}: {e}")))?;
    if cp.checkpoint.origin != origin {
        return Err(bad(format!(
            "it is a checkpoint of origin {:?}, not {origin:?}",
            cp.checkpoint.origin
        )));
    }
    Ok(cp)
}

/// The start-up rule that keeps a damaged store from being signed over (SPEC §4): the store's
/// tree must reach the checkpoint in the lock (`locked`, already verified) and hash to it at its
/// size. A store *ahead* of the lock is fine — a crash between the store's sync and the lock's
/// write leaves exactly that, a checkpoint nobody was shown — and the caller then records the
/// store's checkpoint in the lock. A store with entries and no lock is refused unless
/// `--adopt-store` says to trust it.
fn check_against_lock(
    storage: &dyn Storage,
    meta: &Meta,
    head: &Head,
    locked: Option<&SignedCheckpoint>,
    lock: &CheckpointLock,
    guards: &Safeguards,
) -> Result<(), OpenError> {
    let path = lock.path().to_path_buf();
    let Some(cp) = locked else {
        if head.size > 0 && !guards.adopt_store {
            return Err(OpenError::NoLock {
                path,
                store_size: head.size,
            });
        }
        if head.size > 0 {
            tracing::warn!(size = head.size, lock = %path.display(), "--adopt-store: trusting the store as it is and creating the checkpoint lock from it");
        }
        return Ok(());
    };
    let lock_size = cp.checkpoint.size;
    if guards.allow_new_tree && head.size == 0 {
        return Ok(());
    }
    if head.size < lock_size {
        return Err(OpenError::StoreBehind {
            path,
            lock_size,
            store_size: head.size,
        });
    }
    let root = tree_root(meta.hash, lock_size, &StoreReader(storage, None)).map_err(|_| {
        OpenError::StoreDiverged {
            path: path.clone(),
            lock_size,
        }
    })?;
    if root != cp.checkpoint.root {
        return Err(OpenError::StoreDiverged { path, lock_size });
    }
    if head.size > lock_size {
        tracing::info!(
            lock_size,
            store_size = head.size,
            "the store is ahead of the checkpoint lock (a crash after the store's sync); recording its checkpoint"
        );
    }
    Ok(())
}

/// Reads the stored head and checks it against the stored tree: the checkpoint verifies with the
/// log key, names the stored size, and its root is the root of the stored hashes (a batch's hashes
/// are synced before its checkpoint is, so any mismatch means the store was damaged outside the
/// server). The head's files are checked by [`Storage::recover`], the map by [`check_map`].
/// The head of a mirror that serves nothing yet: the stored tree of `size` leaves under an
/// unsigned checkpoint, which no route shows (they answer 503 until the mirror serves).
fn unserved_head(meta: &Meta, size: u64, root: Hash) -> Result<Head, OpenError> {
    let checkpoint = Checkpoint {
        origin: meta.origin.clone(),
        size,
        root,
    };
    let note = ledger_core::note::Note::new(&checkpoint.to_text())
        .map_err(|e| OpenError::Inconsistent(format!("the stored origin: {e}")))?;
    Ok(Head {
        size,
        root,
        checkpoint: String::new().into(),
        signed: SignedCheckpoint { checkpoint, note },
    })
}

fn recover_head(storage: &dyn Storage, meta: &Meta, vkey: &VerifierKey) -> Result<Head, OpenError> {
    let bad = |s: String| OpenError::Inconsistent(s);
    let (size, cp_bytes) = storage
        .head()?
        .ok_or_else(|| bad("no stored checkpoint".into()))?;
    let cp = SignedCheckpoint::verify(&cp_bytes, vkey)
        .map_err(|e| bad(format!("stored checkpoint: {e}")))?;
    if cp.checkpoint.size != size {
        return Err(bad(format!(
            "stored size {size} but the stored checkpoint is for size {}",
            cp.checkpoint.size
        )));
    }
    if cp.checkpoint.origin != meta.origin {
        return Err(bad("stored checkpoint names another origin".into()));
    }
    let root = tree_root(meta.hash, size, &StoreReader(storage, None))
        .map_err(|e| bad(format!("recomputing the root of size {size}: {e}")))?;
    if root != cp.checkpoint.root {
        return Err(bad(format!(
            "the stored tree of size {size} does not hash to the stored checkpoint's root"
        )));
    }
    let checkpoint =
        String::from_utf8(cp_bytes).map_err(|_| bad("stored checkpoint is not UTF-8".into()))?;
    Ok(Head {
        size,
        root,
        checkpoint: checkpoint.into(),
        signed: cp,
    })
}

/// The stored map is the map of the stored head (SPEC §9): the head's last leaf is a log-signed map
/// leaf at its own index whose root is `root`, the root of the map rebuilt from the stored values
/// (the empty map for the empty log). The values are written in the same atomic commit as that
/// leaf, so any mismatch means the store was damaged outside the server.
fn check_map(
    storage: &dyn Storage,
    vkey: &VerifierKey,
    size: u64,
    root: &Hash,
) -> Result<(), OpenError> {
    let bad = |s: String| OpenError::Inconsistent(s);
    let Some(last) = size.checked_sub(1) else {
        if *root != map::EMPTY {
            return Err(bad("the empty log has a non-empty stored map".into()));
        }
        return Ok(());
    };
    let bytes = storage
        .leaf(last)?
        .ok_or_else(|| bad(format!("leaf {last} is missing")))?;
    let leaf = Leaf::parse(&bytes).map_err(|e| bad(format!("leaf {last}: {e}")))?;
    let Entry::Map(m) = leaf.entry() else {
        return Err(bad(format!(
            "the checkpoint's last leaf ({last}) is a {}, not a map leaf",
            leaf.entry().kind()
        )));
    };
    verify_entry(&leaf, &KeyRegistry::new(vkey.clone()).at(last))
        .map_err(|e| bad(format!("map leaf {last}: {e}")))?;
    if m.size != last {
        return Err(bad(format!(
            "the map leaf at index {last} says size {}",
            m.size
        )));
    }
    if m.root != *root {
        return Err(bad(format!(
            "the map rebuilt from the stored values differs from the root in the map leaf at index {last}"
        )));
    }
    Ok(())
}
