//! Merkle tree benchmarks: leaf hashing, appending, roots and proofs at 1M and 16M leaves, and the
//! same operations with rs_merkle and ct-merkle for comparison (all SHA-256 there).
//!
//! `cargo bench -p ledger-core --bench tree` runs everything (a few minutes; the 16M-leaf stores take
//! 1 GiB each and are really built). `cargo bench -p ledger-core --bench tree -- --test` is a quick
//! smoke run: each benchmark once, with the "16M" trees shrunk to 64Ki leaves.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ledger_core::tree::{
    prove_consistency, prove_inclusion, stored_hashes, tree_root, verify_consistency,
    verify_inclusion, HashReader, MemoryHashStore, TreeError,
};
use ledger_core::{Hash, TreeHash};

const HASHES: [TreeHash; 2] = [TreeHash::Blake3, TreeHash::Sha256];
const ONE_M: u64 = 1 << 20;

fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn sixteen_m() -> u64 {
    if smoke() {
        1 << 16
    } else {
        1 << 24
    }
}

fn leaf_hash_of(th: TreeHash, i: u64) -> Hash {
    th.leaf_hash(&i.to_be_bytes())
}

fn build_store(th: TreeHash, size: u64) -> MemoryHashStore {
    let start = Instant::now();
    let mut store = MemoryHashStore::new(th);
    store.reserve(size as usize);
    for i in 0..size {
        store.append_leaf_hash(leaf_hash_of(th, i));
    }
    eprintln!(
        "built {th} store of {size} leaves ({} hashes, {} MiB) in {:.2?}",
        store.hashes().len(),
        (store.hashes().len() * 32) >> 20,
        start.elapsed()
    );
    store
}

/// The stored hashes as a plain vector behind the generic `HashReader` path — how the log appends
/// through `stored_hashes` with sled, minus the database.
struct VecReader(Vec<Hash>);

impl HashReader for VecReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(TreeError::MissingHash { index: i })
            })
            .collect()
    }
}

fn leaf_hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("leaf_hash");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let leaf = vec![0xabu8; 200];
    g.throughput(Throughput::Bytes(leaf.len() as u64));
    for th in HASHES {
        g.bench_function(BenchmarkId::new("200B", th), |b| {
            b.iter(|| th.leaf_hash(black_box(&leaf)))
        });
    }
    g.throughput(Throughput::Elements(1));
    let (l, r) = ([1u8; 32], [2u8; 32]);
    for th in HASHES {
        g.bench_function(BenchmarkId::new("node", th), |b| {
            b.iter(|| th.node_hash(black_box(&l), black_box(&r)))
        });
    }
    g.finish();
}

fn appending(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_1M");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(ONE_M));
    for th in HASHES {
        let leaves: Vec<Hash> = (0..ONE_M).map(|i| leaf_hash_of(th, i)).collect();
        // MemoryHashStore::append_leaf_hash (frontier-based, no reads).
        g.bench_function(BenchmarkId::new("memory_store", th), |b| {
            b.iter(|| {
                let mut store = MemoryHashStore::new(th);
                store.reserve(leaves.len());
                for h in &leaves {
                    store.append_leaf_hash(*h);
                }
                store.root()
            })
        });
        // The generic path: stored_hashes() reading earlier hashes through a HashReader.
        g.bench_function(BenchmarkId::new("stored_hashes_via_reader", th), |b| {
            b.iter(|| {
                let mut r = VecReader(Vec::with_capacity(2 * leaves.len()));
                for (i, h) in leaves.iter().enumerate() {
                    let new = stored_hashes(th, i as u64, h, &r).unwrap();
                    r.0.extend_from_slice(&new);
                }
                r.0.len()
            })
        });
    }
    g.finish();
}

/// Indexes spread over the tree, visited in turn so that reads are not all cache hits.
fn spread(size: u64, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % size)
        .collect()
}

fn proofs(c: &mut Criterion) {
    for size in [ONE_M, sixteen_m()] {
        let label = if size == ONE_M {
            "1M"
        } else if smoke() {
            "64Ki"
        } else {
            "16M"
        };
        for th in HASHES {
            let store = build_store(th, size);
            let root = store.root();
            let indexes = spread(size, 1024);
            let olds: Vec<u64> = indexes.iter().map(|i| i + 1).collect();
            let index = size / 3 * 2 + 5;
            let leaf = leaf_hash_of(th, index);
            let incl = prove_inclusion(th, index, size, &store).unwrap();
            let old = size / 3 + 7;
            let old_root = tree_root(th, old, &store).unwrap();
            let cons = prove_consistency(th, old, size, &store).unwrap();

            let mut g = c.benchmark_group(format!("proofs_{label}"));
            g.sample_size(30)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2));
            let mut k = 0usize;
            g.bench_function(BenchmarkId::new("tree_root_any_size", th), |b| {
                b.iter(|| {
                    k = (k + 1) % olds.len();
                    tree_root(th, olds[k], &store).unwrap()
                })
            });
            g.bench_function(BenchmarkId::new("prove_inclusion", th), |b| {
                b.iter(|| {
                    k = (k + 1) % indexes.len();
                    prove_inclusion(th, indexes[k], size, &store).unwrap()
                })
            });
            g.bench_function(BenchmarkId::new("verify_inclusion", th), |b| {
                b.iter(|| {
                    verify_inclusion(th, index, size, &leaf, black_box(&incl), &root).unwrap()
                })
            });
            g.bench_function(BenchmarkId::new("prove_consistency", th), |b| {
                b.iter(|| {
                    k = (k + 1) % olds.len();
                    prove_consistency(th, olds[k], size, &store).unwrap()
                })
            });
            g.bench_function(BenchmarkId::new("verify_consistency", th), |b| {
                b.iter(|| {
                    verify_consistency(th, old, size, &old_root, &root, black_box(&cons)).unwrap()
                })
            });
            g.finish();
        }
    }
}

/// ct-merkle 0.3 needs a `digest` 0.11 hash; sha2 0.10 implements `digest` 0.10, so wrap it.
mod ct {
    use ct_merkle::digest::consts::U32;
    use ct_merkle::digest::{FixedOutput, HashMarker, Output, OutputSizeUser, Update};

    #[derive(Clone, Default)]
    pub struct Sha256(sha2::Sha256);

    impl HashMarker for Sha256 {}

    impl OutputSizeUser for Sha256 {
        type OutputSize = U32;
    }

    impl Update for Sha256 {
        fn update(&mut self, data: &[u8]) {
            sha2::Digest::update(&mut self.0, data);
        }
    }

    impl FixedOutput for Sha256 {
        fn finalize_into(self, out: &mut Output<Self>) {
            out.copy_from_slice(&sha2::Digest::finalize(self.0));
        }
    }
}

/// rs_merkle with RFC 6962 node hashing (a lone last node is promoted unchanged, which gives the
/// RFC 6962 shape; checked for sizes 1..=2048 in tests/tree_props.rs).
#[derive(Clone)]
struct RsRfc6962Sha256;

impl rs_merkle::Hasher for RsRfc6962Sha256 {
    type Hash = Hash;
    fn hash(data: &[u8]) -> Hash {
        TreeHash::Sha256.leaf_hash(data)
    }
    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(right) => TreeHash::Sha256.node_hash(left, right),
            None => *left,
        }
    }
}

type CtTree = ct_merkle::mem_backed_tree::MemoryBackedTree<ct::Sha256, [u8; 8]>;

fn comparison(c: &mut Criterion) {
    let th = TreeHash::Sha256;
    let n = ONE_M;
    let items: Vec<[u8; 8]> = (0..n).map(|i| i.to_be_bytes()).collect();

    let mut g = c.benchmark_group("compare_1M_sha256_build");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(n));
    // Each builds the tree from the same 1M 8-byte leaves, leaf hashing included.
    g.bench_function("ledger-core", |b| {
        b.iter(|| {
            let mut store = MemoryHashStore::new(th);
            store.reserve(items.len());
            for item in &items {
                store.append_leaf(item);
            }
            store.root()
        })
    });
    g.bench_function("rs_merkle", |b| {
        b.iter(|| {
            let leaves: Vec<Hash> = items.iter().map(|i| th.leaf_hash(i)).collect();
            rs_merkle::MerkleTree::<RsRfc6962Sha256>::from_leaves(&leaves).root()
        })
    });
    g.bench_function("ct-merkle", |b| {
        b.iter(|| {
            let mut tree = CtTree::new();
            for item in &items {
                tree.push(*item);
            }
            tree.root()
        })
    });
    g.finish();

    // Built once for the root and proof comparisons.
    let mut store = MemoryHashStore::new(th);
    for item in &items {
        store.append_leaf(item);
    }
    let leaves: Vec<Hash> = items.iter().map(|i| th.leaf_hash(i)).collect();
    let rs_tree = rs_merkle::MerkleTree::<RsRfc6962Sha256>::from_leaves(&leaves);
    let mut ct_tree = CtTree::new();
    for item in &items {
        ct_tree.push(*item);
    }
    let root = store.root();
    assert_eq!(rs_tree.root(), Some(root), "rs_merkle root differs");
    assert_eq!(
        ct_tree.root().as_bytes().as_slice(),
        root.as_slice(),
        "ct-merkle root differs"
    );

    let indexes = spread(n, 1024);
    let index = n / 3 * 2 + 5;
    let ours = prove_inclusion(th, index, n, &store).unwrap();
    let rs_proof = rs_tree.proof(&[index as usize]);
    assert_eq!(rs_proof.proof_hashes(), ours.as_slice());
    let ct_proof = ct_tree.prove_inclusion(index as usize);
    assert_eq!(ct_proof.as_bytes(), ours.concat().as_slice());
    let ct_root = ct_tree.root();

    let mut g = c.benchmark_group("compare_1M_sha256");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("root/ledger-core_tree_root", |b| {
        b.iter(|| tree_root(th, black_box(n), &store).unwrap())
    });
    g.bench_function("root/rs_merkle", |b| b.iter(|| black_box(&rs_tree).root()));
    g.bench_function("root/ct-merkle", |b| b.iter(|| black_box(&ct_tree).root()));
    let mut k = 0usize;
    g.bench_function("prove_inclusion/ledger-core", |b| {
        b.iter(|| {
            k = (k + 1) % indexes.len();
            prove_inclusion(th, indexes[k], n, &store).unwrap()
        })
    });
    g.bench_function("prove_inclusion/rs_merkle", |b| {
        b.iter(|| {
            k = (k + 1) % indexes.len();
            rs_tree.proof(&[indexes[k] as usize])
        })
    });
    g.bench_function("prove_inclusion/ct-merkle", |b| {
        b.iter(|| {
            k = (k + 1) % indexes.len();
            ct_tree.prove_inclusion(indexes[k] as usize)
        })
    });
    let leaf = leaves[index as usize];
    let item = items[index as usize];
    g.bench_function("verify_inclusion/ledger-core", |b| {
        b.iter(|| verify_inclusion(th, index, n, &leaf, black_box(&ours), &root).unwrap())
    });
    g.bench_function("verify_inclusion/rs_merkle", |b| {
        b.iter(|| {
            assert!(black_box(&rs_proof).verify(root, &[index as usize], &[leaf], n as usize))
        })
    });
    g.bench_function("verify_inclusion/ct-merkle", |b| {
        b.iter(|| {
            ct_root
                .verify_inclusion(&item, index, black_box(&ct_proof))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, leaf_hashing, appending, proofs, comparison);
criterion_main!(benches);
