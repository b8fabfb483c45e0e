//! Publishing the static tlog-tiles layout to object storage (`--publish s3://BUCKET/PREFIX`), so
//! that clients and mirrors can read the bucket as a static log, without this server.
//!
//! Why it is shaped this way:
//!
//! - **One writer per bucket prefix.** The bucket's `PREFIX/checkpoint` object decides who
//!   publishes there. It is only ever written with a conditional put: `If-None-Match: *` for the
//!   first one (the *claim*, the log's checkpoint of the empty tree, written before any tile, so a
//!   log that loses the race has uploaded nothing), then `If-Match` the ETag of the checkpoint this
//!   process wrote last. At start the bucket's checkpoint must be signed by this log's key with this
//!   origin and be a prefix of the local tree (size ≤ local size, same root at its size), else the
//!   log refuses to start ([`start`]). A conditional write failing later (another process wrote)
//!   stops the publisher for good ([`State::Refused`]); the log goes on sequencing locally. Two logs
//!   (other keys) against one prefix thus end with exactly one publishing: the first claim wins and
//!   the second sees a checkpoint it did not sign.
//! - **Tiles before the checkpoint.** Every hash tile and entry bundle a new checkpoint needs is
//!   uploaded (unconditionally: a tile's content is fixed by the log's tree at its position) before
//!   the checkpoint that covers it, so the bucket's checkpoint always has its tiles. Full tiles are
//!   uploaded once; partial ones as they change.
//! - **Never blocks sequencing beyond a bounded backlog.** The uploads run in their own task. Heads
//!   are coalesced: each round uploads what changed from the last published size to the newest
//!   head (plus the partial tiles of the heads in between that are still partial, so the bucket
//!   holds every file the local `public/` folder holds). The sequencer only waits
//!   ([`PublishStatus::wait_for_room`]) when more than `--publish-max-lag` entries are unpublished.
//! - **Restart resumes.** The bucket's checkpoint says how far the bucket is (its tiles were
//!   uploaded before it), so a restart continues from it; a small state file in the data folder
//!   ([`STATE_FILE`], written crash-safely) records the published size and ETag for operators
//!   and to notice a bucket that went backwards.
//! - **Transient errors are retried** with exponential backoff, forever; they never stop the log.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::key::SignerKey;
use ledger_core::tile::{new_tiles, tile_width_at, Tile, DATA_LEVEL, TILE_WIDTH};
use ledger_core::tree::tree_root;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::ledger::{sign_checkpoint, Ledger};

/// Default of `--publish-max-lag`: entries the bucket may be behind the local tree before the
/// sequencer waits for the publisher. 65,536 entries is 256 full entry bundles — a few seconds of
/// uploads at full speed, minutes of the log's peak write rate.
pub const DEFAULT_MAX_LAG: u64 = 65_536;
/// Uploads in flight at once.
pub const UPLOAD_CONCURRENCY: usize = 8;
/// The publisher's state file in the data folder.
pub const STATE_FILE: &str = "publish-state.json";
/// How long start may retry reading the bucket before it gives up (the log does not start).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two retries of a failed upload.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often the publisher looks at the head without being woken (cosigned checkpoints).
const TICK: Duration = Duration::from_secs(1);

/// Where to publish: `s3://BUCKET/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishConfig {
    /// The target as given.
    pub url: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Unpublished entries allowed before the sequencer waits (`--publish-max-lag`).
    pub max_lag: u64,
}

/// Why publishing cannot start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The `--publish` value is not `s3://BUCKET[/PREFIX]`.
    #[error("--publish {url:?}: {reason}")]
    BadTarget {
        /// The value.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The object store client could not be set up, or answered with an error.
    #[error("{url}: {source}")]
    Store {
        /// The target.
        url: String,
        /// The error.
        source: object_store::Error,
    },
    /// The bucket holds another log's checkpoint (or one this log cannot continue).
    #[error("refusing to publish to {url}: {reason}")]
    Refused {
        /// The target.
        url: String,
        /// Whose checkpoint is there and what to do.
        reason: String,
    },
    /// The local tree could not be read.
    #[error("reading the local tree: {0}")]
    Local(String),
    /// The state file could not be written.
    #[error("the publish state file {path}: {error}")]
    State {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// The bucket and the prefix (no leading or trailing `/`, possibly empty) of `s3://BUCKET[/PREFIX]`:
/// `None` for another scheme, an error for an empty bucket name. The publisher and DP mirrors
/// read the same URLs.
pub fn split_s3_url(url: &str) -> Option<Result<(String, String), &'static str>> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Some(Err("the bucket name is empty"));
    }
    Some(Ok((
        bucket.to_string(),
        prefix.trim_matches('/').to_string(),
    )))
}

impl PublishConfig {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str, max_lag: u64) -> Result<PublishConfig, PublishError> {
        let bad = |reason: &str| PublishError::BadTarget {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (bucket, prefix) = split_s3_url(url)
            .ok_or_else(|| bad("only s3://BUCKET/PREFIX targets are supported"))?
            .map_err(bad)?;
        if !prefix.is_empty() {
            ObjectPath::parse(&prefix).map_err(|e| bad(&format!("bad prefix: {e}")))?;
        }
        if max_lag == 0 {
            return Err(bad("--publish-max-lag must be at least 1"));
        }
        Ok(PublishConfig {
            url: url.to_string(),
            bucket: bucket.to_string(),
            prefix,
            max_lag,
        })
    }

    /// The object key of `path` (a tlog-tiles path such as `checkpoint` or `tile/0/000`).
    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// `s3://BUCKET/PREFIX/path`, for messages.
    fn object_url(&self, path: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(path))
    }
}

/// What the publisher is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Checking the bucket at start.
    Starting,
    /// Publishing (the bucket is up to date or catching up).
    Publishing,
    /// The last upload failed and is being retried.
    Retrying(String),
    /// Stopped for good: another writer changed the bucket's checkpoint.
    Refused(String),
}

/// The publisher as `/v1/info` shows it (its `publish` object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishInfo {
    /// The target, `s3://BUCKET/PREFIX`.
    pub target: String,
    /// The size of the bucket's checkpoint (as this process last wrote or read it).
    pub published_size: u64,
    /// Entries of the local tree not yet in the bucket.
    pub lag_entries: u64,
    /// Age of the oldest head not yet in the bucket, in seconds.
    pub lag_seconds: f64,
    /// `starting`, `publishing`, `retrying` or `refused`.
    pub state: String,
    /// Why it is retrying or refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

/// The publisher's shared state: progress, metrics, the sequencer's backpressure and wake-ups.
#[derive(Debug)]
pub struct PublishStatus {
    config: PublishConfig,
    state: Mutex<State>,
    /// (published size, stopped): what [`PublishStatus::wait_for_room`] waits on.
    progress: watch::Sender<(u64, bool)>,
    /// The local head size the sequencer last reported.
    head: AtomicU64,
    /// Heads not yet published (size, when sequenced), oldest first.
    heads: Mutex<VecDeque<(u64, Instant)>>,
    wake: Notify,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    upload_errors: AtomicU64,
    checkpoints: AtomicU64,
    backpressure_waits: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl PublishStatus {
    /// A publisher for `config`, in state [`State::Starting`], at `head` local entries.
    pub fn new(config: PublishConfig, head: u64) -> Arc<PublishStatus> {
        Arc::new(PublishStatus {
            config,
            state: Mutex::new(State::Starting),
            progress: watch::channel((0, false)).0,
            head: AtomicU64::new(head),
            heads: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            uploads: AtomicU64::new(0),
            upload_bytes: AtomicU64::new(0),
            upload_errors: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            backpressure_waits: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    /// The target.
    pub fn config(&self) -> &PublishConfig {
        &self.config
    }

    /// What it is doing.
    pub fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_state(&self, s: State) {
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A refusal is final.
        if !matches!(*g, State::Refused(_)) {
            *g = s;
        }
    }

    fn refused(&self) -> bool {
        matches!(self.state(), State::Refused(_))
    }

    /// The size of the bucket's checkpoint.
    pub fn published(&self) -> u64 {
        self.progress.borrow().0
    }

    /// Called by the sequencer with each new durable head's size: wakes the publisher.
    pub fn head(&self, size: u64) {
        self.head.fetch_max(size, Ordering::Relaxed);
        if !self.refused() {
            self.heads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push_back((size, Instant::now()));
        }
        self.wake.notify_one();
    }

    /// Waits while the local tree of `size` entries is more than `max_lag` entries ahead of the
    /// bucket (returns at once while starting, or once the publisher stopped).
    pub async fn wait_for_room(&self, size: u64) {
        let max = self.config.max_lag;
        if size.saturating_sub(self.published()) <= max
            || !matches!(self.state(), State::Publishing | State::Retrying(_))
        {
            return;
        }
        self.backpressure_waits.fetch_add(1, Ordering::Relaxed);
        // Warn once per minute at most (a stalled bucket makes every batch wait).
        let warn = {
            let mut last = self
                .last_warning
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if warn {
            tracing::warn!(
                size,
                published = self.published(),
                max_lag = max,
                "the bucket is too far behind; sequencing waits for the publisher"
            );
        }
        let mut rx = self.progress.subscribe();
        let _ = rx
            .wait_for(|(published, stopped)| *stopped || size.saturating_sub(*published) <= max)
            .await;
    }

    /// Waits until the bucket holds `size` entries (or the publisher stopped, or never started).
    pub async fn wait_published(&self, size: u64) {
        if matches!(self.state(), State::Starting) {
            return;
        }
        let mut rx = self.progress.subscribe();
        let _ = rx
            .wait_for(|(published, stopped)| *stopped || *published >= size)
            .await;
    }

    fn set_published(&self, size: u64) {
        self.progress.send_modify(|p| p.0 = size);
        let mut heads = self
            .heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while heads.front().is_some_and(|(s, _)| *s <= size) {
            heads.pop_front();
        }
    }

    fn stop(&self, reason: String) {
        self.set_state(State::Refused(reason));
        self.heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.progress.send_modify(|p| p.1 = true);
    }

    /// Sizes of the unpublished heads in `(from, to)`.
    fn heads_between(&self, from: u64, to: u64) -> Vec<u64> {
        self.heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s > from && *s < to)
            .collect()
    }

    fn lag_entries(&self) -> u64 {
        self.head
            .load(Ordering::Relaxed)
            .saturating_sub(self.published())
    }

    fn lag_seconds(&self) -> f64 {
        self.heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .front()
            .map(|(_, t)| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// The `publish` object of `/v1/info`.
    pub fn info(&self) -> PublishInfo {
        let (state, error) = match self.state() {
            State::Starting => ("starting", None),
            State::Publishing => ("publishing", None),
            State::Retrying(e) => ("retrying", Some(e)),
            State::Refused(e) => ("refused", Some(e)),
        };
        PublishInfo {
            target: self.config.url.clone(),
            published_size: self.published(),
            lag_entries: self.lag_entries(),
            lag_seconds: self.lag_seconds(),
            state: state.to_string(),
            error,
        }
    }

    /// Appends the publisher's metrics to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let mut gauge = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            "ledger_publish_published_size",
            "Tree size of the checkpoint in the publish bucket.",
            "gauge",
            self.published().to_string(),
        );
        gauge(
            "ledger_publish_lag_entries",
            "Entries of the local tree not yet published to the bucket.",
            "gauge",
            self.lag_entries().to_string(),
        );
        gauge(
            "ledger_publish_lag_seconds",
            "Age of the oldest head not yet published to the bucket (0 when up to date).",
            "gauge",
            format!("{:.3}", self.lag_seconds()),
        );
        gauge(
            "ledger_publish_refused",
            "1 once the publisher stopped because another writer changed the bucket's checkpoint.",
            "gauge",
            u64::from(self.refused()).to_string(),
        );
        gauge(
            "ledger_publish_uploads_total",
            "Objects (tiles, bundles, checkpoints) uploaded to the bucket.",
            "counter",
            self.uploads.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "ledger_publish_upload_bytes_total",
            "Bytes uploaded to the bucket.",
            "counter",
            self.upload_bytes.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "ledger_publish_upload_errors_total",
            "Failed uploads to the bucket (each is retried).",
            "counter",
            self.upload_errors.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "ledger_publish_checkpoints_total",
            "Checkpoints written to the bucket.",
            "counter",
            self.checkpoints.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "ledger_publish_backpressure_waits_total",
            "Times the sequencer waited because the bucket was more than --publish-max-lag behind.",
            "counter",
            self.backpressure_waits.load(Ordering::Relaxed).to_string(),
        );
    }
}

/// The state file: what this process last published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SavedState {
    target: String,
    published_size: u64,
    etag: Option<String>,
}

fn read_state(path: &Path) -> Option<SavedState> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the state file crash-safely: temporary file, fsync, rename, fsync of the folder.
fn write_state(path: &Path, state: &SavedState) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A short description of a checkpoint object: whose it is and how large.
fn describe(bytes: &[u8]) -> String {
    match SignedCheckpoint::parse(bytes) {
        Ok(cp) => {
            let signers: Vec<String> = cp
                .note
                .signatures()
                .iter()
                .map(|s| format!("{}+{}", s.name, ledger_core::key::key_id_hex(&s.key_id)))
                .collect();
            format!(
                "a checkpoint of origin {:?} at size {}, signed by {}",
                cp.checkpoint.origin,
                cp.checkpoint.size,
                signers.join(", ")
            )
        }
        Err(e) => format!("{} bytes that are not a checkpoint ({e})", bytes.len()),
    }
}

fn is_conflict(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }
    )
}

/// The running publisher's connection and position.
struct Publisher {
    status: Arc<PublishStatus>,
    store: Arc<dyn ObjectStore>,
    ledger: Arc<Ledger>,
    state_path: PathBuf,
    /// The size of the bucket's checkpoint.
    published: u64,
    /// Its bytes (as this process wrote or read them).
    bytes: Vec<u8>,
    /// Its ETag.
    etag: Option<String>,
}

/// Reads the bucket's checkpoint: its bytes and ETag, or `None` when there is none.
async fn get_checkpoint(
    store: &dyn ObjectStore,
    key: &ObjectPath,
) -> Result<Option<(Vec<u8>, Option<String>)>, object_store::Error> {
    match store.get(key).await {
        Ok(r) => {
            let etag = r.meta.e_tag.clone();
            Ok(Some((r.bytes().await?.to_vec(), etag)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks that the bucket's checkpoint `bytes` is this log's and a prefix of the local tree;
/// returns its size.
fn check_theirs(bytes: &[u8], ledger: &Ledger, config: &PublishConfig) -> Result<u64, String> {
    let what = describe(bytes);
    let here = format!(
        "this log is origin {:?} with key {}",
        ledger.origin(),
        ledger.vkey()
    );
    let other = format!(
        "Publish this log under another prefix (--publish s3://{}/OTHER), or, if the log that \
         wrote it is retired, remove its objects under s3://{}/{} first",
        config.bucket, config.bucket, config.prefix
    );
    let cp = SignedCheckpoint::verify(bytes, ledger.vkey()).map_err(|e| {
        format!(
            "{} holds {what}, not signed by this log's key ({e}); {here}. {other}",
            config.object_url("checkpoint")
        )
    })?;
    if cp.checkpoint.origin != ledger.origin() {
        return Err(format!(
            "{} holds {what}, of another origin; {here}. {other}",
            config.object_url("checkpoint")
        ));
    }
    let local = ledger.head().size;
    if cp.checkpoint.size > local {
        return Err(format!(
            "{} holds {what}, beyond this data folder's {local} entries: this data folder is \
             behind what was published. Restore it from a backup holding at least {} entries \
             (or point --data at the folder that published them)",
            config.object_url("checkpoint"),
            cp.checkpoint.size
        ));
    }
    let root = tree_root(ledger.tree_hash(), cp.checkpoint.size, &ledger.reader())
        .map_err(|e| format!("reading the local root at size {}: {e}", cp.checkpoint.size))?;
    if root != cp.checkpoint.root {
        return Err(format!(
            "{} holds {what}, whose root differs from this log's tree at that size (a fork \
             under this key); {here}. Find out which tree is the real one before publishing",
            config.object_url("checkpoint")
        ));
    }
    Ok(cp.checkpoint.size)
}

/// Connects to the bucket and checks (or claims) its checkpoint, then starts the publishing task.
/// An error means the log must not start: the bucket holds another log's checkpoint, one this log
/// cannot continue, or it could not be read within 30 s.
pub async fn start(
    status: Arc<PublishStatus>,
    data: &Path,
    ledger: Arc<Ledger>,
    signer: Arc<SignerKey>,
) -> Result<tokio::task::JoinHandle<()>, PublishError> {
    let config = status.config.clone();
    let store_err = |source| PublishError::Store {
        url: config.url.clone(),
        source,
    };
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .build()
            .map_err(store_err)?,
    );
    let key = ObjectPath::from(config.key("checkpoint"));
    let state_path = data.join(STATE_FILE);
    let saved = read_state(&state_path).filter(|s| s.target == config.url);

    let deadline = Instant::now() + START_TIMEOUT;
    let mut backoff = Duration::from_millis(200);
    let mut claimed = false;
    let (published, bytes, etag) = loop {
        let found = match get_checkpoint(store.as_ref(), &key).await {
            Ok(f) => f,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, target = %config.url, "reading the bucket's checkpoint; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(store_err(e)),
        };
        match found {
            Some((bytes, etag)) => {
                let size = check_theirs(&bytes, &ledger, &config).map_err(|reason| {
                    PublishError::Refused {
                        url: config.url.clone(),
                        reason,
                    }
                })?;
                break (size, bytes, etag);
            }
            None if claimed => {
                return Err(PublishError::Refused {
                    url: config.url.clone(),
                    reason: "the checkpoint object vanished right after it was claimed".into(),
                })
            }
            None => {
                // Claim the prefix with the checkpoint of the empty tree, before any tile.
                let (_, cp0) = sign_checkpoint(&signer, 0, ledger.tree_hash().empty_root())
                    .map_err(|e| PublishError::Local(e.to_string()))?;
                let put = store
                    .put_opts(
                        &key,
                        PutPayload::from(cp0.clone().into_bytes()),
                        PutOptions::from(PutMode::Create),
                    )
                    .await;
                match put {
                    Ok(r) => {
                        tracing::info!(target = %config.url, "claimed the bucket prefix (wrote the empty tree's checkpoint)");
                        break (0, cp0.into_bytes(), r.e_tag);
                    }
                    // Someone else claimed it meanwhile (or an earlier attempt of ours landed):
                    // read it again and judge it.
                    Err(e) if is_conflict(&e) => claimed = true,
                    Err(e) if Instant::now() < deadline => {
                        tracing::warn!(error = %e, target = %config.url, "claiming the bucket prefix; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => return Err(store_err(e)),
                }
            }
        }
    };
    if let Some(s) = &saved {
        if s.published_size > published {
            tracing::warn!(
                target = %config.url,
                state_file = s.published_size,
                bucket = published,
                "the bucket's checkpoint is older than the one this log last published there (restored or rolled back?); publishing again from the bucket's size"
            );
        } else if s.etag != etag {
            tracing::info!(target = %config.url, size = published, "the bucket's checkpoint is not the one the state file names (a crash after the write?); it is this log's, continuing from it");
        }
    }
    let state = SavedState {
        target: config.url.clone(),
        published_size: published,
        etag: etag.clone(),
    };
    write_state(&state_path, &state).map_err(|error| PublishError::State {
        path: state_path.clone(),
        error,
    })?;
    status.set_published(published);
    status.set_state(State::Publishing);
    tracing::info!(target = %config.url, published, local = ledger.head().size, "publishing to object storage");
    let publisher = Publisher {
        status,
        store,
        ledger,
        state_path,
        published,
        bytes,
        etag,
    };
    Ok(tokio::spawn(publisher.run()))
}

impl Publisher {
    async fn run(mut self) {
        loop {
            let head = self.ledger.head();
            if head.checkpoint.as_bytes() != self.bytes.as_slice() && head.size >= self.published {
                if let Err(reason) = self.publish(head).await {
                    tracing::error!(target = %self.status.config.url, "{reason}");
                    self.status.stop(reason);
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = self.status.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// The tiles and bundles to upload for going from the published size to `size`.
    fn tiles(&self, size: u64) -> BTreeSet<Tile> {
        let mut set = BTreeSet::new();
        let mut add = |t: Tile| {
            set.insert(t);
            if t.level == 0 {
                set.insert(Tile {
                    level: DATA_LEVEL,
                    ..t
                });
            }
        };
        for t in new_tiles(self.published, size) {
            add(t);
        }
        // The partial tiles of the coalesced heads in between that are still partial at `size`
        // (the local layout keeps them until their tile is full).
        let mut prev = self.published;
        for mid in self.status.heads_between(self.published, size) {
            for t in new_tiles(prev, mid) {
                if t.width < TILE_WIDTH && tile_width_at(t.level, t.index, size) < TILE_WIDTH {
                    add(t);
                }
            }
            prev = mid;
        }
        set
    }

    /// Uploads what the bucket lacks for `head`, then its checkpoint. `Err` means another writer
    /// changed the bucket's checkpoint: publishing stops.
    async fn publish(&mut self, head: Arc<crate::ledger::Head>) -> Result<(), String> {
        let tiles: Vec<Tile> = self.tiles(head.size).into_iter().collect();
        for chunk in tiles.chunks(UPLOAD_CONCURRENCY) {
            let uploads = chunk.iter().map(|t| {
                let t = *t;
                let status = Arc::clone(&self.status);
                let store = Arc::clone(&self.store);
                let ledger = Arc::clone(&self.ledger);
                tokio::spawn(async move { upload_tile(&status, store.as_ref(), &ledger, t).await })
            });
            let handles: Vec<_> = uploads.collect();
            for h in handles {
                if let Err(e) = h.await {
                    return Err(format!("an upload task failed: {e}"));
                }
            }
        }
        self.put_checkpoint(head.checkpoint.as_bytes()).await?;
        self.published = head.size;
        self.bytes = head.checkpoint.as_bytes().to_vec();
        self.status.set_published(head.size);
        self.status.set_state(State::Publishing);
        let state = SavedState {
            target: self.status.config.url.clone(),
            published_size: self.published,
            etag: self.etag.clone(),
        };
        let path = self.state_path.clone();
        match tokio::task::spawn_blocking(move || write_state(&path, &state)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, path = %self.state_path.display(), "writing the publish state file")
            }
            Err(e) => tracing::warn!(error = %e, "writing the publish state file"),
        }
        Ok(())
    }

    /// Writes the checkpoint with `If-Match` the last ETag, retrying transient errors.
    async fn put_checkpoint(&mut self, bytes: &[u8]) -> Result<(), String> {
        let config = self.status.config.clone();
        let key = ObjectPath::from(config.key("checkpoint"));
        let mut backoff = Duration::from_millis(100);
        loop {
            let mode = PutMode::Update(UpdateVersion {
                e_tag: self.etag.clone(),
                version: None,
            });
            let put = self
                .store
                .put_opts(
                    &key,
                    PutPayload::from(bytes.to_vec()),
                    PutOptions::from(mode),
                )
                .await;
            let e = match put {
                Ok(r) => {
                    self.etag = r.e_tag;
                    self.status.uploads.fetch_add(1, Ordering::Relaxed);
                    self.status.checkpoints.fetch_add(1, Ordering::Relaxed);
                    self.status
                        .upload_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => e,
            };
            self.status.upload_errors.fetch_add(1, Ordering::Relaxed);
            if is_conflict(&e) {
                // Our own write may have landed with its answer lost (a retried request then
                // fails its precondition): the object holds exactly our bytes in that case.
                match get_checkpoint(self.store.as_ref(), &key).await {
                    Ok(Some((now, etag))) if now == bytes => {
                        self.etag = etag;
                        return Ok(());
                    }
                    Ok(found) => {
                        let what = found
                            .map(|(b, _)| describe(&b))
                            .unwrap_or_else(|| "nothing".into());
                        return Err(format!(
                            "stopped publishing: the conditional write of {} failed because \
                             another writer changed it (it now holds {what}); this log goes on \
                             sequencing locally but no longer publishes there. Find out which \
                             process writes to that prefix, stop one of them, and restart this \
                             log",
                            config.object_url("checkpoint")
                        ));
                    }
                    Err(read) => {
                        self.status
                            .set_state(State::Retrying(format!("reading the checkpoint: {read}")));
                    }
                }
            } else {
                tracing::warn!(error = %e, target = %config.url, "writing the checkpoint; retrying");
                self.status
                    .set_state(State::Retrying(format!("writing the checkpoint: {e}")));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Uploads one tile or bundle, retrying (with backoff) until it is stored.
async fn upload_tile(
    status: &PublishStatus,
    store: &dyn ObjectStore,
    ledger: &Arc<Ledger>,
    t: Tile,
) {
    let path = t.path();
    let key = ObjectPath::from(status.config.key(&path));
    let mut backoff = Duration::from_millis(100);
    loop {
        let l = Arc::clone(ledger);
        let data = match tokio::task::spawn_blocking(move || l.storage().tile(&t)).await {
            Ok(Ok(d)) => Some(d),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, tile = %path, "reading a tile to publish; retrying");
                status.set_state(State::Retrying(format!("reading {path}: {e}")));
                None
            }
            Err(e) => {
                status.set_state(State::Retrying(format!("reading {path}: {e}")));
                None
            }
        };
        if let Some(data) = data {
            let len = data.len() as u64;
            match store.put(&key, PutPayload::from(data)).await {
                Ok(_) => {
                    status.uploads.fetch_add(1, Ordering::Relaxed);
                    status.upload_bytes.fetch_add(len, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    status.upload_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, tile = %path, "uploading a tile; retrying");
                    status.set_state(State::Retrying(format!("uploading {path}: {e}")));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let c = PublishConfig::parse("s3://b/some/prefix/", 10).expect("parses");
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("b", "some/prefix"));
        assert_eq!(c.key("checkpoint"), "some/prefix/checkpoint");
        let c = PublishConfig::parse("s3://b", 10).expect("parses");
        assert_eq!(c.key("tile/0/000"), "tile/0/000");
        assert!(PublishConfig::parse("https://b/p", 10).is_err());
        assert!(PublishConfig::parse("s3:///p", 10).is_err());
        assert!(PublishConfig::parse("s3://b/p", 0).is_err());
    }

    #[test]
    fn state_file_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(STATE_FILE);
        let s = SavedState {
            target: "s3://b/p".into(),
            published_size: 42,
            etag: Some("\"abc\"".into()),
        };
        write_state(&path, &s).expect("write");
        assert_eq!(read_state(&path), Some(s));
    }
}
