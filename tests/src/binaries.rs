//! Locating the binaries under test, and building them when they are missing or older than
//! their sources (`cargo test -p ledger-e2e` builds no other package's binaries).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

// ---------------------------------------------------------------------------------------------
// Locating (and building) the binary.
// ---------------------------------------------------------------------------------------------

/// The `log-server` binary of this workspace, built when needed, once per test process.
///
/// `cargo test --workspace` builds it already (it is a bin target of a selected package), but
/// `cargo test -p ledger-e2e` does not, and a stale binary would test old code. So when the binary
/// in this test binary's target folder and profile is missing, or older than any source of
/// `log-server` or `ledger-core`, the first call runs `cargo build -p log-server --bin log-server`
/// there. (Not unconditionally: a `-p log-server` build unifies features differently from a
/// workspace build, so it would rebuild hyper, axum and the server for nothing in CI.)
/// `LEDGER_E2E_LOG_SERVER=<path>` uses that binary instead and never builds.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_and_build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot get the log-server binary: {e}"),
    }
}

pub(crate) fn locate_and_build() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LEDGER_E2E_LOG_SERVER") {
        return Ok(PathBuf::from(p));
    }
    build_workspace_binary("log-server", "log-server", "log-server")
}

/// The newest modification time of a file, or of any file below a folder.
pub(crate) fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

// ---------------------------------------------------------------------------------------------
// The other binaries of the workspace, and processes that serve HTTP (scenario tests).
// ---------------------------------------------------------------------------------------------

/// A binary of this workspace (`ledger`, `idprover`, `monitor`, `auditor`), built like
/// [`server_binary`] when missing or older than its package's sources or `ledger-core`'s: `cargo
/// test -p ledger-e2e` does not build other packages' binaries. `package_dir` is the package's
/// folder relative to the workspace (`client`, `examples/idprover`, …).
/// `LEDGER_E2E_BIN_<NAME>=<path>` (name upper-cased, `-` as `_`) uses that binary, never building.
pub fn workspace_binary(package: &str, package_dir: &str, bin: &str) -> PathBuf {
    type Built = std::collections::HashMap<String, Result<PathBuf, String>>;
    static BINS: OnceLock<Mutex<Built>> = OnceLock::new();
    if bin == "log-server" {
        return server_binary();
    }
    let env = format!(
        "LEDGER_E2E_BIN_{}",
        bin.to_ascii_uppercase().replace('-', "_")
    );
    if let Some(p) = std::env::var_os(&env) {
        return PathBuf::from(p);
    }
    let mut bins = BINS
        .get_or_init(|| Mutex::new(Built::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let r = bins
        .entry(bin.to_string())
        .or_insert_with(|| build_workspace_binary(package, package_dir, bin));
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot get the {bin} binary: {e}"),
    }
}

pub(crate) fn build_workspace_binary(
    package: &str,
    package_dir: &str,
    bin: &str,
) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected profile folder {}", profile_dir.display()))?
        .to_path_buf();
    let profile = match profile_dir.file_name().and_then(|s| s.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(p) => p.to_string(),
        None => {
            return Err(format!(
                "unexpected profile folder {}",
                profile_dir.display()
            ))
        }
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = profile_dir.join(bin);
    let sources = [
        workspace.join(package_dir).join("src"),
        workspace.join(package_dir).join("Cargo.toml"),
        workspace.join("core/src"),
        workspace.join("core/Cargo.toml"),
        // Every binary writes its secrets through it.
        workspace.join("secret-file/src"),
        // Every server binary serves through ledger-serve.
        workspace.join("serve/src"),
        workspace.join("serve/Cargo.toml"),
    ];
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let newest_source = sources.iter().filter_map(|p| newest_mtime(p)).max();
    if matches!((built, newest_source), (Some(b), Some(s)) if b >= s) {
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--profile"])
        .arg(&profile)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cargo:?} build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p {package} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !path.exists() {
        return Err(format!(
            "{} does not exist after cargo build",
            path.display()
        ));
    }
    Ok(path)
}
