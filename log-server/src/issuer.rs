//! The Privacy Pass issuer (`ledger-issuer`, RFC 9578 §6: publicly verifiable tokens, type
//! 0x0002, blind RSA 2048 / RFC 9474 RSABSSA-SHA384-PSS-Deterministic).
//!
//! - `GET /.well-known/private-token-issuer-directory` (RFC 9578 §4): the request URI and the
//!   key (base64url SPKI);
//! - `POST /token-request` (`message/token-request` → `message/token-response`), with an MSP's
//!   `Authorization: Bearer <credential>`; each MSP (the credentials file) has a daily budget of
//!   tokens per UTC day, beyond which `budget-exhausted` (429, `Retry-After` until midnight UTC).
//!
//! The key is generated on first start and stored 0600 in `<data>/issuer.key` (PKCS#8 DER); the
//! public key is written to `<data>/issuer-public.key` for DPs' `--require-token`. The budget
//! counters live in a sled tree (`<data>/budget`), flushed before each token is answered, so a
//! crash never gives an MSP more than its budget. The issuer only ever sees blinded messages: it
//! cannot link a token to the lookup it pays for, and it stores and logs nothing about a request
//! but the MSP's count of the day.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use blind_rsa_signatures::{Deterministic, KeyPair, SecretKey, Sha384, PSS};
use ledger_core::problem::ProblemType;
use privacypass::public_tokens::{PublicKey, NK};
use privacypass::TokenType;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;
use crate::tokens::challenge::{self, DAY_S};
use crate::tokens::redeem::DIRECTORY_PATH;

/// The request path.
pub const REQUEST_PATH: &str = "/token-request";
/// Content type of a token request (RFC 9578 §6.1).
pub const REQUEST_TYPE: &str = "message/token-request";
/// Content type of a token response (RFC 9578 §6.2).
pub const RESPONSE_TYPE: &str = "message/token-response";
/// Content type of the directory (RFC 9578 §4).
pub const DIRECTORY_TYPE: &str = "application/private-token-issuer-directory";
/// The private key file in the data folder.
pub const KEY_FILE: &str = "issuer.key";
/// The public key file in the data folder (base64url SPKI, one line).
pub const PUBLIC_KEY_FILE: &str = "issuer-public.key";

type SecretKeyT = SecretKey<Sha384, PSS, Deterministic>;

/// Errors of the issuer.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The credentials file.
    #[error("credentials file {path}: {detail}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key could not be created, read or written.
    #[error("issuer key {path}: {detail}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The budget store.
    #[error("budget store: {0}")]
    Budget(#[from] sled::Error),
    /// Another I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One MSP of the credentials file.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Msp {
    /// Its name (what the counters and logs say).
    pub name: String,
    /// Its bearer credential.
    pub credential: String,
    /// Tokens it may fetch per UTC day.
    pub daily_budget: u64,
}

/// The credentials file: `[[msp]]` tables.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The MSPs.
    #[serde(default)]
    pub msp: Vec<Msp>,
}

impl Credentials {
    /// Reads and checks the file (names and credentials unique and non-empty).
    pub fn load(path: &Path) -> Result<Credentials, IssuerError> {
        let err = |detail: String| IssuerError::Credentials {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let c: Credentials = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut names = std::collections::HashSet::new();
        let mut creds = std::collections::HashSet::new();
        for m in &c.msp {
            if m.name.is_empty() || m.credential.len() < 16 {
                return Err(err(format!(
                    "msp {:?}: a name and a credential of at least 16 characters are needed",
                    m.name
                )));
            }
            if !names.insert(m.name.clone()) || !creds.insert(m.credential.clone()) {
                return Err(err(format!(
                    "msp {:?}: name or credential repeated",
                    m.name
                )));
            }
        }
        Ok(c)
    }

    /// The MSP whose credential the `Authorization: Bearer` value carries (compared in constant
    /// time against each).
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Option<&Msp> {
        let mut found = None;
        for m in &self.msp {
            if crate::keys::bearer_matches(authorization, &m.credential) {
                found = Some(m);
            }
        }
        found
    }
}

/// The per-MSP, per-UTC-day counters.
#[derive(Clone, Debug)]
pub struct Budget {
    db: sled::Db,
    tree: sled::Tree,
}

impl Budget {
    /// Opens `<data>/budget`.
    pub fn open(data: &Path) -> Result<Budget, IssuerError> {
        let db = sled::open(data.join("budget"))?;
        let tree = db.open_tree("issued")?;
        Ok(Budget { db, tree })
    }

    fn key(name: &str, day: u32) -> Vec<u8> {
        let mut k = day.to_be_bytes().to_vec();
        k.extend_from_slice(name.as_bytes());
        k
    }

    /// Takes one token of `name`'s budget of `day`, durably (flushed before this returns):
    /// `Ok(true)` if it was within `budget`, `Ok(false)` if the budget is spent.
    pub async fn take(&self, name: &str, day: u32, budget: u64) -> Result<bool, IssuerError> {
        let old = self.tree.fetch_and_update(Self::key(name, day), |old| {
            let n = old.map(read_u64).unwrap_or(0);
            Some(
                n.saturating_add(u64::from(n < budget))
                    .to_be_bytes()
                    .to_vec(),
            )
        })?;
        let n = old.as_deref().map(read_u64).unwrap_or(0);
        if n >= budget {
            return Ok(false);
        }
        self.db.flush_async().await?;
        Ok(true)
    }

    /// Tokens issued to `name` on `day`.
    pub fn issued(&self, name: &str, day: u32) -> Result<u64, IssuerError> {
        Ok(self
            .tree
            .get(Self::key(name, day))?
            .as_deref()
            .map(read_u64)
            .unwrap_or(0))
    }
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

/// The issuer's state.
#[derive(Debug)]
pub struct Issuer {
    sk: SecretKeyT,
    key_text: String,
    truncated_key_id: u8,
    credentials: Credentials,
    budget: Budget,
    /// Debug builds: `LEDGER_ISSUER_DAY` overrides the current UTC day (tests).
    day_override: Option<u32>,
}

/// Loads `<data>/issuer.key`, or generates an RSA 2048 key there (0600) on first start; writes
/// the public key file.
pub fn load_or_create_key(data: &Path) -> Result<SecretKeyT, IssuerError> {
    let path = data.join(KEY_FILE);
    let key_err = |detail: String| IssuerError::Key {
        path: path.clone(),
        detail,
    };
    let sk = match std::fs::read(&path) {
        Ok(der) => SecretKeyT::from_der(&der).map_err(|e| key_err(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut rng = blind_rsa_signatures::reexports::rand::rng();
            let kp = KeyPair::<Sha384, PSS, Deterministic>::generate(&mut rng, 2048)
                .map_err(|e| key_err(format!("generating: {e}")))?;
            let der = kp.sk.to_der().map_err(|e| key_err(e.to_string()))?;
            ledger_secret_file::write_secret(&path, &der).map_err(|e| key_err(e.to_string()))?;
            tracing::info!(path = %path.display(), "generated the issuer key (RSA 2048)");
            kp.sk
        }
        Err(e) => return Err(key_err(e.to_string())),
    };
    Ok(sk)
}

impl Issuer {
    /// Opens the issuer in `data` (created 0700 if missing) with `credentials`.
    pub fn open(data: &Path, credentials: Credentials) -> Result<Issuer, IssuerError> {
        ledger_secret_file::create_private_dir(data).map_err(|source| IssuerError::Io {
            what: format!("creating {}", data.display()),
            source,
        })?;
        let sk = load_or_create_key(data)?;
        let pk: PublicKey = sk.public_key().map_err(|e| IssuerError::Key {
            path: data.join(KEY_FILE),
            detail: e.to_string(),
        })?;
        let key_text = challenge::encode_key(&pk).map_err(|e| IssuerError::Key {
            path: data.join(KEY_FILE),
            detail: e.to_string(),
        })?;
        let spki = pk.to_spki().map_err(|e| IssuerError::Key {
            path: data.join(KEY_FILE),
            detail: e.to_string(),
        })?;
        let key_id: [u8; 32] = Sha256::digest(&spki).into();
        let public = data.join(PUBLIC_KEY_FILE);
        std::fs::write(&public, format!("{key_text}\n")).map_err(|source| IssuerError::Io {
            what: format!("writing {}", public.display()),
            source,
        })?;
        let day_override = if cfg!(debug_assertions) {
            std::env::var("LEDGER_ISSUER_DAY")
                .ok()
                .and_then(|s| s.parse().ok())
        } else {
            None
        };
        Ok(Issuer {
            sk,
            key_text,
            truncated_key_id: key_id[31],
            credentials,
            budget: Budget::open(data)?,
            day_override,
        })
    }

    /// The public key (base64url SPKI).
    pub fn key_text(&self) -> &str {
        &self.key_text
    }

    fn today(&self) -> u32 {
        self.day_override
            .unwrap_or_else(|| challenge::utc_day(ledger_core::time::now_unix()))
    }
}

/// The issuer's routes.
pub fn router(issuer: Arc<Issuer>) -> Router {
    Router::new()
        .route(DIRECTORY_PATH, get(directory))
        .route(REQUEST_PATH, post(token_request))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(issuer)
}

async fn directory(State(i): State<Arc<Issuer>>) -> Response {
    let body = serde_json::json!({
        "issuer-request-uri": REQUEST_PATH,
        "token-keys": [{ "token-type": TokenType::Public as u16, "token-key": i.key_text }],
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(DIRECTORY_TYPE),
    );
    resp
}

async fn token_request(
    State(i): State<Arc<Issuer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(msp) = i.credentials.authenticate(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) else {
        return Err(ApiError::new(
            ProblemType::Unauthorized,
            "a token request needs an MSP credential: Authorization: Bearer <credential>",
        ));
    };
    let is_request_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(REQUEST_TYPE));
    if !is_request_type {
        return Err(
            ApiError::bad_request(format!("the content type must be {REQUEST_TYPE}"))
                .with_status(415),
        );
    }
    // struct { uint16_t token_type = 0x0002; uint8_t truncated_token_key_id; uint8_t blinded_msg[Nk]; }
    if body.len() != 3 + NK {
        return Err(ApiError::bad_request(format!(
            "a token request of type 2 is {} bytes, not {}",
            3 + NK,
            body.len()
        )));
    }
    if body[..2] != (TokenType::Public as u16).to_be_bytes() {
        return Err(ApiError::bad_request("only token type 2 is issued here"));
    }
    if body[2] != i.truncated_key_id {
        return Err(ApiError::bad_request(
            "the request names another issuer key: read the directory again",
        ));
    }
    let day = i.today();
    let within = i
        .budget
        .take(&msp.name, day, msp.daily_budget)
        .await
        .map_err(|e| {
            tracing::error!("budget store: {e}");
            ApiError::storage_failed("cannot count the budget")
        })?;
    if !within {
        let now = ledger_core::time::now_unix();
        return Err(ApiError {
            retry_after: Some((u64::from(challenge::utc_day(now)) + 1) * DAY_S - now),
            ..ApiError::new(
                ProblemType::BudgetExhausted,
                format!(
                    "{} has fetched its {} tokens of today (UTC); more after midnight UTC",
                    msp.name, msp.daily_budget
                ),
            )
        });
    }
    let blinded = body.slice(3..);
    let sk = i.sk.clone();
    let sig = tokio::task::spawn_blocking(move || sk.blind_sign(&blinded))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad_request(format!("cannot sign the blinded message: {e}")))?;
    if sig.len() != NK {
        return Err(ApiError::internal("blind signature of the wrong size"));
    }
    // Counts only: nothing of the request or the signature is logged.
    tracing::info!(msp = %msp.name, day, "token issued");
    let mut resp = sig.0.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(RESPONSE_TYPE),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Serves the issuer on `listen` until SIGINT/SIGTERM; prints `listening on ADDR`.
pub async fn serve(issuer: Arc<Issuer>, listen: SocketAddr) -> Result<(), IssuerError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| IssuerError::Io {
            what: format!("listening on {listen}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| IssuerError::Io {
        what: "local address".into(),
        source,
    })?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
    }
    axum::serve(listener, router(issuer))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|source| IssuerError::Io {
            what: "serving".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budget_is_per_msp_per_day_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let b = Budget::open(dir.path()).expect("open");
            assert!(b.take("a", 10, 2).await.expect("take"));
            assert!(b.take("a", 10, 2).await.expect("take"));
            assert!(!b.take("a", 10, 2).await.expect("take"));
            assert!(b.take("b", 10, 2).await.expect("take"), "another MSP");
            assert!(b.take("a", 11, 2).await.expect("take"), "the next day");
        }
        let b = Budget::open(dir.path()).expect("reopen");
        assert_eq!(b.issued("a", 10).expect("issued"), 2);
        assert!(!b.take("a", 10, 2).await.expect("take"));
        assert_eq!(b.issued("a", 11).expect("issued"), 1);
    }

    #[test]
    fn credentials_parse_and_authenticate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[[msp]]\nname = \"a\"\ncredential = \"0123456789abcdef\"\ndaily_budget = 3\n",
        )
        .expect("write");
        let c = Credentials::load(&p).expect("load");
        assert_eq!(
            c.authenticate(Some(b"Bearer 0123456789abcdef"))
                .map(|m| m.daily_budget),
            Some(3)
        );
        assert!(c.authenticate(Some(b"Bearer 0123456789abcdeX")).is_none());
        assert!(c.authenticate(None).is_none());
        std::fs::write(
            &p,
            "[[msp]]\nname = \"a\"\ncredential = \"short\"\ndaily_budget = 3\n",
        )
        .expect("write");
        assert!(Credentials::load(&p).is_err());
    }
}
