//! `ledger keygen`: a new signer key on disk (0600), its verifier key on stdout.

use std::path::Path;

use anyhow::Context as _;
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::sii::Name;

/// Generates a key named `name` and writes it to `out`, refusing to overwrite an existing file.
pub fn keygen(name: &str, out: &Path) -> anyhow::Result<()> {
    Name::parse(name)
        .with_context(|| format!("--name {name:?} is not a valid MSP or prover name"))?;
    let key = SignerKey::generate(name, KeyAlg::Ed25519, &mut rand_core::OsRng)
        .with_context(|| format!("cannot make a key named {name:?}"))?;
    // 0600 from creation, never over an existing file (most likely a key already enrolled).
    ledger_secret_file::write_secret(out, format!("{}\n", key.to_text()).as_bytes())?;
    println!("{}", key.verifier());
    eprintln!(
        "wrote signer key to {} (mode 0600); enroll the verifier key above in the log",
        out.display()
    );
    Ok(())
}
