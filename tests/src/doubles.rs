//! Test doubles and start-up helpers shared by the tests of every crate of the workspace (client,
//! identity prover, monitor, auditor and the scenario tests), so that each exists once:
//!
//! - [`TileServer`]: a tiny HTTP/1.1 server over a swappable set of static files, e.g. the C2SP
//!   tiles of a (possibly dishonest) in-memory log built by [`publish`] / [`publish_leaves`], or the
//!   checkpoint a gossip peer serves;
//! - [`LyingDp`]: a Discovery Provider that answers every request with the JSON it was given;
//! - [`RefusingDp`]: one that refuses every request with a problem document (`outside-shard`),
//!   and [`closed_port_url`], one that is down;
//! - [`read_request_head`]: the request-reading part of these servers (and of other one-off ones);
//! - [`IdProver`]: the real `idprover` binary on 127.0.0.1, with its one-time-code outbox;
//! - [`wait_for`]: polls a condition with a deadline (never a bare sleep);
//! - [`KillOnDrop`]: kills a child process when a test ends, even by a failed assertion.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::api::LookupAnswer;
use ledger_core::testkit::MemLog;
use ledger_core::tile::{
    encode_entry_bundle, entry_bundles_for_size, read_tile_data, tiles_for_size,
};
use ledger_core::tree::MemoryHashStore;

use crate::{workspace_binary, Service};

// ---------------------------------------------------------------------------------------------
// Polling and processes.
// ---------------------------------------------------------------------------------------------

/// Polls `f` every 25 ms until it gives a value, and returns it; panics naming `what` when
/// `deadline` passes first. For outcomes that come asynchronously (a poll, a cosignature, an
/// alert, a server coming up).
#[track_caller]
pub fn wait_for<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Kills (SIGKILL) and reaps the child on drop, so that a failing assertion does not leave a
/// process of the test running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Reading requests.
// ---------------------------------------------------------------------------------------------

/// The head of an HTTP/1.1 request, as the test servers read it.
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    /// The method (`GET`, `POST`, …).
    pub method: String,
    /// The request target as sent (`/tile/0/000`, with the query if any).
    pub path: String,
    /// The headers, names in lower case (the last of repeated names wins).
    pub headers: HashMap<String, String>,
}

impl RequestHead {
    /// The `Content-Length` header, 0 when missing or malformed.
    pub fn content_length(&self) -> usize {
        self.headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads one request head (request line and headers, up to the empty line) from a keep-alive
/// connection; `None` when the connection closes or fails first. The body, if any, is left unread.
pub fn read_request_head(reader: &mut impl BufRead) -> Option<RequestHead> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return None,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
        }
    }
    Some(RequestHead {
        method,
        path,
        headers,
    })
}

// ---------------------------------------------------------------------------------------------
// A static file server: C2SP tiles of an in-memory log, peers' checkpoints.
// ---------------------------------------------------------------------------------------------

/// Path (without the leading `/`) → body.
pub type Files = HashMap<String, Vec<u8>>;

/// The C2SP static files of `log` at its current size: `checkpoint`, every hash tile and entry
/// bundle, whatever the log contains (a [`MemLog`] admits what an honest log would refuse).
pub fn publish(log: &MemLog) -> Files {
    publish_leaves(
        log,
        &(0..log.size())
            .map(|i| log.leaf(i).bytes().to_vec())
            .collect::<Vec<_>>(),
        log.checkpoint().to_bytes(),
    )
}

/// The static files for `leaves` (possibly not `log`'s: only its tree hash is used), with
/// `checkpoint` as the checkpoint — for logs whose tiles and checkpoint disagree.
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

/// A tiny HTTP/1.1 server (keep-alive aware) on 127.0.0.1 over a swappable set of [`Files`]:
/// `200` with the file, `404` for anything else; with an optional delay per entry bundle (to
/// catch a client mid-download). It serves until the test process exits.
pub struct TileServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    files: Arc<Mutex<Files>>,
    delay: Arc<Mutex<Duration>>,
}

impl TileServer {
    /// Serves `files`.
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
                std::thread::spawn(move || serve_files(stream, f, d));
            }
        });
        TileServer { addr, files, delay }
    }

    /// Serves the C2SP static files of `log` ([`publish`]).
    pub fn publish(log: &MemLog) -> TileServer {
        TileServer::start(publish(log))
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `files` from the next request on.
    pub fn set_files(&self, files: Files) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
    }

    /// Delays every entry bundle (`tile/entries/…`) by `d` from the next request on.
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }
}

fn serve_files(stream: TcpStream, files: Arc<Mutex<Files>>, delay: Arc<Mutex<Duration>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_request_head(&mut reader) {
        let path = head.path.trim_start_matches('/');
        if path.starts_with("tile/entries/") {
            let d = *delay.lock().unwrap_or_else(|e| e.into_inner());
            if !d.is_zero() {
                std::thread::sleep(d);
            }
        }
        let body = files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned();
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

// ---------------------------------------------------------------------------------------------
// A lying Discovery Provider.
// ---------------------------------------------------------------------------------------------

/// A Discovery Provider on 127.0.0.1 that answers every request with the same body as
/// `200 application/json` (one request per connection): an honest answer replayed, or a lie the
/// client must catch. It serves until the test process exits.
pub struct LyingDp {
    /// `http://ADDR`, for `ledger lookup --dp`.
    pub url: String,
}

impl LyingDp {
    /// Answers `body`, whatever it is (not even JSON, if so asked).
    pub fn serve(body: String) -> LyingDp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                // The request head only: lookups have no body.
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = read_request_head(&mut BufReader::new(&s));
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(body.as_bytes());
            }
        });
        LyingDp { url }
    }

    /// Answers `a` as JSON.
    pub fn answer(a: &LookupAnswer) -> LyingDp {
        LyingDp::serve(serde_json::to_string(a).expect("json"))
    }

    /// Sets `a`'s status and mappings to what the entries it shows fold to at `now`, as a DP that
    /// leaves entries out and covers its tracks would: such an answer passes SPEC §6 steps 1–4
    /// and only the map (step 5, completeness) catches it.
    pub fn refold(a: &mut LookupAnswer, now: u64) {
        let entries: Vec<(u64, ledger_core::entry::Entry)> = a
            .entries
            .iter()
            .map(|p| {
                let leaf = ledger_core::entry::Leaf::parse(p.leaf.as_bytes()).expect("leaf");
                (p.index, leaf.into_entry())
            })
            .collect();
        let state = ledger_core::state::fold(entries.iter().map(|(i, e)| (*i, e)), now);
        a.status = state.status;
        a.mappings = state.mapping_indices();
    }
}

// ---------------------------------------------------------------------------------------------
// A Discovery Provider that refuses, and one that is not there.
// ---------------------------------------------------------------------------------------------

/// A Discovery Provider on 127.0.0.1 that refuses every request with one RFC 9457 problem
/// document (`application/problem+json`), as a sharded DP mirror refuses an SII outside its
/// shards (`outside-shard`, 404) or a busy one sheds load (`overloaded`, 503). It counts the
/// requests it got, and serves until the test process exits.
pub struct RefusingDp {
    /// `http://ADDR`, for `ledger lookup --dp`.
    pub url: String,
    requests: Arc<Mutex<u64>>,
}

impl RefusingDp {
    /// Refuses with `urn:mimi-ledger:problem:<slug>`, HTTP `status` and `detail`.
    pub fn serve(status: u16, slug: &str, detail: &str) -> RefusingDp {
        let body = serde_json::json!({
            "type": format!("{}{slug}", crate::PROBLEM_PREFIX),
            "title": slug,
            "status": status,
            "detail": detail,
        })
        .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = read_request_head(&mut BufReader::new(&s));
                *counter.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                let head = format!(
                    "HTTP/1.1 {status} Refused\r\nContent-Type: application/problem+json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(body.as_bytes());
            }
        });
        RefusingDp { url, requests }
    }

    /// How many requests it refused so far.
    pub fn requests(&self) -> u64 {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `http://127.0.0.1:PORT` for a port nothing listens on (bound, then closed): a DP that is down.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------------
// The identity prover.
// ---------------------------------------------------------------------------------------------

/// The `idprover` binary of this workspace, built when needed ([`workspace_binary`]).
pub fn idprover_binary() -> PathBuf {
    workspace_binary("idprover", "examples/idprover", "idprover")
}

/// The real identity prover (`idprover`) on `127.0.0.1:0`, signing with a key file and writing
/// its one-time codes to an outbox folder; killed on drop (its output is printed when the test
/// panics).
pub struct IdProver {
    svc: Service,
    outbox: PathBuf,
}

impl IdProver {
    /// Starts `program --key <key> --outbox <outbox> --listen 127.0.0.1:0 <extra…>` with
    /// `LEDGER_LOG=<rust_log>`, and waits for its `listening on ADDR` line.
    pub fn start(
        program: &Path,
        key: &Path,
        outbox: &Path,
        extra: &[&str],
        rust_log: &str,
    ) -> IdProver {
        let mut args = vec![
            "--key".as_ref(),
            key.as_os_str(),
            "--outbox".as_ref(),
            outbox.as_os_str(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        let svc = Service::start(
            "idprover",
            program,
            &args,
            &[("LEDGER_LOG", rust_log)],
            true,
        );
        IdProver {
            svc,
            outbox: outbox.to_path_buf(),
        }
    }

    /// `http://ADDR` (it changes on [`IdProver::restart`]).
    pub fn url(&self) -> String {
        self.svc.url()
    }

    /// The outbox folder.
    pub fn outbox(&self) -> &Path {
        &self.outbox
    }

    /// The outbox file of `sii` (`tel%3A+14155550100.txt`): the newest challenge and code sent.
    pub fn outbox_file(&self, sii: &str) -> PathBuf {
        self.outbox.join(format!("{}.txt", sii.replace(':', "%3A")))
    }

    /// The code sent to `sii`, which must be for `challenge`.
    #[track_caller]
    pub fn code(&self, sii: &str, challenge: &str) -> String {
        let text = std::fs::read_to_string(self.outbox_file(sii)).expect("outbox file");
        assert!(text.contains(&format!("challenge {challenge}\n")), "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("code "))
            .expect("code line")
            .to_string()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.svc.kill9();
    }

    /// Kills it if it runs and starts it again on the same key and outbox; the port changes.
    pub fn restart(&mut self) {
        self.svc.restart(true);
    }
}
