//! The `idprover` binary over HTTP on 127.0.0.1: the flow, and abuse (wrong codes lock, codes
//! expire, codes are single-use, rate limits), with RFC 9457 problem documents.

use std::path::Path;
use std::time::Duration;

use ledger_core::entry::{Action, SignedAttestation};
use ledger_core::key::{KeyAlg, SignerKey};
use ledger_e2e::IdProver;
use serde_json::{json, Value};

struct Prover {
    /// The running binary (declared first: it is killed before its folder is removed).
    prover: IdProver,
    url: String,
    key: SignerKey,
    _dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

struct Resp {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
}

impl Prover {
    fn start(extra: &[&str]) -> Prover {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SignerKey::generate("prover.example", KeyAlg::Ed25519, &mut rand_core::OsRng)
            .expect("key");
        let key_path = dir.path().join("prover.key");
        std::fs::write(&key_path, format!("{}\n", key.to_text())).expect("write key");
        let outbox = dir.path().join("outbox");
        let prover = IdProver::start(
            Path::new(env!("CARGO_BIN_EXE_idprover")),
            &key_path,
            &outbox,
            extra,
            "error",
        );
        Prover {
            url: prover.url(),
            prover,
            key,
            _dir: dir,
            http: reqwest::blocking::Client::new(),
        }
    }

    fn post(&self, path: &str, body: &Value) -> Resp {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let body = r.json().unwrap_or(Value::Null);
        Resp {
            status,
            content_type,
            retry_after,
            body,
        }
    }

    fn challenge(&self, body: Value) -> String {
        let r = self.post("/v1/challenge", &body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["challenge"].as_str().expect("challenge").to_string()
    }

    fn code(&self, sii: &str, challenge: &str) -> String {
        self.prover.code(sii, challenge)
    }

    fn verify(&self, challenge: &str, code: &str) -> Resp {
        self.post("/v1/verify", &json!({"challenge": challenge, "code": code}))
    }
}

#[track_caller]
fn assert_problem(r: &Resp, status: u16, slug: &str, detail: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/problem+json"),
        "{}",
        r.content_type
    );
    assert_eq!(
        r.body["type"],
        format!("urn:mimi-ledger:problem:{slug}"),
        "{}",
        r.body
    );
    let d = r.body["detail"].as_str().unwrap_or_default();
    assert!(d.contains(detail), "expected {detail:?} in {d:?}");
}

const SII: &str = "tel:+14155550100";

fn claim_body(sii: &str) -> Value {
    json!({"sii": sii, "action": "claim", "msp": "msp-a.example",
           "ssi": "mimi://msp-a.example/u/alice", "tags": ["Personal"]})
}

fn wrong(code: &str) -> String {
    // A different code of the same length.
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

#[test]
fn flow_signs_the_attestation_asked_for_once() {
    let p = Prover::start(&[]);
    let ch = p.challenge(claim_body(SII));
    let code = p.code(SII, &ch);
    assert_eq!(code.len(), 6);
    let text =
        std::fs::read_to_string(p.prover.outbox().join("tel%3A+14155550100.txt")).expect("outbox");
    assert!(
        text.contains(
            "authorizes msp-a.example to map tel:+14155550100 to mimi://msp-a.example/u/alice"
        ),
        "{text}"
    );
    let r = p.verify(&ch, &code);
    assert_eq!(r.status, 200, "{}", r.body);
    let att = SignedAttestation::parse(r.body["attestation"].as_str().expect("att").as_bytes())
        .expect("an attestation note");
    att.note
        .verify(&[p.key.verifier()])
        .expect("signed by the prover key");
    let a = &att.attestation;
    assert_eq!(a.action, Action::Claim);
    assert_eq!(a.sii.as_str(), SII);
    assert_eq!(a.msp.as_ref().map(|m| m.as_str()), Some("msp-a.example"));
    assert_eq!(
        a.ssi.as_ref().map(|s| s.as_str()),
        Some("mimi://msp-a.example/u/alice")
    );
    assert_eq!(a.expires - a.time, 86_400);
    assert_eq!(r.body["expires"], a.expires);
    // Single use: the same code again is refused.
    assert_problem(&p.verify(&ch, &code), 404, "not-found", "single-use");
    // An unknown challenge.
    assert_problem(
        &p.verify("00", &code),
        404,
        "not-found",
        "unknown challenge",
    );
    // The info endpoint names the key to enroll.
    let info: Value = p
        .http
        .get(format!("{}/v1/info", p.url))
        .send()
        .expect("info")
        .json()
        .expect("json");
    assert_eq!(info["vkey"], p.key.verifier().to_string());
}

#[test]
fn five_wrong_codes_lock_the_challenge() {
    let p = Prover::start(&[]);
    let ch = p.challenge(json!({"sii": SII, "action": "optout"}));
    let code = p.code(SII, &ch);
    for left in (1..5).rev() {
        assert_problem(
            &p.verify(&ch, &wrong(&code)),
            401,
            "unauthorized",
            &format!("{left} {} left", if left == 1 { "try" } else { "tries" }),
        );
    }
    assert_problem(
        &p.verify(&ch, &wrong(&code)),
        429,
        "rate-limited",
        "locked after 5 wrong codes",
    );
    // Even the right code no longer works.
    assert_problem(&p.verify(&ch, &code), 429, "rate-limited", "locked");
}

#[test]
fn an_expired_code_fails() {
    let p = Prover::start(&["--code-ttl", "300ms"]);
    let ch = p.challenge(claim_body(SII));
    let code = p.code(SII, &ch);
    // Wait until the code's lifetime has certainly passed (poll a clock, not the server).
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_millis(400) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_problem(&p.verify(&ch, &code), 401, "unauthorized", "expired");
}

#[test]
fn challenges_are_rate_limited_per_sii_and_per_client() {
    let p = Prover::start(&["--sii-rate", "2/1h", "--client-rate", "4/1h"]);
    p.challenge(claim_body(SII));
    p.challenge(claim_body(SII));
    let r = p.post("/v1/challenge", &claim_body(SII));
    assert_problem(
        &r,
        429,
        "rate-limited",
        "too many challenges for tel:+14155550100",
    );
    assert!(r.retry_after.is_some(), "429 carries Retry-After");
    // The third hit above counted for this client: one more SII is allowed, then the client is
    // limited whatever the SII.
    p.challenge(claim_body("tel:+14155550101"));
    let r = p.post("/v1/challenge", &claim_body("tel:+14155550102"));
    assert_problem(
        &r,
        429,
        "rate-limited",
        "too many challenges from this address",
    );
}

#[test]
fn codes_can_be_longer() {
    let p = Prover::start(&["--code-digits", "8"]);
    let ch = p.challenge(json!({"sii": SII, "action": "optout"}));
    let code = p.code(SII, &ch);
    assert_eq!(code.len(), 8, "{code}");
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    let r = p.verify(&ch, &code);
    assert_eq!(r.status, 200, "{}", r.body);
    let att = SignedAttestation::parse(r.body["attestation"].as_str().expect("att").as_bytes())
        .expect("attestation");
    assert_eq!(att.attestation.action, Action::Optout);
    assert_eq!(
        (att.attestation.msp.as_ref(), att.attestation.ssi.as_ref()),
        (None, None)
    );
    assert_eq!(att.attestation.method, "sms-otp");
}

#[test]
fn bad_requests_are_problem_documents() {
    let p = Prover::start(&[]);
    let r = p.post(
        "/v1/challenge",
        &json!({"sii": "tel:+1415555", "action": "optout"}),
    );
    assert_problem(&r, 422, "invalid-sii", "not a valid phone number");
    assert_problem(
        &p.post(
            "/v1/challenge",
            &json!({"sii": SII, "action": "optout", "msp": "msp-a.example"}),
        ),
        400,
        "bad-request",
        "an optout names no msp",
    );
    assert_problem(
        &p.post("/v1/challenge", &json!({"sii": SII, "action": "claim"})),
        400,
        "bad-request",
        "needs both msp and ssi",
    );
    assert_problem(
        &p.post("/v1/challenge", &json!({"sii": SII, "action": "delete"})),
        400,
        "bad-request",
        "action",
    );
    assert_problem(
        &p.post("/v1/verify", &json!({"challenge": 1})),
        400,
        "bad-request",
        "body",
    );
}
