//! Writing secrets to disk: signer keys, bearer tokens, one-time codes.
//!
//! Every binary of mimi-ledger that writes a secret calls [`write_secret`], so that all of them get
//! the same three properties, which are easy to get subtly wrong one copy at a time:
//!
//! - **Private from the first byte.** The file is created with mode 0600 by the `open` call itself
//!   (`O_CREAT` with that mode), never created with the process umask (0644 under the usual 022)
//!   and `chmod`-ed afterwards: in between, another local user could open it and keep the handle.
//! - **Never replaces anything.** `O_EXCL` (`create_new`): an existing file — most often the key
//!   that is already enrolled in a log — is left untouched and the call fails with
//!   [`std::io::ErrorKind::AlreadyExists`]; a symlink planted at the path is not followed either.
//! - **Durable when it returns.** The file and its folder are synced, so a crash right after a
//!   key is printed and enrolled cannot lose the key.
//!
//! This crate does I/O, which is why it is not part of `ledger-core`; it depends on nothing, so
//! that every binary can use it without depending on another service.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// The permission bits of every secret file: read and write for the owner only.
pub const SECRET_MODE: u32 = 0o600;

/// The permission bits of folders that hold secrets: the owner only (see [`create_private_dir`]).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Why a secret file was not written. Both variants name the file, so binaries can show them as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// Something already exists at the path (a file, a folder or a symlink); it was left unchanged.
    #[error("{} already exists; refusing to overwrite it", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// Creating, writing or syncing failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl From<SecretFileError> for io::Error {
    /// For callers whose own errors hold an `io::Error`; the kind is kept
    /// ([`io::ErrorKind::AlreadyExists`] for [`SecretFileError::Exists`]).
    fn from(e: SecretFileError) -> io::Error {
        match e {
            SecretFileError::Exists { .. } => io::Error::new(io::ErrorKind::AlreadyExists, e),
            SecretFileError::Io { source, .. } => source,
        }
    }
}

/// Creates `path` with mode 0600, refusing to replace an existing file, writes `contents` and syncs
/// the file and its parent folder.
///
/// Fails with [`SecretFileError::Exists`] when `path` exists, leaving it unchanged. When writing
/// fails after the file was created, the partial file is removed (so a retry is not refused
/// because of it).
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => SecretFileError::Exists {
            path: path.to_path_buf(),
        },
        _ => SecretFileError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(SECRET_MODE);
    }
    let mut file = opts.open(path).map_err(io_err)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // Best effort: the write error is the one worth reporting.
        let _ = std::fs::remove_file(path);
        return Err(io_err(e));
    }
    sync_parent(path).map_err(io_err)
}

/// Creates `path` (and missing parents) as folders only the owner can open (mode 0700), so that the
/// names of the secrets inside do not leak either. An existing folder is left as it is.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(path)
}

/// Syncs the folder holding `path`, so that the new directory entry survives a crash.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

/// Other systems cannot open a folder to sync it; the file itself was synced.
#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn creates_a_0600_file_with_the_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        write_secret(&path, b"secret\n").expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).expect("read"), b"secret\n");
        // A relative path (parent ".") works too.
        let rel = Path::new("ledger-secret-file-test.tmp");
        let _ = std::fs::remove_file(rel);
        write_secret(rel, b"x").expect("relative");
        assert_eq!(mode(rel), 0o600);
        std::fs::remove_file(rel).expect("cleanup");
    }

    #[test]
    fn refuses_to_replace_a_file_or_follow_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, "precious").expect("write");
        let err = write_secret(&path, b"new").unwrap_err();
        assert!(matches!(err, SecretFileError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "precious");

        let target = dir.path().join("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = write_secret(&link, b"new").unwrap_err();
        assert!(matches!(err, SecretFileError::Exists { .. }), "{err:?}");
        assert!(!target.exists(), "the symlink was not followed");
    }

    #[test]
    fn private_dirs_are_0700_and_existing_ones_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).expect("create");
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        create_private_dir(&nested).expect("exists already");
        write_secret(&nested.join("code"), b"123456").expect("write inside");
    }
}
