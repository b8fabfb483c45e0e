//! Connection hardening (issue "Hardening", items 2 and 5), against the real binaries on
//! 127.0.0.1: the log-server, the auditor, the identity prover and the monitor's metrics endpoint.
//!
//! Each server runs with short limits given through the `LEDGER_*` environment (so that a server
//! without them starts too, and fails the checks instead of the start), and with its file
//! descriptors limited to [`FD_LIMIT`] (`ulimit -n`), a small-scale version of the outside test in
//! which 20,100 idle connections exhausted the process's descriptors. One test per behaviour, each
//! against all four servers:
//! slowloris headers, a silent connection, an idle keep-alive, a body trickled at a byte per
//! 200 ms, an endless chunked body and a flood of more connections than the cap are all cut off
//! within their timeout plus slack, while a normal client keeps getting answers within a second;
//! 431, 414 and 400 refusals are problem+json. The log-server's memory after a flood of large
//! unfinished heads returns near its level before, and SIGTERM with silent, slowloris and stuck-body
//! clients stops the servers in seconds although their drain timeout is 30 s.

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::testkit::{test_key, test_witness_key};
use ledger_e2e::{
    idprover_binary, server_binary, wait_for, workspace_binary, Options, Service, TestLog,
    TEST_ORIGIN,
};

/// The connection cap the servers run with here.
const CAP: usize = 64;
/// `ulimit -n` of the servers: a flood of [`FLOOD`] connections exhausts it without a cap.
const FD_LIMIT: usize = 256;
/// Connections opened at once by the flood.
const FLOOD: usize = 320;
/// The header and idle timeouts the servers run with here.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
/// The body timeout the servers run with here.
const BODY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Slack on top of a timeout for the server to act on it (2 busy cores, debug builds).
const SLACK: Duration = Duration::from_millis(1500);

/// The limits as environment variables.
fn limit_env() -> Vec<(&'static str, String)> {
    vec![
        ("LEDGER_MAX_CONNECTIONS", CAP.to_string()),
        (
            "LEDGER_HEADER_TIMEOUT_MS",
            HEADER_TIMEOUT.as_millis().to_string(),
        ),
        (
            "LEDGER_IDLE_TIMEOUT_MS",
            HEADER_TIMEOUT.as_millis().to_string(),
        ),
        (
            "LEDGER_BODY_TIMEOUT_MS",
            BODY_TIMEOUT.as_millis().to_string(),
        ),
    ]
}

/// A POST route to send bodies to.
#[derive(Clone, Copy)]
struct Post {
    path: &'static str,
    content_type: &'static str,
    /// Whether its handler reads the body (then a stalled body is answered 408).
    reads_body: bool,
}

/// A server under test, with whatever it needs kept alive.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    /// A GET path answered 200.
    get: &'static str,
    post: Post,
    svc: Service,
    _keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// Starts `program args…` with its descriptors limited to [`FD_LIMIT`] and `env`, and waits for
/// its `listening on` line.
fn start_limited(name: &str, program: &Path, args: &[&OsStr], env: &[(&str, String)]) -> Service {
    let script = format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\"");
    let mut all: Vec<&OsStr> = vec![OsStr::new("-c"), OsStr::new(&script), program.as_os_str()];
    all.extend_from_slice(args);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Service::start(name, Path::new("/bin/sh"), &all, &env, true)
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

fn log_server(env: &[(&str, String)]) -> Target {
    let dir = tempdir("conn-log-");
    let data = dir.path().join("data");
    let svc = start_limited(
        "log-server",
        &server_binary(),
        &[
            OsStr::new("--data"),
            data.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        env,
    );
    Target {
        name: "log-server",
        addr: svc.addr().expect("address"),
        get: "/v1/info",
        post: Post {
            path: "/v1/add",
            content_type: "text/plain",
            reads_body: true,
        },
        svc,
        _keep: vec![Box::new(dir)],
    }
}

fn auditor(env: &[(&str, String)]) -> Target {
    let dir = tempdir("conn-auditor-");
    let key = test_witness_key("conn-auditor.example");
    std::fs::write(dir.path().join("witness.key"), key.to_text()).expect("witness.key");
    let log_key = test_key(TEST_ORIGIN).verifier();
    let config = dir.path().join("auditor.toml");
    std::fs::write(
        &config,
        format!(
            "key_file = \"witness.key\"\nstate_dir = \"state\"\npoll_interval_ms = 600000\n\
             [alerts]\nstdout = false\n[[log]]\norigin = \"{TEST_ORIGIN}\"\nvkey = \"{log_key}\"\nhash = \"blake3\"\n"
        ),
    )
    .expect("auditor.toml");
    let svc = start_limited(
        "auditor",
        &workspace_binary("auditor", "auditor", "auditor"),
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        env,
    );
    Target {
        name: "auditor",
        addr: svc.addr().expect("address"),
        get: "/healthz",
        post: Post {
            path: "/v1/audit",
            content_type: "text/plain",
            reads_body: true,
        },
        svc,
        _keep: vec![Box::new(dir)],
    }
}

fn idprover(env: &[(&str, String)]) -> Target {
    let dir = tempdir("conn-prover-");
    let key = dir.path().join("prover.key");
    std::fs::write(&key, test_key("prover.example").to_text()).expect("prover.key");
    let outbox = dir.path().join("outbox");
    let svc = start_limited(
        "idprover",
        &idprover_binary(),
        &[
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--outbox"),
            outbox.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        env,
    );
    Target {
        name: "idprover",
        addr: svc.addr().expect("address"),
        get: "/healthz",
        post: Post {
            path: "/v1/challenge",
            content_type: "application/json",
            reads_body: true,
        },
        svc,
        _keep: vec![Box::new(dir)],
    }
}

fn monitor_metrics(env: &[(&str, String)]) -> Target {
    let log = TestLog::start(Options::default());
    let dir = tempdir("conn-monitor-");
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            "poll_interval_s = 1\n[[log]]\nurl = \"{}\"\norigin = \"{TEST_ORIGIN}\"\nvkey = \"{}\"\nhash = \"blake3\"\n\
             [[sink]]\ntype = \"file\"\npath = \"{}\"\n",
            log.url(),
            log.vkey(),
            dir.path().join("alerts.jsonl").display()
        ),
    )
    .expect("monitor.toml");
    let state = dir.path().join("state");
    let mut env = env.to_vec();
    env.push(("LEDGER_LOG", "info".to_string()));
    let svc = start_limited(
        "monitor",
        &workspace_binary("monitor", "monitor", "monitor"),
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--state"),
            state.as_os_str(),
            OsStr::new("--no-progress"),
            OsStr::new("--metrics-listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        &env,
    );
    Target {
        name: "monitor",
        addr: svc.addr().expect("address"),
        get: "/metrics",
        post: Post {
            path: "/metrics",
            content_type: "text/plain",
            reads_body: false,
        },
        svc,
        _keep: vec![Box::new(dir), Box::new(log)],
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP over a socket.
// ---------------------------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// What a client saw of a connection.
#[derive(Debug)]
struct Seen {
    /// The bytes the server sent.
    bytes: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset, or a write failed).
    closed: bool,
    /// When the exchange ended (answer complete, connection closed, or `max` reached).
    after: Duration,
}

impl Seen {
    fn status(&self) -> Option<u16> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    fn head_and_body(&self) -> Option<(String, Vec<u8>)> {
        let at = self.bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.bytes[..at]).to_ascii_lowercase();
        Some((head, self.bytes[at + 4..].to_vec()))
    }

    /// Whether a whole response (head and `content-length` bytes of body) arrived.
    fn complete(&self) -> bool {
        let Some((head, body)) = self.head_and_body() else {
            return false;
        };
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        len.is_some_and(|n| body.len() >= n)
    }
}

/// Sends `head`, then `piece` every `every`, until the server answers whole or closes, or `max`
/// passes. A bounded loop: it ends by itself.
fn trickle(addr: SocketAddr, head: &[u8], piece: &[u8], every: Duration, max: Duration) -> Seen {
    let start = Instant::now();
    let mut s = connect(addr).expect("connect");
    s.set_read_timeout(Some(every)).expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let mut seen = Seen {
        bytes: Vec::new(),
        closed: false,
        after: Duration::ZERO,
    };
    if s.write_all(head).is_err() {
        seen.closed = true;
    }
    let mut buf = [0u8; 8192];
    while !seen.closed && start.elapsed() < max {
        match s.read(&mut buf) {
            Ok(0) => seen.closed = true,
            Ok(n) => seen.bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => seen.closed = true,
        }
        if seen.complete() {
            break;
        }
        if !seen.closed && !piece.is_empty() && s.write_all(piece).is_err() {
            seen.closed = true;
        }
    }
    seen.after = start.elapsed();
    seen
}

/// One whole request on a fresh connection with `Connection: close`, read until the server
/// closes or `max` passes.
fn request(addr: SocketAddr, raw: &[u8], max: Duration) -> Seen {
    trickle(addr, raw, b"", Duration::from_millis(50), max)
}

fn get_raw(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Asserts `seen` is a problem+json answer with `status` and `slug`.
#[track_caller]
fn assert_problem(t: &Target, what: &str, seen: &Seen, status: u16, slug: &str) {
    assert_eq!(
        seen.status(),
        Some(status),
        "{}: {what}: {:?}",
        t.name,
        String::from_utf8_lossy(&seen.bytes)
    );
    let (head, body) = seen.head_and_body().expect("head");
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{}: {what}: {head}",
        t.name
    );
    let p: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{}: {what}: body is not JSON ({e}): {body:?}", t.name));
    assert_eq!(
        p["type"],
        format!("urn:mimi-ledger:problem:{slug}"),
        "{}: {what}: {p}",
        t.name
    );
    assert_eq!(p["status"], status, "{}: {what}: {p}", t.name);
    assert!(
        p["title"].as_str().is_some_and(|s| !s.is_empty()),
        "{}: {what}: {p}",
        t.name
    );
    assert!(
        p["detail"].as_str().is_some_and(|s| !s.is_empty()),
        "{}: {what}: {p}",
        t.name
    );
}

/// Asserts the server cut `seen` off (answered or closed) within `bound`.
#[track_caller]
fn assert_cut_off(t: &Target, what: &str, seen: &Seen, bound: Duration) {
    assert!(
        (seen.closed || seen.complete()) && seen.after <= bound,
        "{}: {what} was not cut off within {bound:?}: {seen:?}\n{}",
        t.name,
        t.svc.output()
    );
}

// ---------------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------------

fn check_normal_request(t: &Target) {
    let seen = request(t.addr, &get_raw(t.get), Duration::from_secs(5));
    assert_eq!(seen.status(), Some(200), "{}: {seen:?}", t.name);
}

fn check_refusals_are_problem_json(t: &Target) {
    let big = "a".repeat(20_000);
    let seen = request(
        t.addr,
        format!("GET {} HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n", t.get).as_bytes(),
        Duration::from_secs(5),
    );
    assert_problem(t, "20 KB of headers", &seen, 431, "too-large");
    let long = "a".repeat(10_000);
    let seen = request(
        t.addr,
        format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_problem(t, "a 10 KB target", &seen, 414, "too-large");
    let seen = request(
        t.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_problem(t, "a malformed header", &seen, 400, "bad-request");
    let seen = request(t.addr, b"\x01\x02 nonsense\r\n\r\n", Duration::from_secs(5));
    assert_problem(t, "a malformed request line", &seen, 400, "bad-request");
    if t.post.reads_body {
        // 100 KB of a declared 200 KB: over every route's body limit.
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: 200000\r\n\r\n",
            t.post.path, t.post.content_type
        )
        .into_bytes();
        req.resize(req.len() + 100_000, b'a');
        let seen = request(t.addr, &req, Duration::from_secs(5));
        assert_problem(t, "a body over the limit", &seen, 413, "too-large");
    }
}

fn check_slowloris_headers(t: &Target) {
    let head = format!("GET {} HTTP/1.1\r\nHost: x\r\nX-Slow: ", t.get);
    let seen = trickle(
        t.addr,
        head.as_bytes(),
        b"a",
        Duration::from_millis(200),
        Duration::from_secs(8),
    );
    assert_cut_off(
        t,
        "a head sent a byte per 200 ms",
        &seen,
        HEADER_TIMEOUT + SLACK,
    );
}

fn check_idle_connection(t: &Target) {
    let seen = trickle(
        t.addr,
        b"",
        b"",
        Duration::from_millis(100),
        Duration::from_secs(8),
    );
    assert_cut_off(
        t,
        "a connection that sends nothing",
        &seen,
        HEADER_TIMEOUT + SLACK,
    );
    assert!(seen.bytes.is_empty(), "{}: {seen:?}", t.name);
}

fn check_idle_keep_alive(t: &Target) {
    let start = Instant::now();
    let mut s = connect(t.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", t.get);
    s.write_all(req.as_bytes()).expect("write");
    let mut seen = Seen {
        bytes: Vec::new(),
        closed: false,
        after: Duration::ZERO,
    };
    let mut buf = [0u8; 8192];
    let mut answered_at = None;
    while !seen.closed && start.elapsed() < Duration::from_secs(10) {
        match s.read(&mut buf) {
            Ok(0) => seen.closed = true,
            Ok(n) => seen.bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => seen.closed = true,
        }
        if answered_at.is_none() && seen.complete() {
            answered_at = Some(Instant::now());
        }
    }
    let answered_at = answered_at.unwrap_or_else(|| panic!("{}: no answer: {seen:?}", t.name));
    assert_eq!(seen.status(), Some(200), "{}", t.name);
    assert!(
        seen.closed && answered_at.elapsed() <= HEADER_TIMEOUT + SLACK,
        "{}: an idle keep-alive connection was not closed within {:?}",
        t.name,
        HEADER_TIMEOUT + SLACK
    );
}

fn check_slow_body(t: &Target) {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: 1000\r\n\r\n",
        t.post.path, t.post.content_type
    );
    let seen = trickle(
        t.addr,
        head.as_bytes(),
        b"a",
        Duration::from_millis(200),
        Duration::from_secs(10),
    );
    let bound = if t.post.reads_body {
        BODY_TIMEOUT + SLACK
    } else {
        HEADER_TIMEOUT + BODY_TIMEOUT + SLACK
    };
    assert_cut_off(t, "a body sent a byte per 200 ms", &seen, bound);
    if t.post.reads_body {
        assert_problem(t, "a stalled body", &seen, 408, "bad-request");
    }
}

fn check_endless_chunked_body(t: &Target) {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        t.post.path, t.post.content_type
    );
    let seen = trickle(
        t.addr,
        head.as_bytes(),
        b"1\r\na\r\n",
        Duration::from_millis(100),
        Duration::from_secs(10),
    );
    let bound = HEADER_TIMEOUT + BODY_TIMEOUT + SLACK;
    assert_cut_off(t, "an endless chunked body", &seen, bound);
}

/// More connections than the cap (and than the server's descriptors), held open and renewed,
/// while a normal client asks every 100 ms: every answer must come within a second.
fn check_connection_flood(t: &Target) {
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (stop, opened, addr) = (Arc::clone(&stop), Arc::clone(&opened), t.addr);
        std::thread::spawn(move || {
            let mut held = std::collections::VecDeque::new();
            let started = Instant::now();
            // Bounded: stops when told, or after 30 s whatever happens.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                if let Ok(mut s) = connect(addr) {
                    // Half of them start a head and never finish it.
                    if opened.load(Ordering::Relaxed) % 2 == 1 {
                        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
                    }
                    held.push_back(s);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                if held.len() > FLOOD {
                    held.pop_front();
                }
                if opened.load(Ordering::Relaxed) >= FLOOD {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    wait_for(
        Duration::from_secs(30),
        "the flood to open its connections",
        || (opened.load(Ordering::Relaxed) >= FLOOD).then_some(()),
    );
    let mut slow = Vec::new();
    for i in 0..15 {
        let seen = request(t.addr, &get_raw(t.get), Duration::from_secs(3));
        if seen.status() != Some(200) || seen.after > Duration::from_secs(1) {
            slow.push((i, seen.status(), seen.after));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = attacker.join();
    assert!(
        slow.is_empty(),
        "{}: during a flood of {FLOOD}+ connections (cap {CAP}), these requests got no 200 within 1 s: {slow:?}\n{}",
        t.name,
        t.svc.output()
    );
    // And afterwards it still serves.
    check_normal_request(t);
}

/// All four servers with the short limits.
fn all_servers() -> Vec<Target> {
    let env = limit_env();
    vec![
        log_server(&env),
        auditor(&env),
        idprover(&env),
        monitor_metrics(&env),
    ]
}

/// Runs `check` against every server at once (each check is mostly waiting for a timeout).
fn each_at_once(targets: &[Target], check: fn(&Target)) {
    std::thread::scope(|scope| {
        let running: Vec<_> = targets
            .iter()
            .map(|t| (t.name, scope.spawn(move || check(t))))
            .collect();
        let failed: Vec<_> = running
            .into_iter()
            .filter_map(|(name, h)| h.join().is_err().then_some(name))
            .collect();
        assert!(failed.is_empty(), "failed against: {failed:?} (see above)");
    });
}

#[test]
fn refusals_are_problem_json() {
    let targets = all_servers();
    each_at_once(&targets, |t| {
        check_normal_request(t);
        check_refusals_are_problem_json(t);
    });
}

#[test]
fn slowloris_headers_are_cut_off() {
    each_at_once(&all_servers(), check_slowloris_headers);
}

#[test]
fn silent_and_idle_keep_alive_connections_are_closed() {
    each_at_once(&all_servers(), |t| {
        check_idle_connection(t);
        check_idle_keep_alive(t);
    });
}

#[test]
fn slow_bodies_are_answered_408() {
    each_at_once(&all_servers(), check_slow_body);
}

#[test]
fn endless_chunked_bodies_are_cut_off() {
    each_at_once(&all_servers(), check_endless_chunked_body);
}

/// One server at a time: four floods at once on two cores would measure the machine.
#[test]
fn a_connection_flood_does_not_keep_normal_clients_out() {
    for t in all_servers() {
        check_connection_flood(&t);
    }
}

/// The log-server's admin enroll with a declared 100 MB body and 3 bytes sent is answered within
/// the body timeout (it used to wait forever).
#[test]
fn log_server_enroll_with_a_short_body_is_answered() {
    let t = log_server(&limit_env());
    let head = "POST /v1/admin/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Authorization: Bearer wrong\r\nContent-Length: 100000000\r\n\r\n{\"a";
    let seen = trickle(
        t.addr,
        head.as_bytes(),
        b"",
        Duration::from_millis(100),
        Duration::from_secs(10),
    );
    assert_cut_off(
        &t,
        "a 100 MB enroll body with 3 bytes sent",
        &seen,
        BODY_TIMEOUT + SLACK,
    );
    let status = seen.status().expect("an answer");
    assert!(matches!(status, 401 | 408 | 413), "{}: {seen:?}", t.name);
    let (head, _) = seen.head_and_body().expect("head");
    assert!(head.contains("application/problem+json"), "{head}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 300 connections each sending 350 KB of a head that never ends: the server holds at most the
/// head limit per connection, and its memory afterwards returns near its level before (it used
/// to keep hundreds of MiB).
#[test]
fn log_server_memory_returns_after_a_header_flood() {
    const CONNS: usize = 300;
    const HEAD_BYTES: usize = 350 * 1024;
    const ALLOWED_GROWTH_KIB: u64 = 32 * 1024;
    let t = log_server(&limit_env());
    let pid = t.svc.pid().expect("pid");
    for _ in 0..20 {
        check_normal_request(&t);
    }
    let before = rss_kib(pid);
    let mut chunk = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    chunk.resize(HEAD_BYTES, b'a');
    let mut held = Vec::new();
    for _ in 0..CONNS {
        let Ok(mut s) = connect(t.addr) else { continue };
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(&chunk);
        held.push(s);
    }
    let during = rss_kib(pid);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = rss_kib(pid);
        if now <= before + ALLOWED_GROWTH_KIB || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("RSS before {before} KiB, during {during} KiB, after {after} KiB");
    assert!(
        after <= before + ALLOWED_GROWTH_KIB,
        "RSS grew from {before} KiB to {after} KiB after {CONNS} unfinished 350 KB heads (during: {during} KiB)"
    );
    check_normal_request(&t);
}

/// SIGTERM with a silent client, a slowloris client and a request whose body is stuck, while the
/// drain timeout and every client timeout are 30 s or more: each server exits within a few
/// seconds, and the stuck request is answered 503 (or closed) rather than waited for.
#[test]
fn sigterm_with_idle_and_stuck_clients_stops_promptly() {
    let env = vec![
        ("LEDGER_DRAIN_TIMEOUT_MS", "30000".to_string()),
        ("LEDGER_HEADER_TIMEOUT_MS", "60000".to_string()),
        ("LEDGER_IDLE_TIMEOUT_MS", "60000".to_string()),
        ("LEDGER_BODY_TIMEOUT_MS", "60000".to_string()),
    ];
    const BOUND: Duration = Duration::from_secs(5);
    for mut t in [log_server(&env), auditor(&env), idprover(&env)] {
        let mut silent = connect(t.addr).expect("connect");
        let mut slowloris = connect(t.addr).expect("connect");
        slowloris
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let mut stuck = connect(t.addr).expect("connect");
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: 1000\r\n\r\nabc",
            t.post.path, t.post.content_type
        );
        stuck.write_all(head.as_bytes()).expect("write");
        // A whole request on another connection: the server is past reading the others' heads.
        check_normal_request(&t);
        let pid = libc::pid_t::try_from(t.svc.pid().expect("pid")).expect("pid fits");
        let start = Instant::now();
        // SAFETY: kill(2) on a child process this test started and still owns.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        wait_for(BOUND * 4, "the server to exit after SIGTERM", || {
            (!t.svc.is_running()).then_some(())
        });
        let took = start.elapsed();
        assert!(
            took <= BOUND,
            "{} took {took:?} to stop after SIGTERM with idle and stuck clients (drain timeout 30 s)\n{}",
            t.name,
            t.svc.output()
        );
        for (what, s) in [("silent", &mut silent), ("slowloris", &mut slowloris)] {
            s.set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            assert!(
                matches!(s.read(&mut buf), Ok(0) | Err(_)),
                "{}: the {what} client is not closed",
                t.name
            );
        }
        stuck
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut answer = Vec::new();
        let _ = stuck.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 503"),
            "{}: the stuck request got {text}",
            t.name
        );
    }
}
