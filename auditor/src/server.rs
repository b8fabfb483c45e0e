//! The HTTP interface: the witness (`POST /add-checkpoint`), gossip
//! (`GET /<hex sha256(origin)>/checkpoint`), client audit (`POST /v1/audit`), evidence
//! (`GET /v1/evidence`), `/metrics` and `/healthz`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ledger_core::api::{AuditAnswer, Evidence, Problem, Verdict};
use ledger_core::problem::ProblemType;
use ledger_core::witness::{format_size_body, origin_hash, TLOG_SIZE_CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use crate::audit::Auditor;
use crate::witness::{add_checkpoint, WitnessError};

/// The largest request body: 63 proof lines and a checkpoint note of at most 64 KiB.
pub const MAX_BODY_BYTES: usize = 80 * 1024;

/// The router over a running auditor.
pub fn router(aud: Arc<Auditor>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint_handler))
        .route("/v1/audit", post(audit_handler))
        .route("/v1/evidence", get(evidence_handler))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/{origin_hash}/checkpoint", get(gossip_handler))
        // Refusals are problem+json, unknown paths and wrong methods included.
        .fallback(|| async { problem(ProblemType::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            let mut r = problem(ProblemType::BadRequest, "method not allowed here");
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(aud)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn problem(kind: ProblemType, detail: impl Into<String>) -> Response {
    let p = Problem::new(kind, detail);
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::to_string(&p).unwrap_or_default();
    text(status, "application/problem+json", body)
}

/// A problem document with a status other than the type's own (C2SP tlog-witness fixes the
/// statuses of `add-checkpoint`; the body is ours).
fn problem_with_status(
    kind: ProblemType,
    status: StatusCode,
    detail: impl Into<String>,
) -> Response {
    let mut p = Problem::new(kind, detail);
    p.status = status.as_u16();
    let body = serde_json::to_string(&p).unwrap_or_default();
    text(status, "application/problem+json", body)
}

/// An `add-checkpoint` refusal other than 409 (whose body tlog-witness fixes as
/// `text/x.tlog.size`) as problem+json, with the tlog-witness status.
fn witness_problem(e: &WitnessError, status: StatusCode) -> Response {
    let kind = match e {
        WitnessError::Malformed(_) | WitnessError::OldSizeTooLarge { .. } => ProblemType::Malformed,
        WitnessError::BadSignature(_) => ProblemType::BadSignature,
        WitnessError::UnknownLog(_) => ProblemType::NotFound,
        WitnessError::Internal(_) => ProblemType::StorageFailed,
        _ => ProblemType::BadRequest,
    };
    problem_with_status(kind, status, e.to_string())
}

async fn add_checkpoint_handler(
    State(aud): State<Arc<Auditor>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return ledger_serve::problem::bytes_rejection(&r),
    };
    let res = add_checkpoint(&aud, &body).await;
    let resp = match res {
        Ok(c) => text(StatusCode::OK, "text/plain; charset=utf-8", c.body),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match e.conflict_size() {
                Some(size) => text(status, TLOG_SIZE_CONTENT_TYPE, format_size_body(size)),
                None => {
                    if status.is_server_error() {
                        tracing::error!("add-checkpoint: {e}");
                    }
                    witness_problem(&e, status)
                }
            }
        }
    };
    aud.metrics().add_checkpoint(resp.status().as_u16());
    resp
}

async fn gossip_handler(State(aud): State<Arc<Auditor>>, Path(hash): Path<String>) -> Response {
    let Some(log) = aud
        .config()
        .logs
        .iter()
        .find(|l| origin_hash(l.origin()) == hash)
    else {
        return problem(ProblemType::NotFound, "no such log");
    };
    match aud.latest_note(log.origin()) {
        Ok(Some(note)) => text(StatusCode::OK, "text/plain; charset=utf-8", note),
        Ok(None) => problem(
            ProblemType::NotFound,
            "no checkpoint of this log cosigned yet",
        ),
        Err(e) => {
            tracing::error!("gossip: {e}");
            problem_with_status(
                ProblemType::StorageFailed,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the witness's state store failed",
            )
        }
    }
}

/// `POST /v1/audit` as JSON: `{"checkpoint": "<note>"}` (a plain-text body is the note itself).
#[derive(Deserialize)]
struct AuditRequest {
    checkpoint: String,
}

async fn audit_handler(
    State(aud): State<Arc<Auditor>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return ledger_serve::problem::bytes_rejection(&r),
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let note: Vec<u8> = if is_json {
        match serde_json::from_slice::<AuditRequest>(&body) {
            Ok(r) => r.checkpoint.into_bytes(),
            Err(e) => return problem(ProblemType::Malformed, format!("audit request: {e}")),
        }
    } else {
        body.to_vec()
    };
    let answer: AuditAnswer = aud.observe(&note, "audit", false).await;
    aud.metrics().audit(answer.verdict.as_str());
    if answer.verdict == Verdict::Inconsistent {
        tracing::warn!("audit: {}", answer.detail);
    }
    Json(answer).into_response()
}

/// `GET /v1/evidence`: `{"evidence": [..]}`.
#[derive(Serialize)]
struct EvidenceList {
    evidence: Vec<Evidence>,
}

async fn evidence_handler(State(aud): State<Arc<Auditor>>) -> Response {
    match aud.store().list_evidence() {
        Ok(evidence) => Json(EvidenceList { evidence }).into_response(),
        Err(e) => {
            tracing::error!("evidence: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "state store error\n".into(),
            )
        }
    }
}

async fn metrics_handler(State(aud): State<Arc<Auditor>>) -> Response {
    let body = aud
        .metrics()
        .render(aud.config().logs.len(), aud.store().evidence_count());
    text(StatusCode::OK, "text/plain; version=0.0.4", body)
}
