//! Receipts, tiles and proofs against the real `log-server` (issue 3 "Tests", SPEC §4–§5), for both
//! tree hashes: every receipt verifies; the root recomputed from `/tile/entries/…` and `/tile/<L>/…`
//! equals `/checkpoint`'s; every checkpoint seen during the run is consistent with every other;
//! inclusion proofs by index and by leaf hash verify; resubmission is idempotent; `/v1/entries`
//! pages; full tiles are immutable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ledger_core::api::Receipt;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Leaf, Role};
use ledger_core::testkit::{claim, test_key};
use ledger_core::tile::Tile;
use ledger_core::tree::{verify_inclusion, MemoryHashStore};
use ledger_core::TreeHash;
use ledger_e2e::{b64url, b64url_nopad, mail_sii, now, Options, Rng, TestLog};

/// More than one full tile (256) so that full tiles, partial tiles and a level-1 tile all exist.
const CLAIMS: usize = 300;
const THREADS: usize = 16;

#[test]
fn receipts_tiles_and_proofs_blake3() {
    run(TreeHash::Blake3);
}

#[test]
fn receipts_tiles_and_proofs_sha256() {
    run(TreeHash::Sha256);
}

fn run(th: TreeHash) {
    let log = TestLog::start(Options::new(th));
    let mut rng = Rng::from_env(&format!("receipts {}", th.name()));

    // /v1/info describes this log, and its vkey is the one in <data>/log.key.
    let info = log.info();
    assert_eq!(info.origin, log.options().origin);
    assert_eq!(
        info.vkey,
        log.vkey().to_string(),
        "/v1/info vkey is log.key's verifier"
    );
    assert_eq!(info.hash, th);
    assert_eq!(info.size, 0);
    assert!(!info.policy.require_attestation);
    assert_eq!(info.policy.max_skew_s, 600);

    let mut seen: Vec<SignedCheckpoint> = Vec::new();
    let empty = log.checkpoint();
    assert_eq!(empty.checkpoint.size, 0);
    assert_eq!(empty.checkpoint.root, th.empty_root(), "empty tree root");
    seen.push(empty);

    // Enroll three MSPs; the enroll leaves are the first entries.
    let msps: Vec<_> = ["msp-a.example", "msp-b.example", "msp-c.example"]
        .iter()
        .map(|n| test_key(n))
        .collect();
    for m in &msps {
        log.enroll(Role::Msp, m);
    }
    let after_enroll = log.checkpoint();
    assert_eq!(
        after_enroll.checkpoint.size, 6,
        "three enroll leaves, each closed by its batch's map leaf"
    );
    seen.push(after_enroll);

    // Submit CLAIMS claims from THREADS threads (so that batches of several form), checking each
    // receipt as it comes and collecting its checkpoint.
    let t = now();
    let leaves: Vec<Leaf> = (0..CLAIMS)
        .map(|i| {
            let m = &msps[i % msps.len()];
            let ssi = format!("mimi://{}/u/{i}", m.name());
            claim(m, &mail_sii("r", i as u64), &ssi, t, &["Personal"], None)
        })
        .collect();
    let receipts: Arc<Mutex<Vec<(usize, Receipt)>>> = Arc::new(Mutex::new(Vec::new()));
    let submit_started = std::time::Instant::now();
    std::thread::scope(|s| {
        for w in 0..THREADS {
            let (log, leaves, receipts) = (&log, &leaves, receipts.clone());
            s.spawn(move || {
                for i in (w..CLAIMS).step_by(THREADS) {
                    let r = log.submit_ok(&leaves[i]);
                    receipts.lock().unwrap().push((i, r));
                }
            });
        }
        // Meanwhile, watch /checkpoint.
        for _ in 0..20 {
            let cp = log.checkpoint();
            seen.push(cp);
            std::thread::sleep(std::time::Duration::from_millis(rng.range(1, 20)));
        }
    });
    let receipts = Arc::try_unwrap(receipts).unwrap().into_inner().unwrap();
    eprintln!(
        "{}: {CLAIMS} claims from {THREADS} threads in {:?}",
        th.name(),
        submit_started.elapsed()
    );
    assert_eq!(receipts.len(), CLAIMS);
    for (_, r) in &receipts {
        seen.push(log.verify_checkpoint(r.checkpoint.as_bytes()));
    }

    // Indices: distinct and after the enrolls; every other index up to the size is a map leaf
    // (checked below, once the leaves are read back).
    let mut by_index: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, r) in &receipts {
        assert!(
            by_index.insert(r.index, *i).is_none(),
            "index {} given twice",
            r.index
        );
    }
    assert!(
        by_index.keys().next().is_some_and(|first| *first >= 6),
        "receipt indices start after the enrolls"
    );

    let cp = log.checkpoint();
    let size = cp.checkpoint.size;
    assert!(
        size > 6 + CLAIMS as u64,
        "claims and their batches' map leaves"
    );
    assert_eq!(log.info().size, size, "/v1/info size = checkpoint size");
    seen.push(cp.clone());

    // The tree: entry bundles and tiles (full and partial, level 0 and 1) give the checkpoint root.
    let stored = log.verify_tree(&cp);
    for (i, leaf) in stored.iter().enumerate().skip(6) {
        assert_ne!(
            by_index.contains_key(&(i as u64)),
            ledger_e2e::is_map_leaf(leaf),
            "index {i} is either a receipt's claim or a map leaf"
        );
    }
    ledger_e2e::assert_map_rebuilds(th, &stored);
    for (&index, &i) in &by_index {
        assert_eq!(
            stored[index as usize],
            leaves[i].bytes(),
            "leaf at index {index}"
        );
    }

    // Every checkpoint seen is a prefix of this tree (so all are pairwise consistent): the root of
    // the first `size` stored leaves is the checkpoint's root.
    let mut store = MemoryHashStore::new(th);
    let mut by_size: BTreeMap<u64, SignedCheckpoint> = BTreeMap::new();
    for c in &seen {
        if let Some(other) = by_size.get(&c.checkpoint.size) {
            assert_eq!(
                other.checkpoint.root, c.checkpoint.root,
                "two roots for size {}",
                c.checkpoint.size
            );
        }
        by_size.insert(c.checkpoint.size, c.clone());
    }
    for (s, c) in &by_size {
        while store.size() < *s {
            store.append_leaf(&stored[store.size() as usize]);
        }
        assert_eq!(
            store.root(),
            c.checkpoint.root,
            "checkpoint of size {s} is not a prefix of the log"
        );
    }
    // And the log's consistency proofs verify between every pair of (up to 40) distinct checkpoints.
    let sizes: Vec<u64> = by_size.keys().copied().collect();
    let picked: Vec<&SignedCheckpoint> = pick_spread(&sizes, 40)
        .iter()
        .map(|s| &by_size[s])
        .collect();
    for (a, old) in picked.iter().enumerate() {
        for new in &picked[a..] {
            log.assert_consistent(old, new);
        }
    }
    eprintln!(
        "{}: {} distinct checkpoints seen, {} checked pairwise via /v1/proof/consistency",
        th.name(),
        sizes.len(),
        picked.len()
    );

    // Inclusion proofs by index, at the final size and at an earlier receipt's size.
    let mut probe: Vec<u64> = vec![0, 1, 2, 3, 255, 256, 257, size - 1];
    for _ in 0..12 {
        probe.push(rng.range(0, size));
    }
    for &index in &probe {
        let leaf_hash = th.leaf_hash(&stored[index as usize]);
        let p = log.inclusion(index, size);
        assert_eq!((p.index, p.size), (index, size));
        verify_inclusion(
            th,
            index,
            size,
            &leaf_hash,
            &p.inclusion,
            &cp.checkpoint.root,
        )
        .unwrap_or_else(|e| panic!("inclusion of {index} at {size}: {e}"));
        // At an earlier checkpoint that covers it.
        if let Some((s, c)) = by_size.range(index + 1..).next() {
            let p = log.inclusion(index, *s);
            verify_inclusion(th, index, *s, &leaf_hash, &p.inclusion, &c.checkpoint.root)
                .unwrap_or_else(|e| panic!("inclusion of {index} at {s}: {e}"));
        }
        // By leaf hash: base64url with and without padding name the same leaf and proof.
        for encoded in [b64url(&leaf_hash), b64url_nopad(&leaf_hash)] {
            let r = log.get(&format!(
                "/v1/proof/inclusion?leaf_hash={encoded}&size={size}"
            ));
            assert_eq!(
                r.status,
                200,
                "inclusion by leaf_hash {encoded}: {}",
                r.text()
            );
            let q: ledger_core::api::InclusionProof = r.json();
            assert_eq!(
                (q.index, q.size),
                (index, size),
                "inclusion by leaf_hash {encoded}"
            );
            verify_inclusion(
                th,
                index,
                size,
                &leaf_hash,
                &q.inclusion,
                &cp.checkpoint.root,
            )
            .unwrap_or_else(|e| panic!("inclusion by leaf hash of {index}: {e}"));
        }
    }

    // Idempotence: resubmitting the exact bytes answers the stored index, and stores nothing.
    for &i in &[0usize, CLAIMS / 2, CLAIMS - 1] {
        let (_, original) = receipts.iter().find(|(j, _)| *j == i).unwrap();
        let again = log.submit_ok(&leaves[i]);
        assert_eq!(again.index, original.index, "resubmission of claim {i}");
        assert_eq!(again.leaf_hash, original.leaf_hash);
    }
    assert_eq!(
        log.checkpoint().checkpoint.size,
        size,
        "resubmissions stored nothing"
    );

    // /v1/entries pages.
    let all = log.entries(0, 1000);
    assert_eq!(
        all.entries.len() as u64,
        size,
        "one page of up to 1000 returns the whole log"
    );
    for (k, e) in all.entries.iter().enumerate() {
        assert_eq!(e.index, k as u64);
        assert_eq!(
            e.leaf.as_bytes(),
            stored[k].as_slice(),
            "/v1/entries leaf {k}"
        );
    }
    let page = log.entries(250, 10);
    assert_eq!(
        page.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        (250..260).collect::<Vec<_>>(),
        "/v1/entries?start=250&count=10"
    );
    let tail = log.entries(size - 3, 10);
    assert!(
        !tail.entries.is_empty() && tail.entries.len() <= 3,
        "a page past the end holds only the remaining entries, got {}",
        tail.entries.len()
    );
    for (k, e) in tail.entries.iter().enumerate() {
        assert_eq!(e.index, size - 3 + k as u64);
    }
    assert_eq!(log.all_entries(size).len() as u64, size);

    // Caching: full tiles are immutable, partial tiles and the checkpoint are not.
    for tile in [
        Tile::new(0, 0, 256).unwrap(),
        Tile::entry_bundle(0, 256).unwrap(),
    ] {
        let r = log.tile_raw(&tile);
        assert_eq!(r.status, 200);
        let cc = r.header("cache-control").unwrap_or_default();
        assert!(
            cc.contains("immutable"),
            "/{} Cache-Control {cc:?} lacks immutable",
            tile.path()
        );
        assert!(
            cc.contains("max-age"),
            "/{} Cache-Control {cc:?} lacks max-age",
            tile.path()
        );
    }
    let partial_width = ((size % 256) as u16).max(1);
    for tile in [
        Tile::new(0, size / 256, partial_width).unwrap(),
        Tile::entry_bundle(size / 256, partial_width).unwrap(),
        Tile::new(1, 0, 1).unwrap(),
    ] {
        let r = log.tile_raw(&tile);
        assert_eq!(r.status, 200, "/{}", tile.path());
        let cc = r.header("cache-control").unwrap_or_default();
        assert!(
            !cc.contains("immutable"),
            "partial /{} must not be immutable: {cc:?}",
            tile.path()
        );
    }
    let r = log.get("/checkpoint");
    let cc = r.header("cache-control").unwrap_or_default();
    assert!(
        !cc.contains("immutable"),
        "/checkpoint must not be immutable: {cc:?}"
    );
}

/// Up to `n` of `sizes`, spread evenly and always including the first and the last.
fn pick_spread(sizes: &[u64], n: usize) -> Vec<u64> {
    if sizes.len() <= n {
        return sizes.to_vec();
    }
    let mut out: Vec<u64> = (0..n)
        .map(|k| sizes[k * (sizes.len() - 1) / (n - 1)])
        .collect();
    out.dedup();
    out
}

#[test]
fn a_lone_add_on_an_idle_log_is_answered_quickly() {
    // Issue 3: "an idle log answers a lone POST /v1/add in well under 100 ms". Debug builds and a
    // busy CI machine are slower, so this only guards against a batching bug (e.g. waiting for a
    // full batch): a lone add must be answered within one second.
    let log = TestLog::start(Options::default());
    let m = test_key("msp-a.example");
    log.enroll(Role::Msp, &m);
    let leaf = claim(
        &m,
        "mailto:lone@example.com",
        "mimi://msp-a.example/u/lone",
        now(),
        &[],
        None,
    );
    let t0 = std::time::Instant::now();
    let r = log.submit_ok(&leaf);
    let took = t0.elapsed();
    assert_eq!(r.index, 2);
    assert!(
        took < std::time::Duration::from_secs(1),
        "a lone /v1/add took {took:?}"
    );
    eprintln!("lone /v1/add answered in {took:?} (debug build)");
}
