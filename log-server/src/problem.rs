//! RFC 9457 problem responses (SPEC §5): every error the server answers is `application/problem+json`
//! with a `urn:mimi-ledger:problem:<slug>` type, built from [`ledger_core::api::Problem`].
//!
//! Handlers return [`ApiError`]; axum's own rejections (query strings, JSON bodies, body limits,
//! unknown routes, wrong methods) are mapped here too, so a client never has to parse prose or HTML.

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::admission::Refusal;
use ledger_core::api::Problem;
use ledger_core::problem::ProblemType;

/// The media type of RFC 9457 problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered to an HTTP client: a SPEC §5 problem type, a detail and (rarely) a status that
/// differs from the type's default (405 for a wrong method, 415 for a wrong content type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct ApiError {
    /// The problem type (its slug is the stable part of the answer).
    pub kind: ProblemType,
    /// What exactly was wrong, for humans.
    pub detail: String,
    /// The HTTP status, when it is not `kind.status()`.
    pub status: Option<u16>,
    /// Seconds after which the client may retry (`Retry-After`), for `overloaded`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of type `kind` with the type's own status.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            detail: detail.into(),
            status: None,
            retry_after: None,
        }
    }

    /// `bad-request` (400): a parameter, the content type or the JSON is wrong.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(ProblemType::BadRequest, detail)
    }

    /// `not-found` (404).
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ProblemType::NotFound, detail)
    }

    /// `overloaded` (503) with `Retry-After: 1`: the submission queue is full.
    pub fn overloaded(detail: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(ProblemType::Overloaded, detail)
        }
    }

    /// `storage-full` (503, `Retry-After: 10`): the disk is below its free-space floor; writes
    /// resume by themselves once space is freed.
    pub fn storage_full(detail: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(10),
            ..ApiError::new(ProblemType::StorageFull, detail)
        }
    }

    /// `storage-unavailable` (503, `Retry-After: 5`): writing a batch failed on an I/O error and
    /// nothing of it was stored; the log goes on.
    pub fn storage_unavailable(detail: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(ProblemType::StorageUnavailable, detail)
        }
    }

    /// `storage-failed` (503, no `Retry-After`: retrying does not help): the store failed and the
    /// sequencer stopped; an operator must restart the log.
    pub fn storage_failed(detail: impl Into<String>) -> ApiError {
        ApiError::new(ProblemType::StorageFailed, detail)
    }

    /// An internal failure (storage, signing). Reported as `overloaded` (503, retry later): the
    /// request itself was fine, and SPEC §5 has no slug for server faults. The detail is logged.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::overloaded(format!("internal error: {detail}"))
    }

    /// Overrides the HTTP status (e.g. 415 for `bad-request` on a wrong content type).
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = Some(status);
        self
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.kind.status())
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let mut p = Problem::new(self.kind, self.detail.clone());
        p.status = self.status();
        p
    }
}

/// The one mapping of the log's domain errors to problem+json (internal faults are logged here).
impl From<crate::error::LogError> for ApiError {
    fn from(e: crate::error::LogError) -> ApiError {
        use crate::error::LogError;
        match e {
            LogError::Refused(r) => ApiError::from(r),
            LogError::QueueFull | LogError::NotRunning => ApiError::overloaded(e.to_string()),
            LogError::StorageFull(_) | LogError::WriteFailed { full: true, .. } => {
                ApiError::storage_full(e.to_string())
            }
            LogError::WriteFailed { full: false, .. } => {
                ApiError::storage_unavailable(e.to_string())
            }
            LogError::StorageFailed(_) => ApiError::storage_failed(e.to_string()),
            LogError::BadEnrollment(d) => ApiError::bad_request(d),
            LogError::InvalidEntry(e) => ApiError::new(e.problem(), e.to_string()),
            LogError::NoSuchTile(d) => ApiError::not_found(d),
            LogError::Storage(_) | LogError::Tree(_) | LogError::Signing(_) => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::new(r.problem(), r.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::bad_request("expected Content-Type: application/json").with_status(415)
            }
            JsonRejection::BytesRejection(b) => ApiError::from(b),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ProblemType::TooLarge, "request body too large")
        } else {
            ApiError::bad_request(r.body_text())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == ProblemType::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Lets the metrics layer count results by slug without parsing the body.
        resp.extensions_mut().insert(self.kind);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_override_and_problem_document() {
        let e = ApiError::bad_request("wrong content type").with_status(415);
        let p = e.problem();
        assert_eq!(p.status, 415);
        assert_eq!(p.type_, "urn:mimi-ledger:problem:bad-request");
        assert_eq!(p.detail, "wrong content type");
        let o = ApiError::overloaded("queue full");
        assert_eq!(o.status(), 503);
        assert_eq!(o.retry_after, Some(1));
    }

    #[test]
    fn response_is_problem_json_with_retry_after() {
        let resp = ApiError::overloaded("queue full").into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            resp.extensions().get::<ProblemType>(),
            Some(&ProblemType::Overloaded)
        );
    }
}
