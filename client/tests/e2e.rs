//! End to end over real binaries on 127.0.0.1: `log-server` (through the `ledger-e2e` harness),
//! `idprover` and `ledger`. The full flow of issue 4, a lying Discovery Provider, and prover abuse
//! against the real log.

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
