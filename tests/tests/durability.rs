//! Durability of the real `log-server` (issue 3 "Durability"): while concurrent clients submit, the
//! server is `kill -9`ed at random moments and restarted on the same data folder. After each restart
//! every acknowledged leaf is at its acknowledged index with the same leaf hash, the stored tree
//! hashes to the signed checkpoint, and every checkpoint served before is consistent with the new
//! one. Also: a restart with another origin or hash is refused, and SIGTERM exits cleanly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ledger_core::api::Receipt;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Leaf, Role};
use ledger_core::key::VerifierKey;
use ledger_core::lookup::{verify_lookup, Trust};
use ledger_core::testkit::{claim, test_key};
use ledger_core::tree::MemoryHashStore;
use ledger_core::{Hash, TreeHash};
use ledger_e2e::{assert_map_rebuilds, mail_sii, now, Options, Rng, TestLog};

const CLIENTS: usize = 4;

/// One acknowledged submission: the server promised `leaf` is at `index`.
#[derive(Clone)]
struct Ack {
    index: u64,
    leaf_hash: Hash,
    leaf: Vec<u8>,
}

/// What the clients and the watcher share with the test.
struct Shared {
    url: RwLock<String>,
    acks: Mutex<Vec<Ack>>,
    /// Every distinct checkpoint note the server served (receipts and `/checkpoint`).
    checkpoints: Mutex<HashSet<Vec<u8>>>,
    stop: AtomicBool,
    paused: AtomicBool,
    /// Clients currently inside a request cycle (so that a pause can wait for quiet).
    busy: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, msg: String) {
        self.failures.lock().unwrap().push(msg);
    }
}

#[test]
fn kill9_during_load_five_cycles() {
    kill9_cycles(TreeHash::Blake3, 5);
}

#[test]
#[ignore = "long: 25 kill -9 cycles; run with --ignored"]
fn kill9_during_load_twenty_five_cycles() {
    kill9_cycles(TreeHash::Sha256, 25);
}

fn kill9_cycles(th: TreeHash, cycles: usize) {
    let started = Instant::now();
    let mut rng = Rng::from_env(&format!("durability {} x{cycles}", th.name()));
    let mut log = TestLog::start(Options::new(th));
    let msps = [test_key("msp-a.example"), test_key("msp-b.example")];
    for m in &msps {
        log.enroll(Role::Msp, m);
    }
    let vkey = log.vkey().clone();
    let shared = Arc::new(Shared {
        url: RwLock::new(log.url()),
        acks: Mutex::new(Vec::new()),
        checkpoints: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        busy: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    });

    let mut handles = Vec::new();
    for c in 0..CLIENTS {
        let (shared, vkey, msp) = (shared.clone(), vkey.clone(), msps[c % msps.len()].clone());
        handles.push(std::thread::spawn(move || client(c, shared, th, vkey, msp)));
    }
    {
        let shared = shared.clone();
        handles.push(std::thread::spawn(move || watcher(shared)));
    }

    // Each acknowledged-so-far checkpoint must stay consistent with everything later.
    let mut last_verified: Option<SignedCheckpoint> = None;
    let mut verified = HashMap::new();
    let mut acks_per_cycle = Vec::new();
    for cycle in 0..=cycles {
        let final_round = cycle == cycles;
        // Let the clients run, then kill at a random moment (the last round stops with SIGTERM).
        let before = shared.acks.lock().unwrap().len();
        let run_for = Duration::from_millis(rng.range(20, 700));
        let deadline = Instant::now() + run_for;
        while Instant::now() < deadline || shared.acks.lock().unwrap().len() == before {
            assert!(
                Instant::now() < deadline + Duration::from_secs(30),
                "no submission acknowledged for 30 s in cycle {cycle}; output:\n{}",
                log.output()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if final_round {
            let status = log.sigterm();
            assert!(
                status.success(),
                "SIGTERM under load must exit cleanly, got {status}"
            );
        } else {
            log.kill9();
        }
        shared.paused.store(true, Ordering::SeqCst);
        wait_quiet(&shared);
        acks_per_cycle.push(shared.acks.lock().unwrap().len() - before);

        let t_restart = Instant::now();
        log.restart();
        *shared.url.write().unwrap() = log.url();
        let t_verify = Instant::now();
        let cp = verify_after_restart(&log, &shared, &mut verified, last_verified.as_ref(), cycle);
        eprintln!(
            "cycle {cycle}: ran {run_for:?}, restart {:?}, verify {:?} (size {})",
            t_verify - t_restart,
            t_verify.elapsed(),
            cp.checkpoint.size
        );
        last_verified = Some(cp);
        shared.paused.store(false, Ordering::SeqCst);
    }
    shared.stop.store(true, Ordering::SeqCst);
    shared.paused.store(false, Ordering::SeqCst);
    for h in handles {
        h.join().expect("client thread");
    }
    let failures = shared.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "client failures:\n{}",
        failures.join("\n")
    );
    // A final check once all clients have stopped.
    verify_after_restart(
        &log,
        &shared,
        &mut verified,
        last_verified.as_ref(),
        cycles + 1,
    );
    let total = shared.acks.lock().unwrap().len();
    eprintln!(
        "{} cycles ({}): {total} acknowledged leaves, per cycle {acks_per_cycle:?}, size {}, {:?}",
        cycles,
        th.name(),
        log.info().size,
        started.elapsed()
    );
}

/// A client: submits fresh claims; a submission whose fate is unknown (connection dropped, server
/// gone) is retried with the exact same bytes, which must then land at one stable index.
fn client(
    c: usize,
    shared: Arc<Shared>,
    th: TreeHash,
    vkey: VerifierKey,
    msp: ledger_core::key::SignerKey,
) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let mut pending: Option<Vec<u8>> = None;
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        // Announce first, then check the pause flag: the test sets the flag and then waits for
        // `busy == 0`, so no request starts while it verifies.
        shared.busy.fetch_add(1, Ordering::SeqCst);
        if shared.paused.load(Ordering::SeqCst) {
            shared.busy.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let leaf = pending.take().unwrap_or_else(|| {
            n += 1;
            let ssi = format!("mimi://{}/u/c{c}n{n}", msp.name());
            claim(
                &msp,
                &mail_sii(&format!("d{c}x"), n),
                &ssi,
                now(),
                &[],
                None,
            )
            .bytes()
            .to_vec()
        });
        let url = shared.url.read().unwrap().clone();
        let result = http
            .post(format!("{url}/v1/add"))
            .header("content-type", "text/plain")
            .body(leaf.clone())
            .send()
            .and_then(|r| {
                let status = r.status().as_u16();
                r.bytes().map(|b| (status, b))
            });
        match result {
            Ok((200, body)) => match serde_json::from_slice::<Receipt>(&body) {
                Ok(receipt) => match receipt.verify(&leaf, th, &vkey) {
                    Ok(_) => {
                        shared
                            .checkpoints
                            .lock()
                            .unwrap()
                            .insert(receipt.checkpoint.clone().into_bytes());
                        let mut acks = shared.acks.lock().unwrap();
                        // A retried leaf may already be acknowledged: it must keep its index.
                        if let Some(prev) = acks.iter().find(|a| a.leaf == leaf) {
                            if prev.index != receipt.index {
                                shared.fail(format!(
                                    "leaf acknowledged at {} and again at {}",
                                    prev.index, receipt.index
                                ));
                            }
                        } else {
                            acks.push(Ack {
                                index: receipt.index,
                                leaf_hash: receipt.leaf_hash,
                                leaf: leaf.clone(),
                            });
                        }
                    }
                    Err(e) => shared.fail(format!(
                        "receipt for index {} does not verify: {e}",
                        receipt.index
                    )),
                },
                Err(e) => shared.fail(format!("200 answer is not a receipt: {e}")),
            },
            Ok((503, _)) => pending = Some(leaf), // overloaded: retry the same bytes
            Ok((status, body)) => {
                shared.fail(format!(
                    "unexpected {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Err(_) => {
                // The server died (or is not back yet): the fate of this leaf is unknown.
                pending = Some(leaf);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        shared.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls `/checkpoint` and remembers every checkpoint served.
fn watcher(shared: Arc<Shared>) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    while !shared.stop.load(Ordering::SeqCst) {
        let url = shared.url.read().unwrap().clone();
        if let Ok(r) = http.get(format!("{url}/checkpoint")).send() {
            if r.status().as_u16() == 200 {
                if let Ok(b) = r.bytes() {
                    shared.checkpoints.lock().unwrap().insert(b.to_vec());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(7));
    }
}

fn wait_quiet(shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.busy.load(Ordering::SeqCst) != 0 {
        assert!(Instant::now() < deadline, "clients did not pause");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The checks after a restart (clients paused): returns the new verified checkpoint.
fn verify_after_restart(
    log: &TestLog,
    shared: &Shared,
    verified: &mut HashMap<Vec<u8>, SignedCheckpoint>,
    previous: Option<&SignedCheckpoint>,
    cycle: usize,
) -> SignedCheckpoint {
    let th = log.hash();
    let cp = log.checkpoint();
    let size = cp.checkpoint.size;
    assert_eq!(
        log.info().size,
        size,
        "cycle {cycle}: /v1/info size = /checkpoint size"
    );

    // The stored tree (entry bundles and tiles) hashes to the signed checkpoint.
    let leaves = log.verify_tree(&cp);

    // The stored map is the map rebuilt from the entries: every map leaf commits the map of the
    // leaves before it, the checkpoint ends in one, and lookups (whose map proofs come from the
    // stored nodes) verify with completeness — for acknowledged claims' SIIs and for an SII that
    // was never claimed (an absence proof).
    let (_, map_leaves) = assert_map_rebuilds(th, &leaves);
    assert!(size == 0 || map_leaves > 0, "cycle {cycle}: no map leaf");
    let trust = Trust::new(log.vkey().clone(), th);
    let acks_now = shared.acks.lock().unwrap().clone();
    let step = (acks_now.len() / 8).max(1);
    let siis = acks_now
        .iter()
        .step_by(step)
        .filter_map(|a| {
            let leaf = Leaf::parse(&a.leaf).ok()?;
            leaf.entry().sii().map(|s| s.to_string())
        })
        .chain(["mailto:never-claimed@example.org".to_string()]);
    for sii in siis {
        let answer = log.lookup(&sii);
        let v = verify_lookup(&answer, &trust)
            .unwrap_or_else(|e| panic!("cycle {cycle}: lookup of {sii}: {e}"));
        assert_eq!(
            v.map_index.map(|i| i + 1),
            Some(v.checkpoint.checkpoint.size)
        );
    }

    // Every acknowledged leaf is where it was acknowledged.
    let acks = shared.acks.lock().unwrap().clone();
    for a in &acks {
        assert!(
            a.index < size,
            "cycle {cycle}: acknowledged index {} is not below the restarted size {size}",
            a.index
        );
        let stored = &leaves[a.index as usize];
        assert_eq!(
            th.leaf_hash(stored),
            a.leaf_hash,
            "cycle {cycle}: leaf hash at index {}",
            a.index
        );
        assert_eq!(
            stored, &a.leaf,
            "cycle {cycle}: leaf bytes at index {}",
            a.index
        );
    }
    let mut indexes: Vec<u64> = acks.iter().map(|a| a.index).collect();
    indexes.sort_unstable();
    let before = indexes.len();
    indexes.dedup();
    assert_eq!(
        before,
        indexes.len(),
        "cycle {cycle}: two acknowledged leaves share an index"
    );

    // Every checkpoint served before is consistent with the new one: locally, each is the root of
    // a prefix of the stored leaves; and via the log's own consistency proofs for a spread of them.
    let notes: Vec<Vec<u8>> = shared.checkpoints.lock().unwrap().iter().cloned().collect();
    let mut by_size: BTreeMap<u64, SignedCheckpoint> = BTreeMap::new();
    for note in notes {
        // Signature checks are slow in debug builds: each distinct note is verified once.
        let c = verified
            .entry(note)
            .or_insert_with_key(|n| log.verify_checkpoint(n))
            .clone();
        if let Some(other) = by_size.get(&c.checkpoint.size) {
            assert_eq!(
                other.checkpoint.root, c.checkpoint.root,
                "cycle {cycle}: two checkpoints of size {} with different roots",
                c.checkpoint.size
            );
        }
        by_size.insert(c.checkpoint.size, c);
    }
    if let Some(p) = previous {
        by_size.insert(p.checkpoint.size, p.clone());
    }
    let mut store = MemoryHashStore::new(th);
    for (s, c) in &by_size {
        assert!(
            *s <= size,
            "cycle {cycle}: a served checkpoint of size {s} is beyond the restarted size {size}"
        );
        while store.size() < *s {
            store.append_leaf(&leaves[store.size() as usize]);
        }
        assert_eq!(
            store.root(),
            c.checkpoint.root,
            "cycle {cycle}: checkpoint of size {s} is not a prefix"
        );
    }
    let sizes: Vec<u64> = by_size.keys().copied().collect();
    let step = (sizes.len() / 15).max(1);
    for s in sizes.iter().step_by(step).chain(sizes.last()) {
        log.assert_consistent(&by_size[s], &cp);
    }
    cp
}

#[test]
fn restart_with_other_origin_or_hash_is_refused_and_sigterm_is_clean() {
    let mut log = TestLog::start(Options::new(TreeHash::Sha256));
    let m = test_key("msp-a.example");
    log.enroll(Role::Msp, &m);
    let r = log.submit_ok(&claim(
        &m,
        "mailto:keep@example.com",
        "mimi://msp-a.example/u/keep",
        now(),
        &[],
        None,
    ));
    let cp = log.checkpoint();
    let token = log.admin_token();

    // SIGTERM on an idle server: exit status 0.
    let status = log.sigterm();
    assert!(
        status.success(),
        "SIGTERM must exit cleanly (0), got {status}; output:\n{}",
        log.output()
    );

    // Another origin: refused, saying so.
    let other_origin = log.options().clone().origin("other.example/log");
    let out = log.run_expecting_exit(&other_origin, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a restart with another origin must fail; output:\n{}",
        out.output
    );
    assert!(
        out.output.contains("origin"),
        "the refusal must say the origin differs; output:\n{}",
        out.output
    );
    assert!(
        out.output.contains("other.example/log") || out.output.contains(&log.options().origin),
        "the refusal should name the origins; output:\n{}",
        out.output
    );

    // Another hash: refused, saying so.
    let other_hash = Options {
        hash: TreeHash::Blake3,
        ..log.options().clone()
    };
    let out = log.run_expecting_exit(&other_hash, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a restart with another hash must fail; output:\n{}",
        out.output
    );
    assert!(
        out.output.contains("hash"),
        "the refusal must say the hash differs; output:\n{}",
        out.output
    );

    // The same options still work, and nothing was lost or changed by the refused starts.
    log.restart();
    assert_eq!(log.admin_token(), token, "admin token kept");
    let again = log.checkpoint();
    assert_eq!(
        again.checkpoint, cp.checkpoint,
        "checkpoint after the refused restarts"
    );
    let leaves = log.verify_tree(&again);
    assert_eq!(
        TreeHash::Sha256.leaf_hash(&leaves[r.index as usize]),
        r.leaf_hash
    );
    let info = log.info();
    assert_eq!(
        (info.origin.as_str(), info.hash),
        (log.options().origin.as_str(), TreeHash::Sha256)
    );
}
