//! Alert sinks: JSON lines to stdout or a file, an exec hook, an HTTP webhook; and the delivery of
//! pending alerts from the [`Store`], marking each (alert, sink) as soon as the sink acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::alert::Identified;
use crate::config::SinkConfig;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing to stdout or the file failed.
    #[error("{sink}: {source}")]
    Io {
        /// The sink.
        sink: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The hook or webhook did not acknowledge after all attempts.
    #[error("{sink}: not delivered after {attempts} attempts: {last}")]
    GaveUp {
        /// The sink.
        sink: String,
        /// How many attempts.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One configured sink, ready to deliver.
pub enum Sink {
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines appended to a file.
    File {
        /// The path.
        path: PathBuf,
        /// The open file.
        file: File,
    },
    /// An exec hook.
    Exec {
        /// Program and arguments.
        command: Vec<String>,
        /// Per-attempt timeout.
        timeout: Duration,
        /// Attempts.
        attempts: u32,
    },
    /// An HTTP webhook.
    Webhook {
        /// The URL.
        url: String,
        /// The client.
        client: reqwest::blocking::Client,
        /// Attempts.
        attempts: u32,
        /// The first backoff.
        backoff: Duration,
    },
}

impl Sink {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Sink::Stdout => "stdout".into(),
            Sink::File { path, .. } => format!("file {}", path.display()),
            Sink::Exec { command, .. } => format!("exec {}", command.join(" ")),
            Sink::Webhook { url, .. } => format!("webhook {url}"),
        }
    }

    /// Opens sink number `n`. A file sink that is longer than its last recorded delivery was
    /// written to by a run that crashed before recording it: the unrecorded tail is cut, and
    /// those alerts, still pending, are written again (exactly once).
    pub fn open(n: usize, cfg: &SinkConfig, store: &Store) -> Result<Sink, SinkError> {
        Ok(match cfg {
            SinkConfig::Stdout => Sink::Stdout,
            SinkConfig::File { path } => {
                let io = |source| SinkError::Io {
                    sink: format!("file {}", path.display()),
                    source,
                };
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                let len = file.metadata().map_err(io)?.len();
                match store.file_len(n)? {
                    Some(recorded) if len > recorded => {
                        file.set_len(recorded).map_err(io)?;
                        file.sync_all().map_err(io)?;
                    }
                    Some(_) => {}
                    None => store.set_file_len(n, len)?,
                }
                Sink::File {
                    path: path.clone(),
                    file,
                }
            }
            SinkConfig::Exec {
                command,
                timeout_s,
                attempts,
            } => Sink::Exec {
                command: command.clone(),
                timeout: Duration::from_secs(*timeout_s),
                attempts: (*attempts).max(1),
            },
            SinkConfig::Webhook {
                url,
                timeout_s,
                attempts,
                backoff_ms,
            } => Sink::Webhook {
                url: url.clone(),
                client: reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(*timeout_s))
                    .build()
                    .map_err(|e| SinkError::GaveUp {
                        sink: format!("webhook {url}"),
                        attempts: 0,
                        last: e.to_string(),
                    })?,
                attempts: (*attempts).max(1),
                backoff: Duration::from_millis(*backoff_ms),
            },
        })
    }

    /// Delivers one alert; for a file sink returns the file's new length.
    pub fn deliver(&mut self, a: &Identified) -> Result<Option<u64>, SinkError> {
        let line = a.alert.to_line();
        let describe = self.describe();
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .map_err(|source| SinkError::Io {
                        sink: describe,
                        source,
                    })?;
                Ok(None)
            }
            Sink::File { file, .. } => {
                let io = |source| SinkError::Io {
                    sink: describe.clone(),
                    source,
                };
                file.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
                file.sync_data().map_err(io)?;
                let len = file.seek(SeekFrom::End(0)).map_err(io)?;
                Ok(Some(len))
            }
            Sink::Exec {
                command,
                timeout,
                attempts,
            } => {
                let mut last = String::new();
                for attempt in 0..*attempts {
                    if attempt > 0 {
                        std::thread::sleep(Duration::from_millis(500 << attempt.min(6)));
                    }
                    match run_hook(command, *timeout, a, &line) {
                        Ok(()) => return Ok(None),
                        Err(e) => last = e,
                    }
                }
                Err(SinkError::GaveUp {
                    sink: describe,
                    attempts: *attempts,
                    last,
                })
            }
            Sink::Webhook {
                url,
                client,
                attempts,
                backoff,
            } => {
                let mut last = String::new();
                let mut wait = *backoff;
                for attempt in 0..*attempts {
                    if attempt > 0 {
                        std::thread::sleep(wait);
                        wait = wait.saturating_mul(2);
                    }
                    let r = client
                        .post(url.as_str())
                        .header("content-type", "application/json")
                        .header("idempotency-key", a.id.as_str())
                        .header("x-monitor-alert-id", a.id.as_str())
                        .body(line.clone())
                        .send();
                    match r {
                        Ok(resp) if resp.status().is_success() => return Ok(None),
                        Ok(resp) => last = format!("HTTP {}", resp.status()),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(SinkError::GaveUp {
                    sink: describe,
                    attempts: *attempts,
                    last,
                })
            }
        }
    }
}

/// The environment of an exec hook: `MONITOR_ALERT_ID`, `MONITOR_TIME`, `MONITOR_KIND`,
/// `MONITOR_SEVERITY`, `MONITOR_LOG`, `MONITOR_INDEX`, `MONITOR_SII`, `MONITOR_MSP`,
/// `MONITOR_DETAIL` (empty when absent) and `MONITOR_ALERT_JSON` (the line).
pub fn hook_env(a: &Identified, line: &str) -> Vec<(&'static str, String)> {
    let al = &a.alert;
    vec![
        ("MONITOR_ALERT_ID", a.id.clone()),
        ("MONITOR_TIME", al.time.to_string()),
        ("MONITOR_KIND", al.kind.as_str().to_string()),
        ("MONITOR_SEVERITY", al.severity.as_str().to_string()),
        ("MONITOR_LOG", al.log.clone()),
        (
            "MONITOR_INDEX",
            al.index.map(|i| i.to_string()).unwrap_or_default(),
        ),
        ("MONITOR_SII", al.sii.clone().unwrap_or_default()),
        ("MONITOR_MSP", al.msp.clone().unwrap_or_default()),
        ("MONITOR_DETAIL", al.detail.clone()),
        ("MONITOR_ALERT_JSON", line.to_string()),
    ]
}

fn run_hook(
    command: &[String],
    timeout: Duration,
    a: &Identified,
    line: &str,
) -> Result<(), String> {
    let (prog, args) = command.split_first().ok_or("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .envs(hook_env(a, line))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is fine.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{prog} exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} did not finish within {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Delivers every pending alert to every sink that has not acknowledged it yet. Stops at the
/// first failure (the alert stays pending for the next round). Returns how many were completed.
pub fn deliver_pending(
    store: &Store,
    sinks: &mut [Sink],
    metrics: &Metrics,
) -> Result<usize, SinkError> {
    let mut done = 0;
    let count = sinks.len();
    for (seq_key, a) in store.pending()? {
        let mut todo = Vec::new();
        for n in 0..count {
            if !store.sink_delivered(n, &a.id)? {
                todo.push(n);
            }
        }
        let mut last_file_len = None;
        for (k, &n) in todo.iter().enumerate() {
            let Some(sink) = sinks.get_mut(n) else {
                continue;
            };
            let file_len = sink.deliver(&a)?;
            if k + 1 == todo.len() {
                // The last sink's mark and the alert's completion are one write.
                last_file_len = file_len.map(|len| (n, len));
            } else {
                store.mark_sink(n, &a.id, file_len)?;
            }
        }
        store.mark_done(&seq_key, &a.id, count, last_file_len)?;
        metrics.alert(a.alert.kind);
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, Kind};
    use crate::store::Commit;

    #[test]
    fn file_sink_cuts_an_unrecorded_tail_and_rewrites_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let store = Store::open(&dir.path().join("state")).unwrap();
        let cfg = SinkConfig::File { path: path.clone() };
        let a = Alert::new(Kind::BadEntry, "l", Some(1), "one").identify("");
        let b = Alert::new(Kind::BadEntry, "l", Some(2), "two").identify("");
        store
            .commit(Commit {
                alerts: vec![a.clone(), b.clone()],
                ..Commit::default()
            })
            .unwrap();
        let metrics = Metrics::default();
        {
            let mut sinks = [Sink::open(0, &cfg, &store).unwrap()];
            // Simulate a crash after writing `b` but before recording it: deliver `a` fully, then
            // write `b` by hand.
            let len = sinks[0].deliver(&a).unwrap();
            store.mark_sink(0, &a.id, len).unwrap();
            sinks[0].deliver(&b).unwrap();
        }
        let mut sinks = vec![Sink::open(0, &cfg, &store).unwrap()];
        assert_eq!(deliver_pending(&store, &mut sinks, &metrics).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, vec![a.alert.to_line(), b.alert.to_line()]);
        assert_eq!(deliver_pending(&store, &mut sinks, &metrics).unwrap(), 0);
    }

    #[test]
    fn exec_hook_gets_env_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hook.out");
        let script = format!(
            "echo \"$MONITOR_KIND $MONITOR_INDEX $MONITOR_SII $MONITOR_ALERT_ID\" > {0}; cat >> {0}",
            out.display()
        );
        let cfg = SinkConfig::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            timeout_s: 10,
            attempts: 1,
        };
        let store = Store::open(&dir.path().join("state")).unwrap();
        let mut sink = Sink::open(0, &cfg, &store).unwrap();
        let a = Alert::new(Kind::UnexpectedClaimant, "l", Some(9), "d")
            .sii("tel:+14155550100")
            .identify("");
        sink.deliver(&a).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            format!(
                "unexpected-claimant 9 tel:+14155550100 {}\n{}\n",
                a.id,
                a.alert.to_line()
            )
        );
        let failing = SinkConfig::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), "exit 3".into()],
            timeout_s: 10,
            attempts: 2,
        };
        let mut sink = Sink::open(1, &failing, &store).unwrap();
        assert!(matches!(
            sink.deliver(&a),
            Err(SinkError::GaveUp { attempts: 2, .. })
        ));
    }
}
