//! The limits every server applies to its clients, their defaults, and the settings (flags,
//! `LEDGER_*` environment variables, config-file keys) they are read from.

use std::time::Duration;

use serde::Deserialize;

/// Default most connections served at once; see [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default time for a request head to arrive, in ms; see [`Limits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default time for a whole request body to arrive, in ms; see [`Limits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 20_000;
/// Default time a keep-alive connection may wait for its next request, in ms; see
/// [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Default largest request head (request line and headers), in bytes; see
/// [`Limits::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default time in-flight requests get to finish after a shutdown signal, in ms; see
/// [`Limits::drain_timeout`].
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;
/// The smallest `max_header_bytes` hyper accepts (its minimum read buffer).
pub const MIN_MAX_HEADER_BYTES: usize = 8192;
/// The longest request target (path and query) answered; longer ones get 414. Every route of the
/// servers is far shorter (the longest is a tile path or a lookup of one SII).
pub const MAX_URI_BYTES: usize = 8192;

/// What a server tolerates from its clients. Every bound is there so that a client that sends
/// slowly, sends nothing, or opens many connections holds a connection slot and its memory for a
/// bounded time only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once. When all are taken, a new connection closes the one that
    /// has waited longest without a request in progress (idle, or still sending its head); when
    /// every connection has a request in progress, the new one is refused (503 `overloaded`).
    pub max_connections: usize,
    /// How long a request head may take to arrive: from the connection's start, or from the first
    /// byte of a later request on a keep-alive connection. A slow or silent client is closed then.
    pub header_timeout: Duration,
    /// How long the whole request body may take to arrive after its head (a total, so a body
    /// trickled at 1 byte/s or an endless chunked body ends too): answered 408 `bad-request`.
    /// Also the longest a response write may stay blocked on a client that does not read.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request before it is closed.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers); a larger one is answered 431
    /// `too-large`. Also bounds the read buffer each connection holds.
    pub max_header_bytes: usize,
    /// How long requests in progress may take to finish after the shutdown signal. Connections
    /// without a request in progress are closed at once, and request bodies still arriving fail.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            body_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            drain_timeout: Duration::from_millis(DEFAULT_DRAIN_TIMEOUT_MS),
        }
    }
}

/// A limit setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// A count or duration is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// `max_header_bytes` is below what hyper can work with.
    #[error("max_header_bytes must be at least {MIN_MAX_HEADER_BYTES}, got {0}")]
    HeaderBytesTooSmall(usize),
}

/// The limit settings as given: flags (with `LEDGER_*` environment variables) and the same keys
/// in a server's TOML file. Every field is optional; unset ones take the file's value, then the
/// default. The same names are used by every server binary.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Most client connections served at once; at the cap the connection idle longest is closed,
    /// or the new one refused with 503 when all are busy [default: 512].
    #[arg(long, env = "LEDGER_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time for a request head to arrive, in ms [default: 10000].
    #[arg(long, env = "LEDGER_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// Time for a whole request body to arrive, in ms; answered 408 after it [default: 20000].
    #[arg(long, env = "LEDGER_BODY_TIMEOUT_MS", value_name = "MS")]
    pub body_timeout_ms: Option<u64>,
    /// Time a keep-alive connection may wait for its next request, in ms [default: 30000].
    #[arg(long, env = "LEDGER_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Largest request head (request line and headers), in bytes; answered 431 above it
    /// [default: 16384, at least 8192].
    #[arg(long, env = "LEDGER_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Time requests in progress get to finish after SIGTERM/SIGINT, in ms [default: 10000].
    #[arg(long, env = "LEDGER_DRAIN_TIMEOUT_MS", value_name = "MS")]
    pub drain_timeout_ms: Option<u64>,
}

impl LimitSettings {
    /// These settings, with the unset ones taken from `lower` (e.g. flags over the file).
    pub fn or(self, lower: LimitSettings) -> LimitSettings {
        LimitSettings {
            max_connections: self.max_connections.or(lower.max_connections),
            header_timeout_ms: self.header_timeout_ms.or(lower.header_timeout_ms),
            body_timeout_ms: self.body_timeout_ms.or(lower.body_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(lower.idle_timeout_ms),
            max_header_bytes: self.max_header_bytes.or(lower.max_header_bytes),
            drain_timeout_ms: self.drain_timeout_ms.or(lower.drain_timeout_ms),
        }
    }

    /// The limits, defaults filled in and ranges checked.
    pub fn resolve(&self) -> Result<Limits, LimitsError> {
        let d = Limits::default();
        let ms = |v: Option<u64>, default: Duration, name: &'static str| match v {
            Some(0) => Err(LimitsError::Zero(name)),
            Some(v) => Ok(Duration::from_millis(v)),
            None => Ok(default),
        };
        let max_connections = match self.max_connections {
            Some(0) => return Err(LimitsError::Zero("max_connections")),
            Some(n) => n,
            None => d.max_connections,
        };
        let max_header_bytes = self.max_header_bytes.unwrap_or(d.max_header_bytes);
        if max_header_bytes < MIN_MAX_HEADER_BYTES {
            return Err(LimitsError::HeaderBytesTooSmall(max_header_bytes));
        }
        Ok(Limits {
            max_connections,
            header_timeout: ms(
                self.header_timeout_ms,
                d.header_timeout,
                "header_timeout_ms",
            )?,
            body_timeout: ms(self.body_timeout_ms, d.body_timeout, "body_timeout_ms")?,
            idle_timeout: ms(self.idle_timeout_ms, d.idle_timeout, "idle_timeout_ms")?,
            max_header_bytes,
            drain_timeout: ms(self.drain_timeout_ms, d.drain_timeout, "drain_timeout_ms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitSettings,
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let cli = Cli::try_parse_from(["x", "--max-connections", "7", "--header-timeout-ms", "1"])
            .expect("parses");
        let file: LimitSettings = toml_like(r#"{"max_connections": 9, "body_timeout_ms": 5}"#);
        let l = cli.limits.or(file).resolve().expect("resolves");
        assert_eq!(l.max_connections, 7);
        assert_eq!(l.header_timeout, Duration::from_millis(1));
        assert_eq!(l.body_timeout, Duration::from_millis(5));
        assert_eq!(l.idle_timeout, Limits::default().idle_timeout);
        assert_eq!(LimitSettings::default().resolve(), Ok(Limits::default()));
    }

    #[test]
    fn bad_values_are_refused() {
        let zero = LimitSettings {
            idle_timeout_ms: Some(0),
            ..LimitSettings::default()
        };
        assert_eq!(zero.resolve(), Err(LimitsError::Zero("idle_timeout_ms")));
        let small = LimitSettings {
            max_header_bytes: Some(100),
            ..LimitSettings::default()
        };
        assert_eq!(small.resolve(), Err(LimitsError::HeaderBytesTooSmall(100)));
        assert!(serde_json::from_str::<LimitSettings>(r#"{"max_conections": 1}"#).is_err());
    }

    fn toml_like(json: &str) -> LimitSettings {
        serde_json::from_str(json).expect("parses")
    }
}
