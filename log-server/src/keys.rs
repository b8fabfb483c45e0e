//! The log's secrets: its signer key (`<data>/log.key`) and the admin bearer token
//! (`<data>/admin.token`), both created on first start with mode 0600.
//!
//! The signer key file holds one line, Go's signer key text `PRIVATE+KEY+<origin>+<id>+<base64>`
//! (SPEC §2), so it can be used with other C2SP tooling. Its name must be the log origin, because
//! C2SP tlog-checkpoint names the signature line after the origin.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ledger_core::key::{KeyAlg, KeyError, SignerKey};
use rand_core::{OsRng, RngCore as _};

/// Why a key or token file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file that must exist (named explicitly, or the key of an existing log) does not.
    #[error("{0}: no such file")]
    Missing(PathBuf),
    /// The signer key text does not parse.
    #[error("{path}: not a signer key: {source}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The key's name is not the log origin.
    #[error("{path}: the key is named {found:?}, but the log origin is {origin:?} (C2SP checkpoints are signed by a key named as the origin)")]
    WrongName {
        /// The file.
        path: PathBuf,
        /// The key name.
        found: String,
        /// The origin.
        origin: String,
    },
    /// The key is not an Ed25519 note key.
    #[error("{0}: the log key must be an Ed25519 (type 0x01) note key")]
    WrongAlg(PathBuf),
    /// The admin token file is empty.
    #[error("{0}: the admin token file is empty")]
    EmptyToken(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a new secret file: mode 0600 from creation, never over an existing file, synced with its
/// folder (the one implementation every binary uses, `ledger_secret_file::write_secret`).
pub fn write_secret(path: &Path, contents: &str) -> Result<(), KeyFileError> {
    ledger_secret_file::write_secret(path, contents.as_bytes()).map_err(|e| io_err(path)(e.into()))
}

/// Loads the log signer key from `path`, or, when `create` and the file does not exist, generates
/// one named `origin` and writes it. Returns the key and whether it was created.
pub fn load_or_create_signer(
    path: &Path,
    origin: &str,
    create: bool,
) -> Result<(SignerKey, bool), KeyFileError> {
    if !path.exists() {
        if !create {
            return Err(KeyFileError::Missing(path.to_path_buf()));
        }
        let key = SignerKey::generate(origin, KeyAlg::Ed25519, &mut OsRng).map_err(|source| {
            KeyFileError::BadKey {
                path: path.to_path_buf(),
                source,
            }
        })?;
        write_secret(path, &format!("{}\n", key.to_text()))?;
        return Ok((key, true));
    }
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let key = SignerKey::parse(text.trim()).map_err(|source| KeyFileError::BadKey {
        path: path.to_path_buf(),
        source,
    })?;
    if key.alg() != KeyAlg::Ed25519 {
        return Err(KeyFileError::WrongAlg(path.to_path_buf()));
    }
    if key.name() != origin {
        return Err(KeyFileError::WrongName {
            path: path.to_path_buf(),
            found: key.name().to_string(),
            origin: origin.to_string(),
        });
    }
    Ok((key, false))
}

/// Loads the admin token from `path`, or, when `create` and the file does not exist, generates 32
/// random bytes (base64url) and writes them. Surrounding whitespace in the file is ignored.
pub fn load_or_create_token(path: &Path, create: bool) -> Result<(String, bool), KeyFileError> {
    if !path.exists() {
        if !create {
            return Err(KeyFileError::Missing(path.to_path_buf()));
        }
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        write_secret(path, &format!("{token}\n"))?;
        return Ok((token, true));
    }
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(KeyFileError::EmptyToken(path.to_path_buf()));
    }
    Ok((token, false))
}

/// Compares two byte strings in time that depends only on their lengths, not on where they differ
/// (so a client cannot find the admin token byte by byte by timing refusals).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// Whether an `Authorization` header value is `Bearer <token>` with the right token.
pub fn bearer_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let Some(given) = value.strip_prefix(b"Bearer ") else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_key_and_token_with_mode_0600_then_reloads_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kp = dir.path().join("log.key");
        let (k1, created) = load_or_create_signer(&kp, "example.org/log", true).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&kp).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, created) = load_or_create_signer(&kp, "example.org/log", true).expect("load");
        assert!(!created);
        assert_eq!(k1.verifier(), k2.verifier());
        assert!(matches!(
            load_or_create_signer(&kp, "other.org/log", true),
            Err(KeyFileError::WrongName { .. })
        ));
        assert!(matches!(
            load_or_create_signer(&dir.path().join("nope"), "x", false),
            Err(KeyFileError::Missing(_))
        ));

        let tp = dir.path().join("admin.token");
        let (t1, _) = load_or_create_token(&tp, true).expect("token");
        assert_eq!(t1.len(), 43);
        let mode = std::fs::metadata(&tp).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (t2, created) = load_or_create_token(&tp, true).expect("token again");
        assert!(!created);
        assert_eq!(t1, t2);
    }

    #[test]
    fn bearer_comparison() {
        assert!(bearer_matches(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3creT"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3cret "), "s3cret"));
        assert!(!bearer_matches(Some(b"Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"ab"));
    }
}
