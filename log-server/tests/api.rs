//! In-process tests of the HTTP API (SPEC §5) over the real router, store and sequencer — no
//! sockets: requests go straight into the axum `Router`.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use ledger_core::api::{
    ConsistencyProof, EntriesPage, InclusionProof, Info, LookupAnswer, Problem, Receipt,
};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Action, Leaf, Role};
use ledger_core::key::SignerKey;
use ledger_core::lookup::{verify_lookup, Trust};
use ledger_core::state::Status;
use ledger_core::testkit::{attestation, claim, optout, revoke, test_key};
use ledger_core::tile::{
    decode_entry_bundle, entry_bundles_for_size, tiles_for_size, TileHashReader,
};
use ledger_core::time::now_unix;
use ledger_core::tree::{tree_root, verify_consistency, verify_inclusion};
use ledger_core::TreeHash;
use log_server::config::Config;
use log_server::routes::router;
use log_server::server::{open, Opened};
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

struct Log {
    app: Router,
    opened: Opened,
}

/// `open`, waiting while the store is still locked: sled's background I/O threads may hold the
/// previous instance's files (and so its lock) for a moment after its last handle is dropped, which
/// only an in-process restart like these tests' can see.
fn open_when_unlocked(config: &Config) -> anyhow::Result<Opened> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open(config) {
            Err(e)
                if format!("{e:#}").contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl Log {
    fn start(dir: &Path, hash: TreeHash) -> Log {
        let mut config = Config::for_data_dir(dir);
        config.hash = Some(hash);
        config.origin = Some("test.example/log".into());
        let opened = open_when_unlocked(&config).unwrap_or_else(|e| panic!("open: {e:#}"));
        Log {
            app: router(opened.state.clone()),
            opened,
        }
    }

    fn token(&self) -> String {
        self.opened
            .state
            .writer
            .as_ref()
            .map(|w| w.admin_token.to_string())
            .unwrap_or_default()
    }

    fn trust(&self) -> Trust {
        Trust::new(
            self.opened.state.ledger.vkey().clone(),
            self.opened.state.ledger.tree_hash(),
        )
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.send(Request::get(uri).body(Body::empty()).expect("req"))
            .await
    }

    async fn get_json<T: DeserializeOwned>(&self, uri: &str) -> T {
        let (status, _, body) = self.get(uri).await;
        assert_eq!(status, 200, "{uri}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("json")
    }

    async fn add_raw(&self, bytes: &[u8]) -> (StatusCode, Vec<u8>) {
        let (s, _, b) = self
            .send(
                Request::post("/v1/add")
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Body::from(bytes.to_vec()))
                    .expect("req"),
            )
            .await;
        (s, b)
    }

    async fn add(&self, leaf: &Leaf) -> Receipt {
        let (s, b) = self.add_raw(leaf.bytes()).await;
        assert_eq!(s, 200, "add: {}", String::from_utf8_lossy(&b));
        let r: Receipt = serde_json::from_slice(&b).expect("receipt");
        let ledger = &self.opened.state.ledger;
        r.verify(leaf.bytes(), ledger.tree_hash(), ledger.vkey())
            .expect("receipt verifies");
        r
    }

    async fn enroll(&self, role: Role, key: &SignerKey) -> Receipt {
        let body = serde_json::json!({
            "role": role.as_str(), "name": key.name(), "key": key.verifier().to_string()
        });
        let (s, _, b) = self
            .send(
                Request::post("/v1/admin/enroll")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::AUTHORIZATION, format!("Bearer {}", self.token()))
                    .body(Body::from(body.to_string()))
                    .expect("req"),
            )
            .await;
        assert_eq!(s, 200, "enroll: {}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).expect("receipt")
    }

    async fn stop(self) {
        let _ = self.opened.stop.send(true);
        drop(self.app);
        drop(self.opened.state);
        self.opened.task.await.expect("sequencer ends");
    }
}

fn problem(status: StatusCode, body: &[u8]) -> (u16, String) {
    let p: Problem = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a problem: {}", String::from_utf8_lossy(body)));
    assert_eq!(p.status, status.as_u16());
    let slug = p
        .type_
        .strip_prefix("urn:mimi-ledger:problem:")
        .expect("our type")
        .to_string();
    (status.as_u16(), slug)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_receipts_tiles_proofs_and_lookup() {
    for hash in [TreeHash::Blake3, TreeHash::Sha256] {
        let dir = tempfile::tempdir().expect("tmp");
        let log = Log::start(dir.path(), hash);
        let t = now_unix();
        let msp = test_key("msp-a.example");
        let prover = test_key("prover.example");
        // Each batch ends in its map leaf (SPEC §9): enroll 0, map 1, enroll 2, map 3.
        assert_eq!(log.enroll(Role::Msp, &msp).await.index, 0);
        assert_eq!(log.enroll(Role::Prover, &prover).await.index, 2);
        // Enrolling the key in force again appends nothing and answers its enroll leaf.
        let again = log.enroll(Role::Msp, &msp).await;
        assert_eq!(
            (again.index, again.checkpoint.lines().nth(1)),
            (0, Some("4"))
        );

        // 300 claims, concurrently: a full tile plus a partial one.
        let mut leaves = Vec::new();
        for i in 0..300u32 {
            leaves.push(claim(
                &msp,
                &format!("mailto:user{i}@example.org"),
                &format!("mimi://msp-a.example/u/{i}"),
                t,
                &[],
                None,
            ));
        }
        let log = Arc::new(log);
        let mut tasks = Vec::new();
        for l in leaves.clone() {
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move { log.add(&l).await.index }));
        }
        let mut indices = Vec::new();
        for t in tasks {
            indices.push(t.await.expect("task"));
        }
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), 300);
        assert!(indices[0] >= 4);

        // Idempotence: the exact bytes again answer the stored index.
        let again = log.add(&leaves[7]).await;
        let (_, _, b) = log
            .get(&format!(
                "/v1/proof/inclusion?leaf_hash={}",
                URL_SAFE_NO_PAD.encode(again.leaf_hash)
            ))
            .await;
        let p: InclusionProof = serde_json::from_slice(&b).expect("proof");
        assert_eq!(p.index, again.index);

        let info: Info = log.get_json("/v1/info").await;
        // The claims, in one or more batches, each closed by a map leaf.
        let n = info.size;
        assert!(n > 4 + 300 && n <= 4 + 600, "{n}");
        assert_eq!(info.hash, hash);

        // /checkpoint verifies, and its root is the root recomputed from the tiles.
        let (s, h, cp) = log.get("/checkpoint").await;
        assert_eq!(s, 200);
        assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        let ledger = Arc::clone(&log.opened.state.ledger);
        let cp = SignedCheckpoint::verify(&cp, ledger.vkey()).expect("checkpoint");
        assert_eq!(cp.checkpoint.size, n);
        let mut reader = TileHashReader::new(hash);
        for tile in tiles_for_size(n) {
            let (s, h, data) = log.get(&format!("/{}", tile.path())).await;
            assert_eq!(s, 200, "{}", tile.path());
            let cache = h[header::CACHE_CONTROL].to_str().expect("ascii");
            assert_eq!(cache.contains("immutable"), !tile.is_partial());
            reader.insert(tile, data).expect("tile");
        }
        assert_eq!(
            tree_root(hash, n, &reader).expect("root"),
            cp.checkpoint.root
        );
        let mut all = Vec::new();
        for b in entry_bundles_for_size(n) {
            let (s, _, data) = log.get(&format!("/{}", b.path())).await;
            assert_eq!(s, 200);
            all.extend(decode_entry_bundle(&data).expect("bundle"));
        }
        assert_eq!(all.len() as u64, n);
        // Every leaf that is not one of the claims or enrollments is a map leaf at its own index.
        for (i, e) in all.iter().enumerate() {
            let leaf = ledger_core::entry::Leaf::parse(e).expect("leaf");
            if let ledger_core::entry::Entry::Map(m) = leaf.entry() {
                assert_eq!(m.size, i as u64);
            } else {
                assert!(i < 4 || indices.binary_search(&(i as u64)).is_ok(), "{i}");
            }
        }
        let mut mem = ledger_core::tree::MemoryHashStore::new(hash);
        for e in &all {
            mem.append_leaf(e);
        }
        assert_eq!(mem.root(), cp.checkpoint.root);
        // Beyond the tree: 404 problem.
        let beyond = format!("/tile/0/001.p/{}", n - 256 + 1);
        for path in [
            "/tile/0/001",
            beyond.as_str(),
            "/tile/entries/002.p/1",
            "/tile/0/x1",
        ] {
            let (s, _, b) = log.get(path).await;
            assert_eq!(problem(s, &b), (404, "not-found".into()), "{path}");
        }
        // A stale (narrower) partial tile is still served.
        let (s, _, d) = log.get("/tile/0/001.p/3").await;
        assert_eq!((s.as_u16(), d.len()), (200, 96));

        // Entries and inclusion by index.
        let page: EntriesPage = log
            .get_json(&format!("/v1/entries?start={}&count=10", n - 4))
            .await;
        assert_eq!(page.entries.len(), 4);
        assert_eq!(page.entries[0].index, n - 4);
        let p: InclusionProof = log.get_json("/v1/proof/inclusion?index=5&size=100").await;
        verify_inclusion(
            hash,
            5,
            100,
            &hash.leaf_hash(all[5].as_slice()),
            &p.inclusion,
            &tree_root(hash, 100, &mem).expect("root"),
        )
        .expect("inclusion");

        // Consistency between several pairs of sizes.
        for (from, to) in [(1, n), (7, 8), (100, 257), (256, n), (n, n)] {
            let c: ConsistencyProof = log
                .get_json(&format!("/v1/proof/consistency?from={from}&to={to}"))
                .await;
            verify_consistency(
                hash,
                from,
                to,
                &tree_root(hash, from, &mem).expect("old"),
                &tree_root(hash, to, &mem).expect("new"),
                &c.consistency,
            )
            .expect("consistency");
        }

        // Lookup: none, mapped (two MSPs' view of one SII), revoked, opted out.
        let trust = log.trust();
        let a: LookupAnswer = log.get_json("/v1/lookup?sii=tel:%2B14155550199").await;
        assert_eq!(a.status, Status::None);
        verify_lookup(&a, &trust).expect("none verifies");

        let sii = "tel:+14155550100";
        let att = attestation(
            &prover,
            Action::Claim,
            sii,
            Some(("msp-a.example", "mimi://msp-a.example/u/alice")),
            t - 60,
        );
        log.add(&claim(
            &msp,
            sii,
            "mimi://msp-a.example/u/alice",
            t,
            &["Personal"],
            Some(att),
        ))
        .await;
        log.add(&claim(
            &msp,
            sii,
            "mimi://msp-a.example/u/alice2",
            t,
            &[],
            None,
        ))
        .await;
        let q = "/v1/lookup?sii=tel:%2B14155550100";
        let a: LookupAnswer = log.get_json(q).await;
        let v = verify_lookup(&a, &trust).expect("mapped verifies");
        assert_eq!(v.mappings.len(), 2);
        assert_eq!(a.keys.len(), 2, "the MSP's and the prover's enroll leaves");

        log.add(&revoke(
            &msp,
            "msp-a.example",
            sii,
            "mimi://msp-a.example/u/alice2",
            t + 1,
            None,
        ))
        .await;
        let a: LookupAnswer = log.get_json(q).await;
        assert_eq!(
            verify_lookup(&a, &trust).expect("verifies").mappings.len(),
            1
        );

        log.add(&optout(&prover, sii, t + 2)).await;
        let a: LookupAnswer = log.get_json(q).await;
        assert_eq!(a.status, Status::OptedOut);
        verify_lookup(&a, &trust).expect("opted out verifies");

        Arc::try_unwrap(log).ok().expect("sole owner").stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_problems_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::start(dir.path(), TreeHash::Blake3);
    let t = now_unix();
    let msp = test_key("msp-a.example");
    let other = test_key("msp-b.example");
    log.enroll(Role::Msp, &msp).await;
    let good = claim(
        &msp,
        "tel:+14155550100",
        "mimi://msp-a.example/u/a",
        t,
        &[],
        None,
    );
    let text = String::from_utf8(good.bytes().to_vec()).expect("utf8");

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("garbage", b"\x00\x01garbage".to_vec(), 400, "malformed"),
        ("truncated", good.bytes()[..40].to_vec(), 400, "malformed"),
        (
            "unenrolled",
            claim(
                &other,
                "tel:+14155550100",
                "mimi://msp-b.example/u/a",
                t,
                &[],
                None,
            )
            .bytes()
            .to_vec(),
            403,
            "unknown-signer",
        ),
        (
            "skewed",
            claim(
                &msp,
                "tel:+14155550100",
                "mimi://msp-a.example/u/a",
                t - 3600,
                &[],
                None,
            )
            .bytes()
            .to_vec(),
            422,
            "clock-skew",
        ),
        (
            "tampered",
            text.replace("u/a\n", "u/b\n").into_bytes(),
            403,
            "bad-signature",
        ),
        ("oversize leaf", vec![b'a'; 9000], 413, "too-large"),
        ("oversize body", vec![b'a'; 20000], 413, "too-large"),
    ];
    for (name, body, status, slug) in cases {
        let (s, b) = log.add_raw(&body).await;
        assert_eq!(problem(s, &b), (status, slug.to_string()), "{name}");
    }
    // Wrong content type.
    let (s, _, b) = log
        .send(
            Request::post("/v1/add")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(good.bytes().to_vec()))
                .expect("req"),
        )
        .await;
    assert_eq!(problem(s, &b), (415, "bad-request".into()));
    // Admin without or with a wrong token.
    for auth in [None, Some("Bearer nope")] {
        let mut req =
            Request::post("/v1/admin/enroll").header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let (s, h, b) = log.send(req.body(Body::from("{}")).expect("req")).await;
        assert_eq!(problem(s, &b), (401, "unauthorized".into()));
        assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
    }
    // Admin with bad JSON, a bad role, a key whose name differs.
    let bad_bodies = [
        "not json".to_string(),
        serde_json::json!({"role":"king","name":"msp-a.example","key":msp.verifier().to_string()})
            .to_string(),
        serde_json::json!({"role":"msp","name":"msp-x.example","key":msp.verifier().to_string()})
            .to_string(),
        serde_json::json!({"role":"msp","name":"msp-a.example","key":"nope"}).to_string(),
    ];
    for body in bad_bodies {
        let (s, _, b) = log
            .send(
                Request::post("/v1/admin/enroll")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::AUTHORIZATION, format!("Bearer {}", log.token()))
                    .body(Body::from(body.clone()))
                    .expect("req"),
            )
            .await;
        assert_eq!(problem(s, &b), (400, "bad-request".into()), "{body}");
    }
    // Query and route errors.
    for (uri, status, slug) in [
        ("/nope", 404, "not-found"),
        ("/v1/entries?start=x&count=1", 400, "bad-request"),
        ("/v1/entries?start=0&count=1001", 400, "bad-request"),
        ("/v1/entries?start=0", 400, "bad-request"),
        ("/v1/proof/inclusion?index=5", 400, "bad-request"),
        ("/v1/proof/inclusion?index=0&size=99", 400, "bad-request"),
        ("/v1/proof/inclusion?leaf_hash=AAAA", 400, "bad-request"),
        ("/v1/proof/consistency?from=0&to=1", 400, "bad-request"),
        ("/v1/proof/consistency?from=2&to=1", 400, "bad-request"),
        ("/v1/lookup", 400, "bad-request"),
        (
            "/v1/lookup?sii=tel:%2B1%20415%20555%200100",
            422,
            "non-canonical",
        ),
        ("/v1/lookup?sii=tel:%2B999", 422, "invalid-sii"),
    ] {
        let (s, h, b) = log.get(uri).await;
        assert_eq!(h[header::CONTENT_TYPE], "application/problem+json", "{uri}");
        assert_eq!(problem(s, &b), (status, slug.to_string()), "{uri}");
    }
    let (s, _, b) = log
        .send(
            Request::delete("/v1/info")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(problem(s, &b), (405, "bad-request".into()));

    // Nothing was stored by any refusal.
    let info: Info = log.get_json("/v1/info").await;
    // The enroll leaf and its batch's map leaf.
    assert_eq!(info.size, 2);
    let (s, _, metrics) = log.get("/metrics").await;
    assert_eq!(s, 200);
    let metrics = String::from_utf8(metrics).expect("utf8");
    assert!(metrics.contains("route=\"/v1/add\",code=\"422\",result=\"clock-skew\"} 1"));
    assert!(metrics.contains("ledger_tree_size 2\n"));
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_log_and_refuses_another_origin_or_hash() {
    let dir = tempfile::tempdir().expect("tmp");
    let msp = test_key("msp-a.example");
    let t = now_unix();
    let (cp1, r) = {
        let log = Log::start(dir.path(), TreeHash::Sha256);
        log.enroll(Role::Msp, &msp).await;
        let r = log
            .add(&claim(
                &msp,
                "tel:+14155550100",
                "mimi://msp-a.example/u/a",
                t,
                &[],
                None,
            ))
            .await;
        let cp = log.opened.state.ledger.head().checkpoint.to_string();
        log.stop().await;
        (cp, r)
    };
    let log = Log::start(dir.path(), TreeHash::Sha256);
    let (_, _, cp2) = log.get("/checkpoint").await;
    assert_eq!(String::from_utf8(cp2).expect("utf8"), cp1);
    // The registry was rebuilt: the MSP may still submit.
    let r2 = log
        .add(&claim(
            &msp,
            "tel:+14155550101",
            "mimi://msp-a.example/u/b",
            t,
            &[],
            None,
        ))
        .await;
    // After r's batch's map leaf.
    assert_eq!(r2.index, r.index + 2);
    log.stop().await;

    let mut c = Config::for_data_dir(dir.path());
    c.hash = Some(TreeHash::Blake3);
    let err = open_when_unlocked(&c)
        .err()
        .expect("hash change refused")
        .to_string();
    assert!(err.contains("tree hash sha256"), "{err}");
    let mut c = Config::for_data_dir(dir.path());
    c.origin = Some("other.example/log".into());
    let err = open_when_unlocked(&c)
        .err()
        .expect("origin change refused")
        .to_string();
    assert!(err.contains("origin"), "{err}");

    // A missing key file is an error for an existing log, not a reason to make a new identity.
    std::fs::remove_file(dir.path().join("log.key")).expect("rm key");
    let err = format!(
        "{:#}",
        open_when_unlocked(&Config::for_data_dir(dir.path()))
            .err()
            .expect("missing key refused")
    );
    assert!(err.contains("created with verifier key"), "{err}");
    assert!(!dir.path().join("log.key").exists());
}

/// `--compress` is fixed at creation, like origin and hash: a compressed log restarts compressed
/// when the flag is omitted, and asking for the other setting is refused with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_compression_is_fixed_at_creation() {
    let dir = tempfile::tempdir().expect("tmp");
    let msp = test_key("msp-a.example");
    let mut c = Config::for_data_dir(dir.path());
    c.origin = Some("test.example/log".into());
    c.compress = Some(true);
    let opened = open_when_unlocked(&c).expect("create compressed");
    let log = Log {
        app: router(opened.state.clone()),
        opened,
    };
    log.enroll(Role::Msp, &msp).await;
    let r = log
        .add(&claim(
            &msp,
            "tel:+14155550100",
            "mimi://msp-a.example/u/a",
            now_unix(),
            &[],
            None,
        ))
        .await;
    log.stop().await;
    assert!(dir.path().join("store.lz4").exists());

    let mut c = Config::for_data_dir(dir.path());
    c.compress = Some(false);
    let err = format!(
        "{:#}",
        open_when_unlocked(&c).err().expect("uncompressed refused")
    );
    assert!(err.contains("created compressed"), "{err}");

    // Omitted: the stored choice; the entry is there.
    let log = Log::start(dir.path(), TreeHash::Blake3);
    assert_eq!(log.opened.state.ledger.head().size, r.index + 2);
    log.stop().await;

    // And the other way round.
    let plain = tempfile::tempdir().expect("tmp");
    let log = Log::start(plain.path(), TreeHash::Blake3);
    log.stop().await;
    let mut c = Config::for_data_dir(plain.path());
    c.compress = Some(true);
    let err = format!(
        "{:#}",
        open_when_unlocked(&c).err().expect("compressed refused")
    );
    assert!(err.contains("created uncompressed"), "{err}");
    assert!(!plain.path().join("store.lz4").exists());
}
