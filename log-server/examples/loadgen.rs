//! Load generator for a running log-server (127.0.0.1 only in this project's rules).
//!
//! ```text
//! cargo run --release -p log-server --example loadgen -- --url http://127.0.0.1:8080 \
//!     --claims 100000 --concurrency 256 --admin-token-file ./ledger-data/admin.token \
//!     [--msps 8] [--lookups N] [--server-pid PID] [--data-dir ./ledger-data] [--verify 200]
//!     [--lookup-run RUN:N] [--lookup-url MIRROR_URL]
//!     [--bulk 1000]
//! ```
//!
//! 1. enrolls `--msps` fresh MSP keys through the admin API;
//! 2. pre-signs `--claims` claims (on all cores), so the run measures the server, not the signer;
//! 3. posts them with `--concurrency` connections and reports claims/s and latency percentiles
//!    (with `--bulk N`, in bundles of N through `POST /v1/add-bundle`, one request per bundle:
//!    claims/s counts claims, the latencies are per bundle);
//! 4. runs `--lookups` lookups of random claimed SIIs, reports lookups/s and latency percentiles;
//! 5. verifies `--verify` receipts and lookup answers with `ledger_core` (outside the timed parts);
//! 6. prints the server's RSS (`/proc/<pid>/status`) and the data folder's bytes per entry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use ledger_core::api::{Info, LookupAnswer, Receipt};
use ledger_core::entry::{Claim, Entry, Leaf};
use ledger_core::key::{KeyAlg, SignerKey, VerifierKey};
use ledger_core::lookup::{verify_lookup, Trust};
use ledger_core::sii::{Name, Sii, Ssi};
use rand_core::{OsRng, RngCore as _};
use rayon::prelude::*;

#[derive(Debug, Parser)]
#[command(about = "mimi-ledger log-server load generator")]
struct Args {
    /// Base URL of the log, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Number of claims to submit.
    #[arg(long, default_value_t = 10_000)]
    claims: usize,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// File with the admin bearer token (to enroll the MSPs).
    #[arg(long)]
    admin_token_file: PathBuf,
    /// Number of MSPs to enroll and sign claims with.
    #[arg(long, default_value_t = 8)]
    msps: usize,
    /// Number of lookups (default: as many as claims).
    #[arg(long)]
    lookups: Option<usize>,
    /// The server's process id, to report its memory use.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's data folder, to report bytes on disk per entry.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How many receipts and lookup answers to verify after the timed runs.
    #[arg(long, default_value_t = 100)]
    verify: usize,
    /// Submit in bundles of N claims (1..=1000) through /v1/add-bundle instead of one request
    /// per claim.
    #[arg(long, value_name = "N")]
    bulk: Option<usize>,
    /// Look up SIIs of an earlier run instead of this run's: `RUN:N` picks at random among the
    /// first N claims of run RUN (the run id each run prints), e.g. every claim of a 10M log.
    #[arg(long, value_name = "RUN:N")]
    lookup_run: Option<String>,
    /// Send the timed lookups to this server instead of --url (a DP mirror of the log, to compare
    /// its lookups/s with the log's); claims and the verification sample still go to --url.
    #[arg(long, value_name = "URL")]
    lookup_url: Option<String>,
}

use ledger_core::time::now_unix as now;

/// The SII of claim `i` of run `run`: unique per run, so that runs against one log do not pile up
/// entries on the same SIIs (which would make later lookups bigger and slower).
fn sii_text(run: &str, i: usize) -> String {
    format!("mailto:user{i}.{run}@example.org")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `jobs` requests with `concurrency` workers; returns per-request latencies and wall time.
/// POSTs `body` until the log takes it: a 503 (overloaded, disk low) is retried every 20 ms, up
/// to 100 times; any other failure is an error naming `what`.
async fn post_retrying(
    http: &reqwest::Client,
    url: String,
    content_type: &str,
    body: Vec<u8>,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let mut attempt = 0;
    loop {
        let resp = http
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status();
        if status.as_u16() == 503 && attempt < 100 {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        if !status.is_success() {
            bail!("{what}: {status} {}", resp.text().await?);
        }
        return Ok(resp);
    }
}

async fn run_pool<F, Fut>(
    jobs: usize,
    concurrency: usize,
    f: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = Arc::clone(&next);
        let f = Arc::clone(&f);
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    break;
                }
                let t = Instant::now();
                f(i).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(jobs);
    for w in workers {
        all.extend(w.await??);
    }
    let wall = start.elapsed();
    all.sort_unstable();
    Ok((all, wall))
}

/// Prints `count` operations in `wall` and the latencies of the `lat.len()` requests (one per
/// operation, or one per bundle with `--bulk`).
fn report(
    what: &str,
    count: usize,
    lat: &[Duration],
    wall: Duration,
    cpu: (Option<f64>, Option<f64>),
) {
    let cpu_text = |c: Option<f64>| c.map_or("?".to_string(), |c| format!("{c:.2}"));
    let per = if count == lat.len() {
        String::new()
    } else {
        format!(" ({} requests)", lat.len())
    };
    println!(
        "{what}: {count} in {:.2} s = {:.0}/s{per}; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; CPU s: server {}, loadgen {}",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64(),
        ms(percentile(lat, 0.50)),
        ms(percentile(lat, 0.99)),
        ms(percentile(lat, 1.0)),
        cpu_text(cpu.0),
        cpu_text(cpu.1),
    );
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`, assuming 100 ticks/s).
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds (server, loadgen) spent between two [`cpu_secs`] snapshots.
fn cpu_delta(
    server: Option<u32>,
    before: (Option<f64>, Option<f64>),
) -> (Option<f64>, Option<f64>) {
    let d = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    (
        server.and_then(|p| d(cpu_secs(Some(p)), before.0)),
        d(cpu_secs(None), before.1),
    )
}

fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The bytes the files below `dir` hold and the bytes the filesystem allocated for them.
fn dir_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let (mut len, mut allocated) = (0, 0);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => {
                    let (l, a) = dir_bytes(&e.path());
                    len += l;
                    allocated += a + m.blocks() * 512;
                }
                Ok(m) => {
                    len += m.len();
                    allocated += m.blocks() * 512;
                }
                Err(_) => {}
            }
        }
    }
    (len, allocated)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let token = std::fs::read_to_string(&args.admin_token_file)
        .with_context(|| format!("reading {}", args.admin_token_file.display()))?
        .trim()
        .to_string();

    let info: Info = http
        .get(format!("{url}/v1/info"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let vkey = VerifierKey::parse(&info.vkey).context("log vkey")?;
    println!(
        "log {} ({}), size {} at start",
        info.origin, info.hash, info.size
    );

    // 1. Enroll MSPs with fresh keys (unique names per run).
    let mut run_id = [0u8; 4];
    OsRng.fill_bytes(&mut run_id);
    let run_id: String = run_id.iter().map(|b| format!("{b:02x}")).collect();
    println!("run id {run_id}");
    let mut msps = Vec::new();
    for m in 0..args.msps.max(1) {
        let name = format!("msp{m}-{run_id}.example");
        let key = SignerKey::generate(&name, KeyAlg::Ed25519, &mut OsRng)?;
        let resp = http
            .post(format!("{url}/v1/admin/enroll"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "role": "msp", "name": name, "key": key.verifier().to_string()
            }))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("enroll {name}: {} {}", resp.status(), resp.text().await?);
        }
        msps.push(key);
    }
    println!("enrolled {} MSPs", msps.len());

    // 2. Pre-sign claims on all cores.
    let t = now();
    let started = Instant::now();
    let leaves: Vec<Vec<u8>> = (0..args.claims)
        .into_par_iter()
        .map(|i| {
            let msp = &msps[i % msps.len()];
            let entry = Entry::Claim(Claim {
                sii: Sii::parse(&sii_text(&run_id, i)).expect("generated SIIs are canonical"),
                msp: Name::parse(msp.name()).expect("generated names are valid"),
                ssi: Ssi::parse(&format!("mimi://{}/u/{i}", msp.name())).expect("valid SSI"),
                time: t,
                expires: None,
                tags: Vec::new(),
                attestation: None,
            });
            Leaf::sign(entry, msp)
                .expect("claim signs")
                .bytes()
                .to_vec()
        })
        .collect();
    let leaf_bytes: usize = leaves.iter().map(Vec::len).sum();
    println!(
        "pre-signed {} claims in {:.2} s, {:.0} leaf bytes per claim",
        leaves.len(),
        started.elapsed().as_secs_f64(),
        leaf_bytes as f64 / leaves.len().max(1) as f64
    );

    // 3. Post them.
    let leaves = Arc::new(leaves);
    let receipts: Arc<std::sync::Mutex<Vec<(usize, Receipt)>>> = Arc::default();
    let sample_every = (args.claims / args.verify.max(1)).max(1);
    let before = (
        args.server_pid.and_then(|p| cpu_secs(Some(p))),
        cpu_secs(None),
    );
    let bundle = args.bulk.unwrap_or(0);
    if args.bulk.is_some() && !(1..=ledger_core::bundle::MAX_BUNDLE_LEAVES).contains(&bundle) {
        bail!(
            "--bulk must be 1..={}",
            ledger_core::bundle::MAX_BUNDLE_LEAVES
        );
    }
    let (lat, wall) = if bundle > 0 {
        let (http, url, leaves, receipts) = (
            http.clone(),
            url.clone(),
            Arc::clone(&leaves),
            Arc::clone(&receipts),
        );
        let jobs = args.claims.div_ceil(bundle);
        run_pool(jobs, args.concurrency, move |b| {
            let (http, url, leaves, receipts) = (
                http.clone(),
                url.clone(),
                Arc::clone(&leaves),
                Arc::clone(&receipts),
            );
            async move {
                let range = b * bundle..((b + 1) * bundle).min(leaves.len());
                let body = ledger_core::bundle::encode_bundle(&leaves[range.clone()])?;
                let resp = post_retrying(
                    &http,
                    format!("{url}/v1/add-bundle"),
                    "application/octet-stream",
                    body,
                    &format!("add-bundle {b}"),
                )
                .await?;
                let items: Vec<ledger_core::bundle::BundleItem> = resp.json().await?;
                if items.len() != range.len() {
                    bail!(
                        "add-bundle {b}: {} answers for {} leaves",
                        items.len(),
                        range.len()
                    );
                }
                let mut sampled = Vec::new();
                for (i, item) in range.clone().zip(items) {
                    match item {
                        ledger_core::bundle::BundleItem::Receipt(r) => {
                            if i % sample_every == 0 {
                                sampled.push((i, r));
                            }
                        }
                        ledger_core::bundle::BundleItem::Problem(p) => {
                            bail!(
                                "add-bundle {b}: claim {i} refused: {} {}",
                                p.type_,
                                p.detail
                            )
                        }
                    }
                }
                receipts
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .extend(sampled);
                Ok(())
            }
        })
        .await?
    } else {
        let (http, url, leaves, receipts) = (
            http.clone(),
            url.clone(),
            Arc::clone(&leaves),
            Arc::clone(&receipts),
        );
        run_pool(args.claims, args.concurrency, move |i| {
            let (http, url, leaves, receipts) = (
                http.clone(),
                url.clone(),
                Arc::clone(&leaves),
                Arc::clone(&receipts),
            );
            async move {
                let resp = post_retrying(
                    &http,
                    format!("{url}/v1/add"),
                    "text/plain",
                    leaves[i].clone(),
                    &format!("add {i}"),
                )
                .await?;
                if i % sample_every == 0 {
                    let r: Receipt = resp.json().await?;
                    receipts
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push((i, r));
                } else {
                    let _ = resp.bytes().await?;
                }
                Ok(())
            }
        })
        .await?
    };
    report(
        "claims",
        args.claims,
        &lat,
        wall,
        cpu_delta(args.server_pid, before),
    );

    // 4. Lookups of random claimed SIIs.
    let lookups = args.lookups.unwrap_or(args.claims);
    let (lookup_run, lookup_range) = match &args.lookup_run {
        Some(spec) => {
            let (run, n) = spec
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--lookup-run wants RUN:N"))?;
            (
                run.to_string(),
                n.parse::<usize>().context("--lookup-run N")?,
            )
        }
        None => (run_id.clone(), args.claims),
    };
    let mut picks = vec![0usize; lookups];
    for p in picks.iter_mut() {
        *p = (OsRng.next_u64() % lookup_range.max(1) as u64) as usize;
    }
    let picks = Arc::new(picks);
    let before = (
        args.server_pid.and_then(|p| cpu_secs(Some(p))),
        cpu_secs(None),
    );
    let (lat, wall) = {
        let target = args
            .lookup_url
            .as_deref()
            .map_or_else(|| url.clone(), |u| u.trim_end_matches('/').to_string());
        let (http, url, picks, run) =
            (http.clone(), target, Arc::clone(&picks), lookup_run.clone());
        run_pool(lookups, args.concurrency, move |i| {
            let (http, url, picks) = (http.clone(), url.clone(), Arc::clone(&picks));
            let sii = sii_text(&run, picks[i]).replace('+', "%2B");
            async move {
                let resp = http
                    .get(format!("{url}/v1/lookup?sii={sii}"))
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    bail!("lookup {sii}: {} {}", resp.status(), resp.text().await?);
                }
                let _ = resp.bytes().await?;
                Ok(())
            }
        })
        .await?
    };
    report(
        "lookups",
        lat.len(),
        &lat,
        wall,
        cpu_delta(args.server_pid, before),
    );

    // 5. Verify samples (not timed).
    let receipts = receipts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    for (i, r) in &receipts {
        r.verify(&leaves[*i], info.hash, &vkey)
            .with_context(|| format!("receipt for claim {i}"))?;
    }
    let trust = Trust::new(vkey.clone(), info.hash);
    let mut verified = 0;
    for i in (0..args.claims).step_by(sample_every).take(args.verify) {
        let sii = sii_text(&run_id, i).replace('+', "%2B");
        let a: LookupAnswer = http
            .get(format!("{url}/v1/lookup?sii={sii}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let v = verify_lookup(&a, &trust).with_context(|| format!("lookup of claim {i}"))?;
        if !v
            .mappings
            .iter()
            .any(|m| m.ssi.as_str().ends_with(&format!("/u/{i}")))
        {
            bail!("lookup of claim {i} does not show its mapping");
        }
        verified += 1;
    }
    println!(
        "verified {} receipts and {verified} lookup answers",
        receipts.len()
    );

    // 6. Server resources.
    let info: Info = http
        .get(format!("{url}/v1/info"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("log size {} at end", info.size);
    if let Some(pid) = args.server_pid {
        match rss_kib(pid) {
            Some((rss, hwm)) => println!(
                "server RSS {:.1} MiB (peak {:.1} MiB)",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            ),
            None => println!("server RSS: cannot read /proc/{pid}/status"),
        }
    }
    if let Some(dir) = &args.data_dir {
        let (bytes, allocated) = dir_bytes(dir);
        let per = |b: u64| b as f64 / info.size.max(1) as f64;
        println!(
            "data folder {:.1} MiB = {:.0} bytes per entry ({:.0} allocated) ({} entries)",
            bytes as f64 / (1024.0 * 1024.0),
            per(bytes),
            per(allocated),
            info.size
        );
        for part in ["public", "hashes", "map-journal", "index"] {
            let path = dir.join(part);
            let (len, alloc) = if path.is_dir() {
                dir_bytes(&path)
            } else {
                std::fs::metadata(&path).map_or((0, 0), |m| {
                    use std::os::unix::fs::MetadataExt as _;
                    (m.len(), m.blocks() * 512)
                })
            };
            println!(
                "  {part}: {:.0} bytes per entry ({:.0} allocated)",
                per(len),
                per(alloc)
            );
        }
    }
    Ok(())
}
