//! The web explorer (issue #16) end to end: the real `log-server` serves `/explorer/` (built by
//! `scripts/build-explorer.sh`), witnessed by a real `auditor`; a mapped number (two MSPs, tags,
//! one attested claim), an opted-out number and many other entries are logged; a tampering proxy
//! ([`TamperingDp`]) stands in front of it as a lying DP. Then `tests/browser/explorer.mjs` drives
//! headless Chromium (Debian's `chromium`, through `playwright-core`) over the pages: the lookups
//! verify (every step ✓, completeness included) for the mapped, opted-out and unmapped numbers;
//! through the liar the same lookups show the failed step and never a verified answer; the log
//! and an entry page verify, a tampered inclusion proof fails; the trust page takes a pasted and a
//! loaded trust file and says "trust on first use" without one; a phone-size viewport fits; no
//! request goes anywhere but the two DPs. Screenshots land in `target/<profile>/explorer-screenshots/`.
//!
//! The first test checks the server side without a browser: content types, the security headers,
//! the redirect, problem+json for a missing file, and CORS on the read routes only.
//!
//! Missing tools fail the test with the command that installs them (`.ci/run` does all of it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ledger_core::entry::{Action, Role};
use ledger_core::testkit::{attestation, claim, optout, test_key};
use ledger_core::TreeHash;
use ledger_e2e::{
    mail_claim, now, trust_text, Auditor, Mirror, Options, TamperingDp, TestLog, TEST_ORIGIN,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace folder")
}

/// The built explorer, or a failure that says how to build it.
fn require_built_explorer() {
    let dist = workspace().join("explorer/dist");
    for f in [
        "index.html",
        "app.js",
        "pkg/ledger_wasm.js",
        "pkg/ledger_wasm_bg.wasm",
    ] {
        assert!(
            dist.join(f).is_file(),
            "{} is missing: build the explorer first with `bash scripts/build-explorer.sh` \
             (`.ci/run` does, after installing the wasm32 target and wasm-bindgen)",
            dist.join(f).display()
        );
    }
}

/// `node`, `tests/browser/node_modules` and Chromium, or a failure naming what installs them.
fn require_browser_tools() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: `apt-get install -y nodejs npm` (or run `.ci/run`, which installs what \
         the browser tests need)"
    );
    let modules = workspace().join("tests/browser/node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "{} is missing: run `npm ci` in tests/browser (`.ci/run` does)",
        modules.display()
    );
    let chromium = std::env::var_os("LEDGER_E2E_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} is missing: `apt-get install -y --no-install-recommends chromium` (`.ci/run` does), \
         or set LEDGER_E2E_CHROMIUM",
        chromium.display()
    );
    chromium
}

/// `target/<profile>/explorer-screenshots`, beside this test binary's `deps/`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("explorer-screenshots")
}

#[test]
fn the_log_server_serves_the_explorer_with_its_headers() {
    require_built_explorer();
    let log = TestLog::start(Options::new(TreeHash::Sha256));

    let raw = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let r = raw
        .get(format!("{}/explorer", log.url()))
        .send()
        .expect("GET /explorer");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert!(
        matches!(r.status().as_u16(), 301 | 308),
        "/explorer redirects: {}",
        r.status()
    );
    assert_eq!(location.as_deref(), Some("/explorer/"));

    for (path, ctype) in [
        ("/explorer/", "text/html; charset=utf-8"),
        ("/explorer/index.html", "text/html; charset=utf-8"),
        ("/explorer/app.js", "text/javascript; charset=utf-8"),
        ("/explorer/style.css", "text/css; charset=utf-8"),
        (
            "/explorer/pkg/ledger_wasm.js",
            "text/javascript; charset=utf-8",
        ),
        ("/explorer/pkg/ledger_wasm_bg.wasm", "application/wasm"),
    ] {
        let r = log.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type").as_deref(), Some(ctype), "{path}");
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self' 'wasm-unsafe-eval'")
                && !csp.contains("unsafe-inline"),
            "{path}: CSP {csp}"
        );
        assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));
        assert!(r.header("etag").is_some(), "{path}: an ETag");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{path}: the page itself needs no CORS"
        );
    }
    // The served page is the built file, byte for byte.
    let built = std::fs::read(workspace().join("explorer/dist/index.html")).expect("index.html");
    assert_eq!(log.get("/explorer/").body, built);

    // A file the build does not have, or a path out of the folder, is a problem+json 404.
    for path in [
        "/explorer/nope.js",
        "/explorer/../Cargo.toml",
        "/explorer/%2e%2e/Cargo.toml",
        "/explorer/.gitignore",
    ] {
        let r = log.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{path}"
        );
    }

    // CORS: the public read routes answer any origin (errors too), the others do not.
    for path in [
        "/v1/info",
        "/checkpoint",
        "/v1/entries?start=0&count=1",
        "/v1/lookup?sii=tel:%2B14155550100",
        "/v1/lookup",
        "/v1/proof/inclusion?index=0",
    ] {
        let r = log.get(path);
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path} ({})",
            r.status
        );
        assert!(r.header("access-control-allow-credentials").is_none());
    }
    for path in ["/metrics", "/healthz"] {
        let r = log.get(path);
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{path}: no CORS"
        );
    }
}

#[test]
fn the_explorer_verifies_in_headless_chromium() {
    require_built_explorer();
    let chromium = require_browser_tools();
    let started = Instant::now();
    let th = TreeHash::Sha256;

    // ---- A witnessed log.
    let tmp = tempfile::Builder::new()
        .prefix("ledger-explorer-")
        .tempdir()
        .expect("tempdir");
    let log_key = test_key(TEST_ORIGIN);
    let key_file = tmp.path().join("log.key");
    std::fs::write(&key_file, log_key.to_text()).expect("log.key");
    let witness = Auditor::start("witness-1.example", &log_key.verifier(), th);
    let log = TestLog::start(
        Options::new(th)
            .arg("--key")
            .arg(&key_file.display().to_string())
            .arg("--quorum")
            .arg("1")
            .arg("--witness")
            .arg(&witness.witness_arg()),
    );

    // ---- The numbers.
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let prover = test_key("prover.example");
    for (role, key) in [
        (Role::Msp, &msp_a),
        (Role::Msp, &msp_b),
        (Role::Prover, &prover),
    ] {
        log.enroll(role, key).expect("enroll");
    }
    // Entry times 4 s apart (at most ~2 minutes ahead, well within the log's clock skew), so
    // that the log page's tree-size chart has a slope to draw.
    let t0 = now();
    let mut n = 0;
    let mut t = || {
        n += 1;
        t0 + 4 * n
    };
    for i in 0..24 {
        log.submit_ok(&mail_claim(&msp_a, "explorer", i, t()));
    }
    let mapped = "tel:+14155550100";
    let alice_a = "mimi://msp-a.example/u/alice";
    let alice_b = "mimi://msp-b.example/u/alice";
    let att = attestation(
        &prover,
        Action::Claim,
        mapped,
        Some(("msp-a.example", alice_a)),
        t0 - 60,
    );
    let claim_a = log
        .submit_ok(&claim(
            &msp_a,
            mapped,
            alice_a,
            t(),
            &["Personal"],
            Some(att),
        ))
        .index;
    log.submit_ok(&claim(&msp_b, mapped, alice_b, t(), &["Work"], None));
    let opted = "tel:+14155550199";
    let bob = "mimi://msp-a.example/u/bob";
    log.submit_ok(&claim(&msp_a, opted, bob, t(), &[], None));
    log.submit_ok(&optout(&prover, opted, t()));
    for i in 24..30 {
        log.submit_ok(&mail_claim(&msp_a, "explorer", i, t()));
    }
    let size = log.checkpoint().checkpoint.size;

    // ---- The real trust file (witness and quorum included) and the lying DP.
    let trust = tmp.path().join("trust.toml");
    std::fs::write(
        &trust,
        format!(
            "{}witnesses = [{:?}]\nquorum = 1\n",
            trust_text(log.vkey(), th),
            witness.key.verifier().to_string()
        ),
    )
    .expect("trust file");
    let liar = TamperingDp::start(&log.url());
    // A DP mirror serves the explorer too; the browser opens it there with `?dp=` pointing at the
    // log, as a copy on any static host would (cross-origin reads, CORS).
    let mirror = Mirror::start(&log.url(), log.vkey(), th, &[], &[]);
    mirror.wait_verified(size);

    // ---- The browser.
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let script = workspace().join("tests/browser/explorer.mjs");
    let out = Command::new("node")
        .arg(&script)
        .current_dir(workspace().join("tests/browser"))
        .env("EXPLORER_URL", format!("{}/explorer/", log.url()))
        .env("LYING_URL", format!("{}/explorer/", liar.url))
        .env("OTHER_ORIGIN_URL", format!("{}/explorer/", mirror.url()))
        .env("DP_URL", log.url())
        .env("TRUST_FILE", &trust)
        .env("MAPPED_INPUT", "+1 (415) 555-0100")
        .env("MAPPED_SII", mapped)
        .env("MAPPED_SSIS", format!("{alice_a},{alice_b}"))
        .env("MAPPED_ATTESTED_BY", "prover.example")
        .env("WITNESS_NAME", "witness-1.example")
        .env("OPTED_INPUT", "+1 415-555-0199")
        .env("OPTED_SII", opted)
        .env("OPTED_HIDDEN_SSI", bob)
        .env("UNMAPPED_INPUT", "(415) 555-0142")
        .env("UNMAPPED_REGION", "US")
        .env("UNMAPPED_SII", "tel:+14155550142")
        .env("ENTRY_INDEX", claim_a.to_string())
        .env("LOG_SIZE", size.to_string())
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = || {
        format!(
            "--- explorer.mjs stderr\n{stderr}\n--- stdout\n{stdout}\n--- log-server\n{}",
            log.output()
        )
    };
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("explorer.mjs printed no JSON summary\n{}", report()));
    let failed: Vec<&serde_json::Value> = summary["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["ok"] != true).collect())
        .unwrap_or_default();
    assert!(
        out.status.success() && summary["ok"] == true && failed.is_empty(),
        "browser checks failed ({}): {failed:#?}\n{}",
        out.status,
        report()
    );
    let names: Vec<&str> = summary["checks"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    for expected in [
        "mapped: every step ✓ including completeness",
        "opted-out: status opted-out",
        "unmapped: absence proven by the map",
        "lying DP, mapped number: the failed step and why, never a verified answer",
        "lying DP, opted-out number: caught at completeness (step 5)",
        "trust: TOFU notice without a trust file",
        "phone: the lookup verifies and fits a 390 px screen",
        "accessibility: every input has a <label for>",
        "no request to any host but the DPs under test",
        "another origin with ?dp=: the lookup verifies, reading the DP cross-origin",
    ] {
        assert!(
            names.contains(&expected),
            "the browser run lacks the check {expected:?}: {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("the tampered inclusion proof fails")),
        "{names:?}"
    );
    assert_eq!(summary["foreign"], serde_json::json!([]));
    // The liar did lie (so the failures above are the page catching it, not a broken proxy).
    assert!(liar.lookups_tampered() >= 2, "lookups tampered");
    assert!(liar.proofs_tampered() >= 1, "proofs tampered");
    for shot in [
        "explorer-lookup.png",
        "explorer-log.png",
        "explorer-entry.png",
        "explorer-trust.png",
        "explorer-lookup-phone.png",
        "explorer-lookup-lying.png",
    ] {
        let len = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(len > 1000, "screenshot {shot}: {len} bytes");
    }
    eprintln!(
        "explorer browser checks: {} passed in {:.1?}, {} requests, screenshots in {}",
        names.len(),
        started.elapsed(),
        summary["requests"],
        shots.display()
    );
}
