//! The refusals this crate answers itself, as RFC 9457 `application/problem+json` with a SPEC §5
//! slug, in the same shape as the servers' own ([`ledger_core::api::Problem`]).
//!
//! SPEC §5's slug set is closed, so these reuse its slugs and say the rest with the status:
//! 431 and 414 are `too-large` (the head or the target is too large), 400 and 408 are
//! `bad-request` (the request could not be read, or not in time), 503 is `overloaded`.

use axum::body::Body;
use http::{header, HeaderValue, Response, StatusCode};
use ledger_core::api::Problem;
use ledger_core::problem::ProblemType;

/// The media type of RFC 9457 problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The problem document for `kind` answered with `status`.
pub fn document(kind: ProblemType, status: StatusCode, detail: &str) -> Vec<u8> {
    let mut p = Problem::new(kind, detail);
    if status.as_u16() != p.status {
        // The slug's own title would be wrong ("Request body too large" for a 431).
        p.title = status.canonical_reason().unwrap_or("Refused").to_string();
    }
    p.status = status.as_u16();
    serde_json::to_vec(&p).unwrap_or_default()
}

/// A complete HTTP/1.1 response (head and body) that closes the connection, for the places where
/// there is no hyper connection to answer through (a refused connection, a rewritten hyper
/// error response).
pub fn raw_response(kind: ProblemType, status: StatusCode, detail: &str) -> Vec<u8> {
    let body = document(kind, status, detail);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncache-control: no-store\r\nconnection: close\r\n{}content-length: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        if status == StatusCode::SERVICE_UNAVAILABLE {
            "retry-after: 1\r\n"
        } else {
            ""
        },
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The same refusal as an HTTP response sent through hyper; it closes the connection (the rest
/// of the request was not read).
pub fn response(kind: ProblemType, status: StatusCode, detail: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(document(kind, status, detail)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp.extensions_mut().insert(kind);
    resp
}

/// axum's refusal of a body it could not buffer (over the route's limit, or broken off), as
/// problem+json: handlers that take `Result<Bytes, BytesRejection>` answer with this instead of
/// axum's plain-text body.
pub fn bytes_rejection(r: &axum::extract::rejection::BytesRejection) -> Response<Body> {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response(
            ProblemType::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )
    } else {
        response(ProblemType::BadRequest, r.status(), &r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_response_is_framed_problem_json() {
        let raw = raw_response(
            ProblemType::TooLarge,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        );
        let text = String::from_utf8(raw).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let p: Problem = serde_json::from_str(body).expect("problem json");
        assert_eq!(p.type_, "urn:mimi-ledger:problem:too-large");
        assert_eq!(p.status, 431);
    }
}
