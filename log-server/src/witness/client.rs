//! The log's async C2SP tlog-witness client: `POST <witness>/add-checkpoint` with the 409 retry a
//! log needs, and the read of a witness's gossip endpoint.
//!
//! The bytes on the wire (request body, `text/x.tlog.size`, which answer lines count) are
//! [`ledger_core::witness`]'s, shared with the witness side; this module only adds HTTP, bounded
//! reads and the retry loop.

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::key::VerifierKey;
use ledger_core::note::{Note, NoteSignature};
use ledger_core::witness::{
    cosignatures_in_response, format_request, gossip_path, parse_size_body, select_cosignatures,
    CodecError, TLOG_SIZE_CONTENT_TYPE,
};
use ledger_core::Hash;

use ledger_serve::client::read_limited;
pub use ledger_serve::client::{http_client, MAX_RESPONSE_BYTES};

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

impl From<CodecError> for WitnessClientError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::NoValidCosignature => WitnessClientError::NoValidCosignature,
            CodecError::NotSignatureLines(reason) => WitnessClientError::BadResponse(reason),
            other => WitnessClientError::BadResponse(other.to_string()),
        }
    }
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
        200 => Ok(cosignatures_in_response(
            checkpoint.note.text(),
            &text,
            witness_key,
        )?),
        409 => {
            if !content_type.starts_with(TLOG_SIZE_CONTENT_TYPE) {
                return Err(WitnessClientError::BadResponse(format!(
                    "409 with content type {content_type:?}"
                )));
            }
            let size = parse_size_body(&text).map_err(|_| {
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

/// The witness's cosignature of exactly `cp`, read from its gossip endpoint
/// `GET <witness>/<hex sha256(origin)>/checkpoint` (for when it has already cosigned `cp`, e.g.
/// after polling `/checkpoint` itself, and so answers `add-checkpoint` with 409).
pub async fn cosignature_from_gossip(
    http: &reqwest::Client,
    witness_url: &str,
    witness_key: &VerifierKey,
    cp: &SignedCheckpoint,
) -> Result<Vec<NoteSignature>, WitnessClientError> {
    let url = format!(
        "{}{}",
        witness_url.trim_end_matches('/'),
        gossip_path(&cp.checkpoint.origin)
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| WitnessClientError::Transport(format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(WitnessClientError::Transport(format!(
            "{url}: HTTP {status}"
        )));
    }
    let bytes = read_limited(resp)
        .await
        .map_err(|e| WitnessClientError::Transport(format!("{url}: {e}")))?;
    let note = Note::parse(&bytes).map_err(|e| WitnessClientError::BadResponse(e.to_string()))?;
    let text = cp.note.text();
    if note.text() != text {
        return Err(WitnessClientError::BadResponse(
            "the witness has cosigned another checkpoint of this size".into(),
        ));
    }
    let sigs = select_cosignatures(text, note.signatures(), witness_key);
    if sigs.is_empty() {
        return Err(WitnessClientError::NoValidCosignature);
    }
    Ok(sigs)
}
