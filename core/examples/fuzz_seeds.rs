//! Writes seed inputs for the `cargo fuzz` targets in `core/fuzz/` (valid leaves of every kind, notes,
//! SIIs, checkpoints and proof files), so the fuzzer starts from the interesting part of the input space.
//! Run: `cargo run -p ledger-core --example fuzz_seeds -- core/fuzz/corpus`.

use ledger_core::entry::{Action, Role};
use ledger_core::lookup::AnswerSource as _;
use ledger_core::testkit::{attestation, claim, optout, revoke, test_key, MemLog};
use ledger_core::TreeHash;

fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "core/fuzz/corpus".into());
    let dir = |t: &str| {
        let p = std::path::Path::new(&out).join(t);
        std::fs::create_dir_all(&p).map(|()| p)
    };
    let (leaf_dir, note_dir, sii_dir, cp_dir, pf_dir) = (
        dir("leaf")?,
        dir("note")?,
        dir("sii")?,
        dir("checkpoint")?,
        dir("proof_file")?,
    );

    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    let t = log.now;
    let msp = test_key("msp-a.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Prover, &prover);
    let sii = "tel:+14155550100";
    let ssi = "mimi://msp-a.example/u/alice";
    let att = attestation(
        &prover,
        Action::Claim,
        sii,
        Some(("msp-a.example", ssi)),
        t - 60,
    );
    let ratt = attestation(
        &prover,
        Action::Revoke,
        sii,
        Some(("msp-a.example", ssi)),
        t - 60,
    );
    let leaves = [
        claim(&msp, sii, ssi, t, &["Personal", "Work"], Some(att.clone())),
        claim(&msp, "mailto:alice@example.com", ssi, t, &[], None),
        revoke(&msp, "msp-a.example", sii, ssi, t, None),
        revoke(&prover, "msp-a.example", sii, ssi, t, Some(ratt)),
        optout(&prover, sii, t),
    ];
    for (i, l) in leaves.iter().enumerate() {
        log.push(l.clone());
        std::fs::write(leaf_dir.join(format!("seed-{i}")), l.bytes())?;
        std::fs::write(note_dir.join(format!("seed-{i}")), l.bytes())?;
    }
    std::fs::write(leaf_dir.join("seed-enroll"), log.leaf(0).bytes())?;
    std::fs::write(note_dir.join("seed-attestation"), att.note.to_bytes())?;
    for (i, s) in [
        "tel:+14155550100",
        "tel:+41446681800",
        "tel:+442079460958",
        "+1 (415) 555-0100",
        "mailto:alice@xn--bcher-kva.example",
        "Alice@Bücher.Example",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(sii_dir.join(format!("seed-{i}")), s)?;
    }
    let cp = log.checkpoint();
    std::fs::write(cp_dir.join("seed-0"), cp.to_bytes())?;
    std::fs::write(cp_dir.join("seed-1"), cp.checkpoint.to_text())?;
    let Ok(proof) = log.inclusion(2, log.size());
    let pf = ledger_core::proof_file::ProofFile {
        index: 2,
        proof,
        checkpoint: cp,
    };
    std::fs::write(pf_dir.join("seed-0"), pf.to_bytes())?;
    println!("wrote seeds under {out}");
    Ok(())
}
