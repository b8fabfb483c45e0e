//! The map in memory: its nodes, its batch update, its proofs and the recent versions lookups
//! still read (SPEC §9 "Tree", "Map leaf", "Proof for a key K").
//!
//! # Why this shape
//!
//! The canonical tree of n keys has n leaves and about 1.44 n internal nodes, and a batch update
//! visits every node on each touched key's path (~20 at a million keys, ~24 at ten million) and
//! each one's sibling. An earlier store named each node by its bit prefix ([`NodeId`]) in a table
//! — a `BTreeMap` here, a hash map in the log, pages of 8 levels in the monitor — and paid a table
//! lookup with a 34-byte key for every node and sibling, plus a sorted list of writes: 17–61 µs per
//! key at 1M (docs/benchmarks.md), four to twelve times the hashing. So the nodes are kept the way
//! a pointer tree keeps them, in two arrays linked by 32-bit indexes: internal nodes as their hash
//! and its two children's references and hashes (72 bytes), leaves as their key and value (72
//! bytes), about 180 bytes per key. A walk follows one reference per depth and finds the
//! sibling's hash in the node it is already at (one cache miss per depth, not two); nothing is
//! looked up by name, and an untouched sibling leaf is never rehashed.
//!
//! The tree's rules stay those of the module doc of [`super`]: one key set, one shape, so
//! [`MapTree::nodes`] of any sequence of batches equals that of [`MapTree::from_values`] (the tests
//! compare them with a reference construction).
//!
//! # Updates in two steps, and the versions kept
//!
//! [`MapTree::stage`] computes a batch's new root and every node it changes *without* changing the
//! tree (it only reads it, so lookups go on meanwhile), and [`MapTree::commit`] then writes those
//! nodes — the log stages while it hashes the batch's leaves and commits after its storage commit.
//! Keys are only ever added, so nodes are never freed: a leaf that gains neighbours keeps its slot
//! for its key, one level deeper, and new nodes are appended.
//!
//! A lookup answers against a checkpoint the sequencer may already have passed, and its map proof
//! must be of exactly that checkpoint's map. So a tree made [`with_history`](MapTree::with_history)
//! keeps, for its last few commits, the old contents of the slots each commit overwrote and the
//! old root ([`Undo`]); the map of an older version reads each slot from the oldest undo after
//! that version that holds it, else from the tree. Slots appended later are unreachable from the
//! old root, so they need no undo.

use std::collections::VecDeque;

use super::proof::{KeyProof, MapProof, OtherLeaf};
use super::{bit, leaf_hash, node_hash, MapAddition, MapError, MapNode, MapValue, NodeId, EMPTY};
use crate::hash::{Hash, TreeHash};

/// A reference to a node: an empty subtree, a leaf slot or an internal slot. The top bit tells
/// leaves from internal nodes; `u32::MAX` is the empty subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ref(u32);

/// What a [`Ref`] points at.
enum Slot {
    Empty,
    Leaf(usize),
    Inner(usize),
}

/// The largest number of slots of each kind (the top bit of a [`Ref`] is its kind, and
/// `u32::MAX` is reserved for the empty subtree).
const MAX_SLOTS: usize = (1 << 31) - 1;

impl Ref {
    const EMPTY: Ref = Ref(u32::MAX);
    const LEAF: u32 = 1 << 31;

    fn leaf(i: usize) -> Result<Ref, MapError> {
        if i >= MAX_SLOTS {
            return Err(MapError::Full);
        }
        // i < 2³¹ − 1.
        Ok(Ref(i as u32 | Ref::LEAF))
    }

    fn inner(i: usize) -> Result<Ref, MapError> {
        if i >= MAX_SLOTS {
            return Err(MapError::Full);
        }
        Ok(Ref(i as u32))
    }

    fn slot(self) -> Slot {
        if self == Ref::EMPTY {
            Slot::Empty
        } else if self.0 & Ref::LEAF != 0 {
            Slot::Leaf((self.0 & !Ref::LEAF) as usize)
        } else {
            Slot::Inner(self.0 as usize)
        }
    }
}

/// An internal node: a subtree holding two or more keys, as its two children (bit 0, bit 1) and
/// *their* hashes. Its own hash is kept by its parent (the root's by the tree), so a walk down a
/// path reads one node per depth: the child to follow and the sibling's hash are both in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inner {
    hashes: [Hash; 2],
    kids: [Ref; 2],
}

/// A leaf: the one key of its subtree, and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Leaf {
    key: Hash,
    value: MapValue,
}

/// What one commit overwrote: the tree as it was at `version`, where it differs from the next.
#[derive(Clone, Debug)]
struct Undo {
    version: u64,
    root: Ref,
    root_hash: Hash,
    /// The overwritten internal slots and leaves, with their old contents.
    inner: Overwritten<Inner>,
    leaves: Overwritten<Leaf>,
}

/// Slots one commit overwrote and their old contents, in the order the update wrote them.
#[derive(Clone, Debug)]
struct Overwritten<T> {
    slots: Vec<(u32, T)>,
    /// Positions in `slots` in slot order, for a binary search; made by the first read of an
    /// older version, not by the commit (building a hash table or sorting in every commit cost a
    /// fifth of the update, for reads that are rare).
    order: std::sync::OnceLock<Vec<u32>>,
    /// The slots held, made by the first [`Overwritten::merge`] (pinned followers only).
    held: Option<std::collections::HashSet<u32>>,
}

impl<T: Copy> Overwritten<T> {
    fn new(slots: Vec<(u32, T)>) -> Self {
        Overwritten {
            slots,
            order: std::sync::OnceLock::new(),
            held: None,
        }
    }

    /// Adds the old contents (`old(slot)`, read before the write) of the slots of `writes` this
    /// undo does not hold yet ([`MapTree::commit_pinned`]): the first overwrite of a slot since
    /// the undo's version is the one that version had.
    fn merge<W>(&mut self, writes: &[(u32, W)], old: impl Fn(u32) -> T) {
        if writes.is_empty() {
            return;
        }
        let slots = &self.slots;
        let held = self
            .held
            .get_or_insert_with(|| slots.iter().map(|(slot, _)| *slot).collect());
        for (slot, _) in writes {
            if held.insert(*slot) {
                self.slots.push((*slot, old(*slot)));
            }
        }
        // The binary-search order is rebuilt by the next read of the old version.
        self.order = std::sync::OnceLock::new();
    }

    /// The old content of `slot`, if this commit overwrote it.
    fn get(&self, slot: u32) -> Option<T> {
        let order = self.order.get_or_init(|| {
            // Positions fit in u32: a commit writes fewer than 2³¹ slots of each kind.
            let mut order: Vec<u32> = (0..self.slots.len() as u32).collect();
            order.sort_unstable_by_key(|&p| self.slots[p as usize].0);
            order
        });
        order
            .binary_search_by_key(&slot, |&p| self.slots[p as usize].0)
            .ok()
            .map(|at| self.slots[order[at] as usize].1)
    }
}

/// A batch's changes to the map, computed by [`MapTree::stage`] and written by
/// [`MapTree::commit`].
#[derive(Clone, Debug)]
pub struct Staged {
    version: u64,
    inner_len: usize,
    leaves_len: usize,
    root: Ref,
    root_hash: Hash,
    inner_writes: Vec<(u32, Inner)>,
    leaf_writes: Vec<(u32, Leaf)>,
    new_inner: Vec<Inner>,
    new_leaves: Vec<Leaf>,
    values: Vec<(Hash, MapValue)>,
    new_keys: usize,
}

impl Staged {
    /// The map's root after the batch (the `root` of the batch's map leaf).
    pub fn root(&self) -> Hash {
        self.root_hash
    }

    /// The new value of every key the batch touched, in key order: what a store that keeps the
    /// map's values writes for the batch.
    pub fn values(&self) -> &[(Hash, MapValue)] {
        &self.values
    }

    /// How many nodes the batch writes (changed and new), for metrics and benchmarks.
    pub fn nodes_written(&self) -> usize {
        self.inner_writes.len()
            + self.leaf_writes.len()
            + self.new_inner.len()
            + self.new_leaves.len()
    }
}

/// The map in memory (see the module doc).
#[derive(Clone, Debug)]
pub struct MapTree {
    th: TreeHash,
    inner: Vec<Inner>,
    leaves: Vec<Leaf>,
    root: Ref,
    root_hash: Hash,
    keys: usize,
    version: u64,
    keep: usize,
    history: VecDeque<Undo>,
}

/// Read access to one version of the tree: the current one, or an older one through the undos.
trait View {
    fn root(&self) -> Ref;
    fn inner(&self, i: usize) -> Inner;
    fn leaf(&self, i: usize) -> Leaf;
}

impl View for MapTree {
    fn root(&self) -> Ref {
        self.root
    }
    fn inner(&self, i: usize) -> Inner {
        self.inner[i]
    }
    fn leaf(&self, i: usize) -> Leaf {
        self.leaves[i]
    }
}

/// The tree at an older version: each slot from the oldest of `undos` (those after the version,
/// oldest first) that holds it, else from the tree.
struct Past<'a> {
    tree: &'a MapTree,
    undos: Vec<&'a Undo>,
    root: Ref,
}

impl View for Past<'_> {
    fn root(&self) -> Ref {
        self.root
    }
    fn inner(&self, i: usize) -> Inner {
        self.undos
            .iter()
            .find_map(|u| u.inner.get(i as u32))
            .unwrap_or(self.tree.inner[i])
    }
    fn leaf(&self, i: usize) -> Leaf {
        self.undos
            .iter()
            .find_map(|u| u.leaves.get(i as u32))
            .unwrap_or(self.tree.leaves[i])
    }
}

impl MapTree {
    /// The empty map hashed with `th`, at version 0, keeping no older versions.
    pub fn new(th: TreeHash) -> MapTree {
        MapTree {
            th,
            inner: Vec::new(),
            leaves: Vec::new(),
            root: Ref::EMPTY,
            root_hash: EMPTY,
            keys: 0,
            version: 0,
            keep: 0,
            history: VecDeque::new(),
        }
    }

    /// Keeps the versions before the last `keep` commits readable ([`MapTree::prove_at`]).
    pub fn with_history(mut self, keep: usize) -> MapTree {
        self.keep = keep;
        self
    }

    /// Builds the map of the keys' values (`items`, in any order) from scratch, at `version`.
    /// Refuses a repeated key or a value with a count of zero (such a key is not in the map).
    pub fn from_values(
        th: TreeHash,
        items: &[(Hash, MapValue)],
        version: u64,
    ) -> Result<MapTree, MapError> {
        let mut sorted = items.to_vec();
        sorted.sort_unstable_by_key(|(k, _)| *k);
        if sorted.windows(2).any(|p| p[0].0 == p[1].0) {
            return Err(MapError::CorruptNode {
                depth: 0,
                reason: "a key has two values",
            });
        }
        if sorted.iter().any(|(_, v)| v.count == 0) {
            return Err(MapError::CorruptNode {
                depth: 0,
                reason: "a value with a count of zero",
            });
        }
        let mut tree = MapTree::new(th);
        let mut stager = Stager::new(&tree);
        stager.new_inner.reserve(sorted.len() + sorted.len() / 2);
        stager.new_leaves.reserve(sorted.len());
        let (root, root_hash) = stager.build(0, &sorted, None)?;
        let (new_inner, new_leaves) = (stager.new_inner, stager.new_leaves);
        tree.inner = new_inner;
        tree.leaves = new_leaves;
        tree.root = root;
        tree.root_hash = root_hash;
        tree.keys = sorted.len();
        tree.version = version;
        Ok(tree)
    }

    /// The tree hash.
    pub fn tree_hash(&self) -> TreeHash {
        self.th
    }

    /// The current root (32 zero bytes for the empty map).
    pub fn root(&self) -> Hash {
        self.root_hash
    }

    /// The number of keys.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// The version (the log's checkpoint size) of the last commit.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The oldest version still readable.
    pub fn oldest_version(&self) -> u64 {
        self.history.front().map_or(self.version, |u| u.version)
    }

    /// The bytes the nodes take in memory (capacity included; the history's undos not).
    pub fn heap_bytes(&self) -> usize {
        self.inner.capacity() * std::mem::size_of::<Inner>()
            + self.leaves.capacity() * std::mem::size_of::<Leaf>()
    }

    /// Computes the changes a batch of additions (in log order) makes, without changing the tree:
    /// the new root, every node changed or added, the touched keys' new values. Several
    /// additions for one key extend its chain in the order given; their indexes must strictly
    /// increase ([`MapError::IndexesOutOfOrder`]). O(touched keys × depth); never a rebuild.
    pub fn stage(&self, additions: &[MapAddition]) -> Result<Staged, MapError> {
        // Group by key, keeping log order within a key (a stable sort).
        let mut sorted = additions.to_vec();
        sorted.sort_by_key(|a| a.key);
        let mut items: Vec<(Hash, &[MapAddition])> = Vec::new();
        let mut start = 0;
        for i in 1..=sorted.len() {
            if i == sorted.len() || sorted[i].key != sorted[start].key {
                let group = &sorted[start..i];
                for pair in group.windows(2) {
                    if pair[1].index <= pair[0].index {
                        return Err(MapError::IndexesOutOfOrder {
                            previous: pair[0].index,
                            index: pair[1].index,
                        });
                    }
                }
                items.push((sorted[start].key, group));
                start = i;
            }
        }
        let mut stager = Stager::new(self);
        // About the writes of a batch of random keys: ~depth internal nodes per key below the
        // levels the batch shares, one new leaf and one new internal node per new key.
        let n = items.len();
        stager.inner_writes.reserve(n * 16);
        stager.new_inner.reserve(n + n / 2);
        stager.new_leaves.reserve(n);
        stager.values.reserve(n);
        let (root, root_hash) = if items.is_empty() {
            (self.root, self.root_hash)
        } else {
            stager.stage_at(self.root, 0, &items)?
        };
        Ok(Staged {
            version: self.version,
            inner_len: self.inner.len(),
            leaves_len: self.leaves.len(),
            root,
            root_hash,
            inner_writes: stager.inner_writes,
            leaf_writes: stager.leaf_writes,
            new_inner: stager.new_inner,
            new_leaves: stager.new_leaves,
            values: stager.values,
            new_keys: stager.new_keys,
        })
    }

    /// Writes a staged batch, making the tree the map of version `to`; with a history, first
    /// records what it overwrites. Refuses changes staged on another version of the tree
    /// ([`MapError::Stale`]).
    pub fn commit(&mut self, staged: Staged, to: u64) -> Result<(), MapError> {
        if staged.version != self.version
            || staged.inner_len != self.inner.len()
            || staged.leaves_len != self.leaves.len()
        {
            return Err(MapError::Stale);
        }
        if self.keep > 0 {
            let inner = staged
                .inner_writes
                .iter()
                .map(|(i, _)| (*i, self.inner[*i as usize]))
                .collect();
            let leaves = staged
                .leaf_writes
                .iter()
                .map(|(i, _)| (*i, self.leaves[*i as usize]))
                .collect();
            self.history.push_back(Undo {
                version: self.version,
                root: self.root,
                root_hash: self.root_hash,
                inner: Overwritten::new(inner),
                leaves: Overwritten::new(leaves),
            });
            while self.history.len() > self.keep {
                self.history.pop_front();
            }
        }
        self.write(staged, to);
        Ok(())
    }

    /// Writes a staged batch's nodes, making the tree the map of version `to` (its undo, if any,
    /// already recorded).
    fn write(&mut self, staged: Staged, to: u64) {
        for (i, n) in staged.inner_writes {
            self.inner[i as usize] = n;
        }
        for (i, l) in staged.leaf_writes {
            self.leaves[i as usize] = l;
        }
        self.inner.extend(staged.new_inner);
        self.leaves.extend(staged.new_leaves);
        self.root = staged.root;
        self.root_hash = staged.root_hash;
        self.keys += staged.new_keys;
        self.version = to;
    }

    /// [`MapTree::commit`] for a follower that advances the map by many batches before the
    /// checkpoint it serves moves (a DP mirror verifying every map leaf of a long span): the map of
    /// version `pinned` — the current one at the first such commit — stays readable however many
    /// batches follow, because every commit after it adds what it overwrites to the one undo of
    /// `pinned` (the oldest content of each slot wins) instead of an undo of its own. The
    /// versions in between are not kept. That undo holds each slot of the pinned tree at most
    /// once, so it is bounded by the pinned map's size, whatever the span. Unpinning is the next
    /// [`MapTree::commit`] (or a `commit_pinned` with another `pinned`): the undo then ages out
    /// of the history like any other.
    pub fn commit_pinned(&mut self, staged: Staged, to: u64, pinned: u64) -> Result<(), MapError> {
        let merging =
            self.version != pinned && self.history.back().is_some_and(|u| u.version == pinned);
        if !merging {
            if self.version != pinned {
                return Err(MapError::NotKept {
                    version: pinned,
                    latest: self.version,
                });
            }
            return self.commit(staged, to);
        }
        if staged.version != self.version
            || staged.inner_len != self.inner.len()
            || staged.leaves_len != self.leaves.len()
        {
            return Err(MapError::Stale);
        }
        if let Some(undo) = self.history.back_mut() {
            undo.inner
                .merge(&staged.inner_writes, |i| self.inner[i as usize]);
            undo.leaves
                .merge(&staged.leaf_writes, |i| self.leaves[i as usize]);
        }
        self.write(staged, to);
        Ok(())
    }

    /// Stages and commits a batch, keeping the version; returns the new root.
    pub fn apply(&mut self, additions: &[MapAddition]) -> Result<Hash, MapError> {
        let staged = self.stage(additions)?;
        let root = staged.root();
        self.commit(staged, self.version)?;
        Ok(root)
    }

    /// The proof for `key` in the current map (SPEC §9 "Proof for a key K"), with its value if
    /// present.
    pub fn prove(&self, key: &Hash) -> KeyProof {
        prove_in(self, key)
    }

    /// The proof for `key` in the map of `version` (the current one or one kept by the history);
    /// [`MapError::NotKept`] for any other.
    pub fn prove_at(&self, key: &Hash, version: u64) -> Result<KeyProof, MapError> {
        match self.past(version)? {
            None => Ok(prove_in(self, key)),
            Some(past) => Ok(prove_in(&past, key)),
        }
    }

    /// The root of the map of `version` (see [`MapTree::prove_at`]).
    pub fn root_at(&self, version: u64) -> Result<Hash, MapError> {
        match self.past(version)? {
            None => Ok(self.root_hash),
            Some(past) => Ok(past.undos[0].root_hash),
        }
    }

    /// `None` for the current version, the view of a kept older one, or [`MapError::NotKept`].
    fn past(&self, version: u64) -> Result<Option<Past<'_>>, MapError> {
        if version == self.version {
            return Ok(None);
        }
        match self.history.iter().position(|u| u.version == version) {
            Some(k) => Ok(Some(Past {
                tree: self,
                undos: self.history.range(k..).collect(),
                root: self.history[k].root,
            })),
            None => Err(MapError::NotKept {
                version,
                latest: self.version,
            }),
        }
    }

    /// Every key's value, in key order.
    pub fn values(&self) -> Vec<(Hash, MapValue)> {
        let mut out = Vec::with_capacity(self.keys);
        let mut stack = vec![self.root];
        while let Some(r) = stack.pop() {
            match r.slot() {
                Slot::Empty => {}
                Slot::Leaf(i) => out.push((self.leaves[i].key, self.leaves[i].value)),
                Slot::Inner(i) => {
                    stack.push(self.inner[i].kids[1]);
                    stack.push(self.inner[i].kids[0]);
                }
            }
        }
        out
    }

    /// The canonical node set (see [`super::node`]) by id: for tests that compare the tree with
    /// a reference construction. Walks the whole tree.
    pub fn nodes(&self) -> std::collections::BTreeMap<NodeId, MapNode> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![(self.root, NodeId::ROOT, self.root_hash)];
        while let Some((r, id, hash)) = stack.pop() {
            match r.slot() {
                Slot::Empty => {}
                Slot::Leaf(i) => {
                    out.insert(
                        id,
                        MapNode::Leaf {
                            key: self.leaves[i].key,
                            value: self.leaves[i].value,
                        },
                    );
                }
                Slot::Inner(i) => {
                    let n = self.inner[i];
                    out.insert(id, MapNode::Internal { hash });
                    for side in [0, 1] {
                        if let Some(child) = id.child(side == 1) {
                            stack.push((n.kids[side], child, n.hashes[side]));
                        }
                    }
                }
            }
        }
        out
    }
}

/// Walks `key`'s path from the root of `view`, taking the sibling's hash at each internal node,
/// until a leaf or an empty subtree.
fn prove_in(view: &impl View, key: &Hash) -> KeyProof {
    let mut siblings = Vec::with_capacity(32);
    let mut r = view.root();
    let mut depth: u16 = 0;
    loop {
        match r.slot() {
            Slot::Empty => {
                return KeyProof {
                    value: None,
                    proof: MapProof {
                        siblings,
                        other: None,
                    },
                }
            }
            Slot::Leaf(i) => {
                let l = view.leaf(i);
                let (value, other) = if l.key == *key {
                    (Some(l.value), None)
                } else {
                    (
                        None,
                        Some(OtherLeaf {
                            key: l.key,
                            count: l.value.count,
                            chain: l.value.chain,
                        }),
                    )
                };
                return KeyProof {
                    value,
                    proof: MapProof { siblings, other },
                };
            }
            Slot::Inner(i) => {
                // The tree has no internal node at depth 256 (two distinct keys differ in a bit
                // below 256), so `depth < 256` here.
                let n = view.inner(i);
                let side = usize::from(bit(key, depth));
                siblings.push(n.hashes[1 - side]);
                r = n.kids[side];
                depth += 1;
            }
        }
    }
}

/// One batch's changes being computed over a tree (see [`MapTree::stage`]).
struct Stager<'a> {
    tree: &'a MapTree,
    inner_writes: Vec<(u32, Inner)>,
    leaf_writes: Vec<(u32, Leaf)>,
    new_inner: Vec<Inner>,
    new_leaves: Vec<Leaf>,
    values: Vec<(Hash, MapValue)>,
    new_keys: usize,
    /// The keys and values of the subtree being built at a leaf or an empty subtree (reused, so
    /// a batch allocates it once rather than once per key).
    scratch: Vec<(Hash, MapValue)>,
}

impl<'a> Stager<'a> {
    fn new(tree: &'a MapTree) -> Stager<'a> {
        Stager {
            tree,
            inner_writes: Vec::new(),
            leaf_writes: Vec::new(),
            new_inner: Vec::new(),
            new_leaves: Vec::new(),
            values: Vec::new(),
            new_keys: 0,
            scratch: Vec::new(),
        }
    }

    fn extended(&self, base: MapValue, leaves: &[MapAddition]) -> Result<MapValue, MapError> {
        let mut v = base;
        for a in leaves {
            v.extend(self.tree.th, a.index, &a.leaf_hash)?;
        }
        Ok(v)
    }

    /// The new reference and hash of the subtree at `r` (depth `depth`), under whose prefix all
    /// of `items` (non-empty, sorted, distinct keys with their additions) lie.
    fn stage_at(
        &mut self,
        r: Ref,
        depth: u16,
        items: &[(Hash, &[MapAddition])],
    ) -> Result<(Ref, Hash), MapError> {
        match r.slot() {
            // Every touched key is new here.
            Slot::Empty => {
                let mut vals = std::mem::take(&mut self.scratch);
                vals.clear();
                for (k, leaves) in items {
                    vals.push((*k, self.extended(MapValue::EMPTY, leaves)?));
                }
                self.values.extend_from_slice(&vals);
                self.new_keys += vals.len();
                let built = self.build(depth, &vals, None);
                self.scratch = vals;
                built
            }
            // One key was alone here: the subtree now holds it (extended, if touched) and the
            // others; it keeps its slot.
            Slot::Leaf(i) => {
                let old = self.tree.leaves[i];
                let mut vals = std::mem::take(&mut self.scratch);
                vals.clear();
                let mut placed = false;
                for (k, leaves) in items {
                    if !placed && old.key < *k {
                        vals.push((old.key, old.value));
                        placed = true;
                    }
                    if *k == old.key {
                        let v = self.extended(old.value, leaves)?;
                        self.values.push((*k, v));
                        vals.push((*k, v));
                        placed = true;
                    } else {
                        let v = self.extended(MapValue::EMPTY, leaves)?;
                        self.values.push((*k, v));
                        self.new_keys += 1;
                        vals.push((*k, v));
                    }
                }
                if !placed {
                    vals.push((old.key, old.value));
                }
                let built = self.build(depth, &vals, Some((old.key, i)));
                self.scratch = vals;
                built
            }
            // Two or more keys: descend where touched keys go, reuse the other side's hash.
            Slot::Inner(i) => {
                if depth >= super::KEY_BITS {
                    return Err(MapError::CorruptNode {
                        depth,
                        reason: "internal node at depth 256",
                    });
                }
                let n = self.tree.inner[i];
                let split = items.partition_point(|(k, _)| !bit(k, depth));
                let (left, right) = items.split_at(split);
                let (mut kids, mut hashes) = (n.kids, n.hashes);
                for (side, part) in [(0, left), (1, right)] {
                    if !part.is_empty() {
                        (kids[side], hashes[side]) =
                            self.stage_at(n.kids[side], depth + 1, part)?;
                    }
                }
                let hash = node_hash(self.tree.th, &hashes[0], &hashes[1]);
                // i < 2³¹ (a Ref's index).
                self.inner_writes.push((i as u32, Inner { hashes, kids }));
                Ok((r, hash))
            }
        }
    }

    /// Builds the subtree at depth `depth` over `vals` (sorted, distinct keys under one prefix)
    /// from new slots, except that the key of `reuse` keeps its leaf slot; returns its reference
    /// and hash.
    fn build(
        &mut self,
        depth: u16,
        vals: &[(Hash, MapValue)],
        reuse: Option<(Hash, usize)>,
    ) -> Result<(Ref, Hash), MapError> {
        match vals {
            [] => Ok((Ref::EMPTY, EMPTY)),
            [(key, value)] => {
                let leaf = Leaf {
                    key: *key,
                    value: *value,
                };
                let r = match reuse {
                    Some((k, i)) if k == *key => {
                        self.leaf_writes.push((i as u32, leaf));
                        Ref::leaf(i)?
                    }
                    _ => {
                        let r = Ref::leaf(self.tree.leaves.len() + self.new_leaves.len())?;
                        self.new_leaves.push(leaf);
                        r
                    }
                };
                Ok((r, leaf_hash(self.tree.th, key, value)))
            }
            _ => {
                if depth >= super::KEY_BITS {
                    return Err(MapError::CorruptNode {
                        depth,
                        reason: "two keys share all 256 bits",
                    });
                }
                let split = vals.partition_point(|(k, _)| !bit(k, depth));
                let (left, right) = vals.split_at(split);
                let (lr, lh) = self.build(depth + 1, left, reuse)?;
                let (rr, rh) = self.build(depth + 1, right, reuse)?;
                let hash = node_hash(self.tree.th, &lh, &rh);
                let r = Ref::inner(self.tree.inner.len() + self.new_inner.len())?;
                self.new_inner.push(Inner {
                    hashes: [lh, rh],
                    kids: [lr, rr],
                });
                Ok((r, hash))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(key: Hash, index: u64) -> MapAddition {
        MapAddition {
            key,
            index,
            leaf_hash: [index as u8; 32],
        }
    }

    #[test]
    fn building_from_values_equals_updating() {
        let th = TreeHash::Blake3;
        let mut m = MapTree::new(th);
        let adds: Vec<MapAddition> = (0..300u64)
            .map(|i| add(th.leaf_hash(&(i % 97).to_be_bytes()), i))
            .collect();
        for chunk in adds.chunks(37) {
            m.apply(chunk).unwrap();
        }
        let values = m.values();
        assert_eq!(values.len(), 97);
        assert_eq!(m.keys(), 97);
        assert!(values.windows(2).all(|p| p[0].0 < p[1].0));
        let mut shuffled = values.clone();
        shuffled.reverse();
        let built = MapTree::from_values(th, &shuffled, 0).unwrap();
        assert_eq!(built.root(), m.root());
        assert_eq!(built.nodes(), m.nodes());
        let mut twice = values.clone();
        twice.push(values[3]);
        assert!(MapTree::from_values(th, &twice, 0).is_err());
        let mut zero = values.clone();
        zero[5].1.count = 0;
        assert!(MapTree::from_values(th, &zero, 0).is_err());
        assert_eq!(MapTree::from_values(th, &[], 0).unwrap().root(), EMPTY);
    }

    #[test]
    fn empty_map_and_empty_batch() {
        let mut m = MapTree::new(TreeHash::Blake3);
        assert_eq!(m.root(), EMPTY);
        let staged = m.stage(&[]).unwrap();
        assert_eq!(staged.root(), EMPTY);
        assert_eq!(staged.nodes_written(), 0);
        m.commit(staged, 0).unwrap();
        assert!(m.nodes().is_empty());
    }

    #[test]
    fn one_key_is_its_leaf_at_the_root() {
        let th = TreeHash::Sha256;
        let mut m = MapTree::new(th);
        let root = m.apply(&[add([3; 32], 0), add([3; 32], 5)]).unwrap();
        let v = MapValue::of_leaves(th, [(0, &[0; 32]), (5, &[5; 32])]).unwrap();
        assert_eq!(root, leaf_hash(th, &[3; 32], &v));
        assert_eq!(m.nodes().len(), 1);
        assert_eq!(m.values(), vec![([3; 32], v)]);
    }

    #[test]
    fn out_of_order_indexes_are_refused_and_change_nothing() {
        let mut m = MapTree::new(TreeHash::Blake3);
        assert_eq!(
            m.apply(&[add([1; 32], 4), add([2; 32], 1), add([1; 32], 4)]),
            Err(MapError::IndexesOutOfOrder {
                previous: 4,
                index: 4
            })
        );
        assert_eq!(m.root(), EMPTY);
        assert_eq!(m.keys(), 0);
    }

    #[test]
    fn keys_differing_in_the_last_bit_sit_at_depth_256() {
        let th = TreeHash::Blake3;
        let mut m = MapTree::new(th);
        let a = [0u8; 32];
        let mut b = a;
        b[31] = 1;
        m.apply(&[add(a, 0)]).unwrap();
        let staged = m.stage(&[add(b, 1)]).unwrap();
        // 256 internal nodes (depths 0..=255), the new leaf, and the old leaf rewritten deeper.
        assert_eq!(staged.nodes_written(), 258);
        let root = staged.root();
        m.commit(staged, 0).unwrap();
        assert_eq!(m.nodes().len(), 258);
        let mut h = node_hash(
            th,
            &leaf_hash(th, &a, &MapValue::of_leaves(th, [(0, &[0; 32])]).unwrap()),
            &leaf_hash(th, &b, &MapValue::of_leaves(th, [(1, &[1; 32])]).unwrap()),
        );
        for _ in 0..255 {
            h = node_hash(th, &h, &EMPTY);
        }
        assert_eq!(root, h);
        assert_eq!(m.prove(&b).proof.siblings.len(), 256);
    }

    #[test]
    fn stale_changes_are_refused() {
        let mut m = MapTree::new(TreeHash::Blake3);
        let first = m.stage(&[add([1; 32], 0)]).unwrap();
        let second = m.stage(&[add([2; 32], 1)]).unwrap();
        m.commit(first, 1).unwrap();
        assert_eq!(m.commit(second, 2), Err(MapError::Stale));
    }

    /// Every kept version proves exactly what a map built for that version proves; versions
    /// before the history are refused.
    #[test]
    fn kept_versions_read_as_they_were() {
        let th = TreeHash::Sha256;
        let mut m = MapTree::new(th).with_history(4);
        let mut snapshots = vec![(0u64, m.clone())];
        let mut index = 0u64;
        let mut keys = Vec::new();
        for batch in 0..8u64 {
            let adds: Vec<MapAddition> = (0..6u64)
                .map(|i| {
                    let key = th.leaf_hash(&((batch * 5 + i * 3) % 23).to_be_bytes());
                    keys.push(key);
                    index += 1;
                    add(key, index)
                })
                .collect();
            let staged = m.stage(&adds).unwrap();
            // Staging changes nothing.
            assert_eq!(m.root(), snapshots.last().unwrap().1.root());
            let to = index + 1;
            m.commit(staged, to).unwrap();
            let mut plain = m.clone();
            plain.keep = 0;
            plain.history.clear();
            snapshots.push((to, plain));
        }
        assert_eq!(m.oldest_version(), snapshots[snapshots.len() - 5].0);
        for (version, snap) in &snapshots {
            if *version < m.oldest_version() {
                assert!(matches!(
                    m.prove_at(&keys[0], *version),
                    Err(MapError::NotKept { .. })
                ));
                continue;
            }
            assert_eq!(m.root_at(*version).unwrap(), snap.root());
            for k in keys.iter().chain([&[0x55u8; 32]]) {
                assert_eq!(&m.prove_at(k, *version).unwrap(), &snap.prove(k));
            }
        }
        assert!(m.prove_at(&keys[0], 3).is_err());
    }

    /// A pinned version stays readable, exactly as it was, across many more commits than the
    /// history keeps; the current version reads as a map built for it; and the pinned undo holds
    /// each slot once however many commits overwrite it.
    #[test]
    fn a_pinned_version_reads_as_it_was_across_a_long_span() {
        let th = TreeHash::Sha256;
        let mut m = MapTree::new(th).with_history(2);
        let mut index = 0u64;
        let mut keys = Vec::new();
        let mut batch = |m: &mut MapTree, n: u64, keys: &mut Vec<Hash>| {
            let adds: Vec<MapAddition> = (0..n)
                .map(|i| {
                    let key = th.leaf_hash(&((index * 7 + i * 13) % 41).to_be_bytes());
                    keys.push(key);
                    index += 1;
                    add(key, index)
                })
                .collect();
            (m.stage(&adds).unwrap(), index + 1)
        };
        for _ in 0..3 {
            let (staged, to) = batch(&mut m, 5, &mut keys);
            m.commit(staged, to).unwrap();
        }
        let pinned = m.version();
        let mut snapshot = m.clone();
        snapshot.keep = 0;
        snapshot.history.clear();
        for _ in 0..20 {
            let (staged, to) = batch(&mut m, 6, &mut keys);
            m.commit_pinned(staged, to, pinned).unwrap();
        }
        let undo = m.history.back().unwrap();
        assert_eq!(undo.version, pinned);
        let mut slots: Vec<u32> = undo.inner.slots.iter().map(|(s, _)| *s).collect();
        let all = slots.len();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), all, "a slot recorded twice");
        assert_eq!(m.root_at(pinned).unwrap(), snapshot.root());
        let mut rebuilt = MapTree::from_values(th, &m.values(), m.version()).unwrap();
        rebuilt.keep = 0;
        assert_eq!(m.root(), rebuilt.root());
        for k in keys.iter().chain([&[0x55u8; 32]]) {
            assert_eq!(&m.prove_at(k, pinned).unwrap(), &snapshot.prove(k));
            assert_eq!(&m.prove(k), &rebuilt.prove(k));
        }
        // Pinning a version that is neither current nor the newest kept one is refused.
        let (staged, to) = batch(&mut m, 1, &mut keys);
        assert!(matches!(
            m.commit_pinned(staged, to, 1),
            Err(MapError::NotKept { .. })
        ));
        // A plain commit ends the pin; the pinned version is still readable until it ages out.
        let (staged, to) = batch(&mut m, 1, &mut keys);
        m.commit(staged, to).unwrap();
        assert_eq!(m.root_at(pinned).unwrap(), snapshot.root());
    }
}
