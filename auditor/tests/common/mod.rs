//! Test support: the real `auditor` binary on 127.0.0.1 ([`TestAuditor`]) and an in-process fake
//! log ([`FakeLog`]) holding one signer key and named trees ("views"), served under
//! `/<view>/checkpoint` and `/<view>/v1/proof/consistency` — so a test can show tree A to some
//! callers and tree B to others.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::testkit::{test_key, test_witness_key};
use ledger_core::tree::{prove_consistency, tree_root, MemoryHashStore};
use ledger_core::witness::format_request as add_checkpoint_body;
use ledger_core::{Hash, TreeHash};

/// How long an auditor may take to come up.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

pub use ledger_e2e::wait_for;

/// A `[[log]]` entry.
#[derive(Clone)]
pub struct LogEntry {
    pub origin: String,
    pub vkey: VerifierKey,
    pub hash: TreeHash,
    pub url: Option<String>,
}

/// A running (or stopped) auditor binary with its own folder.
pub struct TestAuditor {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub key: SignerKey,
    child: Option<Child>,
    pub addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::blocking::Client,
    /// Extra environment variables for the binary.
    pub env: Vec<(String, String)>,
}

impl TestAuditor {
    /// A new auditor folder with witness key `name`, not started.
    pub fn new(name: &str) -> TestAuditor {
        let dir = tempfile::Builder::new()
            .prefix("auditor-test-")
            .tempdir()
            .expect("tempdir");
        let key = test_witness_key(name);
        std::fs::write(dir.path().join("witness.key"), key.to_text()).expect("write key");
        TestAuditor {
            dir,
            name: name.to_string(),
            key,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            env: Vec::new(),
        }
    }

    /// Writes `auditor.toml`.
    pub fn configure(&self, logs: &[LogEntry], peers: &[String], poll_ms: u64) {
        let mut t = format!(
            "key_file = \"witness.key\"\nstate_dir = \"state\"\npoll_interval_ms = {poll_ms}\n[alerts]\nstdout = true\nfile = \"alerts.jsonl\"\n"
        );
        for l in logs {
            t += &format!(
                "[[log]]\norigin = \"{}\"\nvkey = \"{}\"\nhash = \"{}\"\n",
                l.origin,
                l.vkey,
                l.hash.name()
            );
            if let Some(u) = &l.url {
                t += &format!("url = \"{u}\"\n");
            }
        }
        for p in peers {
            t += &format!("[[peer]]\nurl = \"{p}\"\n");
        }
        std::fs::write(self.config_path(), t).expect("write config");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("auditor.toml")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_auditor"));
        c.arg("--config")
            .arg(self.config_path())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("LEDGER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts the binary; waits for `listening on` and `/healthz`.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = self.command().spawn().expect("spawn auditor");
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        for (stream, tag) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                "out",
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                "err",
            ),
        ] {
            let Some(stream) = stream else { continue };
            let out = self.output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(a) = line.strip_prefix("listening on ") {
                        if let Ok(addr) = a.trim().parse() {
                            let _ = tx.send(addr);
                        }
                    }
                    out.lock().unwrap().push(format!("{tag}| {line}"));
                }
            });
        }
        drop(tx);
        let addr = match rx.recv_timeout(START_DEADLINE) {
            Ok(a) => a,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "auditor did not print `listening on` ({e}); output:\n{}",
                    self.output()
                );
            }
        };
        self.addr = addr;
        self.child = Some(child);
        wait_for(START_DEADLINE, "/healthz", || {
            self.http
                .get(format!("{}/healthz", self.url()))
                .send()
                .ok()
                .filter(|r| r.status() == 200)
        });
    }

    /// Runs the binary expecting it to exit (e.g. a refused configuration); returns (success,
    /// output).
    pub fn run_expecting_exit(&self) -> (bool, String) {
        let mut child = self.command().spawn().expect("spawn auditor");
        let end = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let out = child.wait_with_output().expect("output");
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return (status.success(), text);
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("auditor kept running though it should have refused to start");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub fn vkey(&self) -> VerifierKey {
        self.key.verifier()
    }

    /// `POST /add-checkpoint`; returns (status, content type, body).
    pub fn add_checkpoint(
        &self,
        old: u64,
        proof: &[Hash],
        cp: &SignedCheckpoint,
    ) -> (u16, String, String) {
        self.add_checkpoint_raw(add_checkpoint_body(old, proof, &cp.to_bytes()))
    }

    pub fn add_checkpoint_raw(&self, body: Vec<u8>) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}/add-checkpoint", self.url()))
            .body(body)
            .send()
            .expect("add-checkpoint");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ct, r.text().unwrap_or_default())
    }

    /// `GET /<hex sha256(origin)>/checkpoint`: (status, body).
    pub fn gossip(&self, origin: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!(
                "{}/{}/checkpoint",
                self.url(),
                ledger_core::witness::origin_hash(origin)
            ))
            .send()
            .expect("gossip");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    /// `POST /v1/audit` with a note; the JSON answer.
    pub fn audit(&self, note: &[u8]) -> serde_json::Value {
        let r = self
            .http
            .post(format!("{}/v1/audit", self.url()))
            .header("content-type", "text/plain")
            .body(note.to_vec())
            .send()
            .expect("audit");
        assert_eq!(r.status(), 200, "audit status");
        r.json().expect("audit json")
    }

    /// `GET /v1/evidence`.
    pub fn evidence(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/v1/evidence", self.url()))
            .send()
            .expect("evidence")
            .json()
            .expect("evidence json");
        v["evidence"].as_array().cloned().unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url()))
            .send()
            .expect("metrics")
            .text()
            .expect("metrics text")
    }
}

impl Drop for TestAuditor {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A log that holds one signer key and several named trees ("views").
pub struct FakeLog {
    pub key: SignerKey,
    pub hash: TreeHash,
    views: Mutex<HashMap<String, MemoryHashStore>>,
    /// `/<view>/checkpoint` answers 404 until this is set.
    pub published: AtomicBool,
    pub addr: Mutex<Option<SocketAddr>>,
}

impl FakeLog {
    pub fn new(origin: &str, hash: TreeHash) -> Arc<FakeLog> {
        Arc::new(FakeLog {
            key: test_key(origin),
            hash,
            views: Mutex::new(HashMap::new()),
            published: AtomicBool::new(false),
            addr: Mutex::new(None),
        })
    }

    pub fn origin(&self) -> String {
        self.key.name().to_string()
    }

    /// Adds a view whose leaves are `leaves`.
    pub fn add_view(&self, view: &str, leaves: &[String]) {
        let mut s = MemoryHashStore::new(self.hash);
        for l in leaves {
            s.append_leaf(l.as_bytes());
        }
        self.views.lock().unwrap().insert(view.to_string(), s);
    }

    /// The size of a view.
    pub fn size(&self, view: &str) -> u64 {
        self.views.lock().unwrap()[view].size()
    }

    /// The log-signed checkpoint of `view` at `size`.
    pub fn checkpoint(&self, view: &str, size: u64) -> SignedCheckpoint {
        let views = self.views.lock().unwrap();
        let root = tree_root(self.hash, size, &views[view]).expect("root");
        SignedCheckpoint::sign(
            Checkpoint {
                origin: self.origin(),
                size,
                root,
            },
            &self.key,
        )
        .expect("sign")
    }

    /// The consistency proof of `view` between two sizes.
    pub fn proof(&self, view: &str, from: u64, to: u64) -> Vec<Hash> {
        let views = self.views.lock().unwrap();
        prove_consistency(self.hash, from, to, &views[view]).expect("proof")
    }

    /// The `[[log]]` entry with `url` = this log's `/<view>` prefix (serve first), or none.
    pub fn entry(&self, view: Option<&str>) -> LogEntry {
        LogEntry {
            origin: self.origin(),
            vkey: self.key.verifier(),
            hash: self.hash,
            url: view.map(|v| format!("http://{}/{v}", self.addr.lock().unwrap().expect("served"))),
        }
    }

    /// Serves the views on 127.0.0.1 from a background thread.
    pub fn serve(self: &Arc<Self>) {
        use axum::extract::{Path, Query, State};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use axum::routing::get;

        #[derive(serde::Deserialize)]
        struct Range {
            from: u64,
            to: u64,
        }

        async fn checkpoint(
            State(log): State<Arc<FakeLog>>,
            Path(view): Path<String>,
        ) -> axum::response::Response {
            if !log.published.load(Ordering::SeqCst) {
                return StatusCode::NOT_FOUND.into_response();
            }
            let size = match log.views.lock().unwrap().get(&view) {
                Some(s) => s.size(),
                None => return StatusCode::NOT_FOUND.into_response(),
            };
            log.checkpoint(&view, size).to_bytes().into_response()
        }

        async fn consistency(
            State(log): State<Arc<FakeLog>>,
            Path(view): Path<String>,
            Query(r): Query<Range>,
        ) -> axum::response::Response {
            let views = log.views.lock().unwrap();
            let Some(s) = views.get(&view) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            match prove_consistency(log.hash, r.from, r.to, s) {
                Ok(p) => axum::Json(ledger_core::api::ConsistencyProof {
                    from: r.from,
                    to: r.to,
                    consistency: p,
                })
                .into_response(),
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }

        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        *self.addr.lock().unwrap() = Some(std_listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route("/{view}/checkpoint", get(checkpoint))
            .route("/{view}/v1/proof/consistency", get(consistency))
            .with_state(self.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                axum::serve(l, app).await.expect("serve");
            });
        });
    }
}

/// `n` distinct leaves with a prefix.
pub fn leaves(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} leaf {i}")).collect()
}
