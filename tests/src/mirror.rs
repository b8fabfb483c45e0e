//! [`Mirror`]: the real `log-server` binary run as a read-only DP mirror (`--mirror-of`), with its
//! own temporary data folder and a trust file written from the followed log's identity.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ledger_core::api::{Alert, LookupAnswer};
use ledger_core::key::VerifierKey;
use ledger_core::TreeHash;

use crate::{server_binary, url_encode, wait_for, Response, Service};

/// Writes a trust file (the TOML `ledger trust init` writes) for the log `vkey` / `hash` into
/// `dir`, and returns its path.
pub fn write_trust_file(dir: &Path, vkey: &VerifierKey, hash: TreeHash) -> PathBuf {
    let path = dir.join("trust.toml");
    std::fs::write(&path, trust_text(vkey, hash)).expect("write trust file");
    path
}

/// The trust file text for the log `vkey` / `hash`, with no witnesses.
pub fn trust_text(vkey: &VerifierKey, hash: TreeHash) -> String {
    format!(
        "origin = {:?}\nlog_vkey = {:?}\nhash = {:?}\n",
        vkey.name(),
        vkey.to_string(),
        hash.to_string()
    )
}

/// A mirror process, killed on drop (with its data folder).
pub struct Mirror {
    /// The process.
    pub service: Service,
    data: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Mirror {
    /// Starts a mirror of `of` (a URL or `s3://…`) trusting `vkey`/`hash`, polling every 100 ms,
    /// with `extra` flags and `env`, and waits for it to listen.
    pub fn start(
        of: &str,
        vkey: &VerifierKey,
        hash: TreeHash,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Mirror {
        Mirror::start_with_trust(of, &trust_text(vkey, hash), extra, env)
    }

    /// [`Mirror::start`] with the trust file's text as given (witnesses, quorum).
    pub fn start_with_trust(
        of: &str,
        trust_toml: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Mirror {
        let data = tempfile::tempdir().expect("mirror data folder");
        let trust = data.path().join("trust.toml");
        std::fs::write(&trust, trust_toml).expect("write trust file");
        let store = data.path().join("store");
        let mut args: Vec<std::ffi::OsString> = vec![
            "--mirror-of".into(),
            of.into(),
            "--trust".into(),
            trust.into(),
            "--data".into(),
            store.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--mirror-poll-ms".into(),
            "100".into(),
            "--min-free-mb".into(),
            "0".into(),
        ];
        args.extend(extra.iter().map(std::ffi::OsString::from));
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let service = Service::start("mirror", &server_binary(), &refs, env, true);
        Mirror {
            service,
            data,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        self.service.url()
    }

    /// The mirror's data folder (its store is `store/` inside).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `GET path` on the mirror.
    pub fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.url()))
            .send()
            .and_then(Response::from)
            .unwrap_or_else(|e| panic!("GET {path} on the mirror: {e}\n{}", self.service.output()))
    }

    /// `GET path` on the mirror, `None` when it cannot be reached (e.g. it just crashed).
    pub fn try_get(&self, path: &str) -> Option<Response> {
        self.http
            .get(format!("{}{path}", self.url()))
            .send()
            .and_then(Response::from)
            .ok()
    }

    /// `GET /v1/info` as JSON, `None` when the mirror cannot be reached.
    pub fn try_info(&self) -> Option<serde_json::Value> {
        self.try_get("/v1/info")
            .filter(|r| r.status == 200)
            .map(|r| r.json())
    }

    /// `GET /v1/info` as JSON.
    pub fn info(&self) -> serde_json::Value {
        let r = self.get("/v1/info");
        assert_eq!(r.status, 200, "mirror /v1/info: {}", r.text());
        r.json()
    }

    /// Waits until the mirror serves a verified checkpoint of at least `size`.
    pub fn wait_verified(&self, size: u64) -> serde_json::Value {
        wait_for(
            Duration::from_secs(60),
            &format!("the mirror to verify size {size}"),
            || {
                let info = self.info();
                let m = &info["mirror"];
                assert!(
                    m["halted"].is_null(),
                    "the mirror halted: {m}\n{}",
                    self.service.output()
                );
                (m["state"] == "following" && m["verified_size"].as_u64() >= Some(size))
                    .then_some(info)
            },
        )
    }

    /// Waits until the mirror halts, and returns the alert it halted on.
    pub fn wait_halted(&self) -> Alert {
        wait_for(Duration::from_secs(60), "the mirror to halt", || {
            let m = &self.info()["mirror"];
            (m["state"] == "halted")
                .then(|| serde_json::from_value(m["halted"].clone()).expect("alert"))
        })
    }

    /// The alert lines of its alert file.
    pub fn alerts(&self) -> Vec<Alert> {
        let path = self.data.path().join("store").join("mirror-alerts.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("alert line"))
            .collect()
    }

    /// `GET /v1/lookup?sii=…`, which must answer 200.
    pub fn lookup(&self, sii: &str) -> LookupAnswer {
        let r = self.get(&format!("/v1/lookup?sii={}", url_encode(sii)));
        assert_eq!(r.status, 200, "mirror lookup {sii}: {}", r.text());
        r.json()
    }
}
