//! C2SP tlog-tiles reads: hash tiles (`tile/<L>/<N>[.p/<W>]`) and entry bundles
//! (`tile/entries/<N>[.p/<W>]`), read from the files of the data folder's `public/` tree.
//!
//! A tile is served only when every hash (or entry) it holds is covered by the current head; full
//! tiles never change, so they carry immutable cache headers. A partial tile of width W is served
//! whenever the tree holds at least W of its hashes (its content is a prefix of the full tile's, so
//! it too is consistent forever; it is just not the newest).

use ledger_core::tile::Tile;

use crate::error::LogError;
use crate::ledger::Ledger;

/// Whether tile `tile` lies entirely within a tree of `size` leaves (the core's width math:
/// [`Tile::is_within`]).
pub fn tile_available(tile: &Tile, size: u64) -> bool {
    tile.is_within(size)
}

/// The bytes of the tile or entry bundle at `path` (e.g. `tile/0/x001/234.p/7`), as of the current
/// head, with whether it is a full (immutable) tile. `not-found` for bad paths and tiles beyond the
/// tree.
pub fn read_tile(ledger: &Ledger, path: &str) -> Result<(Vec<u8>, bool), LogError> {
    let tile = Tile::parse_path(path).map_err(|e| LogError::NoSuchTile(e.to_string()))?;
    let size = ledger.head().size;
    if !tile_available(&tile, size) {
        return Err(LogError::NoSuchTile(format!(
            "{} is beyond the tree of size {size}",
            tile.path()
        )));
    }
    let full = !tile.is_partial();
    Ok((ledger.storage().tile(&tile)?, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability() {
        let t = |level, index, width| Tile::new(level, index, width).expect("tile");
        let e = |index, width| Tile::entry_bundle(index, width).expect("bundle");
        assert!(tile_available(&t(0, 0, 256), 256));
        assert!(!tile_available(&t(0, 0, 256), 255));
        assert!(tile_available(&t(0, 0, 255), 255));
        assert!(tile_available(&t(0, 0, 3), 255));
        assert!(!tile_available(&t(0, 1, 1), 256));
        assert!(tile_available(&t(0, 1, 1), 257));
        assert!(tile_available(&t(1, 0, 1), 256));
        assert!(!tile_available(&t(1, 0, 2), 511));
        assert!(tile_available(&t(1, 0, 2), 512));
        assert!(tile_available(&e(0, 5), 5));
        assert!(!tile_available(&e(0, 6), 5));
        assert!(!tile_available(&t(63, u64::MAX / 256, 256), u64::MAX));
    }
}
