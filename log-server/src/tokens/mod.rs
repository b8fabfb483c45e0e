//! What guards `GET /v1/lookup` against enumeration (MIMI R8, issue #15): a per-address rate
//! limit for lookups without a token (`--lookup-rate-limit-per-s`, `--lookup-rate-limit-burst`),
//! and Privacy Pass (RFC 9576–9578) publicly verifiable tokens, type 0x0002 (blind RSA), which a
//! DP started with `--require-token` demands on every lookup (see [`redeem`]); the issuer that
//! signs them blindly is [`crate::issuer`]. docs/privacy.md describes both.
//!
//! A lookup carrying `Authorization: PrivateToken …` is not charged against its address's
//! bucket: the token pays for it (and a bad token is refused anyway).

pub mod challenge;
pub mod redeem;
pub mod spent;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger_core::problem::ProblemType;

use crate::problem::ApiError;
use crate::ratelimit::{RateLimit, RateLimiter};

/// The route guarded.
pub const LOOKUP_ROUTE: &str = "/v1/lookup";

/// The lookup guard's flags (flattened into the log-server's command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LookupSettings {
    /// Per-client-address limit on GET /v1/lookup without a token, lookups per second; 0 turns
    /// it off [default: 0, off].
    #[arg(long, env = "LEDGER_LOOKUP_RATE_LIMIT_PER_S", value_name = "N")]
    pub lookup_rate_limit_per_s: Option<u32>,
    /// Burst of the lookup limit (lookups allowed at once) [default: 2 × lookup-rate-limit-per-s].
    #[arg(long, env = "LEDGER_LOOKUP_RATE_LIMIT_BURST", value_name = "N")]
    pub lookup_rate_limit_burst: Option<u32>,
    /// Require a Privacy Pass token (type 0x0002) on every lookup, issued under this issuer key:
    /// a file holding the key (base64url SPKI, as `ledger-issuer` writes `issuer-public.key`) or
    /// the issuer's base URL (its `/.well-known/private-token-issuer-directory` is read once at
    /// start and the key pinned).
    #[arg(
        long,
        env = "LEDGER_REQUIRE_TOKEN",
        value_name = "ISSUER_KEY_FILE_OR_URL"
    )]
    pub require_token: Option<String>,
    /// The issuer name put in the token challenge [default: the URL's host:port, or
    /// `ledger-issuer` for a key file].
    #[arg(long, env = "LEDGER_TOKEN_ISSUER_NAME", value_name = "NAME")]
    pub token_issuer_name: Option<String>,
    /// The origin name put in the token challenge (tokens are bound to it) [default: the log's
    /// origin]. Give each DP of a log its own, so that a token can be spent at one only.
    #[arg(long, env = "LEDGER_TOKEN_ORIGIN", value_name = "NAME")]
    pub token_origin: Option<String>,
}

/// Token redemption settings (`--require-token` and its companions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequireToken {
    /// The issuer key: a file or an `http(s)://` URL.
    pub key: String,
    /// The issuer name of the challenge.
    pub issuer_name: String,
    /// The origin name of the challenge (`None`: the log's origin).
    pub origin: Option<String>,
}

/// The resolved lookup guard settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupConfig {
    /// Per-address limit on lookups without a token; `None` = off.
    pub rate_limit: Option<RateLimit>,
    /// Tokens required, when set.
    pub require_token: Option<RequireToken>,
}

impl LookupSettings {
    /// Resolves the flags; an error names what is wrong.
    pub fn resolve(&self) -> Result<LookupConfig, String> {
        let rate_limit = match (self.lookup_rate_limit_per_s, self.lookup_rate_limit_burst) {
            (None | Some(0), None) => None,
            (None | Some(0), Some(_)) => {
                return Err("--lookup-rate-limit-burst needs --lookup-rate-limit-per-s".into())
            }
            (Some(_), Some(0)) => return Err("--lookup-rate-limit-burst must be at least 1".into()),
            (Some(per_s), burst) => Some(RateLimit {
                per_s,
                burst: burst.unwrap_or(per_s.saturating_mul(2)),
            }),
        };
        let require_token = self.require_token.as_ref().map(|key| RequireToken {
            key: key.clone(),
            issuer_name: self
                .token_issuer_name
                .clone()
                .unwrap_or_else(|| default_issuer_name(key)),
            origin: self.token_origin.clone(),
        });
        Ok(LookupConfig {
            rate_limit,
            require_token,
        })
    }
}

/// The host:port of an issuer URL, else `ledger-issuer`.
fn default_issuer_name(key: &str) -> String {
    key.strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ledger-issuer".to_string())
}

/// The guard shared by the lookup handler's middleware. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct LookupGuard {
    limiter: Option<RateLimiter>,
    redeemer: Option<Arc<redeem::Redeemer>>,
}

impl LookupGuard {
    /// Sets the guard up for a DP whose data folder is `data` and whose log origin is `origin`:
    /// loads the pinned issuer key and the spent set when tokens are required.
    pub fn open(config: &LookupConfig, data: &Path, origin: &str) -> anyhow::Result<LookupGuard> {
        let redeemer = match &config.require_token {
            Some(r) => Some(Arc::new(redeem::Redeemer::open(r, data, origin)?)),
            None => None,
        };
        Ok(LookupGuard {
            limiter: config.rate_limit.map(RateLimiter::new),
            redeemer,
        })
    }

    /// Whether the guard does anything.
    pub fn is_active(&self) -> bool {
        self.limiter.is_some() || self.redeemer.is_some()
    }
}

/// Axum middleware on every route that acts on `GET /v1/lookup` only: with tokens required, a
/// lookup without a valid, unspent token is refused (401, see [`redeem`]) and the token's nonce
/// is recorded durably before the lookup runs; a lookup without a token is charged against its
/// address's bucket, if a limit is set (429 `rate-limited` with `Retry-After`).
pub async fn middleware(State(guard): State<LookupGuard>, req: Request, next: Next) -> Response {
    if !guard.is_active() || req.method() != Method::GET || req.uri().path() != LOOKUP_ROUTE {
        return next.run(req).await;
    }
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let has_token = authorization
        .as_ref()
        .is_some_and(|v| redeem::is_private_token(v.as_bytes()));
    if !has_token {
        if let Some(limiter) = &guard.limiter {
            if let Err(secs) = limiter.check(crate::ratelimit::peer_ip(&req), Instant::now()) {
                return lookup_rate_limited(limiter.limit(), secs).into_response();
            }
        }
    }
    if let Some(redeemer) = &guard.redeemer {
        if let Err(refusal) = redeemer.redeem(authorization.as_ref()).await {
            return refusal.into_response();
        }
    }
    next.run(req).await
}

/// The `rate-limited` problem of a lookup, with `Retry-After: secs`.
pub fn lookup_rate_limited(limit: RateLimit, secs: u64) -> ApiError {
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(
            ProblemType::RateLimited,
            format!(
                "too many lookups from this address (limit {} per second, burst {}); retry after {secs} s, or present a Privacy Pass token",
                limit.per_s, limit.burst
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve() {
        let s = LookupSettings::default();
        assert_eq!(s.resolve(), Ok(LookupConfig::default()));
        let s = LookupSettings {
            lookup_rate_limit_per_s: Some(5),
            ..Default::default()
        };
        assert_eq!(
            s.resolve().map(|c| c.rate_limit),
            Ok(Some(RateLimit {
                per_s: 5,
                burst: 10
            }))
        );
        let s = LookupSettings {
            lookup_rate_limit_burst: Some(5),
            ..Default::default()
        };
        assert!(s.resolve().is_err());
        let s = LookupSettings {
            require_token: Some("http://127.0.0.1:9000/".into()),
            ..Default::default()
        };
        let r = s.resolve().ok().and_then(|c| c.require_token);
        assert_eq!(r.map(|r| r.issuer_name), Some("127.0.0.1:9000".to_string()));
    }
}
