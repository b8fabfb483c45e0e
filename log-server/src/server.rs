//! Wiring: data folder, store, keys, ledger, sequencer, HTTP(S) listener, graceful shutdown.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use ledger_core::key::SignerKey;
use tokio::sync::watch;

use crate::admission::AdmissionPool;
use crate::config::{Config, MirrorConfig, DEFAULT_ORIGIN};
use crate::keys::{load_or_create_signer, load_or_create_token};
use crate::ledger::{Ledger, Safeguards};
use crate::metrics::Metrics;
use crate::routes::{router, AppState, Writer};
use crate::sequencer;
use crate::storage::tiled::{TiledStorage, INDEX_DIR};
use crate::storage::Storage;

/// How long a clean shutdown waits for the object-storage publisher to catch up.
const PUBLISH_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// An opened log with its running sequencer, ready to serve.
pub struct Opened {
    /// The handler state (ledger, sequencer handle, key, admin token).
    pub state: AppState,
    /// Tells the sequencer to stop.
    pub stop: watch::Sender<bool>,
    /// The sequencer task.
    pub task: tokio::task::JoinHandle<()>,
    /// The object-storage publisher's state, with `--publish` (started by [`run`]).
    pub publish: Option<Arc<crate::publish::PublishStatus>>,
}

/// The file whose presence says the store was created compressed: the index must be told before
/// it opens (each table is written with the choice), so the choice cannot live in its meta.
const COMPRESSED_MARKER: &str = "store.lz4";

/// Whether the store is (to be) compressed: fixed when the store is created, like origin and hash.
fn store_compression(config: &Config) -> anyhow::Result<bool> {
    let marker = config.data.join(COMPRESSED_MARKER);
    if !config.data.join(INDEX_DIR).exists() {
        let compress = config.compress.unwrap_or(false);
        if compress {
            std::fs::write(&marker, "lz4\n")
                .with_context(|| format!("writing {}", marker.display()))?;
        } else if marker.exists() {
            std::fs::remove_file(&marker)
                .with_context(|| format!("removing {}", marker.display()))?;
        }
        return Ok(compress);
    }
    let stored = marker.exists();
    match config.compress {
        Some(given) if given != stored => bail!(
            "this log's store was created {}; that cannot be changed (omit --compress, or use another --data folder)",
            if stored { "compressed" } else { "uncompressed" }
        ),
        _ => Ok(stored),
    }
}

/// Creates the data folder (mode 0700) if needed, opens the store, loads or creates the log key and
/// admin token, opens the ledger (creating or checking origin and hash, and checking the store
/// against the checkpoint lock) and starts the sequencer.
///
/// Nothing is opened on a disk below its free-space floor (so a full disk leaves the store as it
/// was), the leftovers of a start interrupted by a full disk are removed first, and a store so
/// damaged that the index panics while reading it is reported as damaged instead of crashing.
pub fn open(config: &Config) -> anyhow::Result<Opened> {
    create_data_dir(&config.data)?;
    if let Err(low) = crate::disk::check_free(&config.data, config.min_free_bytes) {
        bail!(
            "{low}: the store was not opened and nothing was changed; free space on that disk \
             (or lower --min-free-mb) and start again"
        );
    }
    let lock = crate::lock::read(&config.checkpoint_lock)?;
    let compress = store_compression(config)?;
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        open_ledger(config, compress, lock)
    }));
    let (ledger, signer) = match opened {
        Ok(r) => r?,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            bail!(
                "the store in {} is damaged: reading it failed inside the index ({what}). The log does \
                 not start; restore the data folder from a backup that holds every entry of the \
                 checkpoint in {}",
                config.data.join(INDEX_DIR).display(),
                config.checkpoint_lock.display()
            );
        }
    };
    start(config, ledger, signer)
}

/// Opens the store and the ledger over it (see [`open`]); may panic inside the index on a damaged store.
fn open_ledger(
    config: &Config,
    compress: bool,
    lock: Option<Vec<u8>>,
) -> anyhow::Result<(Arc<Ledger>, Arc<SignerKey>)> {
    let storage = TiledStorage::open(&config.data, config.cache_bytes, compress)
        .with_context(|| format!("opening the store in {}", config.data.display()))?;
    let storage: Arc<dyn Storage> = Arc::new(storage);

    let stored = storage.meta().context("reading the log's meta")?;
    let origin = match (&stored, &config.origin) {
        (Some(meta), Some(given)) if &meta.origin != given => bail!(
            "this log was created with origin {:?}; it cannot be changed to {:?} (omit --origin, or use another --data folder)",
            meta.origin,
            given
        ),
        (Some(meta), _) => meta.origin.clone(),
        (None, Some(given)) => given.clone(),
        (None, None) => DEFAULT_ORIGIN.to_string(),
    };
    if let (Some(meta), Some(given)) = (&stored, config.hash) {
        if meta.hash != given {
            bail!(
                "this log was created with tree hash {}; it cannot be changed to {} (omit --hash, or use another --data folder)",
                meta.hash,
                given
            );
        }
    }
    // A key is generated only for a new log: an existing log whose key file is missing must not
    // silently get another identity.
    let create_key = !config.key_given && stored.is_none();
    let (signer, created) =
        load_or_create_signer(&config.key, &origin, create_key).with_context(|| match &stored {
            Some(meta) => format!("this log was created with verifier key {}", meta.vkey),
            None => "the log signer key".to_string(),
        })?;
    if created {
        tracing::info!(path = %config.key.display(), "created the log signer key");
    }
    let metrics = Arc::new(Metrics::default());
    let guards = Safeguards {
        lock: Some((config.checkpoint_lock.clone(), lock)),
        allow_new_tree: config.allow_new_tree,
        adopt_store: config.adopt_store,
        disk: Some((config.data.clone(), config.min_free_bytes)),
    };
    let ledger = Ledger::open(
        storage,
        &signer,
        config.hash,
        config.policy,
        metrics,
        guards,
    )?;
    Ok((Arc::new(ledger), Arc::new(signer)))
}

/// Loads the admin token, starts the witness collector and the sequencer over an opened ledger.
fn start(config: &Config, ledger: Arc<Ledger>, signer: Arc<SignerKey>) -> anyhow::Result<Opened> {
    let (token, created) =
        load_or_create_token(&config.admin_token_file, !config.admin_token_given)?;
    if created {
        tracing::info!(path = %config.admin_token_file.display(), "created the admin token");
    }
    let (stop, stop_rx) = watch::channel(false);
    // Witnesses: the collector cosigns each durable head after the sequencer published it; with
    // none configured it does not run and the sequencer answers at once.
    let cosigner = if config.witness.witnesses.is_empty() {
        None
    } else {
        ledger.set_witnesses(crate::ledger::WitnessInfo {
            keys: config
                .witness
                .witnesses
                .iter()
                .map(|w| w.vkey.to_string())
                .collect(),
            quorum: config.witness.quorum,
        });
        let (handle, _task) = crate::witness::spawn(Arc::clone(&ledger), config.witness.clone());
        Some(handle)
    };
    let publish = config.publish.as_ref().map(|p| {
        let status = crate::publish::PublishStatus::new(p.clone(), ledger.head().size);
        let _ = ledger.metrics.publish.set(Arc::clone(&status));
        status
    });
    let (handle, task) = sequencer::spawn_with_publisher(
        Arc::clone(&ledger),
        Arc::clone(&signer),
        config.batch,
        stop_rx,
        cosigner,
        publish.clone(),
    )
    .map_err(|e| anyhow::anyhow!("starting the sequencer: {e}"))?;
    tracing::info!(
        origin = ledger.origin(),
        hash = %ledger.tree_hash(),
        size = ledger.head().size,
        vkey = %ledger.vkey(),
        "log opened"
    );
    let lookup_guard =
        crate::tokens::LookupGuard::open(&config.lookup, &config.data, ledger.origin())
            .context("setting up the lookup guard (--require-token)")?;
    Ok(Opened {
        state: AppState {
            ledger,
            writer: Some(Writer {
                sequencer: handle,
                signer,
                admin_token: token.into(),
                pool: AdmissionPool::per_cpu("admission")
                    .context("starting the admission threads")?,
            }),
            mirror: None,
            rate_limiter: config.rate_limit.map(crate::ratelimit::RateLimiter::new),
            lookup_guard,
        },
        stop,
        task,
        publish,
    })
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data folder {}", dir.display()))
}

/// Prints the two start-up lines on stdout (and flushes): `vkey <verifier key>`, then
/// `listening on <addr>` with the real port — what scripts and tests wait for.
pub fn announce(vkey: &str, addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "vkey {vkey}");
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// A running DP mirror ([`crate::mirror`]): its handler state and its follower thread.
pub struct OpenedMirror {
    /// The handler state (no writer; the follower's status and shards).
    pub state: AppState,
    /// The follower thread.
    pub follower: std::thread::JoinHandle<()>,
}

/// Opens a DP mirror's data folder and starts its follower: the trust file and the source are
/// checked first, so a wrong one stops the start with a message.
pub fn open_mirror(config: &Config, m: &MirrorConfig) -> anyhow::Result<OpenedMirror> {
    use crate::mirror::{follow::Follower, source::TileSource, Running, Shards, Status};
    let trust = crate::mirror::load_trust(&m.trust)?;
    let source = TileSource::open(&m.source)?;
    create_data_dir(&config.data)?;
    if let Err(low) = crate::disk::check_free(&config.data, config.min_free_bytes) {
        bail!("{low}: the mirror's store was not opened; free space on that disk (or lower --min-free-mb) and start again");
    }
    let storage = TiledStorage::open(&config.data, config.cache_bytes, false)
        .with_context(|| format!("opening the store in {}", config.data.display()))?;
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let metrics = Arc::new(Metrics::default());
    let (ledger, target) = Ledger::open_mirror(
        storage,
        &trust.log_key,
        trust.hash,
        metrics,
        Some((config.data.clone(), config.min_free_bytes)),
    )
    .with_context(|| format!("opening the mirror's store in {}", config.data.display()))?;
    if let Some(cp) = &target {
        tracing::warn!(
            stored = ledger.storage().head().ok().flatten().map_or(0, |(s, _)| s),
            target = cp.checkpoint.size,
            "the last span was not finished (a crash while storing it): serving nothing until it is verified again"
        );
    }
    ledger.set_witnesses(crate::ledger::WitnessInfo {
        keys: trust.witnesses.iter().map(|w| w.to_string()).collect(),
        quorum: trust.quorum,
    });
    let ledger = Arc::new(ledger);
    let shards = Shards::new(&m.shards);
    let status = Arc::new(Status::new(&m.source, &m.shards, m.alerts.clone()));
    let follower = Follower::new(
        Arc::clone(&ledger),
        source,
        trust,
        shards.clone(),
        Arc::clone(&status),
    )?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = m.poll;
    let flag = Arc::clone(&stop);
    let follower = std::thread::Builder::new()
        .name("mirror-follower".into())
        .spawn(move || follower.run(poll, &flag))
        .context("starting the mirror's follower")?;
    tracing::info!(
        origin = ledger.origin(),
        of = %m.source,
        size = ledger.head().size,
        serving = ledger.serving(),
        shards = ?m.shards,
        "mirror opened"
    );
    let lookup_guard =
        crate::tokens::LookupGuard::open(&config.lookup, &config.data, ledger.origin())
            .context("setting up the lookup guard (--require-token)")?;
    Ok(OpenedMirror {
        state: AppState {
            ledger,
            writer: None,
            mirror: Some(Running {
                status,
                shards,
                stop,
            }),
            rate_limiter: None,
            lookup_guard,
        },
        follower,
    })
}

/// Runs a mirror until SIGTERM/SIGINT (see [`open_mirror`]).
async fn run_mirror(config: &Config, m: &MirrorConfig) -> anyhow::Result<()> {
    let opened = open_mirror(config, m)?;
    let ledger = Arc::clone(&opened.state.ledger);
    let stop = opened.state.mirror.as_ref().map(|r| Arc::clone(&r.stop));
    let app = crate::gateway::attach(router(opened.state.clone()), &config.data, &config.ohttp)
        .context("the OHTTP gateway keys")?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    announce(&ledger.vkey().to_string(), addr);
    tracing::info!(%addr, "serving (mirror)");
    ledger_serve::serve(
        listener,
        app,
        config.limits,
        None,
        ledger_serve::shutdown_signal(),
    )
    .await
    .context("serving")?;
    if let Some(stop) = stop {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let follower = opened.follower;
    let _ = tokio::task::spawn_blocking(move || follower.join()).await;
    ledger
        .storage()
        .flush()
        .context("syncing the store at shutdown")?;
    tracing::info!(size = ledger.head().size, "mirror stopped cleanly");
    Ok(())
}

/// Runs the server until SIGTERM/SIGINT: opens the log, listens (HTTP or HTTPS), drains in-flight
/// requests on shutdown, commits what the sequencer still holds and syncs the store.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if let Some(m) = &config.mirror {
        return run_mirror(&config, m).await;
    }
    let opened = open(&config)?;
    let ledger = Arc::clone(&opened.state.ledger);
    // Before anyone can submit: no witness may have cosigned more than the store holds.
    if !config.witness.witnesses.is_empty() {
        crate::witness::check_not_behind(&ledger, &config.witness).await?;
    }
    // Before anyone can submit: the bucket is this log's to publish to (or free, and claimed).
    if let (Some(status), Some(writer)) = (&opened.publish, &opened.state.writer) {
        crate::publish::start(
            Arc::clone(status),
            &config.data,
            Arc::clone(&ledger),
            Arc::clone(&writer.signer),
        )
        .await?;
    }
    let app = crate::gateway::attach(router(opened.state.clone()), &config.data, &config.ohttp)
        .context("the OHTTP gateway keys")?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let vkey = ledger.vkey().to_string();

    // Loaded before announcing, so that a bad certificate or key stops the start with a message.
    let tls = match &config.tls {
        None => None,
        Some(tls) => Some(
            ledger_serve::tls_config(&tls.cert, &tls.key).with_context(|| {
                format!(
                    "loading TLS certificate {} and key {}",
                    tls.cert.display(),
                    tls.key.display()
                )
            })?,
        ),
    };
    announce(&vkey, addr);
    tracing::info!(%addr, https = tls.is_some(), "serving");
    // Timeouts, the connection cap, problem+json refusals and the drain: see ledger-serve. The
    // rate limiter gets the peer address from ConnectInfo, which it provides.
    ledger_serve::serve(
        listener,
        app,
        config.limits,
        tls,
        ledger_serve::shutdown_signal(),
    )
    .await
    .context("serving")?;

    // The listener is closed and requests are drained: stop the sequencer (it commits what it
    // still holds), then sync the store.
    let _ = opened.stop.send(true);
    drop(opened.state);
    if let Err(e) = opened.task.await {
        tracing::error!(error = %e, "sequencer task failed");
    }
    ledger
        .storage()
        .flush()
        .context("syncing the store at shutdown")?;
    if let Some(status) = &opened.publish {
        // Give the bucket a moment to catch up with the last batches (a restart resumes anyway).
        let size = ledger.head().size;
        if tokio::time::timeout(PUBLISH_DRAIN, status.wait_published(size))
            .await
            .is_err()
        {
            tracing::warn!(
                published = status.published(),
                size,
                "the bucket had not caught up at shutdown; the next start resumes from it"
            );
        }
    }
    tracing::info!(size = ledger.head().size, "stopped cleanly");
    Ok(())
}
