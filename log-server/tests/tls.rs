//! HTTPS (`--tls-cert`, `--tls-key`) over the real binary: a client that trusts the certificate
//! reads the log and submits over TLS, plain HTTP to the TLS port gets no answer, a client that
//! never finishes its handshake is closed after the header timeout, and a bad key file stops the
//! server with a message that names it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `log-server` with `args` and returns once it printed `listening on ADDR`.
fn start(data: &std::path::Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_log-server"))
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn log-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("log-server printed `listening on`");
    Server { child, addr }
}

/// A self-signed certificate and its key written to `cert.pem` and `key.pem` in `dir`: the
/// certificate's PEM and the two paths.
fn write_self_signed(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &cert).expect("write cert");
    std::fs::write(&key_path, &key).expect("write key");
    (cert, cert_path, key_path)
}

fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    (c.cert.pem(), c.key_pair.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, cert_path, key_path) = write_self_signed(dir.path());
    let server = start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().expect("utf8"),
            "--tls-key",
            key_path.to_str().expect("utf8"),
        ],
    );
    let port = server.addr.rsplit(':').next().expect("port").to_string();

    // A client trusting the certificate, reaching the server by the name in it.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).expect("pem"))
        .resolve("localhost", server.addr.parse().expect("socket address"))
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let info: serde_json::Value = loop {
        match client.get(format!("{base}/v1/info")).send().await {
            Ok(r) if r.status().is_success() => break r.json().await.expect("json"),
            other => {
                assert!(Instant::now() < deadline, "no HTTPS answer: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(info["origin"], "localhost/mimi-ledger");
    let cp = client
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .expect("checkpoint over TLS");
    assert!(cp.status().is_success());
    let text = cp.text().await.expect("body");
    assert!(text.starts_with("localhost/mimi-ledger\n0\n"), "{text}");
    // A refusal comes back over TLS as a problem document, like over HTTP.
    let bad = client
        .post(format!("{base}/v1/add"))
        .header("content-type", "text/plain; charset=utf-8")
        .body("not a note")
        .send()
        .await
        .expect("add over TLS");
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        bad.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );

    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", server.addr.parse().expect("socket address"))
        .build()
        .expect("client");
    let err = untrusting
        .get(format!("{base}/v1/info"))
        .send()
        .await
        .expect_err("self-signed certificate not trusted");
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/v1/info", server.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain HTTP on the TLS port answered: {plain:?}"
    );
}

#[test]
fn a_bad_key_file_stops_the_server_with_a_message_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, _) = self_signed();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).expect("write cert");
    std::fs::write(&key_path, "not a key\n").expect("write key");
    let out = Command::new(env!("CARGO_BIN_EXE_log-server"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .stdin(Stdio::null())
        .output()
        .expect("run log-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key.pem"), "{err}");
    assert!(err.contains("TLS"), "{err}");
}

/// Over HTTPS the header timeout covers the TLS handshake: a TCP client that never starts one, and
/// one that stops halfway through its ClientHello, are closed within the timeout plus slack.
#[test]
fn a_silent_tls_client_is_closed_after_the_header_timeout() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cert_path, key_path) = write_self_signed(dir.path());
    let server = start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().expect("utf-8 path"),
            "--tls-key",
            key_path.to_str().expect("utf-8 path"),
            "--header-timeout-ms",
            "1000",
        ],
    );
    // A TLS record header announcing a 512-byte handshake message, then nothing more.
    for first in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let mut s = std::net::TcpStream::connect(&server.addr).expect("connect");
        s.write_all(first).expect("write");
        s.set_read_timeout(Some(Duration::from_secs(8)))
            .expect("timeout");
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0) | Err(_)) && start.elapsed() < Duration::from_millis(2500),
            "{first:?}: {r:?} after {:?}",
            start.elapsed()
        );
    }
}
