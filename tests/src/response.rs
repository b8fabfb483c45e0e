//! [`Response`]: what a request answered, problem documents, and a small raw HTTP/1.1 response
//! parser for requests sent byte by byte.

use std::io::Read;

use ledger_core::api::Problem;
use serde::de::DeserializeOwned;

use crate::*;

// ---------------------------------------------------------------------------------------------
// Responses and problems.
// ---------------------------------------------------------------------------------------------

/// An HTTP response read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn from(r: reqwest::blocking::Response) -> Result<Response, reqwest::Error> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes()?.to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The body parsed as JSON into `T`; panics with the body when it does not parse.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answer does not parse as {}: {e}\n{}",
                self.status,
                std::any::type_name::<T>(),
                self.text()
            )
        })
    }

    /// Asserts this is an RFC 9457 problem with HTTP `status` and SPEC §5 `slug`; returns it.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str, what: &str) -> Problem {
        assert_eq!(
            (self.status, self.problem_slug().as_deref()),
            (status, Some(slug)),
            "{what}: expected {status} {slug}, got {} {}",
            self.status,
            self.text()
        );
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/problem+json"),
            "{what}: content type {ct:?} is not application/problem+json"
        );
        let p: Problem = self.json();
        assert_eq!(p.status, status, "{what}: problem status member");
        assert!(!p.title.is_empty(), "{what}: empty problem title");
        p
    }

    /// The slug of a problem body, if the body is one.
    pub fn problem_slug(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("type")?
            .as_str()?
            .strip_prefix(PROBLEM_PREFIX)
            .map(str::to_string)
    }
}

/// Reads one HTTP/1.1 response (status line, headers, a `Content-Length` or chunked body, or up to
/// the end of the stream).
pub(crate) fn parse_http_response(r: &mut impl Read) -> Result<Response, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = r
            .read(&mut chunk)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    let mut body = buf[header_end + 4..].to_vec();
    let len = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = headers
        .get("transfer-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("chunked"));
    loop {
        if len.is_some_and(|l| body.len() >= l) || (chunked && body.ends_with(b"0\r\n\r\n")) {
            break;
        }
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    if let Some(l) = len {
        body.truncate(l);
    } else if chunked {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub(crate) fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..p])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < p + 2 + size {
            break;
        }
        out.extend_from_slice(&data[p + 2..p + 2 + size]);
        data = data.get(p + 4 + size..).unwrap_or_default();
    }
    out
}
