//! `ledger lookup --dp A --dp B …` and `ledger watch --dp A --dp B …` over the real binaries
//! (issue 14, DP mirrors): the DPs are tried in order and the first answer that verifies (SPEC §6,
//! all of it) is the answer. A DP that is down, refuses (`outside-shard`, as a sharded mirror
//! does) or lies is skipped and reported — a lie as `rejected`, naming the failed step — and when
//! no DP verifies the exit status is 2 if one lied, else 1, with every DP tried named.

use std::io::{BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_core::api::LookupAnswer;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Role;
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::testkit::{claim, test_key};
use ledger_e2e::doubles::{closed_port_url, RefusingDp};
use ledger_e2e::{now, read_request_head, wait_for, LyingDp, Options, TestLog, TEST_ORIGIN};
use serde_json::Value;

const ALICE: &str = "tel:+14155550100";
const ALICE_A: &str = "mimi://msp-a.example/u/alice";
const ALICE_B: &str = "mimi://msp-b.example/u/alice";

// -------------------------------------------------------------------------------------------------
// Helpers.
// -------------------------------------------------------------------------------------------------

/// A log where MSPs A and B each claimed Alice's number, and a trust file for it (`ledger trust
/// init`), in a scratch folder.
struct World {
    log: TestLog,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let log = TestLog::start(Options::default());
        let (a, b) = (test_key("msp-a.example"), test_key("msp-b.example"));
        log.enroll(Role::Msp, &a).expect("enroll msp-a");
        log.enroll(Role::Msp, &b).expect("enroll msp-b");
        log.submit_ok(&claim(&a, ALICE, ALICE_A, now(), &["Personal"], None));
        log.submit_ok(&claim(&b, ALICE, ALICE_B, now(), &[], None));
        let dir = tempfile::tempdir().expect("tempdir");
        let w = World { log, dir };
        let out = w.ledger(&["trust", "init", "--log", &w.log.url()]);
        assert_eq!(out.status.code(), Some(0), "trust init:\n{}", text(&out));
        w
    }

    fn trust(&self) -> PathBuf {
        self.dir.path().join("trust.toml")
    }

    fn ledger(&self, args: &[&str]) -> Output {
        ledger_e2e::ledger_cli(&self.trust(), args)
    }

    /// `ledger lookup ALICE --json --dp D…`: the exit status, the JSON on stdout, all the output.
    fn lookup_json(&self, dps: &[&str]) -> (Option<i32>, Value, String) {
        let mut args = vec!["lookup", ALICE, "--json"];
        for dp in dps {
            args.extend(["--dp", dp]);
        }
        let out = self.ledger(&args);
        let json = ledger_e2e::stdout_json(&out);
        (out.status.code(), json, text(&out))
    }

    /// The honest answer, and a lie that drops its newest entry and fixes status and mappings to
    /// match (steps 1–4 pass; only the map, step 5, catches it).
    fn honest_and_hidden(&self) -> (LookupAnswer, LookupAnswer) {
        let honest = self.log.lookup(ALICE);
        assert_eq!(honest.entries.len(), 2);
        let mut hidden = honest.clone();
        hidden.entries.pop();
        LyingDp::refold(&mut hidden, now());
        assert_eq!(hidden.mappings.len(), 1, "the lie still maps msp-a");
        (honest, hidden)
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `skipped` list of a lookup's JSON as (dp, kind, slug or step).
fn skipped(json: &Value) -> Vec<(String, String, String)> {
    json["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("no skipped list in {json}"))
        .iter()
        .map(|s| {
            let what = s["slug"].as_str().or(s["step"].as_str()).unwrap_or("");
            (
                s["dp"].as_str().unwrap_or("").to_string(),
                s["kind"].as_str().unwrap_or("").to_string(),
                what.to_string(),
            )
        })
        .collect()
}

fn skip(dp: &str, kind: &str, what: &str) -> (String, String, String) {
    (dp.to_string(), kind.to_string(), what.to_string())
}

/// The MSPs of a verified lookup's mappings.
fn msps(json: &Value) -> Vec<String> {
    json["mappings"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|m| m["msp"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// An auditor double: answers every `POST /v1/audit` `consistent` and keeps the checkpoints it
/// was sent, so a test sees which answer `--audit` audited.
struct RecordingAuditor {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingAuditor {
    fn start() -> RecordingAuditor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(&s);
                let Some(head) = read_request_head(&mut reader) else {
                    continue;
                };
                let mut body = vec![0; head.content_length()];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(String::from_utf8_lossy(&body).into_owned());
                let answer = r#"{"verdict":"consistent","evidence":null,"detail":""}"#;
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{answer}",
                        answer.len()
                    )
                    .as_bytes(),
                );
            }
        });
        RecordingAuditor { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn assert_names_every_dp(all: &str, dps: &[&str]) {
    for dp in dps {
        assert!(all.contains(dp), "the error should name {dp}:\n{all}");
    }
}

// -------------------------------------------------------------------------------------------------
// A DP that lies, then the log.
// -------------------------------------------------------------------------------------------------

#[test]
fn a_lying_dp_is_rejected_and_the_next_dp_answers() {
    let w = World::new();
    let log = w.log.url();
    let (honest, hidden) = w.honest_and_hidden();
    let liar = LyingDp::answer(&hidden);

    // --json: the log's answer, verified; the liar named as rejected at step 5.
    let (code, json, all) = w.lookup_json(&[&liar.url, &log]);
    assert_eq!(code, Some(0), "a later DP verified:\n{all}");
    assert_eq!(json["verified"], true, "{all}");
    assert_eq!(json["dp"], log.as_str(), "{all}");
    assert_eq!(msps(&json), ["msp-a.example", "msp-b.example"], "{all}");
    assert_eq!(
        skipped(&json),
        [skip(&liar.url, "rejected", "completeness")],
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "DP {} served an answer that fails step 5 (completeness)",
            liar.url
        )),
        "the lie is reported loudly:\n{all}"
    );

    // The table: the same answer, and the same report on stderr.
    let out = w.ledger(&["lookup", ALICE, "--dp", &liar.url, "--dp", &log]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(ALICE_B), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("REJECTED: DP {}", liar.url)) && stderr.contains("(completeness)"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains(&format!("verified answer from {log}")),
        "{}",
        text(&out)
    );

    // A liar that changes the status (step 4), and one serving a checkpoint signed by another key
    // (step 1): rejected at their steps, in order; `--audit` audits the checkpoint that verified.
    let mut opted_out = honest.clone();
    opted_out.status = ledger_core::state::Status::OptedOut;
    opted_out.mappings.clear();
    let fold_liar = LyingDp::answer(&opted_out);
    let seed = ledger_core::TreeHash::Sha256.leaf_hash(b"not the log's key");
    let wrong_key = SignerKey::from_seed(TEST_ORIGIN, KeyAlg::Ed25519, seed).expect("key");
    let mut forged = honest.clone();
    let cp = SignedCheckpoint::parse(forged.checkpoint.as_bytes()).expect("checkpoint");
    let signed = SignedCheckpoint::sign(cp.checkpoint, &wrong_key).expect("sign");
    forged.checkpoint = String::from_utf8(signed.to_bytes()).expect("utf-8");
    let forger = LyingDp::answer(&forged);
    let auditor = RecordingAuditor::start();
    let out = w.ledger(&[
        "lookup",
        ALICE,
        "--json",
        "--dp",
        &fold_liar.url,
        "--dp",
        &forger.url,
        "--dp",
        &log,
        "--audit",
        &auditor.url,
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout[stdout.find('{').expect("json")..])
        .unwrap_or_else(|e| panic!("{e}:\n{all}"));
    assert_eq!(json["dp"], log.as_str(), "{all}");
    assert_eq!(
        skipped(&json),
        [
            skip(&fold_liar.url, "rejected", "state-fold"),
            skip(&forger.url, "rejected", "checkpoint-signature"),
        ],
        "{all}"
    );
    let seen = wait_for(Duration::from_secs(10), "the auditor's request", || {
        Some(auditor.seen()).filter(|s| !s.is_empty())
    });
    assert_eq!(seen.len(), 1, "one audit: {seen:?}");
    assert_eq!(
        seen[0], honest.checkpoint,
        "audited the verified checkpoint"
    );
    assert!(
        all.contains(&format!("audit by {}: consistent", auditor.url)),
        "{all}"
    );
}

// -------------------------------------------------------------------------------------------------
// A DP that is down, and one outside its shard.
// -------------------------------------------------------------------------------------------------

#[test]
fn an_unreachable_or_refusing_dp_is_skipped() {
    let w = World::new();
    let log = w.log.url();
    let down = closed_port_url();
    let (code, json, all) = w.lookup_json(&[&down, &log]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(json["verified"], true, "{all}");
    assert_eq!(json["dp"], log.as_str(), "{all}");
    assert_eq!(skipped(&json), [skip(&down, "unreachable", "")], "{all}");
    assert!(
        all.contains(&format!("skipped DP {down}: unreachable")),
        "{all}"
    );

    let shard = RefusingDp::serve(
        404,
        "outside-shard",
        "this mirror holds the SIIs under tel:+1212 only; see GET /v1/info",
    );
    let (code, json, all) = w.lookup_json(&[&shard.url, &log]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(json["dp"], log.as_str(), "{all}");
    assert_eq!(
        skipped(&json),
        [skip(&shard.url, "refused", "outside-shard")],
        "{all}"
    );
    assert_eq!(json["skipped"][0]["status"], 404, "{all}");
    assert!(
        all.contains(&format!("skipped DP {}: refused", shard.url))
            && all.contains("404 outside-shard"),
        "{all}"
    );
    assert_eq!(shard.requests(), 1, "one request per lookup");

    // Without --dp the trust file's log URL is the one DP, as before; with the log first, the
    // mirror after it is never asked.
    let (code, json, all) = w.lookup_json(&[]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(json["dp"], log.as_str(), "{all}");
    assert!(skipped(&json).is_empty(), "{all}");
    let (code, _, all) = w.lookup_json(&[&log, &shard.url]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(
        shard.requests(),
        1,
        "the DP after a verified answer is not asked"
    );
}

// -------------------------------------------------------------------------------------------------
// No DP verifies.
// -------------------------------------------------------------------------------------------------

#[test]
fn only_liars_exit_2_and_only_unreachable_or_refusing_dps_exit_1() {
    let w = World::new();
    let (honest, hidden) = w.honest_and_hidden();
    let liar = LyingDp::answer(&hidden);
    let mut other_sii = honest.clone();
    other_sii.sii = "tel:+14155550199".into();
    let liar2 = LyingDp::answer(&other_sii);
    let down = closed_port_url();
    let shard = RefusingDp::serve(404, "outside-shard", "not in this mirror's shards");
    let busy = RefusingDp::serve(503, "overloaded", "try later");

    // Two liars: exit 2, at the first liar's step, naming both.
    let (code, json, all) = w.lookup_json(&[&liar.url, &liar2.url]);
    assert_eq!(code, Some(2), "{all}");
    assert_eq!(json["verified"], false, "{all}");
    assert_eq!(json["step"], "completeness", "{all}");
    assert!(json.get("dp").is_none(), "no DP answered: {all}");
    assert_eq!(
        skipped(&json),
        [
            skip(&liar.url, "rejected", "completeness"),
            skip(&liar2.url, "rejected", "entries"),
        ],
        "{all}"
    );
    assert!(
        all.contains("VERIFICATION FAILED at step 5 (completeness)"),
        "{all}"
    );
    assert!(all.contains("none of the 2 Discovery Providers"), "{all}");
    assert_names_every_dp(&all, &[&liar.url, &liar2.url]);

    // A liar among DPs that do not answer: still a lie, exit 2.
    let (code, json, all) = w.lookup_json(&[&down, &liar.url, &shard.url]);
    assert_eq!(code, Some(2), "{all}");
    assert_eq!(
        skipped(&json),
        [
            skip(&down, "unreachable", ""),
            skip(&liar.url, "rejected", "completeness"),
            skip(&shard.url, "refused", "outside-shard"),
        ],
        "{all}"
    );
    assert_names_every_dp(&all, &[&down, &liar.url, &shard.url]);

    // Nothing reachable or answering: exit 1, naming each DP and why.
    let (code, json, all) = w.lookup_json(&[&down, &shard.url, &busy.url]);
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(json["verified"], false, "{all}");
    assert!(json.get("step").is_none(), "nothing was rejected: {all}");
    assert_eq!(
        skipped(&json),
        [
            skip(&down, "unreachable", ""),
            skip(&shard.url, "refused", "outside-shard"),
            skip(&busy.url, "refused", "overloaded"),
        ],
        "{all}"
    );
    assert!(
        all.contains("none of the 3 Discovery Providers tried gave an answer"),
        "{all}"
    );
    assert!(!all.contains("VERIFICATION FAILED"), "{all}");
    assert_names_every_dp(&all, &[&down, &shard.url, &busy.url]);
    assert!(all.contains("503 overloaded"), "{all}");

    // One DP: the messages of before (exit 1 unreachable, exit 2 rejected).
    let out = w.ledger(&["lookup", ALICE, "--dp", &down]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the Discovery Provider did not answer: cannot reach"));
    let out = w.ledger(&["lookup", ALICE, "--dp", &liar.url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!(
        "VERIFICATION FAILED at step 5 (completeness): the answer from {} was rejected",
        liar.url
    )));
}

// -------------------------------------------------------------------------------------------------
// `ledger watch` tries the DPs the same way.
// -------------------------------------------------------------------------------------------------

fn watch(w: &World, state: &Path, dps: &[&str]) -> Output {
    let state = state.display().to_string();
    let mut args = vec!["watch", ALICE, "--state", &state];
    for dp in dps {
        args.extend(["--dp", dp]);
    }
    w.ledger(&args)
}

#[test]
fn watch_skips_a_lying_dp_and_reports_from_the_next() {
    let w = World::new();
    let log = w.log.url();
    let (_, hidden) = w.honest_and_hidden();
    let liar = LyingDp::answer(&hidden);
    let down = closed_port_url();
    let state = w.dir.path().join("watch.json");

    // First run: both claims reported from the log, the liar and the closed port named.
    let out = watch(&w, &state, &[&down, &liar.url, &log]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "changes reported:\n{all}");
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(alerts.len(), 2, "{all}");
    assert!(
        all.contains(&format!(
            "{ALICE}: REJECTED: DP {} served an answer that fails step 5 (completeness)",
            liar.url
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!("{ALICE}: skipped DP {down}: unreachable")),
        "{all}"
    );

    // Only the liar: exit 2, the state kept; then the log again: no change.
    let before = std::fs::read(&state).expect("state");
    let out = watch(&w, &state, &[&down, &liar.url]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert_names_every_dp(&all, &[&down, &liar.url]);
    assert_eq!(std::fs::read(&state).expect("state"), before, "state kept");
    let out = watch(&w, &state, &[&liar.url, &log]);
    assert_eq!(out.status.code(), Some(0), "no change:\n{}", text(&out));
    // Only DPs that do not answer: exit 1.
    let out = watch(&w, &state, &[&down]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
