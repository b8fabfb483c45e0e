//! # ledger-wasm
//!
//! `ledger-core`'s client-side rules for the browser: the web explorer (`explorer/`) verifies every
//! Discovery Provider answer in the visitor's own browser with the same code the `ledger` CLI runs —
//! SPEC §6 `verify_lookup` with §9 completeness, checkpoint and witness cosignature verification,
//! inclusion proofs, the trust file, and SII canonicalization. Nothing here decides anything
//! itself: each export parses its inputs, calls `ledger-core`, and reports the outcome.
//!
//! Every export takes strings and numbers and returns one JSON string, `{"ok": true, …}` or
//! `{"ok": false, "error": "…"}`; none throws. JSON strings rather than `JsValue`s keep the crate
//! testable natively (`cargo test -p ledger-wasm`, where `JsValue` cannot exist) and make the
//! contract with the page one documented shape per function (docs/explorer.md). Times are Unix
//! seconds passed in by the page (`Date.now() / 1000`): the page's clock is the visitor's, as the
//! CLI's is the user's.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod report;

use ledger_core::api::b64::{decode_hash, encode_hash};
use ledger_core::api::{Info, LookupAnswer};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Leaf;
use ledger_core::lookup::{verify_lookup_for, Step};
use ledger_core::sii::{Sii, SiiKind};
use ledger_core::tree::verify_inclusion;
use ledger_core::trust::{CheckpointRefused, TrustedLog};
use ledger_core::trust_file::TrustFile;
use ledger_core::Hash;
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

use report::{cosigners, describe_leaf as describe, steps, CheckpointReport, Failure, TrustReport};

/// `{"ok": true, …fields}` — or the verdict `fields` carries as its own `ok` (a verification
/// that ran and failed is a report, not an error).
fn ok(fields: impl Serialize) -> String {
    match serde_json::to_value(fields) {
        Ok(Value::Object(mut m)) => {
            m.entry("ok").or_insert(Value::Bool(true));
            Value::Object(m).to_string()
        }
        Ok(_) => error("internal: a report is not a JSON object"),
        Err(e) => error(format!("internal: cannot encode the report: {e}")),
    }
}

/// `{"ok": false, "error": …}`.
fn error(message: impl std::fmt::Display) -> String {
    json!({ "ok": false, "error": message.to_string() }).to_string()
}

/// Parses a trust file's TOML and checks it as the CLI does.
fn load_trust(toml_text: &str) -> Result<(TrustFile, ledger_core::lookup::Trust), String> {
    let file: TrustFile =
        toml::from_str(toml_text).map_err(|e| format!("the trust file is not valid: {e}"))?;
    let trust = file
        .trust()
        .map_err(|e| format!("the trust file is not valid: {e}"))?;
    Ok((file, trust))
}

/// This crate's version (the explorer shows it, so a visitor knows which rules ran).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Canonicalizes an identifier typed as a person would (`+1 (415) 555-0100`, `(415) 555-0100`
/// with `default_region` `US`, `tel:+1…`, `alice@example.com`, `mailto:…`); `default_region` is
/// an ISO 3166 code or empty. → `{"ok", "sii", "kind": "tel"|"mailto"}`.
#[wasm_bindgen]
pub fn canonicalize(input: &str, default_region: &str) -> String {
    let region = Some(default_region.trim()).filter(|r| !r.is_empty());
    match Sii::from_human(input, region) {
        Ok(sii) => ok(json!({
            "sii": sii.as_str(),
            "kind": match sii.kind() { SiiKind::Tel => "tel", SiiKind::Mailto => "mailto" },
        })),
        Err(e) => error(e),
    }
}

/// Parses and checks a trust file (TOML, as `ledger trust init` writes it). → `{"ok", "trust"}`.
#[wasm_bindgen]
pub fn parse_trust(toml_text: &str) -> String {
    match load_trust(toml_text) {
        Ok((file, _)) => ok(json!({ "trust": TrustReport::from(&file) })),
        Err(e) => error(e),
    }
}

/// Trust on first use: the trust file for the log as its DP describes it in `GET /v1/info`.
/// → `{"ok", "toml", "trust"}`. The page must say that this trusts the DP's word.
#[wasm_bindgen]
pub fn trust_from_info(info_json: &str) -> String {
    let info: Info = match serde_json::from_str(info_json) {
        Ok(i) => i,
        Err(e) => return error(format!("the /v1/info answer is not valid: {e}")),
    };
    let log = match TrustedLog::parse(
        &info.origin,
        &info.vkey,
        info.hash,
        &info.witnesses,
        info.quorum,
        None,
    ) {
        Ok(l) => l,
        Err(e) => return error(format!("the /v1/info answer describes no valid log: {e}")),
    };
    let file = TrustFile::for_log(None, &log);
    match toml::to_string(&file) {
        Ok(text) => ok(json!({ "toml": text, "trust": TrustReport::from(&file) })),
        Err(e) => error(format!("cannot write the trust file: {e}")),
    }
}

/// Verifies a DP's `GET /v1/lookup` answer for `query_sii` (canonical) per SPEC §6 and §9 against
/// the trust file, at `now`. → `{"ok", "sii", "status", "steps", "failure", "checkpoint",
/// "cosigners", "mappings", "history", "map_index"}`; when `ok` is false `status` is null and
/// `mappings`, `history` and `cosigners` are empty.
#[wasm_bindgen]
pub fn verify_lookup(answer_json: &str, trust_toml: &str, query_sii: &str, now: f64) -> String {
    let now = unix(now);
    let (_, trust) = match load_trust(trust_toml) {
        Ok(t) => t,
        Err(e) => return error(e),
    };
    let query = match Sii::parse(query_sii) {
        Ok(s) => s,
        Err(e) => return error(format!("the identifier asked about: {e}")),
    };
    let rejected = |step: Step, detail: String| {
        ok(json!({
            "ok": false,
            "sii": query.as_str(),
            "status": null,
            "steps": steps(&report::LOOKUP_STEPS, Some((step, &detail))),
            "failure": Failure { number: step.number(), name: step.as_str(), detail: detail.clone() },
            "checkpoint": null,
            "cosigners": [],
            "mappings": [],
            "history": [],
            "map_index": null,
        }))
    };
    let answer: LookupAnswer = match serde_json::from_str(answer_json) {
        Ok(a) => a,
        Err(e) => return rejected(Step::Malformed, format!("not a lookup answer: {e}")),
    };
    match verify_lookup_for(&query, &answer, &trust, now) {
        Ok(v) => ok(json!({
            "sii": v.sii.as_str(),
            "status": v.status.as_str(),
            "steps": steps(&report::LOOKUP_STEPS, None),
            "failure": null,
            "checkpoint": CheckpointReport::from(&v.checkpoint),
            "cosigners": cosigners(&v.cosigners, now),
            "mappings": v.mappings.iter().map(report::MappingReport::from).collect::<Vec<_>>(),
            "history": v.entries.iter().map(|(index, entry)| {
                let signer = answer.entries.iter().find(|p| p.index == *index)
                    .and_then(|p| Leaf::parse(p.leaf.as_bytes()).ok())
                    .map(|l| l.signer_name().to_string())
                    .unwrap_or_default();
                let mut r = serde_json::to_value(report::describe(entry, &signer)).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut r {
                    m.insert("index".into(), json!(index));
                }
                r
            }).collect::<Vec<_>>(),
            "map_index": v.map_index,
        })),
        Err(r) => rejected(r.step(), r.detail().to_string()),
    }
}

/// The steps `verify_checkpoint` and `verify_entry` run.
const CHECKPOINT_STEPS: [Step; 2] = [Step::Checkpoint, Step::Witnesses];

/// SPEC §6 step 1 on a checkpoint note: the log's signature, and the witness quorum the trust
/// file asks for. → `{"ok", "error", "failed_step", "steps", "origin", "size", "root_hash",
/// "cosigners", "quorum"}` (the tree head and the cosigners that verify are given even when the
/// quorum is not met; nothing when the log's signature fails).
#[wasm_bindgen]
pub fn verify_checkpoint(note_text: &str, trust_toml: &str, now: f64) -> String {
    let now = unix(now);
    let (_, trust) = match load_trust(trust_toml) {
        Ok(t) => t,
        Err(e) => return error(e),
    };
    let (checkpoint, outcome) = check_checkpoint(&trust.log, note_text, now);
    let (failed_step, detail) = match &outcome {
        Ok(_) => (None, None),
        Err((step, d)) => (Some(*step), Some(d.clone())),
    };
    let shown = checkpoint
        .as_ref()
        .filter(|_| failed_step != Some(Step::Checkpoint));
    let listed = match (&outcome, shown) {
        (Ok(c), _) => c.clone(),
        (Err(_), Some(c)) => c.verify_cosignatures(&trust.log.witnesses),
        (Err(_), None) => Vec::new(),
    };
    ok(json!({
        "ok": outcome.is_ok(),
        "error": detail,
        "failed_step": failed_step.map(Step::as_str),
        "steps": steps(&CHECKPOINT_STEPS, failed_step.zip(detail.as_deref())),
        "origin": shown.map(|c| c.checkpoint.origin.clone()),
        "size": shown.map(|c| c.checkpoint.size),
        "root_hash": shown.map(|c| encode_hash(&c.checkpoint.root)),
        "cosigners": cosigners(&listed, now),
        "quorum": trust.log.quorum,
    }))
}

/// The result of step 1 on a note: the parsed checkpoint (when it parses) and the cosigners that
/// verified, or the failed step and why.
type CheckpointOutcome = (
    Option<SignedCheckpoint>,
    Result<Vec<(ledger_core::key::VerifierKey, u64)>, (Step, String)>,
);

fn check_checkpoint(log: &TrustedLog, note_text: &str, now: u64) -> CheckpointOutcome {
    let parsed = SignedCheckpoint::parse(note_text.as_bytes()).ok();
    let outcome = log
        .verify_note(note_text.as_bytes(), now)
        .map(|(_, c)| c)
        .map_err(|e| match e {
            CheckpointRefused::Witnesses(e) => (Step::Witnesses, e.to_string()),
            other => (Step::Checkpoint, other.to_string()),
        });
    (parsed, outcome)
}

/// Verifies that `leaf_text` is the leaf at `index` in the tree of a checkpoint: step 1 on the
/// checkpoint, then the RFC 9162 inclusion proof (`inclusion_json`: the JSON array of base64
/// hashes from `GET /v1/proof/inclusion`). → `{"ok", "error", "leaf_hash", "checkpoint",
/// "steps", "entry"}`; `entry` describes the leaf (it parses even when the proof fails, and the
/// page says which).
#[wasm_bindgen]
pub fn verify_entry(
    leaf_text: &str,
    index: f64,
    inclusion_json: &str,
    checkpoint_text: &str,
    trust_toml: &str,
    now: f64,
) -> String {
    let now = unix(now);
    let (_, trust) = match load_trust(trust_toml) {
        Ok(t) => t,
        Err(e) => return error(e),
    };
    let all = [Step::Checkpoint, Step::Witnesses, Step::Inclusion];
    let leaf_hash = trust.log.hash.leaf_hash(leaf_text.as_bytes());
    let entry = Leaf::parse(leaf_text.as_bytes())
        .map(|l| serde_json::to_value(describe(&l)).unwrap_or(Value::Null))
        .unwrap_or_else(|e| json!({ "error": format!("not a valid leaf: {e}") }));
    let (checkpoint, outcome) = check_checkpoint(&trust.log, checkpoint_text, now);
    let result = outcome.and_then(|_| {
        let c = checkpoint.as_ref().ok_or((
            Step::Checkpoint,
            "the checkpoint does not parse".to_string(),
        ))?;
        let index = exact_u64(index).ok_or((
            Step::Inclusion,
            format!("index {index} is not a whole number"),
        ))?;
        let proof: Vec<String> = serde_json::from_str(inclusion_json).map_err(|e| {
            (
                Step::Inclusion,
                format!("the proof is not a JSON array of hashes: {e}"),
            )
        })?;
        let proof = proof
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Result<Vec<Hash>, _>>()
            .map_err(|e| (Step::Inclusion, e))?;
        verify_inclusion(
            trust.log.hash,
            index,
            c.checkpoint.size,
            &leaf_hash,
            &proof,
            &c.checkpoint.root,
        )
        .map_err(|e| (Step::Inclusion, format!("leaf {index}: {e}")))
    });
    let failed = result.as_ref().err().map(|(s, d)| (*s, d.as_str()));
    ok(json!({
        "ok": result.is_ok(),
        "error": failed.map(|(_, d)| d),
        "leaf_hash": encode_hash(&leaf_hash),
        "checkpoint": checkpoint
            .as_ref()
            .filter(|_| failed.map(|f| f.0) != Some(Step::Checkpoint))
            .map(CheckpointReport::from),
        "steps": steps(&all, failed),
        "entry": entry,
    }))
}

/// Describes a leaf (parsing only, no verification: the page labels it so). → `{"ok", "kind",
/// "sii"?, "msp"?, "ssi"?, "tags", "time", "signer", "attested_by", "summary"}`.
#[wasm_bindgen]
pub fn describe_leaf(leaf_text: &str) -> String {
    match Leaf::parse(leaf_text.as_bytes()) {
        Ok(l) => ok(describe(&l)),
        Err(e) => error(format!("not a valid leaf: {e}")),
    }
}

/// A JS number as Unix seconds (fractions dropped, negatives and NaN as 0).
fn unix(t: f64) -> u64 {
    if t.is_finite() && t > 0.0 {
        t as u64
    } else {
        0
    }
}

/// A JS number that is exactly a non-negative integer (indices must not be rounded).
fn exact_u64(n: f64) -> Option<u64> {
    (n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 9_007_199_254_740_992.0)
        .then_some(n as u64)
}

#[cfg(test)]
mod tests;
