//! The verifiable map (SPEC §9) as the monitor rebuilds it from the entries it verifies, held in
//! memory and made durable like the rule state ([`crate::rulestate`]): a journal record per
//! catch-up step (the step's additions, committed atomically with its progress) plus occasional
//! snapshots of the nodes.
//!
//! The map's rules are the core's: every leaf is filed through [`ledger_core::map::addition`] and
//! every batch applied with one [`ledger_core::map::update`] call; this module only stores the
//! nodes that `update` returns and reads them back through [`MapNodeReader`]. A batch is what the
//! log commits between two map leaves (SPEC §9 "Map leaf"): within a step, the additions since the
//! last map leaf are applied when the next map leaf comes, and that leaf's `root` is compared with
//! the result; what follows the last map leaf of a step is applied at the step's end.
//!
//! Which leaves are filed: every leaf that parses, valid or not (an entry that fails SPEC §3 is
//! still in the log, and the log's map covers every leaf below a map leaf; the entry itself is a
//! `bad-entry`). A leaf that does not parse names no key. A map leaf is filed under no key.
//!
//! Memory and speed: the canonical tree of n keys has n leaf nodes and about 1.44 n internal ones,
//! and a batch update reads and writes a few dozen of them per key, at random places once the map
//! outgrows the CPU caches. So nodes are kept in *pages* of 8 levels under a byte-aligned prefix
//! (one hash-table entry per page, holding a byte per place that says where its node is; internal
//! hashes and leaves in two small arrays): the reads and writes along one path fall in 3 or 4
//! pages instead of 40 places. About 150 bytes per key. Nodes at depth [`DEEP`] and below (two keys sharing their
//! first 64 bits, which honest keys essentially never do) are kept apart, by their full id.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use ledger_core::entry::Entry;
use ledger_core::map::{self, MapAddition, MapError, MapNode, MapNodeReader, MapValue, NodeId};
use ledger_core::{Hash, TreeHash};

use crate::codec::{
    checked_body, put_u64, read_snapshot_file, write_snapshot_file, Damaged, Reader, Summed,
};
use crate::verify::Verdict;

/// Levels per page: a page holds the nodes of 8 consecutive depths under one byte-aligned prefix.
const PAGE_LEVELS: u16 = 8;

/// Nodes at this depth and deeper (two keys sharing their first 64 bits, which honest keys
/// essentially never do) are kept apart, by their full id.
pub const DEEP: u16 = 64;

/// The size of one journaled addition: key, index, leaf hash.
const ADDITION_BYTES: usize = 32 + 8 + 32;

const SNAPSHOT_MAGIC: &[u8] = b"mimi-ledger monitor map v1\n";

/// Why the map state could not be updated, loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapStateError {
    /// The core refused the update (the stored nodes contradict the canonical tree, or a chain
    /// would overflow).
    #[error("map: {0}")]
    Map(#[from] MapError),
    /// A journal record or the snapshot does not decode.
    #[error("map state {what}: {reason}")]
    Damaged {
        /// Which record or file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The snapshot file could not be read or written.
    #[error("map snapshot {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn damaged(what: impl Into<String>, e: Damaged) -> MapStateError {
    MapStateError::Damaged {
        what: what.into(),
        reason: e.0,
    }
}

/// Where a node lives: its page (packed: the page's prefix bytes, then its band, the page's depth
/// divided by [`PAGE_LEVELS`]) and its place in the page (`2^r − 1 + the r bits below the page's
/// prefix`, for the node `r` levels below the page's top). `None` for a node at [`DEEP`] or below.
fn locate(id: &NodeId) -> Option<(u64, u8)> {
    let depth = id.depth();
    if depth >= DEEP {
        return None;
    }
    let band = usize::from(depth / PAGE_LEVELS);
    let r = depth % PAGE_LEVELS;
    let prefix = id.prefix();
    let mut b = [0u8; 8];
    b[..band].copy_from_slice(&prefix[..band]);
    b[7] = band as u8;
    let bits = if r == 0 { 0 } else { prefix[band] >> (8 - r) };
    let place = ((1u16 << r) - 1 + u16::from(bits)) as u8;
    Some((u64::from_be_bytes(b), place))
}

/// The node id of a page and a place in it ([`locate`] backwards).
fn node_id(page: u64, place: u8) -> Option<NodeId> {
    let b = page.to_be_bytes();
    let band = usize::from(b[7]);
    if band >= usize::from(DEEP / PAGE_LEVELS) {
        return None;
    }
    // place = 2^r − 1 + bits, bits < 2^r.
    let p = u16::from(place) + 1;
    let r = 15 - p.leading_zeros() as u16;
    let bits = (p - (1 << r)) as u8;
    let mut prefix = [0u8; 32];
    prefix[..band].copy_from_slice(&b[..band]);
    if r > 0 {
        prefix[band] = bits << (8 - r);
    }
    NodeId::of(&prefix, band as u16 * PAGE_LEVELS + r)
}

/// Page keys have their random bits on top (the prefix) and the band below: a full finalizer
/// (splitmix64's) spreads them over the bits the table uses.
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = self.0.rotate_left(29) ^ v;
    }
}

type Mix = BuildHasherDefault<MixHasher>;

/// The nodes of one page: where each place's node is (`at`: 0 for none, else its position + 1,
/// in `leaves` when the place's bit in `is_leaf` is set, else in `internal`), internal hashes and
/// leaves apart. One lookup is a table probe, a byte of `at` and the node itself.
struct Page {
    at: [u8; 255],
    is_leaf: [u64; 4],
    internal: Vec<Hash>,
    leaves: Vec<(Hash, MapValue)>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            at: [0; 255],
            is_leaf: [0; 4],
            internal: Vec::new(),
            leaves: Vec::new(),
        }
    }
}

impl Page {
    fn leaf_bit(&self, place: u8) -> bool {
        self.is_leaf[usize::from(place / 64)] & (1 << (place % 64)) != 0
    }

    fn set_leaf_bit(&mut self, place: u8, leaf: bool) {
        let (w, b) = (usize::from(place / 64), 1u64 << (place % 64));
        if leaf {
            self.is_leaf[w] |= b;
        } else {
            self.is_leaf[w] &= !b;
        }
    }

    fn get(&self, place: u8) -> Option<MapNode> {
        let i = usize::from(*self.at.get(usize::from(place))?).checked_sub(1)?;
        if self.leaf_bit(place) {
            self.leaves
                .get(i)
                .map(|&(key, value)| MapNode::Leaf { key, value })
        } else {
            self.internal.get(i).map(|&hash| MapNode::Internal { hash })
        }
    }

    /// Removes the leaf at `place` (it became an internal node): the last leaf takes its position.
    fn remove_leaf(&mut self, place: u8, i: usize) {
        self.leaves.swap_remove(i);
        let moved = self.leaves.len() + 1;
        if moved != i + 1 {
            if let Some(p) = (0..=254u8)
                .find(|&p| self.leaf_bit(p) && usize::from(self.at[usize::from(p)]) == moved)
            {
                self.at[usize::from(p)] = (i + 1) as u8;
            }
        }
        self.set_leaf_bit(place, false);
        self.at[usize::from(place)] = 0;
    }

    /// Removes the internal node at `place` (never happens in a canonical map, whose keys are
    /// only added; kept for a complete store): the last one takes its position.
    fn remove_internal(&mut self, place: u8, i: usize) {
        self.internal.swap_remove(i);
        let moved = self.internal.len() + 1;
        if moved != i + 1 {
            if let Some(p) = (0..=254u8)
                .find(|&p| !self.leaf_bit(p) && usize::from(self.at[usize::from(p)]) == moved)
            {
                self.at[usize::from(p)] = (i + 1) as u8;
            }
        }
        self.at[usize::from(place)] = 0;
    }

    fn put(&mut self, place: u8, node: MapNode) {
        let slot = usize::from(place).min(254);
        let current = usize::from(self.at[slot]).checked_sub(1);
        let was_leaf = self.leaf_bit(place);
        match (node, current) {
            (MapNode::Internal { hash }, Some(i)) if !was_leaf => {
                if let Some(h) = self.internal.get_mut(i) {
                    *h = hash;
                }
            }
            (MapNode::Leaf { key, value }, Some(i)) if was_leaf => {
                if let Some(l) = self.leaves.get_mut(i) {
                    *l = (key, value);
                }
            }
            (node, current) => {
                match current {
                    Some(i) if was_leaf => self.remove_leaf(place, i),
                    Some(i) => self.remove_internal(place, i),
                    None => {}
                }
                match node {
                    MapNode::Internal { hash } => {
                        self.internal.push(hash);
                        self.at[slot] = self.internal.len() as u8;
                    }
                    MapNode::Leaf { key, value } => {
                        self.leaves.push((key, value));
                        self.at[slot] = self.leaves.len() as u8;
                        self.set_leaf_bit(place, true);
                    }
                }
            }
        }
    }

    fn places(&self) -> impl Iterator<Item = (u8, MapNode)> + '_ {
        (0..=254u8).filter_map(|p| self.get(p).map(|n| (p, n)))
    }
}

/// The map's nodes (see the module doc).
struct Nodes {
    // Boxed: a page is ~300 bytes, and a table of them inline would carry its load-factor slack
    // at that size.
    pages: HashMap<u64, Box<Page>, Mix>,
    deep: BTreeMap<NodeId, MapNode>,
}

impl Nodes {
    fn new() -> Nodes {
        Nodes {
            pages: HashMap::default(),
            deep: BTreeMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.pages
            .values()
            .map(|p| p.internal.len() + p.leaves.len())
            .sum::<usize>()
            + self.deep.len()
    }

    fn leaf_count(&self) -> usize {
        self.pages.values().map(|p| p.leaves.len()).sum::<usize>()
            + self
                .deep
                .values()
                .filter(|n| matches!(n, MapNode::Leaf { .. }))
                .count()
    }

    /// Stores `node` under `id`, over what was there (a leaf that gained a neighbour becomes an
    /// internal node under the same id).
    fn write(&mut self, id: NodeId, node: MapNode) {
        match locate(&id) {
            Some((page, place)) => self.pages.entry(page).or_default().put(place, node),
            None => {
                self.deep.insert(id, node);
            }
        }
    }

    /// Every stored node, in no particular order.
    fn for_each(
        &self,
        mut f: impl FnMut(NodeId, MapNode) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let bad = || std::io::Error::other("a map page holds a node it cannot name");
        for (&key, page) in &self.pages {
            for (place, node) in page.places() {
                f(node_id(key, place).ok_or_else(bad)?, node)?;
            }
        }
        for (id, node) in &self.deep {
            f(*id, *node)?;
        }
        Ok(())
    }
}

impl MapNodeReader for Nodes {
    fn read_node(&self, id: &NodeId) -> Result<Option<MapNode>, MapError> {
        Ok(match locate(id) {
            Some((page, place)) => self.pages.get(&page).and_then(|p| p.get(place)),
            None => self.deep.get(id).copied(),
        })
    }
}

/// A map leaf that contradicts the map the monitor rebuilt (a `bad-map-root`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadMapLeaf {
    /// The map leaf's index.
    pub index: u64,
    /// The `size` it states.
    pub size: u64,
    /// The `root` it states.
    pub root: Hash,
    /// The root of the map of every leaf below `index`, as rebuilt.
    pub rebuilt: Hash,
}

impl BadMapLeaf {
    /// What is wrong, in words.
    pub fn detail(&self) -> String {
        use base64::Engine as _;
        let b64 = |h: &Hash| base64::engine::general_purpose::STANDARD.encode(h);
        let mut wrong = Vec::new();
        if self.size != self.index {
            wrong.push(format!("says size {}, not its own index", self.size));
        }
        if self.root != self.rebuilt {
            wrong.push(format!(
                "says root {}, but the map of the {} leaves below it is {}",
                b64(&self.root),
                self.index,
                b64(&self.rebuilt)
            ));
        }
        format!(
            "the map leaf at index {} {}",
            self.index,
            wrong.join("; and ")
        )
    }
}

/// What filing one step's leaves left.
#[derive(Debug, Default)]
pub struct MapStep {
    /// The step's journal record (empty when no leaf was filed).
    pub journal: Vec<u8>,
    /// The index of the step's last log-signed map leaf, if any.
    pub last_map_leaf: Option<u64>,
}

/// The leaves of one step being filed, in log order ([`MapState::filing`]).
pub struct Filing<'a> {
    state: &'a mut MapState,
    next: u64,
    batch: Vec<MapAddition>,
    out: MapStep,
}

impl Filing<'_> {
    /// Files the next leaf (with its leaf hash and verdict). A log-signed map leaf is checked
    /// against the map of every leaf below it — its `size` must be its index and its `root` the
    /// rebuilt root — after the batch since the last map leaf is applied (one `update` call); it
    /// is returned when it contradicts them. Any other leaf that parses is filed under its key.
    pub fn file(
        &mut self,
        leaf_hash: &Hash,
        verdict: &Verdict,
    ) -> Result<Option<BadMapLeaf>, MapStateError> {
        let index = self.next;
        self.next += 1;
        let leaf = match verdict {
            Verdict::Good { leaf, .. } => {
                if let Entry::Map(m) = leaf.entry() {
                    let rebuilt = self.state.apply(&self.batch)?;
                    self.batch.clear();
                    self.out.last_map_leaf = Some(index);
                    if m.size != index || m.root != rebuilt {
                        return Ok(Some(BadMapLeaf {
                            index,
                            size: m.size,
                            root: m.root,
                            rebuilt,
                        }));
                    }
                    return Ok(None);
                }
                leaf
            }
            // A map leaf not signed by the log is a `bad-entry` and no commitment of the log's;
            // other bad entries are still leaves of the log.
            Verdict::Bad {
                leaf: Some(leaf), ..
            } => leaf,
            Verdict::Bad { leaf: None, .. } => return Ok(None),
        };
        if let Some(a) = map::addition(self.state.th, index, leaf_hash, leaf.entry()) {
            encode_addition(&a, &mut self.out.journal);
            self.batch.push(a);
        }
        Ok(None)
    }

    /// Applies what follows the step's last map leaf (one `update` call) and moves the map's
    /// position past the filed leaves.
    pub fn finish(self) -> Result<MapStep, MapStateError> {
        self.state.apply(&self.batch)?;
        self.state.position = self.next;
        Ok(self.out)
    }
}

/// The rebuilt map of one log.
pub struct MapState {
    th: TreeHash,
    nodes: Nodes,
    root: Hash,
    position: u64,
    /// Time spent in batch updates since [`MapState::take_update_time`] was last called.
    update_time: std::time::Duration,
}

impl MapState {
    /// The empty map, hashed with `th`.
    pub fn new(th: TreeHash) -> MapState {
        MapState {
            th,
            nodes: Nodes::new(),
            root: map::EMPTY,
            position: 0,
            update_time: std::time::Duration::ZERO,
        }
    }

    /// The log size the map describes (leaves `0..position` filed).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Records that the leaves up to `position` are filed.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// The map's root.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The keys in the map.
    pub fn keys(&self) -> usize {
        self.nodes.leaf_count()
    }

    /// Applies one batch (the leaves a log commits between two map leaves) with the core's
    /// [`map::update`] and stores the nodes it writes; returns the new root.
    pub fn apply(&mut self, additions: &[MapAddition]) -> Result<Hash, MapStateError> {
        if additions.is_empty() {
            return Ok(self.root);
        }
        let t = std::time::Instant::now();
        let up = map::update(self.th, &self.nodes, additions)?;
        for (id, node) in up.writes {
            self.nodes.write(id, node);
        }
        self.root = up.root;
        self.update_time += t.elapsed();
        Ok(up.root)
    }

    /// The time spent in batch updates since the last call (for the catch-up's stage times).
    pub fn take_update_time(&mut self) -> std::time::Duration {
        std::mem::take(&mut self.update_time)
    }

    /// Starts filing the leaves of one catch-up step, from index [`position`](Self::position)
    /// on.
    pub fn filing(&mut self) -> Filing<'_> {
        Filing {
            next: self.position,
            state: self,
            batch: Vec::new(),
            out: MapStep::default(),
        }
    }

    /// Replays one journal record (the additions of the step that ended at `position`).
    pub fn replay(&mut self, record: &[u8], position: u64) -> Result<(), MapStateError> {
        let what = || format!("journal record at {position}");
        if record.len() % ADDITION_BYTES != 0 {
            return Err(damaged(
                what(),
                Damaged("not a whole number of additions".into()),
            ));
        }
        let mut r = Reader::new(record);
        let mut batch = Vec::with_capacity(record.len() / ADDITION_BYTES);
        while !r.done() {
            batch.push(decode_addition(&mut r).map_err(|e| damaged(what(), e))?);
        }
        self.apply(&batch)?;
        self.position = position;
        Ok(())
    }

    /// Streams the snapshot body (header, every node, in no particular order) to `w`; the caller
    /// adds the trailer. Each node is its id in short form (`u16` depth, the prefix's first
    /// ⌈depth/8⌉ bytes) and the core's node bytes (`MapNode::to_bytes`) after their length.
    fn write_snapshot_to<W: std::io::Write>(&self, w: &mut Summed<W>) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(1 << 16);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        let name = self.th.name().as_bytes();
        b.push(name.len() as u8);
        b.extend_from_slice(name);
        put_u64(&mut b, self.position);
        b.extend_from_slice(&self.root);
        put_u64(&mut b, self.nodes.len() as u64);
        self.nodes.for_each(|id, node| {
            let depth = id.depth();
            b.extend_from_slice(&depth.to_le_bytes());
            b.extend_from_slice(&id.prefix()[..usize::from(depth).div_ceil(8)]);
            let bytes = node.to_bytes();
            b.push(bytes.len() as u8);
            b.extend_from_slice(&bytes);
            if b.len() >= (1 << 16) - 128 {
                w.write_all(&b)?;
                b.clear();
            }
            Ok(())
        })?;
        w.write_all(&b)
    }

    /// The snapshot bytes (for tests; files are streamed).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Summed::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = self.write_snapshot_to(&mut out);
        out.finish().unwrap_or_default()
    }

    /// Parses [`MapState::encode_snapshot`] bytes of a map hashed with `th`.
    pub fn decode_snapshot(
        bytes: &[u8],
        th: TreeHash,
        what: &str,
    ) -> Result<MapState, MapStateError> {
        let bad = |reason: &str| damaged(what, Damaged(reason.into()));
        let body = checked_body(bytes).map_err(|e| damaged(what, e))?;
        let rest = body
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or_else(|| bad("not a version 1 map snapshot"))?;
        let mut r = Reader::new(rest);
        let d = |e| damaged(what, e);
        let name_len = r.u8().map_err(d)?;
        let name = r.take(usize::from(name_len)).map_err(d)?;
        if name != th.name().as_bytes() {
            return Err(bad(&format!(
                "the map is hashed with {}, the log with {th}",
                String::from_utf8_lossy(name)
            )));
        }
        let position = r.u64().map_err(d)?;
        let root: Hash = r.array().map_err(d)?;
        let count = r.u64().map_err(d)?;
        let mut nodes = Nodes::new();
        for _ in 0..count {
            let depth = r.u16().map_err(d)?;
            if depth > map::KEY_BITS {
                return Err(bad("a node deeper than 256"));
            }
            let prefix = r.take(usize::from(depth).div_ceil(8)).map_err(d)?;
            let mut id = [0u8; 34];
            id[..2].copy_from_slice(&depth.to_be_bytes());
            id[2..2 + prefix.len()].copy_from_slice(prefix);
            let id = NodeId::from_bytes(&id)?;
            let len = r.u8().map_err(d)?;
            let node = MapNode::from_bytes(r.take(usize::from(len)).map_err(d)?)?;
            nodes.write(id, node);
        }
        if !r.done() {
            return Err(bad("trailing bytes"));
        }
        if nodes.len() as u64 != count {
            return Err(bad("a node id appears twice"));
        }
        let s = MapState {
            th,
            nodes,
            root,
            position,
            update_time: std::time::Duration::ZERO,
        };
        if map::map_root(th, &s.nodes)? != root {
            return Err(bad("the nodes do not hash to the recorded root"));
        }
        Ok(s)
    }

    /// Reads the snapshot at `path`; `None` when there is none.
    pub fn read_snapshot(path: &Path, th: TreeHash) -> Result<Option<MapState>, MapStateError> {
        let what = path.display().to_string();
        match read_snapshot_file(path) {
            Ok(Some(b)) => MapState::decode_snapshot(&b, th, &what).map(Some),
            Ok(None) => Ok(None),
            Err(source) => Err(MapStateError::Io { path: what, source }),
        }
    }

    /// Writes the snapshot crash-safely (temporary file, fsync, rename, fsync of the folder) and
    /// returns its size.
    pub fn write_snapshot(&self, path: &Path) -> Result<u64, MapStateError> {
        write_snapshot_file(path, |w| self.write_snapshot_to(w)).map_err(|source| {
            MapStateError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }
}

fn encode_addition(a: &MapAddition, out: &mut Vec<u8>) {
    out.extend_from_slice(&a.key);
    put_u64(out, a.index);
    out.extend_from_slice(&a.leaf_hash);
}

fn decode_addition(r: &mut Reader<'_>) -> Result<MapAddition, Damaged> {
    Ok(MapAddition {
        key: r.array()?,
        index: r.u64()?,
        leaf_hash: r.array()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::map::MemoryMapStore;

    fn add(key: Hash, index: u64) -> MapAddition {
        MapAddition {
            key,
            index,
            leaf_hash: [(index % 251) as u8; 32],
        }
    }

    fn key(i: u64) -> Hash {
        TreeHash::Sha256.leaf_hash(&i.to_be_bytes())
    }

    /// Every node the core's reference store holds, read back from ours.
    fn same_nodes(ours: &MapState, reference: &MemoryMapStore) {
        assert_eq!(ours.nodes.len(), reference.nodes().len());
        for (id, node) in reference.nodes() {
            assert_eq!(ours.nodes.read_node(id).unwrap(), Some(*node), "{id:?}");
        }
        assert_eq!(ours.root(), reference.root().unwrap());
    }

    #[test]
    fn node_places_round_trip_and_deep_ones_have_none() {
        let k = [0xa5u8; 32];
        let mut places = std::collections::HashSet::new();
        for depth in 0..DEEP {
            let id = NodeId::of(&k, depth).unwrap();
            let (page, place) = locate(&id).unwrap();
            assert!(places.insert((page, place)), "depth {depth}");
            assert_eq!(node_id(page, place), Some(id), "depth {depth}");
        }
        // Every place of one page names a distinct node of that page.
        let top = locate(&NodeId::ROOT).unwrap().0;
        for place in 0..255u8 {
            let id = node_id(top, place).unwrap();
            assert_eq!(locate(&id), Some((top, place)));
        }
        assert_eq!(locate(&NodeId::of(&k, DEEP).unwrap()), None);
        assert_eq!(locate(&NodeId::of(&k, 256).unwrap()), None);
    }

    /// Keys sharing long prefixes (deep nodes, and leaves that move deeper) and keys spread out,
    /// over several batches: the same nodes as the core's store, and a snapshot that reproduces
    /// them.
    #[test]
    fn nodes_match_the_cores_store_and_survive_a_snapshot() {
        let th = TreeHash::Blake3;
        let mut ours = MapState::new(th);
        let mut reference = MemoryMapStore::new(th);
        let base = [0x3cu8; 32];
        let near = |bit: usize| {
            let mut k = base;
            k[bit / 8] ^= 0x80 >> (bit % 8);
            k
        };
        let mut index = 0;
        for batch in 0..6u64 {
            let mut adds = Vec::new();
            for j in 0..40u64 {
                let k = match j % 4 {
                    0 => near(((batch * 40 + j) % 256) as usize),
                    1 => base,
                    _ => key(batch * 1000 + j % 7),
                };
                adds.push(add(k, index));
                index += 1;
            }
            ours.apply(&adds).unwrap();
            reference.apply(&adds).unwrap();
            same_nodes(&ours, &reference);
        }
        assert!(
            !ours.nodes.deep.is_empty(),
            "some nodes are at depth 64 or deeper"
        );
        ours.set_position(index);
        let bytes = ours.encode_snapshot();
        let back = MapState::decode_snapshot(&bytes, th, "t").unwrap();
        assert_eq!(back.position(), index);
        same_nodes(&back, &reference);
        assert!(MapState::decode_snapshot(&bytes, TreeHash::Sha256, "t").is_err());
        for i in [0, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                MapState::decode_snapshot(&bad, th, "t").is_err(),
                "flip at {i}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m").join("x.snap");
        assert!(MapState::read_snapshot(&p, th).unwrap().is_none());
        ours.write_snapshot(&p).unwrap();
        let back = MapState::read_snapshot(&p, th).unwrap().unwrap();
        same_nodes(&back, &reference);
    }

    #[test]
    fn journal_replay_rebuilds_the_map_and_damage_is_an_error() {
        let th = TreeHash::Sha256;
        let adds: Vec<MapAddition> = (0..100).map(|i| add(key(i % 30), i)).collect();
        let mut record = Vec::new();
        for a in &adds {
            encode_addition(a, &mut record);
        }
        let mut reference = MemoryMapStore::new(th);
        reference.apply(&adds[..50]).unwrap();
        reference.apply(&adds[50..]).unwrap();
        let mut replayed = MapState::new(th);
        replayed.replay(&record, 100).unwrap();
        assert_eq!(replayed.position(), 100);
        same_nodes(&replayed, &reference);
        let mut s = MapState::new(th);
        assert!(s.replay(&record[..record.len() - 1], 1).is_err());
    }

    /// Files every leaf of `log` (verified as the engine verifies them) in steps of `step`
    /// leaves; returns the bad map leaves and the last log-signed map leaf.
    fn file_log(
        log: &ledger_core::testkit::MemLog,
        step: usize,
    ) -> (MapState, Vec<BadMapLeaf>, Option<u64>) {
        use ledger_core::admission::KeyRegistry;
        let raw: Vec<Vec<u8>> = (0..log.size())
            .map(|i| log.leaf(i).bytes().to_vec())
            .collect();
        let hashes: Vec<Hash> = raw.iter().map(|l| log.hash.leaf_hash(l)).collect();
        let mut registry = KeyRegistry::new(log.key.verifier());
        let verdicts = crate::verify::verify_leaves(0, &raw, &mut registry);
        let mut state = MapState::new(log.hash);
        let (mut bad, mut last) = (Vec::new(), None);
        for (vs, hs) in verdicts.chunks(step).zip(hashes.chunks(step)) {
            let mut f = state.filing();
            for (v, h) in vs.iter().zip(hs) {
                bad.extend(f.file(h, v).unwrap());
            }
            last = f.finish().unwrap().last_map_leaf.or(last);
        }
        assert_eq!(state.position(), log.size());
        (state, bad, last)
    }

    /// Through the engine's verdicts and any step size: an honest sealed log has no bad map leaf
    /// and the same root as the log's own map; a map leaf with another root, another size, or
    /// signed by another key is told apart, at its index.
    #[test]
    fn filing_checks_map_leaves_against_the_rebuilt_map() {
        use ledger_core::entry::{Entry, MapLeaf, Role};
        use ledger_core::testkit::{claim, sign_unchecked, test_key, MemLog};
        let mut log = MemLog::new("example.com/log", TreeHash::Blake3);
        let msp = test_key("msp-a.example");
        log.enroll(Role::Msp, &msp);
        log.seal();
        let claims = |log: &mut MemLog, n: u64, tag: &str| {
            for i in 0..n {
                let sii = format!("mailto:{tag}{}@example.com", i % 7);
                log.push(claim(
                    &msp,
                    &sii,
                    "mimi://msp-a.example/u/x",
                    log.now,
                    &[],
                    None,
                ));
            }
        };
        for b in 0..5 {
            claims(&mut log, 3 + b * 5, "a");
            log.seal();
        }
        for step in [1, 4, 1000] {
            let (state, bad, last) = file_log(&log, step);
            assert!(bad.is_empty(), "step {step}: {bad:?}");
            assert_eq!(state.root(), log.map().root().unwrap());
            assert_eq!(last, Some(log.size() - 1));
        }
        // A wrong root, a wrong size, then a map leaf signed by an MSP (not a commitment).
        claims(&mut log, 4, "b");
        let wrong_root = log.push(log.map_leaf(log.size(), [9; 32]));
        claims(&mut log, 2, "c");
        let right_root = log.map().root().unwrap();
        let wrong_size = log.push(log.map_leaf(log.size() + 1, right_root));
        let forged = sign_unchecked(
            Entry::Map(MapLeaf {
                size: log.size(),
                root: right_root,
            }),
            &msp,
        );
        let forged_at = log.push(forged);
        for step in [1, 3, 1000] {
            let (_, bad, last) = file_log(&log, step);
            assert_eq!(
                bad.iter().map(|b| b.index).collect::<Vec<_>>(),
                [wrong_root, wrong_size],
                "step {step}"
            );
            assert_eq!(bad[1].rebuilt, right_root);
            assert!(bad[0].detail().contains("says root"), "{}", bad[0].detail());
            assert!(!bad[0].detail().contains("says size"));
            assert!(bad[1].detail().contains("says size"), "{}", bad[1].detail());
            assert!(!bad[1].detail().contains("says root"));
            assert_eq!(
                last,
                Some(wrong_size),
                "the forged map leaf at {forged_at} counts for nothing"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

        /// Any sequence of batches over a small key set (so keys repeat, leaves move deeper and
        /// pages fill up): the nodes and root of the core's reference store.
        #[test]
        fn any_batches_give_the_cores_nodes(
            batches in proptest::collection::vec(proptest::collection::vec(0u64..400, 0..60), 1..8)
        ) {
            let th = TreeHash::Blake3;
            let mut ours = MapState::new(th);
            let mut reference = MemoryMapStore::new(th);
            let mut index = 0;
            for b in batches {
                let adds: Vec<MapAddition> = b
                    .iter()
                    .map(|k| {
                        index += 1;
                        add(key(*k), index)
                    })
                    .collect();
                ours.apply(&adds).unwrap();
                reference.apply(&adds).unwrap();
            }
            same_nodes(&ours, &reference);
        }
    }
}
