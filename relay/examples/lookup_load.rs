//! Lookup load for issue #15's benchmark: `N` lookups of random numbers, `C` in flight, either
//! straight to a DP (optionally each paying with a Privacy Pass token) or encapsulated through an
//! Oblivious HTTP relay; prints lookups/s and latency percentiles (200 answers only).
//!
//! ```text
//! lookup_load --dp http://127.0.0.1:8080 [--relay http://127.0.0.1:8090] \
//!     [--tokens trust.tokens.json] [--lookups 20000] [--concurrency 16]
//! ```
//!
//! With `--relay`, the gateway's key configuration is read from the DP's `/ohttp-keys` once at
//! start (a benchmark, not a client: `ledger lookup --relay` uses the trust file's pinned one).
//! With `--tokens`, the state file `ledger token fetch` writes: one token per lookup, taken in
//! order (there must be at least `--lookups` of them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use clap::Parser;
use ledger_ohttp::{client, message};

#[derive(Debug, Parser)]
struct Args {
    /// The DP (and, with --relay, the gateway behind the relay).
    #[arg(long)]
    dp: String,
    /// Send every lookup through this relay.
    #[arg(long)]
    relay: Option<String>,
    /// Pay for each lookup with a token from this `ledger token fetch` state file.
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// How many lookups.
    #[arg(long, default_value_t = 20_000)]
    lookups: usize,
    /// How many in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// The `n`-th looked-up SII: none is claimed, which costs the DP the same absence proof (map
/// proofs, signers' enrollments) as any lookup, and the same for every mode.
fn sii(n: usize) -> String {
    format!("mailto:bench{n}@example.com")
}

fn tokens(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    Ok(v["tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["token"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dp = args.dp.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let keys = match &args.relay {
        Some(_) => Some(Arc::new(
            http.get(format!("{dp}/ohttp-keys"))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?
                .to_vec(),
        )),
        None => None,
    };
    let tokens = Arc::new(match &args.tokens {
        Some(p) => tokens(p)?,
        None => Vec::new(),
    });
    if args.tokens.is_some() && tokens.len() < args.lookups {
        bail!("{} tokens for {} lookups", tokens.len(), args.lookups);
    }
    let authority = dp
        .split("//")
        .nth(1)
        .unwrap_or(&dp)
        .trim_end_matches('/')
        .to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (http, dp, relay, keys, tokens, next, authority) = (
            http.clone(),
            dp.clone(),
            args.relay.clone(),
            keys.clone(),
            Arc::clone(&tokens),
            Arc::clone(&next),
            authority.clone(),
        );
        let n = args.lookups;
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let path = format!("/v1/lookup?sii={}", sii(i).replace('@', "%40"));
                let auth = tokens.get(i).map(|t| format!("PrivateToken token={t}"));
                let t = Instant::now();
                let status = match (&relay, &keys) {
                    (Some(relay), Some(keys)) => {
                        let inner = message::encode_get_authorized(
                            &authority,
                            &path,
                            SystemTime::now(),
                            auth.as_deref(),
                        )?;
                        let (enc, pending) = client::encapsulate(keys, &inner)?;
                        let sealed = http
                            .post(relay.as_str())
                            .header("content-type", ledger_ohttp::REQUEST_MEDIA_TYPE)
                            .body(enc)
                            .send()
                            .await?
                            .error_for_status()?
                            .bytes()
                            .await?;
                        message::decode_response(&pending.open(&sealed)?)?.status
                    }
                    _ => {
                        let mut req = http.get(format!("{dp}{path}"));
                        if let Some(a) = &auth {
                            req = req.header("authorization", a);
                        }
                        let resp = req.send().await?;
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await?;
                        status
                    }
                };
                if status != 200 {
                    bail!("lookup {i}: status {status}");
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::with_capacity(args.lookups);
    for w in workers {
        lat.extend(w.await??);
    }
    let wall = began.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let mode = match (&args.relay, &args.tokens) {
        (Some(_), Some(_)) => "relay+tokens",
        (Some(_), None) => "relay",
        (None, Some(_)) => "tokens",
        (None, None) => "direct",
    };
    println!(
        "{mode}: {} lookups in {wall:.2} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} in flight)",
        lat.len(),
        lat.len() as f64 / wall,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        args.concurrency
    );
    Ok(())
}
