//! [`TestLog`]: one real `log-server` process over a temporary data folder — options, start,
//! health polling, restart, `kill -9`, SIGTERM, and its output.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::TreeHash;

use crate::*;

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
    /// Environment variables for the server (after the test's `LEDGER_*` ones are removed), e.g.
    /// `LEDGER_FAULT` for the fault-injection points of a test build.
    pub env: Vec<(String, String)>,
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
            env: Vec::new(),
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

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub(crate) fn args(&self, data: &Path) -> Vec<String> {
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
pub(crate) type Output = Arc<Mutex<Vec<String>>>;

/// A running (or stopped) `log-server` over a temporary data folder.
pub struct TestLog {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) opts: Options,
    pub(crate) child: Option<Child>,
    pub(crate) addr: SocketAddr,
    pub(crate) output: Output,
    pub(crate) http: reqwest::blocking::Client,
    pub(crate) vkey: Option<VerifierKey>,
    pub(crate) starts: u32,
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

    pub(crate) fn command(&self, opts: &Options) -> Command {
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
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub(crate) fn spawn(&mut self) {
        let opts = self.opts.clone();
        self.spawn_with(&opts);
    }

    pub(crate) fn spawn_with(&mut self, opts: &Options) {
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

    pub(crate) fn try_spawn_with(&mut self, opts: &Options) -> Result<(), Exited> {
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

    pub(crate) fn wait_healthy(&mut self, deadline: Instant) {
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

    pub(crate) fn read_vkey_file(&self) -> VerifierKey {
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

    /// Waits up to `deadline` for the server to exit by itself (e.g. at an injected crash) and
    /// returns its status; `None` when it still runs.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait_deadline(child, deadline)?;
        self.child = None;
        push_line(&self.output, format!("=== exited by itself: {status}"));
        Some(status)
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

pub(crate) fn push_line(output: &Output, line: String) {
    if let Ok(mut v) = output.lock() {
        v.push(line);
    }
}

/// Copies lines of a child's pipe into `output`, and sends the address of a `listening on` line.
pub(crate) fn pipe_lines(
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

pub(crate) fn strip_ansi(s: &str) -> String {
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

pub(crate) fn wait_deadline(child: &mut Child, d: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + d;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
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
