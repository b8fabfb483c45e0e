//! The HTTP API: `POST /v1/challenge`, `POST /v1/verify`, `GET /v1/info`, `GET /healthz`.
//! Errors are RFC 9457 problem documents, as the log's (SPEC §5).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ledger_core::api::Problem;
use ledger_core::entry::{tag_set, Action, Attestation, SignedAttestation};
use ledger_core::key::SignerKey;
use ledger_core::problem::ProblemType;
use ledger_core::sii::{Name, Sii, SiiKind, Ssi, Tag, MAX_TAGS};
use ledger_core::time::now_unix;
use serde::{Deserialize, Serialize};

use crate::sender::{Message, Sender};
use crate::store::{ChallengeError, Store, Subject, VerifyError};

/// The prover's configuration.
pub struct Config {
    /// The key attestations are signed with (enrolled in the log as a `prover`).
    pub key: SignerKey,
    /// How long attestations are valid, in seconds.
    pub attestation_ttl_s: u64,
    /// The `method` written into attestations; `None` picks `sms-otp` or `email-otp` by SII kind.
    pub method: Option<String>,
}

/// Shared server state.
pub struct AppState {
    config: Config,
    store: Mutex<Store>,
    sender: Box<dyn Sender>,
}

impl AppState {
    /// State from its parts.
    pub fn new(config: Config, store: Store, sender: Box<dyn Sender>) -> AppState {
        AppState {
            config,
            store: Mutex::new(store),
            sender,
        }
    }
}

/// The router (serve it with `ledger_serve::serve`, or axum with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the handlers need `ConnectInfo`).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/challenge", post(challenge))
        .route("/v1/verify", post(verify))
        .route("/v1/info", get(info))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { problem(ProblemType::NotFound, "no such endpoint", None) })
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

fn problem(kind: ProblemType, detail: impl Into<String>, retry_after: Option<u64>) -> Response {
    let p = Problem::new(kind, detail);
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, Json(p)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(s) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

/// A refused request, answered as a problem document.
#[derive(Debug)]
struct ApiError {
    kind: ProblemType,
    detail: String,
}

impl ApiError {
    fn new(kind: ProblemType, detail: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem(self.kind, self.detail, None)
    }
}

/// `POST /v1/challenge` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The canonical SII.
    pub sii: String,
    /// `claim`, `revoke` or `optout`.
    pub action: String,
    /// The MSP (claim, revoke).
    #[serde(default)]
    pub msp: Option<String>,
    /// The SSI (claim, revoke).
    #[serde(default)]
    pub ssi: Option<String>,
    /// The claim's tags, shown to the recipient.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `POST /v1/challenge` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    /// The challenge id to answer with `/v1/verify`.
    pub challenge: String,
    /// When the code expires (Unix seconds).
    pub expires: u64,
    /// How the code was delivered (`outbox`, `webhook`).
    pub delivered_via: String,
}

/// `POST /v1/verify` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The challenge id.
    pub challenge: String,
    /// The one-time code.
    pub code: String,
}

/// `POST /v1/verify` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyAnswer {
    /// The signed attestation note (text).
    pub attestation: String,
    /// When it expires (Unix seconds).
    pub expires: u64,
}

/// `GET /v1/info` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct InfoAnswer {
    /// The prover's name.
    pub name: String,
    /// The prover's verifier key (to enroll in the log and pin in trust files).
    pub vkey: String,
    /// How long attestations are valid.
    pub attestation_ttl_s: u64,
}

fn parse_subject(req: ChallengeRequest) -> Result<Subject, ApiError> {
    let bad = |kind, d: String| ApiError::new(kind, d);
    let sii = Sii::parse(&req.sii).map_err(|e| {
        let kind = if e.is_non_canonical() {
            ProblemType::NonCanonical
        } else {
            ProblemType::InvalidSii
        };
        bad(kind, format!("sii {:?}: {e}", req.sii))
    })?;
    let action = match req.action.as_str() {
        "claim" => Action::Claim,
        "revoke" => Action::Revoke,
        "optout" => Action::Optout,
        other => {
            return Err(bad(
                ProblemType::BadRequest,
                format!("action {other:?}: expected claim, revoke or optout"),
            ))
        }
    };
    let msp = req
        .msp
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| bad(ProblemType::BadRequest, format!("msp: {e}")))?;
    let ssi = req
        .ssi
        .as_deref()
        .map(Ssi::parse)
        .transpose()
        .map_err(|e| bad(ProblemType::BadRequest, format!("ssi: {e}")))?;
    match (action, &msp, &ssi) {
        (Action::Optout, None, None) => {}
        (Action::Optout, _, _) => {
            return Err(bad(
                ProblemType::BadRequest,
                "an optout names no msp and no ssi".into(),
            ))
        }
        (_, Some(_), Some(_)) => {}
        _ => {
            return Err(bad(
                ProblemType::BadRequest,
                format!("a {} needs both msp and ssi", action.as_str()),
            ))
        }
    }
    if action != Action::Claim && !req.tags.is_empty() {
        return Err(bad(ProblemType::BadRequest, "only a claim has tags".into()));
    }
    if req.tags.len() > MAX_TAGS {
        return Err(bad(
            ProblemType::BadRequest,
            format!("{} tags; at most {MAX_TAGS}", req.tags.len()),
        ));
    }
    let tags = req
        .tags
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| bad(ProblemType::BadRequest, format!("tag {t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // Shown to the recipient as the claim will carry them: a set in byte order (SPEC §3).
    let tags = tag_set(tags);
    Ok(Subject {
        action,
        sii,
        msp,
        ssi,
        tags,
    })
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ProblemType::BadRequest, format!("body: {e}")))
}

async fn challenge(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return ledger_serve::problem::bytes_rejection(&r),
    };
    let subject = match json_body::<ChallengeRequest>(&body).and_then(parse_subject) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let issued = {
        let mut store = match s.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match store.challenge(subject.clone(), &peer.ip().to_string(), Instant::now()) {
            Ok(i) => i,
            Err(e) => {
                let retry = match &e {
                    ChallengeError::ClientRate { retry_after }
                    | ChallengeError::SiiRate { retry_after, .. } => *retry_after,
                    _ => 60,
                };
                let kind = match e {
                    ChallengeError::Full => ProblemType::Overloaded,
                    _ => ProblemType::RateLimited,
                };
                tracing::warn!(client = %peer.ip(), sii = %subject.sii, "challenge refused: {e}");
                return problem(kind, e.to_string(), Some(retry));
            }
        }
    };
    let ttl = s
        .store
        .lock()
        .map(|g| g.limits().code_ttl)
        .unwrap_or_default();
    let expires = now_unix() + ttl.as_secs();
    let msg = Message {
        to: subject.sii.clone(),
        challenge: issued.id.clone(),
        code: issued.code,
        action: subject.action,
        msp: subject.msp,
        ssi: subject.ssi,
        tags: subject.tags,
        expires,
    };
    if let Err(e) = s.sender.send(&msg).await {
        if let Ok(mut g) = s.store.lock() {
            g.forget(&issued.id);
        }
        tracing::error!("cannot deliver a code: {e}");
        return problem(
            ProblemType::Overloaded,
            format!("the code could not be delivered ({})", s.sender.kind()),
            Some(30),
        );
    }
    tracing::info!(client = %peer.ip(), sii = %msg.to, action = msg.action.as_str(), "challenge sent");
    Json(ChallengeAnswer {
        challenge: issued.id,
        expires,
        delivered_via: s.sender.kind().to_string(),
    })
    .into_response()
}

async fn verify(State(s): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return ledger_serve::problem::bytes_rejection(&r),
    };
    let req = match json_body::<VerifyRequest>(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let outcome = {
        let mut store = match s.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        store.verify(&req.challenge, &req.code, Instant::now())
    };
    let subject = match outcome {
        Ok(sub) => sub,
        Err(e) => {
            let kind = match e {
                VerifyError::Unknown | VerifyError::Used => ProblemType::NotFound,
                VerifyError::Locked { .. } => ProblemType::RateLimited,
                _ => ProblemType::Unauthorized,
            };
            tracing::warn!(challenge = %req.challenge, "verify refused: {e}");
            return problem(kind, e.to_string(), None);
        }
    };
    let time = now_unix();
    let expires = time + s.config.attestation_ttl_s.max(1);
    let method = s.config.method.clone().unwrap_or_else(|| {
        match subject.sii.kind() {
            SiiKind::Tel => "sms-otp",
            _ => "email-otp",
        }
        .to_string()
    });
    let att = Attestation {
        action: subject.action,
        sii: subject.sii,
        msp: subject.msp,
        ssi: subject.ssi,
        method,
        time,
        expires,
    };
    match SignedAttestation::sign(att, &s.config.key) {
        Ok(signed) => {
            tracing::info!(sii = %signed.attestation.sii, action = signed.attestation.action.as_str(), "attestation signed");
            Json(VerifyAnswer {
                attestation: String::from_utf8_lossy(&signed.note.to_bytes()).into_owned(),
                expires,
            })
            .into_response()
        }
        Err(e) => problem(
            ProblemType::BadRequest,
            format!("cannot sign the attestation: {e}"),
            None,
        ),
    }
}

async fn info(State(s): State<Arc<AppState>>) -> Response {
    Json(InfoAnswer {
        name: s.config.key.name().to_string(),
        vkey: s.config.key.verifier().to_string(),
        attestation_ttl_s: s.config.attestation_ttl_s,
    })
    .into_response()
}
