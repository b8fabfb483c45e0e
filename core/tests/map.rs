//! Tests of the verifiable map (SPEC §9) against a straightforward reference construction written
//! here from the SPEC text — its own hash calls, chains, and a recursive from-scratch build over the
//! sorted key set — deliberately a different code path from the incremental `ledger_core::map`:
//!
//! - known-answer vectors (`map_vectors.json`, both tree hashes) produced by the reference and
//!   checked against the module (`MAP_VECTORS_REGENERATE=1` rewrites the file from the reference);
//! - properties: the root and the stored node set are independent of insertion order and batch
//!   split and equal the reference; every presence and absence proof verifies and equals the
//!   reference proof; every mutation of a proof fails;
//! - one deterministic 10,000-key map.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use ledger_core::map::{
    signer_key, sii_key, verify_absence, verify_presence, MapAddition, MapNode, MapProof,
    MapProofError, MapTree, MapValue, NodeId, OtherLeaf,
};
use ledger_core::{Hash, TreeHash};
use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::Digest as _;

const HASHES: [TreeHash; 2] = [TreeHash::Blake3, TreeHash::Sha256];

// ---------------------------------------------------------------------------------------------
// The reference construction (SPEC §9, read literally).
// ---------------------------------------------------------------------------------------------

fn h(th: TreeHash, bytes: &[u8]) -> Hash {
    match th {
        TreeHash::Blake3 => *blake3::hash(bytes).as_bytes(),
        TreeHash::Sha256 => sha2::Sha256::digest(bytes).into(),
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn ref_sii_key(th: TreeHash, sii: &str) -> Hash {
    h(th, &cat(&[&[0x10], sii.as_bytes()]))
}

fn ref_signer_key(th: TreeHash, name: &str) -> Hash {
    h(th, &cat(&[&[0x11], name.as_bytes()]))
}

/// A key with its count and chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    key: Hash,
    count: u64,
    chain: Hash,
}

/// Folds the log (in order) into one item per key, sorted by key.
fn ref_items(th: TreeHash, log: &[(Hash, u64, Hash)]) -> Vec<Item> {
    let mut chains: BTreeMap<Hash, (u64, Hash)> = BTreeMap::new();
    for (key, index, leaf_hash) in log {
        let (count, chain) = chains.entry(*key).or_insert((0, [0; 32]));
        *chain = h(th, &cat(&[&[0x12], chain, &index.to_be_bytes(), leaf_hash]));
        *count += 1;
    }
    chains
        .into_iter()
        .map(|(key, (count, chain))| Item { key, count, chain })
        .collect()
}

fn ref_bit(key: &Hash, i: usize) -> bool {
    key[i / 8] & (1 << (7 - i % 8)) != 0
}

fn ref_leaf(th: TreeHash, it: &Item) -> Hash {
    h(
        th,
        &cat(&[&[0x13], &it.key, &it.count.to_be_bytes(), &it.chain]),
    )
}

fn ref_node(th: TreeHash, l: &Hash, r: &Hash) -> Hash {
    h(th, &cat(&[&[0x14], l, r]))
}

fn split(items: &[Item], depth: usize) -> (Vec<Item>, Vec<Item>) {
    items.iter().partition(|it| !ref_bit(&it.key, depth))
}

/// The hash of the subtree holding `items` (all sharing their first `depth` bits).
fn ref_root(th: TreeHash, items: &[Item], depth: usize) -> Hash {
    match items.len() {
        0 => [0; 32],
        1 => ref_leaf(th, &items[0]),
        _ => {
            let (l, r) = split(items, depth);
            ref_node(
                th,
                &ref_root(th, &l, depth + 1),
                &ref_root(th, &r, depth + 1),
            )
        }
    }
}

/// The canonical node set: every prefix with ≥ 2 keys (internal) and every single-key subtree
/// whose parent has ≥ 2 keys (leaf).
fn ref_nodes(
    th: TreeHash,
    items: &[Item],
    depth: usize,
    out: &mut BTreeMap<NodeId, MapNode>,
) -> Hash {
    let Some(first) = items.first() else {
        return [0; 32];
    };
    let id = NodeId::of(&first.key, depth as u16).unwrap();
    if items.len() == 1 {
        let value = MapValue {
            count: first.count,
            chain: first.chain,
        };
        out.insert(
            id,
            MapNode::Leaf {
                key: first.key,
                value,
            },
        );
        return ref_leaf(th, first);
    }
    let (l, r) = split(items, depth);
    let lh = ref_nodes(th, &l, depth + 1, out);
    let rh = ref_nodes(th, &r, depth + 1, out);
    let hash = ref_node(th, &lh, &rh);
    out.insert(id, MapNode::Internal { hash });
    hash
}

/// The reference proof for `key`: siblings top down, and the other item where the path ends.
fn ref_proof(th: TreeHash, items: &[Item], key: &Hash) -> (Vec<Hash>, Option<Item>) {
    let mut siblings = Vec::new();
    let mut here = items.to_vec();
    let mut depth = 0;
    loop {
        match here.len() {
            0 => return (siblings, None),
            1 if here[0].key == *key => return (siblings, None),
            1 => return (siblings, Some(here[0])),
            _ => {
                let (l, r) = split(&here, depth);
                let (mine, beside) = if ref_bit(key, depth) { (r, l) } else { (l, r) };
                siblings.push(ref_root(th, &beside, depth + 1));
                here = mine;
                depth += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

fn additions(log: &[(Hash, u64, Hash)]) -> Vec<MapAddition> {
    log.iter()
        .map(|&(key, index, leaf_hash)| MapAddition {
            key,
            index,
            leaf_hash,
        })
        .collect()
}

fn store_in_batches(th: TreeHash, adds: &[MapAddition], cuts: &[usize]) -> MapTree {
    let mut m = MapTree::new(th);
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&adds.len())) {
        let end = c.clamp(start, adds.len());
        let root = m.apply(&adds[start..end]).unwrap();
        assert_eq!(root, m.root());
        start = end;
    }
    m
}

fn value_of(it: &Item) -> MapValue {
    MapValue {
        count: it.count,
        chain: it.chain,
    }
}

fn other_of(it: &Item) -> OtherLeaf {
    OtherLeaf {
        key: it.key,
        count: it.count,
        chain: it.chain,
    }
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out[bit / 8 % 32] ^= 1 << (bit % 8);
    out
}

/// Every proof derived from `proof` by one mutation: a one-bit flip of each sibling (bit chosen
/// from `seed`, or every bit when `all_bits`), each sibling dropped, a sibling added at each
/// position, and `other` removed, replaced, or with a flipped key, count or chain.
fn mutations(proof: &MapProof, seed: usize, all_bits: bool, extra: &[Item]) -> Vec<MapProof> {
    let mut out = Vec::new();
    let n = proof.siblings.len();
    for i in 0..n {
        let bits: Vec<usize> = if all_bits {
            (0..256).collect()
        } else {
            vec![(seed.wrapping_mul(31).wrapping_add(i * 97)) % 256]
        };
        for b in bits {
            let mut p = proof.clone();
            p.siblings[i] = flip(&p.siblings[i], b);
            out.push(p);
        }
        let mut p = proof.clone();
        p.siblings.remove(i);
        out.push(p);
    }
    for i in 0..=n {
        for s in [[0u8; 32], [0x5a; 32]] {
            let mut p = proof.clone();
            p.siblings.insert(i, s);
            out.push(p);
        }
    }
    match proof.other {
        None => {
            for it in extra {
                let mut p = proof.clone();
                p.other = Some(other_of(it));
                out.push(p);
            }
        }
        Some(o) => {
            let mut p = proof.clone();
            p.other = None;
            out.push(p);
            for it in extra.iter().filter(|it| it.key != o.key) {
                let mut p = proof.clone();
                p.other = Some(other_of(it));
                out.push(p);
            }
            for m in [
                OtherLeaf {
                    key: flip(&o.key, seed % 256),
                    ..o
                },
                OtherLeaf {
                    key: flip(&o.key, 255 - (seed % 8)),
                    ..o
                },
                OtherLeaf {
                    count: o.count + 1,
                    ..o
                },
                OtherLeaf {
                    count: o.count - 1,
                    ..o
                },
                OtherLeaf {
                    chain: flip(&o.chain, seed % 256),
                    ..o
                },
            ] {
                let mut p = proof.clone();
                p.other = Some(m);
                out.push(p);
            }
        }
    }
    out
}

/// Checks the map in `m` against the reference over `items`: root, node set, and for every key
/// (and every probe) the proof equals the reference, verifies, and no mutation of it verifies.
fn check_map(m: &MapTree, items: &[Item], probes: &[Hash], mutate_every: usize) {
    let th = m.tree_hash();
    let root = ref_root(th, items, 0);
    assert_eq!(m.root(), root);
    let mut nodes = BTreeMap::new();
    assert_eq!(ref_nodes(th, items, 0, &mut nodes), root);
    assert_eq!(m.nodes(), nodes, "stored node set is the canonical one");
    let extra: Vec<Item> = items.iter().take(2).copied().collect();

    for (n, it) in items.iter().enumerate() {
        let kp = m.prove(&it.key);
        assert_eq!(kp.value, Some(value_of(it)));
        assert_eq!(kp.proof.other, None);
        if n % mutate_every == 0 {
            // The reference proof costs O(keys): compare a sample.
            let (siblings, other) = ref_proof(th, items, &it.key);
            assert_eq!(kp.proof.siblings, siblings);
            assert_eq!(other, None);
        }
        let v = value_of(it);
        verify_presence(th, &root, &it.key, &v, &kp.proof).unwrap();
        assert!(verify_absence(th, &root, &it.key, &kp.proof).is_err());
        if n % mutate_every == 0 {
            for bad in [
                MapValue {
                    count: v.count + 1,
                    ..v
                },
                MapValue {
                    count: v.count - 1,
                    ..v
                },
                MapValue {
                    chain: flip(&v.chain, n % 256),
                    ..v
                },
            ] {
                assert!(verify_presence(th, &root, &it.key, &bad, &kp.proof).is_err());
            }
            for p in mutations(&kp.proof, n, false, &extra) {
                assert!(
                    verify_presence(th, &root, &it.key, &v, &p).is_err(),
                    "mutated presence proof verified: {p:?}"
                );
            }
        }
    }
    for (n, key) in probes.iter().enumerate() {
        if items.iter().any(|it| it.key == *key) {
            continue;
        }
        let kp = m.prove(key);
        assert_eq!(kp.value, None);
        if n % mutate_every == 0 {
            let (siblings, other) = ref_proof(th, items, key);
            assert_eq!(kp.proof.siblings, siblings);
            assert_eq!(kp.proof.other, other.as_ref().map(other_of));
        }
        verify_absence(th, &root, key, &kp.proof).unwrap();
        if let Some(it) = items.first() {
            assert!(verify_presence(th, &root, key, &value_of(it), &kp.proof).is_err());
        }
        if n % mutate_every == 0 {
            for p in mutations(&kp.proof, n, false, &extra) {
                assert!(
                    verify_absence(th, &root, key, &p).is_err(),
                    "mutated absence proof verified: {p:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Known-answer vectors.
// ---------------------------------------------------------------------------------------------

fn vectors_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/map_vectors.json"
    ))
}

/// The key name of leaf `j` of a vector map: an SII for even `j`, a signer name for odd `j`.
fn vector_name(j: usize) -> (&'static str, String) {
    if j % 2 == 0 {
        ("sii", format!("tel:+1415555{:04}", 100 + j))
    } else {
        ("signer", format!("msp-{j}.example"))
    }
}

/// The log of the vector map with `n` keys: `n + n/2` leaves, leaf `i` at index `100 + i` with leaf
/// hash `H(0x00 ‖ "map vector leaf <i>")`, filed under the name of `i mod n`.
fn vector_log(th: TreeHash, n: usize) -> Vec<(Hash, u64, Hash)> {
    (0..n + n / 2)
        .map(|i| {
            let (kind, name) = vector_name(i % n);
            let key = match kind {
                "sii" => ref_sii_key(th, &name),
                _ => ref_signer_key(th, &name),
            };
            let leaf = h(
                th,
                &cat(&[&[0x00], format!("map vector leaf {i}").as_bytes()]),
            );
            (key, 100 + i as u64, leaf)
        })
        .collect()
}

fn b64(h: &Hash) -> String {
    base64::engine::general_purpose::STANDARD.encode(h)
}

fn proof_json(siblings: &[Hash], other: Option<Item>) -> Value {
    json!({
        "siblings": siblings.iter().map(b64).collect::<Vec<_>>(),
        "other": other.map(|o| json!({"key": b64(&o.key), "count": o.count, "chain": b64(&o.chain)})),
    })
}

/// The vectors, from the reference construction.
fn reference_vectors() -> Value {
    let mut maps = Vec::new();
    for th in HASHES {
        for n in [0usize, 1, 2, 3, 10] {
            let items = ref_items(th, &vector_log(th, n));
            let mut proofs = Vec::new();
            // Presence for the first SII and the first signer; absence probes: the first ending in
            // an empty subtree and the first ending in another key's leaf.
            for j in 0..n.min(2) {
                let (kind, name) = vector_name(j);
                let key = items
                    .iter()
                    .find(|it| {
                        it.key
                            == if kind == "sii" {
                                ref_sii_key(th, &name)
                            } else {
                                ref_signer_key(th, &name)
                            }
                    })
                    .unwrap()
                    .key;
                let (s, o) = ref_proof(th, &items, &key);
                proofs.push(json!({kind: name, "present": true, "proof": proof_json(&s, o)}));
            }
            let (mut empty_done, mut other_done) = (false, n == 0);
            for p in 0..1000 {
                let sii = format!("tel:+1415555{:04}", 9000 + p);
                let (s, o) = ref_proof(th, &items, &ref_sii_key(th, &sii));
                let want = if o.is_some() {
                    &mut other_done
                } else {
                    &mut empty_done
                };
                if !*want && (n < 2 || !s.is_empty()) {
                    *want = true;
                    proofs.push(json!({"sii": sii, "present": false, "proof": proof_json(&s, o)}));
                }
                if empty_done && other_done {
                    break;
                }
            }
            maps.push(json!({
                "hash": th.name(),
                "keys": n,
                "keys_hex": items.iter().map(|it| hex::encode(it.key)).collect::<Vec<_>>(),
                "root": b64(&ref_root(th, &items, 0)),
                "proofs": proofs,
            }));
        }
    }
    json!({
        "description": "SPEC §9 map vectors. The map with n keys: n + n/2 leaves; leaf i is at index 100 + i with leaf hash H(0x00 ‖ \"map vector leaf <i>\") and is filed under name i mod n; name j is the SII tel:+1415555<0100 + j, 4 digits> for even j, the signer msp-<j>.example for odd j. keys_hex: the keys, sorted. Generated by tests/map.rs's reference construction.",
        "maps": maps,
    })
}

#[test]
fn known_answer_vectors() {
    let reference = reference_vectors();
    if std::env::var_os("MAP_VECTORS_REGENERATE").is_some() {
        let text = serde_json::to_string_pretty(&reference).unwrap() + "\n";
        std::fs::write(vectors_path(), text).unwrap();
    }
    let text = std::fs::read_to_string(vectors_path()).unwrap();
    let vectors: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        vectors, reference,
        "the reference reproduces the committed vectors"
    );

    let maps = vectors["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 10);
    for v in maps {
        let th: TreeHash = v["hash"].as_str().unwrap().parse().unwrap();
        let n = v["keys"].as_u64().unwrap() as usize;
        let adds = additions(&vector_log(th, n));
        let m = store_in_batches(th, &adds, &[1, 4]);
        let root = m.root();
        assert_eq!(b64(&root), v["root"].as_str().unwrap(), "{} {n}", th.name());
        let keys: Vec<String> = m
            .nodes()
            .values()
            .filter_map(|node| match node {
                MapNode::Leaf { key, .. } => Some(hex::encode(key)),
                MapNode::Internal { .. } => None,
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(serde_json::to_value(&sorted).unwrap(), v["keys_hex"]);
        for p in v["proofs"].as_array().unwrap() {
            let key = match (p.get("sii"), p.get("signer")) {
                (Some(s), _) => sii_key(th, s.as_str().unwrap()),
                (_, Some(s)) => signer_key(th, s.as_str().unwrap()),
                _ => panic!("a proof names an sii or a signer"),
            };
            let kp = m.prove(&key);
            assert_eq!(serde_json::to_value(&kp.proof).unwrap(), p["proof"]);
            let parsed: MapProof = serde_json::from_value(p["proof"].clone()).unwrap();
            assert_eq!(parsed, kp.proof);
            if p["present"].as_bool().unwrap() {
                verify_presence(th, &root, &key, &kp.value.unwrap(), &parsed).unwrap();
            } else {
                assert_eq!(kp.value, None);
                verify_absence(th, &root, &key, &parsed).unwrap();
            }
        }
    }
}

#[test]
fn keys_are_the_reference_keys() {
    for th in HASHES {
        assert_eq!(
            sii_key(th, "tel:+14155550100"),
            ref_sii_key(th, "tel:+14155550100")
        );
        assert_eq!(
            signer_key(th, "msp-a.example"),
            ref_signer_key(th, "msp-a.example")
        );
        assert_ne!(sii_key(th, "x"), signer_key(th, "x"));
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic malformed proofs.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_bit_flip_of_every_sibling_fails() {
    for th in HASHES {
        let adds = additions(&vector_log(th, 10));
        let items = ref_items(th, &vector_log(th, 10));
        let m = store_in_batches(th, &adds, &[]);
        let root = m.root();
        for (n, it) in items.iter().enumerate() {
            let kp = m.prove(&it.key);
            for p in mutations(&kp.proof, n, true, &items[..2]) {
                assert!(verify_presence(th, &root, &it.key, &value_of(it), &p).is_err());
            }
        }
        let absent = sii_key(th, "tel:+14155559999");
        let kp = m.prove(&absent);
        for p in mutations(&kp.proof, 7, true, &items[..2]) {
            assert!(verify_absence(th, &root, &absent, &p).is_err());
        }
    }
}

#[test]
fn malformed_proofs_are_refused_with_their_reason() {
    let th = TreeHash::Blake3;
    let items = ref_items(th, &vector_log(th, 10));
    let m = store_in_batches(th, &additions(&vector_log(th, 10)), &[]);
    let root = m.root();
    let k = items[0].key;
    let v = value_of(&items[0]);
    let presence = m.prove(&k).proof;

    let long = MapProof {
        siblings: vec![[1; 32]; 257],
        other: None,
    };
    assert_eq!(
        verify_presence(th, &root, &k, &v, &long),
        Err(MapProofError::TooManySiblings(257))
    );
    assert_eq!(
        verify_absence(th, &root, &k, &long),
        Err(MapProofError::TooManySiblings(257))
    );
    let full = MapProof {
        siblings: vec![[1; 32]; 256],
        other: None,
    };
    assert_eq!(
        verify_absence(th, &root, &k, &full),
        Err(MapProofError::AbsenceAtFullDepth)
    );
    let mut with_other = presence.clone();
    with_other.other = Some(other_of(&items[1]));
    assert_eq!(
        verify_presence(th, &root, &k, &v, &with_other),
        Err(MapProofError::OtherInPresenceProof)
    );
    assert_eq!(
        verify_presence(th, &root, &k, &MapValue::EMPTY, &presence),
        Err(MapProofError::ZeroCount)
    );
    let mut zero_tail = presence.clone();
    zero_tail.siblings.push([0; 32]);
    assert_eq!(
        verify_presence(th, &root, &k, &v, &zero_tail),
        Err(MapProofError::NotCanonical)
    );

    // Absence: `other` is K itself, or off K's path, or has count 0.
    let absent = sii_key(th, "tel:+14155559999");
    let mut same = m.prove(&absent).proof;
    same.other = Some(OtherLeaf {
        key: absent,
        count: 1,
        chain: [0; 32],
    });
    assert_eq!(
        verify_absence(th, &root, &absent, &same),
        Err(MapProofError::OtherIsSameKey)
    );
    // The proof for key k0 ends at k0's leaf at depth d ≥ 1; as an absence proof for k0 with k0
    // flipped in bit 0, `other` = k0 is off the path.
    let d = presence.siblings.len();
    assert!(d >= 1);
    let off = flip(&k, 7); // bit 0 of the key is the top bit of byte 0
    let bad = MapProof {
        siblings: presence.siblings.clone(),
        other: Some(other_of(&items[0])),
    };
    assert_eq!(
        verify_absence(th, &root, &off, &bad),
        Err(MapProofError::OtherOffPath { depth: d })
    );
    let mut zero = bad.clone();
    if let Some(o) = zero.other.as_mut() {
        o.count = 0;
    }
    // With the right key (a key sharing k0's first d bits, e.g. k0 with its last bit flipped).
    let near = flip(&k, 248);
    assert_eq!(
        verify_absence(th, &root, &near, &zero),
        Err(MapProofError::ZeroCount)
    );
    verify_absence(th, &root, &near, &bad).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

/// Keys with long shared prefixes: each is a base key with the bits from a random position on
/// replaced by random bits, so pairs of keys share anywhere from 0 to 255 bits.
fn clustered_keys(bases: Vec<Hash>, tails: Vec<(usize, u16, Hash)>) -> Vec<Hash> {
    let mut keys: Vec<Hash> = bases.clone();
    for (b, from, tail) in tails {
        let base = bases[b % bases.len()];
        let from = usize::from(from % 256);
        let mut k = base;
        for i in from..256 {
            let byte = i / 8;
            let mask = 1u8 << (7 - i % 8);
            k[byte] = (k[byte] & !mask) | (tail[byte] & mask);
        }
        keys.push(k);
    }
    keys
}

/// Mostly random keys (paths of depth ≈ log₂ n), plus up to 24 keys clustered around a few bases
/// (shared prefixes of any length up to 255 bits, so some paths run deep).
fn key_set(max: usize) -> impl Strategy<Value = Vec<Hash>> {
    (
        proptest::collection::vec(any::<[u8; 32]>(), 1..8),
        proptest::collection::vec((any::<usize>(), any::<u16>(), any::<[u8; 32]>()), 0..24),
        proptest::collection::vec(any::<[u8; 32]>(), 0..max),
    )
        .prop_map(|(bases, tails, random)| {
            let mut keys = clustered_keys(bases, tails);
            keys.extend(random);
            keys
        })
}

/// A log over `keys`: leaf `i` at index `i`, filed under `keys[pick_i mod len]`.
fn log_over(th: TreeHash, keys: &[Hash], picks: &[usize]) -> Vec<(Hash, u64, Hash)> {
    picks
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let leaf = th.leaf_hash(format!("prop leaf {i}").as_bytes());
            (keys[p % keys.len()], i as u64, leaf)
        })
        .collect()
}

fn tree_hash() -> impl Strategy<Value = TreeHash> {
    prop_oneof![Just(TreeHash::Blake3), Just(TreeHash::Sha256)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Root and node set equal the reference for any batch split and any order of keys, and every
    /// proof (of every key, and of absent probes near and far) verifies and resists mutation.
    #[test]
    fn map_matches_reference_for_any_order_and_split(
        th in tree_hash(),
        keys in key_set(2500),
        picks in proptest::collection::vec(any::<usize>(), 1..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        shuffle in any::<u64>(),
        probe_tails in proptest::collection::vec((any::<usize>(), any::<u16>(), any::<[u8; 32]>()), 0..32),
    ) {
        let log = log_over(th, &keys, &picks);
        let items = ref_items(th, &log);
        let adds = additions(&log);

        // In log order, split into batches at `cuts`.
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (adds.len() + 1)).collect();
        cuts.sort_unstable();
        let m = store_in_batches(th, &adds, &cuts);

        // Keys in a shuffled order (each key's leaves still in log order), batches of varying size.
        let mut by_key: Vec<Vec<MapAddition>> = Vec::new();
        let mut slot: BTreeMap<Hash, usize> = BTreeMap::new();
        for a in &adds {
            let s = *slot.entry(a.key).or_insert_with(|| { by_key.push(Vec::new()); by_key.len() - 1 });
            by_key[s].push(*a);
        }
        let mut x = shuffle | 1;
        for i in (1..by_key.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            by_key.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let reordered: Vec<MapAddition> = by_key.into_iter().flatten().collect();
        let step = 1 + (shuffle % 97) as usize;
        let cuts2: Vec<usize> = (step..reordered.len()).step_by(step).collect();
        let m2 = store_in_batches(th, &reordered, &cuts2);
        prop_assert_eq!(m2.nodes(), m.nodes());

        let mut probes: Vec<Hash> = clustered_keys(keys.clone(), probe_tails);
        probes.push([0; 32]);
        probes.push([0xff; 32]);
        let mutate_every = 1 + items.len() / 40;
        check_map(&m, &items, &probes, mutate_every);
    }
}

#[test]
fn ten_thousand_keys() {
    let th = TreeHash::Blake3;
    let keys: Vec<Hash> = (0..10_000)
        .map(|i| sii_key(th, &format!("tel:+1415{:07}", i)))
        .collect();
    let picks: Vec<usize> = (0..12_000).map(|i| (i * 7919) % 10_000).collect();
    let log = log_over(th, &keys, &picks);
    let items = ref_items(th, &log);
    assert_eq!(items.len(), 10_000);
    let adds = additions(&log);

    let cuts: Vec<usize> = [1usize, 7, 100, 1000, 3000, 3001, 8000].to_vec();
    let m = store_in_batches(th, &adds, &cuts);
    let mut one = MapTree::new(th);
    let staged = one.stage(&adds).unwrap();
    let written = staged.nodes_written();
    one.commit(staged, 0).unwrap();
    assert_eq!(written, one.nodes().len());
    assert_eq!(one.nodes(), m.nodes());

    // A last small batch touches O(keys × depth) nodes, not the tree.
    let mut more = m.clone();
    let extra = MapAddition {
        key: keys[5],
        index: 12_000,
        leaf_hash: [9; 32],
    };
    let staged = more.stage(&[extra]).unwrap();
    let written = staged.nodes_written();
    more.commit(staged, 0).unwrap();
    let depth = more.prove(&keys[5]).proof.siblings.len();
    assert_eq!(written, depth + 1);

    let probes: Vec<Hash> = (0..2000)
        .map(|i| sii_key(th, &format!("tel:+1416{:07}", i)))
        .collect();
    check_map(&m, &items, &probes, 250);
}
