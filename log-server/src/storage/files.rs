//! The log's tree as files: the C2SP tlog-tiles static layout under `<data>/public/` (hash tiles
//! `tile/<L>/<N>[.p/<W>]`, entry bundles `tile/entries/<N>[.p/<W>]`, the signed `checkpoint`),
//! every stored hash of every tree level in one flat file `<data>/hashes`, and the map's journal
//! (`<data>/map-journal`, [`super::journal`]), written and synced like `hashes`.
//!
//! Why files and not the embedded store: leaves and tree hashes are written once, in order, and
//! never change, so a key-value store that rewrites pages for them (sled did, ~1.6 KB per entry
//! for leaves of ~265 bytes) spends disk and CPU on nothing. As files they are written once and
//! `public/` is, byte for byte, what a static web server or an object store serves to monitors and
//! mirrors (c2sp.org/tlog-tiles), with nothing else in it (no key, no token, no index).
//!
//! Why the extra `hashes` file: a tile holds the hashes of every 8th tree level only; the levels in
//! between would have to be recomputed (up to 255 hashes per tile) for every proof. The flat file
//! (offset = 32 × stored-hash index, the tlog stored-hash order) answers each proof hash with one
//! positioned read; it costs 64 bytes per leaf.
//!
//! How a batch is written (the sequencer's steps 4 and 5, [`crate::sequencer`]): [`TileFiles::write`]
//! puts the batch's stored hashes at their offsets in `hashes` and every tile and bundle the new
//! size completes or extends into a temporary file beside its final name; [`TileFiles::sync`]
//! syncs them, renames them into place and syncs the folders. Nothing refers to these files until
//! the index's head moves to the new size (step 6), so a crash or an I/O error before that leaves
//! only files *beyond* the head, which [`TileFiles::recover`] (at start) and
//! [`TileFiles::remove_beyond`] (after a failed write) remove; the same batch written again
//! replaces them. A tile file covered by the head is never written again, except the partial ones,
//! which are new files of a new width; once a tile is full its partial files are deleted
//! ([`TileFiles::collect_partials`]): a reader that asks for a deleted partial tile gets it cut
//! from the full one by this log, and from a static server it falls back to the full tile as
//! tlog-tiles says.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ledger_core::tile::{
    cut_from_full, new_tiles, read_tile_data, tile_width_at, try_encode_entry_bundle, Tile,
    DATA_LEVEL, MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH,
};
use ledger_core::tree::{stored_hash_count, HashReader, TreeError};
use ledger_core::Hash;

use super::{Commit, StorageError};

/// The most leaves one commit may append (the sequencer's batch, its map leaf included): bounds
/// the files beyond the head that an interrupted commit can leave, which recovery looks for.
pub const MAX_BATCH_LEAVES: u64 = 65_536;

/// The folder under the data folder that holds the C2SP static layout.
pub const PUBLIC_DIR: &str = "public";
/// The flat file of stored hashes.
pub const HASHES_FILE: &str = "hashes";
/// The map's journal ([`super::journal`]).
pub const JOURNAL_FILE: &str = "map-journal";
/// The prefix of temporary files (never a tile name: those start with a digit, `x` or `entries`).
const TMP_PREFIX: &str = ".tmp-";

/// The tree's files of one data folder.
#[derive(Debug)]
pub struct TileFiles {
    public: PathBuf,
    hashes: File,
    /// The map's journal, and the length of it the committed head covers.
    journal: File,
    journal_len: AtomicU64,
    /// The head size reads are answered for (the committed one).
    size: AtomicU64,
    /// The size of the checkpoint in `public/checkpoint`, once written by this process.
    published: std::sync::Mutex<Option<u64>>,
    /// Entry bundles read lately (their content never changes): every lookup reads the bundle
    /// of its signers' enrollments and the one ending in the head's map leaf.
    bundles: std::sync::Mutex<BundleCache>,
}

/// The entry bundles read lately, at most [`BUNDLE_CACHE`] of them.
type BundleCache = std::collections::HashMap<Tile, std::sync::Arc<Vec<u8>>>;

/// How many entry bundles [`TileFiles`] keeps in memory (about 70 KB each for claims).
const BUNDLE_CACHE: usize = 64;

/// What [`TileFiles::write`] wrote and [`TileFiles::sync`] must make durable.
#[derive(Debug, Default)]
pub struct Written {
    /// Temporary file, final name, open handle, and whether it must be synced before the
    /// commit point (everything but partial hash tiles, see [`TileFiles::sync`]).
    files: Vec<(PathBuf, PathBuf, File, bool)>,
    /// Folders whose entries must be durable (the synced files' parents and created folders'
    /// parents).
    dirs: BTreeSet<PathBuf>,
    /// The map journal's length with the batch's record.
    pub journal_len: u64,
}

impl Written {
    /// How many tile and bundle files the batch writes.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether it writes none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A [`StorageError::Io`] for `e` while doing `what`.
pub(super) fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> StorageError {
    StorageError::Io {
        what: what.to_string(),
        full: e.kind() == ErrorKind::StorageFull || e.raw_os_error() == Some(28),
        error: e.to_string(),
    }
}

fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Syncs a folder (its entries: new names, renames, removals).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl TileFiles {
    /// Opens (creating when missing) the files of data folder `data`. Reads see size 0 until
    /// [`TileFiles::recover`] sets the head.
    pub fn open(data: &Path) -> Result<TileFiles, StorageError> {
        let public = data.join(PUBLIC_DIR);
        std::fs::create_dir_all(public.join("tile"))
            .map_err(|e| io_err(format!("creating {}", public.display()), e))?;
        let open = |name: &str| {
            let path = data.join(name);
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_err(format!("opening {}", path.display()), e))
        };
        let hashes = open(HASHES_FILE)?;
        let journal = open(JOURNAL_FILE)?;
        sync_dir(data).map_err(|e| io_err(format!("syncing {}", data.display()), e))?;
        Ok(TileFiles {
            public,
            hashes,
            journal,
            journal_len: AtomicU64::new(0),
            size: AtomicU64::new(0),
            published: std::sync::Mutex::new(None),
            bundles: std::sync::Mutex::new(BundleCache::new()),
        })
    }

    /// The folder served as the log's static C2SP API.
    pub fn public_dir(&self) -> &Path {
        &self.public
    }

    /// The size reads are answered for.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Moves reads to the committed head `size`, whose map journal is `journal_len` bytes long
    /// (after the index commit of step 6).
    pub fn set_size(&self, size: u64, journal_len: u64) {
        self.journal_len.store(journal_len, Ordering::Release);
        self.size.store(size, Ordering::Release);
    }

    fn path(&self, tile: &Tile) -> PathBuf {
        self.public.join(tile.path())
    }

    // -----------------------------------------------------------------------------------------
    // Reads.
    // -----------------------------------------------------------------------------------------

    /// The stored hashes at `indexes`, in order.
    pub fn hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StorageError> {
        let mut out = Vec::with_capacity(indexes.len());
        let mut buf = [0u8; 32];
        for &i in indexes {
            let offset = i.checked_mul(32).ok_or(StorageError::MissingHash(i))?;
            match self.hashes.read_exact_at(&mut buf, offset) {
                Ok(()) => out.push(buf),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Err(StorageError::MissingHash(i))
                }
                Err(e) => return Err(io_err(format!("reading stored hash {i}"), e)),
            }
        }
        Ok(out)
    }

    /// The stored hashes `start..end`, with one read.
    pub fn hash_range(&self, start: u64, end: u64) -> Result<Vec<Hash>, StorageError> {
        let n = usize::try_from(end.saturating_sub(start))
            .map_err(|_| corrupt("hashes", "range too long"))?;
        let mut buf = vec![0u8; n * 32];
        match self
            .hashes
            .read_exact_at(&mut buf, start.saturating_mul(32))
        {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(StorageError::MissingHash(end - 1))
            }
            Err(e) => return Err(io_err(format!("reading stored hashes {start}..{end}"), e)),
        }
        Ok(buf
            .chunks_exact(32)
            .filter_map(|c| Hash::try_from(c).ok())
            .collect())
    }

    /// Every map key with its value as of the committed head (the journal replayed).
    pub fn map_values(&self) -> Result<Vec<(Hash, ledger_core::map::MapValue)>, StorageError> {
        let len = usize::try_from(self.journal_len.load(Ordering::Acquire))
            .map_err(|_| corrupt("map-journal", "too long"))?;
        let mut data = vec![0u8; len];
        self.journal
            .read_exact_at(&mut data, 0)
            .map_err(|e| io_err("reading the map journal", e))?;
        super::journal::replay(&data)
    }

    /// The bytes of the tile or bundle file `tile` when it exists.
    fn read_file(&self, tile: &Tile) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(tile);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading {}", path.display()), e)),
        }
    }

    /// The data of `tile` (any width the head covers: the caller checks), read from its file, or
    /// cut from the full tile or the head's wider partial one when its own file is gone or was
    /// never written (a batch can grow a tile by more than one width).
    pub fn tile(&self, tile: &Tile) -> Result<Vec<u8>, StorageError> {
        if let Some(data) = self.read_file(tile)? {
            return Ok(data);
        }
        let head_width = tile_width_at(tile.level, tile.index, self.size());
        let mut sources = vec![tile.full()];
        if head_width > tile.width && head_width < TILE_WIDTH {
            sources.push(Tile {
                width: head_width,
                ..*tile
            });
        }
        for source in sources {
            if let Some(data) = self.read_file(&source)? {
                return cut_from_full(tile, pad_for_cut(tile, &source, data))
                    .map_err(|e| corrupt(source.path(), e.to_string()));
            }
        }
        Err(corrupt(
            tile.path(),
            "neither it, its full tile nor the head's partial tile is on disk",
        ))
    }

    /// The data of entry bundle `bundle`, from the cache or its file.
    fn cached_bundle(&self, bundle: &Tile) -> Result<std::sync::Arc<Vec<u8>>, StorageError> {
        let lock = || {
            self.bundles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(data) = lock().get(bundle) {
            return Ok(std::sync::Arc::clone(data));
        }
        let data = std::sync::Arc::new(self.tile(bundle)?);
        let mut cache = lock();
        if cache.len() >= BUNDLE_CACHE {
            // Evict one (arbitrary) entry: the hot bundles are read again at once.
            if let Some(k) = cache.keys().next().copied() {
                cache.remove(&k);
            }
        }
        cache.insert(*bundle, std::sync::Arc::clone(&data));
        Ok(data)
    }

    /// The leaves `start..end` (fewer when the head ends earlier), read from the entry bundles.
    pub fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let end = end.min(self.size());
        let mut out = Vec::new();
        let width = u64::from(TILE_WIDTH);
        let mut next = start;
        while next < end {
            let n = next / width;
            let bundle = Tile::at_size(DATA_LEVEL, n, self.size())
                .ok_or_else(|| corrupt(format!("bundle {n}"), "beyond the head"))?;
            let data = self.cached_bundle(&bundle)?;
            let skip = (next % width) as usize;
            let take = usize::try_from(end - next).unwrap_or(usize::MAX);
            let found = entries_of(&data, skip, take, &mut out)
                .ok_or_else(|| corrupt(bundle.path(), "not a well-formed entry bundle"))?;
            if found != usize::from(bundle.width) {
                return Err(corrupt(
                    bundle.path(),
                    format!("holds {found} entries, not {}", bundle.width),
                ));
            }
            next += (usize::from(bundle.width).saturating_sub(skip)).min(take) as u64;
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // A batch: write (step 4), sync (step 5), and after the head moved, collect partials.
    // -----------------------------------------------------------------------------------------

    /// Step 4: writes `commit` (which grows the tree from `old_size`) to temporary files and its
    /// stored hashes into `hashes`. Nothing it writes is read before [`TileFiles::set_size`].
    pub fn write(&self, old_size: u64, commit: &Commit) -> Result<Written, StorageError> {
        let start = commit.hashes_start;
        if start != stored_hash_count(old_size) {
            return Err(corrupt(
                "hashes",
                format!("a batch from size {old_size} starts at stored hash {start}"),
            ));
        }
        let mut bytes = Vec::with_capacity(commit.hashes.len() * 32);
        for h in &commit.hashes {
            bytes.extend_from_slice(h);
        }
        crate::fault::point("write-hashes").map_err(|e| io_err("the stored hashes", e))?;
        self.hashes
            .write_all_at(&bytes, start * 32)
            .map_err(|e| io_err("writing the stored hashes", e))?;

        let record = super::journal::encode(commit.size, &commit.map)?;
        let journal_at = self.journal_len.load(Ordering::Acquire);
        self.journal
            .write_all_at(&record, journal_at)
            .map_err(|e| io_err("writing the map journal", e))?;

        let mut written = Written {
            journal_len: journal_at + record.len() as u64,
            ..Written::default()
        };
        let reader = FileHashes(self);
        for tile in new_tiles(old_size, commit.size) {
            let data =
                read_tile_data(&tile, &reader).map_err(|e| corrupt(tile.path(), e.to_string()))?;
            self.stage_file(&tile, &data, &mut written)?;
            let Some(bundle) = (tile.level == 0).then_some(Tile {
                level: DATA_LEVEL,
                ..tile
            }) else {
                continue;
            };
            let data = self.bundle_data(&bundle, old_size, commit)?;
            self.stage_file(&bundle, &data, &mut written)?;
        }
        Ok(written)
    }

    /// The entry bundle `bundle` after `commit`: the head's partial bundle as it is on disk (an
    /// entry bundle's encoding is the concatenation of its entries', so the old partial is the
    /// new bundle's prefix), then the commit's leaves framed after it. Read past the bundle cache:
    /// a partial bundle is read once, by the next batch.
    fn bundle_data(
        &self,
        bundle: &Tile,
        old_size: u64,
        commit: &Commit,
    ) -> Result<Vec<u8>, StorageError> {
        let first = bundle.index * u64::from(TILE_WIDTH);
        let end = first + u64::from(bundle.width);
        let kept = old_size.saturating_sub(first);
        let mut data = match u16::try_from(kept) {
            Ok(0) => Vec::new(),
            Ok(width) => {
                let old = Tile::entry_bundle(bundle.index, width)
                    .map_err(|e| corrupt(bundle.path(), e.to_string()))?;
                let data = self.tile(&old)?;
                if entries_of(&data, 0, 0, &mut Vec::new()) != Some(usize::from(width)) {
                    return Err(corrupt(
                        old.path(),
                        format!("does not hold {width} entries"),
                    ));
                }
                data
            }
            Err(_) => return Err(corrupt(bundle.path(), "the head is beyond this bundle")),
        };
        let new: Vec<&[u8]> = commit
            .leaves
            .iter()
            .filter(|l| l.index >= first.max(old_size) && l.index < end)
            .enumerate()
            .map(|(n, l)| {
                if l.index == first + kept + n as u64 {
                    Ok(l.bytes.as_slice())
                } else {
                    Err(corrupt(
                        bundle.path(),
                        format!("leaf {} is out of order", l.index),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        if kept + new.len() as u64 != u64::from(bundle.width) {
            return Err(corrupt(
                bundle.path(),
                format!(
                    "{} leaves for width {}",
                    kept + new.len() as u64,
                    bundle.width
                ),
            ));
        }
        data.extend(
            try_encode_entry_bundle(&new).map_err(|e| corrupt(bundle.path(), e.to_string()))?,
        );
        Ok(data)
    }

    /// Writes `data` to a temporary file beside `tile`'s path, creating folders as needed.
    fn stage_file(
        &self,
        tile: &Tile,
        data: &[u8],
        written: &mut Written,
    ) -> Result<(), StorageError> {
        let path = self.path(tile);
        let parent = path
            .parent()
            .ok_or_else(|| corrupt(tile.path(), "no parent folder"))?
            .to_path_buf();
        self.create_dirs(&parent, &mut written.dirs)
            .map_err(|e| io_err(format!("creating {}", parent.display()), e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| corrupt(tile.path(), "no file name"))?;
        let tmp = parent.join(format!("{TMP_PREFIX}{name}"));
        crate::fault::point("write-tile").map_err(|e| io_err(tile.path(), e))?;
        let mut f =
            File::create(&tmp).map_err(|e| io_err(format!("creating {}", tmp.display()), e))?;
        f.write_all(data)
            .map_err(|e| io_err(format!("writing {}", tmp.display()), e))?;
        let durable = tile.is_data() || !tile.is_partial();
        if durable {
            written.dirs.insert(parent);
        }
        written.files.push((tmp, path, f, durable));
        Ok(())
    }

    /// Creates `dir` and its missing parents under `public/`, recording each created folder's
    /// parent as a folder to sync.
    fn create_dirs(&self, dir: &Path, dirs: &mut BTreeSet<PathBuf>) -> std::io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent.starts_with(&self.public) && parent != self.public.as_path() {
                self.create_dirs(parent, dirs)?;
            }
            dirs.insert(parent.to_path_buf());
        }
        match std::fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Step 5: syncs the stored hashes and the written files, renames them into place and syncs
    /// their folders; the syncs of each stage run side by side (one journal commit serves them
    /// all). All files are synced before the first rename, so a name never points at data that is
    /// not on disk.
    ///
    /// Partial *hash* tiles are renamed but not synced: they are the only files derived from
    /// others (the synced `hashes`), so a power loss that takes one back is repaired at start
    /// ([`TileFiles::recover`] rewrites the head's partial tiles from `hashes`), while the older
    /// partials are deleted once their tile is full. That saves a sync per tree level per batch.
    /// Full tiles, entry bundles (full or partial: they hold the only copy of the leaves) and
    /// `hashes` are synced.
    pub fn sync(&self, written: Written) -> Result<(), StorageError> {
        crate::fault::point("sync-files").map_err(|e| io_err("syncing the tile files", e))?;
        let to_sync: Vec<(&Path, &File)> = [
            (Path::new(HASHES_FILE), &self.hashes),
            (Path::new(JOURNAL_FILE), &self.journal),
        ]
        .into_iter()
        .chain(
            written
                .files
                .iter()
                .filter(|f| f.3)
                .map(|(tmp, _, f, _)| (tmp.as_path(), f)),
        )
        .collect();
        in_parallel(&to_sync, |(path, f)| {
            f.sync_data()
                .map_err(|e| io_err(format!("syncing {}", path.display()), e))
        })?;
        for (tmp, path, _, _) in &written.files {
            std::fs::rename(tmp, path)
                .map_err(|e| io_err(format!("renaming {}", tmp.display()), e))?;
        }
        crate::fault::crash_point("files-renamed");
        let dirs: Vec<&PathBuf> = written.dirs.iter().collect();
        in_parallel(&dirs, |dir| {
            sync_dir(dir).map_err(|e| io_err(format!("syncing {}", dir.display()), e))
        })
    }

    /// After the head moved from `old_size` to `new_size`: deletes the partial files of the
    /// tiles and bundles that became full (they are prefixes of the full ones).
    pub fn collect_partials(&self, old_size: u64, new_size: u64) -> std::io::Result<()> {
        for tile in new_tiles(old_size, new_size) {
            if tile.width != TILE_WIDTH {
                continue;
            }
            for t in [
                tile,
                Tile {
                    level: DATA_LEVEL,
                    ..tile
                },
            ] {
                if t.level == DATA_LEVEL && tile.level != 0 {
                    continue;
                }
                remove_dir_if_any(&partial_dir(&self.path(&t)))?;
            }
        }
        Ok(())
    }

    /// Writes the signed checkpoint the static layout serves, for a tree of `size` leaves
    /// (temporary file, rename), unless a larger one is there already (the witness collector may
    /// publish a cosigned checkpoint while the sequencer publishes the next). Not synced: the
    /// checkpoint lock and the index hold the durable copies, and start writes the head's again.
    pub fn publish_checkpoint(&self, checkpoint: &[u8], size: u64) -> std::io::Result<()> {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if published.is_some_and(|p| p > size) {
            return Ok(());
        }
        let path = self.public.join("checkpoint");
        if published.is_none() && std::fs::read(&path).is_ok_and(|b| b == checkpoint) {
            *published = Some(size);
            return Ok(());
        }
        let tmp = self.public.join(format!("{TMP_PREFIX}checkpoint"));
        let mut f = File::create(&tmp)?;
        f.write_all(checkpoint)?;
        std::fs::rename(&tmp, &path)?;
        *published = Some(size);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Recovery.
    // -----------------------------------------------------------------------------------------

    /// At start, for the index's head `size`: cuts `hashes` back to the head, removes every tile,
    /// bundle and temporary file an interrupted commit left beyond it, and the partial files of
    /// tiles the head has full; checks the head's rightmost tiles are on disk and agree with the
    /// stored hashes; then reads are answered for `size`. Returns what it removed (for the log).
    pub fn recover(&self, size: u64, journal_len: u64) -> Result<Vec<PathBuf>, StorageError> {
        cut_back(&self.journal, JOURNAL_FILE, journal_len)?;
        cut_back(&self.hashes, HASHES_FILE, stored_hash_count(size) * 32)?;
        let removed = self
            .remove_beyond(size)
            .map_err(|e| io_err("removing tiles beyond the head", e))?;
        self.set_size(size, journal_len);
        let mut changed = removed;
        for tile in new_tiles(size.saturating_sub(1), size) {
            if let Some(path) = self.check_head_tile(&tile)? {
                changed.push(path);
            }
        }
        Ok(changed)
    }

    /// The head's tile `tile` (and its bundle, at level 0) is on disk and, for a hash tile, holds
    /// the stored hashes. A partial hash tile that is missing or differs (it is not synced before
    /// the commit point, see [`TileFiles::sync`]) is rewritten from `hashes`, and its path
    /// returned; anything else wrong is damage.
    fn check_head_tile(&self, tile: &Tile) -> Result<Option<PathBuf>, StorageError> {
        let from_hashes = read_tile_data(tile, &FileHashes(self))
            .map_err(|e| corrupt(tile.path(), e.to_string()))?;
        let on_disk = self.read_file(tile)?;
        let mut repaired = None;
        if on_disk.as_deref() != Some(from_hashes.as_slice()) {
            if !tile.is_partial() {
                return Err(corrupt(
                    tile.path(),
                    match on_disk {
                        None => "missing: the data folder is damaged (the head's full tile is not on disk)",
                        Some(_) => "the data folder is damaged: it differs from the stored hashes",
                    },
                ));
            }
            let mut written = Written::default();
            self.stage_file(tile, &from_hashes, &mut written)?;
            for (tmp, path, f, _) in &written.files {
                f.sync_data()
                    .and_then(|()| std::fs::rename(tmp, path))
                    .map_err(|e| io_err(format!("rewriting {}", path.display()), e))?;
            }
            repaired = Some(self.path(tile));
        }
        if tile.level == 0 {
            let bundle = Tile {
                level: DATA_LEVEL,
                ..*tile
            };
            let data = self.read_file(&bundle)?.ok_or_else(|| {
                corrupt(
                    bundle.path(),
                    "missing: the data folder is damaged (the head's entry bundle is not on disk)",
                )
            })?;
            let n = entries_of(&data, 0, 0, &mut Vec::new()).ok_or_else(|| {
                corrupt(
                    bundle.path(),
                    "the data folder is damaged: not a well-formed entry bundle",
                )
            })?;
            if n != usize::from(bundle.width) {
                return Err(corrupt(
                    bundle.path(),
                    format!("the data folder is damaged: it holds {n} entries"),
                ));
            }
        }
        Ok(repaired)
    }

    /// Removes every tile and bundle file a tree of `size` leaves does not have (those an
    /// interrupted or failed commit of at most [`MAX_BATCH_LEAVES`] leaves wrote), temporary
    /// files, and the partial files of the last tiles the tree has full.
    pub fn remove_beyond(&self, size: u64) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let reach = size.saturating_add(MAX_BATCH_LEAVES);
        let mut dirs = BTreeSet::new();
        // The hash levels a tree of `reach` leaves has, and the bundles (counted as level 0).
        let levels = (0..=MAX_TILE_LEVEL)
            .take_while(|l| reach.checked_shr(u32::from(*l) * u32::from(TILE_HEIGHT)) > Some(0))
            .chain([DATA_LEVEL]);
        for level in levels {
            let shift =
                u32::from(if level == DATA_LEVEL { 0 } else { level }) * u32::from(TILE_HEIGHT);
            let count = size >> shift;
            let reach_count = reach >> shift;
            let head_n = count >> TILE_HEIGHT;
            let head_w = (count % u64::from(TILE_WIDTH)) as u16;
            let last_n = reach_count >> TILE_HEIGHT;
            // The partial files of the last tiles the head has full (a crash before step 8).
            let full_from = head_n.saturating_sub(MAX_BATCH_LEAVES.div_ceil(256) + 1);
            for n in full_from..=last_n {
                let Ok(full) = Tile::new(level, n, TILE_WIDTH) else {
                    continue;
                };
                let path = self.path(&full);
                if let Some(parent) = path.parent() {
                    dirs.insert(parent.to_path_buf());
                }
                let pdir = partial_dir(&path);
                if n < head_n {
                    if pdir.is_dir() {
                        remove_dir_if_any(&pdir)?;
                        removed.push(pdir);
                    }
                    continue;
                }
                if remove_file_if_any(&path)? {
                    removed.push(path.clone());
                }
                if n > head_n {
                    if pdir.is_dir() {
                        remove_dir_if_any(&pdir)?;
                        removed.push(pdir);
                    }
                    continue;
                }
                // The head's own tile: keep the partial widths up to the head's.
                let Ok(entries) = std::fs::read_dir(&pdir) else {
                    continue;
                };
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    let keep = name.parse::<u16>().is_ok_and(|w| w <= head_w);
                    if !keep && remove_file_if_any(&entry.path())? {
                        removed.push(entry.path());
                    }
                }
            }
        }
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
                    && remove_file_if_any(&entry.path())?
                {
                    removed.push(entry.path());
                }
            }
        }
        let tmp = self.public.join(format!("{TMP_PREFIX}checkpoint"));
        if remove_file_if_any(&tmp)? {
            removed.push(tmp);
        }
        Ok(removed)
    }

    /// Bytes the files use: `hashes`, `map-journal` and everything under `public/`.
    pub fn size_on_disk(&self) -> std::io::Result<u64> {
        Ok(self.hashes.metadata()?.len()
            + self.journal.metadata()?.len()
            + dir_bytes(&self.public)?)
    }
}

/// Cuts the flat file `file` (named `name`) back to the `want` bytes the head covers: what a
/// commit interrupted before its index commit appended. A file shorter than that is damage.
fn cut_back(file: &File, name: &str, want: u64) -> Result<(), StorageError> {
    let len = file
        .metadata()
        .map_err(|e| io_err(format!("reading the length of {name}"), e))?
        .len();
    if len < want {
        return Err(corrupt(
            name,
            format!("the data folder is damaged: {len} bytes, the head needs {want}"),
        ));
    }
    if len > want {
        file.set_len(want)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_err(format!("cutting {name} back to the head"), e))?;
    }
    Ok(())
}

/// Walks the entry bundle `data` (big-endian `u16` length, entry), copying the `take` entries
/// after the first `skip` to `out` and only those (a lookup wants one leaf of a bundle, and
/// decoding all 256 was most of its cost). Returns the number of entries in the bundle, or `None`
/// when it is not well framed.
fn entries_of(data: &[u8], skip: usize, take: usize, out: &mut Vec<Vec<u8>>) -> Option<usize> {
    let mut rest = data;
    let mut n = 0usize;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let (entry, tail) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
        if n >= skip && n - skip < take {
            out.push(entry.to_vec());
        }
        n += 1;
        rest = tail;
    }
    Some(n)
}

/// Runs `f` on every item, side by side (scoped threads), and returns the first error.
fn in_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), StorageError> + Sync,
) -> Result<(), StorageError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&f);
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StorageError::Io {
                        what: "a sync thread".into(),
                        full: false,
                        error: "panicked".into(),
                    })
                })
            })
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    })
}

/// A partial tile whose source is a wider *partial* tile: [`cut_from_full`] cuts a hash tile only
/// from data of a full tile's length, so pad the wider partial's hashes to that length (the padding
/// is cut off again).
fn pad_for_cut(tile: &Tile, source: &Tile, mut data: Vec<u8>) -> Vec<u8> {
    if !tile.is_data() && source.is_partial() {
        data.resize(tile.full().hash_data_len(), 0);
    }
    data
}

/// `<path>.p`, the folder of a tile's partial files.
fn partial_dir(full: &Path) -> PathBuf {
    let mut s = full.as_os_str().to_owned();
    s.push(".p");
    PathBuf::from(s)
}

fn remove_file_if_any(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn remove_dir_if_any(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The stored hashes in the `hashes` file, as a [`HashReader`].
pub struct FileHashes<'a>(pub &'a TileFiles);

impl HashReader for FileHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.0.hashes(indexes).map_err(|e| match e {
            StorageError::MissingHash(index) => TreeError::MissingHash { index },
            other => TreeError::Storage(other.to_string()),
        })
    }
}
