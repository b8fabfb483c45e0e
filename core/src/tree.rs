//! The log's Merkle tree (RFC 9162 §2.1): stored hashes, roots, inclusion and consistency proofs.
//!
//! The layout follows Go's `golang.org/x/mod/sumdb/tlog`: every node hash the tree will ever need
//! gets one number in a flat, append-only sequence, the **stored hash index** (Crosby & Wallach,
//! "Efficient Data Structures for Tamper-Evident Logging", §3.3). When leaf `n` is appended, the log
//! appends its leaf hash and then the hash of every perfect subtree that leaf completes, so storing
//! the tree is nothing more than appending `u64 → Hash` pairs to a key-value store:
//!
//! ```text
//! leaves:        0   1       2   3           4 ...
//! stored index:  0   1  2    3   4  5  6     7 ...
//! (level, n):  (0,0)(0,1)(1,0)(0,2)(0,3)(1,1)(2,0)(0,4)
//! ```
//!
//! Everything else — the root of any earlier size, inclusion and consistency proofs — is a pure
//! function that asks a [`HashReader`] for a handful (O(log n)) of stored hashes. The same code
//! therefore serves the log (hashes in sled), tests (the in-memory [`MemoryHashStore`]) and monitors
//! (a [`crate::tile::TileHashReader`] over downloaded tiles). Nothing here ever holds or rehashes
//! all leaves.
//!
//! Proofs are encoded exactly as RFC 9162 §2.1.3.1 (inclusion: the audit path, bottom-up) and
//! §2.1.4.1 (consistency), and are checked with the verification algorithms of §2.1.3.2 and
//! §2.1.4.2. Two conventions of this project (SPEC §4, shared with the transparency-dev test
//! vectors) complete the RFC: a consistency proof from size 0 is rejected, and a "proof" between
//! equal sizes must be empty with equal roots.

use crate::hash::{Hash, TreeHash};

/// The largest tree size this module handles: 2⁶², so that every stored hash index fits in a `u64`
/// with room to spare. No real log comes near it; sizes above it (e.g. from a forged checkpoint) are
/// refused with [`TreeError::TreeTooLarge`] instead of overflowing.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// A source of stored hashes (see [`stored_hash_index`]): the log's database, an in-memory store,
/// or tiles downloaded by a monitor.
///
/// Every function of this module that needs earlier hashes makes exactly one `read_hashes` call, so
/// an implementation backed by a database can batch the lookups.
pub trait HashReader {
    /// Returns the hashes stored at `indexes`, in the same order and with the same length.
    ///
    /// A hash that is not (yet) stored is an error ([`TreeError::MissingHash`] or
    /// [`TreeError::MissingTile`]); returning fewer or more hashes than asked for is a contract
    /// violation that callers report as [`TreeError::WrongHashCount`].
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        (**self).read_hashes(indexes)
    }
}

/// Why a tree operation (storing, root, proof generation) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// An inclusion proof was asked for a leaf the tree does not contain.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexNotBelowSize {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from the empty tree was asked for; RFC 9162 §2.1.4 defines none, and
    /// verifiers reject it (SPEC §4).
    #[error("a consistency proof from tree size 0 is not defined")]
    ConsistencyFromEmptyTree,
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("old tree size {old} exceeds new tree size {new}")]
    OldSizeExceedsNew {
        /// The old (first) tree size.
        old: u64,
        /// The new (second) tree size.
        new: u64,
    },
    /// A tree size (or leaf index) beyond [`MAX_TREE_SIZE`].
    #[error("tree size {size} exceeds the supported maximum of 2^62 leaves")]
    TreeTooLarge {
        /// The offending size.
        size: u64,
    },
    /// The reader does not hold the stored hash with this index (the tree is smaller than asked).
    #[error("stored hash {index} is not available")]
    MissingHash {
        /// The stored hash index (see [`stored_hash_index`]).
        index: u64,
    },
    /// A tile reader lacks the tile (or a wide enough version of it) that holds a needed hash.
    #[error("tile {path} (or a wider version of it) is needed but was not supplied")]
    MissingTile {
        /// The C2SP tlog-tiles path of the narrowest tile that would do.
        path: String,
    },
    /// A [`HashReader`] broke its contract by returning a different number of hashes.
    #[error("hash reader returned {returned} hashes for {requested} indexes")]
    WrongHashCount {
        /// How many hashes were asked for.
        requested: usize,
        /// How many came back.
        returned: usize,
    },
    /// A tile reader could not hand out hashes it had authenticated against the tree: a tile
    /// could not be read, or did not reproduce the tree's root or its parent tile's hash.
    #[error("tile {path}: {reason}")]
    Tile {
        /// The C2SP tlog-tiles path of the tile concerned.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The storage behind a [`HashReader`] failed (I/O, corruption, ...).
    #[error("hash storage failed: {0}")]
    Storage(String),
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The claimed leaf index is not below the tree size (RFC 9162 §2.1.3.2 step 1).
    #[error("leaf index {index} is not below tree size {size}")]
    IndexNotBelowSize {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// A consistency proof from tree size 0, which proves nothing and is rejected (SPEC §4).
    #[error("a consistency proof from tree size 0 is not accepted")]
    ConsistencyFromEmptyTree,
    /// The old tree of a consistency proof is larger than the new one.
    #[error("old tree size {old} exceeds new tree size {new}")]
    OldSizeExceedsNew {
        /// The old (first) tree size.
        old: u64,
        /// The new (second) tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes (and index) it claims.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length RFC 9162 prescribes for these sizes.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The root recomputed from the leaf hash and the audit path differs from the given root
    /// (RFC 9162 §2.1.3.2 step 5).
    #[error("inclusion proof does not lead to the given root")]
    RootMismatch,
    /// The old root recomputed from a consistency proof differs from the given one
    /// (RFC 9162 §2.1.4.2 step 7).
    #[error("consistency proof does not lead to the given old root")]
    OldRootMismatch,
    /// The new root recomputed from a consistency proof differs from the given one
    /// (RFC 9162 §2.1.4.2 step 7).
    #[error("consistency proof does not lead to the given new root")]
    NewRootMismatch,
    /// Two tree heads of the same size with different roots: they cannot both be true.
    #[error("tree size {size} has two different roots")]
    EqualSizesDifferentRoots {
        /// The common size.
        size: u64,
    },
}

// ---------------------------------------------------------------------------------------------
// Stored hash index arithmetic.
// ---------------------------------------------------------------------------------------------

/// The stored hash index of the node at `level` (0 = leaves) and position `n` within that level —
/// the node covering leaves `[n·2^level, (n+1)·2^level)`.
///
/// That node is stored right after the last leaf it covers, `m = (n+1)·2^level − 1`, which itself is
/// stored at `m + ⌊m/2⌋ + ⌊m/4⌋ + … = 2m − popcount(m)`, followed by the `level` subtree hashes
/// that leaf completes. Meaningful for nodes of trees up to [`MAX_TREE_SIZE`]; larger arguments wrap
/// instead of panicking.
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    let mut m = n;
    for _ in 0..level {
        m = m.wrapping_mul(2).wrapping_add(1);
    }
    m.wrapping_mul(2)
        .wrapping_sub(u64::from(m.count_ones()))
        .wrapping_add(u64::from(level))
}

/// The inverse of [`stored_hash_index`]: the `(level, n)` of the node stored at `index`.
pub fn split_stored_hash_index(index: u64) -> (u8, u64) {
    // Leaf n is stored at 2n − popcount(n) ≤ 2n, so the leaf whose group holds `index` is at least
    // index/2, and at most log₂(index) leaves later (each leaf's group has 1 + trailing ones hashes).
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    loop {
        let group = 1 + u64::from(n.trailing_ones());
        match index_n.checked_add(group) {
            Some(next) if next <= index => {
                n += 1;
                index_n = next;
            }
            _ => break,
        }
    }
    // `index` is one of the hashes stored with leaf n: (0, n), (1, n/2), (2, n/4), ...
    let level = index - index_n; // < 64: at most n.trailing_ones()
    (level as u8, n.checked_shr(level as u32).unwrap_or(0))
}

/// The number of stored hashes of a tree of `size` leaves: the hashes up to and including the
/// last leaf's, plus the subtree hashes that leaf completes.
pub fn stored_hash_count(size: u64) -> u64 {
    match size.checked_sub(1) {
        None => 0,
        Some(last) => stored_hash_index(0, last) + 1 + u64::from(last.trailing_ones()),
    }
}

/// The hashes to append to storage when leaf number `index` (whose leaf hash is `leaf_hash`) is
/// added: its leaf hash, then the hash of each perfect subtree it completes, in stored-index order
/// starting at `stored_hash_index(0, index)`.
///
/// Reads `index.trailing_ones()` ≤ log₂(index+1) earlier hashes in one call — the left siblings of
/// the completed subtrees — so appending costs O(log n) however large the tree is.
pub fn stored_hashes(
    th: TreeHash,
    index: u64,
    leaf_hash: &Hash,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, TreeError> {
    if index >= MAX_TREE_SIZE {
        return Err(TreeError::TreeTooLarge {
            size: index.saturating_add(1),
        });
    }
    // Each trailing 1 bit of `index` completes a subtree whose left half is already stored.
    let completed = index.trailing_ones() as u8;
    let indexes: Vec<u64> = (0..completed)
        .rev()
        .map(|level| stored_hash_index(level, (index >> level) - 1))
        .collect();
    let left_siblings = read_exact(r, &indexes)?;

    let mut out = Vec::with_capacity(usize::from(completed) + 1);
    let mut h = *leaf_hash;
    out.push(h);
    // `left_siblings` is highest level first; combine from level 0 upwards.
    for left in left_siblings.iter().rev() {
        h = th.node_hash(left, &h);
        out.push(h);
    }
    Ok(out)
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of the first `size` leaves, for any size up to the stored
/// size; `th.empty_root()` for 0.
///
/// Reads popcount(size) ≤ log₂(size)+1 stored hashes in one call: the perfect subtrees that make up
/// the first `size` leaves.
pub fn tree_root(
    th: TreeHash,
    size: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Hash, TreeError> {
    if size == 0 {
        return Ok(th.empty_root());
    }
    check_size(size)?;
    let mut need = Vec::new();
    subtree_indexes(0, size, &mut need);
    let hashes = read_exact(r, &need)?;
    fold_subtree(th, &hashes).ok_or(TreeError::WrongHashCount {
        requested: need.len(),
        returned: hashes.len(),
    })
}

/// The inclusion proof (RFC 9162 §2.1.3.1 audit path `PATH(index, D[0:size])`, bottom-up) of leaf
/// `index` in the tree of `size` leaves.
///
/// Reads O(log size) stored hashes in one call.
pub fn prove_inclusion(
    th: TreeHash,
    index: u64,
    size: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(TreeError::IndexNotBelowSize { index, size });
    }
    check_size(size)?;
    // Walk from the root down to the leaf (RFC 9162 §2.1.3.1: split at the largest power of two
    // below the range size), noting the sibling range not taken at each step.
    let (mut lo, mut hi) = (0u64, size);
    let mut siblings = Vec::new();
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if index < lo + k {
            siblings.push((lo + k, hi));
            hi = lo + k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
        }
    }
    // The audit path lists siblings bottom-up.
    siblings.reverse();
    build_proof(th, &siblings, r)
}

/// The consistency proof (RFC 9162 §2.1.4.1 `PROOF(old, D[0:new])`) that the tree of `old` leaves
/// is a prefix of the tree of `new` leaves. Empty when `old == new`.
///
/// Reads O(log new) stored hashes in one call. Size 0 is refused
/// ([`TreeError::ConsistencyFromEmptyTree`]): verifiers reject such proofs.
pub fn prove_consistency(
    th: TreeHash,
    old: u64,
    new: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, TreeError> {
    if old == 0 {
        return Err(TreeError::ConsistencyFromEmptyTree);
    }
    if old > new {
        return Err(TreeError::OldSizeExceedsNew { old, new });
    }
    check_size(new)?;
    // SUBPROOF(m, D[lo:hi], b), unrolled from the root down; b is true exactly while lo == 0.
    let (mut lo, mut hi) = (0u64, new);
    let mut nodes = Vec::new();
    loop {
        if old == hi {
            // Common ground: the old tree's own root needs no hash (b = true); otherwise the
            // verifier needs MTH(D[lo:hi]).
            if lo != 0 {
                nodes.push((lo, hi));
            }
            break;
        }
        let k = largest_power_of_two_below(hi - lo);
        if old <= lo + k {
            nodes.push((lo + k, hi));
            hi = lo + k;
        } else {
            nodes.push((lo, lo + k));
            lo += k;
        }
    }
    // The proof lists the deepest node first.
    nodes.reverse();
    build_proof(th, &nodes, r)
}

/// Verifies an inclusion proof with the algorithm of RFC 9162 §2.1.3.2: that `leaf_hash` is leaf
/// `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    th: TreeHash,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // Step 1: the leaf must be in the tree.
    if index >= size {
        return Err(ProofError::IndexNotBelowSize { index, size });
    }
    let wrong_length = || ProofError::WrongProofLength {
        expected: inclusion_proof_len(index, size),
        got: proof.len(),
    };
    // Steps 2-3.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        // 4a: the path is longer than the tree is high.
        if sn == 0 {
            return Err(wrong_length());
        }
        // 4b: `p` is a left sibling (fn is a right child, or the last node of its level, which is
        // promoted until it becomes a right child).
        if fn_ & 1 == 1 || fn_ == sn {
            r = th.node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = th.node_hash(&r, p);
        }
        // 4c.
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(wrong_length());
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof with the algorithm of RFC 9162 §2.1.4.2: that the tree of `old`
/// leaves with root `old_root` is a prefix of the tree of `new` leaves with root `new_root`.
///
/// A proof from size 0 is rejected; equal sizes need an empty proof and equal roots (SPEC §4).
pub fn verify_consistency(
    th: TreeHash,
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 {
        return Err(ProofError::ConsistencyFromEmptyTree);
    }
    if old > new {
        return Err(ProofError::OldSizeExceedsNew { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::EqualSizesDifferentRoots { size: old });
        }
        return Ok(());
    }
    let wrong_length = || ProofError::WrongProofLength {
        expected: consistency_proof_len(old, new),
        got: proof.len(),
    };
    // Step 1: 0 < old < new always needs at least one hash.
    if proof.is_empty() {
        return Err(wrong_length());
    }
    // Step 2: when the old tree is a perfect subtree of the new one, its root is the first node of
    // the path.
    let seed = old.is_power_of_two().then_some(old_root);
    let mut path = seed.into_iter().chain(proof);
    // Step 3.
    let (mut fn_, mut sn) = (old - 1, new - 1);
    // Step 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let Some(first) = path.next() else {
        return Err(wrong_length());
    };
    let (mut fr, mut sr) = (*first, *first);
    // Step 6.
    for c in path {
        // 6a.
        if sn == 0 {
            return Err(wrong_length());
        }
        // 6b.
        if fn_ & 1 == 1 || fn_ == sn {
            fr = th.node_hash(c, &fr);
            sr = th.node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = th.node_hash(&sr, c);
        }
        // 6c.
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(wrong_length());
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves
/// (0 when `index >= size`): the levels below the point where the leaf's path leaves the tree's
/// right border, plus the perfect subtrees to its left along that border.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The number of hashes in the consistency proof from `old` to `new` leaves (0 unless
/// `0 < old < new`).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    if old == 0 || old >= new {
        return 0;
    }
    // After RFC 9162 §2.1.4.2 step 4 the verifier walks like an inclusion proof of the old tree's
    // last perfect subtree; the seed is sent unless the old tree is itself perfect.
    let shift = old.trailing_zeros();
    let seed = usize::from(!old.is_power_of_two());
    seed + inclusion_proof_len((old - 1) >> shift, ((new - 1) >> shift) + 1)
}

// ---------------------------------------------------------------------------------------------
// Internals shared by root and proof generation.
// ---------------------------------------------------------------------------------------------

fn check_size(size: u64) -> Result<(), TreeError> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::TreeTooLarge { size });
    }
    Ok(())
}

/// The largest power of two strictly below `n` (RFC 9162's `k`); `n` must be at least 2.
fn largest_power_of_two_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Appends the stored hash indexes of the perfect subtrees that make up leaves `[lo, hi)`, largest
/// (leftmost) first; folding their hashes with [`fold_subtree`] gives MTH(D[lo:hi]).
fn subtree_indexes(mut lo: u64, hi: u64, need: &mut Vec<u64>) {
    while lo < hi {
        // The largest power of two ≤ hi − lo. Ranges that arise from RFC 9162 splits start at a
        // multiple of it, so it is a stored node.
        let level = 63 - (hi - lo).leading_zeros();
        need.push(stored_hash_index(level as u8, lo >> level));
        lo += 1 << level;
    }
}

/// MTH of a range from the hashes of its perfect subtrees, left to right: per RFC 9162 §2.1.1 the
/// left part is the largest perfect subtree and the rest recurses, i.e. a right fold.
fn fold_subtree(th: TreeHash, hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |acc, left| th.node_hash(left, &acc)),
    )
}

/// Reads, in one call, the hashes of every range in `ranges` and returns MTH of each.
fn build_proof(
    th: TreeHash,
    ranges: &[(u64, u64)],
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, TreeError> {
    let mut need = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = need.len();
        subtree_indexes(lo, hi, &mut need);
        counts.push(need.len() - before);
    }
    let hashes = read_exact(r, &need)?;
    let mut rest = hashes.as_slice();
    let mut proof = Vec::with_capacity(ranges.len());
    for count in counts {
        let part = rest.get(..count).and_then(|part| fold_subtree(th, part));
        let Some(h) = part else {
            return Err(TreeError::WrongHashCount {
                requested: need.len(),
                returned: hashes.len(),
            });
        };
        proof.push(h);
        rest = rest.get(count..).unwrap_or_default();
    }
    Ok(proof)
}

/// Calls the reader, enforcing its "same length" contract.
fn read_exact(r: &(impl HashReader + ?Sized), indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = r.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::WrongHashCount {
            requested: indexes.len(),
            returned: hashes.len(),
        });
    }
    Ok(hashes)
}

// ---------------------------------------------------------------------------------------------
// Frontier and the in-memory store.
// ---------------------------------------------------------------------------------------------

/// The compact range `[0, size)` of a tree: the roots of its perfect subtrees, one per set bit of
/// `size`, largest first — enough to compute the root and to keep appending, in O(log n) memory.
///
/// Monitors that stream all entries use it to check that the entries hash to a checkpoint's root
/// without storing the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    th: TreeHash,
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new(th: TreeHash) -> Self {
        Frontier {
            th,
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// Rebuilds a frontier from a saved [`Frontier::size`] and [`Frontier::hashes`].
    ///
    /// Fails with [`TreeError::WrongHashCount`] unless there is exactly one hash per set bit of
    /// `size`.
    pub fn from_parts(th: TreeHash, size: u64, hashes: Vec<Hash>) -> Result<Self, TreeError> {
        check_size(size)?;
        if hashes.len() != size.count_ones() as usize {
            return Err(TreeError::WrongHashCount {
                requested: size.count_ones() as usize,
                returned: hashes.len(),
            });
        }
        Ok(Frontier { th, size, hashes })
    }

    /// The frontier of the first `size` leaves of a stored tree (popcount(size) reads in one call),
    /// e.g. to start following a log from a checkpoint using its tiles.
    pub fn from_reader(
        th: TreeHash,
        size: u64,
        r: &(impl HashReader + ?Sized),
    ) -> Result<Self, TreeError> {
        check_size(size)?;
        let mut need = Vec::new();
        subtree_indexes(0, size, &mut need);
        let hashes = read_exact(r, &need)?;
        Ok(Frontier { th, size, hashes })
    }

    /// Appends the leaf with hash `leaf_hash`.
    pub fn push(&mut self, leaf_hash: Hash) {
        self.push_collect(leaf_hash, &mut Vec::new());
    }

    /// Appends a leaf and records in `stored` the hashes [`stored_hashes`] would return for it: the
    /// leaf hash and the subtree roots it completes (the merges the frontier performs anyway), so
    /// a follower that keeps a frontier needs no reads of earlier hashes to store its tree.
    pub fn push_collect(&mut self, leaf_hash: Hash, stored: &mut Vec<Hash>) {
        let mut h = leaf_hash;
        stored.push(h);
        let mut bits = self.size;
        while bits & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            h = self.th.node_hash(&left, &h);
            stored.push(h);
            bits >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root (RFC 9162 §2.1.1): the perfect subtree roots folded from the right;
    /// `empty_root()` for the empty tree.
    pub fn root(&self) -> Hash {
        fold_subtree(self.th, &self.hashes).unwrap_or_else(|| self.th.empty_root())
    }

    /// The perfect subtree roots, largest (leftmost) first; save them with [`Frontier::size`] and
    /// restore with [`Frontier::from_parts`].
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The tree hash this frontier uses.
    pub fn tree_hash(&self) -> TreeHash {
        self.th
    }
}

/// All stored hashes of a tree, in memory, in stored-index order: the reference [`HashReader`] for
/// tests, benchmarks and tools. (The log keeps the same sequence in sled.)
#[derive(Clone, Debug)]
pub struct MemoryHashStore {
    hashes: Vec<Hash>,
    frontier: Frontier,
}

impl MemoryHashStore {
    /// An empty tree using `th`.
    pub fn new(th: TreeHash) -> Self {
        MemoryHashStore {
            hashes: Vec::new(),
            frontier: Frontier::new(th),
        }
    }

    /// Reserves room for `leaves` more leaves (about two stored hashes each).
    pub fn reserve(&mut self, leaves: usize) {
        self.hashes.reserve(leaves.saturating_mul(2));
    }

    /// Appends a leaf (hashed with `H(0x00 ‖ leaf)`) and returns its index.
    pub fn append_leaf(&mut self, leaf: &[u8]) -> u64 {
        self.append_leaf_hash(self.frontier.th.leaf_hash(leaf))
    }

    /// Appends a leaf given its leaf hash and returns its index. The appended stored hashes equal
    /// those [`stored_hashes`] computes.
    pub fn append_leaf_hash(&mut self, leaf_hash: Hash) -> u64 {
        let index = self.frontier.size();
        self.frontier.push_collect(leaf_hash, &mut self.hashes);
        index
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current root; for earlier sizes use [`tree_root`] with this store as the reader.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Every stored hash, position = stored hash index.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The tree hash this store uses.
    pub fn tree_hash(&self) -> TreeHash {
        self.frontier.th
    }
}

impl HashReader for MemoryHashStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.hashes.get(i))
                    .copied()
                    .ok_or(TreeError::MissingHash { index })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward recursive MTH over leaf hashes (RFC 9162 §2.1.1), for cross-checking.
    fn mth(th: TreeHash, leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => th.empty_root(),
            1 => leaves[0],
            n => {
                let k = largest_power_of_two_below(n as u64) as usize;
                th.node_hash(&mth(th, &leaves[..k]), &mth(th, &leaves[k..]))
            }
        }
    }

    fn leaves(th: TreeHash, n: u64) -> Vec<Hash> {
        (0..n).map(|i| th.leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn stored_hash_index_matches_the_documented_layout() {
        let want = [
            (0, 0),
            (0, 1),
            (1, 0),
            (0, 2),
            (0, 3),
            (1, 1),
            (2, 0),
            (0, 4),
        ];
        for (i, &(level, n)) in want.iter().enumerate() {
            assert_eq!(stored_hash_index(level, n), i as u64, "({level}, {n})");
            assert_eq!(split_stored_hash_index(i as u64), (level, n));
        }
    }

    #[test]
    fn split_inverts_stored_hash_index() {
        for index in 0..100_000u64 {
            let (level, n) = split_stored_hash_index(index);
            assert_eq!(stored_hash_index(level, n), index);
        }
        for index in [u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, 1 << 62] {
            let (level, n) = split_stored_hash_index(index);
            assert!(level < 64);
            assert_eq!(stored_hash_index(level, n), index, "{index}");
        }
    }

    #[test]
    fn stored_hash_count_counts_every_appended_hash() {
        let mut store = MemoryHashStore::new(TreeHash::Blake3);
        assert_eq!(stored_hash_count(0), 0);
        for i in 0..1000u64 {
            store.append_leaf(&i.to_be_bytes());
            assert_eq!(stored_hash_count(store.size()), store.hashes().len() as u64);
        }
    }

    #[test]
    fn roots_and_proofs_match_the_recursive_definition() {
        for th in [TreeHash::Blake3, TreeHash::Sha256] {
            let all = leaves(th, 40);
            let mut store = MemoryHashStore::new(th);
            for h in &all {
                let index = store.size();
                let want = stored_hashes(th, index, h, &store).unwrap();
                let start = store.hashes().len();
                store.append_leaf_hash(*h);
                assert_eq!(&store.hashes()[start..], want.as_slice());
            }
            for size in 0..=40u64 {
                let root = tree_root(th, size, &store).unwrap();
                assert_eq!(root, mth(th, &all[..size as usize]));
                for index in 0..size {
                    let p = prove_inclusion(th, index, size, &store).unwrap();
                    assert_eq!(p.len(), inclusion_proof_len(index, size));
                    verify_inclusion(th, index, size, &all[index as usize], &p, &root).unwrap();
                }
                for old in 1..=size {
                    let p = prove_consistency(th, old, size, &store).unwrap();
                    assert_eq!(p.len(), consistency_proof_len(old, size), "{old} {size}");
                    let old_root = mth(th, &all[..old as usize]);
                    verify_consistency(th, old, size, &old_root, &root, &p).unwrap();
                }
            }
        }
    }

    #[test]
    fn rfc9162_example_proof_shapes() {
        // RFC 9162 §2.1.5: with leaves d0..d6, PATH(0, D[7]) = [b, h, l] and
        // PROOF(3, D[7]) = [c, d, g, l].
        let th = TreeHash::Sha256;
        let d = leaves(th, 7);
        let mut store = MemoryHashStore::new(th);
        d.iter().for_each(|h| {
            store.append_leaf_hash(*h);
        });
        let (b, c, dd) = (d[1], d[2], d[3]);
        let g = th.node_hash(&d[0], &d[1]);
        let h = th.node_hash(&c, &dd);
        let l = th.node_hash(&th.node_hash(&d[4], &d[5]), &d[6]);
        assert_eq!(prove_inclusion(th, 0, 7, &store).unwrap(), vec![b, h, l]);
        assert_eq!(
            prove_consistency(th, 3, 7, &store).unwrap(),
            vec![c, dd, g, l]
        );
        // PROOF(4, D[7]) = [l]; PROOF(6, D[7]) = [i, j, k] with i = d4d5, j = d6, k = g h.
        assert_eq!(prove_consistency(th, 4, 7, &store).unwrap(), vec![l]);
        let i = th.node_hash(&d[4], &d[5]);
        let k = th.node_hash(&g, &h);
        assert_eq!(
            prove_consistency(th, 6, 7, &store).unwrap(),
            vec![i, d[6], k]
        );
    }

    #[test]
    fn generation_refuses_bad_arguments() {
        let mut store = MemoryHashStore::new(TreeHash::Blake3);
        for i in 0..5u64 {
            store.append_leaf(&i.to_be_bytes());
        }
        let th = TreeHash::Blake3;
        assert!(matches!(
            prove_inclusion(th, 5, 5, &store),
            Err(TreeError::IndexNotBelowSize { index: 5, size: 5 })
        ));
        assert!(matches!(
            prove_consistency(th, 0, 5, &store),
            Err(TreeError::ConsistencyFromEmptyTree)
        ));
        assert!(matches!(
            prove_consistency(th, 4, 3, &store),
            Err(TreeError::OldSizeExceedsNew { old: 4, new: 3 })
        ));
        assert!(matches!(
            tree_root(th, 6, &store),
            Err(TreeError::MissingHash { .. })
        ));
        assert!(matches!(
            tree_root(th, MAX_TREE_SIZE + 1, &store),
            Err(TreeError::TreeTooLarge { .. })
        ));
        assert!(prove_consistency(th, 5, 5, &store).unwrap().is_empty());
    }

    #[test]
    fn a_reader_returning_too_few_hashes_is_reported() {
        struct Short;
        impl HashReader for Short {
            fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
                Ok(vec![[0; 32]; indexes.len().saturating_sub(1)])
            }
        }
        assert!(matches!(
            tree_root(TreeHash::Blake3, 3, &Short),
            Err(TreeError::WrongHashCount {
                requested: 2,
                returned: 1
            })
        ));
    }

    #[test]
    fn frontier_round_trips_through_parts_and_reader() {
        let th = TreeHash::Sha256;
        let mut store = MemoryHashStore::new(th);
        let mut f = Frontier::new(th);
        assert_eq!(f.root(), th.empty_root());
        for i in 0..300u64 {
            let h = th.leaf_hash(&i.to_be_bytes());
            store.append_leaf_hash(h);
            f.push(h);
            assert_eq!(f.root(), store.root());
            let g = Frontier::from_parts(th, f.size(), f.hashes().to_vec()).unwrap();
            assert_eq!(g, f);
            assert_eq!(Frontier::from_reader(th, f.size(), &store).unwrap(), f);
        }
        assert!(Frontier::from_parts(th, 3, vec![[0; 32]]).is_err());
    }

    #[test]
    fn verifier_length_errors_name_the_expected_length() {
        let th = TreeHash::Blake3;
        let leaf = th.leaf_hash(b"x");
        assert_eq!(
            verify_inclusion(th, 0, 2, &leaf, &[], &leaf),
            Err(ProofError::WrongProofLength {
                expected: 1,
                got: 0
            })
        );
        assert_eq!(
            verify_inclusion(th, 0, 1, &leaf, &[leaf], &leaf),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            verify_consistency(th, 1, 2, &leaf, &leaf, &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                got: 0
            })
        );
    }
}
