//! The attack scenarios of the MIMI discovery seed (issue 7), each over the real binaries on
//! 127.0.0.1: `log-server`, `ledger`, `idprover`, `auditor` and `monitor`.
//!
//! 1. a rogue MSP claims a watched number;
//! 2. the log shows two views (split view);
//! 3. a Discovery Provider omits or alters a mapping;
//! 4. number porting;
//! 5. key compromise and re-enrollment;
//! 6. `kill -9` of every component mid-run.
//!
//! Entries are signed here with `ledger_core::testkit` and posted straight to the log (fast); what
//! is asserted is what the binaries do with them: the monitor's alerts, the auditors' evidence and
//! cosignatures, and the `ledger` client's verdict (exit status and failed step).

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_core::api::LookupAnswer;
use ledger_core::entry::{Action, Leaf, Role, SignedAttestation};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::testkit::{self, MemLog};
use ledger_core::TreeHash;
use ledger_e2e::{
    idprover_binary, now, wait_for, workspace_binary, IdProver, LyingDp, Options, Service, TestLog,
    TileServer,
};

const ALICE: &str = "tel:+14155550100";
const BOB: &str = "tel:+14155550199";
/// How long a scenario waits for an asynchronous outcome (a poll, a cosignature, an alert).
const DEADLINE: Duration = Duration::from_secs(30);

// -------------------------------------------------------------------------------------------------
// Binaries and small helpers.
// -------------------------------------------------------------------------------------------------

fn ledger_bin() -> PathBuf {
    workspace_binary("ledger-cli", "client", "ledger")
}
fn monitor_bin() -> PathBuf {
    workspace_binary("monitor", "monitor", "monitor")
}
fn auditor_bin() -> PathBuf {
    workspace_binary("auditor", "auditor", "auditor")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A key named `name`, different for each `generation` (a fresh key after a compromise).
fn key(name: &str, generation: u8) -> SignerKey {
    if generation == 0 {
        return testkit::test_key(name);
    }
    let seed = TreeHash::Sha256.leaf_hash(format!("{name} generation {generation}").as_bytes());
    SignerKey::from_seed(name, KeyAlg::Ed25519, seed).expect("key")
}

/// A claim of `sii` by `msp` for `ssi`, attested by `prover` when given.
fn claim(msp: &SignerKey, sii: &str, ssi: &str, tag: &str, prover: Option<&SignerKey>) -> Leaf {
    let t = now();
    let att =
        prover.map(|p| testkit::attestation(p, Action::Claim, sii, Some((msp.name(), ssi)), t - 5));
    testkit::claim(msp, sii, ssi, t, &[tag], att)
}

/// A log started with `opts` where MSP A (`msp-a.example`), a second MSP named `other` and the
/// identity prover (`prover.example`) are enrolled, in that order; returns the log and their keys.
fn log_with_msps(opts: Options, other: &str) -> (TestLog, SignerKey, SignerKey, SignerKey) {
    let log = TestLog::start(opts);
    let (msp_a, other, prover) = (
        key("msp-a.example", 0),
        key(other, 0),
        key("prover.example", 0),
    );
    log.enroll(Role::Msp, &msp_a);
    log.enroll(Role::Msp, &other);
    log.enroll(Role::Prover, &prover);
    (log, msp_a, other, prover)
}

/// Submits MSP A's claim of Alice's number for `mimi://msp-a.example/u/alice`, tagged
/// `Personal` and attested by `prover`, which `log` must admit; returns the receipt.
fn claim_alice_for_msp_a(
    log: &TestLog,
    msp_a: &SignerKey,
    prover: &SignerKey,
) -> ledger_core::api::Receipt {
    log.submit_ok(&claim(
        msp_a,
        ALICE,
        "mimi://msp-a.example/u/alice",
        "Personal",
        Some(prover),
    ))
}

/// A scratch folder for trust files, configurations and states.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(
            tempfile::Builder::new()
                .prefix("ledger-scenario-")
                .tempdir()
                .expect("tempdir"),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// What a `ledger` client trusts.
#[derive(Clone)]
struct ClientTrust {
    log_url: String,
    log_vkey: String,
    hash: TreeHash,
    witnesses: Vec<String>,
    quorum: usize,
    provers: Vec<String>,
    require_attestation: bool,
}

impl ClientTrust {
    fn of(log: &TestLog) -> ClientTrust {
        ClientTrust {
            log_url: log.url(),
            log_vkey: log.vkey().to_string(),
            hash: log.hash(),
            witnesses: Vec::new(),
            quorum: 0,
            provers: Vec::new(),
            require_attestation: false,
        }
    }

    /// Writes the trust file (docs/client.md, "Trust file reference") to `path`.
    fn write(&self, path: &Path) {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let origin = self.log_vkey.split('+').next().expect("vkey name");
        let text = format!(
            "log_url = {:?}\norigin = {origin:?}\nlog_vkey = {:?}\nhash = {:?}\nwitnesses = [{}]\n\
             quorum = {}\nprovers = [{}]\nrequire_attestation = {}\nlast_seen_size = 0\n",
            self.log_url,
            self.log_vkey,
            self.hash.name(),
            list(&self.witnesses),
            self.quorum,
            list(&self.provers),
            self.require_attestation,
        );
        std::fs::write(path, text).expect("write trust file");
    }
}

/// Runs `ledger --trust <trust> lookup <sii> [--dp <dp>] --json` and returns its exit code and the
/// parsed JSON result (stdout).
fn lookup(trust: &Path, sii: &str, dp: Option<&str>) -> (i32, serde_json::Value, String) {
    let mut c = Command::new(ledger_bin());
    c.arg("--trust").arg(trust).args(["lookup", sii, "--json"]);
    if let Some(dp) = dp {
        c.args(["--dp", dp]);
    }
    let out = c
        .env_remove("LEDGER_TRUST")
        .stdin(Stdio::null())
        .output()
        .expect("run ledger");
    // The JSON result is printed after the `SII:` line.
    let text = stdout(&out);
    let json = text
        .find('{')
        .and_then(|at| serde_json::from_str(&text[at..]).ok())
        .unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, all_output(&out))
}

/// `lookup` expecting a verified answer; returns the JSON.
#[track_caller]
fn lookup_ok(trust: &Path, sii: &str, dp: Option<&str>) -> serde_json::Value {
    let (code, json, all) = lookup(trust, sii, dp);
    assert_eq!(code, 0, "lookup of {sii} should verify:\n{all}");
    assert_eq!(json["verified"], true, "{all}");
    json
}

/// `lookup` expecting a rejection at `step` (exit 2).
#[track_caller]
fn lookup_rejected(trust: &Path, sii: &str, dp: Option<&str>, step: &str) -> serde_json::Value {
    let (code, json, all) = lookup(trust, sii, dp);
    assert_eq!(
        code, 2,
        "lookup of {sii} should fail verification at {step}:\n{all}"
    );
    assert_eq!(json["verified"], false, "{all}");
    assert_eq!(json["step"], step, "{all}");
    assert!(all.contains("VERIFICATION FAILED"), "{all}");
    json
}

/// The MSPs of the current mappings in a verified lookup's JSON.
fn mapped_msps(json: &serde_json::Value) -> Vec<String> {
    json["mappings"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|m| m["msp"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

// -------------------------------------------------------------------------------------------------
// The monitor and the auditors.
// -------------------------------------------------------------------------------------------------

/// A monitor configuration for one log, watching `watches` (SII, allowed MSPs), alerts to a file.
fn monitor_config(
    dir: &Scratch,
    log_url: &str,
    log_vkey: &str,
    hash: TreeHash,
    watches: &[(&str, &[&str])],
) -> PathBuf {
    let origin = log_vkey.split('+').next().expect("vkey name");
    let mut text = format!(
        "state_dir = {:?}\npoll_interval_s = 1\n\n[[log]]\nurl = {log_url:?}\norigin = {origin:?}\n\
         vkey = {log_vkey:?}\nhash = {:?}\n",
        dir.path("monitor-state").display().to_string(),
        hash.name()
    );
    for (sii, allowed) in watches {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        text.push_str(&format!(
            "\n[[watch]]\nsii = {sii:?}\nallowed = [{}]\n",
            allowed.join(", ")
        ));
    }
    text.push_str(&format!(
        "\n[rules]\nunattested_claim = \"watched\"\ntrusted_provers = [\"prover.example\"]\n\n\
         [[sink]]\ntype = \"file\"\npath = {:?}\n",
        dir.path("alerts.jsonl").display().to_string()
    ));
    let path = dir.path("monitor.toml");
    std::fs::write(&path, text).expect("write monitor.toml");
    path
}

/// Runs `monitor --once` with `config`; panics unless it exits 0.
fn monitor_once(config: &Path) {
    let out = Command::new(monitor_bin())
        .arg("--config")
        .arg(config)
        .args(["--once", "--no-progress"])
        .env("LEDGER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run monitor");
    assert_eq!(
        out.status.code(),
        Some(0),
        "monitor --once:\n{}",
        all_output(&out)
    );
}

/// The alerts in the monitor's file sink.
fn alerts(dir: &Scratch) -> Vec<serde_json::Value> {
    let Ok(f) = std::fs::File::open(dir.path("alerts.jsonl")) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(&l).expect("alert line is JSON"))
        .collect()
}

/// Alerts of `kind` for `msp`.
fn alerts_of<'a>(
    all: &'a [serde_json::Value],
    kind: &str,
    msp: &str,
) -> Vec<&'a serde_json::Value> {
    all.iter()
        .filter(|a| a["kind"] == kind && a["msp"] == msp)
        .collect()
}

/// An auditor with its own folder, key and configuration.
struct Auditor {
    dir: tempfile::TempDir,
    vkey: String,
    svc: Option<Service>,
}

impl Auditor {
    /// Creates the key and configuration (polling `log_url` every 200 ms, gossiping with `peers`)
    /// and starts it.
    fn start(name: &str, log: &TestLog, log_url: &str, peers: &[String]) -> Auditor {
        let dir = tempfile::Builder::new()
            .prefix("ledger-auditor-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new(auditor_bin())
            .args(["keygen", "--name", name, "--out"])
            .arg(dir.path().join("witness.key"))
            .output()
            .expect("auditor keygen");
        assert!(out.status.success(), "auditor keygen: {}", all_output(&out));
        let vkey = stdout(&out).trim().to_string();
        let mut a = Auditor {
            dir,
            vkey,
            svc: None,
        };
        a.configure(log, log_url, peers);
        let config = a.dir.path().join("auditor.toml");
        a.svc = Some(Service::start(
            name,
            &auditor_bin(),
            &[
                os("--config"),
                config.as_os_str(),
                os("--listen"),
                os("127.0.0.1:0"),
            ],
            &[("LEDGER_LOG", "warn")],
            true,
        ));
        a
    }

    /// (Re)writes the configuration: the log at `log_url`, the `peers`.
    fn configure(&self, log: &TestLog, log_url: &str, peers: &[String]) {
        let mut text = format!(
            "state_dir = \"state\"\nkey_file = \"witness.key\"\npoll_interval_ms = 200\n\n\
             [[log]]\norigin = {:?}\nvkey = {:?}\nhash = {:?}\nurl = {log_url:?}\n",
            log.vkey().name(),
            log.vkey().to_string(),
            log.hash().name()
        );
        for p in peers {
            text.push_str(&format!("\n[[peer]]\nurl = {p:?}\n"));
        }
        text.push_str("\n[alerts]\nstdout = true\n");
        std::fs::write(self.dir.path().join("auditor.toml"), text).expect("auditor.toml");
    }

    fn svc(&mut self) -> &mut Service {
        self.svc.as_mut().expect("started")
    }

    fn url(&self) -> String {
        self.svc.as_ref().expect("started").url()
    }

    /// The latest checkpoint this auditor cosigned (`GET /<hex sha256(origin)>/checkpoint`).
    fn cosigned(&self, origin: &str) -> Option<String> {
        let r = reqwest::blocking::get(format!("{}/{}/checkpoint", self.url(), sha256_hex(origin)))
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().ok()
    }

    /// Waits until this auditor cosigned exactly the checkpoint body of `note` (origin, size,
    /// root); returns its cosignature line(s).
    fn wait_cosigned(&self, note: &str) -> Vec<String> {
        let body = checkpoint_body(note);
        let origin = body.lines().next().unwrap_or_default().to_string();
        wait_for(
            DEADLINE,
            &format!("{} to cosign {body:?}", self.vkey),
            || {
                let c = self.cosigned(&origin)?;
                (checkpoint_body(&c) == body).then(|| cosignature_lines(&c, &self.vkey))
            },
        )
    }

    fn audit(&self, note: &str) -> serde_json::Value {
        reqwest::blocking::Client::new()
            .post(format!("{}/v1/audit", self.url()))
            .header("Content-Type", "text/plain")
            .body(note.to_string())
            .send()
            .expect("audit")
            .json()
            .expect("audit json")
    }

    fn evidence(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = reqwest::blocking::get(format!("{}/v1/evidence", self.url()))
            .expect("evidence")
            .json()
            .expect("evidence json");
        v["evidence"].as_array().cloned().unwrap_or_default()
    }
}

/// The text of a note before its signatures.
fn checkpoint_body(note: &str) -> String {
    note.split("\n\n").next().unwrap_or_default().to_string()
}

/// The signature lines of `note` made by the key named like `vkey`.
fn cosignature_lines(note: &str, vkey: &str) -> Vec<String> {
    let name = vkey.split('+').next().unwrap_or_default();
    note.split("\n\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.strip_prefix("— ").and_then(|r| r.split(' ').next()) == Some(name))
        .map(str::to_string)
        .collect()
}

/// `note` with the signature `lines` added.
fn with_signatures(note: &str, lines: &[String]) -> String {
    let mut s = note.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Hex SHA-256 of `s`: the auditors' gossip path is `/<hex sha256(origin)>/checkpoint`.
fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

// -------------------------------------------------------------------------------------------------
// 1. A rogue MSP.
// -------------------------------------------------------------------------------------------------

/// A rogue MSP claims Alice's number without her consent: the monitor watching the number raises
/// `unexpected-claimant` and `unattested-claim`; a client that requires attestations rejects the
/// answer that carries the claim, and one that does not shows it without an attester.
#[test]
fn rogue_msp_claim_is_flagged_by_the_monitor_and_rejected_by_a_strict_client() {
    let (log, msp_a, rogue, prover) = log_with_msps(Options::default(), "rogue.example");
    claim_alice_for_msp_a(&log, &msp_a, &prover);
    log.submit_ok(&claim(
        &msp_a,
        BOB,
        "mimi://msp-a.example/u/bob",
        "Work",
        Some(&prover),
    ));
    let rogue_index = log
        .submit_ok(&claim(
            &rogue,
            ALICE,
            "mimi://rogue.example/u/mallory",
            "Personal",
            None,
        ))
        .index;

    let dir = Scratch::new();
    let config = monitor_config(
        &dir,
        &log.url(),
        &log.vkey().to_string(),
        log.hash(),
        &[(ALICE, &["msp-a.example"])],
    );
    monitor_once(&config);
    let all = alerts(&dir);
    for kind in ["unexpected-claimant", "unattested-claim"] {
        let hits = alerts_of(&all, kind, "rogue.example");
        assert_eq!(
            hits.len(),
            1,
            "one {kind} alert for the rogue claim: {all:?}"
        );
        assert_eq!(hits[0]["index"], rogue_index, "{kind}");
        assert_eq!(hits[0]["sii"], ALICE, "{kind}");
    }
    assert!(
        all.iter().all(|a| a["msp"] != "msp-a.example"),
        "the allowed, attested claims raise nothing: {all:?}"
    );

    let mut t = ClientTrust::of(&log);
    t.provers = vec![prover.verifier().to_string()];
    // A lenient sender sees the rogue mapping, with no attester.
    t.write(&dir.path("lenient.toml"));
    let json = lookup_ok(&dir.path("lenient.toml"), ALICE, None);
    assert_eq!(mapped_msps(&json), ["msp-a.example", "rogue.example"]);
    assert_eq!(json["mappings"][1]["attested_by"], serde_json::Value::Null);
    assert_eq!(json["mappings"][0]["attested_by"], "prover.example");
    // A sender that requires attestations rejects the whole answer at step 3.
    t.require_attestation = true;
    t.write(&dir.path("strict.toml"));
    let json = lookup_rejected(&dir.path("strict.toml"), ALICE, None, "entries");
    assert!(
        json["detail"]
            .as_str()
            .unwrap_or("")
            .contains("attestation"),
        "{json}"
    );
    // ... and still accepts numbers nobody attacked.
    let json = lookup_ok(&dir.path("strict.toml"), BOB, None);
    assert_eq!(mapped_msps(&json), ["msp-a.example"]);
}

// -------------------------------------------------------------------------------------------------
// 2. Split view.
// -------------------------------------------------------------------------------------------------

/// The log operator runs two logs with one key and one origin: view 1 maps Alice's number to
/// MSP A, view 2 (shown to a victim) to the attacker. Auditors 1 and 3 watch view 1, auditor 2 is
/// fooled into cosigning view 2. Gossip gives auditors 1 and 3 `split-view` evidence holding both
/// signed checkpoints, `/v1/audit` calls view 2 `inconsistent`, a monitor following view 1 that
/// gossips with auditor 2 raises `split-view` once, and a client requiring 2 of the 3
/// cosignatures accepts view 1 (cosigned by 1 and 3) but refuses view 2 at `witness-quorum`,
/// whether the DP attaches auditor 2's cosignature or serves the log's bare checkpoint.
#[test]
fn split_view_gives_auditor_evidence_and_a_quorum_client_refuses() {
    let view1 = TestLog::start(Options::default());
    let log_key = view1.data_dir().join("log.key");
    // The dishonest operator keeps a second checkpoint lock for the second view: with the key's
    // own lock, the two processes would refuse each other's checkpoints.
    let view2_lock = view1.data_dir().join("view2.checkpoint");
    let view2 = TestLog::start(
        Options::default()
            .arg("--key")
            .arg(&log_key.display().to_string())
            .arg("--checkpoint-lock")
            .arg(&view2_lock.display().to_string()),
    );
    assert_eq!(view1.vkey(), view2.vkey(), "one log key, two logs");
    let origin = view1.vkey().name().to_string();

    // Both start at the same (empty) tree; the fooled auditor only ever sees view 2.
    let a2 = Auditor::start("auditor-2.example", &view1, &view2.url(), &[]);
    let (msp_a, attacker, prover) = (
        key("msp-a.example", 0),
        key("attacker.example", 0),
        key("prover.example", 0),
    );
    view1.enroll(Role::Msp, &msp_a);
    view1.enroll(Role::Prover, &prover);
    claim_alice_for_msp_a(&view1, &msp_a, &prover);
    let cp1 = String::from_utf8(view1.checkpoint().to_bytes()).expect("utf8");
    let mut a1 = Auditor::start("auditor-1.example", &view1, &view1.url(), &[a2.url()]);
    let a3 = Auditor::start(
        "auditor-3.example",
        &view1,
        &view1.url(),
        &[a2.url(), a1.url()],
    );
    let sigs1: Vec<String> = [&a1, &a3]
        .iter()
        .flat_map(|a| a.wait_cosigned(&cp1))
        .collect();

    // Now view 2 grows to the same size with the attacker's mapping.
    view2.enroll(Role::Msp, &attacker);
    view2.enroll(Role::Prover, &prover);
    view2.submit_ok(&claim(
        &attacker,
        ALICE,
        "mimi://attacker.example/u/eve",
        "Personal",
        Some(&prover),
    ));
    let cp2 = String::from_utf8(view2.checkpoint().to_bytes()).expect("utf8");
    assert_eq!(
        view1.checkpoint().checkpoint.size,
        view2.checkpoint().checkpoint.size
    );
    assert_ne!(checkpoint_body(&cp1), checkpoint_body(&cp2), "two views");
    let sigs2 = a2.wait_cosigned(&cp2);

    // Gossip: auditors 1 and 3 read auditor 2's cosigned checkpoint and keep the evidence.
    for a in [&a1, &a3] {
        let ev = wait_for(DEADLINE, "split-view evidence", || {
            let ev = a.evidence();
            ev.into_iter().find(|e| e["kind"] == "split-view")
        });
        let notes: Vec<String> = ev["checkpoints"]
            .as_array()
            .expect("checkpoints")
            .iter()
            .map(|c| checkpoint_body(c["note"].as_str().unwrap_or_default()))
            .collect();
        assert!(notes.contains(&checkpoint_body(&cp1)), "{ev}");
        assert!(notes.contains(&checkpoint_body(&cp2)), "{ev}");
        assert_eq!(ev["log"], origin.as_str());
        let verdict = a.audit(&cp2);
        assert_eq!(verdict["verdict"], "inconsistent", "{verdict}");
        assert_eq!(a.audit(&cp1)["verdict"], "consistent");
    }
    assert!(a1.svc().output().contains("split-view"), "alert line");

    // A monitor that follows view 1 and gossips with the fooled auditor sees view 2 too.
    let mdir = Scratch::new();
    let config = monitor_config(
        &mdir,
        &view1.url(),
        &view1.vkey().to_string(),
        view1.hash(),
        &[],
    );
    let text = std::fs::read_to_string(&config)
        .expect("read monitor.toml")
        .replacen(
            "[[log]]\n",
            &format!("[[log]]\nauditors = [{:?}]\n", a2.url()),
            1,
        );
    std::fs::write(&config, text).expect("write monitor.toml");
    monitor_once(&config);
    let all = alerts(&mdir);
    let splits: Vec<&serde_json::Value> =
        all.iter().filter(|a| a["kind"] == "split-view").collect();
    assert_eq!(splits.len(), 1, "one split-view from the monitor: {all:?}");
    assert_eq!(splits[0]["log"], origin.as_str());
    let detail = splits[0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&a2.url()), "names the peer: {detail}");
    monitor_once(&config);
    assert_eq!(alerts(&mdir).len(), all.len(), "not raised again");

    // A client requiring 2 of the 3 auditors.
    let dir = Scratch::new();
    let mut t = ClientTrust::of(&view1);
    t.witnesses = vec![a1.vkey.clone(), a2.vkey.clone(), a3.vkey.clone()];
    t.quorum = 2;
    let trust = dir.path("trust.toml");
    t.write(&trust);
    // View 1, with the cosignatures of auditors 1 and 3 attached, is accepted.
    let mut honest = view1.lookup(ALICE);
    assert_eq!(checkpoint_body(&honest.checkpoint), checkpoint_body(&cp1));
    honest.checkpoint = with_signatures(&honest.checkpoint, &sigs1);
    let dp = LyingDp::answer(&honest);
    let json = lookup_ok(&trust, ALICE, Some(&dp.url));
    assert_eq!(mapped_msps(&json), ["msp-a.example"]);
    assert_eq!(
        json["checkpoint"]["cosigners"].as_array().map(Vec::len),
        Some(2)
    );
    // View 2 with the fooled auditor's cosignature: one of two.
    let mut split = view2.lookup(ALICE);
    split.checkpoint = with_signatures(&split.checkpoint, &sigs2);
    let dp = LyingDp::answer(&split);
    lookup_rejected(&trust, ALICE, Some(&dp.url), "witness-quorum");
    // View 2 straight from the log, uncosigned.
    lookup_rejected(&trust, ALICE, Some(&view2.url()), "witness-quorum");
    // A client with no witnesses would have believed it: the quorum is what protects.
    let mut naive = t.clone();
    naive.witnesses.clear();
    naive.quorum = 0;
    naive.write(&dir.path("naive.toml"));
    let json = lookup_ok(&dir.path("naive.toml"), ALICE, Some(&view2.url()));
    assert_eq!(mapped_msps(&json), ["attacker.example"]);
}

// -------------------------------------------------------------------------------------------------
// 3. A Discovery Provider that omits or alters a mapping.
// -------------------------------------------------------------------------------------------------

/// Every omission or alteration fails at its SPEC §6 step, including the one steps 1–4 cannot
/// see — leaving out entries (the oldest, or the newest: a revoke) *and* folding what remains —
/// which the map (step 5, SPEC §9) rejects at `completeness`; the hidden entry is in the log.
#[test]
fn a_dp_that_omits_or_alters_a_mapping_fails_at_the_right_step() {
    let (log, msp_a, msp_b, prover) = log_with_msps(Options::default(), "msp-b.example");
    claim_alice_for_msp_a(&log, &msp_a, &prover);
    log.submit_ok(&claim(
        &msp_b,
        ALICE,
        "mimi://msp-b.example/u/al",
        "Work",
        Some(&prover),
    ));
    let honest = log.lookup(ALICE);
    assert_eq!(honest.entries.len(), 2);
    assert_eq!(honest.mappings.len(), 2);

    let dir = Scratch::new();
    let trust = dir.path("trust.toml");
    ClientTrust::of(&log).write(&trust);
    let json = lookup_ok(&trust, ALICE, Some(&LyingDp::answer(&honest).url));
    assert_eq!(mapped_msps(&json), ["msp-a.example", "msp-b.example"]);

    type Lie = (&'static str, &'static str, Box<dyn Fn(&mut LookupAnswer)>);
    let lies: Vec<Lie> = vec![
        (
            "omits MSP B's entry but still lists its mapping",
            "state-fold",
            Box::new(|a| {
                a.entries.remove(1);
            }),
        ),
        (
            "omits MSP B's mapping",
            "state-fold",
            Box::new(|a| {
                a.mappings.remove(1);
            }),
        ),
        (
            "lists a mapping for an index it does not show",
            "state-fold",
            Box::new(|a| {
                a.mappings.push(a.entries[1].index + 1);
            }),
        ),
        (
            "points Alice's number at the attacker's user (altered entry text)",
            "inclusion-proof",
            Box::new(|a| {
                a.entries[0].leaf = a.entries[0].leaf.replace("/u/alice", "/u/mallo");
            }),
        ),
        (
            "claims she opted out",
            "state-fold",
            Box::new(|a| {
                a.status = ledger_core::state::Status::OptedOut;
                a.mappings.clear();
            }),
        ),
        (
            "claims nobody maps the number",
            "state-fold",
            Box::new(|a| {
                a.status = ledger_core::state::Status::None;
                a.mappings.clear();
            }),
        ),
        (
            "drops the enroll leaf of MSP B's key",
            "entries",
            Box::new(|a| {
                a.keys.retain(|k| !k.leaf.contains("msp-b.example"));
            }),
        ),
        (
            "passes a claim off as a key leaf",
            "key-leaves",
            Box::new(|a| {
                let claim = a.entries[0].clone();
                a.keys.push(claim);
            }),
        ),
    ];
    for (what, step, lie) in lies {
        let mut a = honest.clone();
        lie(&mut a);
        let dp = LyingDp::answer(&a);
        let (code, json, all) = lookup(&trust, ALICE, Some(&dp.url));
        assert_eq!(code, 2, "{what}: must be rejected:\n{all}");
        assert_eq!(json["step"], step, "{what}:\n{all}");
    }

    // Leaving out an entry *and* its mapping gives an answer that folds correctly from what it
    // shows (steps 1–4 pass); the map shows an entry is missing (step 5).
    let mut omitted = honest.clone();
    omitted.entries.remove(0);
    omitted.mappings.remove(0);
    lookup_rejected(
        &trust,
        ALICE,
        Some(&LyingDp::answer(&omitted).url),
        "completeness",
    );

    // The same for the newest entries: MSP B revokes; a DP hiding that newest entry, and folding
    // only what it shows, gives a true but outdated answer. `last_seen_size` does not help (the
    // checkpoint is current); the map does.
    log.submit_ok(&testkit::revoke(
        &msp_b,
        "msp-b.example",
        ALICE,
        "mimi://msp-b.example/u/al",
        now(),
        None,
    ));
    let current = log.lookup(ALICE);
    assert_eq!(current.entries.len(), 3);
    let json = lookup_ok(&trust, ALICE, Some(&LyingDp::answer(&current).url));
    assert_eq!(mapped_msps(&json), ["msp-a.example"]);
    let mut stale = current.clone();
    let hidden = stale.entries.pop().expect("revoke");
    stale.mappings = honest.mappings.clone();
    let json = lookup_rejected(
        &trust,
        ALICE,
        Some(&LyingDp::answer(&stale).url),
        "completeness",
    );
    assert!(
        json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("an entry is hidden")),
        "SPEC §9 closes the gap: the hidden revoke is caught by one lookup: {json}"
    );
    // Whoever watches the number sees the hidden revoke in the log itself.
    let leaves = log.all_entries(log.checkpoint().checkpoint.size);
    assert_eq!(leaves.get(hidden.index as usize), Some(&hidden.leaf));
}

// -------------------------------------------------------------------------------------------------
// 4. Number porting.
// -------------------------------------------------------------------------------------------------

/// Alice moves her number from MSP A to MSP B: A revokes, B claims with a fresh attestation. A
/// lookup shows only B; the DP's answer still carries the whole history (claim A, revoke A,
/// claim B), each with an inclusion proof that verifies against the checkpoint.
#[test]
fn number_porting_shows_only_the_new_msp_and_history_keeps_both() {
    let (log, msp_a, msp_b, prover) =
        log_with_msps(Options::default().require_attestation(), "msp-b.example");
    let dir = Scratch::new();
    let trust = dir.path("trust.toml");
    let mut t = ClientTrust::of(&log);
    t.provers = vec![prover.verifier().to_string()];
    t.require_attestation = true;
    t.write(&trust);

    let a = claim_alice_for_msp_a(&log, &msp_a, &prover);
    let json = lookup_ok(&trust, ALICE, None);
    assert_eq!(mapped_msps(&json), ["msp-a.example"]);
    // B cannot take the number over without Alice's attestation for B.
    let refused = log
        .submit(
            claim(
                &msp_b,
                ALICE,
                "mimi://msp-b.example/u/alice",
                "Personal",
                None,
            )
            .bytes(),
        )
        .expect_err("an unattested claim is refused by this log");
    assert_eq!(
        refused.problem_slug().as_deref(),
        Some("attestation-required")
    );

    let revoke = log.submit_ok(&testkit::revoke(
        &msp_a,
        "msp-a.example",
        ALICE,
        "mimi://msp-a.example/u/alice",
        now(),
        None,
    ));
    let b = log.submit_ok(&claim(
        &msp_b,
        ALICE,
        "mimi://msp-b.example/u/alice",
        "Mobile",
        Some(&prover),
    ));
    let json = lookup_ok(&trust, ALICE, None);
    assert_eq!(json["status"], "mapped");
    assert_eq!(mapped_msps(&json), ["msp-b.example"], "{json}");
    assert_eq!(json["mappings"][0]["index"], b.index);
    assert_eq!(json["mappings"][0]["attested_by"], "prover.example");

    // The history: every entry for the SII, in log order, proven in the same checkpoint.
    let answer = log.lookup(ALICE);
    let indices: Vec<u64> = answer.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, [a.index, revoke.index, b.index]);
    let cp = log.checkpoint();
    assert_eq!(
        checkpoint_body(&answer.checkpoint),
        checkpoint_body(&String::from_utf8(cp.to_bytes()).expect("utf8"))
    );
    for e in &answer.entries {
        let leaf_hash = log.hash().leaf_hash(e.leaf.as_bytes());
        ledger_core::tree::verify_inclusion(
            log.hash(),
            e.index,
            cp.checkpoint.size,
            &leaf_hash,
            &e.inclusion,
            &cp.checkpoint.root,
        )
        .unwrap_or_else(|err| panic!("entry {}: {err}", e.index));
    }
    assert!(answer.entries[0].leaf.contains("msp-a.example"));
    assert!(answer.entries[2].leaf.contains("msp-b.example"));
}

// -------------------------------------------------------------------------------------------------
// 5. Key compromise.
// -------------------------------------------------------------------------------------------------

/// MSP A's key leaks; the operator re-enrolls MSP A with a new key. The log refuses claims signed
/// by the old key from then on (earlier claims stay valid). A dishonest log that admits one anyway
/// is flagged `bad-entry` by the monitor, and a client rejects a DP answer carrying it.
#[test]
fn key_compromise_old_key_claims_are_refused_and_flagged_when_served() {
    let log = TestLog::start(Options::default());
    let (old, new, prover) = (
        key("msp-a.example", 0),
        key("msp-a.example", 1),
        key("prover.example", 0),
    );
    log.enroll(Role::Msp, &old);
    log.enroll(Role::Prover, &prover);
    claim_alice_for_msp_a(&log, &old, &prover);
    let reenrolled = log
        .enroll(Role::Msp, &new)
        .expect("the re-enrollment is a new leaf");

    let forged = claim(
        &old,
        ALICE,
        "mimi://msp-a.example/u/mallory",
        "Personal",
        None,
    );
    let refused = log
        .submit(forged.bytes())
        .expect_err("a claim signed by the replaced key is refused");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(
        refused.problem_slug().as_deref(),
        Some("unknown-signer"),
        "{}",
        refused.text()
    );
    let ok = log.submit_ok(&claim(
        &new,
        BOB,
        "mimi://msp-a.example/u/bob",
        "Work",
        Some(&prover),
    ));
    assert!(ok.index > reenrolled);
    let dir = Scratch::new();
    let trust = dir.path("trust.toml");
    ClientTrust::of(&log).write(&trust);
    let json = lookup_ok(&trust, ALICE, None);
    assert_eq!(json["mappings"][0]["ssi"], "mimi://msp-a.example/u/alice");
    assert_eq!(
        mapped_msps(&lookup_ok(&trust, BOB, None)),
        ["msp-a.example"]
    );

    // The same history in a dishonest log that admits the forged claim after the re-enrollment.
    let mut bad = MemLog::new("dishonest.example/log", TreeHash::Blake3);
    bad.now = now();
    bad.enroll(Role::Msp, &old);
    bad.enroll(Role::Prover, &prover);
    bad.submit(
        claim(
            &old,
            ALICE,
            "mimi://msp-a.example/u/alice",
            "Personal",
            Some(&prover),
        )
        .bytes(),
    )
    .expect("admitted");
    bad.enroll(Role::Msp, &new);
    let forged_index = bad.push(forged);
    let served = TileServer::publish(&bad);
    let vkey = bad.key.verifier().to_string();
    let config = monitor_config(
        &dir,
        &served.url(),
        &vkey,
        bad.hash,
        &[(ALICE, &["msp-a.example"])],
    );
    monitor_once(&config);
    let all = alerts(&dir);
    let hits: Vec<_> = all.iter().filter(|a| a["kind"] == "bad-entry").collect();
    assert_eq!(hits.len(), 1, "{all:?}");
    assert_eq!(hits[0]["index"], forged_index);
    assert_eq!(hits[0]["severity"], "critical");
    // A client shown the forged claim by that log's DP rejects it at step 3.
    let dp = LyingDp::answer(&bad.lookup(&testkit::sii(ALICE)));
    let bad_trust = dir.path("dishonest.toml");
    ClientTrust {
        log_url: served.url(),
        log_vkey: vkey,
        hash: bad.hash,
        witnesses: vec![],
        quorum: 0,
        provers: vec![],
        require_attestation: false,
    }
    .write(&bad_trust);
    lookup_rejected(&bad_trust, ALICE, Some(&dp.url), "entries");
}

// -------------------------------------------------------------------------------------------------
// 6. kill -9 of every component.
// -------------------------------------------------------------------------------------------------

/// Runs the identity prover's flow over HTTP (challenge, code from the outbox, verify).
fn prove(prover: &IdProver, msp: &str, sii: &str, ssi: &str) -> String {
    let http = reqwest::blocking::Client::new();
    let ch: serde_json::Value = http
        .post(format!("{}/v1/challenge", prover.url()))
        .json(&serde_json::json!({"sii": sii, "action": "claim", "msp": msp, "ssi": ssi, "tags": ["Personal"]}))
        .send()
        .expect("challenge")
        .json()
        .expect("challenge json");
    let challenge = ch["challenge"].as_str().expect("challenge id").to_string();
    let file = prover.outbox_file(sii);
    let code = wait_for(DEADLINE, "the one-time code in the outbox", || {
        let text = std::fs::read_to_string(&file).ok()?;
        if !text.contains(&format!("challenge {challenge}\n")) {
            return None;
        }
        text.lines()
            .find_map(|l| l.strip_prefix("code "))
            .map(str::to_string)
    });
    let v: serde_json::Value = http
        .post(format!("{}/v1/verify", prover.url()))
        .json(&serde_json::json!({"challenge": challenge, "code": code}))
        .send()
        .expect("verify")
        .json()
        .expect("verify json");
    v["attestation"].as_str().expect("attestation").to_string()
}

/// Submits `leaf`, which must be admitted, and records it as acknowledged (index, leaf text).
fn submit_acked(log: &TestLog, leaf: Leaf, acked: &mut Vec<(u64, String)>) {
    let r = log.submit_ok(&leaf);
    acked.push((
        r.index,
        String::from_utf8(leaf.bytes().to_vec()).expect("utf8"),
    ));
}

/// For each watched number `(i, sii)`: MSP A's claim attested by `prover`, then the rogue MSP's
/// unattested claim; both acknowledged.
fn claim_watched<'a>(
    log: &TestLog,
    (msp_a, rogue, prover): (&SignerKey, &SignerKey, &SignerKey),
    watched: impl Iterator<Item = (usize, &'a String)>,
    acked: &mut Vec<(u64, String)>,
) {
    for (i, sii) in watched {
        submit_acked(
            log,
            claim(
                msp_a,
                sii,
                &format!("mimi://msp-a.example/u/{i}"),
                "Personal",
                Some(prover),
            ),
            acked,
        );
        submit_acked(
            log,
            claim(
                rogue,
                sii,
                &format!("mimi://rogue.example/u/{i}"),
                "Personal",
                None,
            ),
            acked,
        );
    }
}

/// MSP A's claim of `sii` for `ssi` with an attestation from the running identity prover
/// ([`prove`]); acknowledged.
fn claim_through_prover(
    log: &TestLog,
    prover: &IdProver,
    msp_a: &SignerKey,
    (sii, ssi): (&str, &str),
    acked: &mut Vec<(u64, String)>,
) {
    let att = prove(prover, "msp-a.example", sii, ssi);
    let att = SignedAttestation::parse(att.as_bytes()).expect("attestation");
    submit_acked(
        log,
        testkit::claim(msp_a, sii, ssi, now(), &["Personal"], Some(att)),
        acked,
    );
}

/// Posts claims (of unwatched e-mail SIIs) to `url` from a thread until the log stops answering.
struct Load {
    acked: Arc<Mutex<Vec<(u64, String)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    /// Waits for the thread (the log is dead) and returns the acknowledged (index, leaf) pairs.
    fn join(self) -> Vec<(u64, String)> {
        self.thread.join().expect("load thread");
        let v = self.acked.lock().map(|v| v.clone()).unwrap_or_default();
        v
    }
}

fn load_until_the_log_dies(url: String) -> Load {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let out = acked.clone();
    let thread = std::thread::spawn(move || {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http");
        let msp = key("msp-a.example", 0);
        for i in 0u64.. {
            let sii = ledger_e2e::mail_sii("load", i);
            let leaf = claim(
                &msp,
                &sii,
                &format!("mimi://msp-a.example/u/l{i}"),
                "Work",
                None,
            );
            let r = http
                .post(format!("{url}/v1/add"))
                .header("Content-Type", "text/plain")
                .body(leaf.bytes().to_vec())
                .send();
            let Ok(r) = r else { return };
            if !r.status().is_success() {
                return;
            }
            let Ok(receipt) = r.json::<ledger_core::api::Receipt>() else {
                return;
            };
            let text = String::from_utf8(leaf.bytes().to_vec()).expect("utf8");
            if let Ok(mut v) = out.lock() {
                v.push((receipt.index, text));
            }
        }
    });
    Load { acked, thread }
}

/// Log, auditor, monitor (following) and identity prover run together; in the middle of a run of
/// claims every one of them is killed with SIGKILL and restarted on the same state. Afterwards
/// nothing acknowledged is lost, the auditor cosigns the final checkpoint (consistent with what it
/// cosigned before the crash), the monitor raised each expected alert exactly once, and lookups
/// verify.
#[test]
fn every_component_killed_mid_run_restarts_and_converges() {
    let (mut log, msp_a, rogue, prover_key) = log_with_msps(Options::default(), "rogue.example");

    let dir = Scratch::new();
    std::fs::write(dir.path("prover.key"), prover_key.to_text()).expect("prover key");
    let mut prover = IdProver::start(
        &idprover_binary(),
        &dir.path("prover.key"),
        &dir.path("outbox"),
        &[],
        "warn",
    );
    let mut auditor = Auditor::start("auditor-1.example", &log, &log.url(), &[]);
    let watched: Vec<String> = (0..6).map(|i| format!("tel:+1415555020{i}")).collect();
    let watches: Vec<(&str, &[&str])> = watched
        .iter()
        .map(|s| (s.as_str(), &["msp-a.example"][..]))
        .collect();
    let config = monitor_config(
        &dir,
        &log.url(),
        &log.vkey().to_string(),
        log.hash(),
        &watches,
    );
    let monitor_args = [os("--config"), config.as_os_str(), os("--no-progress")];
    let mut monitor = Service::start(
        "monitor",
        &monitor_bin(),
        &monitor_args,
        &[("LEDGER_LOG", "warn")],
        false,
    );

    // Phase 1: claims, one rogue claim per watched number, an attestation from the prover.
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    let keys = (&msp_a, &rogue, &prover_key);
    claim_watched(
        &log,
        keys,
        watched.iter().enumerate().take(3),
        &mut acknowledged,
    );
    claim_through_prover(
        &log,
        &prover,
        &msp_a,
        (ALICE, "mimi://msp-a.example/u/alice"),
        &mut acknowledged,
    );
    let before = log.checkpoint();
    let cp_before = String::from_utf8(before.to_bytes()).expect("utf8");
    auditor.wait_cosigned(&cp_before);

    // Claims keep arriving while everything dies at once (the monitor may be mid-step, the
    // sequencer mid-batch): only what was acknowledged counts.
    let load = load_until_the_log_dies(log.url());
    wait_for(DEADLINE, "claims in flight", || {
        (load.acked.lock().map(|v| v.len()).unwrap_or(0) >= 5).then_some(())
    });
    log.kill9();
    auditor.svc().kill9();
    monitor.kill9();
    prover.kill9();
    let in_flight = load.join();
    assert!(in_flight.len() >= 5);
    acknowledged.extend(in_flight);

    // Restart on the same state; the log comes back on a new port, so the others are pointed at it.
    log.restart();
    let restarted = log.checkpoint();
    assert!(
        restarted.checkpoint.size >= before.checkpoint.size,
        "the log restarts at its last checkpoint or later"
    );
    log.assert_consistent(&before, &restarted);
    auditor.configure(&log, &log.url(), &[]);
    auditor.svc().restart(true);
    let config = monitor_config(
        &dir,
        &log.url(),
        &log.vkey().to_string(),
        log.hash(),
        &watches,
    );
    assert!(config.exists());
    monitor.restart(false);
    prover.restart();

    // Phase 2: more claims, including a fresh attestation from the restarted prover.
    claim_watched(
        &log,
        keys,
        watched.iter().enumerate().skip(3),
        &mut acknowledged,
    );
    claim_through_prover(
        &log,
        &prover,
        &msp_a,
        (BOB, "mimi://msp-a.example/u/bob"),
        &mut acknowledged,
    );

    // Converged: nothing acknowledged is lost ...
    let after = log.checkpoint();
    let leaves = log.all_entries(after.checkpoint.size);
    log.verify_tree(&after);
    log.assert_consistent(&before, &after);
    for (index, leaf) in &acknowledged {
        assert_eq!(
            leaves.get(*index as usize),
            Some(leaf),
            "acknowledged entry {index}"
        );
    }
    // ... the auditor cosigns the final checkpoint (an extension of what it cosigned before) ...
    let cp_after = String::from_utf8(after.to_bytes()).expect("utf8");
    auditor.wait_cosigned(&cp_after);
    assert_eq!(auditor.audit(&cp_before)["verdict"], "consistent");
    assert!(
        auditor.evidence().is_empty(),
        "no evidence against an honest log"
    );
    // ... the monitor raised every expected alert exactly once ...
    let all = wait_for(
        DEADLINE,
        "an unexpected-claimant alert for each rogue claim",
        || {
            let all = alerts(&dir);
            (alerts_of(&all, "unexpected-claimant", "rogue.example").len() >= watched.len())
                .then_some(all)
        },
    );
    let mut flagged: Vec<String> = alerts_of(&all, "unexpected-claimant", "rogue.example")
        .iter()
        .filter_map(|a| a["sii"].as_str().map(str::to_string))
        .collect();
    flagged.sort();
    assert_eq!(
        flagged, watched,
        "each rogue claim flagged exactly once: {all:?}"
    );
    assert!(all
        .iter()
        .all(|a| a["kind"] != "inconsistent-checkpoint" && a["kind"] != "root-mismatch"));
    // ... and lookups verify.
    let trust = dir.path("trust.toml");
    ClientTrust::of(&log).write(&trust);
    assert_eq!(
        mapped_msps(&lookup_ok(&trust, ALICE, None)),
        ["msp-a.example"]
    );
    assert_eq!(
        mapped_msps(&lookup_ok(&trust, BOB, None)),
        ["msp-a.example"]
    );
    assert_eq!(
        mapped_msps(&lookup_ok(&trust, &watched[5], None)),
        ["msp-a.example", "rogue.example"]
    );
}
