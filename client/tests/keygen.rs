//! `ledger keygen` through the real binary.

use std::process::Command;

use ledger_core::key::{SignerKey, VerifierKey};

fn ledger() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ledger"))
}

#[test]
fn keygen_writes_a_0600_key_and_prints_its_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msp-a.key");
    let out = ledger()
        .args(["keygen", "--name", "msp-a.example", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vkey_text = String::from_utf8(out.stdout).unwrap();
    let vkey = VerifierKey::parse(vkey_text.trim()).unwrap();
    assert_eq!(vkey.name(), "msp-a.example");

    let text = std::fs::read_to_string(&path).unwrap();
    let key = SignerKey::parse(text.trim()).unwrap();
    assert_eq!(key.verifier(), vkey);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn keygen_refuses_to_overwrite_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, "precious").unwrap();
    let out = ledger()
        .args(["keygen", "--name", "msp-a.example", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");

    let out = ledger()
        .args(["keygen", "--name", "Bad Name", "--out"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
    assert!(!dir.path().join("other").exists());
}
