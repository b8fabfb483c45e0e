//! Configuration: command-line flags, `LEDGER_*` environment variables and a TOML file.
//!
//! Precedence, highest first: flag, environment variable (clap reads both), TOML file (`--config`),
//! built-in default. Origin and hash have no default here on purpose: they are fixed when the data
//! folder is created, so a restart that does not name them uses the stored ones, and one that names
//! different ones is refused (see [`crate::server`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ledger_core::admission::Policy;
use ledger_core::TreeHash;
use serde::Deserialize;

/// The origin of a new log when none is given.
pub const DEFAULT_ORIGIN: &str = "localhost/mimi-ledger";
/// The data folder when none is given.
pub const DEFAULT_DATA: &str = "./ledger-data";
/// The listen address when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default largest number of entries the sequencer commits in one batch.
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Default longest time (ms) the sequencer waits for a batch to fill after its first entry.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 5;
/// Default capacity of the submission queue (submissions being checked or waiting to be sequenced).
pub const DEFAULT_QUEUE_SIZE: usize = 8192;
/// Default size of sled's page cache, in MiB.
pub const DEFAULT_CACHE_MB: u64 = 64;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `log-server` command line. Every flag can also be set with the `LEDGER_…` variable named in its
/// help, or in the TOML file given by `--config` (same names with `_` for `-`).
#[derive(Debug, Default, Parser)]
#[command(
    name = "log-server",
    version,
    about = "mimi-ledger transparency log server"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "LEDGER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data folder (created on first start) [default: ./ledger-data].
    #[arg(long, env = "LEDGER_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Listen address; port 0 picks a free port [default: 127.0.0.1:8080].
    #[arg(long, env = "LEDGER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Log origin, fixed at creation [default for a new log: localhost/mimi-ledger].
    #[arg(long, env = "LEDGER_ORIGIN", value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Tree hash, fixed at creation: blake3 or sha256 [default for a new log: blake3].
    #[arg(long, env = "LEDGER_HASH", value_name = "HASH")]
    pub hash: Option<TreeHash>,
    /// Log signer key file (`PRIVATE+KEY+…`) [default: log.key in the data folder, created if missing].
    #[arg(long, env = "LEDGER_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// File holding the admin bearer token [default: admin.token in the data folder, created if missing].
    #[arg(long, env = "LEDGER_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); serves HTTPS together with --tls-key.
    #[arg(
        long,
        env = "LEDGER_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        env = "LEDGER_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Require a prover attestation on every claim [default: false].
    #[arg(long, env = "LEDGER_REQUIRE_ATTESTATION", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true")]
    pub require_attestation: Option<bool>,
    /// Largest accepted |entry time − log clock|, in seconds [default: 600].
    #[arg(long, env = "LEDGER_MAX_SKEW", value_name = "SECONDS")]
    pub max_skew: Option<u64>,
    /// Most entries committed in one batch [default: 256].
    #[arg(long, env = "LEDGER_BATCH_SIZE", value_name = "N")]
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill after its first entry, in ms, while more submissions are
    /// being checked (a lone submission is committed at once) [default: 5].
    #[arg(long, env = "LEDGER_BATCH_WAIT_MS", value_name = "MS")]
    pub batch_wait_ms: Option<u64>,
    /// Capacity of the submission queue; when full, /v1/add answers 503 [default: 8192].
    #[arg(long, env = "LEDGER_QUEUE_SIZE", value_name = "N")]
    pub queue_size: Option<usize>,
    /// sled page cache size in MiB [default: 64].
    #[arg(long, env = "LEDGER_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// Log output format: text or json [default: text].
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// The TOML configuration file: the same settings as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Cli::data`].
    pub data: Option<PathBuf>,
    /// See [`Cli::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Cli::origin`].
    pub origin: Option<String>,
    /// See [`Cli::hash`].
    pub hash: Option<TreeHash>,
    /// See [`Cli::key`].
    pub key: Option<PathBuf>,
    /// See [`Cli::admin_token_file`].
    pub admin_token_file: Option<PathBuf>,
    /// See [`Cli::tls_cert`].
    pub tls_cert: Option<PathBuf>,
    /// See [`Cli::tls_key`].
    pub tls_key: Option<PathBuf>,
    /// See [`Cli::require_attestation`].
    pub require_attestation: Option<bool>,
    /// See [`Cli::max_skew`].
    pub max_skew: Option<u64>,
    /// See [`Cli::batch_size`].
    pub batch_size: Option<usize>,
    /// See [`Cli::batch_wait_ms`].
    pub batch_wait_ms: Option<u64>,
    /// See [`Cli::queue_size`].
    pub queue_size: Option<usize>,
    /// See [`Cli::cache_mb`].
    pub cache_mb: Option<u64>,
    /// See [`Cli::log_format`].
    pub log_format: Option<LogFormat>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML file does not parse or has unknown keys.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: Box<toml::de::Error>,
    },
    /// Only one of the TLS certificate and key is set.
    #[error("TLS needs both tls_cert and tls_key")]
    TlsHalf,
    /// A setting is out of its range.
    #[error("{0}")]
    Invalid(String),
}

/// How the sequencer batches (see [`crate::sequencer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most entries in one batch.
    pub max_entries: usize,
    /// Longest wait for a batch to fill after its first entry.
    pub max_wait: Duration,
    /// Capacity of the submission queue.
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_entries: DEFAULT_BATCH_SIZE,
            max_wait: Duration::from_millis(DEFAULT_BATCH_WAIT_MS),
            queue: DEFAULT_QUEUE_SIZE,
        }
    }
}

/// TLS certificate and key files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The data folder.
    pub data: PathBuf,
    /// The listen address.
    pub listen: SocketAddr,
    /// The origin asked for, if any (default applies only when creating a log).
    pub origin: Option<String>,
    /// The tree hash asked for, if any (default applies only when creating a log).
    pub hash: Option<TreeHash>,
    /// The signer key file.
    pub key: PathBuf,
    /// Whether `key` was given (then it must exist) or is the default (created if missing).
    pub key_given: bool,
    /// The admin token file.
    pub admin_token_file: PathBuf,
    /// Whether `admin_token_file` was given (then it must exist).
    pub admin_token_given: bool,
    /// TLS files, when serving HTTPS.
    pub tls: Option<TlsFiles>,
    /// The admission policy.
    pub policy: Policy,
    /// Sequencer batching.
    pub batch: BatchConfig,
    /// sled page cache, bytes.
    pub cache_bytes: u64,
    /// Log format.
    pub log_format: LogFormat,
}

impl Config {
    /// A configuration for a log in `data` with every default (tests use it).
    pub fn for_data_dir(data: &Path) -> Config {
        Config {
            data: data.to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            origin: None,
            hash: None,
            key: data.join("log.key"),
            key_given: false,
            admin_token_file: data.join("admin.token"),
            admin_token_given: false,
            tls: None,
            policy: Policy::default(),
            batch: BatchConfig::default(),
            cache_bytes: DEFAULT_CACHE_MB * 1024 * 1024,
            log_format: LogFormat::Text,
        }
    }

    /// Parses the command line (and environment), reads the TOML file it names, and resolves.
    pub fn load() -> Result<Config, ConfigError> {
        let cli = Cli::parse();
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::resolve(cli, file)
    }

    /// Merges flags/environment over the file over the defaults.
    pub fn resolve(cli: Cli, file: FileConfig) -> Result<Config, ConfigError> {
        let data = cli
            .data
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let listen = match cli.listen.or(file.listen) {
            Some(a) => a,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("default listen address: {e}")))?,
        };
        let key_opt = cli.key.or(file.key);
        let token_opt = cli.admin_token_file.or(file.admin_token_file);
        let tls = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsHalf),
        };
        let policy = Policy {
            require_attestation: cli
                .require_attestation
                .or(file.require_attestation)
                .unwrap_or(false),
            max_skew_s: cli
                .max_skew
                .or(file.max_skew)
                .unwrap_or(Policy::default().max_skew_s),
        };
        let batch = BatchConfig {
            max_entries: cli
                .batch_size
                .or(file.batch_size)
                .unwrap_or(DEFAULT_BATCH_SIZE),
            max_wait: Duration::from_millis(
                cli.batch_wait_ms
                    .or(file.batch_wait_ms)
                    .unwrap_or(DEFAULT_BATCH_WAIT_MS),
            ),
            queue: cli
                .queue_size
                .or(file.queue_size)
                .unwrap_or(DEFAULT_QUEUE_SIZE),
        };
        if batch.max_entries == 0 || batch.queue == 0 {
            return Err(ConfigError::Invalid(
                "batch_size and queue_size must be at least 1".into(),
            ));
        }
        if let Some(o) = cli.origin.as_ref().or(file.origin.as_ref()) {
            if !ledger_core::key::is_valid_key_name(o) {
                return Err(ConfigError::Invalid(format!(
                    "origin {o:?} is not a valid note key name (non-empty, no spaces, no '+')"
                )));
            }
        }
        Ok(Config {
            key: key_opt.clone().unwrap_or_else(|| data.join("log.key")),
            key_given: key_opt.is_some(),
            admin_token_file: token_opt
                .clone()
                .unwrap_or_else(|| data.join("admin.token")),
            admin_token_given: token_opt.is_some(),
            data,
            listen,
            origin: cli.origin.or(file.origin),
            hash: cli.hash.or(file.hash),
            tls,
            policy,
            batch,
            cache_bytes: cli.cache_mb.or(file.cache_mb).unwrap_or(DEFAULT_CACHE_MB) * 1024 * 1024,
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
        })
    }
}

/// Reads and parses a TOML configuration file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            data = "/srv/ledger"
            listen = "127.0.0.1:9000"
            hash = "sha256"
            max_skew = 30
            batch_size = 64
            log_format = "json"
            "#,
        )
        .expect("parses");
        let cli = Cli::try_parse_from([
            "log-server",
            "--listen",
            "127.0.0.1:0",
            "--require-attestation",
        ])
        .expect("parses");
        let c = Config::resolve(cli, file).expect("resolves");
        assert_eq!(c.data, PathBuf::from("/srv/ledger"));
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.hash, Some(TreeHash::Sha256));
        assert_eq!(c.origin, None);
        assert!(c.policy.require_attestation);
        assert_eq!(c.policy.max_skew_s, 30);
        assert_eq!(c.batch.max_entries, 64);
        assert_eq!(
            c.batch.max_wait,
            Duration::from_millis(DEFAULT_BATCH_WAIT_MS)
        );
        assert_eq!(c.key, PathBuf::from("/srv/ledger/log.key"));
        assert!(!c.key_given);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("colour = \"red\"").is_err());
        assert!(toml::from_str::<FileConfig>("hash = \"md5\"").is_err());
        let cli = Cli::try_parse_from(["log-server", "--origin", "a b"]).expect("parses");
        assert!(matches!(
            Config::resolve(cli, FileConfig::default()),
            Err(ConfigError::Invalid(_))
        ));
        assert!(Cli::try_parse_from(["log-server", "--tls-cert", "c.pem"]).is_err());
    }

    #[test]
    fn defaults() {
        let c = Config::for_data_dir(Path::new("/tmp/x"));
        let resolved = Config::resolve(
            Cli::try_parse_from(["log-server", "--data", "/tmp/x"]).expect("parses"),
            FileConfig::default(),
        )
        .expect("resolves");
        assert_eq!(c, resolved);
        assert_eq!(
            c.listen,
            DEFAULT_LISTEN.parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.batch, BatchConfig::default());
        assert_eq!(c.admin_token_file, PathBuf::from("/tmp/x/admin.token"));
    }
}
