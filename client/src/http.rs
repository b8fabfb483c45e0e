//! A small blocking HTTP client for the log, a Discovery Provider and an identity prover.
//!
//! Every failure names the URL and what went wrong; RFC 9457 problem documents are decoded so the
//! user sees the server's own slug and detail (SPEC §5 errors).

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use ledger_core::api::Problem;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A blocking HTTP client with a timeout.
pub struct Http {
    client: reqwest::blocking::Client,
    /// Gives the `Authorization` value (a Privacy Pass token) for a lookup URL, if any.
    lookup_auth: Option<LookupAuth>,
}

/// See [`Http::with_lookup_auth`].
pub type LookupAuth = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A failed request: transport failure, or a non-success answer from the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server could not be reached or the connection failed.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The transport error and its causes.
        reason: String,
    },
    /// The server answered with an RFC 9457 problem document.
    #[error("{url} refused ({status} {slug}): {detail}", slug = problem_slug(problem), detail = problem.detail)]
    Problem {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The problem document.
        problem: Problem,
    },
    /// The server answered with an unexpected status and no problem document.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body of a success answer could not be read or decoded.
    #[error("{url} sent an answer that is not the expected JSON: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl HttpError {
    /// The problem slug (`outside-shard`, `overloaded`, …) of a problem answer.
    pub fn slug(&self) -> Option<String> {
        match self {
            HttpError::Problem { problem, .. } => Some(problem_slug(problem)),
            _ => None,
        }
    }

    /// The HTTP status of an answer that was not a success.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Problem { status, .. } | HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the server said, without the URL: the problem's detail, or the start of the body of
    /// another failed answer, or the transport error.
    pub fn reason(&self) -> String {
        match self {
            HttpError::Unreachable { reason, .. } | HttpError::Body { reason, .. } => {
                reason.clone()
            }
            HttpError::Problem { problem, .. } => problem.detail.clone(),
            HttpError::Status { body, .. } => body.clone(),
        }
    }
}

fn problem_slug(p: &Problem) -> String {
    p.type_
        .strip_prefix("urn:mimi-ledger:problem:")
        .unwrap_or(&p.type_)
        .to_string()
}

impl Http {
    /// A client with a 30 s timeout.
    pub fn new() -> anyhow::Result<Http> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("mimi-ledger-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Http {
            client,
            lookup_auth: None,
        })
    }

    /// Sends `Authorization: <f(url)>` on each `GET …/v1/lookup?…` for which `f` gives a value
    /// (`crate::tokens`: one Privacy Pass token per lookup).
    pub fn with_lookup_auth(mut self, f: LookupAuth) -> Http {
        self.lookup_auth = Some(f);
        self
    }

    /// `GET url`, decoding JSON.
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, HttpError> {
        let resp = self.send(url, self.client.get(url))?;
        decode(url, resp)
    }

    /// `GET url`, returning the raw body of a success answer.
    pub fn get_bytes(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        let mut req = self.client.get(url);
        if let Some(f) = self
            .lookup_auth
            .as_ref()
            .filter(|_| url.contains("/v1/lookup?"))
        {
            if let Some(v) = f(url) {
                req = req.header(reqwest::header::AUTHORIZATION, v);
            }
        }
        let resp = self.send(url, req)?;
        resp.bytes()
            .map(|b| b.to_vec())
            .map_err(|e| HttpError::Body {
                url: url.to_string(),
                reason: e.to_string(),
            })
    }

    /// `POST url` with a `text/plain` body, decoding JSON.
    pub fn post_text<T: DeserializeOwned>(&self, url: &str, body: Vec<u8>) -> Result<T, HttpError> {
        let req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        let resp = self.send(url, req)?;
        decode(url, resp)
    }

    /// `POST url` with an `application/octet-stream` body (a bundle of leaves), decoding JSON.
    pub fn post_octets<T: DeserializeOwned>(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> Result<T, HttpError> {
        let req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let resp = self.send(url, req)?;
        decode(url, resp)
    }

    /// `POST url` with a JSON body (and an optional bearer token), decoding JSON.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
        bearer: Option<&str>,
    ) -> Result<T, HttpError> {
        let mut req = self.client.post(url).json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = self.send(url, req)?;
        decode(url, resp)
    }

    /// `POST url` with an encapsulated OHTTP request (`message/ohttp-req`): the answer body on
    /// `message/ohttp-res`, else the refusal as an error. Only the content type is sent.
    pub fn post_ohttp(&self, url: &str, body: Vec<u8>) -> Result<Vec<u8>, HttpError> {
        let req = self
            .client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                ledger_ohttp::REQUEST_MEDIA_TYPE,
            )
            .body(body);
        let resp = self.send(url, req)?;
        resp.bytes()
            .map(|b| b.to_vec())
            .map_err(|e| HttpError::Body {
                url: url.to_string(),
                reason: e.to_string(),
            })
    }

    fn send(
        &self,
        url: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, HttpError> {
        let resp = req.send().map_err(|e| HttpError::Unreachable {
            url: url.to_string(),
            reason: chain(&e.without_url()),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().unwrap_or_default();
        match serde_json::from_str::<Problem>(&body) {
            Ok(problem) => Err(HttpError::Problem {
                url: url.to_string(),
                status: status.as_u16(),
                problem,
            }),
            Err(_) => Err(HttpError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            }),
        }
    }
}

/// An error and its causes on one line, without repeating a message a cause already says.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

fn decode<T: DeserializeOwned>(
    url: &str,
    resp: reqwest::blocking::Response,
) -> Result<T, HttpError> {
    let bytes = resp.bytes().map_err(|e| HttpError::Body {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| HttpError::Body {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay as they are).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Joins a base URL and a path.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Makes an anyhow error from an [`HttpError`] with a short context of what was being done.
pub fn ctx(what: &str) -> impl FnOnce(HttpError) -> anyhow::Error + '_ {
    move |e| anyhow!(e).context(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_query_values() {
        assert_eq!(query_escape("tel:+14155550100"), "tel%3A%2B14155550100");
        assert_eq!(
            query_escape("mailto:a.b@x.example"),
            "mailto%3Aa.b%40x.example"
        );
        assert_eq!(join("http://h/", "/v1/info"), "http://h/v1/info");
    }
}
