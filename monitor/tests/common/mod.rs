//! Test support: a small HTTP server that serves C2SP tiles built from a `MemLog` (optionally with
//! one change), and a runner for the real `monitor` binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::entry::{Action, Role};
use ledger_core::testkit::{attestation, claim, test_key, MemLog};
use ledger_core::tile::{
    encode_entry_bundle, entry_bundles_for_size, read_tile_data, tiles_for_size,
};
use ledger_core::tree::MemoryHashStore;
use ledger_core::TreeHash;

/// Path (without the leading `/`) → body.
pub type Files = HashMap<String, Vec<u8>>;

/// The C2SP static files of `log` at its current size: `checkpoint`, every hash tile and entry
/// bundle.
pub fn publish(log: &MemLog) -> Files {
    publish_leaves(
        log,
        &(0..log.size())
            .map(|i| log.leaf(i).bytes().to_vec())
            .collect::<Vec<_>>(),
        log.checkpoint().to_bytes(),
    )
}

/// The static files for `leaves` (possibly not `log`'s), with `checkpoint` as the checkpoint.
pub fn publish_leaves(log: &MemLog, leaves: &[Vec<u8>], checkpoint: Vec<u8>) -> Files {
    let mut store = MemoryHashStore::new(log.hash);
    for l in leaves {
        store.append_leaf(l);
    }
    let size = leaves.len() as u64;
    let mut files = Files::new();
    files.insert("checkpoint".into(), checkpoint);
    for t in tiles_for_size(size) {
        files.insert(t.path(), read_tile_data(&t, &store).expect("tile data"));
    }
    for b in entry_bundles_for_size(size) {
        let start = (b.index * 256) as usize;
        let refs: Vec<&[u8]> = leaves[start..start + usize::from(b.width)]
            .iter()
            .map(Vec::as_slice)
            .collect();
        files.insert(b.path(), encode_entry_bundle(&refs));
    }
    files
}

/// A tiny HTTP/1.1 server over a swappable set of files, with an optional delay per entry bundle.
pub struct TileServer {
    pub addr: SocketAddr,
    files: Arc<Mutex<Files>>,
    delay: Arc<Mutex<Duration>>,
}

impl TileServer {
    pub fn start(files: Files) -> TileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let files = Arc::new(Mutex::new(files));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (f, d) = (files.clone(), delay.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (f, d) = (f.clone(), d.clone());
                std::thread::spawn(move || serve_conn(stream, f, d));
            }
        });
        TileServer { addr, files, delay }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_files(&self, files: Files) {
        *self.files.lock().unwrap() = files;
    }

    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }
}

fn serve_conn(stream: std::net::TcpStream, files: Arc<Mutex<Files>>, delay: Arc<Mutex<Duration>>) {
    let mut writer = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) if h == "\r\n" || h == "\n" => break,
                Ok(_) => {}
            }
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_string();
        if path.starts_with("tile/entries/") {
            let d = *delay.lock().unwrap();
            if !d.is_zero() {
                std::thread::sleep(d);
            }
        }
        let body = files.lock().unwrap().get(&path).cloned();
        let ok = match body {
            Some(b) => writer
                .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n\r\n", b.len()).as_bytes())
                .and_then(|_| writer.write_all(&b)),
            None => writer.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\nnot found\n"),
        };
        if ok.is_err() {
            return;
        }
    }
}

/// A `monitor.toml` for one log, with a file sink at `alerts` and `extra` TOML appended.
pub fn config(
    url: &str,
    origin: &str,
    vkey: &str,
    hash: &str,
    alerts: &Path,
    extra: &str,
) -> String {
    format!(
        "poll_interval_s = 1\n\n[[log]]\nurl = \"{url}\"\norigin = \"{origin}\"\nvkey = \"{vkey}\"\nhash = \"{hash}\"\n\n\
         [[sink]]\ntype = \"file\"\npath = \"{}\"\n\n{extra}\n",
        alerts.display()
    )
}

/// A temporary folder with a config, a state folder and an alert file.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::Builder::new()
                .prefix("monitor-test-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("monitor.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_monitor"));
        cmd.arg("--config")
            .arg(self.dir.path().join("monitor.toml"))
            .arg("--state")
            .arg(self.state())
            .arg("--no-progress")
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `monitor --once`; returns (success, stderr).
    pub fn run_once(&self, extra: &[&str]) -> (bool, String) {
        let out = self
            .command(&["--once"])
            .args(extra)
            .output()
            .expect("run monitor");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts the monitor (follow mode unless `--once` is in `extra`).
    pub fn spawn(&self, extra: &[&str]) -> Child {
        self.command(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn monitor")
    }

    /// The alert lines delivered so far.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.alerts_path()).unwrap_or_default();
        // Only complete lines: the monitor may be writing one right now.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line {l:?}: {e}")))
            .collect()
    }

    /// Polls until `f(alerts)` holds, or panics after `deadline`.
    pub fn wait_alerts(
        &self,
        deadline: Duration,
        f: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let end = Instant::now() + deadline;
        loop {
            let a = self.alerts();
            if f(&a) {
                return a;
            }
            assert!(
                Instant::now() < end,
                "condition not met within {deadline:?}; alerts: {a:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The kinds of `alerts`, in order.
pub fn kinds(alerts: &[serde_json::Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

/// An honest log: two enrollments (`msp-a.example`, `prover.example`) and `claims` attested claims
/// of distinct SIIs `mailto:<tag(i)><i>@example.com` by `msp-a.example`. Two logs built with the
/// same origin are signed by the same key, so a different `tag` for one index makes a fork.
pub fn attested_log(origin: &str, claims: u64, tag: impl Fn(u64) -> String) -> MemLog {
    let mut log = MemLog::new(origin, TreeHash::Blake3);
    let msp = test_key("msp-a.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Prover, &prover);
    let t = log.now;
    for i in 0..claims {
        let tag = tag(i);
        let sii = format!("mailto:{tag}{i}@example.com");
        let ssi = format!("mimi://msp-a.example/u/{tag}{i}");
        let att = attestation(
            &prover,
            Action::Claim,
            &sii,
            Some(("msp-a.example", &ssi)),
            t - 5,
        );
        let leaf = claim(&msp, &sii, &ssi, t, &[], Some(att));
        log.submit(leaf.bytes()).expect("admitted");
    }
    log
}
