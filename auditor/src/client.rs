//! The reads the auditor makes from logs and peers (`/checkpoint`, `/v1/proof/consistency`,
//! gossip), with bounded bodies. (The client a *log* uses to ask for cosignatures is the log's own,
//! in `log-server`; both speak `ledger_core::witness`.)

use ledger_core::api::ConsistencyProof;
use ledger_core::Hash;

use ledger_serve::client::read_limited;
pub use ledger_serve::client::{http_client, MAX_RESPONSE_BYTES};

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
