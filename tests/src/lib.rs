//! Harness for end-to-end tests over the real binaries.
//!
//! [`TestLog::start`] runs the real `log-server` binary on `127.0.0.1:0` with a fresh temporary data
//! folder, learns its port from the `listening on <addr>` line it prints, and polls `/healthz` with a
//! deadline (never a bare sleep). The handle kills the server on drop, can `kill -9` it, restart it on
//! the same data folder, or stop it with SIGTERM. The HTTP helpers speak SPEC §5 and hand back the
//! `ledger_core::api` wire types, and [`TestLog::verify_tree`] recomputes a checkpoint's root from the
//! C2SP tiles and entry bundles, twice, independently.
//!
//! Everything here panics on failure, with the server's output attached: it is test support.
//!
//! The server gets none of the test's `LEDGER_*` variables. Knobs for debugging:
//! `LEDGER_E2E_LOG_SERVER=<path>` tests that binary (no build); `LEDGER_E2E_SEED=<n>` replays a
//! random schedule (each test prints its seed); `LEDGER_E2E_ECHO=1` echoes the server's output
//! live; `LEDGER_E2E_LOG=<filter>` sets the server's `LEDGER_LOG` filter.
//!
//! The test doubles and start-up helpers the crates' tests share (a static C2SP tile server, a
//! lying Discovery Provider, the identity prover, polling with a deadline) are in [`doubles`].

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ledger_core::api::{
    ConsistencyProof, EntriesPage, InclusionProof, Info, LookupAnswer, Problem, Receipt,
};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Leaf, Role};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::tile::{
    decode_entry_bundle, entry_bundles_for_size, tiles_for_size, Tile, TileHashReader,
};
use ledger_core::tree::{tree_root, verify_consistency, MemoryHashStore};
use ledger_core::{Hash, TreeHash};
use serde::de::DeserializeOwned;

pub use ledger_core;

pub mod doubles;
pub use doubles::{
    idprover_binary, publish, publish_leaves, read_request_head, wait_for, Files, IdProver,
    KillOnDrop, LyingDp, RequestHead, TileServer,
};

/// How long a server may take to print its address and answer `/healthz`.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to drain and exit.
pub const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// The default origin of test logs.
pub const TEST_ORIGIN: &str = "e2e.example/log";
/// The problem type URI prefix of SPEC §5.
pub const PROBLEM_PREFIX: &str = "urn:mimi-ledger:problem:";

// ---------------------------------------------------------------------------------------------
// Locating (and building) the binary.
// ---------------------------------------------------------------------------------------------

/// The `log-server` binary of this workspace, built when needed, once per test process.
///
/// `cargo test --workspace` builds it already (it is a bin target of a selected package), but
/// `cargo test -p ledger-e2e` does not, and a stale binary would test old code. So when the binary
/// in this test binary's target folder and profile is missing, or older than any source of
/// `log-server` or `ledger-core`, the first call runs `cargo build -p log-server --bin log-server`
/// there. (Not unconditionally: a `-p log-server` build unifies features differently from a
/// workspace build, so it would rebuild hyper, axum and the server for nothing in CI.)
/// `LEDGER_E2E_LOG_SERVER=<path>` uses that binary instead and never builds.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_and_build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot get the log-server binary: {e}"),
    }
}

fn locate_and_build() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LEDGER_E2E_LOG_SERVER") {
        return Ok(PathBuf::from(p));
    }
    build_workspace_binary("log-server", "log-server", "log-server")
}

/// The newest modification time of a file, or of any file below a folder.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

// ---------------------------------------------------------------------------------------------
// Options and the server handle.
// ---------------------------------------------------------------------------------------------

/// How to start a test log.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--hash`.
    pub hash: TreeHash,
    /// `--origin`.
    pub origin: String,
    /// `--require-attestation`.
    pub require_attestation: bool,
    /// `--max-skew` (seconds), when set.
    pub max_skew_s: Option<u64>,
    /// Further flags, verbatim.
    pub extra_args: Vec<String>,
}

impl Options {
    /// A log with tree hash `hash`, origin [`TEST_ORIGIN`], default policy.
    pub fn new(hash: TreeHash) -> Options {
        Options {
            hash,
            origin: TEST_ORIGIN.to_string(),
            require_attestation: false,
            max_skew_s: None,
            extra_args: Vec::new(),
        }
    }

    /// Sets `--origin`.
    pub fn origin(mut self, origin: &str) -> Options {
        self.origin = origin.to_string();
        self
    }

    /// Sets `--require-attestation`.
    pub fn require_attestation(mut self) -> Options {
        self.require_attestation = true;
        self
    }

    /// Sets `--max-skew`.
    pub fn max_skew(mut self, seconds: u64) -> Options {
        self.max_skew_s = Some(seconds);
        self
    }

    /// Adds a flag (and value) verbatim.
    pub fn arg(mut self, a: &str) -> Options {
        self.extra_args.push(a.to_string());
        self
    }

    fn args(&self, data: &Path) -> Vec<String> {
        let mut v = vec![
            "--data".to_string(),
            data.display().to_string(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--origin".to_string(),
            self.origin.clone(),
            "--hash".to_string(),
            self.hash.name().to_string(),
        ];
        if self.require_attestation {
            v.push("--require-attestation".to_string());
        }
        if let Some(s) = self.max_skew_s {
            v.push("--max-skew".to_string());
            v.push(s.to_string());
        }
        v.extend(self.extra_args.iter().cloned());
        v
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new(TreeHash::Blake3)
    }
}

/// Lines the server printed, shared with the reader threads.
type Output = Arc<Mutex<Vec<String>>>;

/// A running (or stopped) `log-server` over a temporary data folder.
pub struct TestLog {
    dir: tempfile::TempDir,
    opts: Options,
    child: Option<Child>,
    addr: SocketAddr,
    output: Output,
    http: reqwest::blocking::Client,
    vkey: Option<VerifierKey>,
    starts: u32,
}

/// The outcome of a run that was expected to exit on its own.
#[derive(Debug)]
pub struct Exited {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything it printed (stdout and stderr lines).
    pub output: String,
}

impl TestLog {
    /// Starts a new log in a fresh temporary folder; panics (with the server's output) when it does
    /// not come up within [`START_DEADLINE`].
    pub fn start(opts: Options) -> TestLog {
        let mut log = TestLog::stopped(opts);
        log.spawn();
        log
    }

    /// A log over a fresh temporary folder that is not started yet (start it with
    /// [`TestLog::try_start_with`] or [`TestLog::restart`]).
    pub fn stopped(opts: Options) -> TestLog {
        let dir = tempfile::Builder::new()
            .prefix("ledger-e2e-")
            .tempdir()
            .expect("create temp dir");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        TestLog {
            dir,
            opts,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output: Arc::new(Mutex::new(Vec::new())),
            http,
            vkey: None,
            starts: 0,
        }
    }

    /// The log's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The options it runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn command(&self, opts: &Options) -> Command {
        let mut cmd = Command::new(server_binary());
        cmd.args(opts.args(&self.data_dir()));
        // The server reads LEDGER_* variables; the test's environment must not leak into it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LEDGER_") {
                cmd.env_remove(k);
            }
        }
        // The server's log filter is `LEDGER_LOG`; `LEDGER_E2E_LOG` sets it for debugging.
        if let Some(filter) = std::env::var_os("LEDGER_E2E_LOG") {
            cmd.env("LEDGER_LOG", filter);
        }
        cmd.env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&mut self) {
        let opts = self.opts.clone();
        self.spawn_with(&opts);
    }

    fn spawn_with(&mut self, opts: &Options) {
        if let Err(exited) = self.try_spawn_with(opts) {
            panic!(
                "log-server exited ({}) before printing `listening on`; output:\n{}",
                exited.status,
                self.output()
            );
        }
    }

    /// Starts the server on this log's data folder with `opts` and waits until it is healthy, or
    /// returns how it exited when it exits before listening (e.g. refusing a damaged store). The
    /// log must be stopped first.
    pub fn try_start_with(&mut self, opts: &Options) -> Result<(), Exited> {
        self.try_spawn_with(opts)
    }

    fn try_spawn_with(&mut self, opts: &Options) -> Result<(), Exited> {
        assert!(self.child.is_none(), "spawn while a server is running");
        self.starts += 1;
        let start = self.starts;
        push_line(
            &self.output,
            format!("=== start #{start}: {:?}", opts.args(&self.data_dir())),
        );
        let first_line = self.output.lock().map(|v| v.len()).unwrap_or(0);
        let mut child = self.command(opts).spawn().expect("spawn log-server");
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pipe_lines(out, format!("{start}|out"), self.output.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(err, format!("{start}|err"), self.output.clone(), tx);
        }
        let exited = |status: ExitStatus, output: &Output| Exited {
            status,
            output: output
                .lock()
                .map(|v| v.get(first_line..).unwrap_or_default().join("\n"))
                .unwrap_or_default(),
        };
        let deadline = Instant::now() + START_DEADLINE;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Both pipes closed: the process is exiting.
                    match wait_deadline(&mut child, Duration::from_secs(10)) {
                        Some(status) => return Err(exited(status, &self.output)),
                        None => {
                            let _ = child.kill();
                            let _ = child.wait();
                            panic!(
                                "log-server closed its output but did not exit; output:\n{}",
                                self.output()
                            );
                        }
                    }
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Give the reader threads a moment to collect the last lines.
                let _ = rx.recv_timeout(Duration::from_millis(200));
                return Err(exited(status, &self.output));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "log-server did not print `listening on <addr>` within {START_DEADLINE:?}; output:\n{}",
                    self.output()
                );
            }
        };
        self.addr = addr;
        self.child = Some(child);
        self.wait_healthy(deadline);
        if self.vkey.is_none() {
            let vkey = self.read_vkey_file();
            // Issue 3: the first start logs the verifier key (the server prints `vkey <key>` on
            // stdout before `listening on`, so it is already captured).
            assert!(
                self.output().contains(&vkey.to_string()),
                "the server did not print its verifier key {vkey}; output:\n{}",
                self.output()
            );
            self.vkey = Some(vkey);
        }
        Ok(())
    }

    fn wait_healthy(&mut self, deadline: Instant) {
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url())).send() {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "log-server exited ({status}) before /healthz answered 200; output:\n{}",
                        self.output()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "/healthz did not answer 200 within {START_DEADLINE:?}; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read_vkey_file(&self) -> VerifierKey {
        // `--key FILE` among the extra flags names the key; else it is created in the data folder.
        let args = &self.opts.extra_args;
        let path = args
            .iter()
            .position(|a| a == "--key")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| self.data_dir().join("log.key"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}; output:\n{}", path.display(), self.output()));
        let key = SignerKey::parse(text.trim())
            .unwrap_or_else(|e| panic!("{} is not a signer key: {e}", path.display()));
        assert_eq!(
            key.name(),
            self.opts.origin,
            "log.key is named after the origin"
        );
        key.verifier()
    }

    /// `http://127.0.0.1:<port>` of the running server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The admin bearer token the server created (`<data>/admin.token`).
    pub fn admin_token(&self) -> String {
        let path = self.data_dir().join("admin.token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// The log's verifier key, from the `<data>/log.key` the server created.
    pub fn vkey(&self) -> &VerifierKey {
        self.vkey.as_ref().expect("vkey is read at first start")
    }

    /// The tree hash the log was started with.
    pub fn hash(&self) -> TreeHash {
        self.opts.hash
    }

    /// Everything the server printed so far, one line per line, each tagged `<start>|out` or
    /// `<start>|err`.
    pub fn output(&self) -> String {
        self.output.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// Whether a server process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
            push_line(&self.output, "=== killed with SIGKILL".to_string());
        }
    }

    /// Sends SIGTERM and waits (up to [`STOP_DEADLINE`]) for the server to exit; returns its status.
    /// Panics (after a SIGKILL) if it does not exit in time.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("sigterm: no running server");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        match wait_deadline(&mut child, STOP_DEADLINE) {
            Some(status) => {
                push_line(&self.output, format!("=== exited after SIGTERM: {status}"));
                status
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "log-server did not exit within {STOP_DEADLINE:?} of SIGTERM; output:\n{}",
                    self.output()
                );
            }
        }
    }

    /// Starts the server again on the same data folder with the same options (killing it first with
    /// SIGKILL if it still runs). The port changes.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs the binary on this log's data folder with `opts` and expects it to exit by itself
    /// (e.g. refusing a changed origin) within `deadline`; returns its status and output. Panics if
    /// it is still running then (after killing it). The log must be stopped first.
    pub fn run_expecting_exit(&mut self, opts: &Options, deadline: Duration) -> Exited {
        assert!(self.child.is_none(), "stop the log first");
        let mut child = self.command(opts).spawn().expect("spawn log-server");
        let mut out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let status = match wait_deadline(&mut child, deadline) {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let output = format!(
                    "{}{}",
                    t_out.join().unwrap_or_default(),
                    t_err.join().unwrap_or_default()
                );
                panic!(
                    "log-server {:?} kept running; output:\n{output}",
                    opts.args(&self.data_dir())
                );
            }
        };
        let output = format!(
            "{}{}",
            t_out.join().unwrap_or_default(),
            t_err.join().unwrap_or_default()
        );
        push_line(
            &self.output,
            format!("=== one-off run exited {status}: {output}"),
        );
        Exited { status, output }
    }

    // -----------------------------------------------------------------------------------------
    // HTTP.
    // -----------------------------------------------------------------------------------------

    /// The shared blocking HTTP client.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// `GET <path>` (path includes the query); panics on transport errors.
    pub fn get(&self, path: &str) -> Response {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; output:\n{}", self.output()))
    }

    /// `GET <path>`, with transport errors returned (for tests that kill the server).
    pub fn try_get(&self, path: &str) -> Result<Response, reqwest::Error> {
        Response::from(self.http.get(format!("{}{path}", self.url())).send()?)
    }

    /// `POST <path>` with a body and content type; panics on transport errors.
    pub fn post(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        let body = body.into();
        self.http
            .post(format!("{}{path}", self.url()))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .and_then(Response::from)
            .unwrap_or_else(|e| panic!("POST {path}: {e}; output:\n{}", self.output()))
    }

    /// `POST /v1/add` with `text/plain`; the raw response.
    pub fn add_raw(&self, body: impl Into<Vec<u8>>) -> Response {
        self.post("/v1/add", "text/plain", body)
    }

    /// Submits a leaf; `Ok(receipt)` on 200, else the refusal.
    pub fn submit(&self, leaf: &[u8]) -> Result<Receipt, Box<Response>> {
        let r = self.add_raw(leaf.to_vec());
        if r.status == 200 {
            Ok(r.json())
        } else {
            Err(Box::new(r))
        }
    }

    /// Submits a leaf that must be admitted, and checks its receipt (leaf hash, inclusion proof
    /// against a checkpoint signed by the log key). Returns the receipt.
    pub fn submit_ok(&self, leaf: &Leaf) -> Receipt {
        let receipt = self.submit(leaf.bytes()).unwrap_or_else(|r| {
            panic!(
                "submission refused: {} {}\nleaf:\n{}",
                r.status,
                r.text(),
                String::from_utf8_lossy(leaf.bytes())
            )
        });
        if let Err(e) = receipt.verify(leaf.bytes(), self.hash(), self.vkey()) {
            panic!("receipt for index {} does not verify: {e}", receipt.index);
        }
        receipt
    }

    /// `POST /v1/admin/enroll` with the admin token; the raw response.
    pub fn enroll_raw(&self, role: Role, key: &VerifierKey) -> Response {
        let body = serde_json::json!({
            "role": role.as_str(),
            "name": key.name(),
            "key": key.to_string(),
        });
        self.post_admin(
            "/v1/admin/enroll",
            Some(&self.admin_token()),
            body.to_string(),
        )
    }

    /// `POST` JSON to an admin route with an optional bearer token.
    pub fn post_admin(&self, path: &str, token: Option<&str>, json: String) -> Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        if let Some(t) = token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.send()
            .and_then(Response::from)
            .unwrap_or_else(|e| panic!("POST {path}: {e}; output:\n{}", self.output()))
    }

    /// Enrolls `key` with `role`; panics unless 200. Returns the enroll leaf's index when the answer
    /// names one.
    pub fn enroll(&self, role: Role, key: &SignerKey) -> Option<u64> {
        let r = self.enroll_raw(role, &key.verifier());
        assert_eq!(
            r.status,
            200,
            "enroll {} as {}: {}",
            key.name(),
            role.as_str(),
            r.text()
        );
        let v: serde_json::Value = r.json();
        v.get("index").and_then(serde_json::Value::as_u64)
    }

    /// Sends `head` (request line and headers, without the final empty line) and then `body` on a
    /// raw TCP connection, without finishing whatever the headers promise, and reads the answer
    /// (for requests a well-behaved client cannot send: bodies that never end, lying lengths).
    pub fn raw_request(&self, head: &str, body: &[u8]) -> Response {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let mut req = format!("{head}\r\nHost: {}\r\n\r\n", self.addr).into_bytes();
        req.extend_from_slice(body);
        // The server may answer and close before it has read everything: ignore write errors.
        let _ = s.write_all(&req);
        let _ = s.flush();
        parse_http_response(&mut s).unwrap_or_else(|e| panic!("raw {head:?}: {e}"))
    }

    /// `GET /v1/info`.
    pub fn info(&self) -> Info {
        let r = self.get("/v1/info");
        assert_eq!(r.status, 200, "/v1/info: {}", r.text());
        r.json()
    }

    /// `GET /checkpoint`, verified with the log key.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        let r = self.get("/checkpoint");
        assert_eq!(r.status, 200, "/checkpoint: {}", r.text());
        self.verify_checkpoint(&r.body)
    }

    /// Verifies checkpoint note bytes with the log key and checks the origin.
    pub fn verify_checkpoint(&self, bytes: &[u8]) -> SignedCheckpoint {
        let cp = SignedCheckpoint::verify(bytes, self.vkey()).unwrap_or_else(|e| {
            panic!(
                "checkpoint does not verify: {e}:\n{}",
                String::from_utf8_lossy(bytes)
            )
        });
        assert_eq!(cp.checkpoint.origin, self.opts.origin, "checkpoint origin");
        cp
    }

    /// `GET /v1/entries?start=&count=`.
    pub fn entries(&self, start: u64, count: u64) -> EntriesPage {
        let r = self.get(&format!("/v1/entries?start={start}&count={count}"));
        assert_eq!(
            r.status,
            200,
            "/v1/entries start={start} count={count}: {}",
            r.text()
        );
        r.json()
    }

    /// All leaves `0..size`, paging `/v1/entries` by up to 1000 (following short pages).
    pub fn all_entries(&self, size: u64) -> Vec<String> {
        let mut out = Vec::with_capacity(size as usize);
        while (out.len() as u64) < size {
            let start = out.len() as u64;
            let page = self.entries(start, (size - start).min(1000));
            assert!(
                !page.entries.is_empty(),
                "/v1/entries start={start} returned no entry"
            );
            for (i, e) in page.entries.into_iter().enumerate() {
                assert_eq!(e.index, start + i as u64, "/v1/entries index order");
                if e.index < size {
                    out.push(e.leaf);
                }
            }
        }
        out
    }

    /// `GET /v1/proof/inclusion?index=&size=`.
    pub fn inclusion(&self, index: u64, size: u64) -> InclusionProof {
        let r = self.get(&format!("/v1/proof/inclusion?index={index}&size={size}"));
        assert_eq!(
            r.status,
            200,
            "inclusion index={index} size={size}: {}",
            r.text()
        );
        r.json()
    }

    /// `GET /v1/proof/consistency?from=&to=`.
    pub fn consistency(&self, from: u64, to: u64) -> ConsistencyProof {
        let r = self.get(&format!("/v1/proof/consistency?from={from}&to={to}"));
        assert_eq!(
            r.status,
            200,
            "consistency from={from} to={to}: {}",
            r.text()
        );
        r.json()
    }

    /// Checks with `/v1/proof/consistency` that `old` is a prefix of `new` (equal sizes: equal
    /// roots). Panics with both checkpoints otherwise.
    pub fn assert_consistent(&self, old: &SignedCheckpoint, new: &SignedCheckpoint) {
        let (o, n) = (&old.checkpoint, &new.checkpoint);
        assert!(
            o.size <= n.size,
            "checkpoint size went back from {} to {}",
            o.size,
            n.size
        );
        if o.size == n.size {
            assert_eq!(
                o.root, n.root,
                "two checkpoints of size {} with different roots",
                o.size
            );
            return;
        }
        if o.size == 0 {
            assert_eq!(o.root, self.hash().empty_root(), "size-0 checkpoint root");
            return;
        }
        let p = self.consistency(o.size, n.size);
        assert_eq!((p.from, p.to), (o.size, n.size), "consistency answer sizes");
        if let Err(e) = verify_consistency(
            self.hash(),
            o.size,
            n.size,
            &o.root,
            &n.root,
            &p.consistency,
        ) {
            panic!(
                "consistency proof {} -> {} does not verify: {e}",
                o.size, n.size
            );
        }
    }

    /// `GET /v1/lookup?sii=<sii>` (URL-encoded); the raw response.
    pub fn lookup_raw(&self, sii: &str) -> Response {
        self.get(&format!("/v1/lookup?sii={}", url_encode(sii)))
    }

    /// `GET /v1/lookup`, which must answer 200.
    pub fn lookup(&self, sii: &str) -> LookupAnswer {
        let r = self.lookup_raw(sii);
        assert_eq!(r.status, 200, "/v1/lookup {sii}: {}", r.text());
        r.json()
    }

    /// `GET` a tile or entry bundle; the raw response.
    pub fn tile_raw(&self, tile: &Tile) -> Response {
        self.get(&format!("/{}", tile.path()))
    }

    /// `GET` a tile or entry bundle, which must answer 200.
    pub fn tile(&self, tile: &Tile) -> Vec<u8> {
        let r = self.tile_raw(tile);
        assert_eq!(r.status, 200, "GET /{}: {}", tile.path(), r.text());
        r.body
    }

    /// Downloads every entry bundle and hash tile of the tree of `cp`'s size and checks, against the
    /// verified checkpoint:
    /// 1. each bundle holds exactly `width` entries, and their leaf hashes equal the level-0 tiles;
    /// 2. the root of the leaves (hashed here, in memory) equals the checkpoint's root;
    /// 3. the root recomputed from the hash tiles alone (`TileHashReader` + `tree_root`) equals it.
    ///
    /// Returns the leaves in index order. The log must not have grown past a partial tile since
    /// `cp` (call it on a quiet log, or with `cp` = the current checkpoint).
    pub fn verify_tree(&self, cp: &SignedCheckpoint) -> Vec<Vec<u8>> {
        let th = self.hash();
        let size = cp.checkpoint.size;
        let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(size as usize);
        for bundle in entry_bundles_for_size(size) {
            let data = self.tile(&bundle);
            let entries = decode_entry_bundle(&data)
                .unwrap_or_else(|e| panic!("/{}: bad entry bundle: {e}", bundle.path()));
            assert_eq!(
                entries.len(),
                usize::from(bundle.width),
                "/{} entry count",
                bundle.path()
            );
            leaves.extend(entries);
        }
        assert_eq!(leaves.len() as u64, size, "leaves in the entry bundles");

        let mut store = MemoryHashStore::new(th);
        for leaf in &leaves {
            store.append_leaf(leaf);
        }
        assert_eq!(
            store.root(),
            cp.checkpoint.root,
            "root of the entry bundles' leaves differs from the checkpoint's (size {size})"
        );

        let mut reader = TileHashReader::new(th);
        for tile in tiles_for_size(size) {
            let data = self.tile(&tile);
            assert_eq!(data.len(), tile.hash_data_len(), "/{} length", tile.path());
            if tile.level == 0 {
                let first = tile.index * 256;
                for (i, chunk) in data.chunks(32).enumerate() {
                    let leaf = &leaves[(first as usize) + i];
                    assert_eq!(
                        chunk,
                        th.leaf_hash(leaf).as_slice(),
                        "/{} hash {i} is not the leaf hash of entry {}",
                        tile.path(),
                        first as usize + i
                    );
                }
            }
            reader
                .insert(tile, data)
                .unwrap_or_else(|e| panic!("/{}: {e}", tile.path()));
        }
        let from_tiles =
            tree_root(th, size, &reader).unwrap_or_else(|e| panic!("root from tiles: {e}"));
        assert_eq!(
            from_tiles, cp.checkpoint.root,
            "root from the hash tiles differs (size {size})"
        );
        leaves
    }
}

impl Drop for TestLog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- log-server output ({}):\n{}",
                self.data_dir().display(),
                self.output()
            );
        }
    }
}

fn push_line(output: &Output, line: String) {
    if let Ok(mut v) = output.lock() {
        v.push(line);
    }
}

/// Copies lines of a child's pipe into `output`, and sends the address of a `listening on` line.
fn pipe_lines(
    pipe: impl Read + Send + 'static,
    tag: String,
    output: Output,
    tx: mpsc::Sender<SocketAddr>,
) {
    std::thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            let line = strip_ansi(&String::from_utf8_lossy(&line));
            if let Some(addr) = parse_listening(&line) {
                let _ = tx.send(addr);
            }
            if std::env::var_os("LEDGER_E2E_ECHO").is_some() {
                eprintln!("[{tag}] {line}");
            }
            push_line(&output, format!("[{tag}] {line}"));
        }
    });
}

/// Finds `listening on <addr>` (optionally `http(s)://<addr>`) in a log line, text or JSON.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let at = line.find("listening on")?;
    let rest = line[at + "listening on".len()..].trim_start_matches([' ', ':', '=', '"']);
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))
        .unwrap_or(rest);
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c2 in chars.by_ref() {
                    if c2.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn wait_deadline(child: &mut Child, d: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + d;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

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
    fn from(r: reqwest::blocking::Response) -> Result<Response, reqwest::Error> {
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
fn parse_http_response(r: &mut impl Read) -> Result<Response, String> {
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

fn dechunk(mut data: &[u8]) -> Vec<u8> {
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

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

/// The current Unix time in seconds (the core's one clock).
pub use ledger_core::time::now_unix as now;

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A hash as standard base64.
pub fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// A hash as base64url with padding.
pub fn b64url(h: &Hash) -> String {
    URL_SAFE.encode(h)
}

/// A hash as base64url without padding.
pub fn b64url_nopad(h: &Hash) -> String {
    URL_SAFE_NO_PAD.encode(h)
}

/// A distinct, valid `mailto:` SII per number (bulk tests).
pub fn mail_sii(tag: &str, i: u64) -> String {
    format!("mailto:{tag}{i}@example.com")
}

/// A small deterministic PRNG (xorshift64*), so that random schedules are reproducible from the
/// printed seed (`LEDGER_E2E_SEED` overrides it).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `LEDGER_E2E_SEED` or the clock; prints the seed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("LEDGER_E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{what}: LEDGER_E2E_SEED={seed}");
        Rng::new(seed)
    }

    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
}

/// Signs arbitrary note text with `key` (for hand-made, possibly invalid, entries).
pub fn sign_text(text: &str, key: &SignerKey) -> Vec<u8> {
    let mut note = ledger_core::note::Note::new(text).expect("note text");
    note.sign(key).expect("sign note");
    note.to_bytes()
}

// ---------------------------------------------------------------------------------------------
// The other binaries of the workspace, and processes that serve HTTP (scenario tests).
// ---------------------------------------------------------------------------------------------

/// A binary of this workspace (`ledger`, `idprover`, `monitor`, `auditor`), built like
/// [`server_binary`] when missing or older than its package's sources or `ledger-core`'s: `cargo
/// test -p ledger-e2e` does not build other packages' binaries. `package_dir` is the package's
/// folder relative to the workspace (`client`, `examples/idprover`, …).
/// `LEDGER_E2E_BIN_<NAME>=<path>` (name upper-cased, `-` as `_`) uses that binary, never building.
pub fn workspace_binary(package: &str, package_dir: &str, bin: &str) -> PathBuf {
    type Built = std::collections::HashMap<String, Result<PathBuf, String>>;
    static BINS: OnceLock<Mutex<Built>> = OnceLock::new();
    if bin == "log-server" {
        return server_binary();
    }
    let env = format!(
        "LEDGER_E2E_BIN_{}",
        bin.to_ascii_uppercase().replace('-', "_")
    );
    if let Some(p) = std::env::var_os(&env) {
        return PathBuf::from(p);
    }
    let mut bins = BINS
        .get_or_init(|| Mutex::new(Built::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let r = bins
        .entry(bin.to_string())
        .or_insert_with(|| build_workspace_binary(package, package_dir, bin));
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot get the {bin} binary: {e}"),
    }
}

fn build_workspace_binary(package: &str, package_dir: &str, bin: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected profile folder {}", profile_dir.display()))?
        .to_path_buf();
    let profile = match profile_dir.file_name().and_then(|s| s.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(p) => p.to_string(),
        None => {
            return Err(format!(
                "unexpected profile folder {}",
                profile_dir.display()
            ))
        }
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = profile_dir.join(bin);
    let sources = [
        workspace.join(package_dir).join("src"),
        workspace.join(package_dir).join("Cargo.toml"),
        workspace.join("core/src"),
        workspace.join("core/Cargo.toml"),
        // Every binary writes its secrets through it.
        workspace.join("secret-file/src"),
    ];
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let newest_source = sources.iter().filter_map(|p| newest_mtime(p)).max();
    if matches!((built, newest_source), (Some(b), Some(s)) if b >= s) {
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--profile"])
        .arg(&profile)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cargo:?} build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p {package} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !path.exists() {
        return Err(format!(
            "{} does not exist after cargo build",
            path.display()
        ));
    }
    Ok(path)
}

/// A long-running process of the workspace (`auditor`, `idprover`, `monitor` in follow mode),
/// started with `listening on ADDR` awaited when asked for, killed on drop. Its output is kept
/// (and printed when the test panics).
pub struct Service {
    name: String,
    cmd: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    child: Option<Child>,
    output: Output,
    addr: Option<SocketAddr>,
}

impl Service {
    /// Starts `program args…` and, when `wait_listening`, waits up to [`START_DEADLINE`] for its
    /// `listening on ADDR` line.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
        wait_listening: bool,
    ) -> Service {
        let mut cmd = vec![program.as_os_str().to_os_string()];
        cmd.extend(args.iter().map(|a| a.to_os_string()));
        let mut s = Service {
            name: name.to_string(),
            cmd,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir: None,
            child: None,
            output: Arc::new(Mutex::new(Vec::new())),
            addr: None,
        };
        s.spawn(wait_listening);
        s
    }

    /// Runs the process in `dir` from its next (re)start on.
    pub fn set_dir(&mut self, dir: &Path) {
        self.dir = Some(dir.to_path_buf());
    }

    fn spawn(&mut self, wait_listening: bool) {
        let mut c = Command::new(&self.cmd[0]);
        c.args(&self.cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pipe_lines(
                out,
                format!("{} out", self.name),
                self.output.clone(),
                tx.clone(),
            );
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(err, format!("{} err", self.name), self.output.clone(), tx);
        }
        self.child = Some(child);
        if wait_listening {
            match rx.recv_timeout(START_DEADLINE) {
                Ok(a) => self.addr = Some(a),
                Err(_) => panic!(
                    "{} did not print `listening on` within {START_DEADLINE:?}; output:\n{}",
                    self.name,
                    self.output()
                ),
            }
        }
    }

    /// `http://ADDR` of the `listening on` line.
    pub fn url(&self) -> String {
        match self.addr {
            Some(a) => format!("http://{a}"),
            None => panic!("{} has no address", self.name),
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Its process ID while it runs (e.g. to pause it with `SIGSTOP`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it (SIGKILL) if it runs, and starts it again with the same command line; the port
    /// may change unless the command line names one.
    pub fn restart(&mut self, wait_listening: bool) {
        self.kill9();
        self.spawn(wait_listening);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- {} output:\n{}", self.name, self.output());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_lines() {
        let want: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(parse_listening("listening on 127.0.0.1:4321"), Some(want));
        assert_eq!(
            parse_listening("2026-01-01T00:00:00Z  INFO log_server: listening on http://127.0.0.1:4321 origin=x"),
            Some(want)
        );
        assert_eq!(
            parse_listening(
                r#"{"level":"INFO","fields":{"message":"listening on 127.0.0.1:4321"}}"#
            ),
            Some(want)
        );
        assert_eq!(
            parse_listening(&strip_ansi(
                "\u{1b}[32m INFO\u{1b}[0m listening on 127.0.0.1:4321"
            )),
            Some(want)
        );
        assert_eq!(parse_listening("listening on nothing"), None);
        assert_eq!(parse_listening("starting"), None);
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("tel:+14155550100"), "tel%3A%2B14155550100");
        assert_eq!(url_encode("a b"), "a%20b");
    }
}
