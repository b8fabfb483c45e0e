//! Issue #15: lookups resist enumeration. Privacy Pass tokens (type 2, blind RSA) from the
//! `ledger-issuer` process pay for lookups at a DP started with `--require-token`; the per-address
//! lookup rate limit stops a client without tokens. Real processes on 127.0.0.1 (and 127.0.0.2).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ledger_core::entry::Role;
use ledger_core::testkit::{claim, test_key};
use ledger_e2e::{now, workspace_binary, Options, Service, TestLog};
use serde_json::Value;

const ALICE: &str = "tel:+14155550100";
const ALICE_A: &str = "mimi://msp-a.example/u/alice";
const CRED_A: &str = "credential-of-msp-a-0123456789";
const CRED_B: &str = "credential-of-msp-b-0123456789";
const ISSUER_NAME: &str = "issuer.e2e.example";

fn issuer_binary() -> PathBuf {
    workspace_binary("log-server", "log-server", "ledger-issuer")
}

/// An issuer on 127.0.0.1:0 with its data in `data`, MSPs a (budget `a`) and b (budget `b`).
fn start_issuer(data: &Path, a: u64, b: u64, day: Option<u32>) -> Service {
    let creds = data.with_extension("credentials.toml");
    std::fs::write(
        &creds,
        format!(
            "[[msp]]\nname = \"msp-a\"\ncredential = \"{CRED_A}\"\ndaily_budget = {a}\n\n\
             [[msp]]\nname = \"msp-b\"\ncredential = \"{CRED_B}\"\ndaily_budget = {b}\n"
        ),
    )
    .expect("write credentials");
    let day = day.map(|d| d.to_string());
    let mut env = vec![("LEDGER_LOG", "info")];
    if let Some(d) = &day {
        env.push(("LEDGER_ISSUER_DAY", d.as_str()));
    }
    Service::start(
        "issuer",
        &issuer_binary(),
        &[
            "--data".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--issuer-credentials".as_ref(),
            creds.as_os_str(),
        ],
        &env,
        true,
    )
}

/// A log requiring tokens of `issuer` (a URL or key file), with Alice's number claimed.
fn start_log(issuer: &str, extra: &[&str]) -> TestLog {
    let mut opts = Options::default()
        .arg("--require-token")
        .arg(issuer)
        .arg("--token-issuer-name")
        .arg(ISSUER_NAME);
    for a in extra {
        opts = opts.arg(a);
    }
    let log = TestLog::start(opts);
    let a = test_key("msp-a.example");
    log.enroll(Role::Msp, &a).expect("enroll msp-a");
    log.submit_ok(&claim(&a, ALICE, ALICE_A, now(), &["Personal"], None));
    log
}

struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new(log: &TestLog) -> Client {
        let c = Client {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::write(c.dir.path().join("cred-a"), CRED_A).expect("cred");
        std::fs::write(c.dir.path().join("cred-b"), CRED_B).expect("cred");
        let out = c.ledger(&["trust", "init", "--log", &log.url()]);
        assert_eq!(out.status.code(), Some(0), "trust init: {}", text(&out));
        c
    }

    fn ledger(&self, args: &[&str]) -> Output {
        ledger_e2e::ledger_cli(&self.dir.path().join("trust.toml"), args)
    }

    fn fetch(&self, issuer: &str, cred: &str, count: u32, dp: Option<&str>) -> Output {
        let cred = self.dir.path().join(cred);
        let count = count.to_string();
        let mut args = vec![
            "token",
            "fetch",
            "--issuer",
            issuer,
            "--credential",
            cred.to_str().expect("utf-8"),
            "--count",
            &count,
        ];
        if let Some(dp) = dp {
            args.extend(["--dp", dp]);
        }
        self.ledger(&args)
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("trust.tokens.json")
    }

    /// The stored tokens (base64url).
    fn tokens(&self) -> Vec<String> {
        let Ok(b) = std::fs::read(self.state()) else {
            return vec![];
        };
        let v: Value = serde_json::from_slice(&b).expect("state json");
        v["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t["token"].as_str().expect("token").to_string())
            .collect()
    }

    /// Takes a stored token out of the state file (to send it by hand).
    fn take_token(&self) -> String {
        let b = std::fs::read(self.state()).expect("state");
        let mut v: Value = serde_json::from_slice(&b).expect("state json");
        let t = v["tokens"]
            .as_array_mut()
            .expect("tokens")
            .pop()
            .expect("a stored token");
        std::fs::write(self.state(), serde_json::to_vec(&v).expect("json")).expect("write");
        t["token"].as_str().expect("token").to_string()
    }

    fn lookup(&self) -> (Option<i32>, Value, String) {
        let out = self.ledger(&["lookup", ALICE, "--json"]);
        let json = ledger_e2e::stdout_json(&out);
        (out.status.code(), json, text(&out))
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn http_from(ip: [u8; 4]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// GET /v1/lookup?sii=ALICE with `authorization`: status, problem slug, WWW-Authenticate.
fn lookup_with(log: &TestLog, authorization: Option<&str>) -> (u16, String, Option<String>) {
    let mut req = http_from([127, 0, 0, 1]).get(format!(
        "{}/v1/lookup?sii={}",
        log.url(),
        ledger_e2e::url_encode(ALICE)
    ));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let r = req.send().expect("lookup");
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = r.json().unwrap_or(Value::Null);
    let slug = body["type"]
        .as_str()
        .unwrap_or("")
        .rsplit(':')
        .next()
        .unwrap_or("")
        .to_string();
    (status, slug, www)
}

fn assert_challenge(www: Option<String>, what: &str) {
    let www = www.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(
        www.starts_with("PrivateToken challenge=") && www.contains(", token-key="),
        "{what}: {www}"
    );
}

fn all_files(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn tokens_pay_for_lookups_and_bad_missing_spent_ones_are_refused() {
    let idir = tempfile::tempdir().expect("tempdir");
    let issuer = start_issuer(&idir.path().join("issuer"), 20, 1, None);
    let log = start_log(&issuer.url(), &[]);
    let client = Client::new(&log);

    // Missing: token-required with the challenge; the client says how to get tokens.
    let (status, slug, www) = lookup_with(&log, None);
    assert_eq!((status, slug.as_str()), (401, "token-required"));
    assert_challenge(www, "token-required");
    let (code, _, out) = client.lookup();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("token fetch"), "no hint: {out}");

    // Within budget: each token pays for one verified lookup.
    let out = client.fetch(&issuer.url(), "cred-a", 3, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(client.tokens().len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(client.state())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "token state file mode");
    }
    let mut spent = client.tokens();
    for i in 0..3 {
        let (code, json, out) = client.lookup();
        assert_eq!(code, Some(0), "lookup {i}: {out}");
        assert_eq!(json["verified"], true, "{out}");
        assert_eq!(client.tokens().len(), 2 - i);
    }
    let (code, _, out) = client.lookup();
    assert_eq!(code, Some(1), "no token left: {out}");
    assert!(out.contains("token-required"), "{out}");

    // Spent: the same token twice.
    let out = client.fetch(&issuer.url(), "cred-a", 3, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = client.take_token();
    spent.push(t.clone());
    let auth = format!("PrivateToken token={t}");
    assert_eq!(lookup_with(&log, Some(&auth)).0, 200);
    let (status, slug, _) = lookup_with(&log, Some(&auth));
    assert_eq!((status, slug.as_str()), (401, "token-spent"));

    // Malformed.
    for bad in [
        "PrivateToken token=AAAA",
        "PrivateToken token=!!!",
        "PrivateToken nothing",
    ] {
        let (status, slug, www) = lookup_with(&log, Some(bad));
        assert_eq!((status, slug.as_str()), (401, "bad-token"), "{bad}");
        assert_challenge(www, bad);
    }
    // A token with a flipped signature byte.
    let t2 = client.take_token();
    let mut raw = URL_SAFE_NO_PAD.decode(&t2).expect("b64");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let (status, slug, _) = lookup_with(
        &log,
        Some(&format!(
            "PrivateToken token={}",
            URL_SAFE_NO_PAD.encode(&raw)
        )),
    );
    assert_eq!((status, slug.as_str()), (401, "bad-token"));
    // The real one still works (a bad token burns no nonce).
    assert_eq!(
        lookup_with(&log, Some(&format!("PrivateToken token={t2}"))).0,
        200
    );
    spent.push(t2);

    // Another issuer key: a DP of the same origin and issuer name pinning another issuer.
    let idir2 = tempfile::tempdir().expect("tempdir");
    let issuer2 = start_issuer(&idir2.path().join("issuer"), 5, 5, None);
    let key2 = idir2.path().join("issuer").join("issuer-public.key");
    let log2 = start_log(key2.to_str().expect("utf-8"), &[]);
    let out = client.fetch(&issuer2.url(), "cred-a", 1, Some(&log2.url()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let other = client.take_token();
    let (status, slug, www) = lookup_with(&log, Some(&format!("PrivateToken token={other}")));
    assert_eq!(
        (status, slug.as_str()),
        (401, "bad-token"),
        "another issuer key"
    );
    assert_challenge(www, "another key");
    // The client refuses to fetch from an issuer the DP does not pin.
    let out = client.fetch(&issuer2.url(), "cred-a", 1, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // kill -9 of the DP, restart: a spent token stays spent.
    let t3 = client.take_token();
    spent.push(t3.clone());
    let auth3 = format!("PrivateToken token={t3}");
    assert_eq!(lookup_with(&log, Some(&auth3)).0, 200);
    let mut log = log;
    log.kill9();
    log.restart();
    for t in &spent {
        let (status, slug, _) = lookup_with(&log, Some(&format!("PrivateToken token={t}")));
        assert_eq!(
            (status, slug.as_str()),
            (401, "token-spent"),
            "after kill -9"
        );
    }

    // The issuer cannot link a token to the lookup: nothing it stored or printed holds a token,
    // a nonce or the SII.
    let mut files = Vec::new();
    all_files(&idir.path().join("issuer"), &mut files);
    assert!(!files.is_empty());
    let output = issuer.output();
    let mut needles: Vec<Vec<u8>> = vec![
        ALICE.as_bytes().to_vec(),
        b"14155550100".to_vec(),
        ledger_e2e::url_encode(ALICE).into_bytes(),
    ];
    for t in &spent {
        let raw = URL_SAFE_NO_PAD.decode(t).expect("token b64");
        let nonce = raw[2..34].to_vec();
        needles.push(t.as_bytes().to_vec());
        needles.push(raw.clone());
        needles.push(hex::encode(&nonce).into_bytes());
        needles.push(URL_SAFE_NO_PAD.encode(&nonce).into_bytes());
        needles.push(URL_SAFE.encode(&nonce).into_bytes());
        needles.push(STANDARD.encode(&nonce).into_bytes());
        needles.push(nonce);
    }
    for n in &needles {
        for (p, b) in &files {
            assert!(
                !contains(b, n),
                "{} holds {:?}",
                p.display(),
                String::from_utf8_lossy(n)
            );
        }
        assert!(
            !contains(output.as_bytes(), n),
            "the issuer printed {:?}",
            String::from_utf8_lossy(n)
        );
    }
    // It did log its counts.
    assert!(output.contains("token issued"), "{output}");
    drop(log2);
}

#[test]
fn the_budget_is_per_credential_and_per_day_and_stops_lookups() {
    let idir = tempfile::tempdir().expect("tempdir");
    let data = idir.path().join("issuer");
    let mut issuer = start_issuer(&data, 2, 3, Some(20_000));
    let log = start_log(&issuer.url(), &[]);
    let client = Client::new(&log);

    // msp-a's budget of 2: a third token is refused with budget-exhausted.
    let out = client.fetch(&issuer.url(), "cred-a", 3, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("budget-exhausted"), "{}", text(&out));
    assert_eq!(client.tokens().len(), 2);
    // A budget of N stops after N lookups.
    for i in 0..2 {
        let (code, json, out) = client.lookup();
        assert_eq!(
            (code, &json["verified"]),
            (Some(0), &Value::Bool(true)),
            "{i}: {out}"
        );
    }
    let (code, _, out) = client.lookup();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("token-required"), "{out}");

    // The raw refusal: 429 budget-exhausted with Retry-After.
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/token-request", issuer.url()))
        .bearer_auth(CRED_A)
        .header("content-type", "message/token-request")
        .body(vec![0u8; 259])
        .send()
        .expect("post");
    // A malformed request with a spent budget: either answer refuses, neither signs.
    assert!(r.status().as_u16() == 400 || r.status().as_u16() == 429);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/token-request", issuer.url()))
        .header("content-type", "message/token-request")
        .body(vec![0u8; 259])
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 401, "no credential");

    // Another credential has its own budget.
    let out = client.fetch(&issuer.url(), "cred-b", 3, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // kill -9 and restart on the same day: still spent.
    issuer.restart(true);
    let out = client.fetch(&issuer.url(), "cred-a", 1, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("budget-exhausted"));
    drop(issuer);

    // The next day: a fresh budget.
    let issuer = start_issuer(&data, 2, 3, Some(20_001));
    let out = client.fetch(&issuer.url(), "cred-a", 2, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn enumeration_is_stopped_by_the_lookup_rate_limit_per_address() {
    const BURST: usize = 20;
    let log = TestLog::start(
        Options::default()
            .arg("--lookup-rate-limit-per-s")
            .arg("1")
            .arg("--lookup-rate-limit-burst")
            .arg(&BURST.to_string()),
    );
    let a = test_key("msp-a.example");
    log.enroll(Role::Msp, &a).expect("enroll msp-a");
    log.submit_ok(&claim(&a, ALICE, ALICE_A, now(), &[], None));
    let enumerator = http_from([127, 0, 0, 1]);
    let started = Instant::now();
    let mut served = 0usize;
    let mut limited = 0usize;
    for i in 0..10_000u32 {
        let sii = format!("tel:+1415555{i:04}");
        let r = enumerator
            .get(format!(
                "{}/v1/lookup?sii={}",
                log.url(),
                ledger_e2e::url_encode(&sii)
            ))
            .send()
            .expect("lookup");
        if r.status().as_u16() == 429 {
            if limited == 0 {
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                assert!(retry.is_some_and(|s| s >= 1), "Retry-After");
                let body: Value = r.json().expect("problem");
                assert_eq!(body["type"], "urn:mimi-ledger:problem:rate-limited");
            }
            limited += 1;
        } else {
            served += 1;
        }
    }
    let elapsed = started.elapsed().as_secs() as usize + 1;
    assert!(
        served >= BURST && served <= BURST + elapsed,
        "served {served} of 10000 in {elapsed} s (burst {BURST}, 1/s)"
    );
    assert_eq!(served + limited, 10_000);
    // Another address is unaffected.
    let other = http_from([127, 0, 0, 2]);
    for _ in 0..BURST {
        let r = other
            .get(format!(
                "{}/v1/lookup?sii={}",
                log.url(),
                ledger_e2e::url_encode(ALICE)
            ))
            .send()
            .expect("lookup from 127.0.0.2");
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// Through an Oblivious HTTP relay the token travels inside the encapsulation: it pays for the
/// lookup, the relay never sees it, and without one the DP refuses the inner request.
#[test]
fn tokens_pay_for_lookups_through_the_relay() {
    let idir = tempfile::tempdir().expect("tempdir");
    let issuer = start_issuer(&idir.path().join("issuer"), 5, 1, None);
    let log = start_log(&issuer.url(), &[]);
    let client = Client::new(&log);
    let gateway = format!("{}/.well-known/ohttp-gateway", log.url());
    let relay = Service::start(
        "relay",
        &workspace_binary("ohttp-relay", "relay", "ohttp-relay"),
        &[
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--gateway".as_ref(),
            gateway.as_ref(),
        ],
        &[],
        true,
    );
    let through = |client: &Client| {
        let out = client.ledger(&["lookup", ALICE, "--json", "--relay", &relay.url()]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout, text(&out))
    };
    // No token: the DP behind the gateway refuses; nothing verified.
    let (code, _, out) = through(&client);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("token"), "{out}");
    let out = client.fetch(&issuer.url(), "cred-a", 2, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for left in [1usize, 0] {
        let (code, stdout, out) = through(&client);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            stdout.contains("\"verified\": true") || stdout.contains("\"verified\":true"),
            "{stdout}"
        );
        assert_eq!(client.tokens().len(), left, "one token per lookup");
    }
    let (code, _, out) = through(&client);
    assert_ne!(code, Some(0), "a third lookup with no token left: {out}");
}
