//! End to end over real binaries on 127.0.0.1: `log-server` (through the `ledger-e2e` harness),
//! `idprover` and `ledger`. The full flow of issue 4, a lying Discovery Provider, and prover abuse
//! against the real log.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ledger_core::api::{LookupAnswer, Problem};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Claim, Entry, Leaf, SignedAttestation};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::sii::{Name, Sii, Ssi};
use ledger_e2e::{IdProver, LyingDp, Options, TestLog};

// -------------------------------------------------------------------------------------------------
// Helpers.
// -------------------------------------------------------------------------------------------------

/// The `idprover` binary ([`ledger_e2e::idprover_binary`]: built when missing or older than its
/// sources, as `cargo test -p ledger-cli` does not build other packages' binaries).
/// `LEDGER_E2E_IDPROVER=<path>` (as well as the harness's `LEDGER_E2E_BIN_IDPROVER`) uses that one.
fn idprover_binary() -> PathBuf {
    std::env::var_os("LEDGER_E2E_IDPROVER")
        .map(PathBuf::from)
        .unwrap_or_else(ledger_e2e::idprover_binary)
}

/// Starts the identity prover on `key`, writing codes to `outbox`.
fn start_prover(key: &Path, outbox: &Path, extra: &[&str]) -> IdProver {
    IdProver::start(&idprover_binary(), key, outbox, extra, "error")
}

/// A scratch folder with keys, a trust file and a log.
struct World {
    dir: tempfile::TempDir,
    log: TestLog,
}

impl World {
    fn new(opts: Options) -> World {
        let log = TestLog::start(opts);
        let dir = tempfile::tempdir().expect("tempdir");
        let w = World { dir, log };
        std::fs::write(w.path("admin.token"), w.log.admin_token()).expect("token");
        let out = w.ledger(&["trust", "init", "--log", &w.log.url()]);
        assert_ok(&out, "trust init");
        assert!(
            stdout(&out).contains("TRUST ON FIRST USE"),
            "{}",
            stdout(&out)
        );
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn ledger(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ledger"))
            .arg("--trust")
            .arg(self.path("trust.toml"))
            .args(args)
            .env_remove("LEDGER_TRUST")
            .stdin(Stdio::null())
            .output()
            .expect("run ledger")
    }

    /// `ledger keygen` + `ledger enroll`; returns the key file path.
    fn enrolled(&self, role: &str, name: &str) -> String {
        let key = self.p(&format!("{name}.key"));
        let out = self.ledger(&["keygen", "--name", name, "--out", &key]);
        assert_ok(&out, "keygen");
        let vkey = stdout(&out).trim().to_string();
        let out = self.ledger(&[
            "enroll",
            "--admin-token-file",
            &self.p("admin.token"),
            "--role",
            role,
            "--name",
            name,
            "--vkey",
            &vkey,
        ]);
        assert_ok(&out, "enroll");
        assert!(
            stdout(&out).contains(&format!("enrolled {role} {name} at index")),
            "{}",
            stdout(&out)
        );
        key
    }

    fn signer(&self, name: &str) -> SignerKey {
        let text = std::fs::read_to_string(self.path(&format!("{name}.key"))).expect("key file");
        SignerKey::parse(text.trim()).expect("signer key")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what} failed:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

#[track_caller]
fn assert_exit(o: &Output, code: i32, needle: &str, what: &str) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit status; output:\n{all}"
    );
    assert!(
        all.contains(needle),
        "{what}: expected {needle:?} in:\n{all}"
    );
}

const SII_HUMAN: &str = "+1 (415) 555-0100";
const SII: &str = "tel:+14155550100";

// -------------------------------------------------------------------------------------------------
// The full flow.
// -------------------------------------------------------------------------------------------------

#[test]
fn full_flow_claims_revocation_optout_and_reclaim() {
    let w = World::new(Options::default().require_attestation());
    let msp_a = w.enrolled("msp", "msp-a.example");
    let msp_b = w.enrolled("msp", "msp-b.example");
    let prover_key = w.enrolled("prover", "prover.example");
    let prover = start_prover(
        Path::new(&prover_key),
        &w.path("outbox"),
        &["--sii-rate", "50/1m"],
    );
    let prover_url = prover.url();
    let outbox = prover.outbox().display().to_string();

    // Nothing yet: verified "no mapping".
    let out = w.ledger(&["lookup", SII_HUMAN]);
    assert_ok(&out, "lookup before any claim");
    assert!(stdout(&out).contains("no mapping"), "{}", stdout(&out));

    // MSP A claims with the prover's attestation, saving the receipt.
    let receipt = w.p("a.proof");
    let out = w.ledger(&[
        "claim",
        "--key",
        &msp_a,
        "--sii",
        SII_HUMAN,
        "--ssi",
        "mimi://msp-a.example/u/alice",
        "--tag",
        "Personal",
        "--expires",
        "365d",
        "--prover",
        &prover_url,
        "--code-from-outbox",
        &outbox,
        "--receipt",
        &receipt,
    ]);
    assert_ok(&out, "claim by msp-a");
    assert!(
        stderr(&out).contains(&format!("SII: {SII} (canonical form of")),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("claim accepted: index "),
        "{}",
        stdout(&out)
    );

    // The saved receipt verifies offline; with another leaf it does not (exit 2).
    let out = w.ledger(&[
        "verify-receipt",
        &receipt,
        "--leaf",
        &format!("{receipt}.leaf"),
    ]);
    assert_ok(&out, "verify-receipt");
    std::fs::write(w.path("other.leaf"), b"not the leaf\n").expect("write");
    let out = w.ledger(&["verify-receipt", &receipt, "--leaf", &w.p("other.leaf")]);
    assert_exit(
        &out,
        2,
        "VERIFICATION FAILED",
        "verify-receipt with another leaf",
    );

    let out = w.ledger(&["lookup", SII_HUMAN]);
    assert_ok(&out, "lookup after claim");
    let text = stdout(&out);
    assert!(text.contains(&format!("{SII}: mapped (verified")), "{text}");
    assert!(
        text.contains("msp-a.example")
            && text.contains("Personal")
            && text.contains("prover.example"),
        "{text}"
    );

    // A second MSP claims too: both are listed with their tags.
    let out = w.ledger(&[
        "claim",
        "--key",
        &msp_b,
        "--sii",
        SII,
        "--ssi",
        "mimi://msp-b.example/u/al",
        "--tag",
        "Work",
        "--tag",
        "Mobile",
        "--prover",
        &prover_url,
        "--code-from-outbox",
        &outbox,
    ]);
    assert_ok(&out, "claim by msp-b");
    let out = w.ledger(&["lookup", SII, "--json"]);
    assert_ok(&out, "lookup --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["verified"], true);
    assert_eq!(v["status"], "mapped");
    let maps = v["mappings"].as_array().expect("mappings");
    assert_eq!(maps.len(), 2, "{v}");
    assert_eq!(maps[0]["msp"], "msp-a.example");
    assert_eq!(maps[0]["tags"], serde_json::json!(["Personal"]));
    assert_eq!(maps[1]["msp"], "msp-b.example");
    // Tags are a set in byte order (SPEC §3), whatever order the flags came in.
    assert_eq!(maps[1]["tags"], serde_json::json!(["Mobile", "Work"]));
    assert_eq!(maps[1]["attested_by"], "prover.example");

    // The trust file remembers the newest verified checkpoint size.
    let trust = std::fs::read_to_string(w.path("trust.toml")).expect("trust");
    let size = w.log.checkpoint().checkpoint.size;
    assert!(
        trust.contains(&format!("last_seen_size = {size}")),
        "{trust}"
    );

    // MSP A revokes its own mapping.
    let out = w.ledger(&[
        "revoke",
        "--key",
        &msp_a,
        "--sii",
        SII,
        "--ssi",
        "mimi://msp-a.example/u/alice",
    ]);
    assert_ok(&out, "revoke by msp-a");
    let out = w.ledger(&["lookup", SII, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let maps = v["mappings"].as_array().expect("mappings");
    assert_eq!(maps.len(), 1, "{v}");
    assert_eq!(maps[0]["msp"], "msp-b.example");

    // The recipient opts out through the prover: "opted out".
    let out = w.ledger(&[
        "optout",
        "--key",
        &prover_key,
        "--sii",
        SII_HUMAN,
        "--prover",
        &prover_url,
        "--code-from-outbox",
        &outbox,
    ]);
    assert_ok(&out, "optout");
    let out = w.ledger(&["lookup", SII_HUMAN]);
    assert_ok(&out, "lookup after optout");
    assert!(stdout(&out).contains("opted out"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("msp-b.example"), "{}", stdout(&out));

    // A later attested claim maps again.
    let out = w.ledger(&[
        "claim",
        "--key",
        &msp_a,
        "--sii",
        SII,
        "--ssi",
        "mimi://msp-a.example/u/alice2",
        "--prover",
        &prover_url,
        "--code-from-outbox",
        &outbox,
    ]);
    assert_ok(&out, "claim after optout");
    let out = w.ledger(&["lookup", SII]);
    assert_ok(&out, "lookup after reclaim");
    assert!(
        stdout(&out).contains("mimi://msp-a.example/u/alice2"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(": mapped"), "{}", stdout(&out));

    // The recipient has the prover remove that mapping (R10): a prover-signed revoke with the
    // recipient's revoke attestation. Without an attestation the client refuses to build it.
    let revoke_args = [
        "revoke",
        "--key",
        &prover_key,
        "--sii",
        SII,
        "--msp",
        "msp-a.example",
        "--ssi",
        "mimi://msp-a.example/u/alice2",
    ];
    let out = w.ledger(&revoke_args);
    assert_exit(
        &out,
        1,
        "a revocation by a prover needs --attestation or --prover",
        "prover revoke without attestation",
    );
    let mut with_prover = revoke_args.to_vec();
    with_prover.extend(["--prover", &prover_url, "--code-from-outbox", &outbox]);
    assert_ok(&w.ledger(&with_prover), "revoke by the prover");
    let out = w.ledger(&["lookup", SII]);
    assert_ok(&out, "lookup after the prover's revoke");
    assert!(stdout(&out).contains("no mapping"), "{}", stdout(&out));

    // A claim without the attestation this log requires is refused, naming why (exit 1).
    let out = w.ledger(&[
        "claim",
        "--key",
        &msp_b,
        "--sii",
        SII,
        "--ssi",
        "mimi://msp-b.example/u/x",
    ]);
    assert_exit(&out, 1, "attestation-required", "unattested claim");
    // An unreachable DP is exit 1, not 2.
    let out = w.ledger(&["lookup", SII, "--dp", "http://127.0.0.1:9"]);
    assert_exit(&out, 1, "cannot reach", "unreachable DP");
    // A bad SII is exit 1 with what was wrong.
    let out = w.ledger(&["lookup", "555-0100"]);
    assert_exit(&out, 1, "SII \"555-0100\"", "SII without a country code");
}

// -------------------------------------------------------------------------------------------------
// A lying Discovery Provider.
// -------------------------------------------------------------------------------------------------

fn attested_claim(
    w: &World,
    prover: &SignerKey,
    msp: &str,
    sii: &str,
    ssi: &str,
    tag: &str,
) -> Leaf {
    let now = ledger_e2e::now();
    let att = ledger_core::testkit::attestation(
        prover,
        ledger_core::entry::Action::Claim,
        sii,
        Some((msp, ssi)),
        now - 5,
    );
    ledger_core::testkit::claim(&w.signer(msp), sii, ssi, now, &[tag], Some(att))
}

#[test]
fn a_lying_dp_is_caught_at_the_right_step_every_time() {
    let w = World::new(Options::default());
    w.enrolled("msp", "msp-a.example");
    w.enrolled("msp", "msp-b.example");
    w.enrolled("prover", "prover.example");
    let prover = w.signer("prover.example");
    let other_sii = "tel:+14155550199";
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-a.example",
        SII,
        "mimi://msp-a.example/u/alice",
        "Personal",
    ));
    // An answer recorded now is honest but will be stale later.
    let old = w.log.lookup(SII);
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-b.example",
        SII,
        "mimi://msp-b.example/u/al",
        "Work",
    ));
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-a.example",
        other_sii,
        "mimi://msp-a.example/u/bob",
        "Home",
    ));

    // The honest answer verifies through the same proxy (and raises last_seen_size).
    let honest = w.log.lookup(SII);
    assert_eq!(honest.entries.len(), 2);
    let dp = LyingDp::serve(serde_json::to_string(&honest).expect("json"));
    let out = w.ledger(&["lookup", SII, "--dp", &dp.url]);
    assert_ok(&out, "honest answer through the proxy");
    assert!(old.checkpoint != honest.checkpoint);

    let other = w.log.lookup(other_sii);
    assert_eq!(
        other.checkpoint, honest.checkpoint,
        "both answers under one checkpoint"
    );
    let wrong_log = SignerKey::generate(
        ledger_e2e::TEST_ORIGIN,
        KeyAlg::Ed25519,
        &mut rand_core::OsRng,
    )
    .expect("key");

    type Lie = (&'static str, &'static str, Box<dyn Fn(&mut LookupAnswer)>);
    let lies: Vec<Lie> = vec![
        (
            "dropped entry",
            "state-fold",
            Box::new(|a: &mut LookupAnswer| {
                a.entries.remove(1);
            }),
        ),
        (
            "extra entry from another SII",
            "entries",
            Box::new(move |a: &mut LookupAnswer| {
                a.entries.push(other.entries[0].clone());
                a.entries.sort_by_key(|e| e.index);
            }),
        ),
        (
            "flipped proof byte",
            "inclusion-proof",
            Box::new(|a: &mut LookupAnswer| {
                a.entries[0].inclusion[0][7] ^= 0x20;
            }),
        ),
        (
            "checkpoint signed by another key",
            "checkpoint-signature",
            Box::new(move |a: &mut LookupAnswer| {
                let cp = SignedCheckpoint::parse(a.checkpoint.as_bytes()).expect("cp");
                let forged = SignedCheckpoint::sign(cp.checkpoint, &wrong_log).expect("sign");
                a.checkpoint = String::from_utf8(forged.to_bytes()).expect("utf8");
            }),
        ),
        (
            "stale checkpoint",
            "stale-checkpoint",
            Box::new(move |a: &mut LookupAnswer| {
                *a = old.clone();
            }),
        ),
        (
            "mappings that disagree",
            "state-fold",
            Box::new(|a: &mut LookupAnswer| {
                a.mappings.pop();
            }),
        ),
        (
            "status that disagrees",
            "state-fold",
            Box::new(|a: &mut LookupAnswer| {
                a.status = ledger_core::state::Status::OptedOut;
                a.mappings.clear();
            }),
        ),
        (
            "answer about another SII",
            "entries",
            Box::new(|a: &mut LookupAnswer| {
                a.sii = "tel:+14155550199".into();
            }),
        ),
    ];
    for (what, step, lie) in lies {
        let mut a = honest.clone();
        lie(&mut a);
        let dp = LyingDp::serve(serde_json::to_string(&a).expect("json"));
        let out = w.ledger(&["lookup", SII_HUMAN, "--dp", &dp.url]);
        assert_exit(&out, 2, &format!("({step})"), what);
        assert!(
            stderr(&out).contains("VERIFICATION FAILED"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).is_empty(),
            "{what}: nothing unverified is printed: {}",
            stdout(&out)
        );
        let out = w.ledger(&["lookup", SII, "--dp", &dp.url, "--json"]);
        assert_eq!(out.status.code(), Some(2), "{what} --json");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            (v["verified"].as_bool(), v["step"].as_str()),
            (Some(false), Some(step)),
            "{what}"
        );
    }
    // Not even JSON: a malformed answer is a failed verification too.
    let dp = LyingDp::serve("{\"sii\": 1}".into());
    let out = w.ledger(&["lookup", SII, "--dp", &dp.url]);
    assert_exit(&out, 2, "(malformed-answer)", "malformed answer");
}

// -------------------------------------------------------------------------------------------------
// Prover abuse against the real log.
// -------------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct ChallengeAnswer {
    challenge: String,
}

#[derive(serde::Deserialize)]
struct VerifyAnswer {
    attestation: String,
}

/// Runs the prover's flow over HTTP, reading the code from the outbox; returns the attestation.
fn attest(prover: &IdProver, body: serde_json::Value) -> SignedAttestation {
    let http = reqwest::blocking::Client::new();
    let sii = body["sii"].as_str().expect("sii").to_string();
    let ch: ChallengeAnswer = http
        .post(format!("{}/v1/challenge", prover.url()))
        .json(&body)
        .send()
        .expect("challenge")
        .json()
        .expect("challenge json");
    let code = prover.code(&sii, &ch.challenge);
    let v: VerifyAnswer = http
        .post(format!("{}/v1/verify", prover.url()))
        .json(&serde_json::json!({"challenge": ch.challenge, "code": code}))
        .send()
        .expect("verify")
        .json()
        .expect("verify json");
    SignedAttestation::parse(v.attestation.as_bytes()).expect("attestation note")
}

#[test]
fn an_attestation_admits_only_its_own_sii_msp_and_ssi() {
    let w = World::new(Options::default().require_attestation());
    let msp_a = w.enrolled("msp", "msp-a.example");
    w.enrolled("msp", "msp-b.example");
    let prover_key = w.enrolled("prover", "prover.example");
    let prover = start_prover(Path::new(&prover_key), &w.path("outbox"), &[]);
    let prover_url = prover.url();
    let ssi = "mimi://msp-a.example/u/alice";
    let att = attest(
        &prover,
        serde_json::json!({"sii": SII, "action": "claim", "msp": "msp-a.example", "ssi": ssi, "tags": ["Personal"]}),
    );
    assert_eq!(
        att.attestation.expires - att.attestation.time,
        24 * 3600,
        "default attestation lifetime"
    );
    assert_eq!(att.attestation.method, "sms-otp");
    std::fs::write(w.path("att.note"), att.note.to_bytes()).expect("write");

    // The client refuses to use it for anything else (exit 1, saying why) ...
    for (sii, ssi_arg, what) in [
        ("tel:+14155550101", ssi, "another SII"),
        (SII, "mimi://msp-a.example/u/mallory", "another SSI"),
    ] {
        let out = w.ledger(&[
            "claim",
            "--key",
            &msp_a,
            "--sii",
            sii,
            "--ssi",
            ssi_arg,
            "--attestation",
            &w.p("att.note"),
        ]);
        assert_exit(&out, 1, "the attestation", what);
    }
    // ... and the log refuses entries that carry it for another SII, MSP or SSI.
    let now = ledger_e2e::now();
    let make = |sii: &str, msp: &str, ssi: &str| {
        Leaf::sign(
            Entry::Claim(Claim {
                sii: Sii::parse(sii).expect("sii"),
                msp: Name::parse(msp).expect("msp"),
                ssi: Ssi::parse(ssi).expect("ssi"),
                time: now.max(att.attestation.time),
                expires: None,
                tags: vec![],
                attestation: Some(att.clone()),
            }),
            &w.signer(msp),
        )
        .expect("sign")
    };
    for (leaf, what) in [
        (
            make("tel:+14155550101", "msp-a.example", ssi),
            "another SII",
        ),
        (make(SII, "msp-b.example", ssi), "another MSP"),
        (
            make(SII, "msp-a.example", "mimi://msp-a.example/u/mallory"),
            "another SSI",
        ),
    ] {
        let resp = w.log.submit(leaf.bytes()).expect_err(what);
        let p: Problem = resp.assert_problem(422, "bad-attestation", what);
        assert!(!p.detail.is_empty());
    }
    // The right one is admitted, through the CLI.
    let out = w.ledger(&[
        "claim",
        "--key",
        &msp_a,
        "--sii",
        SII,
        "--ssi",
        ssi,
        "--tag",
        "Personal",
        "--attestation",
        &w.p("att.note"),
    ]);
    assert_ok(&out, "claim with its own attestation");
    // Interactively: the code is typed on the terminal (stdin); a wrong code is refused (exit 1).
    for (typed_right, what) in [(false, "wrong code typed"), (true, "right code typed")] {
        let before = std::fs::read_to_string(prover.outbox_file(SII)).unwrap_or_default();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .arg("--trust")
            .arg(w.path("trust.toml"))
            .args([
                "revoke",
                "--key",
                &msp_a,
                "--sii",
                SII,
                "--ssi",
                ssi,
                "--prover",
                &prover_url,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ledger");
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            let now_text = std::fs::read_to_string(prover.outbox_file(SII)).unwrap_or_default();
            if now_text != before && now_text.contains("action revoke") {
                break now_text
                    .lines()
                    .find_map(|l| l.strip_prefix("code "))
                    .expect("code line")
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no new code in the outbox"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let typed = if typed_right {
            code
        } else if code == "000000" {
            "000001".to_string()
        } else {
            "000000".to_string()
        };
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{typed}").expect("type the code");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert!(
            stderr(&out).contains("enter the code sent to tel:+14155550100"),
            "{what}: {}",
            stderr(&out)
        );
        if typed_right {
            assert_ok(&out, what);
            assert!(stdout(&out).contains("revoke accepted"), "{}", stdout(&out));
        } else {
            assert_exit(&out, 1, "wrong code; 4 tries left", what);
        }
    }
    // An opt-out attestation does not admit a claim either.
    let opt = attest(&prover, serde_json::json!({"sii": SII, "action": "optout"}));
    std::fs::write(w.path("opt.note"), opt.note.to_bytes()).expect("write");
    let out = w.ledger(&[
        "claim",
        "--key",
        &msp_a,
        "--sii",
        SII,
        "--ssi",
        ssi,
        "--attestation",
        &w.p("opt.note"),
    ]);
    assert_exit(
        &out,
        1,
        "the attestation is for action optout, not claim",
        "optout attestation for a claim",
    );
}

#[test]
fn bad_arguments_exit_1_and_every_help_has_an_example() {
    let ledger = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ledger")
    };
    let out = ledger(&["claim", "--sii", "x"]);
    assert_exit(&out, 1, "--key <FILE>", "missing arguments");
    let out = ledger(&["frobnicate"]);
    assert_exit(&out, 1, "frobnicate", "unknown command");
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("none.toml");
    let out = ledger(&["--trust", &missing.display().to_string(), "lookup", SII]);
    assert_exit(&out, 1, "ledger trust init", "missing trust file");
    for cmd in [
        vec![],
        vec!["keygen"],
        vec!["trust"],
        vec!["trust", "init"],
        vec!["enroll"],
        vec!["claim"],
        vec!["revoke"],
        vec!["optout"],
        vec!["lookup"],
        vec!["watch"],
        vec!["verify-receipt"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = ledger(&args);
        assert_ok(&out, &format!("{cmd:?} --help"));
        assert!(
            stdout(&out).contains("Example:"),
            "{cmd:?} --help has no example:\n{}",
            stdout(&out)
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Completeness (SPEC §6 step 5, §9): what steps 1–4 cannot see.
// -------------------------------------------------------------------------------------------------

fn checkpoint_size(a: &LookupAnswer) -> u64 {
    SignedCheckpoint::parse(a.checkpoint.as_bytes())
        .expect("checkpoint")
        .checkpoint
        .size
}

/// `ledger keygen` of a second key for `name` and its enrollment: the MSP rotates its key.
fn reenroll(w: &World, name: &str) {
    let key = w.p(&format!("{name}.2.key"));
    let out = w.ledger(&["keygen", "--name", name, "--out", &key]);
    assert_ok(&out, "keygen of the new key");
    let vkey = stdout(&out).trim().to_string();
    let out = w.ledger(&[
        "enroll",
        "--admin-token-file",
        &w.p("admin.token"),
        "--role",
        "msp",
        "--name",
        name,
        "--vkey",
        &vkey,
    ]);
    assert_ok(&out, "re-enroll");
}

#[test]
fn a_dp_that_hides_an_entry_or_an_enrollment_fails_at_completeness() {
    let w = World::new(Options::default());
    w.enrolled("msp", "msp-a.example");
    w.enrolled("msp", "msp-b.example");
    w.enrolled("prover", "prover.example");
    let prover = w.signer("prover.example");
    let ssi_b = "mimi://msp-b.example/u/al";
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-a.example",
        SII,
        "mimi://msp-a.example/u/alice",
        "Personal",
    ));
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-b.example",
        SII,
        ssi_b,
        "Work",
    ));
    // The newest entry: MSP B revokes its mapping.
    w.log.submit_ok(&ledger_core::testkit::revoke(
        &w.signer("msp-b.example"),
        "msp-b.example",
        SII,
        ssi_b,
        ledger_e2e::now(),
        None,
    ));
    // MSP A rotates its key (after a compromise, say) and has claimed nothing since.
    reenroll(&w, "msp-a.example");

    // The honest answer is complete as of its checkpoint, by the map leaf that ends it.
    let honest = w.log.lookup(SII);
    let size = checkpoint_size(&honest);
    let complete = format!(
        "complete as of checkpoint {size}: the log's map (leaf {}) proves no entry for {SII} is left out",
        size - 1
    );
    let out = w.ledger(&["lookup", SII_HUMAN]);
    assert_ok(&out, "honest lookup from the log");
    assert!(stdout(&out).contains(&complete), "{}", stdout(&out));
    let dp = LyingDp::answer(&honest);
    let out = w.ledger(&["lookup", SII, "--dp", &dp.url, "--json"]);
    assert_ok(&out, "honest answer through the proxy, --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["completeness"],
        serde_json::json!({"as_of_checkpoint": size, "map_index": size - 1}),
        "{v}"
    );
    // An SII nobody claimed: "none", complete by an absence proof.
    let nobody = w.log.lookup("tel:+14155550142");
    assert_eq!(checkpoint_size(&nobody), size, "one checkpoint for both");
    let out = w.ledger(&["lookup", "tel:+14155550142"]);
    assert_ok(&out, "lookup of an unclaimed SII");
    assert!(
        stdout(&out).contains("no mapping") && stdout(&out).contains("complete as of checkpoint"),
        "{}",
        stdout(&out)
    );

    let now = ledger_e2e::now();
    type Lie = (&'static str, Box<dyn Fn(&mut LookupAnswer)>);
    let lies: Vec<Lie> = vec![
        (
            "drops the newest entry (a revoke) and fixes status and mappings",
            Box::new(move |a: &mut LookupAnswer| {
                a.entries.pop();
                LyingDp::refold(a, now);
                assert_eq!(a.mappings.len(), 2, "the revoked mapping is back");
            }),
        ),
        (
            "answers none with no entries for a mapped number",
            Box::new(move |a: &mut LookupAnswer| {
                a.entries.clear();
                a.keys.clear();
                LyingDp::refold(a, now);
                assert_eq!(a.status, ledger_core::state::Status::None);
                a.map.as_mut().expect("map").signers.clear();
            }),
        ),
        (
            "answers none with the absence proof of an unclaimed number",
            Box::new(move |a: &mut LookupAnswer| {
                a.entries.clear();
                a.keys.clear();
                LyingDp::refold(a, now);
                let m = a.map.as_mut().expect("map");
                m.signers.clear();
                m.sii = nobody.map.as_ref().expect("map").sii.clone();
            }),
        ),
        (
            "hides MSP A's re-enrollment",
            Box::new(|a: &mut LookupAnswer| {
                let newest = a
                    .keys
                    .iter()
                    .filter(|k| k.leaf.contains("name msp-a.example\n"))
                    .map(|k| k.index)
                    .max()
                    .expect("msp-a's enrollments");
                let before = a.keys.len();
                a.keys.retain(|k| k.index != newest);
                assert_eq!(a.keys.len() + 1, before);
            }),
        ),
    ];
    for (what, lie) in lies {
        let mut a = honest.clone();
        lie(&mut a);
        let dp = LyingDp::answer(&a);
        let out = w.ledger(&["lookup", SII_HUMAN, "--dp", &dp.url]);
        assert_exit(&out, 2, "at step 5 (completeness)", what);
        assert!(
            stdout(&out).is_empty(),
            "{what}: nothing unverified is printed: {}",
            stdout(&out)
        );
        let out = w.ledger(&["lookup", SII, "--dp", &dp.url, "--json"]);
        assert_eq!(out.status.code(), Some(2), "{what} --json");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            (v["verified"].as_bool(), v["step"].as_str()),
            (Some(false), Some("completeness")),
            "{what}: {v}"
        );
        assert!(v.get("completeness").is_none(), "{what}: {v}");
    }
}

// -------------------------------------------------------------------------------------------------
// `ledger watch`.
// -------------------------------------------------------------------------------------------------

const ALICE_A: &str = "mimi://msp-a.example/u/alice";
const ALICE_B: &str = "mimi://msp-b.example/u/al";

/// The alert lines of a `ledger watch` run (stdout or an alerts file), each parsed.
#[track_caller]
fn alert_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an alert line {l:?}: {e}")))
        .collect()
}

/// (kind, index, msp) of each alert.
fn kinds(alerts: &[serde_json::Value]) -> Vec<(String, u64, Option<String>)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or_default().to_string(),
                a["index"].as_u64().unwrap_or(u64::MAX),
                a["msp"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn k(kind: &str, index: u64, msp: Option<&str>) -> (String, u64, Option<String>) {
    (kind.to_string(), index, msp.map(str::to_string))
}

#[track_caller]
fn assert_no_change(o: &Output, what: &str) {
    assert_ok(o, what);
    assert!(stdout(o).is_empty(), "{what}: {}", stdout(o));
    assert!(stderr(o).contains("no change"), "{what}: {}", stderr(o));
}

#[track_caller]
fn assert_changes(o: &Output, what: &str) -> Vec<serde_json::Value> {
    assert_eq!(
        o.status.code(),
        Some(3),
        "{what}: exit 3 (changes reported)\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    alert_lines(&stdout(o))
}

fn prover_revoke(prover: &SignerKey, msp: &str, ssi: &str) -> Leaf {
    let now = ledger_e2e::now();
    let att = ledger_core::testkit::attestation(
        prover,
        ledger_core::entry::Action::Revoke,
        SII,
        Some((msp, ssi)),
        now - 5,
    );
    ledger_core::testkit::revoke(prover, msp, SII, ssi, now, Some(att))
}

#[test]
fn watch_reports_each_claim_revoke_and_optout_once() {
    let w = World::new(Options::default());
    w.enrolled("msp", "msp-a.example");
    w.enrolled("msp", "msp-b.example");
    w.enrolled("prover", "prover.example");
    let prover = w.signer("prover.example");
    let a = w
        .log
        .submit_ok(&attested_claim(
            &w,
            &prover,
            "msp-a.example",
            SII,
            ALICE_A,
            "Personal",
        ))
        .index;
    let state = w.p("watch.json");
    let watch = || {
        w.ledger(&[
            "watch",
            SII_HUMAN,
            "--state",
            &state,
            "--allowed",
            "msp-a.example",
        ])
    };

    // The first run reports what is there, verified complete.
    let out = watch();
    let alerts = assert_changes(&out, "first run");
    assert_eq!(kinds(&alerts), [k("new-entry", a, Some("msp-a.example"))]);
    let line = &alerts[0];
    assert_eq!(line["sii"], SII);
    assert_eq!(line["log"], ledger_e2e::TEST_ORIGIN);
    assert_eq!(line["severity"], "info");
    let detail = line["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("signed by msp-a.example")
            && detail.contains("attested by prover.example (sms-otp)"),
        "{detail}"
    );
    let raw = stdout(&out);
    let at: Vec<Option<usize>> = [
        "time", "kind", "severity", "log", "index", "sii", "msp", "detail",
    ]
    .iter()
    .map(|m| raw.find(&format!("\"{m}\":")))
    .collect();
    assert!(
        at.iter().all(Option::is_some) && at.windows(2).all(|p| p[0] < p[1]),
        "the SPEC §8 members, in order: {raw}"
    );
    assert_eq!(line.as_object().map(|o| o.len()), Some(8), "{raw}");
    assert!(
        stderr(&out).contains("first run") && stderr(&out).contains("complete as of checkpoint"),
        "{}",
        stderr(&out)
    );
    assert_no_change(&watch(), "second run");

    // A claim by another MSP: unexpected, once.
    let b = w
        .log
        .submit_ok(&attested_claim(
            &w,
            &prover,
            "msp-b.example",
            SII,
            ALICE_B,
            "Work",
        ))
        .index;
    let alerts = assert_changes(&watch(), "claim by msp-b");
    assert_eq!(
        kinds(&alerts),
        [k("unexpected-claimant", b, Some("msp-b.example"))]
    );
    assert_eq!(alerts[0]["severity"], "critical");
    let detail = alerts[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not an allowed MSP")
            && detail.contains("signed by msp-b.example; attested by prover.example"),
        "{detail}"
    );
    assert_no_change(&watch(), "after the claim by msp-b");

    // MSP B revokes its own mapping; the prover revokes MSP A's with the recipient's consent.
    let r1 = w
        .log
        .submit_ok(&ledger_core::testkit::revoke(
            &w.signer("msp-b.example"),
            "msp-b.example",
            SII,
            ALICE_B,
            ledger_e2e::now(),
            None,
        ))
        .index;
    let r2 = w
        .log
        .submit_ok(&prover_revoke(&prover, "msp-a.example", ALICE_A))
        .index;
    let alerts = assert_changes(&watch(), "two revokes");
    assert_eq!(
        kinds(&alerts),
        [
            k("new-entry", r1, Some("msp-b.example")),
            k("revoked-by-prover", r2, Some("msp-a.example")),
        ]
    );
    let detail = alerts[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("revoke of msp-b.example's mapping")
            && detail.contains("signed by msp-b.example; no attestation"),
        "{detail}"
    );
    let detail = alerts[1]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("signed by prover.example; attested by prover.example"),
        "{detail}"
    );
    assert_no_change(&watch(), "after the revokes");

    // The owner opts out.
    let o = w
        .log
        .submit_ok(&ledger_core::testkit::optout(
            &prover,
            SII,
            ledger_e2e::now(),
        ))
        .index;
    let alerts = assert_changes(&watch(), "opt-out");
    assert_eq!(kinds(&alerts), [k("new-entry", o, None)]);
    let detail = alerts[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(&format!(
            "opt-out of {SII}; signed by prover.example; attested by prover.example"
        )),
        "{detail}"
    );
    assert_no_change(&watch(), "after the opt-out");

    // More SIIs from a file, a --baseline for the new one, and alerts to a file.
    let bob = "tel:+14155550199";
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-a.example",
        bob,
        "mimi://msp-a.example/u/bob",
        "Home",
    ));
    let list = w.p("numbers.txt");
    std::fs::write(
        &list,
        format!("# watched numbers\n{SII_HUMAN}\n\n  {bob}  \n"),
    )
    .expect("list");
    let alerts_file = w.p("alerts.jsonl");
    let by_file = |extra: &[&str]| {
        let mut args = vec![
            "watch",
            "--file",
            &list,
            "--state",
            &state,
            "--allowed",
            "msp-a.example",
            "--alerts",
            &alerts_file,
        ];
        args.extend_from_slice(extra);
        w.ledger(&args)
    };
    let out = by_file(&["--baseline"]);
    assert_no_change(&out, "baseline of the new SII");
    assert!(
        stderr(&out).contains(&format!("{bob}: baseline: 1 entries recorded")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&alerts_file).expect("alerts file"),
        ""
    );
    let d = w
        .log
        .submit_ok(&attested_claim(
            &w,
            &prover,
            "msp-b.example",
            bob,
            "mimi://msp-b.example/u/bob",
            "Work",
        ))
        .index;
    let out = by_file(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "alerts go to the file: {}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(&alerts_file).expect("alerts file");
    let alerts = alert_lines(&text);
    assert_eq!(
        kinds(&alerts),
        [k("unexpected-claimant", d, Some("msp-b.example"))]
    );
    assert_eq!(alerts[0]["sii"], bob);
    assert_no_change(&by_file(&[]), "after bob's claim");
    assert_eq!(
        std::fs::read_to_string(&alerts_file).expect("alerts file"),
        text
    );

    // The state: per SII, the checkpoint and the entries seen.
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("state json");
    assert_eq!(s["version"], 1);
    assert_eq!(s["origin"], ledger_e2e::TEST_ORIGIN);
    assert_eq!(s["siis"][SII]["entries"].as_array().map(Vec::len), Some(5));
    assert_eq!(s["siis"][bob]["entries"].as_array().map(Vec::len), Some(2));

    // Bad input is exit 1, naming what was wrong.
    let out = w.ledger(&["watch", "--state", &state]);
    assert_exit(&out, 1, "no SII to watch", "no SII");
    std::fs::write(w.path("bad.txt"), "tel:+14155550100\n555-0100\n").expect("write");
    let out = w.ledger(&["watch", "--file", &w.p("bad.txt"), "--state", &state]);
    assert_exit(&out, 1, "line 2: SII \"555-0100\"", "bad line in --file");
    let out = w.ledger(&["watch", SII, "--state", &state, "--allowed", "Not A Name"]);
    assert_exit(&out, 1, "--allowed \"Not A Name\"", "bad --allowed");
    std::fs::write(w.path("garbage.json"), "{\"version\": 1,").expect("write");
    let out = w.ledger(&["watch", SII, "--state", &w.p("garbage.json")]);
    assert_exit(&out, 1, "not a `ledger watch` state file", "garbage state");
}

/// Replaces `last_seen_size = N` in a trust file's text with 0 (a client that never looked).
fn forgetful_trust(w: &World) -> String {
    let text = std::fs::read_to_string(w.path("trust.toml")).expect("trust");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("last_seen_size") {
                "last_seen_size = 0\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = w.p("forgetful.toml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn watch_never_reports_no_change_for_a_lying_dp() {
    let w = World::new(Options::default());
    w.enrolled("msp", "msp-a.example");
    w.enrolled("prover", "prover.example");
    let prover = w.signer("prover.example");
    w.log.submit_ok(&attested_claim(
        &w,
        &prover,
        "msp-a.example",
        SII,
        ALICE_A,
        "Personal",
    ));
    let state = w.p("watch.json");
    let watch = |dp: Option<&str>| {
        let mut args = vec!["watch", SII, "--state", &state];
        if let Some(dp) = dp {
            args.extend(["--dp", dp]);
        }
        w.ledger(&args)
    };
    assert_no_change(
        &w.ledger(&["watch", SII, "--state", &state, "--baseline"]),
        "baseline",
    );
    let old = w.log.lookup(SII);
    let r = w
        .log
        .submit_ok(&ledger_core::testkit::revoke(
            &w.signer("msp-a.example"),
            "msp-a.example",
            SII,
            ALICE_A,
            ledger_e2e::now(),
            None,
        ))
        .index;
    let current = w.log.lookup(SII);
    let before = std::fs::read(&state).expect("state");

    // A DP hiding the revoke (status and mappings fixed to match): rejected, not "no change".
    let mut hidden = current.clone();
    hidden.entries.pop();
    LyingDp::refold(&mut hidden, ledger_e2e::now());
    assert_eq!(hidden.mappings.len(), 1);
    let dp = LyingDp::answer(&hidden);
    let out = watch(Some(&dp.url));
    assert_exit(&out, 2, "at step 5 (completeness)", "hidden revoke");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(!stderr(&out).contains("no change"), "{}", stderr(&out));
    assert!(stderr(&out).contains("state is kept"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&state).expect("state"), before, "state kept");
    // Not even JSON.
    let junk = LyingDp::serve("<html>".into());
    assert_exit(
        &watch(Some(&junk.url)),
        2,
        "(malformed-answer)",
        "junk answer",
    );
    assert_eq!(std::fs::read(&state).expect("state"), before, "state kept");

    // From the log itself the revoke is reported, once.
    let alerts = assert_changes(&watch(None), "the revoke");
    assert_eq!(kinds(&alerts), [k("new-entry", r, Some("msp-a.example"))]);
    assert_no_change(&watch(None), "after the revoke");

    // A replay of the older, honest answer: the trust file refuses it at step 1 ...
    let replay = LyingDp::answer(&old);
    assert_exit(
        &watch(Some(&replay.url)),
        2,
        "(stale-checkpoint)",
        "replayed answer",
    );
    // ... and a trust file that has forgotten the size still cannot roll the state back.
    let forgetful = forgetful_trust(&w);
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["--trust", &forgetful, "watch", SII, "--state", &state])
        .args(["--dp", &replay.url])
        .env_remove("LEDGER_TRUST")
        .stdin(Stdio::null())
        .output()
        .expect("run ledger");
    assert_exit(&out, 2, "rollback: checkpoint size", "rollback");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // An unreachable DP is an error (exit 1), never "no change".
    let out = watch(Some("http://127.0.0.1:9"));
    assert_exit(&out, 1, "cannot reach", "unreachable DP");
    assert!(!stderr(&out).contains("no change"), "{}", stderr(&out));
    assert_no_change(&watch(None), "the state survived all of it");
}

#[test]
fn watch_state_and_alerts_survive_kill_9_and_report_each_change_once() {
    let w = World::new(Options::default());
    w.enrolled("msp", "msp-a.example");
    w.enrolled("prover", "prover.example");
    let prover = w.signer("prover.example");
    let siis: Vec<String> = (0..40)
        .map(|i| ledger_e2e::mail_sii("watched", i))
        .collect();
    std::fs::write(w.path("numbers.txt"), siis.join("\n")).expect("list");
    let mut expected: BTreeSet<(String, u64)> = BTreeSet::new();
    let claim = |i: usize, expected: &mut BTreeSet<(String, u64)>| {
        let sii = &siis[i % siis.len()];
        let ssi = format!("mimi://msp-a.example/u/{i}");
        let leaf = attested_claim(&w, &prover, "msp-a.example", sii, &ssi, "Personal");
        expected.insert((sii.clone(), w.log.submit_ok(&leaf).index));
    };
    for i in 0..8 {
        claim(i * 5, &mut expected);
    }
    let (state, alerts) = (w.p("watch.json"), w.p("alerts.jsonl"));
    let args = |state: &str, alerts: &str| {
        vec![
            "--trust".to_string(),
            w.p("trust.toml"),
            "watch".into(),
            "--file".into(),
            w.p("numbers.txt"),
            "--state".into(),
            state.to_string(),
            "--alerts".into(),
            alerts.to_string(),
        ]
    };
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(args(&state, &alerts))
            .stdin(Stdio::null())
            .output()
            .expect("run ledger")
    };
    // How long one run takes (on a scratch state and alerts file), to kill runs anywhere in it.
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(args(&w.p("scratch.json"), &w.p("scratch.jsonl")))
        .stdin(Stdio::null())
        .output()
        .expect("run ledger");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run_ms = started.elapsed().as_millis().max(20) as u64;

    let mut rng = ledger_e2e::Rng::from_env("watch kill -9");
    let mut killed = 0;
    for round in 0..50 {
        if round % 6 == 5 {
            claim(round, &mut expected);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(args(&state, &alerts))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ledger");
        std::thread::sleep(Duration::from_millis(rng.range(0, run_ms * 6 / 5)));
        if child.try_wait().expect("try_wait").is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment, the state is the old one or the new one, never a broken one.
        if let Ok(bytes) = std::fs::read(&state) {
            let s: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: the state is corrupt: {e}"));
            assert_eq!(s["version"], 1, "round {round}");
        }
    }
    eprintln!("{killed} of 50 runs killed mid-run (a run takes ~{run_ms} ms)");
    // One run to completion; then every change is in the alerts file exactly once.
    let out = run();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        stderr(&out)
    );
    let reported = |what: &str| -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(&alerts).unwrap_or_default();
        let mut v: Vec<(String, u64)> = alert_lines(&text)
            .iter()
            .map(|a| {
                (
                    a["sii"].as_str().unwrap_or_default().to_string(),
                    a["index"].as_u64().unwrap_or(u64::MAX),
                )
            })
            .collect();
        v.sort();
        let unique: BTreeSet<_> = v.iter().cloned().collect();
        assert_eq!(unique.len(), v.len(), "{what}: an alert was written twice");
        v
    };
    assert_eq!(
        reported("after the kills"),
        expected.iter().cloned().collect::<Vec<_>>(),
        "every change once"
    );

    // A run killed after writing its alerts but before replacing its state: the next run finds
    // the same changes, cuts the unrecorded tail and writes them once.
    claim(1, &mut expected);
    let saved = std::fs::read(&state).expect("state");
    let out = run();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    std::fs::write(&state, saved).expect("put the old state back");
    let out = run();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cut "), "{}", stderr(&out));
    assert_eq!(
        reported("after the simulated crash"),
        expected.iter().cloned().collect::<Vec<_>>()
    );
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
