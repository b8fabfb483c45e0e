//! A stopped log's `<data>/public` folder is its C2SP static API (c2sp.org/tlog-tiles):
//! `checkpoint`, `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`. Served by a plain static
//! file server and nothing else, it is enough for the real `monitor` to verify the whole log.
//!
//! The test starts a real `log-server`, enrolls an MSP, submits claims, stops the server with
//! SIGTERM and keeps a copy of `<data>/public` (the log at size *a*, a few hundred leaves); it then
//! starts the server again on the same data folder, submits more claims and stops it again (size
//! *b*: more than one tile, so full and partial level-0 tiles and entry bundles and a level-1
//! tile). Each time the folder must hold exactly that layout, with the checkpoint the log served
//! last. The folders are served with `tower-http`'s `ServeDir` on 127.0.0.1 inside the test process,
//! and `monitor --once` runs against them with one state folder: first the copy (it catches up to
//! *a* from the entry bundles), then `<data>/public` itself (it proves *a* → *b* consistent from the
//! hash tiles, then catches up to *b*). Each run must verify the checkpoint's size and raise no
//! alert, having talked only to the static server: every request it made answered 200 there, and
//! the log-server is not running.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ledger_core::bundle::{encode_bundle, BundleItem};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::Role;
use ledger_core::key::SignerKey;
use ledger_core::testkit::{claim, test_key};
use ledger_core::tile::{entry_bundles_for_size, tiles_for_size, Tile, DATA_LEVEL, TILE_WIDTH};
use ledger_core::TreeHash;
use ledger_e2e::{
    copy_dir, mail_sii, now, wait_for, workspace_binary, KillOnDrop, Options, TestLog,
};
use tower_http::services::ServeDir;

/// Claims before the first stop: with the enrollment and the map leaves, less than one tile.
const FIRST_CLAIMS: u64 = 210;
/// Claims after the restart: the log ends between one and two tiles (256 leaves each).
const MORE_CLAIMS: u64 = 210;
/// Claims per `POST /v1/add-bundle` (several batches, so several map leaves).
const PER_BUNDLE: usize = 105;
/// How long `monitor --once` may take over a few hundred entries.
const MONITOR_DEADLINE: Duration = Duration::from_secs(120);

// -------------------------------------------------------------------------------------------------
// The static file server.
// -------------------------------------------------------------------------------------------------

/// The requests a static server answered: method, path, status.
type Seen = Arc<Mutex<Vec<(String, String, u16)>>>;

/// `ServeDir` over one folder on 127.0.0.1:0, on its own tokio runtime, recording every request.
struct StaticServer {
    addr: SocketAddr,
    seen: Seen,
    _runtime: tokio::runtime::Runtime,
}

async fn record(State(seen): State<Seen>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let resp = next.run(req).await;
    if let Ok(mut v) = seen.lock() {
        v.push((method, path, resp.status().as_u16()));
    }
    resp
}

impl StaticServer {
    fn start(root: &Path) -> StaticServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .fallback_service(ServeDir::new(root))
            .layer(axum::middleware::from_fn_with_state(seen.clone(), record));
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("static server: {e}");
            }
        });
        StaticServer {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The paths it was asked for, after asserting that every request was a GET it answered 200.
    fn paths_all_served(&self) -> Vec<String> {
        let seen = self.seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert!(
            seen.iter().all(|(m, _, s)| m == "GET" && *s == 200),
            "requests the static server did not serve: {seen:#?}"
        );
        seen.into_iter().map(|(_, p, _)| p).collect()
    }
}

// -------------------------------------------------------------------------------------------------
// The log.
// -------------------------------------------------------------------------------------------------

/// Claims `from..to` of `msp` in bundles; each must be admitted with a receipt that verifies. Then,
/// should the size be a multiple of the tile width, one more claim at a time until it is not: the
/// log must end in partial tiles. Returns the next claim number.
fn submit_claims(log: &TestLog, msp: &SignerKey, from: u64, to: u64) -> u64 {
    let t = now();
    let leaf = |i: u64| {
        claim(
            msp,
            &mail_sii("static", i),
            &format!("mimi://msp-a.example/u/{i}"),
            t,
            &[],
            None,
        )
    };
    let leaves: Vec<Vec<u8>> = (from..to).map(|i| leaf(i).bytes().to_vec()).collect();
    for chunk in leaves.chunks(PER_BUNDLE) {
        let r = log.post(
            "/v1/add-bundle",
            "application/octet-stream",
            encode_bundle(chunk).expect("bundle"),
        );
        assert_eq!(r.status, 200, "add-bundle: {}", r.text());
        let items: Vec<BundleItem> = r.json();
        assert_eq!(items.len(), chunk.len(), "one answer per leaf");
        for (leaf, item) in chunk.iter().zip(&items) {
            match item {
                BundleItem::Receipt(rc) => {
                    if let Err(e) = rc.verify(leaf, log.hash(), log.vkey()) {
                        panic!("receipt {}: {e}", rc.index);
                    }
                }
                BundleItem::Problem(p) => panic!("claim refused: {p:?}"),
            }
        }
    }
    let ends_in_partial_bundle = |size| {
        entry_bundles_for_size(size)
            .last()
            .is_some_and(Tile::is_partial)
    };
    let mut next = to;
    while !ends_in_partial_bundle(log.checkpoint().checkpoint.size) {
        log.submit_ok(&leaf(next));
        next += 1;
    }
    next
}

/// Every file below `root`, as `/`-separated paths relative to it.
fn files_below(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("below root");
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Stops the log with SIGTERM (so that its data folder is quiet) and checks that nothing answers on
/// its port any more and that `<data>/public` is the C2SP static layout of the checkpoint the log
/// served last: that checkpoint, every tile and entry bundle of its size, and nothing else (no key,
/// no token, no database file). Returns the checkpoint.
fn stop_and_check_public(log: &mut TestLog) -> SignedCheckpoint {
    let live = log.checkpoint();
    let size = live.checkpoint.size;
    let status = log.sigterm();
    assert!(
        status.success(),
        "log-server after SIGTERM: {status}; output:\n{}",
        log.output()
    );
    assert!(!log.is_running());
    assert!(
        TcpStream::connect_timeout(&log.addr(), Duration::from_secs(2)).is_err(),
        "something still listens on the stopped log's address {}",
        log.addr()
    );

    let public = log.data_dir().join("public");
    let checkpoint = public.join("checkpoint");
    assert!(
        checkpoint.is_file(),
        "{} does not exist: the stopped log left no static copy of its API in {}",
        checkpoint.display(),
        public.display()
    );
    let note = std::fs::read(&checkpoint).expect("read public/checkpoint");
    let stored = log.verify_checkpoint(&note);
    assert_eq!(stored.checkpoint.size, size, "public/checkpoint size");
    assert_eq!(
        stored.checkpoint.root, live.checkpoint.root,
        "public/checkpoint root"
    );
    for t in tiles_for_size(size)
        .iter()
        .chain(&entry_bundles_for_size(size))
    {
        assert!(
            public.join(t.path()).is_file(),
            "public/{} is missing (size {size})",
            t.path()
        );
    }
    for file in files_below(&public) {
        assert!(
            file == "checkpoint" || Tile::parse_path(&file).is_ok(),
            "public/{file} is neither the checkpoint nor a tile or entry bundle"
        );
    }
    stored
}

// -------------------------------------------------------------------------------------------------
// The monitor.
// -------------------------------------------------------------------------------------------------

/// A monitor with one state folder and a file sink, run against one URL at a time.
struct Monitor {
    dir: tempfile::TempDir,
}

impl Monitor {
    fn new() -> Monitor {
        Monitor {
            dir: tempfile::Builder::new()
                .prefix("static-tiles-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `monitor --once` against the tiles at `url` (no watches, every rule's default, every
    /// alert to the file sink) within [`MONITOR_DEADLINE`]; panics unless it exits 0. Returns its
    /// stderr.
    fn once(&self, url: &str, log: &TestLog) -> String {
        let config = self.path("monitor.toml");
        std::fs::write(
            &config,
            format!(
                "poll_interval_s = 1\n\n[[log]]\nurl = {url:?}\norigin = {:?}\nvkey = {:?}\n\
                 hash = {:?}\n\n[[sink]]\ntype = \"file\"\npath = {:?}\n",
                log.options().origin,
                log.vkey().to_string(),
                log.hash().name(),
                self.path("alerts.jsonl").display().to_string(),
            ),
        )
        .expect("write monitor.toml");
        let stderr_path = self.path("monitor.stderr");
        let mut child = KillOnDrop(
            Command::new(workspace_binary("monitor", "monitor", "monitor"))
                .arg("--config")
                .arg(&config)
                .arg("--state")
                .arg(self.path("state"))
                .args(["--once", "--no-progress"])
                .env("LEDGER_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&stderr_path).expect("create monitor.stderr"))
                .spawn()
                .expect("spawn monitor"),
        );
        let status = wait_for(MONITOR_DEADLINE, "monitor --once to exit", || {
            child.0.try_wait().expect("wait for monitor")
        });
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert!(
            status.success(),
            "monitor --once against {url}: {status}\n{stderr}"
        );
        stderr
    }

    /// The alert lines in the file sink.
    fn alerts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("alerts.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line {l:?}: {e}")))
            .collect()
    }
}

/// Asserts that a run's `stderr` says it caught up `entries` entries and verified the checkpoint
/// of `size`, and that no alert was raised at all (in particular no `bad-entry`, `root-mismatch`,
/// `bad-map-root`, `bad-checkpoint-signature` or `inconsistent-checkpoint`).
#[track_caller]
fn assert_verified(monitor: &Monitor, stderr: &str, entries: u64, size: u64) {
    assert!(
        stderr.contains(&format!("caught up {entries} entries")),
        "the monitor did not catch up {entries} entries:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("verified checkpoint")
            && l.split_whitespace().any(|w| w == format!("size={size}"))),
        "the monitor did not verify the checkpoint of size {size}:\n{stderr}"
    );
    let alerts = monitor.alerts();
    assert!(alerts.is_empty(), "alerts: {alerts:#?}\nstderr:\n{stderr}");
}

// -------------------------------------------------------------------------------------------------
// The test.
// -------------------------------------------------------------------------------------------------

#[test]
fn a_monitor_verifies_a_stopped_log_from_its_public_folder_on_a_static_file_server() {
    let mut log = TestLog::start(Options::new(TreeHash::Sha256));
    let msp = test_key("msp-a.example");
    log.enroll(Role::Msp, &msp);

    // Size a: stopped, and its public folder copied aside (the log will write on in its own).
    let next = submit_claims(&log, &msp, 0, FIRST_CLAIMS);
    let first = stop_and_check_public(&mut log).checkpoint;
    let copy = tempfile::Builder::new()
        .prefix("static-tiles-public-")
        .tempdir()
        .expect("temp dir");
    copy_dir(&log.data_dir().join("public"), copy.path());

    // Size b: started again on the same data folder, more claims, stopped.
    let opts = log.options().clone();
    if let Err(e) = log.try_start_with(&opts) {
        panic!("restart: {}:\n{}", e.status, e.output);
    }
    submit_claims(&log, &msp, next, next + MORE_CLAIMS);
    let second = stop_and_check_public(&mut log).checkpoint;
    let (a, b) = (first.size, second.size);
    assert!(
        a < b && b > u64::from(TILE_WIDTH),
        "sizes {a} and {b}: the log grew past one tile"
    );
    let tiles = tiles_for_size(b);
    let bundles = entry_bundles_for_size(b);
    let full_and_partial = |level: u8, of: &[Tile]| {
        let at: Vec<&Tile> = of.iter().filter(|t| t.level == level).collect();
        at.iter().any(|t| !t.is_partial()) && at.iter().any(|t| t.is_partial())
    };
    assert!(full_and_partial(0, &tiles), "level-0 tiles: {tiles:?}");
    assert!(
        full_and_partial(DATA_LEVEL, &bundles),
        "bundles: {bundles:?}"
    );
    assert!(
        tiles.iter().any(|t| t.level == 1),
        "a level-1 tile: {tiles:?}"
    );

    // The monitor, from nothing to a, against the copy: checkpoint and entry bundles.
    let monitor = Monitor::new();
    let server = StaticServer::start(copy.path());
    let stderr = monitor.once(&server.url(), &log);
    assert_verified(&monitor, &stderr, a, a);
    let paths = server.paths_all_served();
    assert!(paths.iter().any(|p| p == "/checkpoint"), "{paths:#?}");
    for t in entry_bundles_for_size(a) {
        let want = format!("/{}", t.path());
        assert!(paths.contains(&want), "{want} not read: {paths:#?}");
    }
    drop(server);

    // From a to b against <data>/public itself: a consistency proof from the hash tiles, then the
    // new entries.
    let server = StaticServer::start(&log.data_dir().join("public"));
    let stderr = monitor.once(&server.url(), &log);
    assert_verified(&monitor, &stderr, b - a, b);
    assert!(
        !stderr.contains("no consistency proof from tiles"),
        "the hash tiles did not prove {a} -> {b}:\n{stderr}"
    );
    let paths = server.paths_all_served();
    assert!(paths.iter().any(|p| p == "/checkpoint"), "{paths:#?}");
    let hash_tiles: Vec<&String> = paths
        .iter()
        .filter(|p| {
            p.strip_prefix('/')
                .and_then(|p| Tile::parse_path(p).ok())
                .is_some_and(|t| !t.is_data())
        })
        .collect();
    assert!(!hash_tiles.is_empty(), "no hash tile read: {paths:#?}");
    let last_bundle = bundles.last().expect("an entry bundle");
    let want = format!("/{}", last_bundle.path());
    assert!(paths.contains(&want), "{want} not read: {paths:#?}");
}
