//! [`TamperingDp`]: a lying Discovery Provider for browser tests — an HTTP/1.1 proxy on 127.0.0.1
//! in front of a real log-server that passes every `GET` through (the explorer's files included,
//! so a page served from the proxy's origin talks to the proxy) and lies in two places:
//!
//! - `/v1/lookup`: an answer with entries loses its last entry and is refolded
//!   ([`LyingDp::refold`]), as a DP hiding an entry and covering its tracks would: status and
//!   mappings match what is left, so SPEC §6 steps 1–4 pass and only completeness (step 5, the
//!   map of §9) catches it. An opt-out hidden this way reads as the mapping it overrode.
//! - `/v1/proof/inclusion`: the first hash of the proof has one bit flipped.
//!
//! Everything else (`/checkpoint`, `/v1/info`, `/v1/entries`, tiles, `/explorer/…`) is the log's
//! own answer, headers included. It counts what it tampered with.

use std::io::{BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::api::{InclusionProof, LookupAnswer};

use crate::{now, read_request_head, LyingDp};

/// The proxy; it serves until the test process exits.
pub struct TamperingDp {
    /// `http://ADDR`.
    pub url: String,
    lookups: Arc<AtomicU64>,
    proofs: Arc<AtomicU64>,
}

/// Response headers not copied from the log (the proxy frames its own answers).
const HOP: [&str; 5] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "date",
];

impl TamperingDp {
    /// Proxies to the log at `upstream` (`http://ADDR`).
    pub fn start(upstream: &str) -> TamperingDp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let lookups = Arc::new(AtomicU64::new(0));
        let proofs = Arc::new(AtomicU64::new(0));
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let upstream = upstream.trim_end_matches('/').to_string();
        let (l, p) = (lookups.clone(), proofs.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (http, upstream, l, p) = (http.clone(), upstream.clone(), l.clone(), p.clone());
                std::thread::spawn(move || serve(stream, &http, &upstream, &l, &p));
            }
        });
        TamperingDp {
            url,
            lookups,
            proofs,
        }
    }

    /// How many lookup answers it altered.
    pub fn lookups_tampered(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }

    /// How many inclusion proofs it altered.
    pub fn proofs_tampered(&self) -> u64 {
        self.proofs.load(Ordering::SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    http: &reqwest::blocking::Client,
    upstream: &str,
    lookups: &AtomicU64,
    proofs: &AtomicU64,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_request_head(&mut reader) {
        // The page only reads; a body (there should be none) is drained and refused.
        let n = head.content_length();
        if n > 0 {
            let mut sink = vec![0; n];
            if reader.read_exact(&mut sink).is_err() {
                return;
            }
        }
        let answer = if head.method == "GET" || head.method == "HEAD" {
            forward(http, upstream, &head, lookups, proofs)
        } else {
            (
                405,
                vec![("content-type".into(), "text/plain".into())],
                b"the tampering proxy only reads\n".to_vec(),
            )
        };
        let (status, headers, body) = answer;
        let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if head.method != "HEAD" {
            bytes.extend_from_slice(&body);
        }
        if writer.write_all(&bytes).is_err() {
            return;
        }
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn forward(
    http: &reqwest::blocking::Client,
    upstream: &str,
    head: &crate::RequestHead,
    lookups: &AtomicU64,
    proofs: &AtomicU64,
) -> Answer {
    let mut req = http.get(format!("{upstream}{}", head.path));
    if let Some(v) = head.headers.get("if-none-match") {
        req = req.header("if-none-match", v);
    }
    let resp = match req.send() {
        Ok(r) => r,
        Err(e) => {
            return (
                502,
                vec![("content-type".into(), "text/plain".into())],
                format!("upstream: {e}\n").into_bytes(),
            )
        }
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !HOP.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
    if status != 200 {
        return (status, headers, body);
    }
    let route = head.path.split('?').next().unwrap_or("");
    let body = match route {
        "/v1/lookup" => match serde_json::from_slice::<LookupAnswer>(&body) {
            Ok(mut a) if !a.entries.is_empty() => {
                a.entries.pop();
                LyingDp::refold(&mut a, now());
                lookups.fetch_add(1, Ordering::SeqCst);
                serde_json::to_vec(&a).expect("json")
            }
            _ => body,
        },
        "/v1/proof/inclusion" => match serde_json::from_slice::<InclusionProof>(&body) {
            Ok(mut p) if !p.inclusion.is_empty() => {
                p.inclusion[0][0] ^= 1;
                proofs.fetch_add(1, Ordering::SeqCst);
                serde_json::to_vec(&p).expect("json")
            }
            _ => body,
        },
        _ => body,
    };
    (status, headers, body)
}
