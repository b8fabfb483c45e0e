//! Property tests for the Merkle tree and tiles: generated proofs verify and every mutation of them
//! fails; roots agree with rs_merkle (an independent implementation) and with the frontier; storing
//! reads O(log n) hashes; tiles reproduce roots and proofs and their paths round-trip.

use std::cell::Cell;
use std::sync::OnceLock;

use ledger_core::tile::{
    decode_entry_bundle, encode_entry_bundle, read_tile_data, tiles_for_size, AuthTileHashReader,
    Tile, TileHashReader, DATA_LEVEL, MAX_TILE_LEVEL,
};
use ledger_core::tree::{
    consistency_proof_len, inclusion_proof_len, prove_consistency, prove_inclusion,
    stored_hash_count, stored_hashes, tree_root, verify_consistency, verify_inclusion, Frontier,
    HashReader, MemoryHashStore, TreeError,
};
use ledger_core::{Hash, TreeHash};
use proptest::prelude::*;

const HASHES: [TreeHash; 2] = [TreeHash::Blake3, TreeHash::Sha256];

fn leaf_hashes(th: TreeHash, seed: u64, n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| th.leaf_hash(format!("leaf {seed}/{i}").as_bytes()))
        .collect()
}

fn store_of(th: TreeHash, leaves: &[Hash]) -> MemoryHashStore {
    let mut store = MemoryHashStore::new(th);
    store.reserve(leaves.len());
    for h in leaves {
        store.append_leaf_hash(*h);
    }
    store
}

fn tree_hash() -> impl Strategy<Value = TreeHash> {
    prop_oneof![Just(TreeHash::Blake3), Just(TreeHash::Sha256)]
}

/// Every single-bit flip of `h`.
fn bit_flips(h: &Hash) -> impl Iterator<Item = Hash> + '_ {
    (0..256).map(move |bit| {
        let mut f = *h;
        f[bit / 8] ^= 1 << (bit % 8);
        f
    })
}

/// The sibling sides along RFC 9162 §2.1.3.1 `PATH(m, D[0:n])`, bottom-up (true = sibling on the
/// right). Written from the RFC's recursive definition, independently of the verifier's bit
/// arithmetic: two (index, size) pairs with the same shape are verified by the very same hashing.
fn path_shape(m: u64, n: u64) -> Vec<bool> {
    if n <= 1 {
        return Vec::new();
    }
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    let (mut shape, side) = if m < k {
        (path_shape(m, k), true)
    } else {
        (path_shape(m - k, n - k), false)
    };
    shape.push(side);
    shape
}

/// Mutations of a proof's length: truncations and extensions.
fn length_mutations(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    if !proof.is_empty() {
        out.push(proof[1..].to_vec());
        out.push(proof[..proof.len() - 1].to_vec());
        out.push(Vec::new());
    }
    let filler = [0x5a; 32];
    let mut longer = proof.to_vec();
    longer.push(filler);
    out.push(longer);
    let mut longer = vec![filler];
    longer.extend_from_slice(proof);
    out.push(longer);
    if let Some(last) = proof.last() {
        let mut dup = proof.to_vec();
        dup.push(*last);
        out.push(dup);
        let mut mid = proof.to_vec();
        mid.insert(proof.len() / 2, filler);
        out.push(mid);
    }
    out
}

/// Checks an inclusion proof from the generator verifies, and that every mutation fails (every
/// single-bit flip of the proof, root and leaf when `flips`).
fn check_inclusion(
    th: TreeHash,
    store: &MemoryHashStore,
    leaves: &[Hash],
    index: u64,
    size: u64,
    flips: bool,
) {
    let root = tree_root(th, size, store).unwrap();
    let leaf = leaves[index as usize];
    let proof = prove_inclusion(th, index, size, store).unwrap();
    assert_eq!(proof.len(), inclusion_proof_len(index, size));
    verify_inclusion(th, index, size, &leaf, &proof, &root).unwrap();

    for (i, h) in proof.iter().enumerate().filter(|_| flips) {
        for flipped in bit_flips(h) {
            let mut p = proof.clone();
            p[i] = flipped;
            assert!(verify_inclusion(th, index, size, &leaf, &p, &root).is_err());
        }
    }
    for bad_root in bit_flips(&root).filter(|_| flips) {
        assert!(verify_inclusion(th, index, size, &leaf, &proof, &bad_root).is_err());
    }
    for bad_leaf in bit_flips(&leaf).filter(|_| flips) {
        assert!(verify_inclusion(th, index, size, &bad_leaf, &proof, &root).is_err());
    }
    for p in length_mutations(&proof) {
        assert!(verify_inclusion(th, index, size, &leaf, &p, &root).is_err());
    }
    // Any other index of the same tree: a different path, so a different computation.
    for other in [
        index.wrapping_sub(1),
        index + 1,
        size - 1 - index,
        index ^ 1,
        size,
    ] {
        if other != index {
            assert!(
                verify_inclusion(th, other, size, &leaf, &proof, &root).is_err(),
                "index {index} proof accepted for index {other} of {size}"
            );
        }
    }
    // Any other size, with the root of that size: always rejected.
    for other in [size - 1, size + 1, size * 2, size / 2] {
        if other == size || other == 0 || other > store.size() {
            continue;
        }
        let other_root = tree_root(th, other, store).unwrap();
        assert!(verify_inclusion(th, index, other, &leaf, &proof, &other_root).is_err());
        // With the original root, the RFC algorithm cannot tell sizes apart whose audit paths have
        // the same shape (e.g. leaf 0 of sizes 5 and 6): then it computes the very same root, which
        // does commit to the leaf. Exactly those are accepted.
        let accepted = verify_inclusion(th, index, other, &leaf, &proof, &root).is_ok();
        assert_eq!(
            accepted,
            index < other && path_shape(index, other) == path_shape(index, size),
            "index {index}, size {size} proof checked as size {other}"
        );
    }
}

/// Checks a consistency proof from the generator verifies, and that every mutation fails (every
/// single-bit flip of the proof and both roots when `flips`).
fn check_consistency(th: TreeHash, store: &MemoryHashStore, old: u64, new: u64, flips: bool) {
    let old_root = tree_root(th, old, store).unwrap();
    let new_root = tree_root(th, new, store).unwrap();
    let proof = prove_consistency(th, old, new, store).unwrap();
    assert_eq!(proof.len(), consistency_proof_len(old, new));
    verify_consistency(th, old, new, &old_root, &new_root, &proof).unwrap();

    for (i, h) in proof.iter().enumerate().filter(|_| flips) {
        for flipped in bit_flips(h) {
            let mut p = proof.clone();
            p[i] = flipped;
            assert!(verify_consistency(th, old, new, &old_root, &new_root, &p).is_err());
        }
    }
    for bad in bit_flips(&old_root).filter(|_| flips) {
        assert!(verify_consistency(th, old, new, &bad, &new_root, &proof).is_err());
    }
    for bad in bit_flips(&new_root).filter(|_| flips) {
        assert!(verify_consistency(th, old, new, &old_root, &bad, &proof).is_err());
    }
    for p in length_mutations(&proof) {
        assert!(verify_consistency(th, old, new, &old_root, &new_root, &p).is_err());
    }
    // Other sizes, with the roots of those sizes: always rejected.
    for (o, n) in [
        (old - 1, new),
        (old + 1, new),
        (old, new - 1),
        (old, new + 1),
        (old + 1, new + 1),
    ] {
        // (An empty proof between equal sizes is valid for any size: nothing to mutate there.)
        let trivially_valid = o == n && proof.is_empty();
        if (o, n) == (old, new) || o == 0 || o > n || n > store.size() || trivially_valid {
            continue;
        }
        let (ro, rn) = (
            tree_root(th, o, store).unwrap(),
            tree_root(th, n, store).unwrap(),
        );
        assert!(
            verify_consistency(th, o, n, &ro, &rn, &proof).is_err(),
            "{old}->{new} proof accepted as {o}->{n}"
        );
    }
    // Swapped roots fail too (unless equal sizes, where roots are compared directly).
    if old != new {
        assert!(verify_consistency(th, old, new, &new_root, &old_root, &proof).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn generated_proofs_verify_and_every_mutation_fails(
        th in tree_hash(),
        seed in any::<u64>(),
        size in 1u64..=2000,
        picks in proptest::collection::vec(any::<u64>(), 3),
    ) {
        // One more leaf than the tree, so that "size + 1" mutations have a root to use.
        let leaves = leaf_hashes(th, seed, size + 1);
        let store = store_of(th, &leaves);
        let index = picks[0] % size;
        check_inclusion(th, &store, &leaves, index, size, true);
        check_inclusion(th, &store, &leaves, size - 1, size, true);
        let old = 1 + picks[1] % size;
        check_consistency(th, &store, old, size, true);
        let old = 1 + picks[2] % size;
        check_consistency(th, &store, old, size, true);
    }

    #[test]
    fn our_roots_and_proofs_agree_with_rs_merkle(
        th in tree_hash(),
        seed in any::<u64>(),
        size in 1u64..=2000,
        pick in any::<u64>(),
    ) {
        let leaves = leaf_hashes(th, seed, size);
        let store = store_of(th, &leaves);
        let index = pick % size;
        let root = store.root();
        let ours = prove_inclusion(th, index, size, &store).unwrap();
        match th {
            TreeHash::Sha256 => rs::check::<rs::Rfc6962Sha256>(&leaves, index, root, &ours),
            _ => rs::check::<rs::Rfc6962Blake3>(&leaves, index, root, &ours),
        }
    }

    /// Go's rule for tile readers: a hash handed out by the authenticating reader is the tree's,
    /// whatever one byte of one tile the source forged — the read fails instead (and nothing
    /// forged is saved).
    #[test]
    fn authenticated_tiles_never_yield_a_wrong_hash(
        th in tree_hash(),
        size in 1u64..=70_000,
        picks in proptest::collection::vec(any::<u64>(), 4),
    ) {
        let store = big_store(th);
        let tiles = tiles_for_size(size);
        let victim = tiles[(picks[0] % tiles.len() as u64) as usize];
        let forged = tiles.iter().map(|t| {
            let mut data = read_tile_data(t, store).unwrap();
            if *t == victim {
                let at = (picks[1] % data.len() as u64) as usize;
                data[at] ^= 1 << (picks[1] % 8);
            }
            (*t, data)
        });
        let source = TileHashReader::from_tiles(th, forged).unwrap();
        let root = tree_root(th, size, store).unwrap();
        let reader = AuthTileHashReader::new(th, size, root, &source);
        let index = picks[2] % size;
        match prove_inclusion(th, index, size, &reader) {
            Ok(p) => prop_assert_eq!(p, prove_inclusion(th, index, size, store).unwrap()),
            Err(e) => prop_assert!(matches!(e, TreeError::Tile { .. }), "{:?}", e),
        }
        let some: Vec<u64> = (0..8).map(|k| (picks[3].wrapping_add(k * 977)) % stored_hash_count(size)).collect();
        if let Ok(got) = reader.read_hashes(&some) {
            prop_assert_eq!(got, store.read_hashes(&some).unwrap());
        }
    }

    #[test]
    fn tiles_reproduce_roots_and_proofs(
        th in tree_hash(),
        size in 1u64..=70_000,
        picks in proptest::collection::vec(any::<u64>(), 2),
    ) {
        let store = big_store(th);
        // Exactly the tiles a log of this size serves, full and partial, read from storage.
        let reader = TileHashReader::from_tiles(
            th,
            tiles_for_size(size).into_iter().map(|t| (t, read_tile_data(&t, store).unwrap())),
        ).unwrap();
        prop_assert_eq!(tree_root(th, size, &reader).unwrap(), tree_root(th, size, store).unwrap());
        let index = picks[0] % size;
        prop_assert_eq!(
            prove_inclusion(th, index, size, &reader).unwrap(),
            prove_inclusion(th, index, size, store).unwrap()
        );
        let old = 1 + picks[1] % size;
        prop_assert_eq!(
            prove_consistency(th, old, size, &reader).unwrap(),
            prove_consistency(th, old, size, store).unwrap()
        );
        // One leaf further is not covered by these tiles.
        let beyond = tree_root(th, size + 1, &reader);
        prop_assert!(matches!(beyond, Err(TreeError::MissingTile { .. })), "{:?}", beyond);
    }

    #[test]
    fn tile_paths_round_trip(
        level in prop_oneof![0..=MAX_TILE_LEVEL, Just(DATA_LEVEL)],
        index in prop_oneof![any::<u64>(), 0u64..2000],
        width in 1u16..=256,
    ) {
        let tile = Tile::new(level, index, width).unwrap();
        prop_assert_eq!(Tile::parse_path(&tile.path()).unwrap(), tile);
    }

    #[test]
    fn only_canonical_tile_paths_parse(s in "tile/(entries|[0-9x]{1,3})(/[x0-9]{1,4}){1,4}(\\.p/[0-9]{1,4})?") {
        // Anything the parser accepts is exactly the canonical spelling of what it parsed.
        if let Ok(tile) = Tile::parse_path(&s) {
            prop_assert_eq!(tile.path(), s);
        }
    }

    #[test]
    fn entry_bundles_round_trip(entries in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 1..=256,
    )) {
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let bundle = encode_entry_bundle(&refs);
        prop_assert_eq!(decode_entry_bundle(&bundle).unwrap(), entries);
    }

    #[test]
    fn decoded_bundles_reencode_to_the_same_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(entries) = decode_entry_bundle(&data) {
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(encode_entry_bundle(&refs), data);
        }
    }
}

/// Every proof of every small tree, exhaustively (all index/size and old/new pairs up to 64 leaves),
/// with every bit flip up to 16 leaves and the other mutations throughout.
#[test]
fn every_proof_of_small_trees_verifies() {
    for th in HASHES {
        let leaves = leaf_hashes(th, 7, 65);
        let store = store_of(th, &leaves);
        for size in 1..=64u64 {
            let flips = size <= 16;
            for index in 0..size {
                check_inclusion(th, &store, &leaves, index, size, flips);
            }
            for old in 1..=size {
                check_consistency(th, &store, old, size, flips);
            }
        }
    }
}

/// rs_merkle builds its tree bottom-up, promoting an odd last node unchanged; RFC 6962 splits at the
/// largest power of two below n. The shapes coincide for every size checked (1..=2048): checked here
/// so that relying on rs_merkle as a reference is justified.
#[test]
fn rs_merkle_tree_shape_equals_rfc6962_for_every_size() {
    for th in HASHES {
        let leaves = leaf_hashes(th, 1, 2048);
        let store = store_of(th, &leaves);
        let mut mismatches = Vec::new();
        for size in 1..=2048u64 {
            let ours = tree_root(th, size, &store).unwrap();
            let theirs = match th {
                TreeHash::Sha256 => rs::root::<rs::Rfc6962Sha256>(&leaves[..size as usize]),
                _ => rs::root::<rs::Rfc6962Blake3>(&leaves[..size as usize]),
            };
            if ours != theirs {
                mismatches.push(size);
            }
        }
        assert!(
            mismatches.is_empty(),
            "{th}: rs_merkle differs at sizes {mismatches:?}"
        );
    }
}

#[test]
fn frontier_root_equals_tree_root_for_every_size() {
    for th in HASHES {
        let leaves = leaf_hashes(th, 3, 2000);
        let store = store_of(th, &leaves);
        let mut frontier = Frontier::new(th);
        assert_eq!(frontier.root(), tree_root(th, 0, &store).unwrap());
        for (i, h) in leaves.iter().enumerate() {
            frontier.push(*h);
            let size = i as u64 + 1;
            assert_eq!(frontier.size(), size);
            assert_eq!(
                frontier.root(),
                tree_root(th, size, &store).unwrap(),
                "{th} size {size}"
            );
            assert!(frontier.hashes().len() <= 64 - size.leading_zeros() as usize);
        }
    }
}

/// A reader that counts what it is asked for.
struct Counting<'a> {
    inner: &'a MemoryHashStore,
    calls: Cell<usize>,
    hashes: Cell<usize>,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a MemoryHashStore) -> Self {
        Counting {
            inner,
            calls: Cell::new(0),
            hashes: Cell::new(0),
        }
    }

    /// (calls, hashes) since the last take.
    fn take(&self) -> (usize, usize) {
        (self.calls.replace(0), self.hashes.replace(0))
    }
}

impl HashReader for Counting<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.calls.set(self.calls.get() + 1);
        self.hashes.set(self.hashes.get() + indexes.len());
        self.inner.read_hashes(indexes)
    }
}

fn log2_floor(n: u64) -> usize {
    63 - n.leading_zeros() as usize
}

#[test]
fn storing_a_leaf_reads_at_most_log2_n_hashes() {
    for th in HASHES {
        let mut store = MemoryHashStore::new(th);
        for i in 0..5000u64 {
            let leaf = th.leaf_hash(&i.to_be_bytes());
            let want = {
                let counting = Counting::new(&store);
                let want = stored_hashes(th, i, &leaf, &counting).unwrap();
                let (calls, read) = counting.take();
                assert_eq!(read, i.trailing_ones() as usize, "leaf {i}");
                assert!(read <= log2_floor(i + 1), "leaf {i} read {read}");
                assert!(calls <= 1, "leaf {i}: {calls} calls");
                want
            };
            let start = store.hashes().len();
            store.append_leaf_hash(leaf);
            assert_eq!(&store.hashes()[start..], want.as_slice(), "leaf {i}");
        }
    }
}

#[test]
fn roots_and_proofs_read_logarithmically_many_hashes() {
    let th = TreeHash::Blake3;
    let leaves = leaf_hashes(th, 9, 5000);
    let store = store_of(th, &leaves);
    let counting = Counting::new(&store);
    for size in 1..=5000u64 {
        let bound = 2 * (log2_floor(size) + 1);
        tree_root(th, size, &counting).unwrap();
        assert_eq!(
            counting.take(),
            (1, size.count_ones() as usize),
            "root {size}"
        );
        for index in [0, size / 3, size / 2, size - 1] {
            prove_inclusion(th, index, size, &counting).unwrap();
            let (calls, read) = counting.take();
            assert!(
                calls <= 1 && read <= bound,
                "inclusion {index}/{size}: {read}"
            );
        }
        for old in [1, size / 3, size / 2, size - 1, size] {
            if old == 0 {
                continue;
            }
            prove_consistency(th, old, size, &counting).unwrap();
            let (calls, read) = counting.take();
            assert!(
                calls <= 1 && read <= bound,
                "consistency {old}->{size}: {read}"
            );
        }
    }
}

#[test]
fn malformed_tile_paths_are_rejected() {
    for bad in [
        "",
        "tile",
        "tile/",
        "tile/0",
        "tile/0/",
        "/tile/0/000",
        "tile/0/000/",
        "Tile/0/000",
        "tile/0/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/00a",
        "tile/0/ 000",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/255/000",
        "tile/-1/000",
        "tile/+1/000",
        "tile/x/000",
        "tile/data/000",
        "tile/entry/000",
        "tile/0/x000/001",
        "tile/0/x000/x001/002",
        "tile/0/x001",
        "tile/0/001/002",
        "tile/0/x1/000",
        "tile/0/xx01/000",
        "tile/0/x001/x002",
        "tile/0/000.p/0",
        "tile/0/000.p/00",
        "tile/0/000.p/01",
        "tile/0/000.p/256",
        "tile/0/000.p/300",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.P/1",
        "tile/0/000.p/1/",
        "tile/0/000.p/1/2",
        "tile/0/000.p/+1",
        "tile/0/x001.p/1/000",
        "tile/entries/000.p/256",
        "tile/entries/0000",
        "tile/entries/x000/000",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "tile/0/x999/x999/x999/x999/x999/x999/999",
    ] {
        assert!(Tile::parse_path(bad).is_err(), "accepted {bad:?}");
    }
    for good in [
        "tile/0/000",
        "tile/63/999.p/255",
        "tile/entries/x001/x234/067.p/8",
        "tile/0/x018/x446/x744/x073/x709/x551/615",
        "tile/2/x001/000.p/1",
    ] {
        assert_eq!(Tile::parse_path(good).unwrap().path(), good);
    }
}

/// A 70,000-leaf store per hash (three tile levels, partial tiles on each), built once.
fn big_store(th: TreeHash) -> &'static MemoryHashStore {
    static BLAKE3: OnceLock<MemoryHashStore> = OnceLock::new();
    static SHA256: OnceLock<MemoryHashStore> = OnceLock::new();
    let cell = match th {
        TreeHash::Sha256 => &SHA256,
        _ => &BLAKE3,
    };
    cell.get_or_init(|| store_of(th, &leaf_hashes(th, 42, 70_000)))
}

/// rs_merkle as an independent reference: its `Hasher` with RFC 6962 node hashing.
mod rs {
    use ledger_core::{Hash, TreeHash};
    use rs_merkle::{Hasher, MerkleProof, MerkleTree};

    macro_rules! rfc6962_hasher {
        ($name:ident, $th:expr) => {
            /// RFC 6962 interior nodes `H(0x01 ‖ l ‖ r)`; rs_merkle promotes a lone last node
            /// unchanged (`right == None`), which is what RFC 6962's split produces too.
            #[derive(Clone)]
            pub struct $name;
            impl Hasher for $name {
                type Hash = Hash;
                fn hash(data: &[u8]) -> Hash {
                    $th.leaf_hash(data)
                }
                fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
                    match right {
                        Some(right) => $th.node_hash(left, right),
                        None => *left,
                    }
                }
            }
        };
    }
    rfc6962_hasher!(Rfc6962Sha256, TreeHash::Sha256);
    rfc6962_hasher!(Rfc6962Blake3, TreeHash::Blake3);

    pub fn root<H: Hasher<Hash = Hash>>(leaves: &[Hash]) -> Hash {
        MerkleTree::<H>::from_leaves(leaves).root().unwrap()
    }

    /// rs_merkle's root equals ours, its verifier accepts our proof, and its own proof is ours.
    pub fn check<H: Hasher<Hash = Hash>>(leaves: &[Hash], index: u64, root: Hash, ours: &[Hash]) {
        let tree = MerkleTree::<H>::from_leaves(leaves);
        assert_eq!(
            tree.root().unwrap(),
            root,
            "rs_merkle root, size {}",
            leaves.len()
        );
        let i = index as usize;
        let proof = MerkleProof::<H>::new(ours.to_vec());
        assert!(
            proof.verify(root, &[i], &[leaves[i]], leaves.len()),
            "rs_merkle rejects our proof of {i} in {}",
            leaves.len()
        );
        assert_eq!(tree.proof(&[i]).proof_hashes(), ours);
        // And it rejects a tampered one.
        let mut bad = ours.to_vec();
        if let Some(first) = bad.first_mut() {
            first[0] ^= 1;
            assert!(!MerkleProof::<H>::new(bad).verify(root, &[i], &[leaves[i]], leaves.len()));
        }
    }
}
