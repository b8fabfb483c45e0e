//! Verifiable map benchmarks (SPEC §9, `ledger_core::map`) against penumbra's Jellyfish Merkle Tree
//! (`jmt` 0.12, SHA-256, its in-memory `MockTreeStore`), in the same run, at 1M and 10M keys:
//! batch updates per key (batches of 1,000 new keys, and of 1,000 existing keys whose chains grow
//! by one leaf), proof generation and verification (presence and absence), and proof sizes.
//!
//! ```sh
//! cargo bench -p ledger-core --bench map                    # 1M keys (5–7 min on 2 busy cores)
//! MAP_BENCH_10M=1 cargo bench -p ledger-core --bench map    # 1M, then 10M (~1 h, 8 GiB RSS)
//! MAP_BENCH_10M=only cargo bench -p ledger-core --bench map # 10M only
//! cargo bench -p ledger-core --bench map -- --test          # smoke run: 16Ki keys, each bench once
//! ```
//!
//! Each map is built once per size, outside the timed loops, in batches of 1,000 new keys through
//! `update` (the time of those batches is printed as the build's per-key cost), then benched, then
//! dropped before the next is built, so at most one map is in memory. Proof sizes (mean and max over
//! 1,000 random present and 1,000 absent keys) go to stdout. Our map is the crate's `MapTree` with
//! both tree hashes, and with SHA-256 also as the log keeps it (`with_history(16)`: each commit
//! records the slots it overwrites for lookups on older heads). The heap bytes each structure
//! holds are counted by a thread-local counter in the global allocator (below; one TLS add per
//! allocation, for every contestant alike).
//!
//! Every time reported is the bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, through
//! `iter_custom`), not wall-clock time: the development machine has 2 cores shared with other
//! builds, and CPU time leaves out the time the bench waited for a core (not the cache misses
//! other processes cause). `openssl speed`, the Ed25519 reference of docs/benchmarks.md, also
//! divides by CPU time.
//!
//! The update benches really apply each batch (`stage` + `commit`), so the maps grow while they run
//! (by the number of measured batches × 1,000 keys; printed). jmt's timed update is
//! `put_value_set` + `write_tree_update_batch` + `purge_stale_nodes` (without the purge the mock
//! keeps every old version and grows without bound; our tree overwrites in place): both end each
//! batch holding exactly the current tree. Its value is our `MapValue` (count ‖ chain, 40 bytes),
//! computed in the timed loop as our `stage` does (for an extension, after reading the key's
//! current value from the store).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use jmt::mock::MockTreeStore;
use jmt::proof::SparseMerkleProof;
use jmt::storage::TreeReader;
use jmt::{KeyHash, RootHash, Sha256Jmt, Version};
use ledger_core::map::{
    sii_key, verify_absence, verify_presence, MapAddition, MapProof, MapTree, MapValue,
};
use ledger_core::{Hash, TreeHash};

// ---------------------------------------------------------------------------------------------
// Heap accounting: bytes allocated minus bytes freed on this thread.

struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live_heap() -> isize {
    LIVE.with(|c| c.get())
}

// ---------------------------------------------------------------------------------------------
// Time: this thread's CPU time, so that other processes on the (shared, 2-core) machine inflate
// the figures less; wall-clock time where that clock is not available.

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_now() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (two 64-bit fields on 64-bit Linux) to `ts`.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn cpu_now() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// The CPU time of `iters` runs of `op` (for `Bencher::iter_custom`).
fn cpu_iters<O>(iters: u64, mut op: impl FnMut() -> O) -> Duration {
    let start = cpu_now();
    for _ in 0..iters {
        black_box(op());
    }
    cpu_now() - start
}

// ---------------------------------------------------------------------------------------------
// Sizes, keys, leaves.

/// Keys per batch, in the build and in the update benches.
const BATCH: u64 = 1_000;
/// Random keys for the proof sizes and the proof benches (each bench cycles through them).
const SAMPLE: u64 = 1_000;

fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// The sizes to run: 1M, plus 10M with `MAP_BENCH_10M=1` (only 10M with `MAP_BENCH_10M=only`).
fn sizes() -> Vec<(u64, &'static str)> {
    if smoke() {
        return vec![(1 << 14, "16Ki")];
    }
    let one = (1_000_000, "1M");
    let ten = (10_000_000, "10M");
    match std::env::var("MAP_BENCH_10M").as_deref() {
        Ok("only") => vec![ten],
        Ok("1") => vec![one, ten],
        _ => vec![one],
    }
}

/// The SII of the `i`-th key put in the map (distinct for `i` < 10⁸).
fn present_sii(i: u64) -> String {
    format!("tel:+4479{i:08}")
}

/// An SII never put in the map.
fn absent_sii(i: u64) -> String {
    format!("mailto:absent-{i}@example.com")
}

/// The `c`-th of a sequence over `0..n` that visits every value once per `n` steps in scrambled
/// order (the multiplier is prime, so coprime with the 2ᵃ5ᵇ sizes): distinct keys within a batch.
fn scrambled(c: u64, n: u64) -> u64 {
    ((u128::from(c) * 2_654_435_761) % u128::from(n)) as u64
}

/// The leaf hash standing in for the log leaf at `index`.
fn leaf_at(th: TreeHash, index: u64) -> Hash {
    th.leaf_hash(&index.to_be_bytes())
}

/// Log indexes and key counters shared by a map's build and benches.
struct Counters {
    /// Keys put in the map so far (the next new key's number).
    keys: u64,
    /// The next log index.
    index: u64,
    /// Position in the scrambled sequence of existing keys to extend.
    extend: u64,
}

impl Counters {
    fn new() -> Self {
        Counters {
            keys: 0,
            index: 0,
            extend: 0,
        }
    }

    /// The next batch of `count` new keys as (key number, index).
    fn new_keys(&mut self, count: u64) -> Vec<(u64, u64)> {
        (0..count)
            .map(|_| {
                let k = (self.keys, self.index);
                self.keys += 1;
                self.index += 1;
                k
            })
            .collect()
    }

    /// The next batch of `BATCH` distinct keys among the first `n` (all present), as (key
    /// number, index).
    fn existing_keys(&mut self, n: u64) -> Vec<(u64, u64)> {
        (0..BATCH)
            .map(|_| {
                let k = (scrambled(self.extend, n), self.index);
                self.extend += 1;
                self.index += 1;
                k
            })
            .collect()
    }
}

fn mean_max(xs: &[usize]) -> String {
    let max = xs.iter().copied().max().unwrap_or(0);
    let mean = xs.iter().sum::<usize>() as f64 / xs.len().max(1) as f64;
    format!("mean {mean:.0} B, max {max} B")
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

// ---------------------------------------------------------------------------------------------
// Our map over two stores.

/// Applies a batch as the log does (stage, then commit), returning the new root.
fn apply_batch(tree: &mut MapTree, additions: &[MapAddition]) -> Hash {
    let staged = tree.stage(additions).expect("stage");
    let root = staged.root();
    let next = tree.version() + 1;
    tree.commit(staged, next).expect("commit");
    root
}

fn additions(th: TreeHash, keys: &[(u64, u64)]) -> Vec<MapAddition> {
    keys.iter()
        .map(|&(k, index)| MapAddition {
            key: sii_key(th, &present_sii(k)),
            index,
            leaf_hash: leaf_at(th, index),
        })
        .collect()
}

/// Our proof in raw bytes: 32 per sibling, plus the other leaf's key, count and chain (72).
fn raw_size(p: &MapProof) -> usize {
    32 * p.siblings.len() + p.other.map_or(0, |_| 32 + 8 + 32)
}

/// Builds our map of the `label` size from `make`, prints its cost and proof sizes, and runs its
/// benches (verification, which does not depend on the history, not for `*_history16`).
fn bench_ours(c: &mut Criterion, label: &str, name: &str, make: impl FnOnce() -> MapTree) {
    let n = size_of(label);
    let heap0 = live_heap();
    let mut store = make();
    let th = store.tree_hash();
    let mut ctr = Counters::new();
    let mut applying = Duration::ZERO;
    let wall = Instant::now();
    let mut root = [0u8; 32];
    while ctr.keys < n {
        let adds = additions(th, &ctr.new_keys(BATCH.min(n - ctr.keys)));
        let t = cpu_now();
        root = apply_batch(&mut store, &adds);
        applying += cpu_now() - t;
    }
    let heap = live_heap() - heap0;
    println!(
        "[{label} {name}] built {n} keys in batches of {BATCH}: update+write {applying:.2?} CPU \
         ({:.2} µs/key), {:.2?} wall with key derivation; nodes {:.0} MiB, heap {:.0} MiB ({:.0} B/key)",
        applying.as_secs_f64() * 1e6 / n as f64,
        wall.elapsed(),
        mib(store.heap_bytes() as isize),
        mib(heap),
        heap as f64 / n as f64
    );

    // Proofs of random present keys and of absent keys, checked, and their sizes.
    let mut present = Vec::new();
    let mut absent = Vec::new();
    let (mut pj, mut pr, mut aj, mut ar, mut ps, mut asib) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for j in 0..SAMPLE {
        let key = sii_key(th, &present_sii(scrambled(j * 7 + 3, n)));
        let kp = store.prove(&key);
        let value = kp.value.expect("present key");
        verify_presence(th, &root, &key, &value, &kp.proof).expect("presence verifies");
        pj.push(serde_json::to_string(&kp.proof).expect("json").len());
        pr.push(raw_size(&kp.proof));
        ps.push(kp.proof.siblings.len());
        present.push((key, value, kp.proof));

        let key = sii_key(th, &absent_sii(j));
        let kp = store.prove(&key);
        assert!(kp.value.is_none());
        verify_absence(th, &root, &key, &kp.proof).expect("absence verifies");
        aj.push(serde_json::to_string(&kp.proof).expect("json").len());
        ar.push(raw_size(&kp.proof));
        asib.push(kp.proof.siblings.len());
        absent.push((key, kp.proof));
    }
    let others = absent.iter().filter(|(_, p)| p.other.is_some()).count();
    println!(
        "[{label} {name}] proof size over {SAMPLE} keys: presence JSON {}, raw {}, siblings {}; \
         absence JSON {}, raw {}, siblings {} ({others} of {SAMPLE} end in another key's leaf)",
        mean_max(&pj),
        mean_max(&pr),
        mean_max(&ps).replace(" B", ""),
        mean_max(&aj),
        mean_max(&ar),
        mean_max(&asib).replace(" B", ""),
    );

    let mut g = c.benchmark_group(format!("map_{label}/{name}"));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let mut k = 0usize;
    g.bench_function("prove_present", |b| {
        b.iter_custom(|iters| {
            cpu_iters(iters, || {
                k = (k + 1) % present.len();
                store.prove(&present[k].0)
            })
        })
    });
    g.bench_function("prove_absent", |b| {
        b.iter_custom(|iters| {
            cpu_iters(iters, || {
                k = (k + 1) % absent.len();
                store.prove(&absent[k].0)
            })
        })
    });
    if !name.ends_with("history16") {
        g.bench_function("verify_presence", |b| {
            b.iter_custom(|iters| {
                cpu_iters(iters, || {
                    k = (k + 1) % present.len();
                    let (key, value, proof) = &present[k];
                    verify_presence(th, &root, key, value, black_box(proof)).unwrap()
                })
            })
        });
        g.bench_function("verify_absence", |b| {
            b.iter_custom(|iters| {
                cpu_iters(iters, || {
                    k = (k + 1) % absent.len();
                    let (key, proof) = &absent[k];
                    verify_absence(th, &root, key, black_box(proof)).unwrap()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("map_{label}/{name}"));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH));
    g.bench_function("update_extend_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let adds = additions(th, &ctr.existing_keys(n));
                let t = cpu_now();
                black_box(apply_batch(&mut store, &adds));
                total += cpu_now() - t;
            }
            total
        })
    });
    g.bench_function("update_new_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let adds = additions(th, &ctr.new_keys(BATCH));
                let t = cpu_now();
                black_box(apply_batch(&mut store, &adds));
                total += cpu_now() - t;
            }
            total
        })
    });
    g.finish();
    println!(
        "[{label} {name}] after the update benches: {} keys ({} extended leaves)",
        ctr.keys, ctr.extend
    );
}

fn size_of(label: &str) -> u64 {
    sizes()
        .into_iter()
        .find(|(_, l)| *l == label)
        .map(|(n, _)| n)
        .expect("a configured size")
}

// ---------------------------------------------------------------------------------------------
// jmt.

fn value_bytes(v: &MapValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&v.count.to_be_bytes());
    out.extend_from_slice(&v.chain);
    out
}

fn value_of(bytes: &[u8]) -> MapValue {
    let mut count = [0u8; 8];
    count.copy_from_slice(&bytes[..8]);
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&bytes[8..40]);
    MapValue {
        count: u64::from_be_bytes(count),
        chain,
    }
}

/// The jmt keys of (key number, index) pairs: our SHA-256 SII keys (derived outside the timed
/// part, as for our map).
fn jmt_keys(keys: &[(u64, u64)]) -> Vec<(KeyHash, u64)> {
    keys.iter()
        .map(|&(k, index)| (KeyHash(sii_key(TreeHash::Sha256, &present_sii(k))), index))
        .collect()
}

/// jmt over its in-memory store, keeping only the latest version.
struct Jmt {
    store: MockTreeStore,
    /// The latest version (one per batch); `None` while empty.
    version: Option<Version>,
    /// Time spent purging stale nodes (inside the timed batches; reported separately).
    purging: Duration,
}

impl Jmt {
    /// Puts one batch as the next version (values computed here, extending the stored value of
    /// a present key) with `put_value_set` (or, with `batch_api`, `batch_put_value_sets`, which
    /// walks the tree once for the whole sorted batch), writes it and drops the previous
    /// version's stale nodes.
    fn apply(&mut self, keys: &[(KeyHash, u64)], batch_api: bool) -> RootHash {
        let th = TreeHash::Sha256;
        let next = self.version.map_or(0, |v| v + 1);
        let kvs: Vec<(KeyHash, Option<Vec<u8>>)> = keys
            .iter()
            .map(|&(key, index)| {
                let mut value = match self.version {
                    Some(v) => self
                        .store
                        .get_value_option(v, key)
                        .expect("read value")
                        .map_or(MapValue::EMPTY, |b| value_of(&b)),
                    None => MapValue::EMPTY,
                };
                value
                    .extend(th, index, &leaf_at(th, index))
                    .expect("extend");
                (key, Some(value_bytes(&value)))
            })
            .collect();
        let tree = Sha256Jmt::new(&self.store);
        let (root, batch) = if batch_api {
            let kvs = kvs
                .into_iter()
                .map(|(k, v)| (k, v.expect("a value")))
                .collect();
            let (roots, batch) = tree
                .batch_put_value_sets(vec![kvs], None, next)
                .expect("batch_put_value_sets");
            (roots[0], batch)
        } else {
            tree.put_value_set(kvs, next).expect("put_value_set")
        };
        self.store
            .write_tree_update_batch(batch)
            .expect("write batch");
        let t = cpu_now();
        self.store.purge_stale_nodes(next).expect("purge");
        self.purging += cpu_now() - t;
        self.version = Some(next);
        root
    }
}

fn bench_jmt(c: &mut Criterion, label: &str) {
    let name = "jmt_sha256";
    let n = size_of(label);
    let th = TreeHash::Sha256;
    let heap0 = live_heap();
    let mut j = Jmt {
        store: MockTreeStore::new(false),
        version: None,
        purging: Duration::ZERO,
    };
    let mut ctr = Counters::new();
    let mut applying = Duration::ZERO;
    let wall = Instant::now();
    let mut root = RootHash([0; 32]);
    while ctr.keys < n {
        let keys = jmt_keys(&ctr.new_keys(BATCH.min(n - ctr.keys)));
        let t = cpu_now();
        root = j.apply(&keys, false);
        applying += cpu_now() - t;
    }
    let heap = live_heap() - heap0;
    println!(
        "[{label} {name}] built {n} keys in batches of {BATCH}: put+write+purge {applying:.2?} CPU \
         ({:.2} µs/key, of which purge {:.2?}), {:.2?} wall with key derivation; {} nodes, heap \
         {:.0} MiB ({:.0} B/key)",
        applying.as_secs_f64() * 1e6 / n as f64,
        j.purging,
        wall.elapsed(),
        j.store.num_nodes(),
        mib(heap),
        heap as f64 / n as f64
    );
    let version = j.version.expect("built");

    let mut present = Vec::new();
    let mut absent = Vec::new();
    let (mut pb, mut pj, mut ps, mut ab, mut aj, mut asib) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    {
        let tree = Sha256Jmt::new(&j.store);
        for s in 0..SAMPLE {
            let key = KeyHash(sii_key(th, &present_sii(scrambled(s * 7 + 3, n))));
            let (value, proof) = tree.get_with_proof(key, version).expect("prove");
            let value = value.expect("present key");
            proof
                .verify_existence(root, key, &value)
                .expect("presence verifies");
            pb.push(borsh::to_vec(&proof).expect("borsh").len());
            pj.push(serde_json::to_string(&proof).expect("json").len());
            ps.push(jmt_siblings(&proof));
            present.push((key, value, proof));

            let key = KeyHash(sii_key(th, &absent_sii(s)));
            let (value, proof) = tree.get_with_proof(key, version).expect("prove");
            assert!(value.is_none());
            proof
                .verify_nonexistence(root, key)
                .expect("absence verifies");
            ab.push(borsh::to_vec(&proof).expect("borsh").len());
            aj.push(serde_json::to_string(&proof).expect("json").len());
            asib.push(jmt_siblings(&proof));
            absent.push((key, proof));
        }
    }
    println!(
        "[{label} {name}] proof size over {SAMPLE} keys: presence borsh {}, serde JSON {}, \
         siblings {}; absence borsh {}, serde JSON {}, siblings {}",
        mean_max(&pb),
        mean_max(&pj),
        mean_max(&ps).replace(" B", ""),
        mean_max(&ab),
        mean_max(&aj),
        mean_max(&asib).replace(" B", ""),
    );

    let mut g = c.benchmark_group(format!("map_{label}/{name}"));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    {
        let tree = Sha256Jmt::new(&j.store);
        let mut k = 0usize;
        g.bench_function("prove_present", |b| {
            b.iter_custom(|iters| {
                cpu_iters(iters, || {
                    k = (k + 1) % present.len();
                    tree.get_with_proof(present[k].0, version).unwrap()
                })
            })
        });
        g.bench_function("prove_absent", |b| {
            b.iter_custom(|iters| {
                cpu_iters(iters, || {
                    k = (k + 1) % absent.len();
                    tree.get_with_proof(absent[k].0, version).unwrap()
                })
            })
        });
        g.bench_function("verify_presence", |b| {
            b.iter_custom(|iters| {
                cpu_iters(iters, || {
                    k = (k + 1) % present.len();
                    let (key, value, proof) = &present[k];
                    black_box(proof)
                        .verify_existence(root, *key, value)
                        .unwrap()
                })
            })
        });
        g.bench_function("verify_absence", |b| {
            b.iter_custom(|iters| {
                cpu_iters(iters, || {
                    k = (k + 1) % absent.len();
                    let (key, proof) = &absent[k];
                    black_box(proof).verify_nonexistence(root, *key).unwrap()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("map_{label}/{name}"));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH));
    j.purging = Duration::ZERO;
    let mut timed = Duration::ZERO;
    for (suffix, batch_api) in [("", false), ("_batch_api", true)] {
        g.bench_function(format!("update_extend_1000{suffix}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let keys = jmt_keys(&ctr.existing_keys(n));
                    let t = cpu_now();
                    black_box(j.apply(&keys, batch_api));
                    total += cpu_now() - t;
                }
                timed += total;
                total
            })
        });
        g.bench_function(format!("update_new_1000{suffix}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let keys = jmt_keys(&ctr.new_keys(BATCH));
                    let t = cpu_now();
                    black_box(j.apply(&keys, batch_api));
                    total += cpu_now() - t;
                }
                timed += total;
                total
            })
        });
    }
    g.finish();
    println!(
        "[{label} {name}] after the update benches: {} keys ({} extended leaves); purge was \
         {:.1}% of the timed update batches",
        ctr.keys,
        ctr.extend,
        100.0 * j.purging.as_secs_f64() / timed.as_secs_f64().max(1e-9)
    );
}

/// The number of sibling hashes in a jmt proof (from its borsh encoding: a `Vec` length after the
/// optional leaf).
fn jmt_siblings(p: &SparseMerkleProof<sha2::Sha256>) -> usize {
    let bytes = borsh::to_vec(p).expect("borsh");
    // Option<SparseMerkleLeafNode>: 1 tag byte, then 64 bytes (key hash, value hash) if Some.
    let at = if bytes[0] == 1 { 65 } else { 1 };
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(len) as usize
}

// ---------------------------------------------------------------------------------------------

fn map_benches(c: &mut Criterion) {
    for (_, label) in sizes() {
        bench_ours(c, label, "tree_blake3", || MapTree::new(TreeHash::Blake3));
        bench_ours(c, label, "tree_sha256", || MapTree::new(TreeHash::Sha256));
        bench_ours(c, label, "tree_sha256_history16", || {
            MapTree::new(TreeHash::Sha256).with_history(16)
        });
        bench_jmt(c, label);
    }
}

criterion_group!(benches, map_benches);
criterion_main!(benches);
