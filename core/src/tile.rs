//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): tile coordinates and paths, which tiles make
//! up a tree, which tile holds a stored hash, tile bytes, and entry bundles.
//!
//! A tile is a run of up to 256 consecutive hashes of one tree level: the tile at level `L` and index
//! `N` holds, for `i` in `0..256`, `MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L])` — the nodes of
//! tree level `8·L`. It stands for the whole height-8 subtree above those hashes, so every stored hash
//! of tree levels `8L .. 8L+7` can be recomputed from tile `L`. The rightmost tiles of a tree are
//! *partial* (width 1..=255) and are never hashed into the level above.
//!
//! Entry bundles (`tile/entries/<N>[.p/<W>]`) hold the leaves themselves. They share the index and
//! width arithmetic of level-0 tiles, so this module represents them as [`Tile`]s with the sentinel
//! level [`DATA_LEVEL`] (255; hash tile levels are 0..=63), in the manner of Go's `tlog` which uses
//! level −1 for data tiles.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

use crate::hash::{Hash, TreeHash};
use crate::tree::{
    split_stored_hash_index, stored_hash_index, HashReader, TreeError, MAX_TREE_SIZE,
};

/// Tree levels per tile (C2SP tlog-tiles: fixed at 8).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile: 2⁸.
pub const TILE_WIDTH: u16 = 256;
/// The highest tile level a path may name (tlog-tiles: `<L>` is 0..=63).
pub const MAX_TILE_LEVEL: u8 = 63;
/// The [`Tile::level`] that marks an entry bundle (`tile/entries/...`) rather than a hash tile.
pub const DATA_LEVEL: u8 = u8::MAX;
/// The longest entry an entry bundle can carry: its length prefix is a big-endian `u16`.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

const HASH_LEN: usize = 32;

/// Coordinates of a hash tile or an entry bundle.
///
/// Valid values have `level <= MAX_TILE_LEVEL` (hash tile) or `level == DATA_LEVEL` (entry bundle),
/// and `width` in `1..=256` (256 = full). [`Tile::new`] and [`Tile::parse_path`] only produce valid
/// tiles; the fields are public for convenience, and the functions taking a tile re-check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Tile level (hashes of tree level `8·level`), or [`DATA_LEVEL`] for an entry bundle.
    pub level: u8,
    /// Index of the tile within its level.
    pub index: u64,
    /// Number of hashes (or entries): 256 for a full tile, 1..=255 for a partial one.
    pub width: u16,
}

/// What is wrong with a tile path, tile, tile data or entry bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path is not of the form `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
    #[error("not a tile path: {path:?}")]
    NotATilePath {
        /// The rejected path.
        path: String,
    },
    /// `<L>` is not a decimal 0..=63 without leading zeros.
    #[error("tile level in {path:?} is not a decimal 0..=63 without leading zeros")]
    BadLevel {
        /// The rejected path.
        path: String,
    },
    /// `<N>` is not canonical zero-padded 3-digit elements, all but the last `x`-prefixed, with no
    /// leading `x000` element, within `u64`.
    #[error("tile index in {path:?} is not in canonical x-prefixed 3-digit form")]
    BadIndex {
        /// The rejected path.
        path: String,
    },
    /// `<W>` of a partial tile is not a decimal 1..=255 without leading zeros.
    #[error("partial tile width in {path:?} is not a decimal 1..=255 without leading zeros")]
    BadWidth {
        /// The rejected path.
        path: String,
    },
    /// Tile coordinates outside the valid ranges (level 0..=63 or DATA_LEVEL; width 1..=256), or a
    /// hash tile beyond the largest supported tree.
    #[error("invalid tile: level {level}, index {index}, width {width}")]
    InvalidTile {
        /// The level given.
        level: u8,
        /// The index given.
        index: u64,
        /// The width given.
        width: u16,
    },
    /// An entry bundle was given where a hash tile is needed.
    #[error("{path} is an entry bundle, not a hash tile")]
    NotAHashTile {
        /// The bundle's path.
        path: String,
    },
    /// Tile bytes whose length is not 32 × width.
    #[error("tile {path} must be {expected} bytes, got {got}")]
    WrongDataLength {
        /// The tile's path.
        path: String,
        /// 32 × width.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The stored hash asked for is not covered by the given tile.
    #[error("stored hash {index} is not in tile {path}")]
    HashNotInTile {
        /// The stored hash index.
        index: u64,
        /// The tile's path.
        path: String,
    },
    /// Two versions of the same tile disagree on a hash they both contain: the log served
    /// inconsistent data.
    #[error("tile {path} conflicts with data supplied earlier for the same tile")]
    ConflictingTileData {
        /// The tile's path.
        path: String,
    },
    /// An entry longer than an entry bundle's `u16` length prefix allows.
    #[error("entry of {len} bytes exceeds the 65535-byte limit of entry bundles")]
    EntryTooLong {
        /// The entry's length.
        len: usize,
    },
    /// More than 256 entries in one bundle.
    #[error("entry bundle holds more than 256 entries")]
    TooManyEntries,
    /// An entry bundle with no entries (tlog-tiles: empty tiles are never served).
    #[error("entry bundle is empty")]
    EmptyBundle,
    /// An entry bundle that ends inside a length prefix or an entry.
    #[error("entry bundle is truncated in the entry starting at byte {offset}")]
    TruncatedBundle {
        /// Where the incomplete entry (its length prefix) starts.
        offset: usize,
    },
    /// A [`TileReader`]'s source does not have this tile (HTTP 404: not yet, or a partial tile
    /// deleted once full).
    #[error("tile {path} not found")]
    NotFound {
        /// The tile's path.
        path: String,
    },
    /// A [`TileReader`] could not read this tile (transport, storage).
    #[error("tile {path}: {reason}")]
    Unreadable {
        /// The tile's path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading the hashes of a tile failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

impl Tile {
    /// The full tile (width 256) of which this one is a prefix (itself when it is full).
    pub fn full(&self) -> Tile {
        Tile {
            width: TILE_WIDTH,
            ..*self
        }
    }

    /// A tile with checked coordinates: `level` 0..=63 or [`DATA_LEVEL`], `width` 1..=256.
    pub fn new(level: u8, index: u64, width: u16) -> Result<Tile, TileError> {
        let tile = Tile {
            level,
            index,
            width,
        };
        if tile.is_valid() {
            Ok(tile)
        } else {
            Err(TileError::InvalidTile {
                level,
                index,
                width,
            })
        }
    }

    /// The entry bundle with this index and width (1..=256).
    pub fn entry_bundle(index: u64, width: u16) -> Result<Tile, TileError> {
        Tile::new(DATA_LEVEL, index, width)
    }

    /// Whether this is an entry bundle rather than a hash tile.
    pub fn is_data(&self) -> bool {
        self.level == DATA_LEVEL
    }

    /// Whether this tile is partial (fewer than 256 hashes or entries).
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    fn is_valid(&self) -> bool {
        (self.level <= MAX_TILE_LEVEL || self.level == DATA_LEVEL)
            && (1..=TILE_WIDTH).contains(&self.width)
    }

    /// The byte length of a hash tile of this width: 32 × width.
    pub fn hash_data_len(&self) -> usize {
        usize::from(self.width) * HASH_LEN
    }

    /// The resource path under the log's prefix, as C2SP tlog-tiles names it:
    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, where `<N>` is split into zero-padded
    /// 3-digit elements, all but the last prefixed with `x` (1234067 → `x001/x234/067`), and
    /// `.p/<W>` appears only for partial tiles. Canonical for valid tiles (see [`Tile::new`]).
    pub fn path(&self) -> String {
        let mut out = String::with_capacity(32);
        out.push_str("tile/");
        if self.is_data() {
            out.push_str("entries");
        } else {
            let _ = write!(out, "{}", self.level);
        }
        let mut groups = Vec::with_capacity(7);
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, group) in groups.iter().rev().enumerate() {
            let prefix = if i + 1 < groups.len() { "x" } else { "" };
            let _ = write!(out, "/{prefix}{group:03}");
        }
        if self.is_partial() {
            let _ = write!(out, ".p/{}", self.width);
        }
        out
    }

    /// Parses a tile or entry bundle path (without the log's prefix), accepting only the canonical
    /// form that [`Tile::path`] produces: anything else — leading zeros, a leading `x000` element,
    /// a level above 63, `.p/0`, `.p/256`, an index beyond `u64`, stray slashes — is an error.
    pub fn parse_path(path: &str) -> Result<Tile, TileError> {
        let not_tile = || TileError::NotATilePath {
            path: path.to_string(),
        };
        let rest = path.strip_prefix("tile/").ok_or_else(not_tile)?;
        let (level_str, rest) = rest.split_once('/').ok_or_else(not_tile)?;
        let level = if level_str == "entries" {
            DATA_LEVEL
        } else {
            match parse_canonical_decimal(level_str) {
                Some(l) if l <= u64::from(MAX_TILE_LEVEL) => l as u8,
                _ => {
                    return Err(TileError::BadLevel {
                        path: path.to_string(),
                    })
                }
            }
        };

        // Split off the partial-width suffix: ".../<last>.p/<W>".
        let (index_str, width) = match rest.rsplit_once(".p/") {
            None => (rest, TILE_WIDTH),
            Some((index_str, width_str)) => match parse_canonical_decimal(width_str) {
                Some(w) if (1..u64::from(TILE_WIDTH)).contains(&w) => (index_str, w as u16),
                _ => {
                    return Err(TileError::BadWidth {
                        path: path.to_string(),
                    })
                }
            },
        };

        let bad_index = || TileError::BadIndex {
            path: path.to_string(),
        };
        let groups: Vec<&str> = index_str.split('/').collect();
        let mut index: u64 = 0;
        for (i, group) in groups.iter().enumerate() {
            let last = i + 1 == groups.len();
            let digits = if last {
                *group
            } else {
                group.strip_prefix('x').ok_or_else(bad_index)?
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_index());
            }
            // Canonical form has no leading all-zero element.
            if i == 0 && !last && digits == "000" {
                return Err(bad_index());
            }
            let value = digits
                .bytes()
                .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(value))
                .ok_or_else(bad_index)?;
        }

        let tile = Tile {
            level,
            index,
            width,
        };
        // Belt and braces: only the canonical spelling is accepted.
        if tile.path() != path {
            return Err(not_tile());
        }
        Ok(tile)
    }
}

/// The width of the tile (or entry bundle) at `level`, `index` in a tree of `size` leaves: 256 when
/// the tree fills it, the partial width 1..=255 of the rightmost tile of its level, and 0 when the
/// tree holds none of it. An entry bundle ([`DATA_LEVEL`]) has the width of the level-0 tile.
///
/// The one place that says which tiles a tree of a given size has: the log serves a tile only
/// when its width is at most this, and a reader of a tree asks for tiles at this width.
pub fn tile_width_at(level: u8, index: u64, size: u64) -> u16 {
    let level = if level == DATA_LEVEL { 0 } else { level };
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let (Some(at_level), Some(first)) = (
        size.checked_shr(shift),
        index.checked_mul(u64::from(TILE_WIDTH)),
    ) else {
        return 0;
    };
    // At most 256, so the cast is exact.
    at_level.saturating_sub(first).min(u64::from(TILE_WIDTH)) as u16
}

impl Tile {
    /// The tile at `level`, `index` as a tree of `size` leaves has it (full, or its partial
    /// width), or `None` when the tree holds none of it. See [`tile_width_at`].
    pub fn at_size(level: u8, index: u64, size: u64) -> Option<Tile> {
        Tile::new(level, index, tile_width_at(level, index, size)).ok()
    }

    /// Whether every hash (or entry) of this tile lies within a tree of `size` leaves, i.e. the
    /// tree determines its content (what a log may serve at that size).
    pub fn is_within(&self, size: u64) -> bool {
        self.is_valid() && self.width <= tile_width_at(self.level, self.index, size)
    }
}

/// A decimal without sign or leading zeros (`"0"` itself is fine), of at most 3 digits.
fn parse_canonical_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// The hash tiles that make up a tree of `size` leaves: every full tile and, per level, the partial
/// tile of width `⌊size / 256^L⌋ mod 256` when that is not 0 (tlog-tiles "Partial Tiles"). E.g. size
/// 70,000: 273 full level-0 tiles and `tile/0/273.p/112`, the full `tile/1/000` and
/// `tile/1/001.p/17`, and `tile/2/000.p/1`.
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    new_tiles(0, size)
}

/// The hash tiles of a tree of `new` leaves that a tree of `old` leaves does not have in the same
/// form: the tiles that became full, and the new partial tiles. What a log must publish (and a
/// monitor fetch) when it grows from `old` to `new`. Empty when `old >= new`.
pub fn new_tiles(old: u64, new: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    if old >= new {
        return tiles;
    }
    for level in 0..=MAX_TILE_LEVEL {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let (Some(new_n), Some(old_n)) = (new.checked_shr(shift), old.checked_shr(shift)) else {
            break;
        };
        if new_n == 0 {
            break;
        }
        if old_n == new_n {
            continue;
        }
        for index in (old_n >> TILE_HEIGHT)..(new_n >> TILE_HEIGHT) {
            tiles.push(Tile {
                level,
                index,
                width: TILE_WIDTH,
            });
        }
        let width = (new_n % u64::from(TILE_WIDTH)) as u16;
        if width > 0 {
            tiles.push(Tile {
                level,
                index: new_n >> TILE_HEIGHT,
                width,
            });
        }
    }
    tiles
}

/// The entry bundles that hold the leaves of a tree of `size` leaves (the level-0 tiles, as
/// bundles).
pub fn entry_bundles_for_size(size: u64) -> Vec<Tile> {
    tiles_for_size(size)
        .into_iter()
        .filter(|t| t.level == 0)
        .map(|t| Tile {
            level: DATA_LEVEL,
            ..t
        })
        .collect()
}

/// The tile holding the stored hash `index`, with the smallest width that contains it, and the byte
/// range of that tile's data whose hashes combine (as a perfect subtree) into it — one 32-byte hash
/// when the node is on the tile's own level `8·L`, 2^k hashes for a node `k` levels above it.
pub fn tile_for_stored_hash_index(index: u64) -> (Tile, Range<usize>) {
    let (level, n) = split_stored_hash_index(index);
    let tile_level = level / TILE_HEIGHT;
    let level_in_tile = u32::from(level % TILE_HEIGHT);
    // The node covers tile-level positions [n·2^k, (n+1)·2^k) with k = level_in_tile.
    let first = n << level_in_tile;
    let tile_index = first >> TILE_HEIGHT;
    let start = (first % u64::from(TILE_WIDTH)) as usize;
    let end = start + (1usize << level_in_tile);
    let tile = Tile {
        level: tile_level,
        index: tile_index,
        width: end as u16,
    };
    (tile, start * HASH_LEN..end * HASH_LEN)
}

/// The stored hash `index`, recomputed from `data`, the bytes of hash tile `tile`.
pub fn hash_from_tile(
    th: TreeHash,
    tile: &Tile,
    data: &[u8],
    index: u64,
) -> Result<Hash, TileError> {
    check_hash_tile(tile)?;
    if data.len() != tile.hash_data_len() {
        return Err(TileError::WrongDataLength {
            path: tile.path(),
            expected: tile.hash_data_len(),
            got: data.len(),
        });
    }
    let (needed, range) = tile_for_stored_hash_index(index);
    if needed.level != tile.level || needed.index != tile.index || needed.width > tile.width {
        return Err(TileError::HashNotInTile {
            index,
            path: tile.path(),
        });
    }
    data.get(range)
        .and_then(|bytes| subtree_hash(th, bytes))
        .ok_or(TileError::HashNotInTile {
            index,
            path: tile.path(),
        })
}

/// The bytes of hash tile `tile` (32 × width: the tree level `8·L` hashes it covers), read from a
/// [`HashReader`] in one call — what the log serves at [`Tile::path`].
pub fn read_tile_data(tile: &Tile, r: &(impl HashReader + ?Sized)) -> Result<Vec<u8>, TileError> {
    check_hash_tile(tile)?;
    let invalid = || TileError::InvalidTile {
        level: tile.level,
        index: tile.index,
        width: tile.width,
    };
    // The tile's last hash must belong to a tree of at most MAX_TREE_SIZE leaves.
    let tree_level = u32::from(tile.level) * u32::from(TILE_HEIGHT);
    let first = tile
        .index
        .checked_mul(u64::from(TILE_WIDTH))
        .ok_or_else(invalid)?;
    let leaves_covered = (u128::from(first) + u128::from(tile.width)) << tree_level.min(127);
    if tree_level > 62 || leaves_covered > u128::from(MAX_TREE_SIZE) {
        return Err(invalid());
    }
    let indexes: Vec<u64> = (0..u64::from(tile.width))
        .map(|i| stored_hash_index(tree_level as u8, first + i))
        .collect();
    let hashes = r.read_hashes(&indexes)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::WrongHashCount {
            requested: indexes.len(),
            returned: hashes.len(),
        }
        .into());
    }
    Ok(hashes.concat())
}

fn check_hash_tile(tile: &Tile) -> Result<(), TileError> {
    if tile.is_data() {
        return Err(TileError::NotAHashTile { path: tile.path() });
    }
    if !tile.is_valid() {
        return Err(TileError::InvalidTile {
            level: tile.level,
            index: tile.index,
            width: tile.width,
        });
    }
    Ok(())
}

/// MTH of a perfect subtree given its 2^k hashes, concatenated.
fn subtree_hash(th: TreeHash, bytes: &[u8]) -> Option<Hash> {
    let mut level: Vec<Hash> = bytes
        .chunks_exact(HASH_LEN)
        .map(|c| c.try_into().ok())
        .collect::<Option<_>>()?;
    if level.is_empty() || !level.len().is_power_of_two() {
        return None;
    }
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| th.node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level.pop()
}

/// A [`HashReader`] over downloaded hash tiles, so that a monitor can recompute roots and proofs
/// with the functions of [`crate::tree`].
///
/// It keeps, per tile coordinate, the widest data supplied. It does not authenticate tiles by
/// itself: compare [`crate::tree::tree_root`] over it with a verified checkpoint's root (a root
/// computed from forged tiles will not match), and verify any proof computed from it — or, better,
/// use it as the [`TileReader`] of an [`AuthTileHashReader`], which checks every tile it reads.
#[derive(Clone, Debug)]
pub struct TileHashReader {
    th: TreeHash,
    tiles: HashMap<(u8, u64), Vec<u8>>,
}

impl TileHashReader {
    /// An empty reader for a tree using `th`.
    pub fn new(th: TreeHash) -> Self {
        TileHashReader {
            th,
            tiles: HashMap::new(),
        }
    }

    /// A reader holding `tiles` (see [`TileHashReader::insert`]).
    pub fn from_tiles(
        th: TreeHash,
        tiles: impl IntoIterator<Item = (Tile, Vec<u8>)>,
    ) -> Result<Self, TileError> {
        let mut reader = TileHashReader::new(th);
        for (tile, data) in tiles {
            reader.insert(tile, data)?;
        }
        Ok(reader)
    }

    /// Adds the bytes of hash tile `tile`. They must be exactly 32 × width bytes, and must agree
    /// with any other width of the same tile supplied before (else
    /// [`TileError::ConflictingTileData`]: the log served two views); the wider data is kept.
    pub fn insert(&mut self, tile: Tile, data: Vec<u8>) -> Result<(), TileError> {
        check_hash_tile(&tile)?;
        if data.len() != tile.hash_data_len() {
            return Err(TileError::WrongDataLength {
                path: tile.path(),
                expected: tile.hash_data_len(),
                got: data.len(),
            });
        }
        match self.tiles.get_mut(&(tile.level, tile.index)) {
            None => {
                self.tiles.insert((tile.level, tile.index), data);
            }
            Some(existing) => {
                let common = existing.len().min(data.len());
                if existing.get(..common) != data.get(..common) {
                    return Err(TileError::ConflictingTileData { path: tile.path() });
                }
                if data.len() > existing.len() {
                    *existing = data;
                }
            }
        }
        Ok(())
    }

    /// The number of distinct tile coordinates held.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }
}

impl HashReader for TileHashReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&index| {
                let (tile, range) = tile_for_stored_hash_index(index);
                self.tiles
                    .get(&(tile.level, tile.index))
                    .and_then(|data| data.get(range))
                    .and_then(|bytes| subtree_hash(self.th, bytes))
                    .ok_or_else(|| TreeError::MissingTile { path: tile.path() })
            })
            .collect()
    }
}

impl TileReader for TileHashReader {
    /// The held data of each tile, cut to the width asked for; [`TileError::NotFound`] when no
    /// wide enough version of it is held.
    fn read_tiles(&self, tiles: &[Tile]) -> Vec<Result<Vec<u8>, TileError>> {
        tiles
            .iter()
            .map(|tile| {
                self.tiles
                    .get(&(tile.level, tile.index))
                    .and_then(|data| data.get(..tile.hash_data_len()))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| TileError::NotFound { path: tile.path() })
            })
            .collect()
    }
}

/// A source of hash tiles: the log's static API over HTTP, a mirror, a directory, memory
/// (Go's `tlog.TileReader`).
///
/// It only moves bytes: nothing it returns is trusted until an [`AuthTileHashReader`] has checked
/// it against a tree. Go's reader also reports its tile height; C2SP tlog-tiles fixes it at
/// [`TILE_HEIGHT`], so ours has none to report.
pub trait TileReader {
    /// The data of each of `tiles` (32 × width bytes), one result per tile, in order. A tile the
    /// source does not have is [`TileError::NotFound`] (the reader then asks for the full tile in
    /// place of a partial one); one it could not read is [`TileError::Unreadable`].
    fn read_tiles(&self, tiles: &[Tile]) -> Vec<Result<Vec<u8>, TileError>>;

    /// Told which tiles were just authenticated against a tree (with their data, at the widths
    /// asked for), so that the source may keep them: a cache never holds unchecked bytes. The
    /// default keeps nothing.
    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        let _ = (tiles, data);
    }
}

impl<R: TileReader + ?Sized> TileReader for &R {
    fn read_tiles(&self, tiles: &[Tile]) -> Vec<Result<Vec<u8>, TileError>> {
        (**self).read_tiles(tiles)
    }

    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        (**self).save_tiles(tiles, data)
    }
}

/// The [`HashReader`] of one tree — its size and root, from a verified checkpoint — over the tiles
/// of a [`TileReader`], which never hands out a hash it has not authenticated (Go's
/// `tlog.TileHashReader`).
///
/// For every [`HashReader::read_hashes`] call it reads, at the widths the tree has (see
/// [`tile_width_at`]), the tiles holding the root's subtrees and the tiles holding the hashes
/// asked for, with every parent tile up to one of the former; then it checks
///
/// 1. that the root's subtree hashes, recomputed from their tiles, combine into the tree's root
///    (these tiles are the rightmost, partial ones of each level, and every hash in them takes
///    part in that root, so they are authenticated whole);
/// 2. that every other tile — always a full one — hashes to the node its parent tile holds for
///    it, parents being checked before children;
///
/// and only then gives [`TileReader::save_tiles`] the tiles and returns the hashes. A partial tile
/// the source no longer has is replaced by the full tile cut to its width (tlog-tiles lets a log
/// delete partial tiles once full; a full tile's prefix is the partial one).
#[derive(Clone, Debug)]
pub struct AuthTileHashReader<R> {
    th: TreeHash,
    size: u64,
    root: Hash,
    reader: R,
}

impl<R: TileReader> AuthTileHashReader<R> {
    /// The reader of the tree of `size` leaves with root `root`, over the tiles of `reader`.
    pub fn new(th: TreeHash, size: u64, root: Hash, reader: R) -> Self {
        AuthTileHashReader {
            th,
            size,
            root,
            reader,
        }
    }

    /// The tile of the stored hash `index` at the width this tree has, if the tree holds it.
    fn tile_of(&self, index: u64) -> Result<Tile, TreeError> {
        let (level, n) = split_stored_hash_index(index);
        let complete = n
            .checked_add(1)
            .and_then(|end| end.checked_shl(u32::from(level)))
            .filter(|end| end >> level == n + 1)
            .is_some_and(|end| end <= self.size);
        let (needed, _) = tile_for_stored_hash_index(index);
        match Tile::at_size(needed.level, needed.index, self.size) {
            Some(tile) if complete && tile.width >= needed.width => Ok(tile),
            _ => Err(TreeError::MissingHash { index }),
        }
    }

    /// Reads `tiles`, replacing a partial tile the source does not have by its full version cut to
    /// the width.
    fn read(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, TreeError> {
        let mut results = self.reader.read_tiles(tiles);
        if results.len() != tiles.len() {
            return Err(tile_error(
                tiles.first(),
                format!(
                    "the tile reader returned {} tiles for {}",
                    results.len(),
                    tiles.len()
                ),
            ));
        }
        let retry: Vec<usize> = results
            .iter()
            .zip(tiles)
            .enumerate()
            .filter(|(_, (r, t))| matches!(r, Err(TileError::NotFound { .. })) && t.is_partial())
            .map(|(i, _)| i)
            .collect();
        if !retry.is_empty() {
            let full: Vec<Tile> = retry
                .iter()
                .filter_map(|&i| tiles.get(i))
                .map(Tile::full)
                .collect();
            let fetched = self.reader.read_tiles(&full);
            for (&i, data) in retry.iter().zip(fetched) {
                if let (Some(slot), Some(partial)) = (results.get_mut(i), tiles.get(i)) {
                    *slot = data.and_then(|d| cut_from_full(partial, d));
                }
            }
        }
        results
            .into_iter()
            .zip(tiles)
            .map(|(r, t)| r.map_err(|e| tile_error(Some(t), e.to_string())))
            .collect()
    }
}

/// The data of the partial tile `partial`, cut from `full_data`, the data of its full tile
/// (tlog-tiles: a partial tile is a prefix of the full one, and a log may delete partial tiles
/// once the full one exists): the first 32 × width bytes of a hash tile, the first width entries
/// of an entry bundle, re-encoded. Data that is not a well-formed full tile is returned as it is,
/// so that the caller's own checks refuse it with their own words.
pub fn cut_from_full(partial: &Tile, full_data: Vec<u8>) -> Result<Vec<u8>, TileError> {
    if !partial.is_data() {
        let mut d = full_data;
        if d.len() == partial.full().hash_data_len() {
            d.truncate(partial.hash_data_len());
        }
        return Ok(d);
    }
    let Ok(entries) = decode_entry_bundle(&full_data) else {
        return Ok(full_data);
    };
    let head: Vec<&[u8]> = entries
        .iter()
        .take(usize::from(partial.width))
        .map(Vec::as_slice)
        .collect();
    try_encode_entry_bundle(&head)
}

/// Adds `tile` to the plan unless it is there already; its position in the plan.
fn plan_tile(tiles: &mut Vec<Tile>, position: &mut HashMap<(u8, u64), usize>, tile: Tile) -> usize {
    *position.entry((tile.level, tile.index)).or_insert_with(|| {
        tiles.push(tile);
        tiles.len() - 1
    })
}

/// A [`TreeError::Tile`] about `tile`.
fn tile_error(tile: Option<&Tile>, reason: String) -> TreeError {
    TreeError::Tile {
        path: tile.map(Tile::path).unwrap_or_default(),
        reason,
    }
}

impl<R: TileReader> HashReader for AuthTileHashReader<R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        // The plan: the root's subtrees' tiles first, then, for each hash asked for, its tile and
        // the parents up to one already planned, parents before children.
        let mut tiles: Vec<Tile> = Vec::new();
        let mut position: HashMap<(u8, u64), usize> = HashMap::new();
        let subtrees = root_subtrees(self.size);
        let mut subtree_tiles = Vec::with_capacity(subtrees.len());
        for &index in &subtrees {
            let tile = self.tile_of(index)?;
            subtree_tiles.push(plan_tile(&mut tiles, &mut position, tile));
        }
        let authenticated_by_root = tiles.len();
        let mut hash_tiles = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let tile = self.tile_of(index)?;
            // Walk up to the first tile already planned, then plan the chain back down.
            let mut chain = vec![tile];
            let mut top = tile;
            while !position.contains_key(&(top.level, top.index)) {
                let parent = top
                    .level
                    .checked_add(1)
                    .filter(|l| *l <= MAX_TILE_LEVEL)
                    .and_then(|l| Tile::at_size(l, top.index >> TILE_HEIGHT, self.size))
                    .ok_or_else(|| {
                        tile_error(Some(&top), "no parent tile in the tree (tile math)".into())
                    })?;
                chain.push(parent);
                top = parent;
            }
            for t in chain.into_iter().rev() {
                plan_tile(&mut tiles, &mut position, t);
            }
            hash_tiles.push(plan_tile(&mut tiles, &mut position, tile));
        }

        let data = self.read(&tiles)?;
        let tile_and_data = |i: usize| -> Result<(&Tile, &[u8]), TreeError> {
            match (tiles.get(i), data.get(i)) {
                (Some(t), Some(d)) => Ok((t, d.as_slice())),
                _ => Err(tile_error(None, "tile plan out of range".into())),
            }
        };
        let from_tile = |i: usize, index: u64| -> Result<Hash, TreeError> {
            let (tile, data) = tile_and_data(i)?;
            hash_from_tile(self.th, tile, data, index)
                .map_err(|e| tile_error(Some(tile), e.to_string()))
        };

        // 1. The root's subtrees, right to left, must combine into the tree's root.
        let mut root: Option<Hash> = None;
        for (&index, &i) in subtrees.iter().zip(&subtree_tiles).rev() {
            let h = from_tile(i, index)?;
            root = Some(match root {
                None => h,
                Some(right) => self.th.node_hash(&h, &right),
            });
        }
        if root != Some(self.root) {
            return Err(tile_error(
                subtree_tiles.first().and_then(|&i| tiles.get(i)),
                format!(
                    "the tiles do not reproduce the root of the tree of size {}",
                    self.size
                ),
            ));
        }
        // 2. Every other tile is full and must hash to the node its (earlier) parent holds.
        for i in authenticated_by_root..tiles.len() {
            let (tile, bytes) = tile_and_data(i)?;
            let parent_at = tile
                .level
                .checked_add(1)
                .and_then(|l| position.get(&(l, tile.index >> TILE_HEIGHT)))
                .copied()
                .filter(|&j| j < i);
            let (Some(j), false) = (parent_at, tile.is_partial()) else {
                return Err(tile_error(
                    Some(tile),
                    "tile without a parent (tile math)".into(),
                ));
            };
            let node_level = (tile.level + 1).checked_mul(TILE_HEIGHT).ok_or_else(|| {
                tile_error(Some(tile), "tile level beyond any tree (tile math)".into())
            })?;
            let node = stored_hash_index(node_level, tile.index);
            let want = from_tile(j, node)?;
            if tile.hash_data_len() != bytes.len() || subtree_hash(self.th, bytes) != Some(want) {
                return Err(tile_error(
                    Some(tile),
                    "the tile does not hash to the node its parent tile holds".into(),
                ));
            }
        }
        self.reader.save_tiles(&tiles, &data);

        indexes
            .iter()
            .zip(hash_tiles)
            .map(|(&index, i)| from_tile(i, index))
            .collect()
    }
}

/// The stored hash indexes of the perfect subtrees a tree of `size` leaves splits into, left to
/// right (RFC 9162 §2.1.1: the root is their hashes combined from the right).
fn root_subtrees(size: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        let width = 1u64 << level;
        if size & width != 0 {
            out.push(stored_hash_index(level, start >> level));
            start += width;
        }
    }
    out
}

/// Encodes an entry bundle: each entry as a big-endian `u16` length followed by its bytes
/// (C2SP tlog-tiles "Log entries").
///
/// # Panics
/// If an entry is longer than 65,535 bytes or there are more than 256 entries. The log admits leaves
/// of at most 8,192 bytes (SPEC §3) and bundles them by 256, so its callers cannot hit this; use
/// [`try_encode_entry_bundle`] for entries that are not already bounded.
pub fn encode_entry_bundle(entries: &[&[u8]]) -> Vec<u8> {
    match try_encode_entry_bundle(entries) {
        Ok(bundle) => bundle,
        Err(e) => panic!("encode_entry_bundle: {e}"),
    }
}

/// Like [`encode_entry_bundle`], but reports entries over 65,535 bytes
/// ([`TileError::EntryTooLong`]) and more than 256 entries ([`TileError::TooManyEntries`]).
pub fn try_encode_entry_bundle(entries: &[&[u8]]) -> Result<Vec<u8>, TileError> {
    if entries.len() > usize::from(TILE_WIDTH) {
        return Err(TileError::TooManyEntries);
    }
    let total: usize = entries.iter().map(|e| e.len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for entry in entries {
        let len =
            u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong { len: entry.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Decodes an entry bundle into its entries. Rejects an empty bundle, more than 256 entries, and
/// data ending inside a length prefix or an entry. (Whether the count matches the bundle's width is
/// the caller's check: compare with [`Tile::width`].)
pub fn decode_entry_bundle(data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    if data.is_empty() {
        return Err(TileError::EmptyBundle);
    }
    let mut entries = Vec::new();
    let mut rest = data;
    let mut offset = 0;
    while !rest.is_empty() {
        if entries.len() == usize::from(TILE_WIDTH) {
            return Err(TileError::TooManyEntries);
        }
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(TileError::TruncatedBundle { offset })?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, tail) = tail
            .split_at_checked(len)
            .ok_or(TileError::TruncatedBundle { offset })?;
        entries.push(entry.to_vec());
        offset += 2 + len;
        rest = tail;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{stored_hash_count, tree_root, MemoryHashStore};

    #[test]
    fn paths_follow_the_spec_examples() {
        let t = |level, index, width| Tile::new(level, index, width).unwrap().path();
        assert_eq!(t(0, 0, 256), "tile/0/000");
        assert_eq!(t(0, 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(t(2, 1000, 17), "tile/2/x001/000.p/17");
        assert_eq!(t(63, 999, 255), "tile/63/999.p/255");
        assert_eq!(t(DATA_LEVEL, 1234067, 8), "tile/entries/x001/x234/067.p/8");
        assert_eq!(
            t(0, u64::MAX, 1),
            "tile/0/x018/x446/x744/x073/x709/x551/615.p/1"
        );
    }

    #[test]
    fn invalid_coordinates_are_refused() {
        assert!(Tile::new(64, 0, 1).is_err());
        assert!(Tile::new(0, 0, 0).is_err());
        assert!(Tile::new(0, 0, 257).is_err());
        assert!(Tile::entry_bundle(0, 256).is_ok());
    }

    #[test]
    fn tiles_for_size_matches_the_spec_example() {
        // tlog-tiles: "a tree of size 70,000 will be represented by 273 full level 0 tiles, one
        // partial level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of
        // width 17, and one partial level 2 tile of width 1."
        let tiles = tiles_for_size(70_000);
        let count = |level, full: bool| {
            tiles
                .iter()
                .filter(|t| t.level == level && t.is_partial() != full)
                .count()
        };
        assert_eq!(count(0, true), 273);
        assert_eq!(count(1, true), 1);
        assert_eq!(count(2, true), 0);
        let partial: Vec<_> = tiles.iter().filter(|t| t.is_partial()).copied().collect();
        assert_eq!(
            partial,
            vec![
                Tile::new(0, 273, 112).unwrap(),
                Tile::new(1, 1, 17).unwrap(),
                Tile::new(2, 0, 1).unwrap()
            ]
        );
        assert_eq!(tiles.len(), 273 + 1 + 1 + 1 + 1);
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
        // of width 1."
        assert_eq!(
            tiles_for_size(256),
            vec![Tile::new(0, 0, 256).unwrap(), Tile::new(1, 0, 1).unwrap()]
        );
        assert!(tiles_for_size(0).is_empty());
        let bundles = entry_bundles_for_size(70_000);
        assert_eq!(bundles.len(), 274);
        assert_eq!(bundles[273], Tile::entry_bundle(273, 112).unwrap());
    }

    #[test]
    fn new_tiles_are_the_difference_between_two_sizes() {
        assert!(new_tiles(10, 10).is_empty());
        assert!(new_tiles(11, 10).is_empty());
        assert_eq!(
            new_tiles(10, 300),
            vec![
                Tile::new(0, 0, 256).unwrap(),
                Tile::new(0, 1, 44).unwrap(),
                Tile::new(1, 0, 1).unwrap()
            ]
        );
        assert_eq!(new_tiles(300, 301), vec![Tile::new(0, 1, 45).unwrap()]);
        // Every tile of the new size is either new or was already there in the same form.
        for (old, new) in [(0, 70_000), (255, 257), (65_535, 65_537), (1000, 70_000)] {
            let before = tiles_for_size(old);
            let added = new_tiles(old, new);
            for t in tiles_for_size(new) {
                assert!(
                    added.contains(&t) ^ before.contains(&t),
                    "{old}->{new}: {t:?}"
                );
            }
        }
    }

    #[test]
    fn every_stored_hash_is_found_in_its_tile() {
        let th = TreeHash::Blake3;
        let mut store = MemoryHashStore::new(th);
        for i in 0..70_000u64 {
            store.append_leaf(&i.to_be_bytes());
        }
        let size = store.size();
        let tiles: HashMap<(u8, u64), (Tile, Vec<u8>)> = tiles_for_size(size)
            .into_iter()
            .map(|t| ((t.level, t.index), (t, read_tile_data(&t, &store).unwrap())))
            .collect();
        for index in 0..stored_hash_count(size) {
            let (want_tile, _) = tile_for_stored_hash_index(index);
            let (tile, data) = &tiles[&(want_tile.level, want_tile.index)];
            let h = hash_from_tile(th, tile, data, index).unwrap();
            assert_eq!(h, store.hashes()[index as usize], "stored hash {index}");
        }
        // A hash from another tile is refused.
        let (tile, data) = &tiles[&(0, 0)];
        assert!(matches!(
            hash_from_tile(th, tile, data, crate::tree::stored_hash_index(0, 256)),
            Err(TileError::HashNotInTile { .. })
        ));
        assert!(matches!(
            hash_from_tile(th, tile, &data[1..], 0),
            Err(TileError::WrongDataLength { .. })
        ));
        let reader = TileHashReader::from_tiles(th, tiles.into_values()).unwrap();
        assert_eq!(tree_root(th, size, &reader).unwrap(), store.root());
    }

    #[test]
    fn tile_reader_rejects_conflicting_views_and_keeps_the_widest() {
        let th = TreeHash::Sha256;
        let mut store = MemoryHashStore::new(th);
        for i in 0..100u64 {
            store.append_leaf(&i.to_be_bytes());
        }
        let narrow = Tile::new(0, 0, 50).unwrap();
        let wide = Tile::new(0, 0, 100).unwrap();
        let mut r = TileHashReader::new(th);
        r.insert(wide, read_tile_data(&wide, &store).unwrap())
            .unwrap();
        r.insert(narrow, read_tile_data(&narrow, &store).unwrap())
            .unwrap();
        assert_eq!(tree_root(th, 100, &r).unwrap(), store.root());
        let mut forged = read_tile_data(&narrow, &store).unwrap();
        forged[0] ^= 1;
        assert!(matches!(
            r.insert(narrow, forged),
            Err(TileError::ConflictingTileData { .. })
        ));
        assert!(matches!(
            tree_root(th, 101, &r),
            Err(TreeError::MissingTile { .. })
        ));
        assert!(matches!(
            r.insert(narrow, vec![0; 31]),
            Err(TileError::WrongDataLength { .. })
        ));
        assert!(matches!(
            r.insert(Tile::entry_bundle(0, 1).unwrap(), vec![0; 32]),
            Err(TileError::NotAHashTile { .. })
        ));
    }

    #[test]
    fn tile_widths_at_a_size() {
        assert_eq!(tile_width_at(0, 0, 0), 0);
        assert_eq!(tile_width_at(0, 0, 1), 1);
        assert_eq!(tile_width_at(0, 0, 300), 256);
        assert_eq!(tile_width_at(0, 1, 300), 44);
        assert_eq!(tile_width_at(0, 2, 300), 0);
        assert_eq!(tile_width_at(1, 0, 300), 1);
        assert_eq!(tile_width_at(1, 0, 255), 0);
        assert_eq!(tile_width_at(DATA_LEVEL, 1, 300), 44);
        assert_eq!(tile_width_at(8, 0, u64::MAX), 0);
        assert_eq!(tile_width_at(0, u64::MAX, u64::MAX), 0);
        assert_eq!(
            Tile::at_size(1, 1, 70_000),
            Some(Tile::new(1, 1, 17).unwrap())
        );
        assert_eq!(Tile::at_size(2, 1, 70_000), None);
        // Every tile of a size is within it at its width, and no wider.
        for size in [1u64, 255, 256, 257, 70_000] {
            for t in tiles_for_size(size) {
                assert!(t.is_within(size));
                assert_eq!(Tile::at_size(t.level, t.index, size), Some(t));
                if t.is_partial() {
                    assert!(!Tile {
                        width: t.width + 1,
                        ..t
                    }
                    .is_within(size));
                }
            }
        }
    }

    /// A tile source that can forget partial tiles and records what was saved.
    struct Source {
        set: TileHashReader,
        partials_deleted: bool,
        saved: std::sync::Mutex<Vec<Tile>>,
    }

    impl TileReader for Source {
        fn read_tiles(&self, tiles: &[Tile]) -> Vec<Result<Vec<u8>, TileError>> {
            tiles
                .iter()
                .map(|t| {
                    if self.partials_deleted && t.is_partial() {
                        Err(TileError::NotFound { path: t.path() })
                    } else {
                        self.set.read_tiles(std::slice::from_ref(t)).remove(0)
                    }
                })
                .collect()
        }

        fn save_tiles(&self, tiles: &[Tile], _data: &[Vec<u8>]) {
            self.saved.lock().unwrap().extend_from_slice(tiles);
        }
    }

    fn store_of(th: TreeHash, size: u64) -> MemoryHashStore {
        let mut store = MemoryHashStore::new(th);
        for i in 0..size {
            store.append_leaf(&i.to_be_bytes());
        }
        store
    }

    fn tile_set(store: &MemoryHashStore, size: u64) -> TileHashReader {
        TileHashReader::from_tiles(
            store.tree_hash(),
            tiles_for_size(size)
                .into_iter()
                .map(|t| (t, read_tile_data(&t, store).unwrap())),
        )
        .unwrap()
    }

    #[test]
    fn authenticated_reader_gives_the_trees_hashes() {
        use crate::tree::prove_consistency;
        let th = TreeHash::Sha256;
        for size in [1u64, 2, 255, 256, 257, 511, 512, 700, 65_536, 70_000] {
            let store = store_of(th, size);
            let reader = AuthTileHashReader::new(th, size, store.root(), tile_set(&store, size));
            assert_eq!(
                tree_root(th, size, &reader).unwrap(),
                store.root(),
                "{size}"
            );
            let all: Vec<u64> = (0..stored_hash_count(size)).step_by(7).collect();
            let want: Vec<Hash> = all.iter().map(|&i| store.hashes()[i as usize]).collect();
            assert_eq!(reader.read_hashes(&all).unwrap(), want, "{size}");
            for old in [1, size / 3, size.saturating_sub(1)] {
                if old == 0 || old > size {
                    continue;
                }
                assert_eq!(
                    prove_consistency(th, old, size, &reader).unwrap(),
                    prove_consistency(th, old, size, &store).unwrap()
                );
            }
            // Beyond the tree: not a hash of it.
            assert!(matches!(
                reader.read_hashes(&[stored_hash_count(size)]),
                Err(TreeError::MissingHash { .. })
            ));
        }
    }

    #[test]
    fn authenticated_reader_refuses_forged_tiles_and_saves_only_checked_ones() {
        let th = TreeHash::Blake3;
        let size = 70_000;
        let store = store_of(th, size);
        let honest = tile_set(&store, size);
        // A forged full level-0 tile that holds none of the root's subtree hashes: only its
        // parent tile can tell.
        let victim = Tile::new(0, 5, 256).unwrap();
        let mut forged = read_tile_data(&victim, &store).unwrap();
        forged[40] ^= 1;
        let mut set = honest.clone();
        set.tiles.insert((0, 5), forged);
        let source = Source {
            set,
            partials_deleted: false,
            saved: Default::default(),
        };
        let reader = AuthTileHashReader::new(th, size, store.root(), &source);
        assert_eq!(tree_root(th, size, &reader).unwrap(), store.root());
        let in_victim = stored_hash_index(0, 5 * 256 + 1);
        assert!(matches!(
            reader.read_hashes(&[in_victim]),
            Err(TreeError::Tile { .. })
        ));
        assert!(!source.saved.lock().unwrap().contains(&victim));
        let elsewhere = stored_hash_index(0, 6 * 256 + 1);
        assert_eq!(
            reader.read_hashes(&[elsewhere]).unwrap(),
            vec![store.hashes()[elsewhere as usize]]
        );
        assert!(source
            .saved
            .lock()
            .unwrap()
            .contains(&Tile::new(0, 6, 256).unwrap()));
        // A forged partial tile, or a wrong root, fails the root check.
        let mut set = honest.clone();
        if let Some(d) = set.tiles.get_mut(&(0, 273)) {
            d[0] ^= 1;
        }
        let reader = AuthTileHashReader::new(th, size, store.root(), &set);
        assert!(matches!(
            tree_root(th, size, &reader),
            Err(TreeError::Tile { .. })
        ));
        let reader = AuthTileHashReader::new(th, size, [7; 32], &honest);
        assert!(matches!(
            tree_root(th, size, &reader),
            Err(TreeError::Tile { .. })
        ));
    }

    #[test]
    fn a_partial_tile_is_cut_from_its_full_tile() {
        // Entry bundles: the first `width` entries, re-encoded; anything that is not a bundle is
        // passed on unchanged (the caller's checks refuse it).
        let entries: Vec<Vec<u8>> = (0..256u32)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let full = encode_entry_bundle(&refs);
        let partial = Tile::parse_path("tile/entries/x001/002.p/7").expect("path");
        assert_eq!(partial.full().path(), "tile/entries/x001/002");
        assert_eq!(
            cut_from_full(&partial, full.clone()).expect("cut"),
            encode_entry_bundle(&refs[..7])
        );
        assert_eq!(
            cut_from_full(&partial, b"not a bundle".to_vec()).expect("as is"),
            b"not a bundle".to_vec()
        );
        // Hash tiles: the first 32 × width bytes of a full-length tile; other lengths as they are.
        let hashes: Vec<u8> = (0..256 * 32).map(|i| (i % 251) as u8).collect();
        let partial = Tile::parse_path("tile/0/005.p/3").expect("path");
        assert_eq!(partial.full().path(), "tile/0/005");
        assert_eq!(
            cut_from_full(&partial, hashes.clone()).expect("cut"),
            hashes[..96].to_vec()
        );
        assert_eq!(
            cut_from_full(&partial, hashes[..64].to_vec()).expect("short"),
            hashes[..64].to_vec()
        );
    }

    #[test]
    fn authenticated_reader_falls_back_from_partial_to_full_tiles() {
        let th = TreeHash::Sha256;
        // The source has grown to 65,536 leaves (every tile a tree of 700 has is full there) and
        // deleted its partial tiles; the tree read is the one of 700 leaves.
        let store = store_of(th, 65_536);
        let small = store_of(th, 700);
        let source = Source {
            set: tile_set(&store, 65_536),
            partials_deleted: true,
            saved: Default::default(),
        };
        let reader = AuthTileHashReader::new(th, 700, small.root(), &source);
        assert_eq!(tree_root(th, 700, &reader).unwrap(), small.root());
        assert!(source
            .saved
            .lock()
            .unwrap()
            .contains(&Tile::new(0, 2, 188).unwrap()));
        // Without the full tile either, the tile is reported missing.
        let mut set = tile_set(&store, 65_536);
        set.tiles.remove(&(0, 2));
        let source = Source {
            set,
            partials_deleted: true,
            saved: Default::default(),
        };
        let reader = AuthTileHashReader::new(th, 700, small.root(), &source);
        let err = tree_root(th, 700, &reader).unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }

    #[test]
    fn reading_a_tile_beyond_the_stored_tree_fails() {
        let mut store = MemoryHashStore::new(TreeHash::Blake3);
        store.append_leaf(b"only");
        assert!(matches!(
            read_tile_data(&Tile::new(0, 0, 2).unwrap(), &store),
            Err(TileError::Tree(TreeError::MissingHash { .. }))
        ));
        assert!(matches!(
            read_tile_data(&Tile::new(8, 0, 1).unwrap(), &store),
            Err(TileError::InvalidTile { .. })
        ));
        assert!(matches!(
            read_tile_data(&Tile::new(0, u64::MAX, 1).unwrap(), &store),
            Err(TileError::InvalidTile { .. })
        ));
    }

    #[test]
    fn entry_bundles_round_trip_and_reject_malformed_data() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7u8; 300]];
        let bundle = encode_entry_bundle(&entries);
        assert_eq!(&bundle[..5], &[0, 0, 0, 1, b'a']);
        assert_eq!(&bundle[5..7], &[0x01, 0x2c]);
        assert_eq!(decode_entry_bundle(&bundle).unwrap(), entries);
        for cut in 1..bundle.len() {
            // Cutting inside the last entry (which starts at byte 5) is a truncation.
            if cut > 5 {
                assert!(matches!(
                    decode_entry_bundle(&bundle[..cut]),
                    Err(TileError::TruncatedBundle { offset: 5 })
                ));
            }
        }
        assert!(matches!(
            decode_entry_bundle(&[0]),
            Err(TileError::TruncatedBundle { offset: 0 })
        ));
        assert!(matches!(
            decode_entry_bundle(&[]),
            Err(TileError::EmptyBundle)
        ));
        let many = vec![0u8; 2 * 257];
        assert!(matches!(
            decode_entry_bundle(&many),
            Err(TileError::TooManyEntries)
        ));
        assert_eq!(decode_entry_bundle(&many[..512]).unwrap().len(), 256);
        let big = vec![0u8; 65_536];
        assert!(matches!(
            try_encode_entry_bundle(&[&big]),
            Err(TileError::EntryTooLong { len: 65_536 })
        ));
        let too_many: Vec<&[u8]> = vec![b"x"; 257];
        assert!(matches!(
            try_encode_entry_bundle(&too_many),
            Err(TileError::TooManyEntries)
        ));
    }
}
