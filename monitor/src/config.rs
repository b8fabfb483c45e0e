//! The monitor's configuration file (`monitor.toml`): the logs to follow, the watchlist, the rules
//! and the alert sinks. See `docs/monitor.md` for the reference with examples.

use std::path::{Path, PathBuf};

use ledger_core::sii::Sii;
use ledger_core::trust::TrustedLog;
use ledger_core::TreeHash;
use serde::Deserialize;

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the line and the key).
        source: Box<toml::de::Error>,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The state folder, when `--state` is not given (default `./monitor-state`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Seconds between polls of `/checkpoint` in follow mode (default 10).
    #[serde(default = "default_poll")]
    pub poll_interval_s: u64,
    /// The logs to follow (at least one).
    #[serde(rename = "log", default)]
    pub logs: Vec<LogConfig>,
    /// The watchlist (`unexpected-claimant`).
    #[serde(rename = "watch", default)]
    pub watches: Vec<Watch>,
    /// Which rules run, and their parameters.
    #[serde(default)]
    pub rules: Rules,
    /// Where alerts go (default: one `stdout` sink).
    #[serde(rename = "sink", default)]
    pub sinks: Vec<SinkConfig>,
}

fn default_poll() -> u64 {
    10
}

/// One log to follow.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A short name for the state and metrics (default: the origin).
    #[serde(default)]
    pub name: Option<String>,
    /// The base URL of the C2SP tiles (`<url>/checkpoint`, `<url>/tile/...`): the log itself, a
    /// mirror or a static copy.
    pub url: String,
    /// The log's origin (checkpoint line 1; the log key's name).
    pub origin: String,
    /// The log's verifier key, `<name>+<hex key ID>+<base64>`.
    pub vkey: String,
    /// The tree hash, `blake3` (default) or `sha256`.
    #[serde(default = "default_hash")]
    pub hash: String,
    /// Witness verifier keys (`cosignature/v1`) whose cosignatures are required.
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// How many distinct witnesses must cosign each checkpoint (default: 0).
    #[serde(default)]
    pub quorum: usize,
    /// Raise `log-stalled` when no new checkpoint is seen for this many seconds (follow mode;
    /// default: never).
    #[serde(default)]
    pub stall_after_s: Option<u64>,
    /// Base URLs of auditors/witnesses (SPEC §7) whose latest cosigned checkpoint of this log,
    /// `GET <base>/<hex sha256(origin)>/checkpoint`, is compared with the monitor's verified view
    /// after every sync (`split-view`). Default: none.
    #[serde(default)]
    pub auditors: Vec<String>,
    /// Full URLs of any other checkpoint of this log to compare the same way (a mirror's
    /// `/checkpoint`, another monitor's copy, a colleague's view). Default: none.
    #[serde(default)]
    pub peer_checkpoints: Vec<String>,
}

fn default_hash() -> String {
    "blake3".to_string()
}

/// One watchlist entry: claims of these SIIs by MSPs outside `allowed` raise
/// `unexpected-claimant`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// One exact SII (canonical form).
    #[serde(default)]
    pub sii: Option<String>,
    /// Every SII starting with this text (e.g. `tel:+1415555`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The MSPs allowed to claim them (empty: none is).
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// Where a rule applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every SII in the log.
    All,
    /// Only SIIs on the watchlist.
    #[default]
    Watched,
    /// Nowhere: the rule is off.
    Off,
}

/// The rules and their parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// `conflicting-claim`: two MSPs map one SII (default: `all`).
    #[serde(default = "scope_all")]
    pub conflicting_claim: Scope,
    /// `unattested-claim`: a claim without a valid attestation by a trusted prover (default:
    /// `watched`).
    #[serde(default)]
    pub unattested_claim: Scope,
    /// The provers whose attestations count for `unattested-claim` (empty: any enrolled prover).
    #[serde(default)]
    pub trusted_provers: Vec<String>,
    /// `revoked-by-prover`: a prover revoked a mapping (R10) (default: `all`).
    #[serde(default = "scope_all")]
    pub revoked_by_prover: Scope,
    /// `claim-burst` (default: off).
    #[serde(default)]
    pub claim_burst: Option<Burst>,
}

fn scope_all() -> Scope {
    Scope::All
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            conflicting_claim: Scope::All,
            unattested_claim: Scope::Watched,
            trusted_provers: Vec::new(),
            revoked_by_prover: Scope::All,
            claim_burst: None,
        }
    }
}

/// `claim-burst`: one MSP claims more than `max_siis` distinct SIIs within `window_s` seconds of
/// entry time.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// The most distinct SIIs one MSP may claim within the window.
    pub max_siis: usize,
    /// The window, in seconds of entry `time`.
    pub window_s: u64,
}

/// One alert sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to a file (exactly once across crashes; see `docs/monitor.md`).
    File {
        /// The file.
        path: PathBuf,
    },
    /// A program run once per alert, with the alert in `MONITOR_*` environment variables and the
    /// JSON line on standard input; exit status 0 means delivered.
    Exec {
        /// The program and its arguments.
        command: Vec<String>,
        /// Seconds before the program is killed and the attempt fails (default 30).
        #[serde(default = "default_timeout")]
        timeout_s: u64,
        /// Attempts before the alert stays pending (default 3).
        #[serde(default = "default_attempts")]
        attempts: u32,
    },
    /// `POST` of the JSON object to a URL; 2xx means delivered; retried with exponential
    /// backoff.
    Webhook {
        /// The URL.
        url: String,
        /// Seconds per request (default 30).
        #[serde(default = "default_timeout")]
        timeout_s: u64,
        /// Attempts before the alert stays pending (default 3).
        #[serde(default = "default_attempts")]
        attempts: u32,
        /// The first backoff in milliseconds, doubled after each failure (default 500).
        #[serde(default = "default_backoff")]
        backoff_ms: u64,
    },
}

fn default_timeout() -> u64 {
    30
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> u64 {
    500
}

/// A log's configuration, parsed and checked.
#[derive(Clone, Debug)]
pub struct LogParams {
    /// The state key and metrics label.
    pub name: String,
    /// The tile base URL, without a final `/`.
    pub url: String,
    /// The origin (the same as `log.origin()`; the `log` of every alert).
    pub origin: String,
    /// The log as the monitor trusts it: key, tree hash, witnesses and quorum (no maximum age:
    /// a monitor reads history, not only fresh checkpoints).
    pub log: TrustedLog,
    /// `log-stalled` threshold.
    pub stall_after_s: Option<u64>,
    /// Auditor base URLs (http(s), without a final `/`) for `split-view` gossip.
    pub auditors: Vec<String>,
    /// Other checkpoint URLs (http(s)) for `split-view` gossip.
    pub peer_checkpoints: Vec<String>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { source, .. } => ConfigError::Syntax {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<config>"),
            source: Box::new(e),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.logs.is_empty() {
            return Err(ConfigError::Invalid("no [[log]] is configured".into()));
        }
        let mut names = std::collections::HashSet::new();
        for log in self.log_params()? {
            if !names.insert(log.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "two logs are named {:?}; give each a distinct `name`",
                    log.name
                )));
            }
        }
        for (i, w) in self.watches.iter().enumerate() {
            match (&w.sii, &w.prefix) {
                (Some(s), None) => {
                    Sii::parse(s).map_err(|e| {
                        ConfigError::Invalid(format!("watch #{}: sii {s:?}: {e}", i + 1))
                    })?;
                }
                (None, Some(p)) if !p.is_empty() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "watch #{}: give exactly one of `sii` and a non-empty `prefix`",
                        i + 1
                    )))
                }
            }
        }
        if let Some(b) = self.rules.claim_burst {
            if b.window_s == 0 {
                return Err(ConfigError::Invalid(
                    "claim_burst.window_s must be > 0".into(),
                ));
            }
        }
        for s in &self.sinks {
            match s {
                SinkConfig::Exec { command, .. } if command.is_empty() => {
                    return Err(ConfigError::Invalid("exec sink: `command` is empty".into()))
                }
                SinkConfig::Webhook { url, .. }
                    if !(url.starts_with("http://") || url.starts_with("https://")) =>
                {
                    return Err(ConfigError::Invalid(format!(
                        "webhook sink: {url:?} is not an http(s) URL"
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The logs, with keys and hashes parsed.
    pub fn log_params(&self) -> Result<Vec<LogParams>, ConfigError> {
        self.logs
            .iter()
            .map(|l| {
                let bad = |what: String| ConfigError::Invalid(format!("log {}: {what}", l.origin));
                let hash: TreeHash = l
                    .hash
                    .parse()
                    .map_err(|_| bad(format!("unknown hash {:?}", l.hash)))?;
                // Refuses a witness key of the wrong type by name: its cosignatures could never
                // count, and the quorum would fail on every checkpoint.
                let log = TrustedLog::parse(&l.origin, &l.vkey, hash, &l.witnesses, l.quorum, None)
                    .map_err(|e| bad(e.to_string()))?;
                if !is_http_url(&l.url) {
                    return Err(bad(format!("url {:?} is not http(s)", l.url)));
                }
                for (key, urls) in [
                    ("auditors", &l.auditors),
                    ("peer_checkpoints", &l.peer_checkpoints),
                ] {
                    if let Some(u) = urls.iter().find(|u| !is_http_url(u)) {
                        return Err(bad(format!("{key}: {u:?} is not an http(s) URL")));
                    }
                }
                Ok(LogParams {
                    name: l.name.clone().unwrap_or_else(|| l.origin.clone()),
                    url: l.url.trim_end_matches('/').to_string(),
                    origin: l.origin.clone(),
                    log,
                    stall_after_s: l.stall_after_s,
                    auditors: l
                        .auditors
                        .iter()
                        .map(|u| u.trim_end_matches('/').to_string())
                        .collect(),
                    peer_checkpoints: l.peer_checkpoints.clone(),
                })
            })
            .collect()
    }

    /// The sinks, defaulting to one `stdout` sink.
    pub fn effective_sinks(&self) -> Vec<SinkConfig> {
        if self.sinks.is_empty() {
            vec![SinkConfig::Stdout]
        } else {
            self.sinks.clone()
        }
    }
}

/// Whether `url` is an absolute http(s) URL with a host: peers are fetched over HTTP, and a typo
/// such as a bare host name should fail at start-up, not as a warning on every round.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !url.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

impl Watch {
    /// Whether this entry covers `sii`.
    pub fn matches(&self, sii: &str) -> bool {
        match (&self.sii, &self.prefix) {
            (Some(s), _) => s == sii,
            (None, Some(p)) => sii.starts_with(p.as_str()),
            (None, None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VKEY: &str = "example.com/log+";

    fn log_toml() -> String {
        let key = ledger_core::testkit::test_key("example.com/log").verifier();
        format!("[[log]]\nurl = \"http://127.0.0.1:1\"\norigin = \"example.com/log\"\nvkey = \"{key}\"\n")
    }

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::parse(&log_toml()).unwrap();
        assert_eq!(c.poll_interval_s, 10);
        assert_eq!(c.rules.conflicting_claim, Scope::All);
        assert_eq!(c.rules.unattested_claim, Scope::Watched);
        assert!(matches!(c.effective_sinks()[..], [SinkConfig::Stdout]));
        let logs = c.log_params().unwrap();
        assert_eq!(logs[0].name, "example.com/log");
        assert_eq!(logs[0].log.hash, TreeHash::Blake3);
        assert!(logs[0].log.log_key.to_string().starts_with(VKEY));
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Config::parse("").is_err(), "no log");
        let t = format!("{}[[watch]]\nsii = \"tel:+1 415\"\n", log_toml());
        assert!(matches!(Config::parse(&t), Err(ConfigError::Invalid(_))));
        let t = format!(
            "{}[[watch]]\nsii = \"tel:+14155550100\"\nprefix = \"tel:\"\n",
            log_toml()
        );
        assert!(matches!(Config::parse(&t), Err(ConfigError::Invalid(_))));
        let t = format!("{}bogus = 1\n", log_toml());
        assert!(matches!(Config::parse(&t), Err(ConfigError::Syntax { .. })));
        let t = log_toml().replace("example.com/log\"\nvkey", "other.example/log\"\nvkey");
        assert!(matches!(Config::parse(&t), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn a_witness_key_of_the_wrong_type_is_refused_by_name() {
        let ed = ledger_core::testkit::test_key("w.example/ed").verifier();
        let t = format!("{}witnesses = [\"{ed}\"]\n", log_toml());
        match Config::parse(&t) {
            Err(ConfigError::Invalid(msg)) => {
                assert!(msg.contains(&ed.to_string()), "names the key: {msg}");
                assert!(msg.contains("cosignature/v1"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let w = ledger_core::testkit::test_witness_key("w.example/1").verifier();
        let t = format!("{}witnesses = [\"{w}\"]\nquorum = 1\n", log_toml());
        let p = Config::parse(&t).unwrap().log_params().unwrap().remove(0);
        assert_eq!((p.log.witnesses.len(), p.log.quorum), (1, 1));
    }

    #[test]
    fn peers_parse_and_bad_peer_urls_are_rejected() {
        let c = Config::parse(&log_toml()).unwrap();
        let p = &c.log_params().unwrap()[0];
        assert!(p.auditors.is_empty() && p.peer_checkpoints.is_empty());

        let t = format!(
            "{}auditors = [\"http://127.0.0.1:9001/\", \"https://aud.example/x\"]\n\
             peer_checkpoints = [\"https://mirror.example/log/checkpoint\"]\n",
            log_toml()
        );
        let c = Config::parse(&t).unwrap();
        let p = &c.log_params().unwrap()[0];
        assert_eq!(
            p.auditors,
            vec!["http://127.0.0.1:9001", "https://aud.example/x"],
            "final / trimmed"
        );
        assert_eq!(
            p.peer_checkpoints,
            vec!["https://mirror.example/log/checkpoint"]
        );

        for (key, bad) in [
            ("auditors", "127.0.0.1:9001"),
            ("auditors", "http://"),
            ("peer_checkpoints", "ftp://mirror.example/checkpoint"),
            ("peer_checkpoints", "https://mirror.example/a b"),
        ] {
            let t = format!("{}{key} = [\"{bad}\"]\n", log_toml());
            match Config::parse(&t) {
                Err(ConfigError::Invalid(msg)) => {
                    assert!(msg.contains("example.com/log"), "names the log: {msg}");
                    assert!(msg.contains(key), "names the key: {msg}");
                    assert!(msg.contains(bad), "names the value: {msg}");
                }
                other => panic!("{key} = {bad:?}: {other:?}"),
            }
        }
        // Not a list: a syntax error, like any other mistyped key.
        let t = format!("{}auditors = \"http://127.0.0.1:9001\"\n", log_toml());
        assert!(matches!(Config::parse(&t), Err(ConfigError::Syntax { .. })));
    }

    #[test]
    fn sinks_and_watches_parse() {
        let t = format!(
            "{}[[watch]]\nprefix = \"tel:+1415555\"\nallowed = [\"msp-a.example\"]\n\
             [rules]\nclaim_burst = {{ max_siis = 3, window_s = 60 }}\nunattested_claim = \"all\"\n\
             [[sink]]\ntype = \"file\"\npath = \"/tmp/x\"\n\
             [[sink]]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n\
             [[sink]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nattempts = 5\n",
            log_toml()
        );
        let c = Config::parse(&t).unwrap();
        assert!(c.watches[0].matches("tel:+14155550100"));
        assert!(!c.watches[0].matches("tel:+14165550100"));
        assert_eq!(c.rules.claim_burst.unwrap().max_siis, 3);
        assert_eq!(c.rules.unattested_claim, Scope::All);
        assert_eq!(c.sinks.len(), 3);
        assert!(matches!(
            c.sinks[2],
            SinkConfig::Webhook { attempts: 5, .. }
        ));
    }
}
