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
/// Default largest number of entries the sequencer commits in one batch. A batch takes what is
/// queued up to this bound, so the bound only matters under bulk load (a lone claim is committed
/// at once, and 128 claims in flight never fill it): there, 2,048 took bundles 32% faster than
/// 256 (one sync, one checkpoint and one map commit per batch; docs/benchmarks.md).
pub const DEFAULT_BATCH_SIZE: usize = 2048;
/// Default longest time (ms) the sequencer waits for a batch to fill after its first entry.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 5;
/// Default capacity of the submission queue (submissions being checked or waiting to be sequenced).
pub const DEFAULT_QUEUE_SIZE: usize = 8192;
/// Default size of the index's block cache, in MiB.
pub const DEFAULT_CACHE_MB: u64 = 64;
/// Default free space (MiB) the data folder's disk must keep: below it the log does not start and
/// refuses writes (`storage-full`) until space is freed.
pub const DEFAULT_MIN_FREE_MB: u64 = 64;

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
    /// The checkpoint lock: the latest checkpoint this key signed, kept outside the store and
    /// written crash-safely before each checkpoint is published. At start the store must reach it
    /// and hash to it, or the log refuses to start instead of forking. Keep it with the key
    /// [default: the key file's path + ".checkpoint"].
    #[arg(long, env = "LEDGER_CHECKPOINT_LOCK", value_name = "FILE")]
    pub checkpoint_lock: Option<PathBuf>,
    /// DANGER: start a new, empty tree although this key has signed checkpoints before (its
    /// checkpoint lock exists). This CREATES A FORK of the log: everyone who saw the old
    /// checkpoints can prove the log misbehaved. Only for a key that never served anyone.
    #[arg(long, env = "LEDGER_ALLOW_NEW_TREE", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true")]
    pub allow_new_tree: Option<bool>,
    /// Trust an existing store that has no checkpoint lock (written by a log-server without
    /// locks), and create the lock from it. If the store lost entries, the log will fork.
    #[arg(long, env = "LEDGER_ADOPT_STORE", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true")]
    pub adopt_store: Option<bool>,
    /// Free space the data folder's disk must keep, in MiB: below it the log does not start, and
    /// while running it refuses writes with 503 `storage-full` until space is freed; 0 turns the
    /// check off [default: 64].
    #[arg(long, env = "LEDGER_MIN_FREE_MB", value_name = "MIB")]
    pub min_free_mb: Option<u64>,
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
    /// Most entries committed in one batch [default: 2048].
    #[arg(long, env = "LEDGER_BATCH_SIZE", value_name = "N")]
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill after its first entry, in ms, while more submissions are
    /// being checked (a lone submission is committed at once) [default: 5].
    #[arg(long, env = "LEDGER_BATCH_WAIT_MS", value_name = "MS")]
    pub batch_wait_ms: Option<u64>,
    /// Capacity of the submission queue; when full, /v1/add answers 503 [default: 8192].
    #[arg(long, env = "LEDGER_QUEUE_SIZE", value_name = "N")]
    pub queue_size: Option<usize>,
    /// The index's block cache size in MiB [default: 64].
    #[arg(long, env = "LEDGER_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// LZ4-compress the index's blocks, fixed at creation (its keys are hashes, so it saves
    /// little; the tile files are never compressed) [default for a new log: false].
    #[arg(long, env = "LEDGER_COMPRESS", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true")]
    pub compress: Option<bool>,
    /// Log output format: text or json [default: text].
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Per-client-address limit on POST /v1/add and /v1/admin/enroll, requests per second;
    /// 0 turns it off [default: 0, off].
    #[arg(long, env = "LEDGER_RATE_LIMIT_PER_S", value_name = "N")]
    pub rate_limit_per_s: Option<u32>,
    /// Burst of the per-client limit (requests allowed at once) [default: 2 × rate-limit-per-s].
    #[arg(long, env = "LEDGER_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// A witness to ask for cosignatures of each checkpoint, as URL=VKEY (repeatable; when given,
    /// replaces the file's `[[witness]]` list).
    #[arg(long = "witness", value_name = "URL=VKEY")]
    pub witness: Vec<String>,
    /// How many witness cosignatures each checkpoint should carry, published in /v1/info
    /// [default: a majority of the witnesses].
    #[arg(long, env = "LEDGER_QUORUM", value_name = "N")]
    pub quorum: Option<usize>,
    /// How long one witness may take to cosign a checkpoint, in ms [default: 2000].
    #[arg(long, env = "LEDGER_WITNESS_TIMEOUT_MS", value_name = "MS")]
    pub witness_timeout_ms: Option<u64>,
    /// Run as a read-only DP mirror of the log at URL (its C2SP tile API, `http(s)://…`) or in
    /// an object store (`s3://BUCKET/PREFIX`, credentials from the AWS environment): follow and
    /// verify it, serve its checkpoints, refuse writes (see docs/operations.md). Needs --trust.
    #[arg(long, env = "LEDGER_MIRROR_OF", value_name = "URL")]
    pub mirror_of: Option<String>,
    /// The trust file of the mirrored log (`ledger trust init`'s TOML: origin, log_vkey, hash,
    /// witnesses, quorum): what every checkpoint the mirror serves is verified against.
    #[arg(long, env = "LEDGER_TRUST", value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// A mirror holds only the SIIs under this prefix (repeatable; e.g. `tel:+1`, `mailto:`);
    /// lookups of others are refused with `outside-shard` [default: every SII].
    #[arg(long = "shard", value_name = "PREFIX")]
    pub shard: Vec<String>,
    /// How often a mirror asks for the log's checkpoint, in ms [default: 1000].
    #[arg(long, env = "LEDGER_MIRROR_POLL_MS", value_name = "MS")]
    pub mirror_poll_ms: Option<u64>,
    /// A mirror appends its alerts (SPEC §8 lines, the monitor's kinds) to this file [default:
    /// `<data>/mirror-alerts.jsonl`].
    #[arg(long, env = "LEDGER_MIRROR_ALERTS", value_name = "FILE")]
    pub mirror_alerts: Option<PathBuf>,
    /// Connection cap and client timeouts (see docs/operations.md).
    #[command(flatten)]
    pub limits: ledger_serve::LimitSettings,
    /// Lookup rate limit and Privacy Pass tokens (see docs/privacy.md).
    #[command(flatten)]
    pub lookup: crate::tokens::LookupSettings,
    /// Publish the tiles and checkpoint to object storage, `s3://BUCKET/PREFIX` (endpoint, region
    /// and credentials from the AWS_* environment variables; see docs/operations.md).
    #[arg(long, env = "LEDGER_PUBLISH", value_name = "URL")]
    pub publish: Option<String>,
    /// Entries the bucket may be behind before sequencing waits for the publisher
    /// [default: 65536].
    #[arg(long, env = "LEDGER_PUBLISH_MAX_LAG", value_name = "N")]
    pub publish_max_lag: Option<u64>,
    /// How long a superseded OHTTP gateway key stays valid after a rotation, in seconds
    /// [default: 604800, 7 days] (see docs/privacy.md).
    #[arg(long, env = "LEDGER_OHTTP_KEY_OVERLAP_S", value_name = "SECONDS")]
    pub ohttp_key_overlap_s: Option<u64>,
    /// Make a new OHTTP gateway key current at this start (the previous one stays valid for
    /// the overlap); clients re-pin with `ledger trust update-ohttp`.
    #[arg(long)]
    pub ohttp_rotate_key: bool,
    /// How far the date inside an OHTTP request may be from this server's clock, in seconds
    /// [default: 300]; answered requests are remembered for twice that (replay refusal).
    #[arg(long, env = "LEDGER_OHTTP_REPLAY_WINDOW_S", value_name = "SECONDS")]
    pub ohttp_replay_window_s: Option<u64>,
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
    /// See [`Cli::checkpoint_lock`].
    pub checkpoint_lock: Option<PathBuf>,
    /// See [`Cli::allow_new_tree`].
    pub allow_new_tree: Option<bool>,
    /// See [`Cli::adopt_store`].
    pub adopt_store: Option<bool>,
    /// See [`Cli::min_free_mb`].
    pub min_free_mb: Option<u64>,
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
    /// See [`Cli::compress`].
    pub compress: Option<bool>,
    /// See [`Cli::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`Cli::rate_limit_per_s`].
    pub rate_limit_per_s: Option<u32>,
    /// See [`Cli::rate_limit_burst`].
    pub rate_limit_burst: Option<u32>,
    /// The witnesses, as `[[witness]]` tables with `url` and `vkey`; see [`Cli::witness`].
    #[serde(default)]
    pub witness: Vec<crate::witness::WitnessEntry>,
    /// See [`Cli::quorum`].
    pub quorum: Option<usize>,
    /// See [`Cli::witness_timeout_ms`].
    pub witness_timeout_ms: Option<u64>,
    /// See [`ledger_serve::LimitSettings::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`ledger_serve::LimitSettings::header_timeout_ms`].
    pub header_timeout_ms: Option<u64>,
    /// See [`ledger_serve::LimitSettings::body_timeout_ms`].
    pub body_timeout_ms: Option<u64>,
    /// See [`ledger_serve::LimitSettings::idle_timeout_ms`].
    pub idle_timeout_ms: Option<u64>,
    /// See [`ledger_serve::LimitSettings::max_header_bytes`].
    pub max_header_bytes: Option<usize>,
    /// See [`ledger_serve::LimitSettings::drain_timeout_ms`].
    pub drain_timeout_ms: Option<u64>,
    /// See [`Cli::publish`].
    pub publish: Option<String>,
    /// See [`Cli::publish_max_lag`].
    pub publish_max_lag: Option<u64>,
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
    /// The checkpoint lock file (see [`crate::lock`]).
    pub checkpoint_lock: PathBuf,
    /// Start a new tree although the key signed before (a fork; see [`Cli::allow_new_tree`]).
    pub allow_new_tree: bool,
    /// Trust a store without a checkpoint lock (see [`Cli::adopt_store`]).
    pub adopt_store: bool,
    /// Free bytes the data folder's disk must keep (0: no floor).
    pub min_free_bytes: u64,
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
    /// The index's block cache, bytes.
    pub cache_bytes: u64,
    /// Store compression asked for, if any (default applies only when creating a log).
    pub compress: Option<bool>,
    /// Log format.
    pub log_format: LogFormat,
    /// Per-client write rate limit; `None` = off.
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
    /// The witnesses asked for cosignatures (none by default).
    pub witness: crate::witness::WitnessConfig,
    /// Connection cap and client timeouts.
    pub limits: ledger_serve::Limits,
    /// Run as a read-only DP mirror (see [`crate::mirror`]); `None`: the log itself.
    pub mirror: Option<MirrorConfig>,
    /// Where to publish the static layout, if anywhere (see [`crate::publish`]).
    pub publish: Option<crate::publish::PublishConfig>,
    /// The OHTTP gateway's keys and replay window (see [`crate::gateway`]).
    pub ohttp: crate::gateway::GatewayConfig,
    /// Lookup rate limit and tokens (flags only; see [`crate::tokens`]).
    pub lookup: crate::tokens::LookupConfig,
}

/// A DP mirror's settings (`--mirror-of`, `--trust`, `--shard`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorConfig {
    /// Where the log's tiles are: `http(s)://…` or `s3://BUCKET/PREFIX`.
    pub source: String,
    /// The trust file.
    pub trust: PathBuf,
    /// The SII prefixes held (empty: all).
    pub shards: Vec<String>,
    /// Checkpoint polling interval.
    pub poll: Duration,
    /// The alert file.
    pub alerts: PathBuf,
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
            checkpoint_lock: crate::lock::default_path(&data.join("log.key")),
            allow_new_tree: false,
            adopt_store: false,
            min_free_bytes: DEFAULT_MIN_FREE_MB * 1024 * 1024,
            admin_token_file: data.join("admin.token"),
            admin_token_given: false,
            tls: None,
            policy: Policy::default(),
            batch: BatchConfig::default(),
            cache_bytes: DEFAULT_CACHE_MB * 1024 * 1024,
            compress: None,
            log_format: LogFormat::Text,
            rate_limit: None,
            witness: crate::witness::WitnessConfig::default(),
            limits: ledger_serve::Limits::default(),
            mirror: None,
            publish: None,
            ohttp: crate::gateway::GatewayConfig::default(),
            lookup: crate::tokens::LookupConfig::default(),
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
        let rate_limit = resolve_rate_limit(
            cli.rate_limit_per_s.or(file.rate_limit_per_s),
            cli.rate_limit_burst.or(file.rate_limit_burst),
        )?;
        let witness = resolve_witnesses(
            &cli.witness,
            &file.witness,
            cli.quorum.or(file.quorum),
            cli.witness_timeout_ms.or(file.witness_timeout_ms),
        )?;
        let limits = cli
            .limits
            .or(ledger_serve::LimitSettings {
                max_connections: file.max_connections,
                header_timeout_ms: file.header_timeout_ms,
                body_timeout_ms: file.body_timeout_ms,
                idle_timeout_ms: file.idle_timeout_ms,
                max_header_bytes: file.max_header_bytes,
                drain_timeout_ms: file.drain_timeout_ms,
            })
            .resolve()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(o) = cli.origin.as_ref().or(file.origin.as_ref()) {
            if !ledger_core::key::is_valid_key_name(o) {
                return Err(ConfigError::Invalid(format!(
                    "origin {o:?} is not a valid note key name (non-empty, no spaces, no '+')"
                )));
            }
        }
        let key = key_opt.clone().unwrap_or_else(|| data.join("log.key"));
        let mirror = resolve_mirror(&cli.mirror_of, &cli.trust, &cli.shard, cli.mirror_poll_ms)?
            .map(|m| MirrorConfig {
                alerts: cli
                    .mirror_alerts
                    .clone()
                    .unwrap_or_else(|| data.join("mirror-alerts.jsonl")),
                ..m
            });
        let publish = match cli.publish.or(file.publish) {
            Some(url) => Some(
                crate::publish::PublishConfig::parse(
                    &url,
                    cli.publish_max_lag
                        .or(file.publish_max_lag)
                        .unwrap_or(crate::publish::DEFAULT_MAX_LAG),
                )
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            ),
            None => None,
        };
        if mirror.is_some() && publish.is_some() {
            return Err(ConfigError::Invalid(
                "--publish is for the log itself: a mirror signs nothing and cannot claim a bucket (serve its <data>/public statically instead)".into(),
            ));
        }
        Ok(Config {
            checkpoint_lock: cli
                .checkpoint_lock
                .or(file.checkpoint_lock)
                .unwrap_or_else(|| crate::lock::default_path(&key)),
            allow_new_tree: cli.allow_new_tree.or(file.allow_new_tree).unwrap_or(false),
            adopt_store: cli.adopt_store.or(file.adopt_store).unwrap_or(false),
            min_free_bytes: cli
                .min_free_mb
                .or(file.min_free_mb)
                .unwrap_or(DEFAULT_MIN_FREE_MB)
                .saturating_mul(1024 * 1024),
            key,
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
            compress: cli.compress.or(file.compress),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            rate_limit,
            witness,
            limits,
            mirror,
            publish,
            ohttp: crate::gateway::GatewayConfig {
                overlap_s: cli
                    .ohttp_key_overlap_s
                    .unwrap_or(ledger_ohttp::keys::DEFAULT_OVERLAP_S),
                rotate: cli.ohttp_rotate_key,
                replay_window_s: cli
                    .ohttp_replay_window_s
                    .unwrap_or(ledger_ohttp::replay::DEFAULT_WINDOW_S),
            },
            lookup: cli.lookup.resolve().map_err(ConfigError::Invalid)?,
        })
    }
}

/// The mirror settings: both `--mirror-of` and `--trust`, or neither (then `--shard` is refused);
/// shard prefixes non-empty and distinct.
fn resolve_mirror(
    source: &Option<String>,
    trust: &Option<PathBuf>,
    shards: &[String],
    poll_ms: Option<u64>,
) -> Result<Option<MirrorConfig>, ConfigError> {
    let (source, trust) = match (source, trust) {
        (Some(s), Some(t)) => (s.clone(), t.clone()),
        (None, None) if shards.is_empty() => return Ok(None),
        (None, None) => {
            return Err(ConfigError::Invalid(
                "--shard is for mirrors: give --mirror-of and --trust too".into(),
            ))
        }
        (Some(_), None) => {
            return Err(ConfigError::Invalid(
                "--mirror-of needs --trust FILE (the mirrored log's trust file)".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid(
                "--trust is for mirrors: give --mirror-of URL too".into(),
            ))
        }
    };
    let mut seen = std::collections::HashSet::new();
    for s in shards {
        if s.is_empty() || !seen.insert(s.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "--shard {s:?}: each shard prefix must be non-empty and given once"
            )));
        }
    }
    let poll_ms = poll_ms.unwrap_or(1000);
    if poll_ms == 0 {
        return Err(ConfigError::Invalid(
            "mirror_poll_ms must be at least 1".into(),
        ));
    }
    Ok(Some(MirrorConfig {
        source,
        trust,
        shards: shards.to_vec(),
        poll: Duration::from_millis(poll_ms),
        alerts: PathBuf::new(),
    }))
}

/// The witnesses: the `--witness` flags if any, else the file's `[[witness]]` tables. Keys must be
/// distinct cosignature keys; the quorum defaults to a majority and cannot exceed the count.
fn resolve_witnesses(
    flags: &[String],
    file: &[crate::witness::WitnessEntry],
    quorum: Option<usize>,
    timeout_ms: Option<u64>,
) -> Result<crate::witness::WitnessConfig, ConfigError> {
    use crate::witness::{WitnessConfig, WitnessSpec, DEFAULT_WITNESS_TIMEOUT_MS};
    let witnesses = if flags.is_empty() {
        file.iter()
            .map(|w| WitnessSpec::new(&w.url, &w.vkey))
            .collect::<Result<Vec<_>, _>>()
    } else {
        flags.iter().map(|f| WitnessSpec::parse_flag(f)).collect()
    }
    .map_err(ConfigError::Invalid)?;
    for (i, w) in witnesses.iter().enumerate() {
        if witnesses.iter().skip(i + 1).any(|o| o.vkey == w.vkey) {
            return Err(ConfigError::Invalid(format!(
                "witness key {} is listed twice",
                w.vkey
            )));
        }
    }
    let quorum = quorum.unwrap_or(if witnesses.is_empty() {
        0
    } else {
        witnesses.len() / 2 + 1
    });
    if quorum > witnesses.len() {
        return Err(ConfigError::Invalid(format!(
            "quorum {quorum} is more than the {} witnesses configured",
            witnesses.len()
        )));
    }
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_WITNESS_TIMEOUT_MS);
    if timeout_ms == 0 {
        return Err(ConfigError::Invalid(
            "witness_timeout_ms must be at least 1".into(),
        ));
    }
    Ok(WitnessConfig {
        witnesses,
        quorum,
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// The write rate limit: off unless a rate is given (0 also means off); the burst defaults to
/// twice the rate and must be at least 1.
fn resolve_rate_limit(
    per_s: Option<u32>,
    burst: Option<u32>,
) -> Result<Option<crate::ratelimit::RateLimit>, ConfigError> {
    match (per_s, burst) {
        (None | Some(0), _) => Ok(None),
        (Some(_), Some(0)) => Err(ConfigError::Invalid(
            "rate_limit_burst must be at least 1".into(),
        )),
        (Some(per_s), burst) => Ok(Some(crate::ratelimit::RateLimit {
            per_s,
            burst: burst.unwrap_or(per_s.saturating_mul(2)),
        })),
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
            compress = true
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
        assert_eq!(
            c.checkpoint_lock,
            PathBuf::from("/srv/ledger/log.key.checkpoint")
        );
        assert!(!c.allow_new_tree && !c.adopt_store);
        assert_eq!(c.min_free_bytes, DEFAULT_MIN_FREE_MB * 1024 * 1024);
        let cli = Cli::try_parse_from([
            "log-server",
            "--key",
            "/keys/log.key",
            "--min-free-mb",
            "0",
            "--allow-new-tree",
        ])
        .expect("parses");
        let c2 = Config::resolve(cli, FileConfig::default()).expect("resolves");
        assert_eq!(
            c2.checkpoint_lock,
            PathBuf::from("/keys/log.key.checkpoint")
        );
        assert_eq!(c2.min_free_bytes, 0);
        assert!(c2.allow_new_tree);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.compress, Some(true));
        let cli = Cli::try_parse_from(["log-server", "--compress=false"]).expect("parses");
        assert_eq!(cli.compress, Some(false));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("colour = \"red\"").is_err());
        assert!(toml::from_str::<FileConfig>("hash = \"md5\"").is_err());
        assert!(toml::from_str::<FileConfig>("compress = \"yes\"").is_err());
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
        assert_eq!(c.rate_limit, None);
    }

    #[test]
    fn rate_limit_settings() {
        let file: FileConfig =
            toml::from_str("rate_limit_per_s = 5\nrate_limit_burst = 7").expect("parses");
        let c = Config::resolve(Cli::try_parse_from(["log-server"]).expect("parses"), file)
            .expect("resolves");
        assert_eq!(
            c.rate_limit,
            Some(crate::ratelimit::RateLimit { per_s: 5, burst: 7 })
        );
        let cli = Cli::try_parse_from(["log-server", "--rate-limit-per-s", "10"]).expect("parses");
        let c = Config::resolve(cli, FileConfig::default()).expect("resolves");
        assert_eq!(
            c.rate_limit,
            Some(crate::ratelimit::RateLimit {
                per_s: 10,
                burst: 20
            })
        );
        let cli = Cli::try_parse_from(["log-server", "--rate-limit-per-s", "0"]).expect("parses");
        let c = Config::resolve(cli, FileConfig::default()).expect("resolves");
        assert_eq!(c.rate_limit, None);
        let cli = Cli::try_parse_from([
            "log-server",
            "--rate-limit-per-s",
            "1",
            "--rate-limit-burst",
            "0",
        ])
        .expect("parses");
        assert!(matches!(
            Config::resolve(cli, FileConfig::default()),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn connection_limits_from_file_or_flags() {
        let file: FileConfig = toml::from_str(
            "max_connections = 9\nheader_timeout_ms = 1500\nmax_header_bytes = 9000",
        )
        .expect("parses");
        let cli = Cli::try_parse_from(["log-server", "--max-connections", "3"]).expect("parses");
        let c = Config::resolve(cli, file).expect("resolves");
        assert_eq!(c.limits.max_connections, 3);
        assert_eq!(c.limits.header_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.max_header_bytes, 9000);
        assert_eq!(
            c.limits.drain_timeout,
            ledger_serve::Limits::default().drain_timeout
        );
        let cli = Cli::try_parse_from(["log-server", "--max-header-bytes", "100"]).expect("parses");
        assert!(matches!(
            Config::resolve(cli, FileConfig::default()),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn witnesses_from_file_or_flags() {
        use ledger_core::testkit::test_witness_key;
        let w1 = test_witness_key("w1.example").verifier().to_string();
        let w2 = test_witness_key("w2.example").verifier().to_string();
        let w3 = test_witness_key("w3.example").verifier().to_string();
        let file: FileConfig = toml::from_str(&format!(
            "witness_timeout_ms = 250\n[[witness]]\nurl = \"http://a.example/\"\nvkey = \"{w1}\"\n\
             [[witness]]\nurl = \"http://b.example\"\nvkey = \"{w2}\"\n\
             [[witness]]\nurl = \"http://c.example\"\nvkey = \"{w3}\"\n"
        ))
        .expect("parses");
        let c = Config::resolve(Cli::default(), file).expect("resolves");
        assert_eq!(c.witness.witnesses.len(), 3);
        assert_eq!(c.witness.witnesses[0].url, "http://a.example");
        assert_eq!(c.witness.quorum, 2, "a majority by default");
        assert_eq!(c.witness.timeout, Duration::from_millis(250));

        let flag = format!("http://127.0.0.1:9={w2}");
        let cli = Cli::try_parse_from(["log-server", "--witness", &flag, "--quorum", "1"])
            .expect("parses");
        let c = Config::resolve(cli, FileConfig::default()).expect("resolves");
        assert_eq!(c.witness.witnesses.len(), 1);
        assert_eq!(c.witness.witnesses[0].vkey.to_string(), w2);
        assert_eq!(c.witness.quorum, 1);

        let cli = Cli::try_parse_from(["log-server", "--witness", &flag, "--quorum", "2"])
            .expect("parses");
        let err = Config::resolve(cli, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("quorum 2"), "{err}");
        let cli = Cli::try_parse_from(["log-server", "--witness", &flag, "--witness", &flag])
            .expect("parses");
        let err = Config::resolve(cli, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(toml::from_str::<FileConfig>(
            "[[witness]]\nurl = \"http://x\"\nvkey = \"k\"\nextra = 1\n"
        )
        .is_err());
    }
}
