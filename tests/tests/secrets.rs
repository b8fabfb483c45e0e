//! Secrets on disk (issue "Hardening", item 7): every key, token or one-time code a binary of
//! mimi-ledger writes is created with mode 0600 from the start, whatever the umask, and a key
//! generator never overwrites an existing key.
//!
//! Each case runs the real binary under `umask 022` — the usual default, under which a plain
//! `File::create` gives 0644 (each test checks that too, so a test whose umask did not take effect
//! fails instead of passing for nothing). Key generators run through `sh -c 'umask 022; exec …'`;
//! the long-running servers inherit the umask of this test process, set with `libc::umask`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::testkit::test_key;
use ledger_core::TreeHash;
use ledger_e2e::{idprover_binary, wait_for, workspace_binary, IdProver, Options, TestLog};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Sets this process's umask to 022 (inherited by the servers it starts) and checks that it took
/// effect: a file created without a mode is then 0644.
fn umask_022(dir: &Path) {
    // SAFETY: umask only sets the process's file mode creation mask; every test here wants 022.
    unsafe {
        libc::umask(0o022);
    }
    let probe = dir.join("umask-probe");
    std::fs::write(&probe, "x").expect("probe");
    assert_eq!(mode(&probe), 0o644, "umask 022 is in effect");
    std::fs::remove_file(&probe).expect("remove probe");
}

/// Runs `bin args…` through `sh -c 'umask 022; exec "$0" "$@"'`.
fn run_with_umask_022(bin: &Path, args: &[&str], out: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(bin)
        .args(args)
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("run sh")
}

/// A keygen subcommand (`… keygen --name NAME --out FILE`) under umask 022: the key file is 0600
/// and holds the key whose verifier key was printed; a second run to the same path fails, says
/// why, and leaves the key unchanged; the same under `sh` without a mode gives 0644 (the control).
fn check_keygen(what: &str, bin: &Path, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("signer.key");
    let args = ["keygen", "--name", name, "--out"];

    let out = run_with_umask_022(bin, &args, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} keygen: {stderr}");
    assert_eq!(mode(&path), 0o600, "{what}: the key file mode");
    let text = std::fs::read_to_string(&path).expect("key file");
    let key = SignerKey::parse(text.trim()).expect("a signer key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed = VerifierKey::parse(stdout.trim()).expect("the verifier key on stdout");
    assert_eq!(key.verifier(), printed, "{what}");
    assert_eq!(key.name(), name);

    // A second keygen to the same path is refused and changes nothing.
    let again = run_with_umask_022(bin, &args, &path);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{what}: a second keygen must fail");
    assert!(
        stderr.contains("already exists") && stderr.contains("refusing to overwrite"),
        "{what}: a clear error, got {stderr:?}"
    );
    assert!(
        stderr.contains(&path.display().to_string()),
        "{what}: names the file"
    );
    assert!(
        again.stdout.is_empty(),
        "{what}: no new verifier key printed"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("key file"), text);
    assert_eq!(mode(&path), 0o600);

    // Also when the existing file is someone else's (not a key): untouched.
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "precious").expect("write");
    let r = run_with_umask_022(bin, &args, &other);
    assert!(!r.status.success(), "{what}");
    assert_eq!(std::fs::read_to_string(&other).expect("read"), "precious");

    // Control: the same shell, umask and folder give 0644 to a file created without a mode.
    let probe = dir.path().join("probe");
    let st = Command::new("sh")
        .arg("-c")
        .arg("umask 022; : > \"$0\"")
        .arg(&probe)
        .status()
        .expect("sh");
    assert!(st.success());
    assert_eq!(mode(&probe), 0o644, "the umask makes plain files 0644");
}

#[test]
fn auditor_keygen_writes_the_witness_key_0600_and_never_overwrites_it() {
    let bin = workspace_binary("auditor", "auditor", "auditor");
    check_keygen("auditor", &bin, "auditor-1.example");
}

#[test]
fn ledger_keygen_writes_the_signer_key_0600_and_never_overwrites_it() {
    let bin = workspace_binary("ledger-cli", "client", "ledger");
    check_keygen("ledger", &bin, "msp-a.example");
}

/// The log server creates `<data>/log.key` and `<data>/admin.token` on first start: 0600 under
/// umask 022, in a 0700 data folder, and a restart reuses them unchanged.
#[test]
fn log_server_creates_its_key_and_admin_token_0600() {
    let scratch = tempfile::tempdir().expect("tempdir");
    umask_022(scratch.path());
    let mut log = TestLog::start(Options::new(TreeHash::Blake3));
    let data = log.data_dir();
    let key = data.join("log.key");
    let token = data.join("admin.token");
    assert_eq!(mode(&key), 0o600, "log.key");
    assert_eq!(mode(&token), 0o600, "admin.token");
    assert_eq!(mode(&data), 0o700, "the data folder");
    let (key_text, token_text) = (
        std::fs::read_to_string(&key).expect("key"),
        std::fs::read_to_string(&token).expect("token"),
    );
    // The token works (it is the one the server uses).
    assert!(log
        .enroll(ledger_core::entry::Role::Msp, &test_key("msp-a.example"))
        .is_some());

    log.restart();
    assert_eq!(std::fs::read_to_string(&key).expect("key"), key_text);
    assert_eq!(std::fs::read_to_string(&token).expect("token"), token_text);
    assert_eq!((mode(&key), mode(&token)), (0o600, 0o600));
}

/// The identity prover's outbox holds one-time codes, which are secrets until used: each message
/// file is 0600 and the outbox folder it creates is 0700, under umask 022.
#[test]
fn idprover_outbox_codes_are_0600() {
    let scratch = tempfile::tempdir().expect("tempdir");
    umask_022(scratch.path());
    let key_path: PathBuf = scratch.path().join("prover.key");
    std::fs::write(&key_path, test_key("prover.example").to_text()).expect("prover key");
    let outbox = scratch.path().join("outbox");
    let prover = IdProver::start(&idprover_binary(), &key_path, &outbox, &[], "warn");

    let sii = "tel:+14155550100";
    let http = reqwest::blocking::Client::new();
    let mut challenges = Vec::new();
    // Two messages for the same SII: the second replaces the first, and is private too.
    for ssi in [
        "mimi://msp-a.example/u/alice",
        "mimi://msp-a.example/u/alice2",
    ] {
        let r = http
            .post(format!("{}/v1/challenge", prover.url()))
            .json(&serde_json::json!({
                "sii": sii, "action": "claim", "msp": "msp-a.example", "ssi": ssi,
            }))
            .send()
            .expect("POST /v1/challenge");
        assert_eq!(r.status().as_u16(), 200);
        let answer: serde_json::Value = r.json().expect("json");
        let challenge = answer["challenge"].as_str().expect("challenge").to_string();
        let file = prover.outbox_file(sii);
        wait_for(Duration::from_secs(10), "the outbox file", || {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|t| t.contains(&challenge))
        });
        assert_eq!(mode(&file), 0o600, "the outbox file holding a code");
        assert!(!prover.code(sii, &challenge).is_empty());
        challenges.push(challenge);
    }
    assert_eq!(mode(&outbox), 0o700, "the outbox folder");
    // Only the current message is left (no temporary files with codes lying around).
    let names: Vec<String> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["tel%3A+14155550100.txt"], "{names:?}");
}
