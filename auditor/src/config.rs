//! The auditor's configuration file (`auditor.toml`).
//!
//! ```toml
//! listen = "127.0.0.1:8090"        # optional; `--listen` overrides it
//! state_dir = "./auditor-state"    # sled database; relative to the config file's folder
//! key_file = "witness.key"         # PRIVATE+KEY+<name>+<id>+<base64(0x04 ‖ seed)>
//! poll_interval_ms = 30000         # how often logs and peers are polled (gossip)
//!
//! [[log]]
//! origin = "log.example/ledger"
//! vkey = "log.example/ledger+1a2b3c4d+AXXX…"
//! hash = "blake3"                  # or "sha256": the log's tree hash (SPEC §4)
//! url = "https://log.example"      # optional: polled for /checkpoint and consistency proofs
//!
//! [[peer]]
//! url = "https://auditor-2.example"
//!
//! # Connection cap and client timeouts (all optional; flags of the same names override them;
//! # see docs/operations.md): max_connections, header_timeout_ms, body_timeout_ms,
//! # idle_timeout_ms, max_header_bytes, drain_timeout_ms
//! max_connections = 512
//!
//! [alerts]
//! stdout = true
//! file = "alerts.jsonl"            # optional; relative to the config file's folder
//! ```
//!
//! The file is parsed strictly (unknown fields are refused) so that a typo cannot silently turn a
//! check off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ledger_core::key::{KeyAlg, SignerKey};
use ledger_core::trust::{TrustError, TrustedLog};
use ledger_core::TreeHash;
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A log's verifier key does not parse.
    #[error("log {origin:?}: invalid vkey: {reason}")]
    BadLogKey {
        /// The log's origin.
        origin: String,
        /// Why the key was refused.
        reason: String,
    },
    /// A log's verifier key is not an Ed25519 (`0x01`) key named as its origin (SPEC §4).
    #[error(
        "log {origin:?}: vkey must be an Ed25519 (0x01) key named {origin:?}, got {key_name:?}"
    )]
    LogKeyNotForOrigin {
        /// The log's origin.
        origin: String,
        /// The name in the key.
        key_name: String,
    },
    /// A log's tree hash is not `blake3` or `sha256`.
    #[error("log {origin:?}: unknown tree hash {hash:?} (expected blake3 or sha256)")]
    BadHash {
        /// The log's origin.
        origin: String,
        /// The configured value.
        hash: String,
    },
    /// Two `[[log]]` sections have the same origin.
    #[error("log {0:?} is listed twice")]
    DuplicateLog(String),
    /// The witness key file could not be read.
    #[error("cannot read witness key file {path}: {source}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The witness key file does not hold a cosignature (`0x04`) signer key.
    #[error("witness key file {path}: {reason}")]
    BadWitnessKey {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A connection limit is out of range.
    #[error("invalid connection limit: {0}")]
    Limits(#[from] ledger_serve::LimitsError),
    /// A URL is not `http://` or `https://`.
    #[error("{what}: URL {url:?} must start with http:// or https://")]
    BadUrl {
        /// Which setting.
        what: String,
        /// The configured value.
        url: String,
    },
}

/// The raw TOML schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    key_file: PathBuf,
    poll_interval_ms: Option<u64>,
    #[serde(default, rename = "log")]
    logs: Vec<RawLog>,
    #[serde(default, rename = "peer")]
    peers: Vec<RawPeer>,
    #[serde(default)]
    alerts: AlertsConfig,
    max_connections: Option<usize>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_header_bytes: Option<usize>,
    drain_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    origin: String,
    vkey: String,
    hash: String,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    url: String,
}

/// Where alert lines (SPEC §8) go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Print each alert line on stdout (default true).
    #[serde(default = "default_true")]
    pub stdout: bool,
    /// Append each alert line to this file.
    pub file: Option<PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            stdout: true,
            file: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// One log the auditor witnesses.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The log: its key (checkpoints must be signed by it, and its name is the origin) and its
    /// tree hash (for consistency proofs). A witness requires no other witnesses' cosignatures,
    /// so it has none and quorum 0.
    pub log: TrustedLog,
    /// Base URL of the log (no trailing slash), polled for `/checkpoint` and
    /// `/v1/proof/consistency`; without it the auditor only witnesses what is pushed to it.
    pub url: Option<String>,
}

impl LogConfig {
    /// The log's origin (the first checkpoint line, and its key's name).
    pub fn origin(&self) -> &str {
        self.log.origin()
    }
}

/// A peer auditor whose gossiped checkpoints are compared with ours.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Base URL (no trailing slash); `GET <url>/<hex sha256(origin)>/checkpoint` is polled.
    pub url: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The listen address from the file, if any.
    pub listen: Option<SocketAddr>,
    /// The sled database folder.
    pub state_dir: PathBuf,
    /// The witness's cosignature key.
    pub key: SignerKey,
    /// The poll interval for logs and peers.
    pub poll_interval: std::time::Duration,
    /// The logs witnessed.
    pub logs: Vec<LogConfig>,
    /// The peers gossiped with.
    pub peers: Vec<PeerConfig>,
    /// Alert sinks.
    pub alerts: AlertsConfig,
    /// Connection cap and client timeouts from the file (flags override them; checked here).
    pub limits: ledger_serve::LimitSettings,
}

impl Config {
    /// Reads and validates a configuration file; relative paths in it are taken from the file's
    /// folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base)
    }

    /// Parses and validates configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let key_path = base.join(&raw.key_file);
        let key_text =
            std::fs::read_to_string(&key_path).map_err(|source| ConfigError::ReadKey {
                path: key_path.clone(),
                source,
            })?;
        let key = SignerKey::parse(key_text.trim()).map_err(|e| ConfigError::BadWitnessKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        if key.alg() != KeyAlg::Cosignature {
            return Err(ConfigError::BadWitnessKey {
                path: key_path,
                reason: "not a cosignature/v1 (0x04) key".into(),
            });
        }
        let mut logs: Vec<LogConfig> = Vec::new();
        for l in raw.logs {
            let hash: TreeHash = l.hash.parse().map_err(|_| ConfigError::BadHash {
                origin: l.origin.clone(),
                hash: l.hash.clone(),
            })?;
            let log =
                TrustedLog::parse(&l.origin, &l.vkey, hash, &[], 0, None).map_err(|e| match e {
                    TrustError::LogKeyNotForOrigin { key_name, .. } => {
                        ConfigError::LogKeyNotForOrigin {
                            origin: l.origin.clone(),
                            key_name,
                        }
                    }
                    TrustError::LogKeyNotEd25519 { .. } => ConfigError::LogKeyNotForOrigin {
                        origin: l.origin.clone(),
                        key_name: l.origin.clone(),
                    },
                    other => ConfigError::BadLogKey {
                        origin: l.origin.clone(),
                        reason: other.to_string(),
                    },
                })?;
            if logs.iter().any(|o| o.origin() == l.origin) {
                return Err(ConfigError::DuplicateLog(l.origin));
            }
            let url = l
                .url
                .map(|u| check_url(&format!("log {:?}", l.origin), &u))
                .transpose()?;
            logs.push(LogConfig { log, url });
        }
        let peers = raw
            .peers
            .into_iter()
            .map(|p| {
                Ok(PeerConfig {
                    url: check_url("peer", &p.url)?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let limits = ledger_serve::LimitSettings {
            max_connections: raw.max_connections,
            header_timeout_ms: raw.header_timeout_ms,
            body_timeout_ms: raw.body_timeout_ms,
            idle_timeout_ms: raw.idle_timeout_ms,
            max_header_bytes: raw.max_header_bytes,
            drain_timeout_ms: raw.drain_timeout_ms,
        };
        limits.resolve()?;
        let mut alerts = raw.alerts;
        alerts.file = alerts.file.map(|f| base.join(f));
        Ok(Config {
            listen: raw.listen,
            state_dir: base.join(
                raw.state_dir
                    .unwrap_or_else(|| PathBuf::from("auditor-state")),
            ),
            key,
            poll_interval: std::time::Duration::from_millis(
                raw.poll_interval_ms.unwrap_or(30_000).max(10),
            ),
            logs,
            peers,
            alerts,
            limits,
        })
    }

    /// The configured log with this origin.
    pub fn log(&self, origin: &str) -> Option<&LogConfig> {
        self.logs.iter().find(|l| l.origin() == origin)
    }
}

/// Checks the scheme and strips trailing slashes.
fn check_url(what: &str, url: &str) -> Result<String, ConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::BadUrl {
            what: what.to_string(),
            url: url.to_string(),
        });
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::{test_key, test_witness_key};

    fn write_key(dir: &Path) {
        std::fs::write(
            dir.join("w.key"),
            test_witness_key("w.example/w1").to_text(),
        )
        .unwrap();
    }

    #[test]
    fn parses_a_full_config() {
        let dir = tempfile::tempdir().unwrap();
        write_key(dir.path());
        let vkey = test_key("log.example/a").verifier();
        let text = format!(
            "key_file = \"w.key\"\npoll_interval_ms = 250\n[[log]]\norigin = \"log.example/a\"\nvkey = \"{vkey}\"\nhash = \"sha256\"\nurl = \"http://127.0.0.1:1/\"\n[[peer]]\nurl = \"http://127.0.0.1:2\"\n[alerts]\nstdout = false\nfile = \"a.jsonl\"\n"
        );
        let c = Config::parse(&text, dir.path()).unwrap();
        assert_eq!(c.logs.len(), 1);
        assert_eq!(c.logs[0].log.hash, TreeHash::Sha256);
        assert_eq!(c.logs[0].url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(c.peers[0].url, "http://127.0.0.1:2");
        assert_eq!(c.poll_interval.as_millis(), 250);
        assert!(!c.alerts.stdout);
        assert_eq!(c.alerts.file, Some(dir.path().join("a.jsonl")));
        assert_eq!(c.state_dir, dir.path().join("auditor-state"));
        assert_eq!(c.limits, ledger_serve::LimitSettings::default());
        let limited = Config::parse(
            "key_file = \"w.key\"\nmax_connections = 4\nbody_timeout_ms = 900\n",
            dir.path(),
        )
        .unwrap();
        let l = limited.limits.resolve().unwrap();
        assert_eq!(l.max_connections, 4);
        assert_eq!(l.body_timeout.as_millis(), 900);
        assert!(matches!(
            Config::parse("key_file = \"w.key\"\nmax_connections = 0\n", dir.path()),
            Err(ConfigError::Limits(_))
        ));
    }

    #[test]
    fn refuses_bad_logs_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_key(dir.path());
        let vkey = test_key("log.example/a").verifier();
        let wrong_origin = format!(
            "key_file = \"w.key\"\n[[log]]\norigin = \"log.example/b\"\nvkey = \"{vkey}\"\nhash = \"sha256\"\n"
        );
        assert!(matches!(
            Config::parse(&wrong_origin, dir.path()),
            Err(ConfigError::LogKeyNotForOrigin { .. })
        ));
        let dup = format!(
            "key_file = \"w.key\"\n[[log]]\norigin = \"log.example/a\"\nvkey = \"{vkey}\"\nhash = \"sha256\"\n[[log]]\norigin = \"log.example/a\"\nvkey = \"{vkey}\"\nhash = \"sha256\"\n"
        );
        assert!(matches!(
            Config::parse(&dup, dir.path()),
            Err(ConfigError::DuplicateLog(_))
        ));
        let typo = "key_file = \"w.key\"\npoll_intervall_ms = 5\n";
        assert!(matches!(
            Config::parse(typo, dir.path()),
            Err(ConfigError::Toml(_))
        ));
        std::fs::write(dir.path().join("l.key"), test_key("x.example").to_text()).unwrap();
        assert!(matches!(
            Config::parse("key_file = \"l.key\"\n", dir.path()),
            Err(ConfigError::BadWitnessKey { .. })
        ));
    }
}
