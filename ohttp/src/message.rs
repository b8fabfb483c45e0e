//! The Binary HTTP (RFC 9292) messages inside the encapsulation: known-length requests and
//! responses, with only what a lookup needs.
//!
//! A request carries `date` (HTTP-date, for the gateway's replay window, [`crate::replay`]) and
//! `accept`; nothing else that could tell clients apart.

use std::io::Cursor;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bhttp::{Message, Mode, StatusCode};

/// Why a Binary HTTP message was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// It does not parse as Binary HTTP.
    #[error("not a Binary HTTP message: {0}")]
    Parse(String),
    /// A request was expected and this is a response, or the other way round.
    #[error("a Binary HTTP {0} was expected")]
    WrongKind(&'static str),
    /// A request field is missing or not text.
    #[error("the Binary HTTP request has no usable {0}")]
    Missing(&'static str),
    /// Writing failed (a status outside 100..=599).
    #[error("encoding the Binary HTTP message: {0}")]
    Encode(String),
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The authority the client aimed at (informational: the gateway serves only itself).
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// The `date` field, Unix seconds, if present and well-formed.
    pub date: Option<u64>,
    /// The `authorization` field (a Privacy Pass token, RFC 9577), the one field of the client's
    /// that reaches the DP: it is inside the encapsulation, so the relay never sees it.
    pub authorization: Option<String>,
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerResponse {
    /// The status code.
    pub status: u16,
    /// The `content-type` field, if any.
    pub content_type: Option<String>,
    /// The content.
    pub body: Vec<u8>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Encodes `GET https://{authority}{path}` dated `date`.
pub fn encode_get(authority: &str, path: &str, date: SystemTime) -> Result<Vec<u8>, MessageError> {
    encode_get_authorized(authority, path, date, None)
}

/// [`encode_get`] with an `authorization` field (a Privacy Pass token for a DP that requires one).
pub fn encode_get_authorized(
    authority: &str,
    path: &str,
    date: SystemTime,
    authorization: Option<&str>,
) -> Result<Vec<u8>, MessageError> {
    let mut m = Message::request(
        b"GET".to_vec(),
        b"https".to_vec(),
        authority.as_bytes().to_vec(),
        path.as_bytes().to_vec(),
    );
    m.put_header("date", httpdate::fmt_http_date(date));
    m.put_header("accept", "application/json, text/plain");
    if let Some(a) = authorization {
        m.put_header("authorization", a);
    }
    let mut out = Vec::new();
    m.write_bhttp(Mode::KnownLength, &mut out)
        .map_err(|e| MessageError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a request.
pub fn decode_request(bytes: &[u8]) -> Result<InnerRequest, MessageError> {
    let m = Message::read_bhttp(&mut Cursor::new(bytes))
        .map_err(|e| MessageError::Parse(e.to_string()))?;
    let c = m.control();
    if !c.is_request() {
        return Err(MessageError::WrongKind("request"));
    }
    let text = |v: Option<&[u8]>, what| {
        v.and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
            .ok_or(MessageError::Missing(what))
    };
    let date = m
        .header()
        .get(b"date")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .map(unix);
    let authorization = m
        .header()
        .get(b"authorization")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string);
    Ok(InnerRequest {
        method: text(c.method(), "method")?,
        authority: text(c.authority(), "authority").unwrap_or_default(),
        path: text(c.path(), "path")?,
        date,
        authorization,
    })
}

/// Encodes a response with `status`, an optional content type, `cache-control: no-store` and
/// `body`.
pub fn encode_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, MessageError> {
    let code = StatusCode::try_from(status).map_err(|e| MessageError::Encode(e.to_string()))?;
    let mut m = Message::response(code);
    if let Some(ct) = content_type {
        m.put_header("content-type", ct);
    }
    m.put_header("cache-control", "no-store");
    m.write_content(body);
    let mut out = Vec::new();
    m.write_bhttp(Mode::KnownLength, &mut out)
        .map_err(|e| MessageError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a response (informational responses are skipped).
pub fn decode_response(bytes: &[u8]) -> Result<InnerResponse, MessageError> {
    let m = Message::read_bhttp(&mut Cursor::new(bytes))
        .map_err(|e| MessageError::Parse(e.to_string()))?;
    let status = m
        .control()
        .status()
        .ok_or(MessageError::WrongKind("response"))?;
    Ok(InnerResponse {
        status: u16::from(status),
        content_type: m
            .header()
            .get(b"content-type")
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string),
        body: m.content().to_vec(),
    })
}

/// `t` plus `secs` (for tests and skewed clocks).
pub fn later(t: SystemTime, secs: u64) -> SystemTime {
    t + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let b = encode_get("dp.example", "/v1/lookup?sii=mailto%3Aa%40b.example", t).expect("enc");
        let r = decode_request(&b).expect("dec");
        assert_eq!(r.method, "GET");
        assert_eq!(r.authority, "dp.example");
        assert_eq!(r.path, "/v1/lookup?sii=mailto%3Aa%40b.example");
        assert_eq!(r.date, Some(1_700_000_000));
        assert!(decode_response(&b).is_err());
    }

    #[test]
    fn response_round_trip() {
        let b = encode_response(404, Some("application/problem+json"), b"{}").expect("enc");
        let r = decode_response(&b).expect("dec");
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(r.body, b"{}");
        assert!(matches!(
            decode_request(&b),
            Err(MessageError::WrongKind(_))
        ));
        // RFC 9292 §3.8 allows leaving out a trailer section, not cutting the content.
        assert!(decode_response(&b[..b.len() - 3]).is_err());
        assert!(encode_response(99, None, b"").is_err());
    }
}
