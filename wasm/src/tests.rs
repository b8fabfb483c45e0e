//! The exports, called natively with the answers `ledger-core`'s testkit builds: each verdict
//! must be the core's, and a failed verification must carry nothing that looks verified.

use super::*;
use ledger_core::testkit::{example_answer, optout, sii, test_key, MemLog};
use ledger_core::TreeHash;

const NOW: f64 = 1_764_158_500.0;

fn trust_toml(trust: &ledger_core::lookup::Trust) -> String {
    toml::to_string(&TrustFile::for_log(None, &trust.log)).unwrap()
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn canonicalizes_what_a_person_types() {
    let v = parse(&canonicalize("+1 (415) 555-0100", ""));
    assert_eq!(v["ok"], true);
    assert_eq!(v["sii"], "tel:+14155550100");
    assert_eq!(v["kind"], "tel");
    let v = parse(&canonicalize("(415) 555-0100", "US"));
    assert_eq!(v["sii"], "tel:+14155550100");
    let v = parse(&canonicalize("Alice@Bücher.Example", ""));
    assert_eq!(v["kind"], "mailto");
    assert_eq!(v["sii"], "mailto:Alice@xn--bcher-kva.example");
    let v = parse(&canonicalize("(415) 555-0100", ""));
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("country"), "{v}");
    assert_eq!(parse(&canonicalize("x", "ZZZ"))["ok"], false);
}

#[test]
fn a_good_answer_verifies_with_every_step() {
    let (trust, answer) = example_answer();
    let v = parse(&verify_lookup(
        &serde_json::to_string(&answer).unwrap(),
        &trust_toml(&trust),
        "tel:+14155550100",
        NOW,
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["status"], "mapped");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 8);
    assert!(steps.iter().all(|s| s["result"] == "ok"));
    assert_eq!(steps[7]["name"], "completeness");
    let m = &v["mappings"][0];
    assert_eq!(m["msp"], "msp-a.example");
    assert_eq!(m["ssi"], "mimi://msp-a.example/u/alice");
    assert_eq!(m["tags"][0], "Personal");
    assert_eq!(m["attested_by"], "prover.example");
    assert_eq!(v["history"][0]["kind"], "claim");
    assert_eq!(v["history"][0]["signer"], "msp-a.example");
    assert_eq!(v["checkpoint"]["size"], answer_size(&answer));
    assert!(v["map_index"].is_u64());
}

fn answer_size(a: &LookupAnswer) -> u64 {
    SignedCheckpoint::parse(a.checkpoint.as_bytes())
        .unwrap()
        .checkpoint
        .size
}

#[test]
fn a_lie_fails_at_its_step_and_shows_nothing_verified() {
    let (trust, answer) = example_answer();
    let toml = trust_toml(&trust);
    // Hiding the entry: the fold and the map disagree with the claim.
    let mut hidden = answer.clone();
    hidden.entries.clear();
    let v = parse(&verify_lookup(
        &serde_json::to_string(&hidden).unwrap(),
        &toml,
        "tel:+14155550100",
        NOW,
    ));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["status"], Value::Null);
    assert!(v["mappings"].as_array().unwrap().is_empty());
    assert!(v["history"].as_array().unwrap().is_empty());
    let failed: Vec<&Value> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["result"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], v["failure"]["name"]);
    // A flipped proof bit: step 2, and the later steps not reached.
    let mut bad = answer.clone();
    bad.entries[0].inclusion[0][0] ^= 1;
    let v = parse(&verify_lookup(
        &serde_json::to_string(&bad).unwrap(),
        &toml,
        "tel:+14155550100",
        NOW,
    ));
    assert_eq!(v["failure"]["name"], "inclusion-proof");
    assert_eq!(v["steps"][3]["result"], "failed");
    assert_eq!(v["steps"][7]["result"], "not-reached");
    assert_eq!(v["steps"][0]["result"], "ok");
    // An answer about another number than asked.
    let v = parse(&verify_lookup(
        &serde_json::to_string(&answer).unwrap(),
        &toml,
        "tel:+14155550199",
        NOW,
    ));
    assert_eq!(v["ok"], false);
    // Not JSON at all: step 0.
    let v = parse(&verify_lookup("{", &toml, "tel:+14155550100", NOW));
    assert_eq!(v["failure"]["name"], "malformed-answer");
    assert_eq!(v["steps"][0]["number"], 0);
    // Another log's key: step 1.
    let other = MemLog::new("other.example/log", TreeHash::Blake3).trust();
    let v = parse(&verify_lookup(
        &serde_json::to_string(&answer).unwrap(),
        &trust_toml(&other),
        "tel:+14155550100",
        NOW,
    ));
    assert_eq!(v["failure"]["name"], "checkpoint-signature");
}

#[test]
fn absence_and_opt_out_are_proven() {
    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Sha256);
    let prover = test_key("prover.example");
    log.enroll(ledger_core::entry::Role::Prover, &prover);
    let t = log.now;
    log.submit(optout(&prover, "tel:+14155550111", t).bytes())
        .unwrap();
    log.seal();
    let toml = trust_toml(&log.trust());
    for (number, status) in [
        ("tel:+14155550111", "opted-out"),
        ("tel:+14155550122", "none"),
    ] {
        let answer = log.lookup(&sii(number));
        let v = parse(&verify_lookup(
            &serde_json::to_string(&answer).unwrap(),
            &toml,
            number,
            NOW,
        ));
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["status"], status);
        assert_eq!(v["steps"][7]["result"], "ok");
    }
}

#[test]
fn checkpoints_and_entries_verify_and_tampering_fails() {
    let (trust, answer) = example_answer();
    let toml = trust_toml(&trust);
    let v = parse(&verify_checkpoint(&answer.checkpoint, &toml, NOW));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["size"], answer_size(&answer));
    let forged = answer.checkpoint.replacen('\n', "x\n", 1);
    let v = parse(&verify_checkpoint(&forged, &toml, NOW));
    assert_eq!(v["ok"], false);
    assert_eq!(v["failed_step"], "checkpoint-signature");
    assert_eq!(v["size"], Value::Null);

    let e = &answer.entries[0];
    let proof =
        serde_json::to_string(&e.inclusion.iter().map(encode_hash).collect::<Vec<_>>()).unwrap();
    let v = parse(&verify_entry(
        &e.leaf,
        e.index as f64,
        &proof,
        &answer.checkpoint,
        &toml,
        NOW,
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entry"]["kind"], "claim");
    assert_eq!(v["steps"][2]["name"], "inclusion-proof");
    let v = parse(&verify_entry(
        &e.leaf,
        e.index as f64 + 1.0,
        &proof,
        &answer.checkpoint,
        &toml,
        NOW,
    ));
    assert_eq!(v["ok"], false);
    assert_eq!(v["steps"][2]["result"], "failed");
    let v = parse(&verify_entry(
        &e.leaf,
        0.5,
        &proof,
        &answer.checkpoint,
        &toml,
        NOW,
    ));
    assert_eq!(v["ok"], false);
}

#[test]
fn trust_files_and_first_use() {
    let (trust, _) = example_answer();
    let toml = trust_toml(&trust);
    let v = parse(&parse_trust(&toml));
    assert_eq!(v["trust"]["origin"], "localhost/mimi-ledger");
    assert_eq!(parse(&parse_trust("origin = 1"))["ok"], false);
    let info = json!({
        "origin": trust.origin(),
        "vkey": trust.log.log_key.to_string(),
        "hash": "blake3",
        "size": 3,
        "witnesses": [],
        "quorum": 0,
        "policy": serde_json::to_value(ledger_core::admission::Policy::default()).unwrap(),
        "mirror": {"of": "elsewhere"},
    });
    let v = parse(&trust_from_info(&info.to_string()));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        parse(&parse_trust(v["toml"].as_str().unwrap()))["trust"]["log_vkey"],
        trust.log.log_key.to_string()
    );
    let mut bad = info.clone();
    bad["origin"] = json!("someone.else");
    assert_eq!(parse(&trust_from_info(&bad.to_string()))["ok"], false);
}

#[test]
fn leaves_are_described_and_garbage_refused() {
    let (_, answer) = example_answer();
    let v = parse(&describe_leaf(&answer.entries[0].leaf));
    assert_eq!(v["kind"], "claim");
    assert_eq!(v["sii"], "tel:+14155550100");
    assert!(v["summary"].as_str().unwrap().contains("msp-a.example"));
    assert_eq!(parse(&describe_leaf("nonsense"))["ok"], false);
    assert_eq!(version(), env!("CARGO_PKG_VERSION"));
}
