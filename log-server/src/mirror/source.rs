//! Where a mirror reads the log from: its C2SP static API (`checkpoint`, `tile/…`), over HTTP(S)
//! or in an object store, through one interface — the `object_store` crate, whose `HttpStore`
//! does plain GETs against any static web server and whose `AmazonS3` reads any S3-compatible
//! store. Nothing read here is trusted: the follower verifies every byte against a checkpoint
//! signed by the log's key before it stores or serves it.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};

/// A read failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The URL is not one a mirror can follow.
    #[error("--mirror-of {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object does not exist (yet, or any more: a partial tile the log deleted once full).
    #[error("{url}: not found")]
    NotFound {
        /// What was read.
        url: String,
    },
    /// Transport failure or an unexpected answer, after retries.
    #[error("{url}: {reason}")]
    Failed {
        /// What was read.
        url: String,
        /// Why.
        reason: String,
    },
}

/// How many times a transient failure is tried.
const ATTEMPTS: u32 = 4;

/// One log's static API, read-only.
#[derive(Clone, Debug)]
pub struct TileSource {
    store: Arc<dyn ObjectStore>,
    /// The object key prefix of the log's files (empty, or ending in `/`).
    prefix: String,
    /// The URL as given, for messages and `/v1/info`.
    url: String,
}

impl TileSource {
    /// The log at `url`: `http(s)://HOST[/PATH]` (its tile API) or `s3://BUCKET[/PREFIX]` (the
    /// bucket a log publishes to; endpoint, region and credentials from the AWS environment:
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP`).
    pub fn open(url: &str) -> Result<TileSource, SourceError> {
        let bad = |reason: &str| SourceError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) =
            if let Some(split) = crate::publish::split_s3_url(url) {
                let (bucket, prefix) = split.map_err(bad)?;
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| bad(&e.to_string()))?;
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                (Arc::new(store), prefix)
            } else if url.starts_with("http://") || url.starts_with("https://") {
                let options = object_store::ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(Duration::from_secs(60));
                let store = object_store::http::HttpBuilder::new()
                    .with_url(url.trim_end_matches('/'))
                    .with_client_options(options)
                    .build()
                    .map_err(|e| bad(&e.to_string()))?;
                (Arc::new(store), String::new())
            } else {
                return Err(bad("expected http(s)://… or s3://BUCKET/PREFIX"));
            };
        Ok(TileSource {
            store,
            prefix,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bytes of `path` (`checkpoint`, `tile/0/000`, …); transient failures are retried with
    /// backoff, a missing object is [`SourceError::NotFound`] at once.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let key = StorePath::from(format!("{}{path}", self.prefix));
        let url = format!("{}/{path}", self.url);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let got = match self.store.get(&key).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(b) => return Ok(b.to_vec()),
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(SourceError::NotFound { url })
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(SourceError::Failed { url, reason: last })
    }
}
