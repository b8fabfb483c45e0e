//! Redemption of Privacy Pass publicly verifiable tokens (RFC 9578 §6, type 0x0002) on
//! `GET /v1/lookup` of a DP started with `--require-token` (RFC 9577):
//!
//! - no `Authorization: PrivateToken token=…` → `token-required` (401) with
//!   `WWW-Authenticate: PrivateToken challenge=…, token-key=…, max-age=…`;
//! - a token that does not parse, is of another type, another challenge (origin, issuer name or
//!   day), another issuer key or does not verify → `bad-token` (401, the same challenge header);
//! - a token whose nonce is in the spent set → `token-spent` (401).
//!
//! A valid token's nonce is appended to the spent set and fsynced ([`super::spent`]) before the
//! lookup runs, so the answer is never sent for a token that a crash could make spendable again.
//! The DP learns nothing about who fetched the token: the issuer signed it blindly.

use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use blind_rsa_signatures::Signature;
use ledger_core::problem::ProblemType;
use privacypass::public_tokens::{PublicKey, PublicToken};
use privacypass::{Deserialize as _, TokenType};
use sha2::{Digest, Sha256};

use super::challenge::{self, B64URL_ANY, DAY_S};
use super::spent::SpentSet;
use super::RequireToken;
use crate::problem::ApiError;

/// The scheme of RFC 9577.
const SCHEME: &[u8] = b"PrivateToken";

/// Whether an `Authorization` value uses the PrivateToken scheme (case-insensitively).
pub fn is_private_token(value: &[u8]) -> bool {
    value.len() > SCHEME.len()
        && value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
        && value[SCHEME.len()] == b' '
}

/// Errors setting up redemption.
#[derive(Debug, thiserror::Error)]
pub enum RedeemSetupError {
    /// The key file could not be read.
    #[error("issuer key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The issuer's directory could not be fetched or holds no type-2 key.
    #[error("issuer directory {url}: {detail}")]
    Directory {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The key does not decode.
    #[error("issuer key: {0}")]
    Key(#[from] challenge::EncodingError),
    /// The spent set could not be opened.
    #[error(transparent)]
    Spent(#[from] super::spent::SpentError),
}

/// The redeeming side of a DP: the pinned issuer key, the challenge parameters, the spent set.
#[derive(Debug)]
pub struct Redeemer {
    key: PublicKey,
    key_text: String,
    key_id: [u8; 32],
    issuer_name: String,
    origin: String,
    spent: Arc<SpentSet>,
    /// Debug builds: `LEDGER_TOKEN_DAY` overrides the current UTC day (tests).
    day_override: Option<u32>,
}

/// The body of the directory (RFC 9578 §4) that matters here.
#[derive(serde::Deserialize)]
struct Directory {
    #[serde(rename = "token-keys")]
    token_keys: Vec<DirectoryKey>,
}

#[derive(serde::Deserialize)]
struct DirectoryKey {
    #[serde(rename = "token-type")]
    token_type: u16,
    #[serde(rename = "token-key")]
    token_key: String,
}

/// The path of the issuer directory (RFC 9578 §4).
pub const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";

/// Reads the issuer key: the text of a file, or the first type-2 key of `URL`'s directory.
fn load_key_text(key: &str) -> Result<String, RedeemSetupError> {
    if key.starts_with("http://") || key.starts_with("https://") {
        let url = format!("{}{DIRECTORY_PATH}", key.trim_end_matches('/'));
        let dir_err = |detail: String| RedeemSetupError::Directory {
            url: url.clone(),
            detail,
        };
        // The server may already run on a tokio runtime: fetch on a thread of its own.
        let fetch_url = url.clone();
        let body = std::thread::spawn(move || -> Result<Vec<u8>, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let resp = reqwest::get(&fetch_url).await.map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("status {}", resp.status()));
                }
                resp.bytes()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| e.to_string())
            })
        })
        .join()
        .map_err(|_| dir_err("the fetching thread panicked".into()))?
        .map_err(dir_err)?;
        let dir: Directory =
            serde_json::from_slice(&body).map_err(|e| dir_err(format!("not a directory: {e}")))?;
        dir.token_keys
            .into_iter()
            .find(|k| k.token_type == TokenType::Public as u16)
            .map(|k| k.token_key)
            .ok_or_else(|| dir_err("no key of token type 2".into()))
    } else {
        std::fs::read_to_string(key).map_err(|source| RedeemSetupError::KeyFile {
            path: key.to_string(),
            source,
        })
    }
}

impl Redeemer {
    /// Loads the pinned key and opens the spent set in `data`; `log_origin` is the default origin
    /// name of the challenge.
    pub fn open(
        config: &RequireToken,
        data: &Path,
        log_origin: &str,
    ) -> Result<Redeemer, RedeemSetupError> {
        let text = load_key_text(&config.key)?;
        let key = challenge::decode_key(&text)?;
        let key_text = challenge::encode_key(&key)?;
        let der = B64URL_ANY
            .decode(&key_text)
            .map_err(challenge::EncodingError::from)?;
        let key_id: [u8; 32] = Sha256::digest(&der).into();
        let day_override = if cfg!(debug_assertions) {
            std::env::var("LEDGER_TOKEN_DAY")
                .ok()
                .and_then(|s| s.parse().ok())
        } else {
            None
        };
        let mut r = Redeemer {
            key,
            key_text,
            key_id,
            issuer_name: config.issuer_name.clone(),
            origin: config
                .origin
                .clone()
                .unwrap_or_else(|| log_origin.to_string()),
            spent: Arc::new(SpentSet::open(data, 0)?),
            day_override,
        };
        // Only yesterday's and today's tokens are accepted: forget older spent nonces.
        r.spent = Arc::new(SpentSet::open(data, r.today().saturating_sub(1))?);
        tracing::info!(
            issuer = %r.issuer_name,
            origin = %r.origin,
            spent = r.spent.len(),
            "lookups require Privacy Pass tokens"
        );
        Ok(r)
    }

    fn today(&self) -> u32 {
        self.day_override
            .unwrap_or_else(|| challenge::utc_day(ledger_core::time::now_unix()))
    }

    /// The `WWW-Authenticate` value: today's challenge, the key, and how long the challenge is
    /// accepted (until the end of tomorrow, UTC).
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let today = self.today();
        let ch = challenge::challenge(&self.issuer_name, &self.origin, today);
        let ser = ch.serialize().ok()?;
        let end = (u64::from(today) + 2) * DAY_S;
        let max_age = end
            .saturating_sub(ledger_core::time::now_unix())
            .min(2 * DAY_S);
        HeaderValue::from_str(&format!(
            "PrivateToken challenge={}, token-key={}, max-age={max_age}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ser),
            self.key_text
        ))
        .ok()
    }

    fn refuse(&self, kind: ProblemType, detail: impl Into<String>) -> Response {
        let mut resp = ApiError::new(kind, detail).into_response();
        if kind != ProblemType::TokenSpent {
            if let Some(v) = self.www_authenticate() {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }

    /// Checks and spends the token of `authorization`; `Err` is the refusal to send.
    pub async fn redeem(&self, authorization: Option<&HeaderValue>) -> Result<(), Response> {
        let Some(value) = authorization.filter(|v| is_private_token(v.as_bytes())) else {
            return Err(self.refuse(
                ProblemType::TokenRequired,
                format!(
                    "lookups here need a Privacy Pass token (type 2) of the issuer {}: fetch some with `ledger token fetch`",
                    self.issuer_name
                ),
            ));
        };
        let (token, day) = self
            .parse_and_verify(value.as_bytes())
            .map_err(|detail| self.refuse(ProblemType::BadToken, detail))?;
        let nonce = token.nonce();
        if !self.spent.reserve(&nonce) {
            return Err(self.refuse(
                ProblemType::TokenSpent,
                "this token was already spent; each token pays for one lookup",
            ));
        }
        let spent = Arc::clone(&self.spent);
        let committed = tokio::task::spawn_blocking(move || spent.commit(&nonce, day)).await;
        match committed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!("recording a spent token: {e}");
                Err(ApiError::storage_failed("cannot record the spent token").into_response())
            }
            Err(e) => Err(ApiError::internal(e).into_response()),
        }
    }

    /// Parses `PrivateToken token=<base64url>` and verifies the token: type, challenge (today's
    /// or yesterday's), key id and signature. Returns it with its day, or what is wrong.
    fn parse_and_verify(&self, value: &[u8]) -> Result<(PublicToken, u32), String> {
        let text = std::str::from_utf8(&value[SCHEME.len()..])
            .map_err(|_| "the Authorization header is not text".to_string())?;
        let encoded = text
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("token="))
            .ok_or_else(|| "no token= parameter".to_string())?
            .trim_matches('"');
        let bytes = B64URL_ANY
            .decode(encoded)
            .map_err(|e| format!("the token is not base64url: {e}"))?;
        let token = PublicToken::tls_deserialize_exact(&bytes)
            .map_err(|e| format!("the token does not parse: {e:?}"))?;
        if token.token_type() != TokenType::Public {
            return Err("not a publicly verifiable token (type 2)".into());
        }
        if token.token_key_id() != &self.key_id {
            return Err("the token was issued under another issuer key".into());
        }
        let today = self.today();
        let day = [today, today.saturating_sub(1)]
            .into_iter()
            .find(|d| {
                challenge::challenge(&self.issuer_name, &self.origin, *d)
                    .digest()
                    .is_ok_and(|dg| &dg == token.challenge_digest())
            })
            .ok_or_else(|| {
                "the token answers another challenge (another DP, issuer name, or an expired day)"
                    .to_string()
            })?;
        let mut input = Vec::with_capacity(98);
        input.extend_from_slice(&(TokenType::Public as u16).to_be_bytes());
        input.extend_from_slice(&token.nonce());
        input.extend_from_slice(token.challenge_digest());
        input.extend_from_slice(token.token_key_id());
        self.key
            .verify(&Signature(token.authenticator().to_vec()), None, &input)
            .map_err(|_| {
                "the token's signature does not verify under the issuer key".to_string()
            })?;
        Ok((token, day))
    }
}
