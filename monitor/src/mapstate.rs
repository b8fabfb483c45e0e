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
//! Memory and speed: the nodes are the core's [`MapTree`] (two arrays of nodes linked by 32-bit
//! indexes, about 130 bytes per key), so a batch update follows one reference per depth and reads
//! each sibling's hash from the node it is at. The snapshot holds the keys' values only (72 bytes
//! each); loading it rebuilds the nodes and checks them against the recorded root.

use std::path::Path;

use ledger_core::entry::Entry;
use ledger_core::map::{self, MapAddition, MapError, MapTree, MapValue};
use ledger_core::{Hash, TreeHash};

use crate::codec::{
    checked_body, put_u64, read_snapshot_file, write_snapshot_file, Damaged, Reader, Summed,
};
use crate::verify::Verdict;

/// The size of one journaled addition: key, index, leaf hash.
const ADDITION_BYTES: usize = 32 + 8 + 32;

/// The size of one key's value in a snapshot: key, count, chain.
const VALUE_BYTES: usize = 32 + 8 + 32;

const SNAPSHOT_MAGIC: &[u8] = b"mimi-ledger monitor map v2\n";

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
    tree: MapTree,
    position: u64,
    /// Time spent in batch updates since [`MapState::take_update_time`] was last called.
    update_time: std::time::Duration,
}

impl MapState {
    /// The empty map, hashed with `th`.
    pub fn new(th: TreeHash) -> MapState {
        MapState {
            th,
            tree: MapTree::new(th),
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
        self.tree.root()
    }

    /// The keys in the map.
    pub fn keys(&self) -> usize {
        self.tree.keys()
    }

    /// Applies one batch (the leaves a log commits between two map leaves) with the core's
    /// [`MapTree::apply`]; returns the new root.
    pub fn apply(&mut self, additions: &[MapAddition]) -> Result<Hash, MapStateError> {
        if additions.is_empty() {
            return Ok(self.tree.root());
        }
        let t = std::time::Instant::now();
        let root = self.tree.apply(additions)?;
        self.update_time += t.elapsed();
        Ok(root)
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

    /// Streams the snapshot body to `w`; the caller adds the trailer: the header (tree hash,
    /// position, root, key count), then every key's value in key order (key, count, chain: 72
    /// bytes each).
    fn write_snapshot_to<W: std::io::Write>(&self, w: &mut Summed<W>) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(1 << 16);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        let name = self.th.name().as_bytes();
        b.push(name.len() as u8);
        b.extend_from_slice(name);
        put_u64(&mut b, self.position);
        b.extend_from_slice(&self.tree.root());
        let values = self.tree.values();
        put_u64(&mut b, values.len() as u64);
        for (key, value) in values {
            b.extend_from_slice(&key);
            put_u64(&mut b, value.count);
            b.extend_from_slice(&value.chain);
            if b.len() >= (1 << 16) - 128 {
                w.write_all(&b)?;
                b.clear();
            }
        }
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
        let rest = body.strip_prefix(SNAPSHOT_MAGIC).ok_or_else(|| {
            if body.starts_with(b"mimi-ledger monitor map v1\n") {
                bad(
                    "written by an older monitor (map snapshot version 1, which held the \
                         nodes); move the state folder away to start over",
                )
            } else {
                bad("not a version 2 map snapshot")
            }
        })?;
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
        if count > (rest.len() / VALUE_BYTES) as u64 {
            return Err(bad("more keys than the snapshot has bytes for"));
        }
        let mut values = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let key: Hash = r.array().map_err(d)?;
            let count = r.u64().map_err(d)?;
            let chain: Hash = r.array().map_err(d)?;
            values.push((key, MapValue { count, chain }));
        }
        if !r.done() {
            return Err(bad("trailing bytes"));
        }
        let tree = MapTree::from_values(th, &values, 0)?;
        if tree.root() != root {
            return Err(bad("the values do not hash to the recorded root"));
        }
        Ok(MapState {
            th,
            tree,
            position,
            update_time: std::time::Duration::ZERO,
        })
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

    /// The same map as one built directly with the core's tree.
    fn same_nodes(ours: &MapState, reference: &MapTree) {
        assert_eq!(ours.tree.nodes(), reference.nodes());
        assert_eq!(ours.root(), reference.root());
        assert_eq!(ours.keys(), reference.keys());
    }

    /// Keys sharing long prefixes (deep nodes, and leaves that move deeper) and keys spread out,
    /// over several batches: the same nodes as the core's store, and a snapshot that reproduces
    /// them.
    #[test]
    fn nodes_match_the_cores_store_and_survive_a_snapshot() {
        let th = TreeHash::Blake3;
        let mut ours = MapState::new(th);
        let mut reference = MapTree::new(th);
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
            reference.prove(&near(200)).proof.siblings.len() > 64,
            "some keys share their first 64 bits"
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
        let mut reference = MapTree::new(th);
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
            assert_eq!(state.root(), log.map().root());
            assert_eq!(last, Some(log.size() - 1));
        }
        // A wrong root, a wrong size, then a map leaf signed by an MSP (not a commitment).
        claims(&mut log, 4, "b");
        let wrong_root = log.push(log.map_leaf(log.size(), [9; 32]));
        claims(&mut log, 2, "c");
        let right_root = log.map().root();
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

    #[test]
    fn an_older_snapshot_is_refused_with_what_to_do() {
        let mut v1 = b"mimi-ledger monitor map v1\n".to_vec();
        v1.extend_from_slice(&[0; 40]);
        let mut out = Summed::new(Vec::new());
        out.write_all(&v1).unwrap();
        let bytes = out.finish().unwrap();
        let err = MapState::decode_snapshot(&bytes, TreeHash::Blake3, "t")
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("older monitor"), "{err}");
    }
}
