//! Criterion benchmarks of the client path: `verify_lookup` for a 3-mapping answer, entry parsing
//! and admission (what the log does per submission before sequencing), and the one signature
//! rule's single and batch checks (the machine's verify rates, the reference of the log's and the
//! monitor's throughput targets), next to ed25519-dalek's `verify_strict`.
//! Run: `cargo bench -p ledger-core --bench core`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ledger_core::admission::admit;
use ledger_core::entry::{Action, Leaf, Role};
use ledger_core::lookup::verify_lookup_at;
use ledger_core::testkit::{attestation, claim, sii, test_key, MemLog};
use ledger_core::TreeHash;

const T: u64 = 1_764_158_400;
const SII: &str = "tel:+14155550100";

/// A log of ~100k leaves where one SII has three attested mappings.
fn three_mapping_log(hash: TreeHash) -> MemLog {
    let mut log = MemLog::new("localhost/mimi-ledger", hash);
    let prover = test_key("prover.example");
    log.enroll(Role::Prover, &prover);
    let msps: Vec<_> = ["msp-a.example", "msp-b.example", "msp-c.example"]
        .into_iter()
        .map(test_key)
        .collect();
    for m in &msps {
        log.enroll(Role::Msp, m);
    }
    // Filler leaves make the proofs realistic: 17 levels in the log tree, and 100k distinct SIIs
    // in the map (so the map proofs are as deep as a 100k-key map's, ~17 siblings).
    for i in 0..100_000u32 {
        log.push(claim(
            &msps[(i % 3) as usize],
            &format!("mailto:filler{i}@example.org"),
            "mimi://msp-a.example/u/f",
            T,
            &[],
            None,
        ));
    }
    for m in &msps {
        let ssi = format!("mimi://{}/u/alice", m.name());
        let att = attestation(&prover, Action::Claim, SII, Some((m.name(), &ssi)), T - 60);
        log.submit(claim(m, SII, &ssi, T, &["Personal"], Some(att)).bytes())
            .expect("admitted");
    }
    log.seal();
    log
}

fn bench_verify_lookup(c: &mut Criterion) {
    for hash in [TreeHash::Blake3, TreeHash::Sha256] {
        let log = three_mapping_log(hash);
        let answer = log.lookup(&sii(SII));
        let trust = log.trust();
        let verified = verify_lookup_at(&answer, &trust, T).unwrap();
        assert_eq!(verified.mappings.len(), 3);
        // Step 5 ran: the answer is proven complete by the map leaf ending the checkpoint.
        assert_eq!(verified.map_index, Some(log.size() - 1));
        let map = answer.map.as_ref().expect("map proofs");
        eprintln!(
            "verify_lookup/{hash}: SII map proof {} siblings, {} signer proofs, answer {} bytes",
            map.sii.siblings.len(),
            map.signers.len(),
            serde_json::to_vec(&answer).map(|v| v.len()).unwrap_or(0)
        );
        c.bench_function(&format!("verify_lookup/3-mappings/{hash}"), |b| {
            b.iter(|| verify_lookup_at(black_box(&answer), &trust, T).unwrap())
        });
    }
}

fn bench_admission(c: &mut Criterion) {
    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    let msp = test_key("msp-a.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Prover, &prover);
    let ssi = "mimi://msp-a.example/u/alice";
    let att = attestation(
        &prover,
        Action::Claim,
        SII,
        Some(("msp-a.example", ssi)),
        T - 60,
    );
    let attested = claim(&msp, SII, ssi, T, &["Personal"], Some(att));
    let plain = claim(&msp, SII, ssi, T, &["Personal"], None);
    let mut registry = ledger_core::admission::KeyRegistry::new(log.key.verifier());
    for i in 0..log.size() {
        registry.add_entry(i, log.leaf(i).entry());
    }
    c.bench_function("leaf_parse/claim", |b| {
        b.iter(|| Leaf::parse(black_box(plain.bytes())).unwrap())
    });
    c.bench_function("admit/claim", |b| {
        b.iter(|| admit(black_box(plain.bytes()), &registry.at(10), &log.policy, T).unwrap())
    });
    c.bench_function("admit/attested-claim", |b| {
        b.iter(|| {
            admit(
                black_box(attested.bytes()),
                &registry.at(10),
                &log.policy,
                T,
            )
            .unwrap()
        })
    });
}

/// 64 distinct (key, message, signature) triples of claim-sized messages.
fn signed_messages() -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    use ed25519_dalek::Signer as _;
    (0..64u8)
        .map(|i| {
            let sk = ed25519_dalek::SigningKey::from_bytes(&[i.wrapping_add(1); 32]);
            let msg = format!("claim {i} tel:+1415555{i:04} mimi://msp-a.example/u/{i}").repeat(4);
            let sig = sk.sign(msg.as_bytes()).to_bytes();
            (sk.verifying_key().to_bytes(), msg.into_bytes(), sig)
        })
        .collect()
}

fn bench_signatures(c: &mut Criterion) {
    use ledger_core::signature::{verify, BatchVerifier};
    let items = signed_messages();
    let mut k = 0usize;
    c.bench_function("signature/rule_single", |b| {
        b.iter(|| {
            k = (k + 1) % items.len();
            let (key, msg, sig) = &items[k];
            assert!(verify(key, black_box(msg), sig));
        })
    });
    let mut g = c.benchmark_group("signature");
    g.throughput(criterion::Throughput::Elements(items.len() as u64));
    g.bench_function("rule_batch_64", |b| {
        b.iter(|| {
            let mut batch = BatchVerifier::new();
            for (key, msg, sig) in &items {
                batch.queue(key, black_box(msg), sig);
            }
            batch.verify().unwrap()
        })
    });
    // The peer: the same ZIP-215 equation in ed25519-consensus (the rule's crate before
    // ed25519-zebra), on curve25519-dalek-ng's serial backend.
    g.bench_function("consensus_batch_64", |b| {
        b.iter(|| {
            let mut v = ed25519_consensus::batch::Verifier::new();
            for (key, msg, sig) in &items {
                v.queue((
                    ed25519_consensus::VerificationKeyBytes::from(*key),
                    ed25519_consensus::Signature::from(*sig),
                    black_box(&msg[..]),
                ));
            }
            v.verify(rand_core::OsRng).unwrap()
        })
    });
    g.finish();
    // One key, as in an MSP's bulk onboarding: the batch equation has one key term, so the cost
    // per signature falls with the batch's size (Straus below ~190 points, Pippenger above).
    let one_key: Vec<([u8; 32], Vec<u8>, [u8; 64])> = {
        use ed25519_dalek::Signer as _;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        (0..1024u32)
            .map(|i| {
                let msg =
                    format!("claim {i} tel:+1415555{i:04} mimi://msp-a.example/u/{i}").repeat(4);
                let sig = sk.sign(msg.as_bytes()).to_bytes();
                (sk.verifying_key().to_bytes(), msg.into_bytes(), sig)
            })
            .collect()
    };
    let mut g = c.benchmark_group("signature/one_key");
    for n in [128usize, 256, 512, 1024] {
        g.throughput(criterion::Throughput::Elements(n as u64));
        g.bench_function(format!("rule_batch_{n}"), |b| {
            b.iter(|| {
                let mut batch = BatchVerifier::new();
                for (key, msg, sig) in &one_key[..n] {
                    batch.queue(key, black_box(msg), sig);
                }
                batch.verify().unwrap()
            })
        });
    }
    g.finish();
    let dalek: Vec<_> = items
        .iter()
        .map(|(key, msg, sig)| {
            (
                ed25519_dalek::VerifyingKey::from_bytes(key).unwrap(),
                msg.clone(),
                ed25519_dalek::Signature::from_bytes(sig),
            )
        })
        .collect();
    c.bench_function("signature/dalek_verify_strict", |b| {
        b.iter(|| {
            k = (k + 1) % dalek.len();
            let (key, msg, sig) = &dalek[k];
            key.verify_strict(black_box(msg), sig).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_verify_lookup, bench_admission, bench_signatures
}
criterion_main!(benches);
