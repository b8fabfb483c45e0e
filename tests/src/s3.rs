//! [`S3Server`]: a real S3 server (`s3s-fs`, crates.io, version [`S3S_FS_VERSION`]) on a free
//! 127.0.0.1 port over a temporary folder, with one bucket, for the tests of `--publish` and of
//! mirrors that read a bucket.
//!
//! `s3s-fs` keeps each bucket as a folder under its root and each object as a file at its key, so
//! [`S3Server::get`] reads objects straight from the folder. It implements `If-None-Match: *` and
//! `If-Match` on `PutObject`, which the publisher's exclusivity relies on, but not atomically with
//! the write, so clients reach it through a [`WriteGate`] that serializes the writes of each key
//! (`s3_gate.rs` says why).
//!
//! The binary is `s3s-fs` on `PATH`, else `~/.cargo/bin/s3s-fs`, or `LEDGER_E2E_S3S_FS=<path>`;
//! install it with `cargo install s3s-fs --version 0.14.1 --features binary --locked` (`.ci/run`
//! does).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::s3_gate::WriteGate;
use crate::*;

/// The `s3s-fs` version the tests are written against (newer ones need a newer rustc).
pub const S3S_FS_VERSION: &str = "0.14.1";
/// The bucket every [`S3Server`] creates.
pub const S3_BUCKET: &str = "ledger-e2e";
const ACCESS_KEY: &str = "e2e-access-key";
const SECRET_KEY: &str = "e2e-secret-key-0123456789";

/// A running `s3s-fs` over a temporary folder, with the bucket [`S3_BUCKET`]; killed on drop.
pub struct S3Server {
    root: tempfile::TempDir,
    /// `s3s-fs`'s own port, behind the gate.
    port: u16,
    child: Option<Child>,
    output: Output,
    gate: WriteGate,
}

/// The `s3s-fs` binary.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LEDGER_E2E_S3S_FS") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("s3s-fs");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cargo/bin/s3s-fs");
    assert!(
        p.is_file(),
        "s3s-fs is not installed: cargo install s3s-fs --version {S3S_FS_VERSION} --features binary --locked"
    );
    p
}

impl S3Server {
    /// Starts `s3s-fs` on a free port of 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("ledger-e2e-s3-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir(root.path().join(S3_BUCKET)).expect("create the bucket folder");
        // A free port: bind, read it, release it (s3s-fs has no `listening on` line to learn it).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = S3Server {
            root,
            port,
            child: None,
            output: Arc::new(Mutex::new(Vec::new())),
            gate: WriteGate::start(port),
        };
        s.spawn();
        s
    }

    /// `kill -9` (to play an unreachable S3), and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again (after [`S3Server::kill9`]) on the same port and folder.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn spawn(&mut self) {
        let port = self.port;
        let mut child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", s3s_fs_binary().display()));
        let (tx, _rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pipe_lines(out, "s3 out".into(), self.output.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(err, "s3 err".into(), self.output.clone(), tx);
        }
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("s3s-fs exited ({status}); output:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {port} within {START_DEADLINE:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `http://127.0.0.1:PORT`, the gate in front of `s3s-fs` (it stays up across
    /// [`S3Server::kill9`], answering 502 until [`S3Server::restart`]).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.gate.port())
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        S3_BUCKET
    }

    /// `s3://BUCKET/PREFIX`, e.g. for `--publish`.
    pub fn bucket_url(&self, prefix: &str) -> String {
        format!("s3://{S3_BUCKET}/{}", prefix.trim_matches('/'))
    }

    /// The environment a client of this server needs (the usual AWS variables).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The folder holding the bucket's objects (one file per key).
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(S3_BUCKET)
    }

    /// The bytes of object `key` of the bucket, or `None` if there is none.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.bucket_dir().join(key.trim_start_matches('/'));
        if !path.is_file() {
            return None;
        }
        Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
    }

    /// Writes object `key` through S3, unconditionally (to play another writer): its ETag changes.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt as _;
        let store = self.store();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let path = object_store::path::Path::from(key.trim_start_matches('/'));
        runtime
            .block_on(store.put(&path, bytes.to_vec().into()))
            .unwrap_or_else(|e| panic!("PUT {key}: {e}; s3s-fs output:\n{}", self.output()));
    }

    /// An S3 client of the bucket, through the gate (as the binaries under test reach it).
    pub fn store(&self) -> Arc<object_store::aws::AmazonS3> {
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(S3_BUCKET);
        for (k, v) in self.env() {
            if let Ok(config) = k.to_ascii_lowercase().parse() {
                builder = builder.with_config(config, v);
            }
        }
        Arc::new(builder.build().expect("an S3 client for the test server"))
    }

    /// The keys of every object under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let base = self.bucket_dir();
        let mut out = Vec::new();
        collect_files(&base.join(prefix.trim_matches('/')), &base, &mut out);
        out.sort();
        out
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|v| v.join("\n")).unwrap_or_default()
    }
}

fn collect_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- s3s-fs output:\n{}", self.output());
        }
    }
}
