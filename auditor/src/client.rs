//! HTTP clients: the witness client a log uses to ask for cosignatures
//! ([`request_cosignature`], C2SP tlog-witness), and the reads the auditor makes from logs and
//! peers (`/checkpoint`, `/v1/proof/consistency`, gossip).

use std::time::Duration;

use ledger_core::api::ConsistencyProof;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::cosignature::verify_cosignature;
use ledger_core::key::VerifierKey;
use ledger_core::note::{Note, NoteSignature};
use ledger_core::Hash;

use crate::witness::{format_request, parse_size, TLOG_SIZE_CONTENT_TYPE};

/// The `add-checkpoint` request body (re-exported from [`crate::witness::format_request`]).
pub use crate::witness::format_request as add_checkpoint_body;

/// The largest response body read from a log, peer or witness.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Why a cosignature request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessClientError {
    /// 409: the witness's latest cosigned size is `size`; retry with `old size` = `size` and a
    /// consistency proof from it (or, when `size` is larger than ours, the witness has seen a
    /// newer checkpoint).
    #[error("witness has cosigned size {size} (409 Conflict)")]
    Conflict {
        /// The witness's latest cosigned size.
        size: u64,
    },
    /// Any other non-200 status (400, 403, 404, 422, 5xx), with the body.
    #[error("witness answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body (truncated).
        body: String,
    },
    /// The connection failed or timed out.
    #[error("witness unreachable: {0}")]
    Transport(String),
    /// A 200 whose body is not signature lines, or a 409 without a valid size body.
    #[error("witness answer malformed: {0}")]
    BadResponse(String),
    /// The caller's `proof_for` could not produce a consistency proof.
    #[error("cannot build the consistency proof: {0}")]
    Proof(String),
    /// A 200 with no cosignature by the witness key that verifies.
    #[error("witness answered 200 but no cosignature by its key verifies")]
    NoValidCosignature,
}

/// Asks a witness to cosign `checkpoint` (C2SP tlog-witness `POST <witness_url>/add-checkpoint`).
///
/// `old_size` is the size the caller believes the witness cosigned last (0 the first time) and
/// `proof` the RFC 6962 consistency proof from it to the checkpoint's size (empty from 0 or
/// between equal sizes). Returns the witness's cosignature line(s) that verify under
/// `witness_key` as `cosignature/v1` over the checkpoint — add them with
/// [`SignedCheckpoint::add_cosignature`]. Lines by other keys are ignored.
///
/// On [`WitnessClientError::Conflict`] fetch a proof from the returned size and call again; the
/// `http` client's timeout bounds the call.
pub async fn request_cosignature(
    http: &reqwest::Client,
    witness_url: &str,
    witness_key: &VerifierKey,
    old_size: u64,
    proof: &[Hash],
    checkpoint: &SignedCheckpoint,
) -> Result<Vec<NoteSignature>, WitnessClientError> {
    let body = format_request(old_size, proof, &checkpoint.to_bytes());
    let url = format!("{}/add-checkpoint", witness_url.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(|e| WitnessClientError::Transport(e.to_string()))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = read_limited(resp)
        .await
        .map_err(WitnessClientError::Transport)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match status {
        200 => parse_cosignatures(checkpoint.note.text(), &text, witness_key),
        409 => {
            if !content_type.starts_with(TLOG_SIZE_CONTENT_TYPE) {
                return Err(WitnessClientError::BadResponse(format!(
                    "409 with content type {content_type:?}"
                )));
            }
            let size = text
                .strip_suffix('\n')
                .and_then(parse_size)
                .ok_or_else(|| {
                    WitnessClientError::BadResponse(format!("409 body {text:?} is not a size"))
                })?;
            Err(WitnessClientError::Conflict { size })
        }
        _ => Err(WitnessClientError::Refused {
            status,
            body: text.chars().take(500).collect(),
        }),
    }
}

/// [`request_cosignature`] with the 409 handling a log needs: starting from `old_size` (the
/// witness's size as the log last knew it, or 0), on a 409 it retries from the witness's size,
/// getting the proof from `proof_for(old, new)` (the log's own tree), at most `max_attempts`
/// times. Returns the old size that succeeded and the cosignature(s).
///
/// A 409 naming a size *larger* than the checkpoint's is returned as is: the witness has
/// cosigned a newer checkpoint of this log, and only a newer checkpoint can be cosigned.
pub async fn request_cosignature_with_retry<F, Fut>(
    http: &reqwest::Client,
    witness_url: &str,
    witness_key: &VerifierKey,
    checkpoint: &SignedCheckpoint,
    mut old_size: u64,
    mut proof_for: F,
    max_attempts: usize,
) -> Result<(u64, Vec<NoteSignature>), WitnessClientError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Hash>, String>>,
{
    let size = checkpoint.checkpoint.size;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if old_size > size {
            return Err(WitnessClientError::Conflict { size: old_size });
        }
        let proof = if old_size == 0 || old_size == size {
            Vec::new()
        } else {
            proof_for(old_size, size)
                .await
                .map_err(WitnessClientError::Proof)?
        };
        match request_cosignature(http, witness_url, witness_key, old_size, &proof, checkpoint)
            .await
        {
            Err(WitnessClientError::Conflict { size: theirs })
                if theirs <= size && theirs != old_size && attempt < max_attempts =>
            {
                old_size = theirs;
            }
            Ok(sigs) => return Ok((old_size, sigs)),
            Err(e) => return Err(e),
        }
    }
}

/// Parses a 200 answer (signature lines) as tlog-witness suggests: appended to the checkpoint
/// text it forms a note; keeps the lines that verify as `cosignature/v1` by `witness_key`.
pub fn parse_cosignatures(
    checkpoint_text: &str,
    body: &str,
    witness_key: &VerifierKey,
) -> Result<Vec<NoteSignature>, WitnessClientError> {
    let note = Note::parse(format!("{checkpoint_text}\n{body}").as_bytes())
        .map_err(|e| WitnessClientError::BadResponse(e.to_string()))?;
    if note.text() != checkpoint_text {
        return Err(WitnessClientError::BadResponse(
            "body is not only signature lines".into(),
        ));
    }
    let valid: Vec<NoteSignature> = note
        .signatures()
        .iter()
        .filter(|s| verify_cosignature(witness_key, checkpoint_text, s).is_ok())
        .cloned()
        .collect();
    if valid.is_empty() {
        return Err(WitnessClientError::NoValidCosignature);
    }
    Ok(valid)
}

/// Why a read from a log or peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The connection failed or timed out.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A status other than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body does not decode.
    #[error("{url}: bad answer: {reason}")]
    BadBody {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// A client with the timeouts the auditor uses.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `GET url`, 200 only, body bounded by [`MAX_RESPONSE_BYTES`].
pub async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| FetchError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    read_limited(resp)
        .await
        .map_err(|reason| FetchError::Transport {
            url: url.to_string(),
            reason,
        })
}

/// The log's consistency proof `GET <log>/v1/proof/consistency?from=M&to=N` (SPEC §5); the
/// answer must be for exactly the sizes asked.
pub async fn fetch_consistency(
    http: &reqwest::Client,
    log_url: &str,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, FetchError> {
    let url = format!("{log_url}/v1/proof/consistency?from={from}&to={to}");
    let bytes = get_bytes(http, &url).await?;
    let p: ConsistencyProof = serde_json::from_slice(&bytes).map_err(|e| FetchError::BadBody {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if p.from != from || p.to != to {
        return Err(FetchError::BadBody {
            url,
            reason: format!("proof is for {}..{}, asked {from}..{to}", p.from, p.to),
        });
    }
    Ok(p.consistency)
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::checkpoint::Checkpoint;
    use ledger_core::cosignature::cosign;
    use ledger_core::testkit::{test_key, test_witness_key};

    #[test]
    fn parses_and_filters_cosignature_lines() {
        let log = test_key("log.example/a");
        let scp = SignedCheckpoint::sign(
            Checkpoint {
                origin: "log.example/a".into(),
                size: 3,
                root: [7; 32],
            },
            &log,
        )
        .unwrap();
        let w = test_witness_key("w.example/1");
        let other = test_witness_key("w.example/2");
        let text = scp.note.text();
        let mine = cosign(&w, text, 100).unwrap();
        let theirs = cosign(&other, text, 100).unwrap();
        let body = format!("{}{}", theirs.to_line(), mine.to_line());
        let got = parse_cosignatures(text, &body, &w.verifier()).unwrap();
        assert_eq!(got, vec![mine]);
        assert_eq!(
            parse_cosignatures(text, &theirs.to_line(), &w.verifier()),
            Err(WitnessClientError::NoValidCosignature)
        );
        assert!(matches!(
            parse_cosignatures(text, "garbage\n", &w.verifier()),
            Err(WitnessClientError::BadResponse(_))
        ));
    }
}
