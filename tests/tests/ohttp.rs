//! Oblivious HTTP (RFC 9458, issue 15): `ledger lookup --relay` through the real `ohttp-relay` to
//! the real log-server's gateway. The lookup verifies as a direct one; the bytes the relay is sent
//! (recorded by a TCP proxy the client talks to) never hold the SII, the SSI or the answer; the
//! gateway logs only the relay's address; a gateway whose key is not the pinned one is refused
//! (exit 2, key mismatch) until `ledger trust update-ohttp`; a replayed encapsulated request gets
//! no second answer; the relay refuses oversized bodies and rate-limits per client.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_core::entry::Role;
use ledger_core::testkit::{claim, test_key};
use ledger_e2e::{now, workspace_binary, Options, Service, TestLog};
use serde_json::Value;

const ALICE: &str = "tel:+14155550100";
const ALICE_A: &str = "mimi://msp-a.example/u/alice";

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct World {
    log: TestLog,
    dir: tempfile::TempDir,
}

impl World {
    fn new(opts: Options) -> World {
        let log = TestLog::start(opts);
        let a = test_key("msp-a.example");
        log.enroll(Role::Msp, &a).expect("enroll msp-a");
        log.submit_ok(&claim(&a, ALICE, ALICE_A, now(), &["Personal"], None));
        let dir = tempfile::tempdir().expect("tempdir");
        let w = World { log, dir };
        let out = w.ledger(&["trust", "init", "--log", &w.log.url()]);
        assert_eq!(out.status.code(), Some(0), "trust init:\n{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ohttp keys  key id"),
            "{}",
            text(&out)
        );
        w
    }

    fn trust(&self) -> PathBuf {
        self.dir.path().join("trust.toml")
    }

    fn ledger(&self, args: &[&str]) -> Output {
        ledger_e2e::ledger_cli(&self.trust(), args)
    }

    fn relay(&self, extra: &[&str]) -> Service {
        let gateway = format!("{}/.well-known/ohttp-gateway", self.log.url());
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--gateway".as_ref(),
            gateway.as_ref(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        Service::start(
            "relay",
            &workspace_binary("ohttp-relay", "relay", "ohttp-relay"),
            &args,
            &[],
            true,
        )
    }
}

/// A TCP proxy that records every byte a client sends towards `to`, and the client ports.
struct Recorder {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    client_ports: Arc<Mutex<Vec<u16>>>,
}

impl Recorder {
    fn start(to: SocketAddr) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let client_ports = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (Arc::clone(&sent), Arc::clone(&client_ports));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { return };
                let Ok(mut upstream) = TcpStream::connect(to) else {
                    return;
                };
                if let (Ok(c), Ok(u)) = (client.peer_addr(), upstream.local_addr()) {
                    p.lock().expect("lock").extend([c.port(), u.port()]);
                }
                let (mut c2, mut u2) = (
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = client.read(&mut buf) {
                        if n == 0 || upstream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        s.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Recorder {
            addr,
            sent,
            client_ports,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn sent(&self) -> Vec<u8> {
        self.sent.lock().expect("lock").clone()
    }

    /// The body of the first request recorded (the encapsulated request).
    fn first_body(&self) -> Vec<u8> {
        let sent = self.sent();
        let end = sent
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a request head")
            + 4;
        let head = String::from_utf8_lossy(&sent[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("content-length")
            .trim()
            .parse()
            .expect("length");
        sent[end..end + len].to_vec()
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn lookup_json(w: &World, relay: &str) -> (Option<i32>, Value, Output) {
    let out = w.ledger(&["lookup", ALICE, "--json", "--relay", relay]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = stdout
        .find('{')
        .and_then(|at| serde_json::from_str(&stdout[at..]).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), json, out)
}

#[test]
fn lookup_through_the_relay_verifies_and_hides_who_and_what() {
    let w = World::new(Options::default());
    let relay = w.relay(&[]);
    let relay_addr = relay.addr().expect("relay addr");
    let rec = Recorder::start(relay_addr);

    let (code, json, out) = lookup_json(&w, &rec.url());
    assert_eq!(code, Some(0), "{}\n{}", text(&out), w.log.output());
    assert_eq!(json["verified"], true, "{json}");
    assert_eq!(json["mappings"][0]["ssi"], ALICE_A, "{json}");

    // What the relay was sent: no SII (in any spelling), no SSI, no answer text.
    let sent = rec.sent();
    assert!(
        contains(&sent, "message/ohttp-req"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    for secret in [
        ALICE,
        "14155550100",
        "%2B1415",
        ALICE_A,
        "msp-a.example",
        "Personal",
        "lookup",
    ] {
        assert!(!contains(&sent, secret), "the relay saw {secret:?}");
    }

    // The gateway saw one request, from the relay: not from the client's or the proxy's port.
    let log = w.log.output();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ohttp gateway request"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let peer = lines[0]
        .split("peer=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("peer field");
    let peer: SocketAddr = peer.parse().expect("peer address");
    assert!(peer.ip().is_loopback());
    let ports = rec.client_ports.lock().expect("lock").clone();
    assert!(
        !ports.contains(&peer.port()),
        "peer {peer} is the client's ({ports:?})"
    );
    assert!(lines[0].contains("status=200"), "{}", lines[0]);
    assert!(
        !log.contains("14155550100"),
        "the log server logged the SII"
    );
    assert!(
        !relay.output().contains(&format!(":{}", ports[0])),
        "the relay logged the client"
    );

    // A replay of the captured encapsulated request gets no second answer.
    let captured = rec.first_body();
    let http = reqwest::blocking::Client::new();
    for _ in 0..2 {
        let resp = http
            .post(format!("{}/.well-known/ohttp-gateway", w.log.url()))
            .header("content-type", "message/ohttp-req")
            .body(captured.clone())
            .send()
            .expect("send");
        assert_eq!(resp.status().as_u16(), 400);
        assert_eq!(
            resp.headers()["content-type"].to_str().ok(),
            Some("application/problem+json")
        );
        let body = resp.text().expect("body");
        assert!(body.contains("replayed"), "{body}");
    }
}

#[test]
fn a_gateway_key_other_than_the_pinned_one_is_refused_until_re_pinned() {
    let mut w = World::new(Options::default());
    // No pin: refused with a clear message.
    let plain = w.dir.path().join("plain.toml");
    let text_before = std::fs::read_to_string(w.trust()).expect("trust");
    let unpinned: String = text_before
        .lines()
        .filter(|l| !l.starts_with("ohttp_keys"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&plain, unpinned).expect("write");
    let relay = w.relay(&[]);
    let out = Command::new(workspace_binary("ledger-cli", "client", "ledger"))
        .arg("--trust")
        .arg(&plain)
        .args(["lookup", ALICE, "--relay", &relay.url()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("pins no OHTTP gateway key configuration"),
        "{}",
        text(&out)
    );
    drop(relay);

    // The log rotates with no overlap: the pinned key is gone.
    w.log.sigterm();
    let opts = Options::default()
        .arg("--ohttp-rotate-key")
        .arg("--ohttp-key-overlap-s")
        .arg("0");
    w.log.try_start_with(&opts).expect("restart");
    let relay = w.relay(&[]);
    let (code, _, out) = lookup_json(&w, &format!("{}/relay", relay.url()));
    assert_eq!(code, Some(2), "{}", text(&out));
    assert!(text(&out).contains("ohttp-key-mismatch"), "{}", text(&out));
    assert!(text(&out).contains("key mismatch"), "{}", text(&out));

    // After a documented rotation the client re-pins, and the lookup verifies again.
    // (The restarted log has another port than the trust file's log_url.)
    let out = w.ledger(&["trust", "update-ohttp", "--log", &w.log.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("key id 2"),
        "{}",
        text(&out)
    );
    let (code, json, out) = lookup_json(&w, &relay.url());
    assert_eq!(code, Some(0), "{}", text(&out));
    assert_eq!(json["verified"], true);
}

#[test]
fn the_relay_bounds_bodies_and_rate_limits_each_client() {
    let w = World::new(Options::default());
    let relay = w.relay(&["--rate-per-s", "1", "--rate-burst", "3"]);
    let http = reqwest::blocking::Client::new();
    let post = |body: Vec<u8>| {
        http.post(relay.url())
            .header("content-type", "message/ohttp-req")
            .body(body)
            .send()
            .expect("send")
    };
    let big = post(vec![0u8; 70 * 1024]);
    assert_eq!(big.status().as_u16(), 413);
    assert_eq!(
        big.headers()["content-type"].to_str().ok(),
        Some("application/problem+json")
    );
    assert!(big.text().expect("body").contains("too-large"));
    // The burst (3, one already spent) passes through to the gateway (which refuses junk)...
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let r = post(vec![1u8; 100]);
        if r.status().as_u16() == 429 {
            limited = Some(r);
            break;
        }
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    let r = limited.expect("a 429 after the burst");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert!(r.text().expect("body").contains("rate-limited"));
    // Counts, never addresses.
    let metrics = http
        .get(format!("{}/metrics", relay.url()))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(metrics.contains("result=\"rate-limited\"} 1"), "{metrics}");
    std::thread::sleep(Duration::from_millis(10));
}
