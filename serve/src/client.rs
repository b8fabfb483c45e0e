//! The outgoing side every service shares (the log asking witnesses, the auditor polling logs and
//! peers): an async HTTP client whose every request, connect included, is bounded by one timeout,
//! and response bodies read with a size bound, so that a slow or hostile server can neither hold
//! a caller nor make it buffer without limit.

use std::time::Duration;

/// The most bytes an answer of a log, witness or peer may have (a checkpoint note, cosignature
/// lines or a JSON proof are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A client whose every request (connect included) is bounded by `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The body of `resp`, refusing more than [`MAX_RESPONSE_BYTES`].
pub async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
