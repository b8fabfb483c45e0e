//! Criterion benchmarks of the client path: `verify_lookup` for a 3-mapping answer, and entry parsing
//! and admission (what the log does per submission before sequencing).
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_verify_lookup, bench_admission
}
criterion_main!(benches);
