//! The HTTP webhook sink of the real `monitor` binary: a local receiver that fails twice (HTTP 500)
//! and then accepts gets the alert's SPEC §8 JSON line, after retries spaced by the configured
//! (doubling) backoff, with the stable alert id as `Idempotency-Key` and `X-Monitor-Alert-Id`; and a
//! second run does not deliver it again.

mod common;

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, publish, Setup, TileServer};
use ledger_core::entry::Role;
use ledger_core::testkit::{claim, test_key, MemLog};
use ledger_core::TreeHash;
use ledger_e2e::{read_request_head, RequestHead};
use monitor::alert::{alert_id, Alert};

const ORIGIN: &str = "example.com/log";
const WATCHED: &str = "tel:+14155550100";
const BACKOFF_MS: u64 = 300;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Request {
    at: Instant,
    method: String,
    path: String,
    /// Header names in lower case.
    headers: HashMap<String, String>,
    body: String,
}

/// A tiny HTTP/1.1 receiver (keep-alive aware): answers 500 to the first `fail_first` requests,
/// then 200, and records every request.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let r = r.clone();
                std::thread::spawn(move || serve(stream, r, fail_first));
            }
        });
        Receiver { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, requests: Arc<Mutex<Vec<Request>>>, fail_first: usize) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_request_head(&mut reader) {
        let mut body = vec![0u8; head.content_length()];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let RequestHead {
            method,
            path,
            headers,
        } = head;
        let n = {
            let mut all = requests.lock().unwrap();
            all.push(Request {
                at: Instant::now(),
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            all.len()
        };
        let status = if n <= fail_first {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A log with two honest claims and one claim of the watched number by a rogue MSP, sealed: one
/// `unexpected-claimant` alert at the returned index.
fn log_with_one_rogue_claim() -> (MemLog, u64) {
    let mut log = MemLog::new(ORIGIN, TreeHash::Sha256);
    let msp = test_key("msp-a.example");
    let rogue = test_key("rogue.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Msp, &rogue);
    let t = log.now;
    for i in 0..2 {
        log.push(claim(
            &msp,
            &format!("mailto:u{i}@example.com"),
            "mimi://msp-a.example/u/x",
            t,
            &[],
            None,
        ));
    }
    let index = log.push(claim(
        &rogue,
        WATCHED,
        "mimi://rogue.example/u/mallory",
        t,
        &[],
        None,
    ));
    log.seal();
    (log, index)
}

#[test]
fn webhook_retries_with_backoff_sends_the_id_and_does_not_repeat() {
    let (log, index) = log_with_one_rogue_claim();
    let server = TileServer::start(publish(&log));
    let hook = Receiver::start(2);
    let s = Setup::new();
    s.write_config(&config(
        &server.url(),
        ORIGIN,
        &log.key.verifier().to_string(),
        "sha256",
        &s.alerts_path(),
        &format!(
            "[[sink]]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout_s = 10\nattempts = 3\nbackoff_ms = {BACKOFF_MS}\n\n\
             [[watch]]\nsii = \"{WATCHED}\"\nallowed = [\"msp-a.example\"]\n\n\
             [rules]\nunattested_claim = \"off\"\n",
            hook.url()
        ),
    ));

    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");

    // The file sink has the one alert; the webhook got the same line three times (500, 500, 200).
    let file = std::fs::read_to_string(s.alerts_path()).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 1, "{file}");
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 3, "500, 500, then 200: {reqs:#?}");
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook");
        assert_eq!(r.body, lines[0], "the body is the SPEC §8 line");
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }

    // SPEC §8: exactly the eight members, naming the rogue claim.
    let v: serde_json::Value = serde_json::from_str(&reqs[2].body).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "time", "kind", "severity", "log", "index", "sii", "msp", "detail",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(v["kind"], "unexpected-claimant");
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["log"], ORIGIN);
    assert_eq!(v["index"], index);
    assert_eq!(v["sii"], WATCHED);
    assert_eq!(v["msp"], "rogue.example");

    // The stable id, the same on every attempt, in both headers.
    let alert: Alert = serde_json::from_str(&reqs[2].body).unwrap();
    let id = alert_id(&alert, "");
    assert_eq!(id.len(), 32);
    for r in &reqs {
        assert_eq!(r.headers.get("idempotency-key"), Some(&id), "{r:#?}");
        assert_eq!(r.headers.get("x-monitor-alert-id"), Some(&id), "{r:#?}");
    }

    // Backoff: at least BACKOFF_MS before the second attempt, doubled before the third.
    let gap1 = reqs[1].at - reqs[0].at;
    let gap2 = reqs[2].at - reqs[1].at;
    assert!(gap1 >= Duration::from_millis(BACKOFF_MS), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(2 * BACKOFF_MS), "{gap2:?}");

    // A second run delivers nothing again, to either sink.
    let (ok, err) = s.run_once(&[]);
    assert!(ok, "second monitor run failed:\n{err}");
    assert_eq!(hook.requests().len(), 3, "{:#?}", hook.requests());
    assert_eq!(std::fs::read_to_string(s.alerts_path()).unwrap(), file);
}

#[test]
fn webhook_that_keeps_failing_leaves_the_alert_pending_for_the_next_run() {
    let (log, index) = log_with_one_rogue_claim();
    let server = TileServer::start(publish(&log));
    // With 2 attempts per delivery, the first run tries twice in its catch-up and twice more in
    // its end-of-round delivery: all four fail; the next run's first attempt is accepted.
    let hook = Receiver::start(4);
    let s = Setup::new();
    s.write_config(&config(
        &server.url(),
        ORIGIN,
        &log.key.verifier().to_string(),
        "sha256",
        &s.alerts_path(),
        &format!(
            "[[sink]]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout_s = 10\nattempts = 2\nbackoff_ms = 50\n\n\
             [[watch]]\nsii = \"{WATCHED}\"\nallowed = [\"msp-a.example\"]\n\n\
             [rules]\nunattested_claim = \"off\"\n",
            hook.url()
        ),
    ));
    let (ok, _) = s.run_once(&[]);
    assert!(!ok, "--once exits with status 1 when a sink gave up");
    assert_eq!(hook.requests().len(), 4, "{:#?}", hook.requests());

    let (ok, err) = s.run_once(&[]);
    assert!(ok, "monitor failed:\n{err}");
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 5, "{reqs:#?}");
    let v: serde_json::Value = serde_json::from_str(&reqs[4].body).unwrap();
    assert_eq!(v["index"], index);
    assert!(reqs.iter().all(|r| r.body == reqs[0].body
        && r.headers.get("idempotency-key") == reqs[0].headers.get("idempotency-key")));
    // The file sink, which acknowledged in the first run, has the alert exactly once.
    assert_eq!(s.alerts().len(), 1);

    let (ok, err) = s.run_once(&[]);
    assert!(ok, "{err}");
    assert_eq!(hook.requests().len(), 5);
    assert_eq!(s.alerts().len(), 1);
}
