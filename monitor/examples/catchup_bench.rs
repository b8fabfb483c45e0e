//! Catch-up benchmark: builds a log of N entries in memory (default 100,000; enrollments, claims of
//! distinct SIIs by 50 MSPs, half of them with a prover's attestation), sealed as a log server
//! seals its batches — a log-signed map leaf (SPEC §9) after the enrollments and after every
//! `--batch` claims (default 128), and at the end — serves its C2SP tiles on 127.0.0.1 with a
//! minimal HTTP server, and runs the monitor once over it with all rules on. Prints entries/s
//! verified and the process's peak RSS.
//!
//! `cargo run --release -p monitor --example catchup_bench -- [N] [--step-bundles B] [--batch C]`
//!
//! `BENCH_CONFLICT=all|watched|off` sets the `conflicting_claim` scope (default `all`, which keeps
//! a state record per SII in sled: the most expensive rule). Besides wall-clock entries/s it prints
//! entries per CPU-second, which is what to compare on a shared machine.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_core::entry::{Action, Enroll, Entry, Leaf, MapLeaf, Role};
use ledger_core::map;
use ledger_core::sii::Name;
use ledger_core::testkit::{attestation, claim, test_key};
use ledger_core::tile::{
    encode_entry_bundle, entry_bundles_for_size, read_tile_data, tiles_for_size,
};
use ledger_core::tree::MemoryHashStore;
use ledger_core::TreeHash;
use rayon::prelude::*;

const ORIGIN: &str = "bench.example/log";

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let step_bundles: u64 = args
        .iter()
        .position(|a| a == "--step-bundles")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let batch: usize = args
        .iter()
        .position(|a| a == "--batch")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
        .max(1);
    let conflict = std::env::var("BENCH_CONFLICT").unwrap_or_else(|_| "all".into());

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(ledger_serve::log_filter())
        .init();
    // 1. Build the log.
    let t0 = Instant::now();
    let log_key = test_key(ORIGIN);
    let prover = test_key("prover.example");
    let msps: Vec<_> = (0..50)
        .map(|i| test_key(&format!("msp-{i}.example")))
        .collect();
    let now = 1_764_158_400;
    let th = TreeHash::Blake3;
    let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(n);
    for (role, key) in
        std::iter::once((Role::Prover, &prover)).chain(msps.iter().map(|k| (Role::Msp, k)))
    {
        let e = Entry::Enroll(Enroll {
            role,
            name: Name::parse(key.name())?,
            key: key.verifier(),
            time: now,
        });
        leaves.push(Leaf::sign(e, &log_key)?.bytes().to_vec());
    }
    // One map leaf after the enrollments and one per `batch` claims (and at the end): the number
    // of claims that makes N leaves in all.
    let base = leaves.len() + 1;
    let rest = n.saturating_sub(base);
    let claim_count = rest - rest.div_ceil(batch + 1);
    // Each claim's bytes and map key (the parsed leaves themselves would take 1.5 GB at 1M).
    let claims: Vec<(Vec<u8>, Option<ledger_core::Hash>)> = (0..claim_count)
        .into_par_iter()
        .map(|i| {
            let msp = &msps[i % msps.len()];
            let sii = format!("mailto:user{i}@example.com");
            let ssi = format!("mimi://{}/u/{i}", msp.name());
            // One claim a second: each MSP claims 72 SIIs an hour, under the burst limit.
            let time = now + i as u64;
            let att = (i % 2 == 0).then(|| {
                attestation(
                    &prover,
                    Action::Claim,
                    &sii,
                    Some((msp.name(), &ssi)),
                    time - 10,
                )
            });
            let leaf = claim(msp, &sii, &ssi, time, &[], att);
            (leaf.bytes().to_vec(), map::key_of(th, leaf.entry()))
        })
        .collect();
    // The map, batch by batch (the monitor's own compact store; the map's rules are the core's).
    let mut map = monitor::mapstate::MapState::new(th);
    let mut additions = Vec::new();
    for (index, l) in leaves.iter().enumerate() {
        let parsed = Leaf::parse(l)?;
        additions.extend(map::addition(
            th,
            index as u64,
            &th.leaf_hash(l),
            parsed.entry(),
        ));
    }
    let mut seal = |leaves: &mut Vec<Vec<u8>>, additions: &mut Vec<map::MapAddition>| {
        let root = map.apply(additions)?;
        additions.clear();
        let size = leaves.len() as u64;
        leaves.push(
            Leaf::sign(Entry::Map(MapLeaf { size, root }), &log_key)?
                .bytes()
                .to_vec(),
        );
        anyhow::Ok(())
    };
    seal(&mut leaves, &mut additions)?;
    for chunk in claims.chunks(batch) {
        for (bytes, key) in chunk {
            let index = leaves.len() as u64;
            if let Some(key) = key {
                additions.push(map::MapAddition {
                    key: *key,
                    index,
                    leaf_hash: th.leaf_hash(bytes),
                });
            }
            leaves.push(bytes.clone());
        }
        seal(&mut leaves, &mut additions)?;
    }
    drop(claims);
    drop(map);
    let mut store = MemoryHashStore::new(th);
    for l in &leaves {
        store.append_leaf(l);
    }
    let size = leaves.len() as u64;
    let cp = SignedCheckpoint::sign(
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: store.root(),
        },
        &log_key,
    )?;
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    files.insert("checkpoint".into(), cp.to_bytes());
    for t in tiles_for_size(size) {
        files.insert(t.path(), read_tile_data(&t, &store)?);
    }
    for b in entry_bundles_for_size(size) {
        let start = (b.index * 256) as usize;
        let refs: Vec<&[u8]> = leaves[start..start + usize::from(b.width)]
            .iter()
            .map(Vec::as_slice)
            .collect();
        files.insert(b.path(), encode_entry_bundle(&refs));
    }
    drop(leaves);
    drop(store);
    eprintln!(
        "built a {size}-entry log (map leaves every {batch} claims) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // 2. Serve it.
    let files = Arc::new(files);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let files = files.clone();
            std::thread::spawn(move || {
                let Ok(mut w) = stream.try_clone() else {
                    return;
                };
                let mut r = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let path = line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("/")
                        .trim_start_matches('/');
                    let res = match files.get(path) {
                        Some(b) => w
                            .write_all(
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", b.len())
                                    .as_bytes(),
                            )
                            .and_then(|_| w.write_all(b)),
                        None => w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
                    };
                    if res.is_err() {
                        return;
                    }
                }
            });
        }
    });

    // 3. Monitor it once.
    let dir = tempfile::tempdir()?;
    let config = monitor::config::Config::parse(&format!(
        "[[log]]\nurl = \"http://{addr}\"\norigin = \"{ORIGIN}\"\nvkey = \"{}\"\n\n\
         [[watch]]\nprefix = \"tel:+1415555\"\nallowed = [\"msp-0.example\"]\n\n\
         [rules]\nconflicting_claim = \"{conflict}\"\nunattested_claim = \"watched\"\ntrusted_provers = [\"prover.example\"]\n\
         claim_burst = {{ max_siis = 100, window_s = 3600 }}\n\n\
         [[sink]]\ntype = \"file\"\npath = \"{}\"\n",
        log_key.verifier(),
        dir.path().join("alerts.jsonl").display()
    ))?;
    let rss_before = peak_rss_kib();
    let cpu0 = cpu_seconds();
    let t1 = Instant::now();
    let ok = monitor::run(
        &config,
        &monitor::RunOptions {
            once: true,
            state_dir: dir.path().join("state"),
            metrics_listen: None,
            metrics_limits: ledger_serve::Limits::default(),
            step_bundles,
            snapshot_after_bytes: monitor::DEFAULT_SNAPSHOT_AFTER_BYTES,
            progress_bar: false,
        },
    )?;
    let secs = t1.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl"))?
        .lines()
        .count();
    println!(
        "catch-up of {size} entries: {secs:.2} s wall, {:.0} entries/s; {cpu:.2} CPU-s \
         ({:.0} entries per CPU-second); ok={ok}; {alerts} alerts; peak RSS {} MiB (before catch-up {} MiB; \
         includes the in-memory log being served); {} threads",
        size as f64 / secs,
        size as f64 / cpu.max(1e-9),
        peak_rss_kib() / 1024,
        rss_before / 1024,
        rayon::current_num_threads()
    );
    Ok(())
}
