//! [`Service`]: another workspace binary (auditor, monitor, identity prover) run as an HTTP
//! service by the scenario tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};

use crate::*;

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

    /// The address of its `listening on` line, if it printed one.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
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
