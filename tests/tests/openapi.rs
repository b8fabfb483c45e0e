//! `GET /openapi.json` against the real `log-server` (issue 16): the document parses, is OpenAPI
//! 3.1.0 and has every route; every documented operation is routed (none answers the fallback's
//! 404); `openapi-spec-validator` accepts it; and schemathesis fuzzes a log holding enrolled keys
//! and claims against it with every check (no 5xx, and no status code, content type, header or
//! body the document does not allow).
//!
//! The Python tools are pinned in `scripts/python-requirements.txt` and installed by
//! `scripts/install-python-tools.sh`, which prints the venv's `bin` folder: the test looks there
//! through `LEDGER_PYTHON_TOOLS`, else in `target/pyenv/bin`. Without them it fails (it does not
//! skip), naming the script; CI installs them.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ledger_core::entry::Role;
use ledger_core::testkit::{claim, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{now, Options, TestLog};

/// Every path the server routes (`log-server/src/routes.rs` `ROUTES`, the OHTTP gateway's two and
/// the document's own); the unit test `openapi::tests::every_route_is_documented` ties the
/// document to `ROUTES` itself, this checks the running server.
const PATHS: [&str; 18] = [
    "/checkpoint",
    "/tile/{path}",
    "/v1/add",
    "/v1/add-bundle",
    "/v1/info",
    "/v1/entries",
    "/v1/proof/inclusion",
    "/v1/proof/consistency",
    "/v1/lookup",
    "/v1/admin/enroll",
    "/metrics",
    "/healthz",
    "/openapi.json",
    "/.well-known/ohttp-gateway",
    "/ohttp-keys",
    "/explorer",
    "/explorer/",
    "/explorer/{path}",
];

/// The fuzzer's budget: test cases per operation, and a deadline for the whole run, after which
/// the test kills it and fails (it normally takes well under a minute per thousand requests).
const MAX_EXAMPLES: &str = "200";
const SEED: &str = "16";
const FUZZ_DEADLINE: Duration = Duration::from_secs(300);

/// The folder of the Python tools (a venv's `bin`).
fn python_tools() -> PathBuf {
    let dir = std::env::var_os("LEDGER_PYTHON_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin"));
    for tool in ["schemathesis", "openapi-spec-validator"] {
        assert!(
            dir.join(tool).is_file(),
            "{tool} is not in {} (LEDGER_PYTHON_TOOLS, default target/pyenv/bin): run \
             `export LEDGER_PYTHON_TOOLS=$(scripts/install-python-tools.sh)` first",
            dir.display()
        );
    }
    dir
}

/// Runs `cmd` with a deadline; its exit success and its output (stdout then stderr).
fn run(mut cmd: Command, deadline: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!(
        "{}{}",
        reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\n(killed after {deadline:?})")),
    }
}

/// A log with enrolled MSPs and a few claims, so that entries, proofs, tiles and lookups have
/// something to answer.
fn populated_log() -> TestLog {
    let log = TestLog::start(Options::new(TreeHash::Sha256));
    let a = test_key("msp-a.example");
    let b = test_key("msp-b.example");
    log.enroll(Role::Msp, &a).expect("enroll msp-a");
    log.enroll(Role::Msp, &b).expect("enroll msp-b");
    let t = now();
    for (msp, sii, ssi) in [
        (&a, "tel:+14155550100", "mimi://msp-a.example/u/alice"),
        (&b, "tel:+14155550100", "mimi://msp-b.example/u/alice"),
        (
            &a,
            "mailto:carol@example.org",
            "mimi://msp-a.example/u/carol",
        ),
    ] {
        log.submit_ok(&claim(msp, sii, ssi, t, &["Personal"], None));
    }
    log
}

#[test]
fn the_openapi_document_is_valid_complete_and_holds_under_fuzzing() {
    let tools = python_tools();
    let log = populated_log();
    let url = format!("{}/openapi.json", log.url());

    // ---- the document: OpenAPI 3.1.0, every route, served as JSON.
    let resp = log.get("/openapi.json");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    let doc: serde_json::Value = serde_json::from_slice(&resp.body).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for p in PATHS {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    assert_eq!(paths.len(), PATHS.len(), "documented: {:?}", paths.keys());

    // ---- every documented operation is routed: none gets the fallback's "no such resource".
    for (path, item) in paths {
        let concrete = path.replace("{path}", "index.html");
        for method in item.as_object().expect("path item").keys() {
            let r = match method.as_str() {
                "get" => log.get(&concrete),
                "post" => log.post(&concrete, "application/octet-stream", Vec::new()),
                other => panic!("{path}: unexpected method {other}"),
            };
            let body = String::from_utf8_lossy(&r.body);
            assert!(
                !(r.status == 404 && body.contains("no such resource")),
                "{method} {path} is documented but not routed: {body}"
            );
        }
    }

    // ---- the OpenAPI validator.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &resp.body).expect("write the document");
    let mut validate = Command::new(tools.join("openapi-spec-validator"));
    validate.arg(&file);
    let (ok, out) = run(validate, Duration::from_secs(60));
    assert!(ok, "openapi-spec-validator refused the document:\n{out}");

    // ---- schemathesis, every check, reproducible. The admin token goes on every request, so
    // the enroll route's success path is fuzzed too (other routes ignore the header).
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fuzz = Command::new(tools.join("schemathesis"));
    fuzz.current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", here.join("schemathesis_hooks.py"))
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(here.join("schemathesis.toml"))
        .args(["run", &url, "--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "2", "--request-timeout", "10"])
        .args(["--report", "junit", "--report-dir"])
        .arg(dir.path().join("report"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", log.admin_token()));
    let started = Instant::now();
    let (ok, out) = run(fuzz, FUZZ_DEADLINE);
    eprintln!("schemathesis ran {:.0?}:\n{out}", started.elapsed());
    assert!(
        ok,
        "schemathesis found responses the document does not allow (or 5xx):\n{out}\nserver output:\n{}",
        log.output()
    );
    // The server survived it and still answers.
    assert_eq!(log.get("/healthz").status, 200);
}
